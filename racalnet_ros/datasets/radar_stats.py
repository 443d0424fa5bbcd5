"""What a dataset's radar looks like, measured the same way on real and synthetic frames (issue 9, must-have 1), and
the comparison of two such measurements against fixed tolerances (`CHECKS`, docs/synthetic.md).

Per frame (`frame_radar_stats`), over the radar points that project into the image with the frame's calibration:
- range, azimuth and elevation in the radar frame; power and Doppler as the sensor reports them;
- ego motion from Doppler: static world points read V_r = a u_x + b u_y (u = unit vector radar -> point), so a
  robust fit of (a, b) over every point of the sweep gives the ego speed |(a, b)| and the sensor's sign convention
  (sign of a: Astyx reports +v_ego cos(angle), i.e. positive = approaching); Doppler relative to ego motion is
  V_r - a u_x - b u_y, wrapped into the unambiguous interval when the sensor aliases (`doppler_period`);
- agreement with LiDAR, the project's definition (`metrics.radar_lidar_agreement`): LiDAR in a window around the
  radar pixel with |d_lidar - d_radar| <= tau(d) = max(0.5 m, 0.05 d); for the rest, the depth error to the nearest
  LiDAR in the window (points with LiDAR there) and the pixel offset to the nearest *consistent* LiDAR pixel (within
  `search_px`; every point that does not agree, NaN when there is none);
- a class per point, by the heuristics below, identical for every dataset:
    vehicle    (x, y) inside the footprint of an object box of a vehicle class, grown by `box_margin_m`; the height is
               ignored because the radar's elevation error is large (Astyx: groundtruth_obj3d; synthetic:
               extras["object_boxes"], written by the generator);
    (ground plane) the LiDAR, moved into the radar frame, is reduced to its lowest point per 2 m x 2 m cell and a
               plane z = a x + b y + c is fitted to those by RANSAC (scikit-learn); heights and horizontal
               neighbourhoods below are taken in the frame levelled on that plane (Astyx's radar is mounted with a
               3 deg pitch and 4.6 deg roll: in its own frame a facade is a slanted band);
    structure  LiDAR points higher than `structure_height_m` above the plane within `structure_radius_m`
               horizontally of the radar point (at least `structure_min_points`);
    vegetation structure whose horizontal scatter is volumetric: the smaller principal standard deviation of the
               structure points' (x, y) is >= `vegetation_spread_m` (walls, car sides and poles are lines or spots
               in (x, y); a crown that the beams enter is a cloud);
    other      structure that is not vegetation (poles, walls, fences, signs, unlabelled cars);
    ground     no structure, LiDAR ground within `ground_radius_m` horizontally and the point not higher than
               `ground_height_m` + r tan(`ground_slack_deg`) above the plane (elevation error grows with range);
    unknown    no LiDAR evidence either way (beyond the LiDAR's reach, above its beams, no plane).
  On synthetic frames the generator also records what each ray really hit (extras["radar_class"], same names), so
  the heuristic can be checked against the truth (`summarize(...)["class_confusion"]`).
`summarize` pools per-frame results into quantiles, fine fixed-bin histograms (so two JSON files can be compared
later, KS distances from the binned CDFs) and shares; `compare` checks a candidate against a reference with `CHECKS`.
`image_stats` measures colour and gradient statistics of the camera image (reported, not checked).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from ..geometry import lidar_depth_map, project_to_image
from ..metrics import AGREEMENT_WINDOW, depth_tolerance, radar_lidar_agreement

CLASSES = ("ground", "vegetation", "vehicle", "other", "unknown")
#: object classes (lower case) that count as vehicles (Astyx labels Car, Truck, Person; others seen in the full set)
VEHICLE_LABELS = frozenset({"car", "truck", "bus", "van", "trailer", "motorcyclist", "cyclist", "vehicle"})
#: Astyx 6455: V_r comes in 128 bins of 0.0812 m/s, i.e. it aliases with a period of 10.39 m/s (measured on the shared
#: frames: static points of a car driving ~7 m/s read -3.3 m/s straight ahead)
ASTYX_DOPPLER_PERIOD = 128 * 0.0812


@dataclass
class Box:
    """An object box in the radar frame: centre (3,), size (length, width, height) along the box axes, R (3 x 3 box
    axes -> radar frame), label (lower case)."""

    center: np.ndarray
    size: np.ndarray
    R: np.ndarray
    label: str

    @property
    def is_vehicle(self) -> bool:
        return self.label.lower() in VEHICLE_LABELS


def read_astyx_boxes(path: Path) -> list[Box]:
    """groundtruth_obj3d/NNNNNN.json -> boxes in the radar frame (center3d, dimension3d, orientation_quat w x y z).
    The quaternion order was checked on the shared frames: (w, x, y, z) puts 40% more LiDAR points inside the boxes
    than (x, y, z, w). A missing file gives no boxes; a malformed one raises ValueError naming the file."""
    from transforms3d.quaternions import quat2mat

    path = Path(path)
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text())
        return [Box(np.asarray(o["center3d"], float), np.asarray(o["dimension3d"], float),
                    quat2mat(np.asarray(o["orientation_quat"], float)), str(o.get("classname", "")).lower())
                for o in doc.get("objects", [])]
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: malformed object boxes ({exc!r})") from None


def boxes_from_array(a: np.ndarray, labels: Sequence[str] | None = None) -> list[Box]:
    """K x 7 (cx, cy, cz, length, width, height, yaw about z), radar frame -> boxes (label "vehicle" by default)."""
    a = np.asarray(a, float).reshape(-1, 7)
    out = []
    for i, (cx, cy, cz, ln, w, h, yaw) in enumerate(a):
        c, s = math.cos(yaw), math.sin(yaw)
        R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        out.append(Box(np.array([cx, cy, cz]), np.array([ln, w, h]), R, labels[i] if labels else "vehicle"))
    return out


def frame_boxes(dataset, frame) -> list[Box]:
    """The frame's object boxes: Astyx groundtruth_obj3d next to the dataset, or the synthetic generator's
    extras["object_boxes"]; none otherwise."""
    if "object_boxes" in frame.extras:
        return boxes_from_array(frame.extras["object_boxes"])
    root = getattr(dataset, "root", None)
    if getattr(dataset, "name", "") == "astyx" and root is not None:
        return read_astyx_boxes(Path(root) / "groundtruth_obj3d" / f"{frame.frame_id}.json")
    return []


@dataclass
class RadarStatsConfig:
    """Parameters of the measurement (documented in the module docstring); the defaults are the ones in
    docs/synthetic.md."""

    window: tuple[int, int] = AGREEMENT_WINDOW      # (width, height) px, the LiDAR window of the agreement test
    search_px: float = 150.0                        # radius of the search for the nearest consistent LiDAR pixel
    abs_tol: float = 0.5
    rel_tol: float = 0.05
    box_margin_m: float = 0.3
    structure_height_m: float = 0.3
    structure_radius_m: float = 1.0
    structure_min_points: int = 3
    vegetation_spread_m: float = 0.15
    ground_radius_m: float = 2.0
    ground_height_m: float = 1.0
    ground_slack_deg: float = 3.0
    ground_cell_m: float = 2.0
    ground_ransac_m: float = 0.2
    static_tol_mps: float = 0.25                    # |residual| of a static point in the ego-motion fit
    moving_mps: float = 0.5                         # |Doppler relative to ego motion| above this = moving


def wrap(x: np.ndarray, period: Optional[float]) -> np.ndarray:
    """Wrap into [-period / 2, period / 2) (no-op for period None or 0)."""
    if not period:
        return x
    return (x + period / 2) % period - period / 2


def fit_ego_doppler(xyz: np.ndarray, doppler: np.ndarray, period: Optional[float] = None,
                    tol: float = 0.25) -> tuple[float, float, float]:
    """Robust fit of the static-world Doppler pattern V_r = a u_x + b u_y over a sweep -> (a, b, inlier share).

    A grid search over a in [-30, 30] m/s (b = 0) maximises the number of points within `tol` (after wrapping with
    `period` when the sensor aliases), then (a, b) are refined by least squares on the inliers. Written here because
    the aliasing makes it a circular regression that RANSAC regressors do not model."""
    xyz = np.asarray(xyz, np.float64)
    v = np.asarray(doppler, np.float64)
    r = np.linalg.norm(xyz, axis=1)
    ok = r > 0.5
    if ok.sum() < 10:
        return 0.0, 0.0, 0.0
    u = xyz[ok] / r[ok, None]
    v = v[ok]
    grid = np.arange(-30.0, 30.0 + 1e-9, 0.05)
    best_a, best_n = 0.0, -1
    for chunk in np.array_split(grid, 12):
        res = np.abs(wrap(v[None, :] - chunk[:, None] * u[None, :, 0], period))
        n = (res < tol).sum(axis=1)
        i = int(np.argmax(n))
        if n[i] > best_n:
            best_a, best_n = float(chunk[i]), int(n[i])
    a, b = best_a, 0.0
    for _ in range(3):
        pred = a * u[:, 0] + b * u[:, 1]
        res = wrap(v - pred, period)
        inl = np.abs(res) < tol
        if inl.sum() < 3:
            break
        target = pred[inl] + res[inl]                       # unwrapped measurement near the current model
        (a, b), *_ = np.linalg.lstsq(u[inl][:, :2], target, rcond=None)
    inl = np.abs(wrap(v - a * u[:, 0] - b * u[:, 1], period)) < tol
    return float(a), float(b), float(inl.mean())


def fit_ground_plane(points: np.ndarray, cell: float = 2.0, tol: float = 0.2, seed: int = 0
                     ) -> Optional[np.ndarray]:
    """z = a x + b y + c fitted by RANSAC to the lowest point of every `cell` x `cell` metre column of `points`
    (N x 3, radar frame; columns with x in [1, 80] m, |y| < 30 m). Returns (a, b, c) or None (too few columns)."""
    from sklearn.linear_model import LinearRegression, RANSACRegressor

    p = np.asarray(points, np.float64)
    p = p[(p[:, 0] > 1) & (p[:, 0] < 80) & (np.abs(p[:, 1]) < 30)]
    if len(p) < 20:
        return None
    key = np.floor(p[:, 0] / cell).astype(np.int64) * 100000 + np.floor(p[:, 1] / cell).astype(np.int64)
    order = np.lexsort((p[:, 2], key))
    first = np.r_[True, key[order][1:] != key[order][:-1]]
    low = p[order[first]]
    if len(low) < 10:
        return None
    ransac = RANSACRegressor(LinearRegression(), residual_threshold=tol, random_state=seed, min_samples=3)
    ransac.fit(low[:, :2], low[:, 2])
    est = ransac.estimator_
    return np.array([est.coef_[0], est.coef_[1], est.intercept_])


def _footprint_mask(xyz: np.ndarray, boxes: Iterable[Box], margin: float) -> np.ndarray:
    m = np.zeros(len(xyz), bool)
    for b in boxes:
        if not b.is_vehicle:
            continue
        local = (xyz - b.center) @ b.R
        m |= np.all(np.abs(local[:, :2]) <= b.size[:2] / 2 + margin, axis=1)
    return m


def level_frame(plane: np.ndarray) -> tuple[np.ndarray, float]:
    """Rotation R (3 x 3) that turns the plane z = a x + b y + c level (its normal onto +z) and the plane's height
    after it: heights above the plane are (p @ R.T)[:, 2] - h0 and horizontal positions (p @ R.T)[:, :2]."""
    from scipy.spatial.transform import Rotation

    a, b, c = plane
    n = np.array([-a, -b, 1.0]) / math.sqrt(a * a + b * b + 1.0)
    R = Rotation.align_vectors([[0.0, 0.0, 1.0]], [n])[0].as_matrix()
    return R, float(c * n[2])


def classify_points(xyz: np.ndarray, lidar_radar: Optional[np.ndarray], boxes: Sequence[Box],
                    cfg: RadarStatsConfig) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Class index (into CLASSES) of radar points xyz (N x 3, radar frame) by the module's heuristics, their height
    above the LiDAR ground plane (NaN without a plane) and the plane (a, b, c) or None. Heights and horizontal
    neighbourhoods are taken in the frame levelled on the plane (a sensor mounted with a tilt would otherwise see
    vertical walls as slanted bands)."""
    from scipy.spatial import cKDTree

    n = len(xyz)
    cls = np.full(n, CLASSES.index("unknown"), np.int8)
    height = np.full(n, np.nan)
    plane = fit_ground_plane(lidar_radar, cfg.ground_cell_m, cfg.ground_ransac_m) \
        if lidar_radar is not None and len(lidar_radar) else None
    if plane is not None and n:
        R, h0 = level_frame(plane)
        q, lq = xyz @ R.T, lidar_radar @ R.T
        height, lh = q[:, 2] - h0, lq[:, 2] - h0
        struct = lq[lh > cfg.structure_height_m]
        ground = lq[np.abs(lh) <= cfg.structure_height_m]
        r = np.linalg.norm(xyz, axis=1)
        near_struct = cKDTree(struct[:, :2]).query_ball_point(q[:, :2], cfg.structure_radius_m) \
            if len(struct) else [[] for _ in range(n)]
        has_ground = cKDTree(ground[:, :2]).query(q[:, :2], distance_upper_bound=cfg.ground_radius_m)[0] < np.inf \
            if len(ground) else np.zeros(n, bool)
        low_enough = height <= cfg.ground_height_m + r * math.tan(math.radians(cfg.ground_slack_deg))
        for i, idx in enumerate(near_struct):
            if len(idx) >= cfg.structure_min_points:
                spread = math.sqrt(max(np.linalg.eigvalsh(np.cov(struct[idx, :2].T))[0], 0.0))
                cls[i] = CLASSES.index("vegetation" if spread >= cfg.vegetation_spread_m else "other")
            elif has_ground[i] and low_enough[i]:
                cls[i] = CLASSES.index("ground")
    cls[_footprint_mask(xyz, boxes, cfg.box_margin_m)] = CLASSES.index("vehicle")
    return cls, height, plane


