"""`spikeprep demo`: the whole pipeline on CPU improves on the blurred input, and re-runs reuse it."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from spikeprep.cli import main
from spikeprep.demo import DemoData, run_demo
from spikeprep.errors import ConfigError


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


@pytest.mark.requires_torch
def test_the_training_child_reports_its_error_as_the_same_one_line_error(tmp_path):
    """The demo trains in a child process (`python -m vrt_train.demo`): an error there comes
    back with the message and exit code it has in-process."""
    from vrt_train.config import load_config

    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError) as in_child:
        run_demo(tmp_path / "demo", params=DemoData(sequences=2, frames=4), config=bad, progress=False,
                 report=lambda _: None)
    with pytest.raises(ConfigError) as in_process:
        load_config(bad, [])
    assert str(in_child.value) == str(in_process.value)
    assert in_child.value.exit_code == 1


def test_a_trainer_only_error_keeps_its_message_and_exit_code():
    from spikeprep.demo import _child_error
    from vrt_train.demo import error_reply
    from vrt_train.errors import Preempted, TrainingDiverged

    for err, code in ((TrainingDiverged("loss is not finite", found="nan at iteration 3", fix="lower train.lr"), 1),
                      (Preempted(15, 7, "/x/iter_00000007.pt"), 143)):
        back = _child_error(json.loads(json.dumps(error_reply(err))), code)
        assert (str(back), back.exit_code) == (str(err), err.exit_code)
