"""Depth-aware local refinement (paper Eq. 13-14).

Eq. 13, our reading: every valid pixel p gets the feature

    f_p = ( u_p / W,  v_p / H,  depth_weight * (log D_p - log D_min) / (log D_max - log D_min) )

(normalised pixel coordinates and log aligned depth, D_min/D_max over the frame's valid pixels), and K-means groups
the pixels into `n_clusters` regions. K-means is *fit* on a regular-grid subsample of about `sample_size` pixels
(scikit-learn, fixed seed) and every pixel is then *assigned* to the nearest centroid (numpy; torch on CUDA, which
computes the same distances, so the clusters are the same).

Eq. 14: inside cluster c, the anchors (the global fit's inliers) that fall in it give a local affine map of the
aligned inverse depth z = 1 / D,  z' = a_c z + b_c, by least squares regularised towards the identity
(lam * n * ((a - 1)^2 mean(z^2) + b^2), same dimensionless lam as Eq. 11). Clusters with fewer than `min_anchors`
anchors, or whose fit would have a_c <= 0, keep the global alignment (a = 1, b = 0).

Seams: a hard assignment would switch (a_c, b_c) abruptly at cluster borders that cross smooth surfaces. We blend
the per-cluster parameters with soft K-means memberships in the same feature space,
w_c(p) ~ exp(-(|f_p - mu_c|^2 - min_k |f_p - mu_k|^2) / (2 * blend * sigma^2)) with sigma^2 the mean squared distance of the
sample to its centroid: across a depth edge the log-depth term makes the membership practically hard (so
discontinuities stay where the image has them), across a border inside a smooth surface it changes gradually.
blend = 0 gives the hard assignment.

Speed: the memberships and blended parameters (the per-pixel work, K exponentials per pixel) are computed on every
`stride`-th pixel and the two parameter maps (a(p) - 1, b(p)) are upsampled bilinearly (OpenCV) before they are
applied to every pixel's own depth. The depth itself is never resampled, so depth edges stay where they are; the
parameters, which vary smoothly inside a surface, change over about `stride` pixels across an edge instead of
one. stride = 1 is the exact per-pixel computation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..config import RefineConfig  # noqa: F401  (defined with its descriptions and ranges in racalnet_ros/config.py)
from .align import sample_prior, solve_affine


@dataclass
class LocalRefinement:
    """depth: H x W float32 metres (NaN where the input was NaN). labels: H x W int32 hard cluster (-1 invalid).
    scales/shifts: per-cluster (a_c, b_c) of Eq. 14 (1, 0 for clusters on the global fit). anchors_per_cluster."""

    depth: np.ndarray
    labels: np.ndarray
    scales: np.ndarray = field(default_factory=lambda: np.zeros(0))
    shifts: np.ndarray = field(default_factory=lambda: np.zeros(0))
    anchors_per_cluster: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def n_local(self) -> int:
        """Clusters that got their own affine map."""
        return int(np.sum((self.scales != 1.0) | (self.shifts != 0.0)))


def _features(depth: np.ndarray, weight: float) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 13 features of every pixel, channels first: (3 x H*W float32, valid mask H*W)."""
    h, w = depth.shape
    valid = np.isfinite(depth) & (depth > 0)
    logd = np.log(np.where(valid, depth, 1.0)).astype(np.float32)
    lo, hi = (float(logd[valid].min()), float(logd[valid].max())) if valid.any() else (0.0, 1.0)
    span = hi - lo if hi - lo > 1e-6 else 1.0
    f = np.empty((3, h, w), np.float32)
    f[0] = (np.arange(w, dtype=np.float32) / w)[None, :]
    f[1] = (np.arange(h, dtype=np.float32) / h)[:, None]
    f[2] = (logd - lo) * np.float32(weight / span)
    return f.reshape(3, -1), valid.reshape(-1)


_CONTROLLER = None