def nearest_consistent_offset(uv: np.ndarray, depth: np.ndarray, lidar_map: np.ndarray, radius: float,
                              abs_tol: float = 0.5, rel_tol: float = 0.05) -> np.ndarray:
    """Pixel distance from each radar pixel to the nearest LiDAR pixel whose depth is within tau(radar depth);
    NaN when there is none within `radius` pixels."""
    from scipy.spatial import cKDTree

    out = np.full(len(uv), np.nan)
    rows, cols = np.nonzero(lidar_map > 0)
    if len(rows) == 0 or len(uv) == 0:
        return out
    ld = lidar_map[rows, cols].astype(np.float64)
    pix = np.stack([cols, rows], 1).astype(np.float64)
    tau = depth_tolerance(depth, abs_tol, rel_tol)
    for i, idx in enumerate(cKDTree(pix).query_ball_point(np.asarray(uv, np.float64), radius)):
        if not idx:
            continue
        idx = np.asarray(idx)
        ok = np.abs(ld[idx] - depth[i]) <= tau[i]
        if ok.any():
            out[i] = float(np.min(np.linalg.norm(pix[idx[ok]] - uv[i], axis=1)))
    return out


def _column(frame, name: str) -> Optional[np.ndarray]:
    return frame.radar_column(name).astype(np.float64) if frame.has_radar_field(name) else None


