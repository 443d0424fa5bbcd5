"""Projection and sparse depth maps.

`T_a_b` maps points from frame b into frame a. Depth is the camera-frame z (metres). Pixels are (u, v) = (column,
row) with pixel centres at integer coordinates, so the pixel holding (u, v) is (round(v), round(u)).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .frame import CameraModel

#: Points closer than this to the camera plane are treated as behind it (metres).
MIN_DEPTH = 0.1


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to N x 3 points -> N x 3 (float64)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return p @ T[:3, :3].T + T[:3, 3]


def project_camera_points(points_cam: np.ndarray, camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Project N x 3 camera-optical-frame points to pixels with the camera's OpenCV distortion.

    Returns (uv N x 2 float64, depth N float64 = z). Points with z <= MIN_DEPTH get uv = NaN.
    """
    p = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    z = p[:, 2].copy()
    uv = np.full((len(p), 2), np.nan)
    front = z > MIN_DEPTH
    if front.any():
        pf = p[front]
        if camera.has_distortion:
            uv_f, _ = cv2.projectPoints(pf.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.K, camera.dist)
            uv[front] = uv_f.reshape(-1, 2)
        else:
            xn = pf[:, :2] / pf[:, 2:3]
            uv[front] = xn @ camera.K[:2, :2].T + camera.K[:2, 2]
    return uv, z


def in_image_mask(uv: np.ndarray, width: int, height: int, margin: float = 0.0) -> np.ndarray:
    """True where the rounded pixel (u, v) lies inside [margin, size - 1 - margin]; NaN -> False."""
    u, v = uv[:, 0], uv[:, 1]
    with np.errstate(invalid="ignore"):
        return ((u >= -0.5 + margin) & (u < width - 0.5 - margin) & (v >= -0.5 + margin) & (v < height - 0.5 - margin))


@dataclass
class Projection:
    """Points of one sensor projected into the image.

    index: K int, rows of the input points that land in the image in front of the camera.
    uv: K x 2 float32 pixels. depth: K float32 metres (camera z). points_cam: K x 3 float32 camera-frame xyz.
    """

    index: np.ndarray
    uv: np.ndarray
    depth: np.ndarray
    points_cam: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])


def project_to_image(points: np.ndarray, T_cam_sensor: np.ndarray, camera: CameraModel,
                     max_depth: float = np.inf) -> Projection:
    """Transform sensor-frame points into the camera and keep those in front of it and inside the image."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    pc = transform_points(T_cam_sensor, pts)
    uv, z = project_camera_points(pc, camera)
    keep = in_image_mask(uv, camera.width, camera.height) & (z > MIN_DEPTH) & (z <= max_depth)
    idx = np.flatnonzero(keep)
    return Projection(idx, uv[idx].astype(np.float32), z[idx].astype(np.float32), pc[idx].astype(np.float32))


def sparse_depth_map(uv: np.ndarray, depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Rasterise projected points into an H x W float32 depth map with a z-buffer: where several points land on the
    same pixel the nearest wins. 0 = no point. Points outside the image are ignored."""
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(depth, dtype=np.float32).reshape(-1)
    ok = in_image_mask(uv, width, height) & np.isfinite(d) & (d > 0)
    cols = np.rint(uv[ok, 0]).astype(np.int64)
    rows = np.rint(uv[ok, 1]).astype(np.int64)
    d = d[ok]
    out = np.full(height * width, np.inf, dtype=np.float32)
    np.minimum.at(out, rows * width + cols, d)  # z-buffer: nearest point wins each pixel
    out[np.isinf(out)] = 0.0
    return out.reshape(height, width)
