"""The `spikeprep` command line: a thin layer that parses, calls the library, and reports.

Every command is a Click wrapper over an importable function; failures of the
`spikeprep.errors.SpikeprepError` family print ``error: ...`` without a traceback
(``--verbose`` shows it) and exit with the error's code (1, or 2 for usage errors). The
commands live in `spikeprep.commands` (``data``: DATA_ROOT; ``cache``: CACHE and the demo).
"""

from __future__ import annotations

import sys

import click

from .commands import cache, data, qc, register


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(package_name="spikeprep")
def main(verbose: bool) -> None:
    """Turn spike-camera recordings (SpikeCV .dat) plus RGB video into training caches for VRT.

    \b
    Pipeline:
      spikeprep simulate OUT            make a synthetic dataset (or convert high-fps frames)
      spikeprep import PRESET SRC DATA_ROOT
                                        link a public dataset (spk-gopro, s-vrt, s-sdm, x4k, rsb)
      spikeprep qc PATH...              check raw captures: geometry, hot/dead pixels, frames
      spikeprep build-sync DATA_ROOT    write spike/SEQ/sync.json: spike window per RGB frame
      spikeprep check-sync DATA_ROOT    check the windows against the frames (offset, flips)
      spikeprep register DATA_ROOT      measure the spike view's place in the RGB frame (3x3 matrix)
      spikeprep voxelize DATA_ROOT CACHE --S 8
                                        spike windows -> S voxel channels, LMDB shards
      spikeprep verify CACHE            prove the cache is complete and correct
      spikeprep info CACHE              parameters, sequences and spike statistics of a cache
      vrt-train --opt configs/X.yaml    train VRT on the cache (RGB + spike)

    \b
    Try it all on built-in synthetic data (CPU, ~2 minutes):
      spikeprep demo
    """
    _printable_streams()


def _printable_streams() -> None:
    """Paths with bytes that are not UTF-8 (a folder from an old archive) print as ``\\xNN``
    escapes instead of stopping the command with a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


for _command in (data.build_sync_command, data.check_sync_command, data.import_command,
                 data.simulate_command, cache.voxelize_command, cache.verify_command,
                 cache.info_command, cache.demo_command, qc.qc_command, register.register_command):
    main.add_command(_command)