def frame_radar_stats(frame, boxes: Sequence[Box] = (), cfg: RadarStatsConfig | None = None,
                      doppler_period: Optional[float] = None) -> dict:
    """Per-point measurements of one frame's in-image radar points plus frame scalars (see the module docstring)."""
    cfg = cfg or RadarStatsConfig()
    p = project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    xyz = frame.radar_xyz[p.index].astype(np.float64)
    r = np.linalg.norm(xyz, axis=1)
    out: dict = {"frame_id": frame.frame_id, "n_total": frame.num_radar, "n_in_image": len(p),
                 "range": r, "azimuth": np.degrees(np.arctan2(xyz[:, 1], xyz[:, 0])),
                 "elevation": np.degrees(np.arcsin(np.clip(xyz[:, 2] / np.maximum(r, 1e-9), -1, 1)))}
    power, doppler = _column(frame, "power"), _column(frame, "doppler")
    if power is not None:
        out["power"] = power[p.index]
    if doppler is not None:
        a, b, share = fit_ego_doppler(frame.radar_xyz, doppler, doppler_period, cfg.static_tol_mps)
        u = xyz / np.maximum(r, 1e-9)[:, None]
        rel = wrap(doppler[p.index] - a * u[:, 0] - b * u[:, 1], doppler_period)
        out.update(doppler=doppler[p.index], doppler_rel=rel, ego_speed=math.hypot(a, b), doppler_static_a=a,
                   doppler_static_share=share)

    lidar_map = lidar_depth_map(frame)
    agr = radar_lidar_agreement(p.uv, p.depth, lidar_map, tuple(cfg.window), cfg.abs_tol, cfg.rel_tol)
    agree = np.zeros(len(p), bool)
    agree[agr["has_lidar"]] = agr["within_some"]
    abs_err = np.full(len(p), np.nan)
    abs_err[agr["has_lidar"]] = agr["abs_err"]
    out.update(has_lidar=agr["has_lidar"], agrees=agree, abs_err=abs_err,
               px_offset=nearest_consistent_offset(p.uv, p.depth.astype(np.float64), lidar_map, cfg.search_px,
                                                   cfg.abs_tol, cfg.rel_tol))

    lidar_radar = None
    if frame.lidar is not None and frame.T_cam_lidar is not None:
        T = np.linalg.inv(frame.T_cam_radar) @ frame.T_cam_lidar
        lidar_radar = frame.lidar.astype(np.float64) @ T[:3, :3].T + T[:3, 3]
    cls, height, plane = classify_points(xyz, lidar_radar, boxes, cfg)
    out.update(cls=cls, height=height, plane=None if plane is None else plane.tolist())
    if "radar_class" in frame.extras:
        out["cls_true"] = np.asarray(frame.extras["radar_class"])[p.index].astype(np.int8)
    return out


