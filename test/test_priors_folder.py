"""Precomputed monocular prior folders: <frame_id>.npy of relative inverse depth, resized bilinearly to the image."""

import numpy as np
import pytest

from racalnet_ros.datasets import DatasetError
from racalnet_ros.datasets.priors import load_precomputed_prior


def test_resized_bilinearly_to_image(tmp_path):
    np.save(tmp_path / "000007.npy", np.array([[0.0, 1.0], [2.0, 3.0]], np.float32))
    p = load_precomputed_prior(tmp_path, "000007", (4, 4))
    assert p.shape == (4, 4) and p.dtype == np.float32
    # pixel-centre aligned bilinear: out col 1 -> src x 0.25, so row 0 = [0, 0.25, 0.75, 1]
    np.testing.assert_allclose(p[0], [0.0, 0.25, 0.75, 1.0], atol=1e-6)
    np.testing.assert_allclose(p[:, 0], [0.0, 0.5, 1.5, 2.0], atol=1e-6)


def test_same_size_and_squeezed_channel(tmp_path):
    a = np.random.default_rng(0).random((1, 6, 8)).astype(np.float64)
    np.save(tmp_path / "x.npy", a)
    p = load_precomputed_prior(tmp_path, "x", (6, 8))
    np.testing.assert_allclose(p, a[0], rtol=1e-6)


def test_real_astyx_prior(astyx_root):
    p = load_precomputed_prior(astyx_root / "mono_fastdepth", "000000", (618, 2048))
    assert p.shape == (618, 2048) and np.isfinite(p).all()


@pytest.mark.parametrize("arr, msg", [
    (np.zeros((2, 3, 4)), "expected a 2-D"),
    (np.array([[np.nan, 1.0]]), "NaN"),
])
def test_bad_prior_names_file(tmp_path, arr, msg):
    np.save(tmp_path / "b.npy", arr)
    with pytest.raises(DatasetError, match=rf"b\.npy: .*{msg}"):
        load_precomputed_prior(tmp_path, "b", (4, 4))


def test_missing_and_corrupt(tmp_path):
    with pytest.raises(DatasetError, match=r"nope\.npy: prior file is missing"):
        load_precomputed_prior(tmp_path, "nope", (4, 4))
    (tmp_path / "c.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DatasetError, match=r"c\.npy: cannot read"):
        load_precomputed_prior(tmp_path, "c", (4, 4))
