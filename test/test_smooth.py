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


def test_correlate_matches_a_replicate_padded_convolution_for_any_length_and_taps():
    """smooth.correlate (shifted slices + border matrices, no padded copy) equals torch's conv1d on a
    replicate-padded signal, for asymmetric taps, both axes, and axes shorter than the kernel."""
    import torch
    import torch.nn.functional as F

    from racalnet_ros.metric_depth.smooth import correlate, gaussian_taps

    g = torch.Generator().manual_seed(0)
    for taps in ((-1.0, 0.0, 1.0), (0.1, 0.5, -0.3, 0.7, 0.2), gaussian_taps(1.5)):
        r = len(taps) // 2
        k = torch.tensor(taps, dtype=torch.float64).view(1, 1, -1)
        for n in (1, 3, 2 * r + 1, 4 * r + 3, 37):
            x = torch.rand(2, 5, n, generator=g, dtype=torch.float64)
            ref = F.conv1d(F.pad(x.reshape(-1, 1, n), (r, r), mode="replicate"), k).reshape(2, 5, n)
            torch.testing.assert_close(correlate(x, taps, -1), ref)
            torch.testing.assert_close(correlate(x.transpose(-1, -2).contiguous(), taps, -2),
                                       ref.transpose(-1, -2))


def test_running_max_is_a_square_dilation_with_an_ignored_border():
    import cv2
    import torch

    from racalnet_ros.metric_depth.smooth import _running_max

    rng = np.random.default_rng(1)
    for h, w in ((50, 61), (7, 5), (3, 40)):
        m = (rng.random((h, w)) > 0.93).astype(np.uint8)
        ours = _running_max(_running_max(torch.from_numpy(m.astype(np.float32)), 3, -1), 3, -2).numpy() > 0.5
        np.testing.assert_array_equal(ours, cv2.dilate(m, np.ones((7, 7), np.uint8)) > 0)
