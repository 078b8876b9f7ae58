"""Voxel kernels vs the plain-numpy references in tests/reference.py."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikeprep import voxelize
from spikeprep.errors import UsageError, VoxelError
from spikeprep.representations.catalog import REPRESENTATIONS, make_representation
from spikeprep.voxel import bin_edges, count_ranges_kernel, ema_kernel
from tests.support.reference import bins_reference, ema_reference, spikecv_decode, temporal4_reference, tfp_reference

SETTINGS = settings(max_examples=25, deadline=None)


def random_packed(rng, n_frames, height, width, density=0.3):
    bits = rng.random((n_frames, height * width)) < density
    return np.packbits(bits, axis=1, bitorder="little")


@st.composite
def windows(draw, max_frames=40):
    """(packed, H, W, S): geometries incl. W % 8 != 0, W = 64k + 8, tiny and odd L."""
    width = draw(st.sampled_from([1, 3, 5, 8, 10, 16, 25, 64, 72, 136, 250]))
    unit = 8 // np.gcd(width, 8)  # H must make H*W a multiple of 8
    height = unit * draw(st.integers(1, max(1, 24 // unit)))
    n_frames = draw(st.integers(1, max_frames))
    n_bins = draw(st.integers(1, n_frames))
    density = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    packed = random_packed(np.random.default_rng(seed), n_frames, height, width, density)
    return packed, height, width, n_bins


@SETTINGS
@given(windows(), st.booleans())
def test_bins_match_reference(window, flipud):
    packed, height, width, n_bins = window
    voxels = voxelize(packed, height, width, n_bins, flipud=flipud)
    assert voxels.shape == (n_bins, height, width) and voxels.dtype == np.uint8
    np.testing.assert_array_equal(voxels, bins_reference(packed, height, width, n_bins, flipud))
    assert voxels.sum(dtype=np.int64) == np.unpackbits(packed).sum()  # totals preserved


@SETTINGS
@given(windows(), st.booleans())
def test_other_representations_match_reference(window, flipud):
    packed, height, width, n_bins = window
    n_frames = len(packed)
    count = voxelize(packed, height, width, 1, repr="count", flipud=flipud)
    np.testing.assert_array_equal(count, bins_reference(packed, height, width, 1, flipud))
    if n_frames >= 2:
        t4 = voxelize(packed, height, width, 4, repr="temporal4", flipud=flipud)
        assert t4.dtype == np.int16
        np.testing.assert_array_equal(t4, temporal4_reference(packed, height, width, flipud))
    for window_len in (None, 1, 7, 2 * n_frames):
        tfp = voxelize(packed, height, width, n_bins, repr="tfp", flipud=flipud, tfp_window=window_len)
        resolved = n_frames // n_bins if window_len is None else window_len
        np.testing.assert_array_equal(tfp, tfp_reference(packed, height, width, n_bins, resolved, flipud))
        rep = make_representation("tfp", n_bins, tfp_window=window_len)
        assert tfp.dtype == rep.dtype_for(n_frames)
    even = 2 * max(1, min(n_bins, n_frames) // 2)
    if n_frames >= even // 2:
        ema = voxelize(packed, height, width, even, repr="ema", flipud=flipud, tau_fast=3.0, tau_slow=30.0)
        assert ema.dtype == np.float32
        np.testing.assert_allclose(ema, ema_reference(packed, height, width, even, 3.0, 30.0, flipud),
                                   rtol=1e-6, atol=1e-6)


def test_tfp_normalizer_and_windows():
    rep = make_representation("tfp", 4, tfp_window=6)
    starts, ends = rep.windows(20)  # bins [0,5) [5,10) [10,15) [15,20); centres 2.5 .. 17.5
    assert starts.tolist() == [0, 4, 9, 14] and ends.tolist() == [5, 10, 15, 20]
    assert rep.normalizer(20).tolist() == [5.0, 6.0, 6.0, 6.0]
    assert make_representation("tfp", 4).normalizer(20).tolist() == [5.0] * 4
    packed = np.zeros((260, 1), np.uint8)  # every clipped window is 215 frames, the rule says uint16
    assert voxelize(packed, 1, 8, 2, repr="tfp", tfp_window=300).dtype == np.uint16


@pytest.mark.parametrize("n_frames, dtype", [(255, np.uint8), (256, np.uint16)])
def test_dtype_switch_at_255_all_ones(n_frames, dtype):
    packed = np.full((n_frames, 8 * 16 // 8), 0xFF, np.uint8)
    voxels = voxelize(packed, 8, 16, 1)
    assert voxels.dtype == dtype and (voxels == n_frames).all()
    two = voxelize(np.full((2 * n_frames, 16), 0xFF, np.uint8), 8, 16, 2)
    assert two.dtype == dtype and (two == n_frames).all()


def test_flipud_orientation():
    packed = np.zeros((3, 2 * 8 // 8), np.uint8)  # H=2, W=8: byte 0 is stored row 0
    packed[:, 0] = 0b00000101  # pixels 0 and 2 of stored row 0 = bottom image row
    assert voxelize(packed, 2, 8, 1)[0].tolist() == [[0] * 8, [3, 0, 3, 0, 0, 0, 0, 0]]
    assert voxelize(packed, 2, 8, 1, flipud=False)[0].tolist() == [[3, 0, 3, 0, 0, 0, 0, 0], [0] * 8]


def test_out_parameter():
    rng = np.random.default_rng(1)
    packed = random_packed(rng, 30, 4, 24)
    out = np.full((3, 4, 24), 99, np.uint16)  # wider than needed
    result = voxelize(packed, 4, 24, 3, out=out)
    assert result is out
    np.testing.assert_array_equal(out, bins_reference(packed, 4, 24, 3))
    t4 = voxelize(packed, 4, 24, 4, repr="temporal4", out=np.full((4, 4, 24), 7, np.int16))
    np.testing.assert_array_equal(t4, temporal4_reference(packed, 4, 24))
    with pytest.raises(UsageError, match="shape"):
        voxelize(packed, 4, 24, 3, out=np.zeros((2, 4, 24), np.uint8))
    with pytest.raises(UsageError, match="losslessly"):
        voxelize(np.zeros((600, 12), np.uint8), 4, 24, 2, out=np.zeros((2, 4, 24), np.uint8))
    with pytest.raises(UsageError, match="losslessly"):
        voxelize(packed, 4, 24, 3, out=np.zeros((3, 4, 24), np.float32))
    with pytest.raises(UsageError, match="losslessly"):  # temporal4 differences are signed
        voxelize(packed, 4, 24, 4, repr="temporal4", out=np.zeros((4, 4, 24), np.uint16))
    with pytest.raises(UsageError, match="float"):
        voxelize(packed, 4, 24, 2, repr="ema", out=np.zeros((2, 4, 24), np.int32))


def test_errors():
    packed = np.zeros((5, 12), np.uint8)
    with pytest.raises(VoxelError, match=r"found L=5 spike frames, expected L >= 8"):
        voxelize(packed, 4, 24, 8)
    with pytest.raises(VoxelError, match="2-D uint8"):
        voxelize(packed.astype(np.int16), 4, 24, 2)
    with pytest.raises(VoxelError, match="2-D uint8"):
        voxelize(np.zeros((5, 4, 24), bool), 4, 24, 2)
    with pytest.raises(VoxelError, match="bytes per frame"):
        voxelize(packed, 4, 16, 2)
    with pytest.raises(VoxelError, match="whole bytes"):
        voxelize(np.zeros((5, 1), np.uint8), 3, 3, 2)
    with pytest.raises(UsageError, match="1 channel"):
        voxelize(packed, 4, 24, 3, repr="count")
    with pytest.raises(UsageError, match="4 channels"):
        voxelize(packed, 4, 24, 8, repr="temporal4")
    with pytest.raises(UsageError, match="even"):
        voxelize(packed, 4, 24, 3, repr="ema")
    with pytest.raises(UsageError, match="unknown parameter"):
        voxelize(packed, 4, 24, 2, tau_fast=3.0)
    with pytest.raises(UsageError, match="unknown voxel representation"):
        voxelize(packed, 4, 24, 2, repr="voxels")
    with pytest.raises(UsageError, match="tau_slow"):
        make_representation("ema", 2, tau_slow=0)


def test_registry_and_manifest_records():
    assert set(REPRESENTATIONS) == {"bins", "count", "temporal4", "ema", "tfp", "svrt-tfp", "raw", "tfi",
                                    "tfp-ls", "svrt-encoding25"}
    rep = make_representation("ema", 6, tau_fast=5)
    assert rep.to_dict() == {"repr": "ema", "S": 6, "tau_fast": 5.0, "tau_slow": 250.0}
    assert rep.channels == 6 and rep.dtype_for(10**6) == np.float32
    bins = make_representation("bins", 8)
    assert bins.to_dict() == {"repr": "bins", "S": 8} and bins.channels == 8
    assert bins.dtype_for(2040) == np.uint8 and bins.dtype_for(2041) == np.uint16
    assert make_representation("count", 1).dtype_for(70000) == np.uint32
    assert make_representation("temporal4", 4).channels == 4
    with pytest.raises(VoxelError, match="int16"):
        make_representation("temporal4", 4).dtype_for(40000)
    with pytest.raises(Exception):
        bins.S = 3  # frozen


def test_py_func_matches_jit():
    rng = np.random.default_rng(2)
    height, width, n_frames = 4, 10, 9  # W % 8 != 0 and a partial tail word
    packed = random_packed(rng, n_frames, height, width)
    flat = packed.reshape(-1)
    edges = bin_edges(n_frames, 3)
    jit_out = count_ranges_kernel(flat, 5, edges[:-1], edges[1:], height, width, True,
                                  np.zeros((3, height, width), np.uint8))
    py_out = count_ranges_kernel.py_func(flat, 5, edges[:-1], edges[1:], height, width, True,
                                         np.zeros((3, height, width), np.uint8))
    np.testing.assert_array_equal(jit_out, py_out)
    args = (flat, 5, np.array([3, 9]), np.exp(-1 / np.array([2.0, 5.0])), height, width, True)
    np.testing.assert_array_equal(ema_kernel(*args, np.zeros((4, height, width), np.float32)),
                                  ema_kernel.py_func(*args, np.zeros((4, height, width), np.float32)))


def test_disable_jit_switch_runs_plain_python(tmp_path):
    code = ("import sys, numpy as np, spikeprep.voxel as v; assert v.JIT_DISABLED; "
            "assert not hasattr(v.count_ranges_kernel, 'signatures'); "
            "p = np.arange(5 * 5, dtype=np.uint8).reshape(5, 5); "
            "np.savez(sys.argv[1], bins=v.voxelize(p, 5, 8, 2), ema=v.voxelize(p, 5, 8, 2, repr='ema'))")
    env = dict(os.environ, SPIKEPREP_DISABLE_JIT="1")
    saved = tmp_path / "nojit.npz"
    done = subprocess.run([sys.executable, "-c", code, str(saved)], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    packed = np.arange(25, dtype=np.uint8).reshape(5, 5)
    with np.load(saved) as plain:
        np.testing.assert_array_equal(plain["bins"], voxelize(packed, 5, 8, 2))
        np.testing.assert_array_equal(plain["ema"], voxelize(packed, 5, 8, 2, repr="ema"))


def test_real_data_matches_spikecv_decode(shared_data):
    height, width, begin, end = 250, 400, 131, 171
    raw = np.fromfile(shared_data / "spike-reds" / "spike" / "200_part1_key_id151.dat", np.uint8)
    packed = raw.reshape(-1, height * width // 8)[begin:end]
    voxels = voxelize(packed, height, width, 8)
    expected = spikecv_decode(raw, height, width, begin, end - begin).sum(0)
    np.testing.assert_array_equal(voxels.sum(0, dtype=np.int64), expected)
    np.testing.assert_array_equal(voxels, bins_reference(packed, height, width, 8))


def test_normalizers_by_hand():
    from spikeprep.representations.catalog import make_representation

    assert make_representation("bins", 4).normalizer(10).tolist() == [2, 3, 2, 3]   # edges 0,2,5,7,10
    assert make_representation("count", 1).normalizer(7).tolist() == [7]
    assert make_representation("temporal4", 4).normalizer(7).tolist() == [3, 4, 4, 7]
    assert make_representation("tfp", 2, tfp_window=4).normalizer(10).tolist() == [4, 4]
    assert not hasattr(make_representation("ema", 4), "normalizer")


def test_representation_round_trips_through_its_manifest_record():
    from spikeprep.representations.catalog import make_representation, params_of

    for rep in (make_representation("bins", 8), make_representation("tfp", 4, tfp_window=6),
                make_representation("ema", 4, tau_fast=10.0, tau_slow=100.0)):
        record = rep.to_dict()
        assert make_representation(record["repr"], record["S"], **params_of(record)) == rep
        assert set(params_of(record)) == set(record) - {"repr", "S"}