# ------------------------------------------------------------------------------------------------- summaries
#: fine fixed bins of the pooled distributions: name -> (lo, hi, step); values outside go to the end bins
BINS = {
    "range": (0.0, 150.0, 0.25), "azimuth": (-90.0, 90.0, 0.25), "elevation": (-30.0, 30.0, 0.1),
    "power": (-60.25, 120.25, 0.5), "doppler": (-40.0, 40.0, 0.05), "doppler_rel": (-40.0, 40.0, 0.05),
    "height": (-20.0, 30.0, 0.05), "abs_err_rest": (0.0, 150.0, 0.1), "px_offset_rest": (0.0, 200.0, 1.0),
    "n_in_image": (0.0, 20000.0, 10.0),
}
QUANTILES = (5, 10, 25, 50, 75, 90, 95)


def _hist(name: str, x: np.ndarray) -> dict:
    lo, hi, step = BINS[name]
    edges = np.arange(lo, hi + step / 2, step)
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    counts = np.histogram(np.clip(x, lo, hi - 1e-9), edges)[0]
    q = np.percentile(x, QUANTILES).tolist() if len(x) else [None] * len(QUANTILES)
    return {"n": int(len(x)), "mean": float(x.mean()) if len(x) else None,
            "quantiles": dict(zip([f"p{k}" for k in QUANTILES], q)), "bins": [lo, hi, step],
            "counts": counts.tolist()}


def ks_distance(h1: dict, h2: dict) -> Optional[float]:
    """Two-sample Kolmogorov-Smirnov distance from two histograms of `summarize` (same bins)."""
    c1, c2 = np.asarray(h1["counts"], float), np.asarray(h2["counts"], float)
    if c1.sum() == 0 or c2.sum() == 0 or len(c1) != len(c2):
        return None
    return float(np.max(np.abs(np.cumsum(c1) / c1.sum() - np.cumsum(c2) / c2.sum())))


