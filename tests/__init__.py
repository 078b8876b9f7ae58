"""The test suite, in folders by what they test (``python3 -m pytest`` from the repository root):

* ``toolkit/``: the torch-free data toolkit (``spikeprep``): reader, voxels, alignment, build-sync,
  check-sync, import, simulate, cache, verify, parts, dask, LMDB writer, hot pixels, and the pinned
  whole output of the CLI's reports (``test_cli_output.py``);
* ``train/``: the trainer (``vrt_train``): model, training, KAIR, metrics, telemetry, dry run, data;
  every module there skips without torch (``pytest.importorskip``);
* ``faults/``: the fault matrices: ``inputs/`` (data roots and outputs), ``cache/`` (voxelize and
  its lock), ``train/`` (the trainer under signals and bad input; skips without torch);
* the top level: the house itself (architecture, packaging, the demo, the docs).

Helpers live in ``support/`` (``from tests.support import reference``); test modules import only
those, never each other. Fixtures live in the nearest ``conftest.py``; ``shared_data`` gives the real
spike streams (``../shared/data`` from the repository root; skip when missing, fail under
``CI=true``). Markers: ``slow`` (over 20 s on 2 cores) and ``requires_torch`` (skipped, with the
install command, without the ``train`` extra).
"""
