"""``voxelize --add-repr`` on a registered rig: the added representation goes through the same warp
(onto the crop's grid, float32) as one built with the cache, and raw windows are refused with
``--match rgb``."""

from __future__ import annotations

import numpy as np
import pytest

import spikeprep
from spikeprep.errors import UsageError
from spikeprep.registration.geometry import overlap_box, similarity
from spikeprep.registration.record import Registration
from spikeprep.registration.rig import Rig, write_rig

RGB, SPIKE = (120, 160), (64, 100)


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    from spikeprep.inputs.yaml_edit import set_keys
    root = tmp_path_factory.mktemp("rig") / "data"
    matrix = similarity(1.25, 2.0, 15.0, 20.0)
    write_rig(root, "seq", Rig(tuple(map(tuple, matrix)), rgb_size=RGB, spike_size=SPIKE, frames=3))
    reg = Registration("homography", tuple(map(tuple, matrix.tolist())), overlap_box(matrix, SPIKE, RGB), SPIKE, RGB)
    path = root / "spike" / "seq" / "config.yaml"
    path.write_text(set_keys(path.read_text(), {"registration": reg.to_dict()}))
    spikeprep.build_sync(root, force=True)
    return root


def test_added_representation_equals_one_built_with_the_cache(rig, tmp_path):
    spikeprep.voxelize_dataset(rig, tmp_path / "both", repr=["bins:4", "count"], progress=False)
    spikeprep.voxelize_dataset(rig, tmp_path / "added", S=4, progress=False)
    _add(rig, tmp_path / "added", "count")
    both, added = spikeprep.open_cache(tmp_path / "both"), spikeprep.open_cache(tmp_path / "added")
    spec = added.params.representation_named("count")
    assert spec.spike_dtype == "float32" and spec.spike_shape[1:] == tuple(added.params.registration.crop)
    for i in range(3):
        np.testing.assert_array_equal(added.read("seq", i).spikes["count"], both.read("seq", i).spikes["count"])
    assert spikeprep.verify_cache(tmp_path / "added", data_root=rig).ok


def test_raw_windows_are_refused_with_match_rgb(rig, tmp_path):
    spikeprep.voxelize_dataset(rig, tmp_path / "c", S=4, progress=False)
    with pytest.raises(UsageError, match="never resampled"):
        _add(rig, tmp_path / "c", "raw")


def _add(root, cache, name):
    from spikeprep.cache.add_repr import add_representation
    return add_representation(root, cache, name, progress=False)