def summarize(frames: Sequence[dict], images: Sequence[dict] = (), cfg: RadarStatsConfig | None = None) -> dict:
    """Pool `frame_radar_stats` results (and `image_stats` results) of one dataset into a JSON-able summary."""
    cfg = cfg or RadarStatsConfig()
    if not frames:
        return {"frames": 0, "points_in_image": 0}
    cat = lambda k: np.concatenate([f[k] for f in frames if k in f]) if any(k in f for f in frames) \
        else np.zeros(0)  # noqa: E731
    s: dict = {"frames": len(frames), "points_in_image": int(sum(f["n_in_image"] for f in frames))}
    s["n_in_image"] = _hist("n_in_image", np.array([f["n_in_image"] for f in frames], float))
    s["n_total"] = _hist("n_in_image", np.array([f["n_total"] for f in frames], float))
    for k in ("range", "azimuth", "elevation", "power", "doppler", "doppler_rel", "height"):
        if any(k in f for f in frames):
            s[k] = _hist(k, cat(k))
    has, agrees = cat("has_lidar").astype(bool), cat("agrees").astype(bool)
    n = len(has)
    rest = has & ~agrees
    s["agreement"] = {
        "share_with_lidar": float(has.mean()) if n else None,
        "share_agree_of_with_lidar": float(agrees[has].mean()) if has.any() else None,
        "share_agree_of_in_image": float(agrees.mean()) if n else None,
        "window_wh_px": list(cfg.window), "tau": "max(0.5 m, 0.05 d)",
    }
    s["abs_err_rest"] = _hist("abs_err_rest", cat("abs_err")[rest])
    off = cat("px_offset")[~agrees]
    s["px_offset_rest"] = _hist("px_offset_rest", off)
    s["px_offset_rest"]["share_none_within_search"] = float(np.isnan(off).mean()) if len(off) else None
    if any("doppler_rel" in f for f in frames):
        rel = cat("doppler_rel")
        s["doppler_moving_share"] = float(np.mean(np.abs(rel) > cfg.moving_mps)) if len(rel) else None
        speeds = np.array([f["ego_speed"] for f in frames])
        s["ego_speed"] = {"quantiles": dict(zip([f"p{k}" for k in QUANTILES], np.percentile(speeds, QUANTILES)
                                                .tolist())),
                          "static_share_median": float(np.median([f["doppler_static_share"] for f in frames]))}
        signs = [np.sign(f["doppler_static_a"]) for f in frames if f["ego_speed"] > 1.0]
        s["doppler_static_sign"] = float(np.mean(signs)) if signs else None
    cls = cat("cls").astype(int)
    s["classes"] = _class_table(cls, cat, frames)
    if all("cls_true" in f for f in frames) and frames:
        truth = cat("cls_true").astype(int)
        s["classes_true"] = {c: float(np.mean(truth == i)) for i, c in enumerate(CLASSES + ("ghost_clutter",))}
        conf = np.zeros((len(CLASSES) + 1, len(CLASSES)), int)
        np.add.at(conf, (np.clip(truth, 0, len(CLASSES)), cls), 1)
        s["class_confusion"] = {"rows_true": list(CLASSES) + ["ghost_clutter"], "cols_heuristic": list(CLASSES),
                                "counts": conf.tolist()}
    if images:
        s["image"] = {k: _hist_plain([im[k] for im in images]) for k in images[0]}
    return s


def _class_table(cls: np.ndarray, cat, frames) -> dict:
    out = {}
    agrees, power, rng = cat("agrees").astype(bool), cat("power"), cat("range")
    for i, c in enumerate(CLASSES):
        m = cls == i
        out[c] = {"share": float(m.mean()) if len(m) else None,
                  "share_agree": float(agrees[m].mean()) if m.any() else None,
                  "median_range": float(np.median(rng[m])) if m.any() else None,
                  "median_power": float(np.median(power[m])) if m.any() and len(power) == len(m) else None}
    return out


def _hist_plain(values: Sequence[float]) -> dict:
    v = np.asarray(values, float)
    return {"n": int(len(v)), "median": float(np.median(v)), "p10": float(np.percentile(v, 10)),
            "p90": float(np.percentile(v, 90))}


def image_stats(image: np.ndarray, width: int = 512) -> dict:
    """Colour and gradient statistics of an RGB uint8 image. At full resolution: the sensor noise level (Immerkaer's
    fast noise estimate, sqrt(pi / 2) / 6 x mean |luma * [[1, -2, 1], [-2, 4, -2], [1, -2, 1]]|). On the image resized
    to `width` (area interpolation, so images of different sizes compare): mean luma, luma std (contrast), white
    balance (mean R / G and B / G), mean HSV saturation, median Sobel gradient magnitude and the variance of the
    Laplacian (sharpness)."""
    import cv2

    full = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)
    noise = math.sqrt(math.pi / 2) / 6 * float(np.abs(cv2.filter2D(full, -1, kernel)[1:-1, 1:-1]).mean())
    h = max(8, round(image.shape[0] * width / image.shape[1]))
    im = cv2.resize(image, (width, h), interpolation=cv2.INTER_AREA)
    gray = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1)
    mean = im.reshape(-1, 3).astype(np.float64).mean(0)
    hsv = cv2.cvtColor(im, cv2.COLOR_RGB2HSV)
    return {"luma_mean": float(gray.mean()), "luma_std": float(gray.std()),
            "r_over_g": float(mean[0] / max(mean[1], 1e-6)), "b_over_g": float(mean[2] / max(mean[1], 1e-6)),
            "saturation_mean": float(hsv[..., 1].mean()),
            "gradient_median": float(np.median(np.hypot(gx, gy))),
            "laplacian_var": float(cv2.Laplacian(gray, cv2.CV_32F).var()),
            "noise_sigma": noise}


