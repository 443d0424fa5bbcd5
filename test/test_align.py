"""Global affine alignment (paper Eq. 11-12): recovers a known scale and shift, resists outliers, and its guards
fire with a flag instead of producing garbage."""

import numpy as np
import pytest

from racalnet_ros.metric_depth.align import AlignConfig, align_global, apply_affine
from racalnet_ros.metric_depth.aligner import Aligner

H, W = 120, 160
SCALE, SHIFT = 0.5, 0.02  # metric inverse depth = SCALE * prior + SHIFT


def scene(n=200, seed=0):
    """A prior whose true metric depth (3-60 m) is known, and n anchors sampled on it."""
    rng = np.random.default_rng(seed)
    vv, uu = np.mgrid[0:H, 0:W]
    depth = (3.0 + 57.0 * (1 - vv / H) ** 2 + 2.0 * np.sin(uu / 15.0)).astype(np.float32)
    prior = ((1.0 / depth - SHIFT) / SCALE).astype(np.float32)
    uv = np.stack([rng.integers(0, W, n), rng.integers(0, H, n)], 1).astype(np.float32)
    d = depth[uv[:, 1].astype(int), uv[:, 0].astype(int)]
    return prior, depth, uv, d.astype(np.float64), rng


def test_recovers_known_scale_and_shift_exactly_on_noiseless_anchors():
    prior, depth, uv, d, _ = scene()
    fit = align_global(prior, uv, d, AlignConfig(regularization=0.0))
    assert fit.ok and fit.fallbacks == []
    assert fit.scale == pytest.approx(SCALE, rel=1e-6)
    assert fit.shift == pytest.approx(SHIFT, rel=1e-6)
    out = apply_affine(prior, fit.scale, fit.shift, 1.0, 100.0)
    np.testing.assert_allclose(out, depth, rtol=1e-5)
    # the default (tiny) regularisation stays within its documented bias
    fit = align_global(prior, uv, d)
    assert fit.scale == pytest.approx(SCALE, rel=1e-4) and fit.shift == pytest.approx(SHIFT, rel=1e-4)


def test_threshold_search_is_robust_to_30_percent_outliers():
    prior, depth, uv, d, rng = scene(n=300, seed=1)
    d = d * rng.normal(1.0, 0.01, len(d))  # 1% range noise on the inliers
    out = rng.random(len(d)) < 0.3
    factor = np.where(rng.random(out.sum()) < 0.5, rng.uniform(0.3, 0.6, out.sum()), rng.uniform(1.6, 3.0, out.sum()))
    d[out] *= factor  # gross errors: ghosts, clutter, points on the wrong pixel
    plain = align_global(prior, uv, d, AlignConfig(threshold_search=False))
    fit = align_global(prior, uv, d)
    assert abs(fit.scale / SCALE - 1) < 0.02 and abs(fit.shift - SHIFT) < 0.002
    assert abs(plain.scale / SCALE - 1) > 5 * abs(fit.scale / SCALE - 1)  # plain least squares is pulled away
    assert np.isfinite(fit.threshold)
    # the anchors used are mostly the inliers
    assert (fit.inliers & out).sum() < 0.05 * out.sum()
    assert (fit.inliers & ~out).sum() > 0.8 * (~out).sum()


def test_no_anchors_gives_no_fit_then_previous_fit():
    prior, *_ = scene()
    empty = np.zeros((0, 2)), np.zeros(0)
    fit = align_global(prior, *empty)
    assert not fit.ok and "no_anchors" in fit.fallbacks
    fit = align_global(prior, *empty, previous=(0.4, 0.01))
    assert fit.ok and (fit.scale, fit.shift) == (0.4, 0.01) and "previous_fit" in fit.fallbacks
    # the Aligner outputs NaN depth (never a fake constant) when there is nothing to fit
    out = Aligner().run(prior, *empty)
    assert np.isnan(out.depth).all() and "no_fit" in out.fallbacks


def test_one_anchor_falls_back_to_scale_only():
    prior, depth, uv, d, _ = scene()
    fit = align_global(prior, uv[:1], d[:1])
    assert fit.ok and fit.shift == 0.0 and {"too_few_anchors", "scale_only"} <= set(fit.fallbacks)
    x = prior[int(uv[0, 1]), int(uv[0, 0])]
    assert fit.scale == pytest.approx(1.0 / d[0] / x, rel=1e-6)  # that anchor is matched exactly


def test_degenerate_anchors_fall_back_to_scale_only():
    prior, depth, uv, d, _ = scene()
    same = np.repeat(uv[:1], 10, axis=0)  # ten anchors on one pixel: scale and shift are not separable
    fit = align_global(prior, same, np.full(10, d[0]))
    assert fit.ok and "singular" in fit.fallbacks and "scale_only" in fit.fallbacks
    # anchors outside the depth range or the image are ignored, not used
    fit = align_global(prior, np.array([[-5.0, 3.0], [1e6, 1.0]]), np.array([10.0, 10.0]))
    assert not fit.ok and "no_anchors" in fit.fallbacks


