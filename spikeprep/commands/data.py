"""Commands that make or check a DATA_ROOT: build-sync, check-sync, import, simulate."""

from __future__ import annotations

import sys

import click

from ..report import tables
from .common import console, print_warnings, reports_errors, stdout_console


@click.command("build-sync")
@click.argument("data_root", type=click.Path(file_okay=False, path_type=str))
@click.option("--sequence", "sequences", multiple=True, metavar="SEQ", help="Only this sequence (repeatable).")
@click.option("--spike-rate", type=float, help="Spike frames per second (Hz); overrides config.yaml.")
@click.option("--frame-rate", type=float, help="RGB frames per second (Hz); overrides config.yaml.")
@click.option("--exposure", type=float, help="Exposure as a fraction of the frame interval, (0, 1].")
@click.option("--offset", type=float, help="Seconds from spike frame 0 to frame 0's exposure start.")
@click.option("--timestamps", metavar="FILE",
              help="Timestamps file (absolute, or a name inside spike/SEQ/); "
                   "default spike/SEQ/timestamps.txt if present.")
@click.option("--timestamp-unit", type=click.Choice(["spikes", "seconds"]),
              help="Unit of the timestamps (default: the file's '# unit:' line, else spikes).")
@click.option("--window-spikes", type=int, metavar="N",
              help="Per-frame .dat files: use a centred window of N spike frames instead of the whole file.")
@click.option("--dry-run", is_flag=True, help="Validate and print the table; write nothing.")
@click.option("--force", is_flag=True, help="Replace an existing sync.json that differs.")
@reports_errors
def build_sync_command(data_root, sequences, spike_rate, frame_rate, exposure, offset, timestamps,
                       timestamp_unit, window_spikes, dry_run, force):
    """Write DATA_ROOT/spike/SEQ/sync.json: the spike window of every RGB frame.

    \b
    Windows come from, per sequence, the first that applies:
      imported         a sequence 'spikeprep import' wrote keeps its preset's windows (moved
                       by config.yaml's window_shift) unless a window flag is given
      recipe layout    gopro_rgb/SEQ + spike_raw/SEQ/sync.json (the recipe's form) is converted
      per-frame .dat   spike/SEQ/<blur stem>.dat for every frame (whole file or --window-spikes N)
      timestamps       spike/SEQ/timestamps.txt or --timestamps: 'START END' per blur frame
      fixed timing     spike_rate, frame_rate, exposure, offset (config.yaml or the flags)
    Timing rule (docs/timing.md): spike frame k belongs to frame i iff t0 <= k/spike_rate < t1.

    Everything is validated first (windows inside their stream, non-empty and ordered, a
    window for every blur frame, sharp frames matching blur frames, one image size); on any
    error nothing is written. Re-running is idempotent; a different existing sync.json is
    kept unless --force. A rebuild keeps what it does not recompute: the split, frame names,
    T and the import's preset.

    \b
    Example:
      spikeprep build-sync data/ --dry-run
      spikeprep build-sync data/ --spike-rate 20000 --frame-rate 500 --exposure 0.5
    """
    from ..alignment.build import SyncOptions, build_sync

    options = SyncOptions(spike_rate, frame_rate, exposure, offset, timestamps, timestamp_unit, window_spikes)
    reports = build_sync(data_root, options, sequences=tuple(sequences), force=force, dry_run=dry_run)
    stdout_console().print(tables.sync_table(reports, dry_run))
    kept = [r.sync.sequence for r in reports if r.status == "kept"]
    if kept:
        print_warnings([f"kept existing sync.json that differs for {', '.join(kept)}; "
                        "pass --force to replace it"])


@click.command("check-sync")
@click.argument("data_root", type=click.Path(path_type=str))
@click.option("--sequence", "sequences", multiple=True, metavar="SEQ", help="Check only SEQ (repeatable).")
@click.option("--search", type=int, default=None, metavar="N",
              help="Search offsets in [-N, N] spike frames [default: half the median window, >= 8].")
