"""Commands that build, check and show a CACHE (voxelize, verify, info), and the demo."""

from __future__ import annotations

import sys

import click

from ..report import tables
from .common import console, print_warnings, reports_errors, stdout_console


def _parse_repr_params(pairs) -> dict:
    import yaml

    from ..errors import UsageError
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError("--repr-param must be KEY=VALUE", found=pair, expected="e.g. tau_fast=20")
        params[key.strip()] = yaml.safe_load(value)
    return params


@click.command("voxelize")
@click.argument("data_root", type=click.Path(file_okay=False, path_type=str))
@click.argument("cache", type=click.Path(file_okay=False, path_type=str))
@click.option("--S", "S", type=int, default=None, help="Voxel channels [default: the representation's, 8 for bins].")
@click.option("--repr", "repr_", multiple=True, metavar="KIND[:N]",
              help="Representation: bins | count | temporal4 | ema | tfp | svrt-tfp | raw | tfi | tfp-ls | "
                   "svrt-encoding25 [default: bins]. "
                   "Repeatable: several in one cache (the first is the record 'spike'); KIND:N means "
                   "--S N for that one, e.g. --repr bins:8 --repr raw:41 --repr tfi.")
@click.option("--repr-param", "repr_param", multiple=True, metavar="KEY=VALUE",
              help="Representation parameter (repeatable), e.g. --repr-param tfp_window=32 (the first "
                   "representation) or --repr-param tfp.tfp_window=32 (the one of that kind).")
@click.option("--add-repr", "add_repr", metavar="KIND[:N]", default=None,
              help="Add one representation to the finished CACHE (records spike.KIND; the others "
                   "untouched); resumable; --S and --repr-param apply to it.")
@click.option("--match", type=click.Choice(["none", "rgb", "spike"]), default=None,
              help="When spike and RGB sizes differ: resize spikes to RGB (rgb), RGB to spikes (spike), or neither "
                   "[default: none; rgb for a registered rig: RGB cropped to the overlap, spikes resampled onto it].")
@click.option("--shard-size", default="4G", show_default=True, help="Target LMDB shard size (512M, 4G, bytes).")
@click.option("--workers", type=int, default=0, show_default=True,
              help="Worker processes (0/1: in-process; N >= 2: N workers compute frames, "
                   "this process writes).")
@click.option("--val", multiple=True, metavar="SEQ",
              help="Validation sequence (repeatable): excluded from spike_stats.")
@click.option("--hot-pixels", type=click.Choice(["off", "detect"]), default="off", show_default=True,
              help="detect: find stuck pixels per sequence, repair voxels, store the mask.")
@click.option("--hot-pixel-list", type=click.Path(dir_okay=False, path_type=str), metavar="QC.json",
              help="Repair the hot pixels 'spikeprep qc DATA_ROOT --json' listed (instead of detecting them).")
@click.option("--force", is_flag=True,
              help="Wipe a CACHE built with other parameters and rebuild "
                   "(only a spikeprep cache holding nothing else).")
@click.option("--break-lock", is_flag=True,
              help="Remove a write lock held from another host (only when no process there writes CACHE).")
@click.option("--part", metavar="I/N", default=None,
              help="Build only part I (from 0) of N, its own shards; run N of these at once (any machines "
                   "sharing CACHE), then once without --part to complete the cache.")
@click.option("--build-missing", is_flag=True,
              help="Completing a CACHE built in parts: build missing or failed parts here instead of refusing.")
@click.option("--dask", metavar="SCHEDULER", default=None,
              help="Compute frames on a Dask cluster (e.g. tcp://10.0.0.5:8786); this process writes. "
                   "Needs spikeprep[dask].")
@click.option("--skip-unsynced", is_flag=True,
              help="Build without the sequences of DATA_ROOT that have no sync.json (named in a warning); "
                   "without it they are an error.")
