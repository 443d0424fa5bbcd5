"""Simulated monocular prior: what a relative-depth network (Depth Anything V2, FastDepth) would output.

Model (per frame, parameters drawn from the frame's seed; see docs/synthetic.md):
    q      = 1 / depth_gt                       true inverse depth (1/m); sky: 1 / prior_sky_depth_m (small, not 0)
    q_b    = GaussianBlur(q, prior_blur_px)      blurred edges (networks smear depth discontinuities)
    q_g    = q_b ** gamma                        mild non-affine response, gamma ~ U(prior_gamma)
    q_l    = q_g * (1 + a * L(u, v))             smooth low-frequency distortion: L is a 3 x 4 grid of U(-1, 1)
                                                 upsampled bicubically to H x W, a ~ U(prior_lowfreq_amp)
    prior  = s * (q_l + b * mean(q)) + noise     unknown affine map: scale s log-uniform in prior_scale, shift
                                                 b ~ U(prior_shift) (relative to the mean inverse depth),
                                                 Gaussian noise with std prior_noise * s * mean(q)
The result is float32, finite, larger = nearer. A global affine fit of the prior against 1 / depth_gt explains most
of it (that is what the metric-depth alignment exploits) but not all of it (blur, gamma, low-frequency term, noise).
"""

from __future__ import annotations

import cv2
import numpy as np

from .config import SynthConfig


def simulate_prior(depth_gt: np.ndarray, cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """H x W float32 relative inverse depth from dense depth (metres, 0 = sky)."""
    H, W = depth_gt.shape
    q = np.where(depth_gt > 0, 1.0 / np.maximum(depth_gt, 1e-3), 1.0 / cfg.prior_sky_depth_m).astype(np.float32)
    if cfg.prior_blur_px > 0:
        q = cv2.GaussianBlur(q, (0, 0), cfg.prior_blur_px)
    q = q ** np.float32(rng.uniform(*cfg.prior_gamma))
    amp = rng.uniform(*cfg.prior_lowfreq_amp)
    grid = rng.uniform(-1.0, 1.0, (3, 4)).astype(np.float32)
    low = cv2.resize(grid, (W, H), interpolation=cv2.INTER_CUBIC)
    q = q * (1.0 + np.float32(amp) * low)
    lo, hi = cfg.prior_scale
    s = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
    mean_q = float(q.mean())
    b = rng.uniform(*cfg.prior_shift) * mean_q
    noise = rng.normal(0.0, cfg.prior_noise * mean_q, q.shape).astype(np.float32)
    return (s * (q + np.float32(b) + noise)).astype(np.float32)
