"""The rich tables the CLI prints: pure functions from library results to renderables."""

from __future__ import annotations

from rich.table import Table


def sync_table(reports, dry_run: bool) -> Table:
    """build-sync: one row per sequence (mode, frames, spikes per window, gaps, coverage, status)."""
    table = Table(title="build-sync (dry run: nothing written)" if dry_run else "build-sync")
    for column in ("sequence", "mode", "frames", "spikes/window", "gaps", "overlaps", "coverage", "status"):
        table.add_column(column, justify="left" if column in ("sequence", "mode", "status") else "right",
                         no_wrap=True)
    for r in reports:
        lengths = r.lengths
        gaps, overlaps = r.gaps_and_overlaps()
        table.add_row(r.sync.sequence, r.mode, str(len(lengths)),
                      f"{min(lengths)}-{max(lengths)}" if min(lengths) != max(lengths) else str(lengths[0]),
                      str(gaps), str(overlaps), f"{r.coverage():.0%}", r.status)
    return table


def voxelize_table(summary) -> Table:
    """voxelize: frames, bytes, time and throughput per sequence, and the total."""
    table = Table(title=f"voxelize -> {summary.cache}")
    for column in ("sequence", "frames", "MB written", "seconds", "frames/s"):
        table.add_column(column, justify="left" if column == "sequence" else "right")
    for name, frames, nbytes, seconds in summary.per_sequence:
        table.add_row(name, str(frames), f"{nbytes / 1e6:.1f}", f"{seconds:.1f}",
                      f"{frames / seconds:.1f}" if seconds else "-")
    table.add_row("total", str(summary.frames), f"{summary.bytes_written / 1e6:.1f}", f"{summary.seconds:.1f}",
                  f"{summary.frames_per_s:.1f} ({summary.mb_per_s:.1f} MB/s)", style="bold")
    return table


def problems_table(report) -> Table:
    """verify: one row per problem (sequence, frame, record or file, what)."""
    table = Table(title=f"{len(report.problems)} problem(s) in {report.cache}")
    for column in ("sequence", "frame", "record / file", "problem"):
        table.add_column(column)
    for p in report.problems:
        table.add_row(p.sequence or "-", "-" if p.frame is None else str(p.frame), p.key or "-", p.what)
    return table


def info_renderables(info: dict) -> list:
    """info: the parameter table, the sequence table, shard sizes and spike statistics."""
    params = Table(title=f"{info['cache']} (spikeprep {info['spikeprep_version']}, {info['created']})")
    params.add_column("param")
    params.add_column("value")
    for key, value in info["params"].items():
        if key != "more_representations":  # shown in the representations table
            params.add_row(key, str(value))
    params.add_row("params_hash", info["params_hash"][:16] + "...")
    table = Table()
    for column in ("sequence", "split", "frames", "shard", "MB", "spikes/px/frame", "hot pixels"):
        table.add_column(column)
    for row in info["sequences"]:
        rate = "-" if row["spike_rate"] is None else f"{row['spike_rate']:.4f}"
        table.add_row(row["sequence"], row["split"], str(row["frames"]), row["shard"],
                      f"{(row['bytes'] or 0) / 1e6:.1f}", rate, str(row["hot_pixels"]))
    if any("crop_box" in row for row in info["sequences"]):
        match = info["params"].get("match")
        out_of = "RGB" if match == "rgb" else "spike"
        out_rows = ", ".join(f"{row['sequence']} {row['crop_box']}" for row in info["sequences"])
        table.caption = (f"registered rig: every frame is the box [x0, y0, x1, y1) of the {out_of} frame "
                         f"(params.registration.crop, centred in each overlap): {out_rows}")
    out = [params, *representations_table(info.get("representations", ())), table, "shards: " + ", ".join(
        f"{name} {'missing' if size is None else f'{size / 1e6:.1f} MB'}" for name, size in info["shards"].items())]
    if info.get("spike_only"):
        h, w, c = info["params"]["rgb_shape"]
        out.append(f"spike-only cache: no blur records; sharp records ({h},{w},{c}) where the data has ground "
                   "truth, else spike records only")
    stats = info["spike_stats"]
    if stats.get("mean") is not None:
        def fmt(xs):
            return "[" + ", ".join(f"{x:.3g}" for x in xs) + "]"
        out.append(f"spike_stats over {len(stats['over'])} train sequence(s): mean {fmt(stats['mean'])} "
                   f"std {fmt(stats['std'])} q99.5 {fmt(stats['q995'])}")
    return out


