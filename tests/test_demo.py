"""`spikeprep demo`: the whole pipeline on CPU improves on the blurred input, and re-runs reuse it."""

from __future__ import annotations

import csv

import pytest
from click.testing import CliRunner

from spikeprep.cli import main
from spikeprep.demo import DemoData, run_demo


@pytest.mark.requires_torch
@pytest.mark.slow  # ~1.5 min of training on 2 cores: CI runs it in the main environment only
def test_demo_trains_and_beats_the_blurred_input_then_reuses_everything(tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(main, ["demo", str(out)])
    assert result.exit_code == 0, result.output
    assert "validation PSNR, restored output" in result.output
    rows = list(csv.DictReader((out / "train" / "val.csv").open()))
    last = rows[-1]
    assert int(last["iter"]) == 120
    assert float(last["psnr"]) > float(last["psnr_input"]) + 0.2  # measured: +0.48 dB
    checkpoint = out / "train" / "checkpoints" / "iter_00000120.pt"
    stamp = checkpoint.stat().st_mtime_ns

    again = CliRunner().invoke(main, ["demo", str(out)])
    assert again.exit_code == 0, again.output
    assert checkpoint.stat().st_mtime_ns == stamp  # training was not redone
    assert f"{float(last['psnr']):.2f} dB" in again.output


def test_changed_demo_data_rebuilds_what_was_derived_from_it(tmp_path):
    small = DemoData(sequences=2, frames=4)
    run_demo(tmp_path, params=small, train=False, progress=False, report=lambda _: None)
    summary = run_demo(tmp_path, params=DemoData(sequences=3, frames=4), train=False, progress=False,
                       report=lambda _: None)
    assert summary.files["cache"][1] > 0
    assert (tmp_path / "cache" / "manifest.json").is_file()
    assert "seq002" in (tmp_path / "cache" / "meta_info.txt").read_text()
