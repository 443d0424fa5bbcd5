"""Projection and sparse depth maps.

`T_a_b` maps points from frame b into frame a. Depth is the camera-frame z (metres). Pixels are (u, v) = (column,
row) with pixel centres at integer coordinates, so the pixel holding (u, v) is (round(v), round(u)).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .frame import CameraModel, FrameError

#: Points closer than this to the camera plane are treated as behind it (metres).
MIN_DEPTH = 0.1


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 transform to N x 3 points -> N x 3 (float64)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    return p @ T[:3, :3].T + T[:3, 3]


def _corner_radius(camera: CameraModel) -> float:
    """Largest undistorted normalized radius of the image corners (the edge of the field of view)."""
    w, h = camera.width, camera.height
    corners = np.array([[-0.5, -0.5], [w - 0.5, -0.5], [-0.5, h - 0.5], [w - 0.5, h - 0.5]], np.float64)
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    xn = cv2.undistortPoints(corners.reshape(-1, 1, 2), camera.K, camera.dist, None, None, None, crit)
    xn = xn.reshape(-1, 2)
    back, _ = cv2.projectPoints(np.c_[xn, np.ones(4)].reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.K,
                                camera.dist)
    if not np.allclose(back.reshape(-1, 2), corners, atol=0.5):
        return float("inf")  # the iterative undistortion did not converge: keep every point rather than guess
    return float(np.linalg.norm(xn, axis=1).max())


def project_camera_points(points_cam: np.ndarray, camera: CameraModel) -> tuple[np.ndarray, np.ndarray]:
    """Project N x 3 camera-optical-frame points to pixels with the camera's OpenCV distortion.

    Returns (uv N x 2 float64, depth N float64 = z). Points with z <= MIN_DEPTH get uv = NaN; with distortion, so do
    points beyond the image corners' viewing angle (where the distortion model folds back into the image).
    """
    p = np.asarray(points_cam, dtype=np.float64).reshape(-1, 3)
    z = p[:, 2].copy()
    uv = np.full((len(p), 2), np.nan)
    front = z > MIN_DEPTH
    if front.any():
        pf = p[front]
        if camera.has_distortion:
            uv_f, _ = cv2.projectPoints(pf.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), camera.K, camera.dist)
            uv_f = uv_f.reshape(-1, 2)
            # The distortion polynomial folds back at large angles (e.g. k1 < 0): a point far outside the field of
            # view can land inside the image. Drop points whose undistorted radius exceeds the image corners'.
            r = np.linalg.norm(pf[:, :2] / pf[:, 2:3], axis=1)
            uv_f[r > _corner_radius(camera) * 1.05] = np.nan
            uv[front] = uv_f
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


def filter_occluded(uv: np.ndarray, depth: np.ndarray, width: int, height: int, window: int = 7,
                    rel_margin: float = 0.1, abs_margin: float = 1.0) -> np.ndarray:
    """Keep-mask (N bool) that drops projected points hidden from the camera (optional; off by default everywhere).

    A LiDAR mounted apart from the camera sees surfaces the camera does not: after projection such a background
    point lands next to (or among) the points of the foreground object that hides it. Rule (image-space z-buffer
    test): a point is occluded when a window x window pixel neighbourhood of the z-buffered sparse depth map holds a
    point nearer by more than max(abs_margin m, rel_margin * nearer depth). The neighbourhood minimum is an OpenCV
    erosion of the depth map. The window should be a few pixels, smaller than the gap between LiDAR beams in the
    image; otherwise points below a beam (usually nearer ground) would hide the points above them.
    """
    if window < 1 or window % 2 == 0:
        raise ValueError(f"window: expected a positive odd number of pixels, got {window}")
    uv = np.asarray(uv, dtype=np.float64).reshape(-1, 2)
    d = np.asarray(depth, dtype=np.float64).reshape(-1)
    keep = np.zeros(len(d), dtype=bool)
    ok = in_image_mask(uv, width, height) & np.isfinite(d) & (d > 0)
    if not ok.any():
        return keep
    zbuf = sparse_depth_map(uv[ok], d[ok], width, height)
    big = np.float32(1e9)
    zmin = cv2.erode(np.where(zbuf > 0, zbuf, big), np.ones((window, window), np.uint8),
                     borderType=cv2.BORDER_CONSTANT, borderValue=float(big))
    cols = np.rint(uv[ok, 0]).astype(np.int64)
    rows = np.rint(uv[ok, 1]).astype(np.int64)
    nearest = zmin[rows, cols].astype(np.float64)
    keep[ok] = d[ok] <= nearest + np.maximum(abs_margin, rel_margin * nearest)
    return keep


def lidar_depth_map(frame, occlusion_filter: bool = False, max_depth: float = np.inf, required: bool = False,
                    **filter_kwargs) -> np.ndarray:
    """Sparse LiDAR ground truth of a frame: H x W float32 metres, 0 = no point. The one ground-truth function of
    the package (training labels, anchor and depth evaluation, bag scoring, inspect, figures).

    The frame's LiDAR is projected with T_cam_lidar and the camera's distortion and z-buffered (nearest point wins a
    pixel). occlusion_filter=True first drops points hidden from the camera (`filter_occluded`, keyword arguments
    passed on); it is off by default so numbers stay comparable with the paper, which evaluates on the raw projection.
    A frame without LiDAR gives an all-zero map, or, with required=True, a FrameError naming the frame.
    """
    h, w = frame.height, frame.width
    if required and frame.lidar is None:
        raise FrameError(f"lidar: frame {frame.frame_id!r} has no LiDAR (labels and evaluation need it)")
    if frame.lidar is None or len(frame.lidar) == 0:
        return np.zeros((h, w), np.float32)
    p = project_to_image(frame.lidar, frame.T_cam_lidar, frame.camera, max_depth=max_depth)
    uv, d = p.uv, p.depth
    if occlusion_filter and len(p):
        keep = filter_occluded(uv, d, w, h, **filter_kwargs)
        uv, d = uv[keep], d[keep]
    return sparse_depth_map(uv, d, w, h)


# ---------------------------------------------------------------------------------------------------------------
# rigid transforms from parameters and from a tree of static transforms (tf2's /tf_static)
def transform_from_xyz_rpy(xyz_rpy) -> np.ndarray:
    """x y z (m) roll pitch yaw (rad) -> 4x4, R = Rz(yaw) Ry(pitch) Rx(roll) (static axes; ROS REP 103 and the
    node's extrinsics.xyz_rpy parameter)."""
    from transforms3d.euler import euler2mat

    v = np.asarray(xyz_rpy, dtype=np.float64).reshape(-1)
    if v.shape != (6,):
        raise FrameError(f"xyz_rpy: expected 6 numbers, got {v.size}")
    T = np.eye(4)
    T[:3, :3] = euler2mat(v[3], v[4], v[5], "sxyz")
    T[:3, 3] = v[:3]
    return T


class TransformTree:
    """Static transforms between named frames, as tf2 keeps them: each child has one parent and `T_parent_child`
    (maps child-frame points into the parent frame). `lookup(target, source)` composes the chain target <- ... <- root
    -> ... <- source, i.e. T_target_source. Hand-written (a few lines) because tf2_ros is not on PyPI and only static
    transforms are needed."""

    def __init__(self) -> None:
        self.parent: dict[str, tuple[str, np.ndarray]] = {}

    def add(self, parent: str, child: str, T_parent_child: np.ndarray) -> None:
        """Add or replace (a later /tf_static message wins, as in tf2) the edge parent -> child."""
        self.parent[child.lstrip("/")] = (parent.lstrip("/"), np.asarray(T_parent_child, dtype=np.float64))

    @property
    def frames(self) -> set[str]:
        return set(self.parent) | {p for p, _ in self.parent.values()}

    def _to_root(self, frame: str) -> tuple[list[str], np.ndarray]:
        """(frames from `frame` up to its root, T_root_frame)."""
        chain, T = [frame], np.eye(4)
        while chain[-1] in self.parent:
            p, T_pc = self.parent[chain[-1]]
            if p in chain:
                raise FrameError(f"transform tree: loop through {p!r}")
            T = T_pc @ T
            chain.append(p)
        return chain, T

    def lookup(self, target: str, source: str) -> np.ndarray:
        """T_target_source (source-frame points -> target frame); FrameError naming the frames when they are not
        connected."""
        target, source = target.lstrip("/"), source.lstrip("/")
        if target == source:
            return np.eye(4)
        known = self.frames
        for name in (target, source):
            if name not in known:
                raise FrameError(f"transform tree: no frame {name!r} (frames: {sorted(known)})")
        t_chain, T_root_target = self._to_root(target)
        s_chain, T_root_source = self._to_root(source)
        if t_chain[-1] != s_chain[-1]:
            raise FrameError(f"transform tree: {target!r} (root {t_chain[-1]!r}) and {source!r} (root "
                             f"{s_chain[-1]!r}) are not connected")
        return np.linalg.inv(T_root_target) @ T_root_source
