"""The nouns of racalnet_ros: a synchronized sensor sample (`Frame`), refined radar anchors (`RadarAnchors`) and the
pipeline's output (`Result`).

Conventions (used everywhere in the package):
- images are H x W x 3 uint8 RGB, pixels (u, v) = (column, row), pixel centres at integer coordinates;
- `T_cam_radar` / `T_cam_lidar` are 4x4 homogeneous transforms mapping points from the sensor frame into the camera
  *optical* frame (x right, y down, z forward, metres);
- depth is the camera-frame z in metres; "inverse depth" is 1 / depth in 1/m; a monocular prior is *relative* inverse
  depth (larger = nearer, unknown scale and shift);
- numpy at the edges, torch only inside the networks. Nothing here imports rclpy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from .errors import RacalnetError

#: Canonical radar column names. x, y, z (metres, radar frame) are required; the others are optional and present
#: only when the sensor reports them.
RADAR_XYZ = ("x", "y", "z")
RADAR_OPTIONAL = ("doppler", "power")


class FrameError(RacalnetError, ValueError):
    """Raised when a Frame (or a piece of it) is malformed. The message names the offending field."""


def _check_transform(name: str, T: np.ndarray) -> np.ndarray:
    T = np.asarray(T, dtype=np.float64)
    if T.shape != (4, 4):
        raise FrameError(f"{name}: expected a 4x4 transform, got shape {T.shape}")
    if not np.all(np.isfinite(T)):
        raise FrameError(f"{name}: transform contains NaN or inf")
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=1e-6):
        raise FrameError(f"{name}: last row must be [0, 0, 0, 1], got {T[3].tolist()}")
    R = T[:3, :3]
    det = np.linalg.det(R)
    if abs(det) < 1e-6:
        raise FrameError(f"{name}: rotation part is singular (det={det:.3g})")
    if not np.allclose(R @ R.T, np.eye(3), atol=1e-3) or det < 0:
        raise FrameError(f"{name}: rotation part is not a proper rotation (det={det:.4f})")
    return T


@dataclass
class CameraModel:
    """Pinhole camera with OpenCV distortion.

    K: 3x3 intrinsics (pixels). dist: OpenCV distortion coefficients (k1, k2, p1, p2[, k3[, k4, k5, k6]]), may be
    empty for an undistorted camera. width/height: image size in pixels. `distortion_model` follows ROS CameraInfo
    naming ("plumb_bob" or "rational_polynomial").
    """

    K: np.ndarray
    width: int
    height: int
    dist: np.ndarray = field(default_factory=lambda: np.zeros(0))
    distortion_model: str = "plumb_bob"

    def __post_init__(self) -> None:
        self.K = np.asarray(self.K, dtype=np.float64)
        self.dist = np.asarray(self.dist, dtype=np.float64).reshape(-1)
        if self.K.shape != (3, 3):
            raise FrameError(f"camera.K: expected 3x3, got shape {self.K.shape}")
        if not np.all(np.isfinite(self.K)):
            raise FrameError("camera.K: contains NaN or inf")
        if self.K[0, 0] <= 0 or self.K[1, 1] <= 0 or abs(np.linalg.det(self.K)) < 1e-9:
            raise FrameError(f"camera.K: focal lengths must be positive and K invertible, got {self.K.tolist()}")
        if not np.all(np.isfinite(self.dist)):
            raise FrameError("camera.dist: contains NaN or inf")
        if self.dist.size not in (0, 4, 5, 8, 12, 14):
            raise FrameError(f"camera.dist: OpenCV expects 4, 5, 8, 12 or 14 coefficients, got {self.dist.size}")
        if int(self.width) <= 0 or int(self.height) <= 0:
            raise FrameError(f"camera: width/height must be positive, got {self.width}x{self.height}")
        self.width, self.height = int(self.width), int(self.height)

    @property
    def has_distortion(self) -> bool:
        return self.dist.size > 0 and bool(np.any(self.dist != 0))

    def scaled(self, sx: float, sy: float) -> "CameraModel":
        """The same camera for an image resized by (sx, sy) (new = old * s); distortion is unchanged."""
        K = self.K.copy()
        K[0] *= sx
        K[1] *= sy
        return CameraModel(K, round(self.width * sx), round(self.height * sy), self.dist.copy(), self.distortion_model)


@dataclass
class Frame:
    """One synchronized radar + camera (+ optional LiDAR, prior, ground truth) sample.

    Fields:
      image: H x W x 3 uint8 RGB.
      camera: CameraModel; its width/height must match the image.
      radar: N x C float32, columns named by `radar_fields` (must start with x, y, z in the radar frame, metres;
        optional "doppler" m/s and "power" (RCS / magnitude, sensor units)).
      T_cam_radar: 4x4, radar frame -> camera optical frame.
      lidar: optional M x 3 float32 (x, y, z in the LiDAR frame, metres), with T_cam_lidar.
      prior: optional H x W float32 relative inverse depth from a monocular network (larger = nearer).
      depth_gt: optional H x W float32 dense ground-truth depth in metres (0 = unknown); synthetic data only.
      stamp: seconds. frame_id: a stable identifier ("000042", or a ROS frame id + stamp).
      extras: dataset-specific arrays (e.g. synthetic "radar_uv_true", N x 2 true pixel of every radar point).
    """

    image: np.ndarray
    camera: CameraModel
    radar: np.ndarray
    T_cam_radar: np.ndarray
    radar_fields: Sequence[str] = RADAR_XYZ
    lidar: Optional[np.ndarray] = None
    T_cam_lidar: Optional[np.ndarray] = None
    prior: Optional[np.ndarray] = None
    depth_gt: Optional[np.ndarray] = None
    stamp: float = 0.0
    frame_id: str = ""
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ validation
    def validate(self) -> "Frame":
        """Check shapes, dtypes and finiteness; raise FrameError naming the field. Returns self."""
        img = self.image
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3:
            raise FrameError(f"image: expected H x W x 3 RGB array, got {getattr(img, 'shape', type(img))}")
        if img.dtype != np.uint8:
            raise FrameError(f"image: expected uint8, got {img.dtype}")
        if not isinstance(self.camera, CameraModel):
            raise FrameError("camera: expected a CameraModel")
        h, w = img.shape[:2]
        if (self.camera.width, self.camera.height) != (w, h):
            raise FrameError(
                f"image: size {w}x{h} does not match the calibration's {self.camera.width}x{self.camera.height}")

        self.radar_fields = tuple(self.radar_fields)
        if self.radar_fields[:3] != RADAR_XYZ:
            raise FrameError(f"radar_fields: must start with x, y, z, got {self.radar_fields}")
        if len(set(self.radar_fields)) != len(self.radar_fields):
            raise FrameError(f"radar_fields: duplicate names in {self.radar_fields}")
        radar = np.asarray(self.radar, dtype=np.float32)
        if radar.ndim == 1 and radar.size == 0:
            radar = radar.reshape(0, len(self.radar_fields))
        if radar.ndim != 2 or radar.shape[1] != len(self.radar_fields):
            raise FrameError(f"radar: expected N x {len(self.radar_fields)} ({', '.join(self.radar_fields)}), "
                             f"got shape {radar.shape}")
        if not np.all(np.isfinite(radar)):
            bad = int((~np.isfinite(radar)).any(axis=1).sum())
            raise FrameError(f"radar: {bad} point(s) contain NaN or inf")
        self.radar = radar
        self.T_cam_radar = _check_transform("T_cam_radar", self.T_cam_radar)

        if self.lidar is not None:
            lidar = np.asarray(self.lidar, dtype=np.float32)
            if lidar.ndim != 2 or lidar.shape[1] < 3:
                raise FrameError(f"lidar: expected M x 3 (x, y, z), got shape {lidar.shape}")
            if not np.all(np.isfinite(lidar[:, :3])):
                raise FrameError("lidar: points contain NaN or inf")
            self.lidar = lidar[:, :3]
            if self.T_cam_lidar is None:
                raise FrameError("T_cam_lidar: required when lidar is given")
            self.T_cam_lidar = _check_transform("T_cam_lidar", self.T_cam_lidar)
        elif self.T_cam_lidar is not None:
            self.T_cam_lidar = _check_transform("T_cam_lidar", self.T_cam_lidar)

        for name in ("prior", "depth_gt"):
            arr = getattr(self, name)
            if arr is None:
                continue
            arr = np.asarray(arr, dtype=np.float32)
            if arr.shape != (h, w):
                raise FrameError(f"{name}: expected {h} x {w} (image size), got {arr.shape}")
            if name == "prior" and not np.all(np.isfinite(arr)):
                raise FrameError("prior: contains NaN or inf")
            setattr(self, name, arr)
        return self

    # ------------------------------------------------------------------ accessors
    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def num_radar(self) -> int:
        return int(self.radar.shape[0])

    def has_radar_field(self, name: str) -> bool:
        return name in self.radar_fields

    def radar_column(self, name: str) -> np.ndarray:
        """One radar column by name (e.g. "doppler"); KeyError naming the available fields if absent."""
        try:
            return self.radar[:, self.radar_fields.index(name)]
        except ValueError:
            raise KeyError(f"radar has no field {name!r}; available: {self.radar_fields}") from None

    @property
    def radar_xyz(self) -> np.ndarray:
        return self.radar[:, :3]


@dataclass
class RadarAnchors:
    """Radar points after recalibration (paper Eq. 3), one row per radar point that projects into the image.

    All pixel coordinates are at the frame's full image resolution.
      index: N int, row of each anchor in Frame.radar.
      uv_raw: N x 2 float32, original projection (u, v) in pixels.
      displacement: N x 2 float32, predicted pixel displacement (du, dv); zeros if displacement is off.
      uv: N x 2 float32, refined pixel uv_raw + displacement.
      depth: N float32, camera-frame depth in metres (the radar measurement; recalibration moves pixels, not depth).
      confidence: N float32 in [0, 1]; 1 for every point when screening is off; NaN for a point the network did not
        evaluate (left out by the recalibration cap on points per frame; such a point is never kept).
      kept: N bool, confidence >= threshold.
    """

    index: np.ndarray
    uv_raw: np.ndarray
    displacement: np.ndarray
    uv: np.ndarray
    depth: np.ndarray
    confidence: np.ndarray
    kept: np.ndarray

    @classmethod
    def empty(cls) -> "RadarAnchors":
        z2 = np.zeros((0, 2), np.float32)
        z1 = np.zeros(0, np.float32)
        return cls(np.zeros(0, np.int64), z2, z2.copy(), z2.copy(), z1, z1.copy(), np.zeros(0, bool))

    @classmethod
    def from_raw(cls, index: np.ndarray, uv_raw: np.ndarray, depth: np.ndarray) -> "RadarAnchors":
        """Anchors that keep every raw projection unchanged (the "no recalibration" ablation)."""
        n = len(index)
        uv_raw = np.asarray(uv_raw, np.float32).reshape(n, 2)
        return cls(np.asarray(index, np.int64), uv_raw, np.zeros((n, 2), np.float32), uv_raw.copy(),
                   np.asarray(depth, np.float32), np.ones(n, np.float32), np.ones(n, bool))

    def __len__(self) -> int:
        return int(self.index.shape[0])

    @property
    def num_kept(self) -> int:
        return int(self.kept.sum())

    def fit_inputs(self, weighting: str = "threshold") -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
        """(uv K x 2, depth K, weights K or None) of the anchors that enter Metric Depth Optimization
        (`align.anchor_weights`): "threshold" = the kept anchors with equal weights (paper Eq. 11 / 14);
        "confidence" = every anchor the network evaluated (finite confidence), weighted by its confidence."""
        if weighting == "confidence":
            k = np.isfinite(self.confidence) & (self.confidence > 0)
            return self.uv[k], self.depth[k], self.confidence[k].astype(np.float64)
        if weighting != "threshold":
            raise ValueError(f"align.anchor_weights: expected threshold or confidence, got {weighting!r}")
        return self.uv[self.kept], self.depth[self.kept], None

    def kept_array(self) -> np.ndarray:
        """K x 4 float32 (u, v, depth, confidence) of the kept anchors: the format written by `evaluate --save-depth`."""
        k = self.kept
        return np.concatenate([self.uv[k], self.depth[k, None], self.confidence[k, None]], axis=1).astype(np.float32)


@dataclass
class Result:
    """Output of `Pipeline.run(frame)`.

    depth: H x W float32 metres at the frame's resolution; NaN where no depth could be produced (no prior, or every
      fallback failed). anchors: the RadarAnchors used. diagnostics: scale, shift, anchors used, fallbacks taken,
      per-stage times in milliseconds (see Pipeline for the keys).
    """

    depth: np.ndarray
    anchors: RadarAnchors
    diagnostics: dict[str, Any] = field(default_factory=dict)