# ------------------------------------------------------------------------------------------------ comparison
@dataclass(frozen=True)
class Check:
    """One statistic compared between a reference (real) and a candidate (synthetic) summary.

    kind: "ks" (KS distance of two histograms < tol), "rel" (|candidate / reference - 1| <= tol),
    "abs" (|candidate - reference| <= tol, shares in [0, 1]). path: keys into the summary."""

    name: str
    kind: str
    path: tuple[str, ...]
    tol: float


#: The tolerances, fixed before the generator was tuned (see docs/synthetic.md; do not loosen them to pass).
CHECKS: tuple[Check, ...] = (
    Check("points per frame in the image: median", "rel", ("n_in_image", "quantiles", "p50"), 0.15),
    Check("range: median", "rel", ("range", "quantiles", "p50"), 0.15),
    Check("range: distribution", "ks", ("range",), 0.2),
    Check("azimuth: distribution", "ks", ("azimuth",), 0.2),
    Check("elevation: distribution", "ks", ("elevation",), 0.2),
    Check("elevation: interquartile range", "iqr", ("elevation",), 0.25),
    Check("height above the LiDAR ground plane: distribution", "ks", ("height",), 0.2),
    Check("power: distribution", "ks", ("power",), 0.2),
    Check("Doppler: distribution", "ks", ("doppler",), 0.2),
    Check("Doppler relative to ego motion: share moving (> 0.5 m/s)", "abs", ("doppler_moving_share",), 0.05),
    Check("in-image points with LiDAR in the window", "abs", ("agreement", "share_with_lidar"), 0.10),
    Check("points agreeing with LiDAR (of those with LiDAR)", "abs",
          ("agreement", "share_agree_of_with_lidar"), 0.05),
    Check("the rest: |depth error| median", "rel", ("abs_err_rest", "quantiles", "p50"), 0.25),
    Check("the rest: |depth error| distribution", "ks", ("abs_err_rest",), 0.2),
    Check("the rest: pixel offset to the nearest consistent LiDAR, median", "rel",
          ("px_offset_rest", "quantiles", "p50"), 0.25),
    *(Check(f"class share: {c}", "abs", ("classes", c, "share"), 0.10) for c in CLASSES),
)


def _get(d: dict, path: Sequence[str]):
    for k in path:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def sampling_spread(frames: Sequence[dict], checks: Sequence[Check] = CHECKS, n_boot: int = 30, seed: int = 0,
                    cfg: RadarStatsConfig | None = None) -> dict[str, float]:
    """How far each check's statistic moves by the choice of frames alone: the 95th percentile of the check's
    measure between the summary of `frames` and the summaries of `n_boot` bootstrap resamples (frames drawn with
    replacement). Per-frame quantities (points per frame, Doppler, which follows each frame's ego speed) move most."""
    base = summarize(frames, cfg=cfg)
    rng = np.random.default_rng(seed)
    vals: dict[str, list[float]] = {c.name: [] for c in checks}
    for _ in range(n_boot):
        resample = [frames[i] for i in rng.integers(0, len(frames), len(frames))]
        for r in compare(base, summarize(resample, cfg=cfg), checks):
            if r["measure"] is not None:
                vals[r["statistic"]].append(r["measure"])
    return {k: float(np.percentile(v, 95)) if v else 0.0 for k, v in vals.items()}


def compare(reference: dict, candidate: dict, checks: Sequence[Check] = CHECKS) -> list[dict]:
    """Rows {statistic, reference, candidate, measure, tolerance, passed} (passed None when either side lacks it).

    When both summaries carry a "sampling_spread" (`measure_dataset(..., bootstrap=B)`), a row also gets
    allowance = sqrt(spread_ref^2 + spread_candidate^2), the measure that the choice of frames alone can produce,
    and passed_with_sampling = measure within tolerance + allowance: the criterion for comparisons on a modest
    number of frames (the test); `passed` is always the plain tolerance."""
    rows = []
    sa, sb = reference.get("sampling_spread"), candidate.get("sampling_spread")
    for c in checks:
        a, b = _get(reference, c.path), _get(candidate, c.path)
        row = {"statistic": c.name, "kind": c.kind, "tolerance": c.tol, "reference": None, "candidate": None,
               "measure": None, "passed": None}
        if sa is not None and sb is not None and c.name in sa and c.name in sb:
            row["allowance"] = math.hypot(sa[c.name], sb[c.name])
        if a is None or b is None:
            rows.append(row)
            continue
        if c.kind == "ks":
            row["reference"], row["candidate"] = a["quantiles"]["p50"], b["quantiles"]["p50"]
            row["measure"] = ks_distance(a, b)
            row["passed"] = row["measure"] is not None and row["measure"] < c.tol
        elif c.kind == "iqr":
            ia = a["quantiles"]["p75"] - a["quantiles"]["p25"]
            ib = b["quantiles"]["p75"] - b["quantiles"]["p25"]
            row["reference"], row["candidate"] = ia, ib
            row["measure"] = abs(ib / ia - 1) if ia else None
            row["passed"] = row["measure"] is not None and row["measure"] <= c.tol
        elif c.kind == "rel":
            row["reference"], row["candidate"] = a, b
            row["measure"] = abs(b / a - 1) if a else None
            row["passed"] = row["measure"] is not None and row["measure"] <= c.tol
        elif c.kind == "abs":
            row["reference"], row["candidate"] = a, b
            row["measure"] = abs(b - a)
            row["passed"] = row["measure"] <= c.tol
        else:
            raise ValueError(f"check {c.name!r}: unknown kind {c.kind!r}")
        if "allowance" in row:
            row["passed_with_sampling"] = row["measure"] is not None and row["measure"] <= c.tol + row["allowance"]
        rows.append(row)
    return rows


