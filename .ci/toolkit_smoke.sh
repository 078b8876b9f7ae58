#!/usr/bin/env bash
# The torch-free data toolkit from an install without the train extra (`pip install .[dev]`), run
# from outside the clone so the installed wheel is what runs: torch is absent; simulate ->
# build-sync -> voxelize -> verify -> info work through the CLI; `vrt-train` and `spikeprep demo`
# exit 1 with the install advice; the demo's trainer config is in the wheel (package data).
# Usage: .ci/toolkit_smoke.sh VENV   (a venv with spikeprep installed without the train extra)
set -euo pipefail
bin=$(cd "$1/bin" && pwd)
cd "$(mktemp -d)"
advice='pip install "spikeprep[train]"'

"$bin/python" - <<'PY'
import importlib.util
from importlib.resources import files

import spikeprep

for name in ("torch", "torchvision", "dask"):  # pytest may be there: .ci/run installs .[dev]
    assert importlib.util.find_spec(name) is None, f"{name} is importable without the train/dask extras"
assert "site-packages" in spikeprep.__file__, f"not the installed copy: {spikeprep.__file__}"
assert (files("vrt_train") / "configs" / "demo_tiny_cpu.yaml").is_file(), "demo config not packaged"
PY

"$bin/spikeprep" simulate data --sequences 2 --frames 4 --height 32 --width 32
"$bin/spikeprep" build-sync data
"$bin/spikeprep" voxelize data cache --S 4 --val seq001
"$bin/spikeprep" verify cache --data data
"$bin/spikeprep" info cache

expect_advice() {  # expect_advice COMMAND...: exits 1 and prints the install command
    local rc=0
    "$@" > out.txt 2>&1 || rc=$?
    if [[ $rc -ne 1 ]] || ! grep -qF "$advice" out.txt || grep -q Traceback out.txt; then
        echo "toolkit smoke: '$*' exited $rc, expected 1 with: $advice" >&2
        cat out.txt >&2
        exit 1
    fi
    cat out.txt
}
expect_advice "$bin/vrt-train" --help
expect_advice "$bin/spikeprep" demo demo
echo "toolkit smoke: torch-free install OK"