@click.option("--frames", type=int, default=100, show_default=True, metavar="K",
              help="Score at most K evenly spaced frames per sequence (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print {\"sequences\": {SEQ: {...}}} on stdout.")
@click.option("--preview", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="Write contact sheets and a score-vs-offset plot per sequence into DIR.")
@click.option("--fix", is_flag=True,
              help="Write offsets (window_shift) and flipud into config.yaml, rebuild sync.json.")
@reports_errors
def check_sync_command(data_root, sequences, search, frames, as_json, preview, fix):
    """Check each sequence's frame/spike alignment from the data: the spike count of every
    window should correlate best with its blurry frame unmoved and as-is.

    \b
    Verdicts: ok, offset (windows should move by the best offset), orientation (the spike
    image is flipped), weak (too little texture or motion to tell).
    Exit codes: 0 all ok/weak, 3 an offset or orientation found (with --fix: one not fixed),
    1 errors, 2 usage errors. Calibrate a rig: check-sync, --fix, check-sync again.
    \b
    Example:
      spikeprep check-sync data/ --preview previews/
    """
    import json

    from ..alignment.check import CheckOptions, check_sync, exit_code

    checks = check_sync(data_root, tuple(sequences), CheckOptions(search, frames))
    if preview:  # what was checked, before any fix
        from ..report.previews import write_check_previews
        write_check_previews(data_root, checks, preview)
    fixes = []
    if fix:
        from ..alignment.fix import apply_fixes, fixes_exit_code
        fixes = apply_fixes(data_root, checks)
    if as_json:
        click.echo(json.dumps({"sequences": {c.sequence: c.to_dict() for c in checks}}, indent=1))
    else:
        stdout_console().print(tables.check_sync_table(checks))
    for line in tables.fix_lines(fixes):
        click.echo(f"--fix {line}", err=as_json)
    sys.exit(fixes_exit_code(fixes) if fix else exit_code(checks))


def _size(text):
    from ..errors import UsageError
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise UsageError("--spike-size must be HxW", found=text, expected="e.g. 360x640") from exc
    return h, w


@click.command("import")
@click.argument("preset", type=click.Choice(["spk-gopro", "s-vrt", "s-sdm", "x4k", "rsb", "spike-zoo", "spikecv"]))
@click.argument("source", type=click.Path(file_okay=False, path_type=str))
@click.argument("data_root", type=click.Path(file_okay=False, path_type=str))
@click.option("--sequence", "sequences", multiple=True, metavar="SEQ", help="Only this sequence (repeatable).")
@click.option("--split", "splits", multiple=True, metavar="SPLIT", help="Only this split, e.g. train (repeatable).")
@click.option("--blur", type=click.Choice(["gamma", "linear"]),
              help="spk-gopro: blur_gamma (default, the loader's) or blur.")
@click.option("--pad", type=click.Choice(["ones", "zeros", "skip"]),
              help="x4k: windows past the stream's ends are padded with ones (default, the loader's), "
                   "zeros, or skipped.")
@click.option("--spike-full", is_flag=True, help="s-sdm: use the 720x1280 spike_full/ folder.")
@click.option("--margins", nargs=2, type=int, metavar="LO HI", help="rsb: window [LO, L-HI) instead of the centred 97.")
@click.option("--spike-size", metavar="HxW", help="Override the preset's spike frame size.")
@click.option("--window", type=int, metavar="N",
              help="spikecv: spike frames per frame (non-overlapping windows, default 41).")
