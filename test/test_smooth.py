"""Edge-aware smoothing: a Gaussian flattens noise on surfaces but leaves depth discontinuities sharp."""

import numpy as np

from racalnet_ros.metric_depth.smooth import SmoothConfig, edge_mask, smooth_edge_aware

H, W = 100, 120


def noisy_step(seed=0):
    rng = np.random.default_rng(seed)
    clean = np.where(np.arange(W)[None, :] < W // 2, 5.0, 20.0).repeat(H, 0).astype(np.float32)
    return clean, (clean * rng.normal(1.0, 0.01, clean.shape)).astype(np.float32)


def test_smoothing_flattens_noise_away_from_edges():
    clean, noisy = noisy_step()
    out = smooth_edge_aware(noisy, SmoothConfig(sigma=1.5))
    interior = np.zeros_like(clean, bool)
    interior[10:-10, 10:W // 2 - 10] = True
    interior[10:-10, W // 2 + 10:-10] = True
    before = np.std((noisy - clean)[interior] / clean[interior])
    after = np.std((out - clean)[interior] / clean[interior])
    assert after < 0.35 * before, (before, after)


def test_smoothing_keeps_a_step_edge_sharp():
    clean, noisy = noisy_step()
    out = smooth_edge_aware(noisy, SmoothConfig(sigma=1.5))
    # the step is still a one-pixel jump of (almost) the full height, and nothing between the two levels appears
    jump = out[:, W // 2] - out[:, W // 2 - 1]
    assert np.all(jump > 13.5)
    assert not np.any((out > 6.0) & (out < 19.0))
    # a plain Gaussian would have blurred it
    import cv2
    blurred = cv2.GaussianBlur(noisy, (9, 9), 1.5)
    assert np.any((blurred > 6.0) & (blurred < 19.0))


def test_edges_are_found_by_relative_gradient_and_nan_is_preserved():
    clean, noisy = noisy_step()
    m = edge_mask(clean, 0.1)
    assert m[:, W // 2 - 1:W // 2 + 1].all() and not m[:, :W // 2 - 2].any()
    noisy[40:45, 20:25] = np.nan
    out = smooth_edge_aware(noisy)
    assert np.isnan(out[40:45, 20:25]).all() and np.isfinite(out).sum() == out.size - 25
