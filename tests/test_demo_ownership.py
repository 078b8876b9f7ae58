"""`spikeprep demo OUT` never deletes or changes what it did not make (issue 25 #1)."""

from __future__ import annotations

from click.testing import CliRunner

from spikeprep.cli import main


def _tree(root):
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def test_demo_refuses_a_used_folder_and_changes_nothing(tmp_path):
    out = tmp_path / "p"
    (out / "train").mkdir(parents=True)
    (out / "train/model.py").write_text("x\n")
    (out / "data/blur").mkdir(parents=True)
    (out / "data/blur/mine.png").write_bytes(b"mine")
    (out / "cache").mkdir()
    (out / "cache/notes.txt").write_text("keep\n")
    before = _tree(out)
    result = CliRunner().invoke(main, ["demo", str(out), "--no-train"])
    assert result.exit_code == 2, result.output
    assert "error: demo output folder holds files the demo did not make" in result.output
    assert "Traceback" not in result.output
    assert _tree(out) == before


def test_demo_refuses_a_folder_with_a_data_marker_and_other_files(tmp_path):
    """A demo-params.json alone does not make a folder the demo's: other entries stay refused."""
    out = tmp_path / "p"
    (out / "data").mkdir(parents=True)
    (out / "data/demo-params.json").write_text("{}")
    (out / "thesis.tex").write_text("mine\n")
    before = _tree(out)
    result = CliRunner().invoke(main, ["demo", str(out), "--no-train"])
    assert result.exit_code == 2 and _tree(out) == before


def test_demo_refuses_a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "f"), "--no-train"])
    assert result.exit_code == 2 and (tmp_path / "f").read_text() == "x"


def test_demo_claims_an_empty_folder_and_reuses_its_own(tmp_path):
    from spikeprep.demo import OWNER_MARKER, DemoData, run_demo

    small = DemoData(sequences=2, frames=2, height=32, width=32, spikes_per_frame=8)
    out = tmp_path / "d"
    out.mkdir()
    run_demo(out, params=small, train=False, progress=False, report=lambda line: None)
    assert (out / OWNER_MARKER).is_file() and (out / "cache/manifest.json").is_file()
    summary = run_demo(out, params=small, train=False, progress=False, report=lambda line: None)
    assert summary.stages  # a second run into its own folder works (reuses the dataset)