@click.option("--dry-run", is_flag=True, help="Print the table; write nothing.")
@click.option("--force", is_flag=True, help="Replace sequences whose SOURCE changed or whose DATA_ROOT folders differ.")
@reports_errors
def import_command(preset, source, data_root, sequences, splits, blur, pad, spike_full, margins, spike_size,
                   window, dry_run, force):
    """Link a downloaded RGB + spike dataset into DATA_ROOT with config.yaml and sync.json.

    \b
    Presets (windows as each dataset's own loader feeds its network):
      spk-gopro  SpkDeblurNet Spk-GoPro: per-frame .dat, centre 56 [L//2-28, L//2+28)
      s-vrt      S-VRT GoPro: whole per-frame .dat (voxelize --repr svrt-tfp --S 4)
      s-sdm      S-SDM Spike-GOPRO: centre 97 of each .dat ([20, 117) for 137 frames)
      x4k        SpkDeblurNet X4K1000FPS: [c-32, c+32] of spike.dat, padded with ones
      rsb        S-SDM real captures (.jpg, no ground truth): as s-sdm
      spike-zoo  Spike-Zoo REDS_BASE (spike-only, GT png): centre 41 (train) / 301 (test),
                 one sequence of one frame per .dat; needs --split
      spikecv    SpikeCV real recordings (config.yaml + .dat, spike-only, no GT):
                 non-overlapping windows of --window N (41)
    \b
    DATA_ROOT gets links to SOURCE's files (never copies), spike/SEQ/config.yaml and
    spike/SEQ/sync.json (with each frame's source name and the sequence's split, which
    voxelize uses unless --val is given). Nothing is ever written inside SOURCE.
    Re-importing is idempotent; a changed SOURCE needs --force.
    \b
    Example:
      spikeprep import spk-gopro ~/downloads/Spk-GoPro data/ --dry-run
    """
    from ..datasets import ImportOptions, import_dataset
    from ..report.import_table import import_table

    options = ImportOptions(tuple(sequences), tuple(splits), blur, pad, spike_full,
                            tuple(margins) if margins else None, _size(spike_size) if spike_size else None,
                            window)
    plan, status = import_dataset(preset, source, data_root, options, force=force, dry_run=dry_run)
    stdout_console().print(import_table(plan, status, dry_run))
    for seq in plan.sequences:
        more = [f"{len(seq.warnings) - 3} more like these"] if len(seq.warnings) > 3 else []
        print_warnings(f"{seq.name}: {warning}" for warning in [*seq.warnings[:3], *more])
    for note in plan.notes:
        console.print(f"note: {note}")


@click.command("simulate")
@click.argument("out", type=click.Path(file_okay=False, path_type=str))
@click.option("--sequences", type=int, default=2, show_default=True, help="Synthetic sequences seq000, seq001, ...")
@click.option("--frames", type=int, default=8, show_default=True, help="RGB frames per synthetic sequence.")
@click.option("--height", type=int, default=64, show_default=True, help="RGB height, pixels (>= 16).")
@click.option("--width", type=int, default=64, show_default=True, help="RGB width, pixels (>= 16).")
@click.option("--spikes-per-frame", type=int, default=40, show_default=True,
              help="Spike frames per RGB frame interval.")
@click.option("--exposure", type=float, default=0.5, show_default=True,
              help="Exposure as a fraction of the frame interval, (0, 1].")
@click.option("--seed", type=int, default=0, show_default=True, help="Same seed => byte-identical files.")
@click.option("--threshold", type=float, default=2.0, show_default=True,
              help="Integrate-and-fire threshold (luma in [0, 1] per sample; white fires every 2nd sample).")
@click.option("--spike-rate", type=float, default=20000.0, show_default=True,
              help="Spike frames per second (Hz); frame_rate = spike_rate / spikes_per_frame.")
@click.option("--spike-downsample", type=int, default=1, show_default=True, metavar="N",
              help="Spike frames at RGB size / N (INTER_AREA), e.g. 2: 720x1280 RGB -> 360x640 spikes.")
@click.option("--motion", type=float, default=1.0, show_default=True,
              help="Object speed factor (1.0: 1.5-4 px per RGB frame at 128 px); more motion, more blur.")
@click.option("--from-frames", "from_frames", type=click.Path(file_okay=False, path_type=str), metavar="DIR",
              help="Convert high-frame-rate frames in DIR (or in each subfolder of DIR) instead of synthesising.")
@click.option("--images-per-frame", type=int, default=8, show_default=True, metavar="N",
              help="With --from-frames: source images per RGB frame interval.")