def _threadpools():
    """threadpoolctl's controller, built once (threadpool_limits() rescans the loaded libraries on every call,
    about 1 ms)."""
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def fit_kmeans(features: np.ndarray, valid: np.ndarray, shape: tuple[int, int],
               cfg: RefineConfig) -> tuple[np.ndarray, float]:
    """K-means centroids (K x 3) fit by scikit-learn on a regular-grid subsample of the valid pixels, and the mean
    squared distance of that sample to its centroids (sigma^2 of the soft memberships)."""
    from sklearn.cluster import KMeans

    h, w = shape
    stride = max(1, int(np.sqrt(h * w / cfg.sample_size)))
    grid = np.zeros((h, w), bool)
    grid[stride // 2::stride, stride // 2::stride] = True
    sample = features[:, grid.reshape(-1) & valid].T
    k = min(cfg.n_clusters, len(sample))
    # one thread: the sample is small, and OpenMP workers spin-waiting on a shared CPU cost 10x the work
    with _threadpools().limit(limits=1):
        km = KMeans(n_clusters=k, n_init=1, max_iter=50, random_state=cfg.seed).fit(sample)
    return km.cluster_centers_.astype(np.float32), max(float(km.inertia_ / max(1, len(sample))), 1e-12)


def squared_distances(features: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """K x N float32 squared distances of pixels (features 3 x N) to the centroids; element-wise and in place (no
    BLAS call, whose threads thrash on a busy CPU); K x N layout because numpy reduces fast over the leading axis."""
    f = features.astype(np.float32, copy=False)
    c = centers.astype(np.float32)
    d2 = np.empty((len(c), f.shape[1]), np.float32)
    tmp = np.empty(f.shape[1], np.float32)
    for k in range(len(c)):
        np.subtract(f[0], c[k, 0], out=d2[k])
        np.square(d2[k], out=d2[k])
        for j in (1, 2):
            np.subtract(f[j], c[k, j], out=tmp)
            np.square(tmp, out=tmp)
            d2[k] += tmp
    return d2


def squared_distances_torch(features: np.ndarray, centers: np.ndarray, device: str):
    """The same distances as a torch tensor on `device` (the CUDA path; same centroids, so the same clusters)."""
    import torch

    f = torch.as_tensor(np.ascontiguousarray(features, np.float32), device=device)
    c = torch.as_tensor(np.asarray(centers, np.float32), device=device)
    return ((f[None, :, :] - c[:, :, None]) ** 2).sum(dim=1)  # K x N


def blended_parameters(d2, a: np.ndarray, b: np.ndarray, sigma2: float, blend: float):
    """Per-pixel (a(p) - 1, b(p)): the clusters' maps weighted by soft memberships
    w_k ~ exp(-(d2_k - min_k d2) / (2 blend sigma2)), or by the hard assignment when blend = 0. Works on numpy
    arrays and torch tensors alike; only clusters with their own map (a != 1 or b != 0) cost work."""
    local = [k for k in range(len(a)) if a[k] != 1.0 or b[k] != 0.0]
    if blend <= 0 or len(a) == 1:
        lab = d2.argmin(0)
        if isinstance(d2, np.ndarray):
            return (a.astype(np.float32) - 1)[lab], b.astype(np.float32)[lab]
        import torch
        at = torch.as_tensor(a - 1, dtype=torch.float32, device=d2.device)
        bt = torch.as_tensor(b, dtype=torch.float32, device=d2.device)
        return at[lab], bt[lab]
    dmin = d2.min(0)
    dmin = dmin.values if hasattr(dmin, "values") else dmin
    gamma = -1.0 / (2.0 * blend * sigma2)
    norm = None
    da = db = 0.0
    for k in range(len(a)):
        wk = ((d2[k] - dmin) * gamma).exp() if not isinstance(d2, np.ndarray) else np.exp((d2[k] - dmin) * np.float32(gamma))
        norm = wk if norm is None else norm + wk
        if k in local:
            da = da + float(a[k] - 1.0) * wk
            db = db + float(b[k]) * wk
    return da / norm, db / norm


def refine_local(depth: np.ndarray, uv: np.ndarray, anchor_depth: np.ndarray, config: Optional[RefineConfig] = None,
                 min_depth: float = 1.0, max_depth: float = 100.0, device: str = "cpu",
                 return_labels: bool = True) -> LocalRefinement:
    """Eq. 13-14 on globally aligned depth (H x W metres) with anchors (N x 2 pixels, N metres); returns the refined
    depth clamped to [min_depth, max_depth] (and the hard cluster of every pixel when return_labels)."""
    cfg = (config or RefineConfig()).validate()
    depth = np.asarray(depth, np.float32)
    h, w = depth.shape
    feats, valid = _features(depth, cfg.depth_weight)
    labels_full = np.full(h * w, -1, np.int32)
    if valid.sum() < cfg.n_clusters:
        return LocalRefinement(depth.copy(), labels_full.reshape(h, w))
    centers, sigma2 = fit_kmeans(feats, valid, (h, w), cfg)
    k = len(centers)

    # Eq. 14: local affine map of the aligned inverse depth per cluster (anchor clusters from their own features)
    uv = np.asarray(uv, np.float64).reshape(-1, 2)
    y = 1.0 / np.asarray(anchor_depth, np.float64).reshape(-1)
    pix = sample_prior(np.arange(h * w, dtype=np.float64).reshape(h, w), uv)  # flat pixel index, NaN outside
    ok = np.isfinite(pix) & np.isfinite(y)
    ok[ok] &= valid[pix[ok].astype(np.int64)]
    pix_ok = pix[ok].astype(np.int64)
    z_at = 1.0 / depth.reshape(-1)[pix_ok].astype(np.float64)
    lab_at = squared_distances(feats[:, pix_ok], centers).argmin(axis=0)
    y_ok = y[ok]
    a, b = np.ones(k), np.zeros(k)
    counts = np.bincount(lab_at, minlength=k).astype(np.int64)
    for c in range(k):
        if counts[c] < cfg.min_anchors:
            continue
        m = lab_at == c
        sol = solve_affine(z_at[m], y_ok[m] - z_at[m], cfg.regularization)  # (a - 1, b), regularised to identity
        if sol is None or 1.0 + sol[0] <= 0:
            continue
        a[c], b[c] = 1.0 + sol[0], sol[1]

    all_valid = bool(valid.all())
    need_local = bool(np.any((a != 1.0) | (b != 0.0)))
    if not need_local and not return_labels:
        return LocalRefinement(depth.copy(), labels_full.reshape(h, w), a, b, counts)
    cuda = str(device).startswith("cuda")

    def distances(f):
        return squared_distances_torch(f, centers, device) if cuda else squared_distances(f, centers)

    def to_numpy(t):
        return t.cpu().numpy() if hasattr(t, "cpu") else t

    s = int(cfg.stride) if min(h, w) >= 2 * cfg.stride else 1  # tiny images: per pixel
    d2 = None
    if return_labels or (need_local and s == 1):
        d2 = distances(feats if all_valid else feats[:, valid])
    if return_labels:
        labels_full[valid] = to_numpy(d2.argmin(0))
    out = depth.copy()
    if need_local:
        # blend per-cluster parameters with the soft memberships (no seams), apply in inverse depth
        if s == 1:
            da, db = (to_numpy(t) for t in blended_parameters(d2, a, b, sigma2, cfg.blend))
        else:
            # every s-th pixel (invalid ones too: their features are finite), maps upsampled to full size
            fs = feats.reshape(3, h, w)[:, s // 2::s, s // 2::s]
            hs, ws = fs.shape[1:]
            da_s, db_s = (to_numpy(t).reshape(hs, ws).astype(np.float32)
                          for t in blended_parameters(distances(fs.reshape(3, -1)), a, b, sigma2, cfg.blend))
            import cv2

            da = cv2.resize(da_s, (w, h), interpolation=cv2.INTER_LINEAR).reshape(-1)
            db = cv2.resize(db_s, (w, h), interpolation=cv2.INTER_LINEAR).reshape(-1)
            if not all_valid:
                da, db = da[valid], db[valid]
        z = 1.0 / (depth.reshape(-1) if all_valid else depth.reshape(-1)[valid])
        zr = z + da * z + db
        np.clip(zr, np.float32(1.0 / max_depth), np.float32(1.0 / min_depth), out=zr)
        if all_valid:
            out = (1.0 / zr).astype(np.float32).reshape(h, w)
        else:
            out.reshape(-1)[valid] = 1.0 / zr
    return LocalRefinement(out, labels_full.reshape(h, w), a, b, counts)