_TOL_TEXT = {"ks": "KS < {t:g}", "rel": "within {p:g}%", "abs": "within {q:g} points", "iqr": "IQR within {p:g}%"}


def markdown_table(rows: Sequence[dict], reference_name: str = "Astyx", candidate_name: str = "synthetic") -> str:
    """The comparison as a markdown table: statistic, reference value, candidate value, measure, tolerance, pass."""
    def fmt(v, kind):
        if v is None:
            return "-"
        if kind == "abs":
            return f"{100 * v:.1f}%"
        return f"{v:.3g}"

    spread = any("allowance" in r for r in rows)
    lines = [f"| statistic | {reference_name} | {candidate_name} | measure | tolerance | pass |"
             + (" sampling spread (p95) |" if spread else ""), "|---|---|---|---|---|---|" + ("---|" if spread else "")]
    for r in rows:
        tol = _TOL_TEXT[r["kind"]].format(t=r["tolerance"], p=100 * r["tolerance"], q=100 * r["tolerance"])
        meas = "-" if r["measure"] is None else (f"{100 * r['measure']:.1f} pt" if r["kind"] == "abs" else
                                                 f"{r['measure']:.3f}" if r["kind"] == "ks" else
                                                 f"{100 * r['measure']:.1f}%")
        ok = {True: "pass", False: "**FAIL**", None: "n/a"}[r["passed"]]
        name = r["statistic"].replace("|", "\\|")            # a literal | would end the cell
        line = f"| {name} | {fmt(r['reference'], r['kind'])} | {fmt(r['candidate'], r['kind'])} | " \
               f"{meas} | {tol} | {ok} |"
        if spread:
            a = r.get("allowance")
            line += " - |" if a is None else (f" {100 * a:.1f} pt |" if r["kind"] == "abs" else
                                              f" {a:.3f} |" if r["kind"] == "ks" else f" {100 * a:.1f}% |")
        lines.append(line)
    return "\n".join(lines)


def measure_dataset(dataset, cfg: RadarStatsConfig | None = None, doppler_period: Optional[float] = None,
                    with_images: bool = True, progress=None, bootstrap: int = 30) -> tuple[dict, list[dict]]:
    """`summarize` over every loadable frame of a FrameDataset -> (summary, per-frame scalar rows), with the
    `sampling_spread` of every check from `bootstrap` resamples (0 = none). Astyx's Doppler period is used for the
    "astyx" dataset unless given; synthetic frames carry theirs in extras."""
    cfg = cfg or RadarStatsConfig()
    per_frame, images, rows, bad = [], [], [], []
    for frame in dataset.iter_frames(skip_bad=True):
        try:
            boxes = frame_boxes(dataset, frame)
        except ValueError as exc:              # a malformed box file: skip the frame, say which file
            bad.append({"frame_id": frame.frame_id, "reason": str(exc)})
            continue
        period = doppler_period
        if period is None and getattr(dataset, "name", "") == "astyx":
            period = ASTYX_DOPPLER_PERIOD
        if period is None and "radar_doppler_period" in frame.extras:
            period = float(frame.extras["radar_doppler_period"]) or None
        st = frame_radar_stats(frame, boxes, cfg, period)
        per_frame.append(st)
        if with_images:
            images.append(image_stats(frame.image))
        rows.append({k: v for k, v in st.items() if not isinstance(v, np.ndarray)})
        if progress:
            progress(frame.frame_id)
    summary = summarize(per_frame, images, cfg)
    if bootstrap and len(per_frame) > 1:
        summary["sampling_spread"] = sampling_spread(per_frame, n_boot=bootstrap, cfg=cfg)
    summary["config"] = asdict(cfg)
    summary["skipped"] = [{"frame_id": f, "reason": r} for f, r in dataset.skipped] + bad
    return summary, rows