@reports_errors
def voxelize_command(data_root, cache, S, repr_, repr_param, match, shard_size, workers, val, hot_pixels,
                     hot_pixel_list, force,
                     break_lock, part, build_missing, dask, skip_unsynced, add_repr):
    """Voxelize every sequence of DATA_ROOT (needs spike/SEQ/sync.json) into an LMDB cache.

    \b
    Example:
      spikeprep voxelize data/ cache/ --S 8 --workers 2 --val seq003
    \b
    Writes:
      CACHE/shard-00000.lmdb ...  LMDB dirs; a sequence never spans two shards
      CACHE/manifest.json         params, params_hash, per-sequence shard/split/sources/checksums,
                                  spike_stats (per-channel mean/std/q995 over train sequences)
      CACHE/meta_info.txt         KAIR list: "SEQ NFRAMES (H,W,3) 0"
      CACHE/progress.jsonl        build journal: re-run the same command to resume after a crash
      CACHE/.locks/               write lock: a second writer fails at once naming the holder
    \b
    Safety: CACHE may not be DATA_ROOT or a folder above it; --force deletes only a spikeprep
    cache holding nothing else; a resume rebuilds sequences whose sources changed (or refuses,
    naming them); SIGTERM/SIGINT stop the build resumably and stop the workers.
    \b
    Many machines (Slurm array, Kubernetes indexed job; CACHE on a shared filesystem):
      spikeprep voxelize data/ cache/ --part $I/$N    (I = 0..N-1, all at once)
      spikeprep voxelize data/ cache/                 (afterwards: completes the cache)
    \b
    Records per frame (raw arrays behind a 48-byte header, no PNG):
      SEQ/000000/blur   (H,W,3) uint8 RGB       SEQ/000000/sharp  (H,W,3) uint8 RGB
      SEQ/000000/spike  (C,h,w) spike dtype: bins/count/tfp -> uint8 (bins <= 255 frames),
                        uint16/uint32 for longer; temporal4 -> int16; ema -> float32
    \b
    --match (spike h x w vs RGB H x W):
      none   store both natively; RGB must be k times the spike size (integer k)
      rgb    spikes resized to H x W, INTER_NEAREST (counts stay integers, dtype unchanged)
      spike  blur/sharp resized to h x w, INTER_AREA (uint8)
    A registered rig (sync.json carries 'registration', from 'spikeprep register --fix'):
      rgb    (default) RGB cropped to one box inside every overlap, spikes warped onto it
             (linear, float32)
      spike  spikes cropped to the box the RGB frame sees, RGB warped onto the spike grid
    \b
    Several representations, and adding one later:
      spikeprep voxelize data/ cache/ --repr bins:8 --repr tfp:4
      spikeprep voxelize data/ cache/ --add-repr count
    """
    if add_repr is not None:
        return _add_repr(data_root, cache, add_repr, S, repr_, repr_param, force, part, break_lock)
    from ..cache.build import voxelize_dataset
    from ..report.progress import voxelize_bar

    repr_ = list(repr_) if len(repr_) > 1 else (repr_[0] if repr_ else "bins")
    with voxelize_bar(console.is_terminal) as progress:
        summary = voxelize_dataset(data_root, cache, S=S, repr=repr_, repr_params=_parse_repr_params(repr_param),
                                   match=match, shard_size=shard_size, workers=workers, val=val,
                                   hot_pixels=hot_pixels, hot_pixel_list=hot_pixel_list, force=force,
                                   progress=progress,
                                   break_lock=break_lock, part=part, build_missing=build_missing, dask=dask,
                                   on_notice=lambda line: print_warnings([line]), skip_unsynced=skip_unsynced)
    stdout_console().print(tables.voxelize_table(summary))
    rebuilt = f", {len(summary.rebuilt)} rebuilt (sources changed)" if summary.rebuilt else ""
    what = f"part {part}: " if part else ""
    click.echo(f"{what}{summary.sequences} sequences ({summary.sequences_skipped} already done{rebuilt}), "
               f"{summary.shards} shard(s) in {summary.cache}")
    print_warnings(summary.warnings)
    if part:
        click.echo("when every part is done, run the same command without --part to complete the cache")


