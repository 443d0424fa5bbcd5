"""Writing results: 16-bit depth PNGs (KITTI convention), anchor arrays and figures (OpenCV only).

Depth PNG: uint16, value = round(depth_m * 256), 0 = invalid (NaN); depths beyond 255.996 m saturate at 65535.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..frame import Frame, RadarAnchors

DEPTH_PNG_SCALE = 256.0


def write_depth_png(path: str | Path, depth: np.ndarray) -> None:
    """H x W metres (NaN = invalid) -> uint16 PNG (metres x 256, 0 = invalid)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    d = np.asarray(depth, np.float64)
    ok = np.isfinite(d) & (d > 0)
    out = np.zeros(d.shape, np.uint16)
    out[ok] = np.clip(np.rint(d[ok] * DEPTH_PNG_SCALE), 1, 65535).astype(np.uint16)
    if not cv2.imwrite(str(path), out):
        raise OSError(f"{path}: cannot write PNG")


def read_depth_png(path: str | Path) -> np.ndarray:
    """Inverse of write_depth_png: H x W float32 metres, NaN where the PNG holds 0."""
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None or raw.dtype != np.uint16 or raw.ndim != 2:
        raise ValueError(f"{path}: not a single-channel 16-bit depth PNG")
    d = raw.astype(np.float32) / DEPTH_PNG_SCALE
    d[raw == 0] = np.nan
    return d


