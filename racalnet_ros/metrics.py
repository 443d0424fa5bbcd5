"""The paper's depth metrics, computed exactly as its baseline (RadarCam-Depth, `utils/eval_utils.py` + `validate`)
computes them.

Per image and per evaluation range (lo, hi) in metres:
  mask    = (gt > 0) & (lo < gt < hi)                      -- gt is sparse single-frame LiDAR, 0 = no measurement
  MAE     = mean |p - g|                  on millimetres    (p, g = 1000 * depth in m)
  RMSE    = sqrt(mean (p - g)^2)          on millimetres
  AbsRel  = mean |p - g| / g              (unit-free)
  SqRel   = mean (p - g)^2 / g            on millimetres    (so it is 1000x the metre-based SqRel; the paper's
                                                             tables print this, e.g. 376.293 for 0-50 m)
  delta1  = mean [max(p / g, g / p) < 1.25]
  iMAE    = mean |1/p - 1/g|              on kilometres, i.e. in 1/km
  iRMSE   = sqrt(mean (1/p - 1/g)^2)      in 1/km
Each metric is computed per image, then averaged over images (images without any ground truth in the range are
skipped for that range). Ranges: 0-50, 0-70, 0-80 m (`RANGES`). ZJU-4DRadarCam is evaluated on rows 240:540 only
(pass `crop_rows=(240, 540)` or the dataset's `eval_crop_rows`).

Invalid predictions. The baseline's networks always output a positive depth, so it never meets this case. Our
pipeline marks "no depth" with NaN (`Result.depth`). Policy (`invalid=`):
  "exclude" (default): pixels whose prediction is NaN/inf/<= 0 are left out of the metrics; the share of ground-truth
     pixels that did get a valid prediction is reported as `coverage` (1.0 for a dense prediction). An image whose
     every prediction is invalid has NaN metrics and is left out of the metric means (it still counts in coverage
     and `n_images`). Always read coverage next to the errors.
  "error": raise ValueError if any ground-truth pixel has an invalid prediction (strict, for dense methods).
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Optional

import numpy as np

#: Evaluation ranges in metres, named "0-50", "0-70", "0-80" (paper Tables I-IV).
RANGES: tuple[tuple[float, float], ...] = ((0.0, 50.0), (0.0, 70.0), (0.0, 80.0))

#: Error metrics in the order of the paper's tables, then the inverse-depth ones of the baseline.
METRIC_KEYS = ("mae", "rmse", "absrel", "sqrel", "delta1", "imae", "irmse")

_NAMES = {"mae": "MAE [mm]", "rmse": "RMSE [mm]", "absrel": "AbsRel", "sqrel": "SqRel [mm]", "delta1": "δ1",
          "imae": "iMAE [1/km]", "irmse": "iRMSE [1/km]", "coverage": "coverage"}


def range_name(lo: float, hi: float) -> str:
    """(0.0, 50.0) -> "0-50"."""
    return f"{lo:g}-{hi:g}"


def _as_map(name: str, a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2:
        raise ValueError(f"{name}: expected an H x W depth map, got shape {a.shape}")
    return a


def depth_metrics(pred: np.ndarray, gt: np.ndarray, lo: float = 0.0, hi: float = 80.0,
                  invalid: str = "exclude") -> Optional[dict]:
    """Metrics of one H x W prediction (metres) against H x W sparse ground truth (metres, 0 = invalid).

    Returns None when no ground-truth pixel lies in (lo, hi). Keys: mae, rmse (mm), absrel, sqrel (mm), delta1,
    imae, irmse (1/km), n (pixels scored), n_gt (ground-truth pixels in range), coverage (n / n_gt).
    """
    pred = _as_map("pred", pred)
    gt = _as_map("gt", gt)
    if pred.shape != gt.shape:
        raise ValueError(f"pred: shape {pred.shape} does not match gt {gt.shape}")
    if invalid not in ("exclude", "error"):
        raise ValueError(f"invalid: expected 'exclude' or 'error', got {invalid!r}")
    with np.errstate(invalid="ignore"):
        gt_mask = np.isfinite(gt) & (gt > 0) & (gt > lo) & (gt < hi)
        n_gt = int(gt_mask.sum())
        if n_gt == 0:
            return None
        pred_ok = np.isfinite(pred) & (pred > 0)
    bad = int((gt_mask & ~pred_ok).sum())
    if bad and invalid == "error":
        raise ValueError(f"pred: {bad} of {n_gt} ground-truth pixel(s) in {range_name(lo, hi)} m have a NaN, inf "
                         "or non-positive prediction")
    mask = gt_mask & pred_ok
    n = int(mask.sum())
    out = {"n": n, "n_gt": n_gt, "coverage": n / n_gt}
    if n == 0:
        out.update({k: math.nan for k in METRIC_KEYS})
        return out
    p_mm, g_mm = 1000.0 * pred[mask], 1000.0 * gt[mask]
    err = p_mm - g_mm
    p_km, g_km = 0.001 * pred[mask], 0.001 * gt[mask]
    ierr = 1.0 / p_km - 1.0 / g_km
    out.update({
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err ** 2))),
        "absrel": float(np.mean(np.abs(err) / g_mm)),
        "sqrel": float(np.mean(err ** 2 / g_mm)),
        "delta1": float(np.mean(np.maximum(p_mm / g_mm, g_mm / p_mm) < 1.25)),
        "imae": float(np.mean(np.abs(ierr))),
        "irmse": float(np.sqrt(np.mean(ierr ** 2))),
    })
    return out


class MetricAccumulator:
    """Collects per-image metrics for every range and averages them over images (the baseline's protocol).

    acc = MetricAccumulator(); acc.add(pred, gt, crop_rows=(240, 540)); acc.summary()["0-50"]["rmse"]
    """

    def __init__(self, ranges: Iterable[tuple[float, float]] = RANGES, invalid: str = "exclude"):
        self.ranges = tuple((float(lo), float(hi)) for lo, hi in ranges)
        self.invalid = invalid
        self.per_image: dict[str, list[dict]] = {range_name(*r): [] for r in self.ranges}
        self.n_images = 0  # images added (with or without ground truth)

    def add(self, pred: np.ndarray, gt: np.ndarray, crop_rows: Optional[tuple[int, int]] = None) -> dict:
        """Score one image; crop_rows=(r0, r1) evaluates rows r0:r1 only. Returns {range name: metrics or None}."""
        pred = _as_map("pred", pred)
        gt = _as_map("gt", gt)
        if crop_rows is not None:
            r0, r1 = int(crop_rows[0]), int(crop_rows[1])
            if not 0 <= r0 < r1 <= gt.shape[0]:
                raise ValueError(f"crop_rows: {crop_rows} is outside the image's {gt.shape[0]} rows")
            pred, gt = pred[r0:r1], gt[r0:r1]
        self.n_images += 1
        result = {}
        for lo, hi in self.ranges:
            name = range_name(lo, hi)
            m = depth_metrics(pred, gt, lo, hi, invalid=self.invalid)
            if m is not None:
                self.per_image[name].append(m)
            result[name] = m
        return result

    def summary(self) -> dict[str, dict[str, float]]:
        """{range name: {metric: mean over images, "coverage": mean, "n_images": images with ground truth,
        "n_images_scored": images with at least one valid prediction}}."""
        out = {}
        for name, rows in self.per_image.items():
            s: dict[str, float] = {"n_images": len(rows)}
            scored = [r for r in rows if r["n"] > 0]
            s["n_images_scored"] = len(scored)
            for k in METRIC_KEYS:
                s[k] = float(np.mean([r[k] for r in scored])) if scored else math.nan
            s["coverage"] = float(np.mean([r["coverage"] for r in rows])) if rows else math.nan
            out[name] = s
        return out


def format_table(rows: Mapping[str, Mapping[str, Mapping[str, float]]],
                 columns: tuple[str, ...] = ("mae", "rmse", "absrel", "sqrel", "delta1", "imae", "irmse")) -> str:
    """Markdown table in the layout of the paper's Table IV: one block of rows per range, one row per configuration.

    rows: {configuration name: MetricAccumulator.summary()}. A coverage column is appended when any configuration
    has coverage below 1 (some ground-truth pixels got no prediction; see the module docstring).
    """
    ranges: list[str] = []
    for summ in rows.values():
        for r in summ:
            if r not in ranges:
                ranges.append(r)
    cols = list(columns)
    if any(s.get(r, {}).get("coverage", 1.0) < 1.0 for s in rows.values() for r in s):
        cols.append("coverage")
    head = "| Dist | Configuration | " + " | ".join(_NAMES.get(c, c) for c in cols) + " |"
    lines = [head, "|" + "---|" * (len(cols) + 2)]
    for r in ranges:
        for i, (config, summ) in enumerate(rows.items()):
            m = summ.get(r, {})
            cells = []
            for c in cols:
                v = m.get(c, math.nan)
                cells.append("n/a" if v is None or not np.isfinite(v) else f"{v:.3f}")
            dist = f"{r.split('-')[-1]}m" if i == 0 else ""
            lines.append(f"| {dist} | {config} | " + " | ".join(cells) + " |")
    return "\n".join(lines)





# ---------------------------------------------------------------------------------------------------------------------
# Raw radar vs. LiDAR agreement (issue 2, item 7): the baseline the radar recalibration must beat.

#: default LiDAR neighbourhood of a radar pixel, (width, height) in pixels. Sized for Astyx's VLP-16 in a 2048 x 618
#: image (fx ~ fy ~ 1817 px): beams are 2 degrees ~ 63 px apart vertically, so +-32 rows reach at least one beam from
#: any pixel between two beams; along a beam points are ~0.2 degrees ~ 6 px apart, so +-4 columns reach a point of it.
AGREEMENT_WINDOW = (9, 65)


def depth_tolerance(depth: np.ndarray, abs_tol: float = 0.5, rel_tol: float = 0.05) -> np.ndarray:
    """Adaptive tolerance tau(d) = max(0.5 m, 0.05 d) (metres)."""
    return np.maximum(abs_tol, rel_tol * np.asarray(depth, np.float64))


def radar_lidar_agreement(radar_uv: np.ndarray, radar_depth: np.ndarray, lidar_map: np.ndarray,
                          window: tuple[int, int] = AGREEMENT_WINDOW, abs_tol: float = 0.5,
                          rel_tol: float = 0.05) -> dict:
    """How far projected radar depth is from the LiDAR around it.

    radar_uv: N x 2 pixels (u, v) of radar points in the image; radar_depth: N metres (camera z);
    lidar_map: H x W sparse LiDAR depth (0 = none), e.g. `geometry.lidar_depth_map(frame)`;
    window: (width, height) pixels centred on each radar pixel (odd sizes; AGREEMENT_WINDOW by default).
    For every radar point with at least one LiDAR pixel in its window, with tau = tau(radar depth):
      within_some: some LiDAR depth there is within tau;  within_most: more than half of them are within tau;
      abs_err: |radar depth - the LiDAR depth nearest to it in depth| (metres).
    Returns per-point arrays (has_lidar N bool; depth, within_some, within_most, abs_err over the has_lidar points) and
    counts: n_radar, n_with_lidar.
    """
    ww, wh = int(window[0]), int(window[1])
    if ww < 1 or wh < 1 or ww % 2 == 0 or wh % 2 == 0:
        raise ValueError(f"window: expected odd (width, height) in pixels, got {window}")
    uv = np.asarray(radar_uv, np.float64).reshape(-1, 2)
    d = np.asarray(radar_depth, np.float64).reshape(-1)
    h, w = lidar_map.shape
    rows, cols = np.nonzero(lidar_map > 0)
    ld = lidar_map[rows, cols].astype(np.float64)
    ru = np.rint(uv[:, 0]).astype(np.int64)
    rv = np.rint(uv[:, 1]).astype(np.int64)
    n = len(d)
    has = np.zeros(n, bool)
    some, most, err = [], [], []
    # Points are few (~1e3 radar x ~1e3-1e4 LiDAR pixels): sort LiDAR by column and cut each radar point's column
    # band with searchsorted, then test rows; plain numpy, no neighbourhood structure needed.
    order = np.argsort(cols, kind="stable")
    cols_s, rows_s, ld_s = cols[order], rows[order], ld[order]
    hw, hh = ww // 2, wh // 2
    tau = depth_tolerance(d, abs_tol, rel_tol)
    for i in range(n):
        a, b = np.searchsorted(cols_s, [ru[i] - hw, ru[i] + hw + 1])
        sel = np.abs(rows_s[a:b] - rv[i]) <= hh
        if not sel.any():
            continue
        diff = np.abs(ld_s[a:b][sel] - d[i])
        has[i] = True
        ok = diff <= tau[i]
        some.append(bool(ok.any()))
        most.append(bool(ok.mean() > 0.5))
        err.append(float(diff.min()))
    return {"n_radar": n, "n_with_lidar": int(has.sum()), "has_lidar": has, "depth": d[has],
            "within_some": np.array(some, bool), "within_most": np.array(most, bool),
            "abs_err": np.array(err, np.float64)}


def frame_radar_lidar_agreement(frame, window: tuple[int, int] = AGREEMENT_WINDOW, occlusion_filter: bool = False,
                                abs_tol: float = 0.5, rel_tol: float = 0.05) -> dict:
    """`radar_lidar_agreement` of a frame's raw (un-recalibrated) radar projection against its LiDAR ground truth."""
    from .geometry import lidar_depth_map, project_to_image

    p = project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    lidar = lidar_depth_map(frame, occlusion_filter=occlusion_filter)
    return radar_lidar_agreement(p.uv, p.depth, lidar, window, abs_tol, rel_tol)


__all__ = ["RANGES", "METRIC_KEYS", "range_name", "depth_metrics", "MetricAccumulator", "format_table",
           "AGREEMENT_WINDOW", "depth_tolerance", "radar_lidar_agreement", "frame_radar_lidar_agreement"]
