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

import functools
import math
from typing import Optional

import numpy as np
import torch

from ..config import SmoothConfig  # noqa: F401  (defined with its descriptions and ranges in racalnet_ros/config.py)
from .tensors import as_tensor



@functools.lru_cache(maxsize=8)
def gaussian_taps(sigma: float) -> tuple[float, ...]:
    """The normalised 1-D Gaussian of OpenCV's GaussianBlur for this sigma: 2 ceil(3 sigma) + 1 taps."""
    r = int(math.ceil(3.0 * sigma))
    k = [math.exp(-(i - r) ** 2 / (2.0 * sigma * sigma)) for i in range(2 * r + 1)]
    return tuple(v / sum(k) for v in k)


@functools.lru_cache(maxsize=64)
def _replicate_matrix(n: int, taps: tuple[float, ...], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """n x n matrix M with (x @ M)[j] = sum_i taps[i] x[clamp(j + i - r, 0, n - 1)]: the 1-D correlation with a
    replicated border, as a matrix (used for the border outputs, or for a whole short axis). Built with one
    index_put_ (a Python loop here would be traced op by op under torch.compile)."""
    r = len(taps) // 2
    src = [min(max(j + i - r, 0), n - 1) for j in range(n) for i in range(len(taps))]
    dst = [j for j in range(n) for _ in taps]
    m = torch.zeros(n, n, dtype=torch.float64, device=device)
    m.index_put_((torch.tensor(src, device=device), torch.tensor(dst, device=device)),
                 torch.tensor(list(taps) * n, dtype=torch.float64, device=device), accumulate=True)
    return m.to(dtype)


def correlate(x: torch.Tensor, taps: tuple[float, ...], dim: int) -> torch.Tensor:
    """Correlate x with the 1-D taps along dim (-1: along rows, u; -2: along columns, v) with a replicated border
    (OpenCV's BORDER_REPLICATE). Interior outputs are a sum of shifted slices (no padded copy; zero taps skipped);
    the r outputs at each end come from a small matrix product. Along rows the shifts run over the flattened map
    (contiguous, so vectorised): an interior output never reaches past its row, and the border outputs, which
    would, are overwritten."""
    r = len(taps) // 2
    n = x.shape[dim]
    if n <= 4 * r + 2:  # short axis: the whole correlation as one matrix
        m = _replicate_matrix(n, taps, x.device, x.dtype)
        return x @ m if dim == -1 else (x.transpose(-1, -2) @ m).transpose(-1, -2).contiguous()
    x = x.contiguous()
    out = torch.empty_like(x)
    if dim == -1:
        src, dst, span = x.reshape(-1), out.reshape(-1), x.numel() - 2 * r
        inner = dst.narrow(0, r, span)
    else:
        src, dst, span = x, out, n - 2 * r
        inner = dst.narrow(dim, r, span)
    axis = 0 if dim == -1 else dim
    first = True
    for i, t in enumerate(taps):
        if t == 0.0:
            continue
        if first:
            if torch.compiler.is_compiling():  # dynamo refuses a non-contiguous out=; eager saves a pass with it
                inner.copy_(src.narrow(axis, i, span)).mul_(t)
            else:
                torch.mul(src.narrow(axis, i, span), t, out=inner)
            first = False
        else:
            inner.add_(src.narrow(axis, i, span), alpha=t)
    m = _replicate_matrix(3 * r + 1, taps, x.device, x.dtype)
    lo, hi = m[:, :r], m[:, -r:]  # the first / last r outputs of a (3r + 1)-long axis: the borders' outputs
    head, tail = x.narrow(dim, 0, 3 * r + 1), x.narrow(dim, n - 3 * r - 1, 3 * r + 1)
    if dim == -1:
        out.narrow(dim, 0, r).copy_(head @ lo)
        out.narrow(dim, n - r, r).copy_(tail @ hi)
    else:
        out.narrow(dim, 0, r).copy_(lo.T @ head)
        out.narrow(dim, n - r, r).copy_(hi.T @ tail)
    return out


def _running_max(x: torch.Tensor, g: int, dim: int) -> torch.Tensor:
    """Maximum over the window [i - g, i + g] along dim (outside the map ignored, as cv2.dilate's default
    border): 2g maxima of shifted views written into one copy of x (along rows over the flattened map, like
    `correlate`, with the g border columns on each side recomputed within their row)."""
    n = x.shape[dim]
    g = min(g, n - 1)
    x = x.contiguous()
    out = x.clone()
    flat = dim == -1 and n > 3 * g + 1
    src, dst, axis = (x.reshape(-1), out.reshape(-1), 0) if flat else (x, out, dim)
    m = src.shape[axis]
    for i in range(1, g + 1):
        a, b = dst.narrow(axis, i, m - i), dst.narrow(axis, 0, m - i)
        a.clamp_(min=src.narrow(axis, 0, m - i))  # in-place maximum
        b.clamp_(min=src.narrow(axis, i, m - i))
    if flat:  # the first / last g columns of every row took values of the neighbouring row: redo them in-row
        out.narrow(dim, 0, g).copy_(_running_max(x.narrow(dim, 0, 2 * g + 1), g, dim).narrow(dim, 0, g))
        out.narrow(dim, n - g, g).copy_(_running_max(x.narrow(dim, n - 2 * g - 1, 2 * g + 1), g, dim)
                                        .narrow(dim, g + 1, g))
    return out


def _valid_depth(depth: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(d, valid): the depth with 0 where it is NaN or not positive, and 1.0 / 0.0 for valid pixels -- float ops
    only (on CPU, torch's boolean maps and torch.where are 5-20x slower than float ops of the same size)."""
    d = torch.nan_to_num(depth.clamp(min=0.0), nan=0.0, posinf=0.0)
    return d, torch.gt(d, 0.0, out=torch.empty_like(d))


def _edges(d: torch.Tensor, valid: torch.Tensor, edge_threshold: float) -> torch.Tensor:
    """1.0 where |grad D|^2 > (threshold D)^2 (3 x 3 Sobel of d = the depth with 0 at invalid pixels) or the
    pixel is invalid, else 0.0. In float16 a gradient above 256 overflows to inf, which is an edge, as it must
    be for any threshold below 2.56 at 100 m."""
    gx = correlate(correlate(d, (-1.0, 0.0, 1.0), -1), (1.0, 2.0, 1.0), -2)
    gy = correlate(correlate(d, (-1.0, 0.0, 1.0), -2), (1.0, 2.0, 1.0), -1)
    g2 = torch.addcmul(gx.square_(), gy, gy)
    t = d * edge_threshold
    flat = torch.ge(t.square_(), g2, out=g2)  # 1 where not an edge (a float out: fast, see _valid_depth)
    return torch.mul(flat, valid, out=flat).neg_().add_(1.0)


def edge_map(depth: torch.Tensor, edge_threshold: float) -> torch.Tensor:
    """H x W bool tensor: True where the 3 x 3 Sobel relative depth gradient |grad D| / D exceeds the threshold
    (NaN / non-positive pixels count as edges)."""
    d, valid = _valid_depth(depth)
    return _edges(d, valid, edge_threshold) > 0.5


def smooth_depth(depth: torch.Tensor, cfg: SmoothConfig) -> torch.Tensor:
    """Edge-aware smoothing of an H x W depth tensor (metres, NaN = invalid) in its dtype on its device: a Gaussian
    as a normalised convolution over non-edge pixels, edges (dilated by half the Gaussian support) and NaN kept."""
    taps = gaussian_taps(float(cfg.sigma))
    grow = max(1, (len(taps) // 2 + 1) // 2)
    d, valid = _valid_depth(depth)
    wide = _running_max(_running_max(_edges(d, valid, cfg.edge_threshold), grow, -1), grow, -2)
    keep = wide.neg_().add_(1.0)  # the mask M of the normalised convolution
    stack = torch.stack([d.mul_(keep), keep])  # 2 x H x W: (D M, M)
    num, den = correlate(correlate(stack, taps, -1), taps, -2).unbind(0)
    use = torch.ge(den, 1e-6, out=torch.empty_like(den)).mul_(keep)  # 1: smoothed; 0: edge, NaN, empty window
    return torch.lerp(depth, num.div_(den.clamp_(min=1e-6)), use)  # depth + use (smoothed - depth); NaN stays NaN


def edge_mask(depth, edge_threshold: float):
    """H x W bool: True where the Sobel relative depth gradient exceeds the threshold (NaN pixels count as edges).
    numpy in -> numpy out; a tensor in -> a tensor."""
    if isinstance(depth, torch.Tensor):
        return edge_map(depth, edge_threshold)
    return edge_map(as_tensor(np.asarray(depth, np.float32)), edge_threshold).numpy()


@torch.inference_mode()
def smooth_edge_aware(depth, config: Optional[SmoothConfig] = None):
    """Gaussian-smooth H x W depth (metres, NaN = invalid) outside edges; NaN preserved. numpy in -> float32 numpy
    out; a tensor in -> a tensor of its dtype on its device."""
    cfg = (config or SmoothConfig()).validate()
    if isinstance(depth, torch.Tensor):
        return smooth_depth(depth if depth.is_floating_point() else depth.float(), cfg)
    return smooth_depth(as_tensor(np.asarray(depth, np.float32)), cfg).numpy()
