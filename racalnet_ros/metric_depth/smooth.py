"""Edge-aware smoothing (paper Sec. III-B 3).

Sobel gradients of the aligned depth give an edge map; a Gaussian filter is applied to the non-edge regions only.

Details of our implementation (torch on the depth's device, the same operations as OpenCV's Sobel, dilate and
GaussianBlur with BORDER_REPLICATE, which this module used before: written as shifted-slice sums so the map never
leaves the device, and because on CPU a few slice additions are several times faster than torch's conv2d for a
single-channel 3- or 11-tap kernel):
- the edge criterion is the *relative* gradient |grad D| / D (a 1 m step at 5 m and a 10 m step at 50 m are alike;
  a plain gradient would mark every distant pixel as an edge); pixels with |grad D| / D > edge_threshold are edges;
- the edge mask is dilated by about half the Gaussian support so the filter of a pixel on one side of an edge does
  not reach the other side;
- the Gaussian runs as a normalised convolution over non-edge, valid pixels only
  (G * (D M)) / (G * M), M = non-edge mask, so edge pixels (and NaN) never leak into the average;
- edge pixels and NaN pixels keep their value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import functools
import math

import numpy as np
import torch

from .tensors import as_tensor


@dataclass
class SmoothConfig:
    """enabled: stage on/off. sigma: Gaussian sigma in pixels. edge_threshold: relative gradient |grad D| / D (per
    pixel, from a 3x3 Sobel, i.e. about 8x a per-pixel relative difference: 0.5 ~ a 6% jump between neighbours) above
    which a pixel is an edge."""

    enabled: bool = True
    sigma: float = 1.5
    edge_threshold: float = 0.5

    def validate(self) -> "SmoothConfig":
        if not self.sigma > 0:
            raise ValueError(f"smooth.sigma: must be > 0, got {self.sigma}")
        if not self.edge_threshold > 0:
            raise ValueError(f"smooth.edge_threshold: must be > 0, got {self.edge_threshold}")
        return self


@functools.lru_cache(maxsize=32)
def _replicate_index(n: int, r: int, device: torch.device) -> torch.Tensor:
    """Indices -r .. n-1+r clamped into 0 .. n-1: gathering with them pads by r with the edge value
    (BORDER_REPLICATE)."""
    return torch.arange(-r, n + r, device=device).clamp_(0, n - 1)


def _pad(x: torch.Tensor, r: int, dim: int, value: Optional[float] = None) -> torch.Tensor:
    """x padded by r on both sides of dim (-1 or -2): the border value replicated (BORDER_REPLICATE), or `value`."""
    n = x.shape[dim]
    if value is None:
        lo, hi = x.narrow(dim, 0, 1), x.narrow(dim, n - 1, 1)
        size = list(x.shape)
        size[dim] = r
        return torch.cat([lo.expand(size), x, hi.expand(size)], dim)
    size = list(x.shape)
    size[dim] = r
    fill = x.new_full(size, value)
    return torch.cat([fill, x, fill], dim)


@functools.lru_cache(maxsize=8)
def gaussian_taps(sigma: float) -> tuple[float, ...]:
    """The normalised 1-D Gaussian of OpenCV's GaussianBlur for this sigma: 2 ceil(3 sigma) + 1 taps."""
    r = int(math.ceil(3.0 * sigma))
    k = [math.exp(-(i - r) ** 2 / (2.0 * sigma * sigma)) for i in range(2 * r + 1)]
    return tuple(v / sum(k) for v in k)


def _filter(x: torch.Tensor, taps: tuple[float, ...], dim: int) -> torch.Tensor:
    """Correlate x with the 1-D taps along dim (-1 columns, -2 rows), replicated border."""
    r = len(taps) // 2
    p = _pad(x, r, dim)
    n = x.shape[dim]
    out = p.narrow(dim, 0, n) * taps[0]
    for i in range(1, len(taps)):
        out.add_(p.narrow(dim, i, n), alpha=taps[i])
    return out


def _running_max(x: torch.Tensor, g: int, dim: int) -> torch.Tensor:
    """Maximum over the window [i - g, i + g] along dim (outside the map counts as 0), by doubling windows:
    log2(2g + 1) + 1 maxima instead of 2g."""
    n, size = x.shape[dim], 2 * g + 1
    cur, width = _pad(x, g, dim, 0.0), 1  # window [i, i + width) over the padded axis
    while 2 * width <= size:
        m = cur.shape[dim]
        cur, width = torch.maximum(cur.narrow(dim, 0, m - width), cur.narrow(dim, width, m - width)), 2 * width
    if width < size:  # two overlapping windows of `width` cover `size`
        m = cur.shape[dim]
        cur = torch.maximum(cur.narrow(dim, 0, m - (size - width)), cur.narrow(dim, size - width, m - (size - width)))
    return cur.narrow(dim, 0, n)