def write_anchors(path: str | Path, anchors: RadarAnchors) -> None:
    """float32 K x 4 (u, v, depth, confidence) of the kept anchors, full-resolution pixels."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, anchors.kept_array())


def colorize_depth(depth: np.ndarray, min_depth: float = 0.5, max_depth: float = 80.0) -> np.ndarray:
    """H x W metres -> H x W x 3 uint8 RGB: turbo colour map of sqrt-scaled inverse depth over [min_depth, max_depth]
    (near = red, far = blue); NaN / <= 0 = black. The one colour map of the package (figures, demo, inspect, the
    node's depth/colored; `depth_colours` for points, `draw_colour_bar` for its legend); in-place OpenCV ops, about
    2 ms at 640x480 on one CPU core."""
    d = np.asarray(depth, np.float32)
    if d.ndim != 2:
        raise ValueError(f"depth: expected an H x W map, got shape {d.shape} (depth_colours takes N values)")
    ok = d > 0  # False for NaN too
    img = cv2.applyColorMap(_colour_index(d, min_depth, max_depth), cv2.COLORMAP_TURBO)
    cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=img)
    img[~ok] = 0
    return img


def _colour_index(d: np.ndarray, min_depth: float, max_depth: float) -> np.ndarray:
    """uint8 index into the turbo map: 255 * sqrt of inverse depth normalised over [1/max_depth, 1/min_depth]."""
    lo, hi = 1.0 / max_depth, 1.0 / min_depth
    inv = np.empty_like(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        np.divide(1.0, d, out=inv)
        np.clip(inv, lo, hi, out=inv)
        inv -= lo
        inv *= 1.0 / (hi - lo)
        cv2.sqrt(inv, inv)  # spreads the far range
    return cv2.convertScaleAbs(inv, alpha=255.0)


def depth_colours(depth: np.ndarray, min_depth: float = 0.5, max_depth: float = 80.0, bgr: bool = False) -> np.ndarray:
    """N depths (metres) -> N x 3 uint8 colours of `colorize_depth` (RGB, or BGR for OpenCV drawing)."""
    c = colorize_depth(np.asarray(depth, np.float32).reshape(1, -1), min_depth, max_depth)[0]
    return np.ascontiguousarray(c[:, ::-1]) if bgr else c


#: depths (metres) a colour bar may label
_TICKS = (0.5, 1, 2, 3, 5, 10, 20, 30, 50, 80, 100, 150, 200, 300, 500, 1000)


def draw_colour_bar(img: np.ndarray, min_depth: float = 0.5, max_depth: float = 80.0, bgr: bool = False) -> np.ndarray:
    """Draw the legend of `colorize_depth` into `img` (H x W x 3 uint8, RGB or BGR; in place, returned): a vertical
    bar at the right edge, near (red) at the top, far (blue) at the bottom, with a few depths labelled in metres.
    The image keeps its size, so it can go straight into a depth/colored message."""
    h, w = img.shape[:2]
    bar_w = max(6, w // 60)
    top, bottom = int(0.08 * h), int(0.92 * h)
    if bottom - top < 8 or w < 4 * bar_w:
        return img
    x1 = w - 4 - bar_w
    # rows from near (top) to far (bottom), evenly spaced in the colour map's own coordinate
    t = np.linspace(1.0, 0.0, bottom - top, dtype=np.float32)
    lo, hi = 1.0 / max_depth, 1.0 / min_depth
    depths = 1.0 / (lo + t ** 2 * (hi - lo))
    column = depth_colours(depths, min_depth, max_depth, bgr)
    img[top:bottom, x1:x1 + bar_w] = column[:, None, :]
    cv2.rectangle(img, (x1 - 1, top - 1), (x1 + bar_w, bottom), (255, 255, 255), 1)
    scale = max(0.3, min(0.5, h / 900))
    ticks = [d for d in _TICKS if min_depth <= d <= max_depth]
    if len(ticks) > 5:
        ticks = [ticks[int(round(i))] for i in np.linspace(0, len(ticks) - 1, 5)]
    for d in ticks:
        y = top + int(round((1.0 - np.sqrt((1.0 / d - lo) / (hi - lo))) * (bottom - top - 1)))
        text = f"{d:g} m"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        org = (max(0, x1 - 4 - tw), min(h - 2, max(th + 1, y + th // 2)))
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.line(img, (x1 - 3, y), (x1, y), (255, 255, 255), 1)
    return img


def _label(img: np.ndarray, text: str) -> np.ndarray:
    img = img.copy()
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.55, 1)
    cv2.rectangle(img, (4, 4), (12 + tw, 12 + th + base), (0, 0, 0), -1)
    cv2.putText(img, text, (8, 8 + th), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def figure(frame: Frame, depth: np.ndarray, anchors: RadarAnchors, gt: Optional[np.ndarray] = None,
           min_depth: float = 1.0, max_depth: float = 100.0, max_width: int = 1024, title: str = "") -> np.ndarray:
    """Stacked RGB panels: image with raw (red) and refined kept (green) anchors, colourised depth, and, when `gt`
    (sparse LiDAR, 0 = none) is given, the relative error |pred - gt| / gt at LiDAR pixels (0 = blue .. >= 0.5 = red)."""
    h, w = depth.shape
    s = min(1.0, max_width / w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    r = max(1, round(2 * s + 1))

    img = cv2.resize(frame.image, size, interpolation=cv2.INTER_AREA)
    for (u, v) in anchors.uv_raw:
        cv2.circle(img, (int(u * s), int(v * s)), r, (255, 40, 40), -1)
    for (u0, v0), (u, v) in zip(anchors.uv_raw[anchors.kept], anchors.uv[anchors.kept]):
        cv2.line(img, (int(u0 * s), int(v0 * s)), (int(u * s), int(v * s)), (255, 255, 0), 1)
        cv2.circle(img, (int(u * s), int(v * s)), r, (40, 255, 40), -1)
    panels = [_label(img, f"{title} anchors: raw {len(anchors)} (red), kept {anchors.num_kept} (green)")]
    dep = cv2.resize(colorize_depth(depth, min_depth, max_depth), size, interpolation=cv2.INTER_NEAREST)
    draw_colour_bar(dep, min_depth, max_depth)
    panels.append(_label(dep, f"depth {min_depth:g}-{max_depth:g} m (inverse, turbo)"))
    if gt is not None:
        err = np.zeros((h, w, 3), np.uint8)
        ok = (gt > 0) & np.isfinite(depth)
        rel = np.zeros((h, w), np.float32)
        rel[ok] = np.abs(depth[ok] - gt[ok]) / gt[ok]
        col = cv2.applyColorMap((np.clip(rel / 0.5, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)[..., ::-1]
        mask = cv2.dilate(ok.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        grown = cv2.dilate(np.where(ok[..., None], col, 0).astype(np.uint8), np.ones((3, 3), np.uint8))
        err[mask] = grown[mask]
        mean = float(rel[ok].mean()) if ok.any() else float("nan")
        err = cv2.resize(err, size, interpolation=cv2.INTER_NEAREST)
        panels.append(_label(err, f"|error| / LiDAR (0 blue .. 0.5 red), mean AbsRel {mean:.3f}"))
    return np.concatenate(panels, axis=0)


def write_figure(path: str | Path, rgb: np.ndarray) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), rgb[..., ::-1]):
        raise OSError(f"{path}: cannot write PNG")