def _add_repr(data_root, cache, add_repr, S, repr_, repr_param, force, part, break_lock) -> None:
    """``voxelize --add-repr``: one representation more in a finished cache."""
    from ..cache.add_repr import add_representation
    from ..errors import UsageError

    if repr_ or force or part:
        raise UsageError("--add-repr adds to a finished cache as it is", found=" ".join(
            f for f, on in (("--repr", repr_), ("--force", force), ("--part", part)) if on),
            expected="--add-repr KIND[:N] with only --S, --repr-param, --break-lock",
            fix="drop those options (to rebuild with other representations: --repr ... --force)")
    summary = add_representation(data_root, cache, add_repr, S=S, repr_params=_parse_repr_params(repr_param),
                                 break_lock=break_lock)
    click.echo(f"added {summary.name}: {summary.sequences} sequences ({summary.sequences_skipped} already "
               f"done), {summary.frames} frames, {summary.bytes_written / 1e6:.1f} MB in {summary.cache}")


@click.command("verify")
@click.argument("cache", type=click.Path(path_type=str))
@click.option("--data", "data_root", type=click.Path(path_type=str), metavar="DATA_ROOT",
              help="Also check source fingerprints and re-voxelize frames from DATA_ROOT.")
@click.option("--sample", type=int, default=None, metavar="N",
              help="With --data: re-voxelize N random frames, not all.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --sample.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report on stdout.")
@reports_errors
def verify_command(cache, data_root, sample, seed, as_json):
    """Check that CACHE is complete and correct: manifest, shards, headers, checksums.

    \b
    Exit codes: 0 all well, 1 problems found (each listed with sequence, frame, record),
    2 usage error (e.g. CACHE does not exist).
    \b
    Example:
      spikeprep verify cache/ --data data/ --sample 50
    """
    import json

    from ..cache.verify import verify_cache

    report = verify_cache(cache, data_root=data_root, sample=sample, seed=seed)
    print_warnings(report.notes)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    elif report.ok:
        click.echo(f"ok: {report.records_checked} records, {report.sources_checked} sources, "
                   f"{report.frames_recomputed} frames re-voxelized in {report.cache}")
    else:
        stdout_console().print(tables.problems_table(report))
    sys.exit(0 if report.ok else 1)


@click.command("info")
@click.argument("cache", type=click.Path(path_type=str))
@click.option("--preview", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="Also write a contact sheet per sequence (blurry, sharp, spike image, voxels) into DIR.")
@reports_errors
def info_command(cache, preview):
    """Show a cache's parameters and a table of its sequences (split, frames, shard, sizes,
    mean spikes per pixel per spike frame, hot pixels)."""
    from ..cache.info import cache_info

    out = stdout_console()
    info = cache_info(cache)
    for renderable in tables.info_renderables(info):
        out.print(renderable)
    print_warnings(info["warnings"])
    if preview:
        from ..report.previews import write_cache_previews
        click.echo(f"previews: {', '.join(str(p) for p in write_cache_previews(cache, preview))}")


@click.command("demo")
@click.argument("out", default="spikeprep-demo", type=click.Path(file_okay=False, path_type=str))
@click.option("--no-train", is_flag=True, help="Stop after verify (no torch training).")
@reports_errors
def demo_command(out, no_train):
    """Run the whole pipeline on a small built-in synthetic dataset, on CPU.

    \b
    simulate (8 sequences x 6 frames, 64x64, fast motion, 160 spike frames per frame)
      -> build-sync -> voxelize --S 4 (seq007 held out for validation)
      -> verify --data -> train a tiny RGB+spike VRT (configs/demo_tiny_cpu.yaml)
      -> validate, and print what was written and the PSNR of blurred input vs restored output.

    Re-running reuses what is done (dataset, cache, checkpoints). OUT defaults to ./spikeprep-demo.
    """
    from ..demo import run_demo

    summary = run_demo(out, train=not no_train, progress=sys.stderr.isatty(),
                       report=lambda line: console.print(line))
    stdout_console().print(tables.demo_table(summary))
