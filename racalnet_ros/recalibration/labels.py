"""Training labels from sparse single-frame LiDAR (paper Eq. 4-8).

Reading of the stripped equations (documented in docs/recalibration.md):

  Eq. 5   tau(d) = max(tau_min, alpha * d)            adaptive tolerance for a radar point at range d (metres)
  Eq. 4   c* = 1  if  #{ q in N(p) : D(q) > 0 and |D(q) - d| <= tau(d) } >= n_min,  else 0
          N(p): a (kh x kw) window centred on the rounded projection p; D: sparse LiDAR depth map (0 = no LiDAR)
  Eq. 6   only points with at least one LiDAR pixel in N(p) are supervised ("valid LiDAR ground truth")
  Eq. 7   n(q) = #{ consistent LiDAR pixels in W(q) },  W(q): a (wh x ww) window centred on candidate q,
          q ranging over the centres for which W(q) lies inside the search window S(p) (sh x sw)
  Eq. 8   delta* = q* - p,  q* = argmax_q n(q)

Choices the paper leaves open:
  - p is the projection at full resolution; windows use the pixel round(p), and the displacement label is measured
    from the exact (sub-pixel) projection to the chosen pixel centre q*;
  - pixels outside the image hold no LiDAR (zero padding), so windows at the borders just count fewer pixels;
    candidate centres outside the image are never chosen;
  - ties of n(q): the smallest displacement |q - p| wins; remaining ties go to the first candidate in row-major
    order (upper, then left);
  - a point gets a displacement label only when its best window holds at least `disp_min_count` (default n_min)
    consistent LiDAR pixels; points without such a window are not supervised by Eq. 9.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .config import LabelConfig


def _patches(depth_map: np.ndarray, rows: np.ndarray, cols: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """N x h x w windows of `depth_map` centred on (rows, cols), zero outside the image."""
    h, w = size
    ph, pw = h // 2, w // 2
    padded = np.pad(depth_map, ((ph, ph), (pw, pw)))
    view = sliding_window_view(padded, (h, w))  # H x W x h x w, a view (no copy)
    return view[rows, cols]  # N x h x w, window of pixel (r, c) starts at padded (r, c)


def _centre_pixels(uv: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    cols = np.clip(np.rint(uv[:, 0]).astype(np.int64), 0, width - 1)
    rows = np.clip(np.rint(uv[:, 1]).astype(np.int64), 0, height - 1)
    return rows, cols


def _consistent(patches: np.ndarray, depth: np.ndarray, cfg: LabelConfig) -> np.ndarray:
    tau = cfg.tau(depth)[:, None, None]
    return (patches > 0) & (np.abs(patches - depth[:, None, None]) <= tau)


def confidence_labels(uv: np.ndarray, depth: np.ndarray, lidar: np.ndarray, cfg: LabelConfig):
    """Eq. 4-6. Returns (label N float32 in {0, 1}, supervised N bool, consistent count N int)."""
    uv = np.asarray(uv, np.float64).reshape(-1, 2)
    depth = np.asarray(depth, np.float32).reshape(-1)
    n = len(uv)
    if n == 0:
        return np.zeros(0, np.float32), np.zeros(0, bool), np.zeros(0, np.int64)
    H, W = lidar.shape
    rows, cols = _centre_pixels(uv, W, H)
    P = _patches(lidar, rows, cols, cfg.conf_window)
    count = _consistent(P, depth, cfg).sum(axis=(1, 2))
    supervised = (P > 0).any(axis=(1, 2))
    return (count >= cfg.n_min).astype(np.float32), supervised, count.astype(np.int64)


def displacement_labels(uv: np.ndarray, depth: np.ndarray, lidar: np.ndarray, cfg: LabelConfig):
    """Eq. 7-8. Returns (delta N x 2 float32 (du, dv) full-resolution pixels, supervised N bool, best count N int).
    Unsupervised points get delta = 0."""
    uv = np.asarray(uv, np.float64).reshape(-1, 2)
    depth = np.asarray(depth, np.float32).reshape(-1)
    n = len(uv)
    if n == 0:
        return np.zeros((0, 2), np.float32), np.zeros(0, bool), np.zeros(0, np.int64)
    H, W = lidar.shape
    rows, cols = _centre_pixels(uv, W, H)
    (sh, sw), (wh, ww) = cfg.search_window, cfg.slide_window
    C = _consistent(_patches(lidar, rows, cols, cfg.search_window), depth, cfg).astype(np.int32)  # N x sh x sw
    # box sums of every wh x ww window inside S via a summed-area table -> N x (sh-wh+1) x (sw-ww+1)
    S = np.pad(C.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))
    counts = S[:, wh:, ww:] - S[:, :-wh, ww:] - S[:, wh:, :-ww] + S[:, :-wh, :-ww]
    ry, rx = (sh - wh) // 2, (sw - ww) // 2
    dv = np.arange(-ry, ry + 1)
    du = np.arange(-rx, rx + 1)
    # candidate centres outside the image are never chosen
    cand_r = rows[:, None] + dv[None, :]
    cand_c = cols[:, None] + du[None, :]
    inside = ((cand_r >= 0) & (cand_r < H))[:, :, None] & ((cand_c >= 0) & (cand_c < W))[:, None, :]
    counts = np.where(inside, counts, -1).astype(np.int64)
    frac_u = (cols - uv[:, 0])[:, None, None] + du[None, None, :]
    frac_v = (rows - uv[:, 1])[:, None, None] + dv[None, :, None]
    dist2 = frac_u ** 2 + frac_v ** 2                                   # N x ny x nx, < (sh^2 + sw^2)
    if cfg.disp_rule == "nearest":
        # the nearest window that passes the count test; ties to row-major order (argmax takes the first)
        key = np.where(counts >= cfg.min_disp_count, -dist2, -np.inf)
    else:
        # densest window; ties: smallest displacement from the exact projection, then row-major order
        scale = float(sh * sh + sw * sw + 2)
        key = counts.astype(np.float64) * scale - dist2
    flat = key.reshape(n, -1).argmax(axis=1)
    iy, ix = np.unravel_index(flat, key.shape[1:])
    best = counts.reshape(n, -1)[np.arange(n), flat]  # nearest rule: a passing window exists iff this passes
    delta = np.stack([cols + du[ix] - uv[:, 0], rows + dv[iy] - uv[:, 1]], axis=1).astype(np.float32)
    supervised = best >= cfg.min_disp_count
    delta[~supervised] = 0.0
    return delta, supervised, np.maximum(best, 0)


@dataclass
class PointLabels:
    """Labels of one frame's projected radar points (Eq. 4-8)."""

    confidence: np.ndarray      # N float32 {0, 1}
    conf_mask: np.ndarray       # N bool, supervised by Eq. 6
    displacement: np.ndarray    # N x 2 float32 full-resolution pixels (du, dv)
    disp_mask: np.ndarray       # N bool, supervised by Eq. 9
    count: np.ndarray           # N int, consistent LiDAR pixels in N(p)


