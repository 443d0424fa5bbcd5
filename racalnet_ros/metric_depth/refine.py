"""Depth-aware local refinement (paper Eq. 13-14).

Eq. 13, our reading: every valid pixel p gets the feature

    f_p = ( u_p / W,  v_p / H,  depth_weight * (log D_p - log D_min) / (log D_max - log D_min) )

(normalised pixel coordinates and log aligned depth, D_min/D_max over the frame's valid pixels), and K-means groups
the pixels into `n_clusters` regions. K-means is *fit* on a regular-grid subsample of about `sample_size` pixels
(`kmeans`: torch on the frame's device, greedy k-means++ with a fixed seed, as scikit-learn's) and every pixel is
then *assigned* by its distances to the centroids. Everything runs in torch on one device (cpu or cuda) and reads
nothing back; the first two features are separable (a row and a column), so they are never built as maps.

Eq. 14: inside cluster c, the anchors (the global fit's inliers) that fall in it give a local affine map of the
aligned inverse depth z = 1 / D,  z' = a_c z + b_c, by least squares regularised towards the identity
(lam * n * ((a - 1)^2 mean(z^2) + b^2), same dimensionless lam as Eq. 11, and the same solver, batched over the
clusters; optional per-anchor weights as in Eq. 11). Clusters with fewer than `min_anchors` anchors of positive
weight, or whose fit would have a_c <= 0, keep the global alignment (a = 1, b = 0).

Seams: a hard assignment would switch (a_c, b_c) abruptly at cluster borders that cross smooth surfaces. We blend
the per-cluster parameters with soft K-means memberships in the same feature space,
w_c(p) ~ exp(-(|f_p - mu_c|^2 - min_k |f_p - mu_k|^2) / (2 * blend * sigma^2)) with sigma^2 the mean squared distance of the
sample to its centroid: across a depth edge the log-depth term makes the membership practically hard (so
discontinuities stay where the image has them), across a border inside a smooth surface it changes gradually.
blend = 0 gives the hard assignment.

Speed: the memberships and blended parameters (the per-pixel work, K exponentials per pixel) are computed on every
`stride`-th pixel and the two parameter maps (a(p) - 1, b(p)) are upsampled bilinearly (torch) before they are
applied to every pixel's own depth. The depth itself is never resampled, so depth edges stay where they are; the
parameters, which vary smoothly inside a surface, change over about `stride` pixels across an edge instead of
one. stride = 1 is the exact per-pixel computation.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from ..config import RefineConfig  # noqa: F401  (defined with its descriptions and ranges in racalnet_ros/config.py)
from .align import affine_rows, anchor_tensors, sample_prior, solve_affine
from .tensors import as_tensor, host_value


@dataclass
class LocalRefinement:
    """depth: H x W float32 metres (NaN where the input was NaN). labels: H x W int32 hard cluster (-1 invalid; all
    -1 unless asked for). scales/shifts: per-cluster (a_c, b_c) of Eq. 14 (1, 0 for clusters on the global fit).
    anchors_per_cluster."""

    depth: np.ndarray
    labels: np.ndarray
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0))
    shifts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    anchors_per_cluster: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n_local(self) -> int:
        """Clusters that got their own affine map."""
        return int(np.sum((self.scales != 1.0) | (self.shifts != 0.0)))


@dataclass
class ClusterMaps:
    """Eq. 14 per cluster, on the device: theta K x 2 float64 (a_c - 1, b_c; 0 for clusters on the global fit),
    local K bool (own map), counts K (anchors), labels H x W int64 (-1 invalid) or None."""

    theta: torch.Tensor
    local: torch.Tensor
    counts: torch.Tensor
    labels: Optional[torch.Tensor] = None


@functools.lru_cache(maxsize=32)
def pixel_coordinates(h: int, w: int, step: int, device: torch.device, dtype: torch.dtype = torch.float32
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """(u / W of the columns step//2::step, v / H of the rows step//2::step): the first two features of Eq. 13 are
    separable, so they are kept as a row and a column (built once per image size) and never as maps."""
    u = torch.arange(step // 2, w, step, dtype=torch.float64) / w
    v = torch.arange(step // 2, h, step, dtype=torch.float64) / h
    return u.to(device, dtype), v.to(device, dtype)


def feature_dtype(z: torch.Tensor) -> torch.dtype:
    """Features and memberships: float32, or float64 for a float64 (reference) map; never float16 (the exponent of
    the soft memberships multiplies distance errors by 1 / (2 blend sigma^2), ~10^2-10^3)."""
    return torch.float64 if z.dtype == torch.float64 else torch.float32


@functools.lru_cache(maxsize=16)
def _kmeans_uniforms(seed: int, n: int, device: torch.device) -> torch.Tensor:
    """The uniform numbers of one k-means++ initialisation, drawn once per (seed, count) on the CPU generator so
    that every device (and every frame) starts from the same draws: the clusters do not depend on the device."""
    return torch.rand(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(device)


def nearest(d2: torch.Tensor) -> torch.Tensor:
    """K x M float one-hot of the nearest of K centres for each of M samples (d2: K x M distances), shared equally
    on an exact tie. Built from amin and a comparison into a float tensor: on CPU, torch's argmin / min(0).indices
    over the leading dim and boolean maps are 10-50x slower than these."""
    hit = torch.le(d2, d2.amin(0, keepdim=True), out=torch.empty_like(d2))
    return hit.div_(hit.sum(0, keepdim=True))


def kmeans(x: torch.Tensor, w: torch.Tensor, k: int, seed: int = 0, max_iter: int = 20
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted K-means on M x 3 samples x with weights w (0 = ignore): greedy k-means++ seeding (as scikit-learn:
    2 + log k candidates per centre, the one that lowers the potential most) and at most max_iter Lloyd iterations.
    Returns (k x 3 centroids, mean squared distance of the samples to their centroid = sigma^2 of Eq. 13's soft
    memberships).

    Our own code rather than scikit-learn's KMeans for device residency: the sample lives on the prior's device and
    copying it to the host and the centroids back would be a round trip per frame (and sklearn's per-call checks
    cost more than the 2,048-point fit itself). Same algorithm; the random stream differs from sklearn's, so the
    centroids are not bit-identical to the earlier sklearn ones (test_refine compares the inertia). Lloyd stops at
    an exact fixed point (labels unchanged: further iterations would change nothing), checked on CPU where it is
    free; on CUDA all max_iter iterations run without reading anything back, which gives the same centroids.
    max_iter 20: scikit-learn's tolerance (1e-4) stopped the earlier fits after about 10-20 iterations; the exact
    fixed point takes 12-45 on our frames, and its last iterations move single samples."""
    m = len(x)
    trials = 2 + int(math.log(k))
    u = _kmeans_uniforms(seed, 1 + (k - 1) * trials, x.device)
    wsum = w.sum()
    xx = x.square().sum(1)  # |x|^2
    x1t = torch.cat([x, torch.ones_like(x[:, :1])], 1).T.contiguous()  # 4 x M

    def sqdist(c: torch.Tensor, exact: bool = True) -> torch.Tensor:  # (C x 3) -> C x M, one matrix product
        d = torch.cat([-2.0 * c, c.square().sum(1, keepdim=True)], 1) @ x1t  # |c|^2 - 2 c.x
        return (d + xx).clamp_(min=0.0) if exact else d  # |x|^2 does not change which centre is nearest

    first = torch.searchsorted(torch.cumsum(w.double(), 0), (u[:1] * wsum).double()).clamp(max=m - 1)
    centers = [x[first]]
    closest = sqdist(centers[0])[0]
    for c in range(1, k):
        pot = (w * closest).double()
        cand = torch.searchsorted(torch.cumsum(pot, 0), u[1 + (c - 1) * trials:1 + c * trials] * pot.sum())
        cand = cand.clamp(max=m - 1)
        dist = torch.minimum(sqdist(x[cand]), closest)  # trials x M
        best = torch.argmin(dist @ w)
        closest = dist[best]
        centers.append(x[cand[best]].unsqueeze(0))
    centers = torch.cat(centers)
    xw1 = torch.cat([x * w.unsqueeze(1), w.unsqueeze(1)], 1)  # M x 4
    member = None
    for _ in range(max_iter):
        new = nearest(sqdist(centers, exact=False))
        if member is not None and x.device.type == "cpu" and torch.equal(new, member):
            break
        member = new
        sums = member @ xw1  # k x 4: weighted sums and weights per cluster
        n = sums[:, 3:]
        centers = torch.where(n > 0, sums[:, :3] / n, centers)  # an empty cluster keeps its centre
    sigma2 = (w * sqdist(centers).amin(0)).sum() / wsum
    return centers, sigma2.clamp(min=1e-12)


def _depth_feature_scale(z: torch.Tensor, weight: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Third feature of Eq. 13 from the aligned inverse depth z: f = (log D - lo) * c with D = 1/z, lo/hi the log
    depth range of the valid pixels, c = weight / (hi - lo) (1 when the range is < 1e-6). Returns (lo, c), 0-d
    tensors on the device (feature dtype)."""
    fdt = feature_dtype(z)
    # float ops only on the full-resolution map (torch's boolean maps are slow on CPU, see smooth._valid)
    zmin = torch.nan_to_num(z, nan=float("inf")).amin().to(fdt)
    zmax = torch.nan_to_num(z, nan=float("-inf")).amax().to(fdt)
    anyv = torch.isfinite(zmin)
    lo = torch.where(anyv, -torch.log(zmax), 0.0)
    span = torch.where(anyv, torch.log(zmax) - torch.log(zmin), 1.0)
    span = torch.where(span > 1e-6, span, 1.0)
    return lo, weight / span


def _log_depth_feature(z: torch.Tensor, lo: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """(log D - lo) * c in lo's dtype; invalid (NaN) pixels get the feature of D = 1 (finite, like every feature)."""
    return (torch.nan_to_num(torch.log(z.to(lo.dtype)), nan=0.0).neg_() - lo) * c


def _sqdist_maps(u: torch.Tensor, v: torch.Tensor, f: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """K x h x w squared feature distances of pixels with coordinates u (w), v (h) and depth feature f (h x w) to
    the centroids, from the separable layout: (u - cu)^2 + (v - cv)^2 are a K x w row and a K x h column."""
    d2 = (f.unsqueeze(0) - centers[:, 2, None, None]).square_()
    d2 += (u.unsqueeze(0) - centers[:, 0, None]).square().unsqueeze(1)
    d2 += (v.unsqueeze(0) - centers[:, 1, None]).square().unsqueeze(2)
    return d2


def blended_parameters(d2: torch.Tensor, theta: torch.Tensor, sigma2: torch.Tensor, blend: float) -> torch.Tensor:
    """2 x ... maps (a(p) - 1, b(p)): the clusters' maps theta (K x 2) weighted by soft memberships
    w_k ~ exp(-(d2_k - min_k d2) / (2 blend sigma2)) (d2: K x ..., consumed), or by the hard assignment when
    blend = 0 or K = 1. In d2's dtype, never float16 (see feature_dtype)."""
    t = theta.to(d2.dtype)
    if blend <= 0 or len(t) == 1:
        return t[d2.min(0).indices].movedim(-1, 0)
    d2 -= d2.amin(0, keepdim=True)
    d2 *= -1.0 / (2.0 * blend * sigma2)
    # exp(-80) < 2e-35 next to the nearest cluster's exp(0) = 1: clamping changes no weight measurably and keeps
    # torch's vectorised exp off its ~15x slower path for arguments below about -88 (most of them here)
    w = d2.clamp_(min=-80.0).exp_().flatten(1)  # K x P
    coef = torch.cat([torch.ones_like(t[:, :1]), t], 1).T  # 3 x K: normaliser, a - 1, b
    acc = coef @ w
    return (acc[1:] / acc[:1]).reshape(2, *d2.shape[1:])


def cluster_maps(z: torch.Tensor, uv: torch.Tensor, y: torch.Tensor, w: torch.Tensor, centers: torch.Tensor,
                 lo: torch.Tensor, c: torch.Tensor, cfg: RefineConfig, z_at: Optional[torch.Tensor] = None
                 ) -> ClusterMaps:
    """Eq. 14: every anchor (uv N x 2, metric inverse depth y, weight w; float64) joins the cluster of its pixel's
    features; per cluster with >= min_anchors anchors of positive weight, z' = a z + b by weighted least squares
    regularised towards the identity (the Eq. 11 solver on (z, y - z)); a <= 0 or a singular system keep the
    global fit. z_at: the anchors' aligned inverse depth in float64 when the caller has it (else read off z)."""
    h, wd = z.shape
    # float64, NaN outside the image or on an invalid pixel
    z_at = sample_prior(z, uv) if z_at is None else torch.where(torch.isfinite(sample_prior(z, uv)), z_at, float("nan"))
    ok = torch.isfinite(z_at) & torch.isfinite(y) & (w > 0)
    cols, rows = torch.round(uv[:, 0]), torch.round(uv[:, 1])
    fa = torch.stack([cols / wd, rows / h, _log_depth_feature(z_at, lo, c).double()], 1).to(centers.dtype)
    fa = torch.where(ok.unsqueeze(1), fa, 0.0)
    lab = torch.argmin((fa.unsqueeze(1) - centers.unsqueeze(0)).square().sum(-1), 1)  # N
    zo = torch.where(ok, z_at, 0.0)
    rows6 = affine_rows(zo, torch.where(ok, y, 0.0) - zo, torch.where(ok, w, 0.0))
    onehot = lab.unsqueeze(0) == torch.arange(len(centers), device=z.device).unsqueeze(1)  # K x N
    sums = onehot.to(rows6.dtype) @ rows6  # K x 6
    theta, solved = solve_affine(sums, cfg.regularization, cfg.min_anchors)  # (a - 1, b)
    local = solved & (1.0 + theta[:, 0] > 0)
    return ClusterMaps(torch.where(local.unsqueeze(1), theta, 0.0), local, sums[:, 0].long())


@dataclass
class Clusters:
    """The K-means of one frame (Eq. 13) and its per-cluster maps (Eq. 14), on the device: centers K x 3,
    sigma2 (0-d), lo / c (the log-depth feature's offset and scale), enough (0-d bool: at least n_clusters valid
    pixels in the K-means sample), maps."""

    centers: torch.Tensor
    sigma2: torch.Tensor
    lo: torch.Tensor
    c: torch.Tensor
    enough: torch.Tensor
    maps: ClusterMaps


def fit_clusters(z: torch.Tensor, uv: torch.Tensor, y: torch.Tensor, w: torch.Tensor, cfg: RefineConfig,
                 return_labels: bool = False, z_at: Optional[torch.Tensor] = None) -> Clusters:
    """Eq. 13-14 up to the per-cluster maps: K-means on a regular-grid subsample of ~sample_size pixels of the
    aligned inverse depth z (invalid pixels weigh 0), then the anchors' local affine maps."""
    h, wd = z.shape
    dev = z.device
    lo, c = _depth_feature_scale(z, cfg.depth_weight)
    g = max(1, int(np.sqrt(h * wd / cfg.sample_size)))
    ug, vg = pixel_coordinates(h, wd, g, dev, lo.dtype)
    zg = z[g // 2::g, g // 2::g]
    sample = torch.stack([ug.expand(len(vg), -1), vg.unsqueeze(1).expand(-1, len(ug)),
                          _log_depth_feature(zg, lo, c)], -1).reshape(-1, 3)
    k = min(cfg.n_clusters, len(sample))
    valid = torch.isfinite(zg).reshape(-1).to(lo.dtype)
    centers, sigma2 = kmeans(sample, valid, k, cfg.seed)
    maps = cluster_maps(z, uv, y, w, centers, lo, c, cfg, z_at)
    enough = valid.sum() >= cfg.n_clusters  # fewer valid samples than clusters: keep the global alignment
    if return_labels:
        u1, v1 = pixel_coordinates(h, wd, 1, dev, lo.dtype)
        lab = _sqdist_maps(u1, v1, _log_depth_feature(z, lo, c), centers).min(0).indices
        maps.labels = torch.where(torch.isfinite(z) & enough, lab, -1)
    return Clusters(centers, sigma2, lo, c, enough, maps)


def apply_clusters(z: torch.Tensor, centers: torch.Tensor, sigma2: torch.Tensor, lo: torch.Tensor, c: torch.Tensor,
                   theta: torch.Tensor, enough: torch.Tensor, stride: int, blend: float, min_depth: float,
                   max_depth: float) -> torch.Tensor:
    """The per-pixel part of Eq. 14: blended parameter maps (a(p) - 1, b(p)) from the soft memberships at every
    stride-th pixel, upsampled bilinearly, applied to every pixel's own inverse depth z (z' = z + (a - 1) z + b),
    clamped to [1/max_depth, 1/min_depth]; z itself where there are too few valid pixels. Tensors only (the
    function torch.compile compiles when align.compile is on)."""
    h, wd = z.shape
    s = stride if min(h, wd) >= 2 * stride else 1  # tiny images: per pixel
    us, vs = pixel_coordinates(h, wd, s, z.device, lo.dtype)
    zs = z[s // 2::s, s // 2::s]
    params = blended_parameters(_sqdist_maps(us, vs, _log_depth_feature(zs, lo, c), centers), theta, sigma2, blend)
    if s > 1:  # the parameters vary smoothly: upsampled bilinearly; every pixel keeps its own depth
        params = F.interpolate(params.unsqueeze(0), size=(h, wd), mode="bilinear", align_corners=False)[0]
    params = params.to(z.dtype)
    zr = torch.addcmul(z + params[1], z, params[0]).clamp_(1.0 / max_depth, 1.0 / min_depth)
    return torch.lerp(z, zr, enough.to(z.dtype))  # exactly zr (enough) or z; a float blend: fast on CPU


def refine_inverse_depth(z: torch.Tensor, uv: torch.Tensor, y: torch.Tensor, w: torch.Tensor,
                         cfg: RefineConfig, min_depth: float, max_depth: float, return_labels: bool = False,
                         apply=apply_clusters, z_at: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, ClusterMaps]:
    """Eq. 13-14 on the globally aligned inverse depth z (H x W, compute dtype, NaN = invalid) with anchors (uv
    N x 2, metric inverse depth y, weights w; float64, same device). Returns the refined inverse depth, clamped to
    [1/max_depth, 1/min_depth], and the per-cluster maps. Nothing is read back on CUDA. `apply`: apply_clusters or
    its compiled form. z_at: the anchors' aligned inverse depth in float64 (optional, see cluster_maps)."""
    cl = fit_clusters(z, uv, y, w, cfg, return_labels, z_at)
    if host_value(cl.enough) is False or host_value(cl.maps.local.any()) is False:
        return z, cl.maps  # known on the host for free (CPU): nothing to refine, the same result as below
    return apply(z, cl.centers, cl.sigma2, cl.lo, cl.c, cl.maps.theta, cl.enough, int(cfg.stride), float(cfg.blend),
                 float(min_depth), float(max_depth)), cl.maps


@torch.inference_mode()
def refine_local(depth, uv, anchor_depth, config: Optional[RefineConfig] = None, min_depth: float = 1.0,
                 max_depth: float = 100.0, device: str = "cpu", return_labels: bool = True,
                 weights=None) -> LocalRefinement:
    """Eq. 13-14 on globally aligned depth (H x W metres, numpy or torch) with anchors (N x 2 pixels, N metres,
    optional N weights >= 0, default ones); returns the refined depth clamped to [min_depth, max_depth] on the
    host (and the hard cluster of every pixel when return_labels). Runs on `device` (a tensor input: its own)."""
    cfg = (config or RefineConfig()).validate()
    dev = depth.device if isinstance(depth, torch.Tensor) else torch.device(device)
    d = as_tensor(depth, dev)
    d = d if d.is_floating_point() and d.dtype != torch.float64 else d.float()
    z = 1.0 / torch.where(d > 0, d, float("nan"))
    uv_t, ad, w = anchor_tensors(uv, anchor_depth, weights, dev)
    zr, maps = refine_inverse_depth(z, uv_t, 1.0 / ad, w, cfg, min_depth, max_depth, return_labels)
    theta = maps.theta.cpu().numpy()
    labels = (maps.labels.cpu().numpy().astype(np.int32) if maps.labels is not None
              else np.full(z.shape, -1, np.int32))
    return LocalRefinement((1.0 / zr).float().cpu().numpy(), labels, 1.0 + theta[:, 0], theta[:, 1],
                           maps.counts.cpu().numpy())


__all__ = ["ClusterMaps", "Clusters", "LocalRefinement", "RefineConfig", "apply_clusters", "blended_parameters",
           "cluster_maps", "feature_dtype", "fit_clusters", "kmeans", "pixel_coordinates", "refine_inverse_depth",
           "refine_local"]
