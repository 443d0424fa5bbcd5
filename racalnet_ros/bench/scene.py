"""The one hand-made scene of the timing benchmarks (and of the precision tests that compare devices): a ground ramp
(4-60 m), a box at 12 m, a prior that is an affine map of the true inverse depth plus pixel noise, and anchors spread
uniformly over the image of which `outlier_frac` have their depth halved or doubled."""

from __future__ import annotations

import numpy as np


def ramp_box_scene(height: int, width: int, n_anchors: int = 300, seed: int = 0, outlier_frac: float = 0.2):
    """(prior H x W float32 relative inverse depth, anchor pixels N x 2 (u, v), anchor depths N (m), true depth
    H x W float32 (m))."""
    rng = np.random.default_rng(seed)
    vv, uu = np.mgrid[0:height, 0:width].astype(np.float32)
    depth = np.clip(4.0 + 60.0 * (1.0 - vv / height) ** 2, 4.0, 60.0)
    box = (np.abs(uu - width / 2) < width / 8) & (np.abs(vv - height / 2) < height / 6)
    depth = np.where(box, 12.0, depth).astype(np.float32)
    prior = ((1.0 / depth - 0.01) / 0.5 + rng.normal(0, 0.002, depth.shape)).astype(np.float32)
    uv = np.stack([rng.uniform(0, width - 1, n_anchors), rng.uniform(0, height - 1, n_anchors)], 1)
    d = depth[np.rint(uv[:, 1]).astype(int), np.rint(uv[:, 0]).astype(int)].astype(np.float64)
    bad = rng.random(n_anchors) < outlier_frac
    d[bad] *= rng.choice([0.5, 2.0], bad.sum())
    return prior, uv, d, depth