def representations_table(rows) -> list:
    """info: a row per representation of a cache holding several (none for one)."""
    if len(rows) < 2:
        return []
    table = Table(title="spike representations (the first: record 'spike')")
    for column in ("name", "record", "S", "shape", "dtype", "storage", "params", "mean"):
        table.add_column(column)
    for r in rows:
        mean = ", ".join(f"{x:.3g}" for x in r["stats"].get("mean", ()))
        table.add_row(r["name"], r["record"], str(r["S"]), str(tuple(r["shape"])), r["dtype"], r["storage"],
                      str(r["params"] or "-"), f"[{mean}]")
    return [table]


def demo_table(summary) -> Table:
    """demo: files written, time per stage, validation PSNR/SSIM of input and output."""
    table = Table(title=f"spikeprep demo -> {summary.out}")
    table.add_column("what")
    table.add_column("value", justify="right")
    for name, (path, size) in summary.files.items():
        table.add_row(f"{name} ({path})", f"{size / 1e6:.1f} MB")
    for name, seconds in summary.stages.items():
        table.add_row(f"{name} time", f"{seconds:.1f} s")
    training = summary.training
    if training.get("psnr") is not None:
        table.add_row("validation PSNR, blurred input", f"{training['psnr_input']:.2f} dB")
        table.add_row("validation PSNR, restored output", f"{training['psnr']:.2f} dB")
        table.add_row("validation SSIM, input -> output", f"{training['ssim_input']:.3f} -> {training['ssim']:.3f}")
    if training.get("checkpoint"):
        table.add_row("checkpoint", str(training["checkpoint"]))
    return table


def check_sync_table(checks) -> Table:
    """check-sync: one row per sequence (verdict, scores, best offset and orientation, why)."""
    table = Table(title="check-sync (score: correlation of window spike counts with the frame luma)")
    for column in ("sequence", "verdict", "score", "best offset", "best score", "orientation",
                   "exposure", "frames", "why"):
        table.add_column(column, justify="right" if column in ("score", "best score", "frames") else "left")
    style = {"ok": "green", "weak": "yellow", "offset": "red", "orientation": "red"}
    for c in checks:
        j = c.judgement
        seconds = c.seconds(j.best_offset)
        offset = f"{j.best_offset:+d}" + (f" ({seconds * 1e3:+.2f} ms)" if seconds is not None else "")
        exposure = "-" if j.exposure is None else (
            f"x{j.exposure.best_scale:g}?" if j.exposure.clear else "ok")
        table.add_row(c.sequence, f"[{style[j.verdict]}]{j.verdict}[/]", f"{j.score:.3f}", offset,
                      f"{j.best_score:.3f}", j.orientation, exposure, f"{j.common_frames}/{j.frames}", j.reason)
    return table


def fix_lines(fixes) -> list[str]:
    """check-sync --fix: one line per sequence that needed a fix (what changed, or why not)."""
    return [f"{f.sequence}: {f.status}: {f.change}" + (f" ({f.config})" if f.config and f.status == "fixed" else "")
            for f in fixes if f.status != "nothing to fix"]


def qc_table(result) -> Table:
    """One row per capture checked by ``spikeprep qc``."""
    table = Table(title="raw captures")
    for column in ("file", "geometry", "frames", "mean rate", "hot", "dead", "empty/sat. frames",
                   "rate jumps", "verdict"):
        table.add_column(column)
    for r in result.reports:
        g = r.geometry
        geometry = f"{g.height}x{g.width} ({g.source})" if g else "-"
        rate = f"{r.firing_rate['mean']:.4f}" if r.firing_rate else "-"
        table.add_row(r.path, geometry, str(r.frames), rate, str(len(r.hot_pixels)), str(len(r.dead_pixels)),
                      f"{len(r.empty_frames)}/{len(r.saturated_frames)}", str(len(r.rate_jumps)), r.verdict)
    return table