def make_labels(uv: np.ndarray, depth: np.ndarray, lidar: np.ndarray, cfg: LabelConfig) -> PointLabels:
    conf, conf_mask, count = confidence_labels(uv, depth, lidar, cfg)
    disp, disp_mask, _ = displacement_labels(uv, depth, lidar, cfg)
    return PointLabels(conf, conf_mask, disp, disp_mask, count)


# ---------------------------------------------------------------------------------------------------------------
# label defaults for a LiDAR without a preset
def lidar_spacing(depth_maps) -> tuple[float, float]:
    """(rows_px, cols_px): how densely a LiDAR covers the image, from sparse depth maps (0 = no LiDAR). rows_px is the
    lower quartile of the gaps between LiDAR pixels that follow each other down an image column (about the spacing
    of neighbouring beams; missing returns only make gaps longer, hence the lower quartile), cols_px the same along
    image rows (about the spacing of returns along a beam). Pooled over the maps; (0, 0) without any gap."""
    def gaps(mask: np.ndarray) -> list[np.ndarray]:
        out = []
        r, c = np.nonzero(mask.T)  # column-major: pixels of one column together, rows ascending
        same = np.diff(r) == 0
        if same.any():
            out.append(np.diff(c)[same])
        return out

    down, along = [], []
    for d in depth_maps:
        m = np.asarray(d) > 0
        down += gaps(m)
        along += gaps(m.T)
    down_all = np.concatenate(down) if down else np.zeros(0)
    along_all = np.concatenate(along) if along else np.zeros(0)
    q = (lambda a: float(np.percentile(a, 25)) if a.size else 0.0)
    return q(down_all), q(along_all)


def default_label_config(dataset, frames: int = 5, measure: bool = False) -> tuple[LabelConfig, str]:
    """(LabelConfig, how it was chosen) for a FrameDataset: its preset in LABEL_DEFAULTS (astyx, zju, synthetic), else
    (or with measure=True) `LabelConfig.for_lidar_spacing` measured on its first `frames` loadable frames with LiDAR
    (your own bag)."""
    from ..datasets.base import DatasetError
    from ..geometry import lidar_depth_map
    from .config import LABEL_DEFAULTS

    if dataset.name in LABEL_DEFAULTS and not measure:
        return LabelConfig.for_dataset(dataset.name), f"preset {dataset.name!r} (LABEL_DEFAULTS)"
    maps = []
    for frame in dataset.iter_frames(skip_bad=True):
        if frame.lidar is not None and len(frame.lidar):
            maps.append(lidar_depth_map(frame))
        if len(maps) >= frames:
            break
    if not maps:
        raise DatasetError(f"{dataset.name}: no frame with LiDAR to choose label windows from (give them with "
                           "--labels PRESET or --label KEY=VALUE)")
    rows, cols = lidar_spacing(maps)
    cfg = LabelConfig.for_lidar_spacing(rows, cols)
    return cfg, (f"measured on {len(maps)} frame(s): LiDAR rows {rows:g} px apart, returns {cols:g} px apart along "
                 f"a row -> N(p) {cfg.conf_window[0]}x{cfg.conf_window[1]}, S(p) {cfg.search_window[0]}x"
                 f"{cfg.search_window[1]}, n_min {cfg.n_min} (LabelConfig.for_lidar_spacing)")