def _valid(depth: torch.Tensor) -> torch.Tensor:
    """1.0 where the depth is positive (and not NaN), else 0.0, float arithmetic only (on CPU, torch's boolean
    maps and torch.where are 5-20x slower than float ops of the same size)."""
    return torch.nan_to_num(torch.sign(depth).clamp_(min=0.0), nan=0.0)


def _edges(d: torch.Tensor, valid: torch.Tensor, edge_threshold: float) -> torch.Tensor:
    """1.0 where |grad D|^2 > (threshold D)^2 (3 x 3 Sobel of d = the depth with 0 at invalid pixels) or the
    pixel is invalid, else 0.0. In float16 a gradient above 256 overflows to inf, which is an edge, as it must
    be for any threshold below 2.56 at 100 m."""
    p = _pad(_pad(d, 1, -1), 1, -2)  # (H + 2) x (W + 2)
    dx = p[:, 2:] - p[:, :-2]  # (H + 2) x W: central difference along u
    gx = torch.add(dx[:-2], dx[2:]).add_(dx[1:-1], alpha=2.0)  # smoothed [1, 2, 1] along v
    dy = p[2:] - p[:-2]
    gy = torch.add(dy[:, :-2], dy[:, 2:]).add_(dy[:, 1:-1], alpha=2.0)
    g2 = torch.addcmul(gx * gx, gy, gy)
    t = d * edge_threshold
    flat = torch.ge(t * t, g2, out=torch.empty_like(d))  # 1 where not an edge (a float out: fast, see _valid)
    return 1.0 - flat * valid


def edge_map(depth: torch.Tensor, edge_threshold: float) -> torch.Tensor:
    """H x W bool tensor: True where the 3 x 3 Sobel relative depth gradient |grad D| / D exceeds the threshold
    (NaN / non-positive pixels count as edges)."""
    valid = _valid(depth)
    return _edges(torch.nan_to_num(depth, nan=0.0) * valid, valid, edge_threshold) > 0.5


def smooth_depth(depth: torch.Tensor, cfg: SmoothConfig) -> torch.Tensor:
    """Edge-aware smoothing of an H x W depth tensor (metres, NaN = invalid) in its dtype on its device: a Gaussian
    as a normalised convolution over non-edge pixels, edges (dilated by half the Gaussian support) and NaN kept."""
    taps = gaussian_taps(float(cfg.sigma))
    radius = len(taps) // 2
    valid = _valid(depth)
    d = torch.nan_to_num(depth, nan=0.0) * valid
    wide = _running_max(_running_max(_edges(d, valid, cfg.edge_threshold), max(1, (radius + 1) // 2), -1),
                        max(1, (radius + 1) // 2), -2)
    keep = 1.0 - wide  # the mask M of the normalised convolution
    num, den = _filter(_filter(torch.stack([d * keep, keep]), taps, -1), taps, -2).unbind(0)
    use = keep * torch.ge(den, 1e-6, out=torch.empty_like(den))  # 1: smoothed value; 0 (edge, NaN, empty window): the input
    return torch.lerp(depth, num / den.clamp(min=1e-6), use)  # depth + use (smoothed - depth); NaN stays NaN


def edge_mask(depth, edge_threshold: float):
    """H x W bool: True where the Sobel relative depth gradient exceeds the threshold (NaN pixels count as edges).
    numpy in -> numpy out; a tensor in -> a tensor."""
    if isinstance(depth, torch.Tensor):
        return edge_map(depth, edge_threshold)
    return edge_map(as_tensor(np.asarray(depth, np.float32)), edge_threshold).numpy()


def smooth_edge_aware(depth, config: Optional[SmoothConfig] = None):
    """Gaussian-smooth H x W depth (metres, NaN = invalid) outside edges; NaN preserved. numpy in -> float32 numpy
    out; a tensor in -> a tensor of its dtype on its device."""
    cfg = (config or SmoothConfig()).validate()
    if isinstance(depth, torch.Tensor):
        return smooth_depth(depth if depth.is_floating_point() else depth.float(), cfg)
    return smooth_depth(as_tensor(np.asarray(depth, np.float32)), cfg).numpy()