def test_nonpositive_scale_is_refused():
    prior, depth, uv, d, _ = scene()
    x = prior[uv[:, 1].astype(int), uv[:, 0].astype(int)]
    d_inverted = 1.0 / (0.2 - 0.3 * x + 0.5)  # depth ordering reversed with respect to the prior
    d_inverted = np.clip(d_inverted, 1.5, 90)
    fit = align_global(prior, uv, d_inverted, AlignConfig(threshold_search=False))
    assert "nonpositive_scale" in fit.fallbacks
    assert not fit.ok or fit.scale > 0


def test_search_finds_the_positive_fit_when_outliers_invert_the_plain_fit():
    """40% outliers with the depth ordering reversed (far where the prior is nearest, near where it is farthest)
    make plain least squares on all anchors come out with s <= 0; the threshold search still recovers the
    inliers' affine map instead of falling back."""
    prior, depth, uv, d, rng = scene(n=300, seed=2)
    x = prior[uv[:, 1].astype(int), uv[:, 0].astype(int)]
    lo, hi = np.quantile(x, [0.2, 0.8])
    d = np.where(x >= hi, 80.0, np.where(x <= lo, 2.5, d)) * rng.uniform(0.95, 1.05, len(d))
    plain = align_global(prior, uv, d, AlignConfig(threshold_search=False))
    assert "nonpositive_scale" in plain.fallbacks  # the premise: plain least squares inverts the ordering
    fit = align_global(prior, uv, d)
    assert fit.ok and fit.fallbacks == []
    assert fit.scale == pytest.approx(SCALE, rel=0.02) and fit.shift == pytest.approx(SHIFT, abs=0.002)


def test_aligned_depth_is_clamped_to_the_configured_range():
    prior, depth, uv, d, _ = scene()
    out = apply_affine(prior, SCALE, SHIFT, 5.0, 40.0)
    assert np.nanmin(out) >= 5.0 - 1e-4 and np.nanmax(out) <= 40.0 + 1e-3
    far = apply_affine(np.full((2, 2), -10.0, np.float32), SCALE, SHIFT, 1.0, 80.0)  # beyond infinity
    np.testing.assert_allclose(far, 80.0, rtol=1e-5)


def test_unit_weights_reproduce_the_unweighted_fit_and_a_zero_weight_removes_the_anchor():
    prior, depth, uv, d, rng = scene(n=300, seed=1)
    out = rng.random(len(d)) < 0.3
    d[out] *= rng.uniform(1.6, 3.0, out.sum())
    plain = align_global(prior, uv, d)
    ones = align_global(prior, uv, d, weights=np.ones(len(d)))
    assert (ones.scale, ones.shift, ones.threshold, ones.error) == (plain.scale, plain.shift, plain.threshold, plain.error)
    assert np.array_equal(ones.inliers, plain.inliers) and ones.fallbacks == plain.fallbacks
    # Eq. 11's regulariser scales with the total weight, so only relative weights matter
    tripled = align_global(prior, uv, d, weights=np.full(len(d), 3.0))
    assert tripled.scale == pytest.approx(plain.scale, rel=1e-12) and tripled.threshold == plain.threshold
    w = np.ones(len(d))
    w[:40] = 0.0
    weighted = align_global(prior, uv, d, weights=w)
    dropped = align_global(prior, uv[40:], d[40:])
    assert weighted.scale == pytest.approx(dropped.scale, rel=1e-12)
    assert weighted.shift == pytest.approx(dropped.shift, rel=1e-12, abs=1e-15)
    assert not weighted.inliers[:40].any() and np.array_equal(weighted.inliers[40:], dropped.inliers)
    assert weighted.n_valid == dropped.n_valid < plain.n_valid
    # the scale-only fallback uses the weighted median: ones = numpy's median, zero weights drop anchors
    few = align_global(prior, uv[:4], d[:4], weights=np.ones(4))
    assert "scale_only" in few.fallbacks and few.scale == align_global(prior, uv[:4], d[:4]).scale
    assert align_global(prior, uv[:4], d[:4], weights=[0, 1, 1, 1]).scale == align_global(prior, uv[1:4], d[1:4]).scale
    with pytest.raises(ValueError, match="weights"):
        align_global(prior, uv, d, weights=-w)


def test_aligner_takes_numpy_or_torch_inputs_and_returns_the_same_depth():
    import torch

    prior, depth, uv, d, _ = scene(n=200, seed=4)
    a = Aligner().run(prior, uv, d)
    b = Aligner().run(torch.from_numpy(prior), torch.from_numpy(uv), torch.from_numpy(d))
    assert isinstance(b.depth, np.ndarray) and b.depth.dtype == np.float32
    np.testing.assert_array_equal(a.depth, b.depth)
    assert (a.fit.scale, a.fit.shift) == (b.fit.scale, b.fit.shift)
    w = Aligner().run(prior, uv, d, weights=np.ones(len(d)))
    np.testing.assert_array_equal(a.depth, w.depth)
