"""Edge-aware smoothing (paper Sec. III-B 3).

Sobel gradients of the aligned depth give an edge map; a Gaussian filter is applied to the non-edge regions only.

Details of our implementation (OpenCV, vectorised):
- the edge criterion is the *relative* gradient |grad D| / D (a 1 m step at 5 m and a 10 m step at 50 m are alike;
  a plain gradient would mark every distant pixel as an edge); pixels with |grad D| / D > edge_threshold are edges;
- the edge mask is dilated by about half the Gaussian support so the filter of a pixel on one side of an edge does
  not reach the other side;
- the Gaussian runs as a normalised convolution over non-edge, valid pixels only
  (G * (D M)) / (G * M), M = non-edge mask, so edge pixels (and NaN) never leak into the average;
- edge pixels and NaN pixels keep their value.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from ..config import SmoothConfig  # noqa: F401  (defined with its descriptions and ranges in racalnet_ros/config.py)


def edge_mask(depth: np.ndarray, edge_threshold: float) -> np.ndarray:
    """H x W bool: True where the Sobel relative depth gradient exceeds the threshold (NaN pixels count as edges)."""
    valid = np.isfinite(depth) & (depth > 0)
    d = np.where(valid, depth, 0).astype(np.float32)
    # replicate valid neighbours into invalid pixels is not needed: invalid pixels are edges anyway
    gx = cv2.Sobel(d, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE)
    gy = cv2.Sobel(d, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.sqrt(gx * gx + gy * gy) / np.where(valid, d, 1.0)
    return ~valid | (rel > edge_threshold)


def smooth_edge_aware(depth: np.ndarray, config: Optional[SmoothConfig] = None) -> np.ndarray:
    """Gaussian-smooth H x W depth (metres, NaN = invalid) outside edges; returns float32, NaN preserved."""
    cfg = (config or SmoothConfig()).validate()
    depth = np.asarray(depth, np.float32)
    edges = edge_mask(depth, cfg.edge_threshold)
    radius = int(np.ceil(3.0 * cfg.sigma))
    grow = max(1, (radius + 1) // 2)
    edges_wide = cv2.dilate(edges.astype(np.uint8), np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)) > 0
    m = (~edges_wide).astype(np.float32)
    d = np.where(edges_wide, 0.0, depth).astype(np.float32)
    k = 2 * radius + 1
    num = cv2.GaussianBlur(d, (k, k), cfg.sigma, borderType=cv2.BORDER_REPLICATE)
    den = cv2.GaussianBlur(m, (k, k), cfg.sigma, borderType=cv2.BORDER_REPLICATE)
    with np.errstate(divide="ignore", invalid="ignore"):
        sm = num / den
    return np.where(edges_wide | (den < 1e-6), depth, sm).astype(np.float32)
