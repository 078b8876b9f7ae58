"""Package boundaries: spikeprep never imports torch or vrt_train, the trainer's absence is
explained instead of a traceback, and the trainer configs ship inside the package."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.resources import files
from pathlib import Path

import pytest
from click.testing import CliRunner

from spikeprep.cli import main as spikeprep_main
from spikeprep.demo import run_demo
from spikeprep.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
INSTALL_ADVICE = 'pip install "spikeprep[train]"'

# Imports every spikeprep module in a fresh interpreter and names the first one after which
# torch, torchvision or vrt_train is in sys.modules.
IMPORT_PROBE = """
import importlib, json, pkgutil, sys
import spikeprep
names = ["spikeprep"] + [m.name for m in pkgutil.walk_packages(spikeprep.__path__, "spikeprep.")
                         if m.name != "spikeprep.__main__"]
pulled = {}
for name in names:
    importlib.import_module(name)
    found = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "vrt_train"))
    if found:
        pulled[name] = found[:5]
        break
print(json.dumps({"modules": names, "pulled": pulled}))
"""


@pytest.fixture
def without_torch(monkeypatch):
    """torch and torchvision unimportable, as in a base install (`None` in sys.modules)."""
    for name in ("torch", "torchvision"):
        monkeypatch.setitem(sys.modules, name, None)


def test_no_spikeprep_module_imports_torch_or_the_trainer():
    done = subprocess.run([sys.executable, "-c", IMPORT_PROBE], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert {"spikeprep.cli", "spikeprep.demo", "spikeprep.voxel"} <= set(probe["modules"])
    assert probe["pulled"] == {}


def test_vrt_train_without_torch_prints_the_install_command_and_exits_1(without_torch, capsys):
    from vrt_train.cli import main

    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: vrt-train needs torch and torchvision, which are not installed")
    assert INSTALL_ADVICE in err


def test_demo_without_torch_says_how_to_install_before_writing_anything(without_torch, tmp_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(spikeprep_main, ["demo", str(out)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "found torch and torchvision not installed" in result.output
    assert INSTALL_ADVICE in result.output and "spikeprep demo --no-train" in result.output
    assert not out.exists()


@pytest.mark.requires_torch
def test_demo_with_a_missing_config_fails_before_the_first_stage(tmp_path):
    with pytest.raises(ConfigError, match="demo training config not found"):
        run_demo(tmp_path / "demo", config=tmp_path / "nope.yaml", report=lambda _: None)
    assert not (tmp_path / "demo").exists()


def test_packaged_trainer_configs_are_the_repository_configs():
    packaged = files("vrt_train") / "configs"
    names = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert "demo_tiny_cpu.yaml" in names
    assert sorted(p.name for p in packaged.iterdir() if p.name.endswith(".yaml")) == names
    for name in names:
        assert (packaged / name).read_bytes() == (ROOT / "configs" / name).read_bytes(), name


@pytest.mark.requires_torch
def test_demo_trains_with_the_packaged_config_by_default(tmp_path):
    from spikeprep.demo import DEMO_CONFIG_NAME, _training_config
    from vrt_train.config import load_config

    config = _training_config(None)
    assert config == Path(str(files("vrt_train") / "configs" / DEMO_CONFIG_NAME))
    cfg = load_config(config, [f"data.cache={tmp_path / 'cache'}", f"out_dir={tmp_path / 'train'}"])
    assert cfg.out_dir == str(tmp_path / "train")


def test_the_demo_checks_the_same_train_extra_as_the_trainer():
    """spikeprep.demo checks for torch without importing vrt_train: its copy of the names agrees."""
    from spikeprep import demo
    from vrt_train import requirements

    assert (demo._TRAIN_MODULES, demo._INSTALL_TRAIN) == (requirements.TRAIN_MODULES, requirements.INSTALL_TRAIN)
