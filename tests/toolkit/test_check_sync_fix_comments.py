"""``check-sync --fix`` edits config.yaml with the one comment-keeping writer
(`spikeprep.inputs.yaml_edit`): comments, blank lines and other keys stay byte for byte."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

import spikeprep
from spikeprep.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_check_sync_fix_keeps_comments(tmp_path):
    root = tmp_path / "data"
    spikeprep.simulate_dataset(root, sequences=1, frames=12, height=32, width=48, spikes_per_frame=80,
                               motion=3.0, threshold=1.0, seed=3)
    config: Path = root / "spike" / "seq000" / "config.yaml"
    raw = yaml.safe_load(config.read_text())
    lines = ["# camera: lab 3, beam splitter B", ""]
    lines += [f"{k}: {yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}"
              for k, v in raw.items() if k not in ("window_shift", "flipud")]
    lines += ["flipud: false   # as the vendor's manual says", "window_shift: 16 # measured by hand",
              "labeled_data_type: [4]   # SpikeCV's key", "# end"]
    config.write_text("\n".join(lines) + "\n")
    assert yaml.safe_load(config.read_text())["window_shift"] == 16
    spikeprep.build_sync(root)
    first = run("check-sync", root, "--fix")  # orientation first
    assert first.exit_code == 0, first.output
    second = run("check-sync", root, "--fix")  # then the offset
    assert second.exit_code == 0, second.output
    edited = config.read_text().splitlines()
    assert [ln for ln in edited if not ln.startswith(("flipud:", "window_shift:"))] == \
        [ln for ln in lines if not ln.startswith(("flipud:", "window_shift:"))]
    assert any(ln.startswith("flipud: true") and ln.endswith("# as the vendor's manual says") for ln in edited)
    shift = next(ln for ln in edited if ln.startswith("window_shift:"))
    assert shift.endswith("# measured by hand") and abs(yaml.safe_load(shift)["window_shift"]) <= 2