@click.option("--force", is_flag=True, help="Allow a non-empty OUT: replaces OUT/blur, OUT/sharp, OUT/spike "
              "(with --part: only this part's sequences).")
@click.option("--part", metavar="I/N", default=None,
              help="Write only part I (from 0) of N of the sequences; N such processes may write one OUT at once.")
@reports_errors
def simulate_command(out, sequences, frames, height, width, spikes_per_frame, exposure, seed, threshold,
                     spike_rate, spike_downsample, motion, from_frames, images_per_frame, force, part):
    """Write a synthetic dataset in the input layout (deterministic for --seed).

    \b
    Writes, per sequence SEQ:
      OUT/blur/SEQ/000000.png ...   blurred RGB: mean of the scene over the exposure window
      OUT/sharp/SEQ/000000.png ...  ground truth: the scene at mid-exposure
      OUT/spike/SEQ/spikes.dat      one spike stream, frames * spikes-per-frame long (flipud)
      OUT/spike/SEQ/config.yaml     spike_h, spike_w, flipud and the timing below

    Scenes are textured objects moving (and bouncing) over a slowly panning textured
    background, rendered at every spike sample t_k = k / spike_rate. Spikes come from
    integrate-and-fire on the luma: each pixel's accumulator starts at uniform[0, threshold),
    adds the luma (in [0, 1]) at every sample, and fires and subtracts the threshold when it
    reaches it. Timing rule (docs/timing.md, offset 0): spike frame k belongs to frame i iff
    t0 <= k/spike_rate < t1.

    With --from-frames DIR, sorted .png/.jpg frames (e.g. GoPro 240 fps originals) become
    the scene: --images-per-frame source images span one RGB frame interval, linearly
    interpolated between images; one sequence per folder of frames.

    With --part I/N, N processes (e.g. a Slurm array) each write their share of the sequences
    into one OUT at the same time; together they write exactly the files of one run without it.

    \b
    Examples:
      spikeprep simulate data/ --sequences 4 --frames 50 --height 250 --width 400
      spikeprep simulate gopro_sim/ --from-frames GOPRO_Large_all/train --spike-downsample 2
      spikeprep simulate gopro_sim/ --from-frames GOPRO_Large_all/train --part $I/8
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..errors import UsageError
    from ..simulate import simulate_dataset, simulate_from_frames

    context = click.get_current_context()
    given = {name for name in ("sequences", "frames", "height", "width", "motion", "images_per_frame")
             if context.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    clashing = sorted(given - {"images_per_frame"}) if from_frames else sorted(given & {"images_per_frame"})
    if clashing:
        options = ", ".join("--" + name.replace("_", "-") for name in clashing)
        raise UsageError("options do not apply here", found=options,
                         expected="--sequences/--frames/--height/--width/--motion without --from-frames, "
                                  "--images-per-frame only with it")
    common = dict(spikes_per_frame=spikes_per_frame, exposure=exposure, seed=seed, threshold=threshold,
                  spike_rate=spike_rate, spike_downsample=spike_downsample, force=force, part=part)
    columns = (TextColumn("spike frames"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not console.is_terminal) as progress:
        task = progress.add_task("simulate", total=None)

        def on_progress(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        if from_frames:
            summary = simulate_from_frames(from_frames, out, images_per_frame=images_per_frame,
                                           on_progress=on_progress, **common)
        else:
            summary = simulate_dataset(out, sequences=sequences, frames=frames, height=height, width=width,
                                       motion=motion, on_progress=on_progress, **common)
    plural = "s" if len(summary.sequences) != 1 else ""
    click.echo(f"simulated {len(summary.sequences)} sequence{plural} ({', '.join(summary.sequences)}): "
               f"{sum(summary.frames)} frames, {sum(summary.spike_frames)} spike frames "
               f"({summary.height}x{summary.width} RGB, {summary.spike_h}x{summary.spike_w} spikes) "
               f"in {summary.seconds:.1f} s -> {summary.out}")