def summary_markdown(summary: dict, name: str) -> str:
    """A short human-readable account of one dataset's summary (quantiles, shares, classes, image statistics)."""
    def q(h, keys=("p10", "p50", "p90"), nd=2):
        return " / ".join("-" if h["quantiles"][k] is None else f"{h['quantiles'][k]:.{nd}f}" for k in keys)

    lines = [f"## Radar statistics: {name} ({summary['frames']} frames, {summary['points_in_image']} in-image "
             "radar points)", "", "| statistic | p10 / p50 / p90 |", "|---|---|"]
    for k, label in (("n_in_image", "radar points per frame in the image"), ("n_total", "radar points per frame"),
                     ("range", "range [m]"), ("azimuth", "azimuth [deg]"), ("elevation", "elevation [deg]"),
                     ("height", "height above the LiDAR ground plane [m]"), ("power", "power [sensor units]"),
                     ("doppler", "Doppler [m/s]"), ("doppler_rel", "Doppler relative to ego motion [m/s]"),
                     ("abs_err_rest", "\\|depth error\\| of points not agreeing with LiDAR [m]"),
                     ("px_offset_rest", "pixel offset to the nearest consistent LiDAR, all points not agreeing [px]")):
        if k in summary and summary[k]["n"]:
            lines.append(f"| {label} | {q(summary[k], nd=0 if k.startswith('n_') else 2)} |")
    a = summary["agreement"]
    pct = lambda v: "-" if v is None else f"{100 * v:.1f}%"  # noqa: E731
    lines += ["", f"Agreement with LiDAR (window {a['window_wh_px'][0]} x {a['window_wh_px'][1]} px, tau = "
              f"{a['tau']}): {pct(a['share_with_lidar'])} of the in-image points have LiDAR in the window, "
              f"{pct(a['share_agree_of_with_lidar'])} of those agree ({pct(a['share_agree_of_in_image'])} of all)."]
    if "ego_speed" in summary:
        e = summary["ego_speed"]["quantiles"]
        lines.append(f"Ego speed from Doppler: median {e['p50']:.1f} m/s (p10 {e['p10']:.1f}, p90 {e['p90']:.1f}); "
                     f"static points read {'+' if (summary['doppler_static_sign'] or 0) > 0 else '-'}v_ego cos(angle) "
                     f"(mean sign {summary['doppler_static_sign']}); moving share "
                     f"{pct(summary['doppler_moving_share'])}.")
    lines += ["", "| class | share | agrees with LiDAR | median range [m] | median power |", "|---|---|---|---|---|"]
    for c, v in summary["classes"].items():
        mr = "-" if v["median_range"] is None else f"{v['median_range']:.1f}"
        mp = "-" if v["median_power"] is None else f"{v['median_power']:.1f}"
        lines.append(f"| {c} | {pct(v['share'])} | {pct(v['share_agree'])} | {mr} | {mp} |")
    if "classes_true" in summary:
        lines += ["", "Generator truth: " + ", ".join(f"{c} {pct(v)}" for c, v in summary["classes_true"].items())]
    if "image" in summary:
        lines += ["", "| image statistic | p10 / median / p90 |", "|---|---|"]
        for k, v in summary["image"].items():
            lines.append(f"| {k} | {v['p10']:.3g} / {v['median']:.3g} / {v['p90']:.3g} |")
    return "\n".join(lines) + "\n"


def image_comparison_markdown(reference: dict, candidate: dict, reference_name: str = "Astyx",
                              candidate_name: str = "synthetic") -> str:
    """Medians of the image statistics side by side (reported, not checked)."""
    if "image" not in reference or "image" not in candidate:
        return ""
    lines = [f"| image statistic (median over frames) | {reference_name} | {candidate_name} |", "|---|---|---|"]
    for k, v in reference["image"].items():
        if k in candidate["image"]:
            lines.append(f"| {k} | {v['median']:.3g} | {candidate['image'][k]['median']:.3g} |")
    return "\n".join(lines) + "\n"


def write_report(summary: dict, out_json: Path, name: str, reference: Optional[dict] = None,
                 reference_name: str = "reference") -> Optional[list[dict]]:
    """Write the summary to `out_json` and a markdown account next to it (same stem, .md); with a reference summary
    also the comparison table (returned as rows) and the image statistics side by side."""
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    rows = compare(reference, summary) if reference is not None else None
    doc = dict(summary)
    if rows is not None:
        doc["comparison"] = {"reference": reference_name, "rows": rows}
    out_json.write_text(json.dumps(doc, indent=1))
    md = summary_markdown(summary, name)
    if rows is not None:
        md += (f"\n## {name} against {reference_name}\n\n" + markdown_table(rows, reference_name, name) + "\n\n"
               + image_comparison_markdown(reference, summary, reference_name, name))
    out_json.with_suffix(".md").write_text(md)
    return rows


__all__ = ["CLASSES", "Box", "read_astyx_boxes", "boxes_from_array", "frame_boxes", "RadarStatsConfig",
           "fit_ego_doppler", "fit_ground_plane", "level_frame", "classify_points", "nearest_consistent_offset",
           "frame_radar_stats", "summarize", "image_stats", "ks_distance", "Check", "CHECKS", "sampling_spread",
           "compare",
           "markdown_table", "measure_dataset", "summary_markdown", "write_report", "ASTYX_DOPPLER_PERIOD"]
