"""ZJU-4DRadarCam (the paper's benchmark), read exactly as its public baseline code (RadarCam-Depth) reads it.

    ROOT/data/image/<stem>.png       RGB 1280 x 720
    ROOT/data/gt/<stem>.png          uint16 sparse single-frame LiDAR depth, metres = value / 256, 0 = invalid
    ROOT/data/gt_interp/<stem>.png   uint16 multi-frame interpolated (dense) LiDAR depth, same encoding (optional)
    ROOT/data/radar/<stem>.npy       float N x 3 [u px, v px, depth m], already projected (one point may be shape (3,))
    ROOT/data/radar_png/<stem>.png   the radar as a uint16 depth image (not read: radar/*.npy carries the same points)
    ROOT/data/{train,val,test,full}.txt   one file stem per line
ROOT may be the folder holding `data/` or `data/` itself. Evaluation crops rows 240:540 (`eval_crop_rows`), as the
baseline does (720 // 3 : 720 // 4 * 3).

The dataset ships pixels, not 3D points or a calibration. To fit the Frame data model, radar (u, v, d) and every valid
`gt` pixel are back-projected to camera-frame 3D with a pinhole K (default `NOMINAL_K`, a nominal 1000 px focal
length with the principal point at the image centre; pass K= to override) and identity extrinsics:
x = (u - cx) / fx * d, y = (v - cy) / fy * d, z = d. Re-projecting with the same K returns the original pixels and
depths exactly (up to float32 rounding), so the choice of K changes nothing in pixel space. The radar has only x, y, z
(radar_fields ("x", "y", "z")): the .npy files carry no Doppler or power.

Extras: "depth_gt_sparse" (H x W float32, the `gt` PNG in metres, what the paper evaluates against) and, when present,
"depth_gt_interp" (H x W float32, the `gt_interp` PNG; the baseline's dense training target).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from ..frame import CameraModel, Frame, FrameError
from .base import DatasetError, FrameDataset, load_npy, read_image

IMAGE_SIZE = (1280, 720)  # (width, height)
#: nominal pinhole intrinsics used for back-projection (not the sensor's calibration, which is not published)
NOMINAL_K = np.array([[1000.0, 0.0, 639.5], [0.0, 1000.0, 359.5], [0.0, 0.0, 1.0]])
#: rows evaluated by the baseline: 720 // 3 : 720 // 4 * 3
EVAL_CROP_ROWS = (240, 540)
DEPTH_SCALE = 256.0


def read_depth_png(path: Path, size: tuple[int, int]) -> np.ndarray:
    """uint16 depth PNG -> H x W float32 metres (value / 256, 0 = invalid); DatasetError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: file is missing")
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise DatasetError(f"{path}: cannot decode PNG (corrupt or truncated?)")
    if raw.ndim != 2 or raw.dtype != np.uint16:
        raise DatasetError(f"{path}: expected a single-channel uint16 depth PNG, got {raw.dtype} {raw.shape}")
    if (raw.shape[1], raw.shape[0]) != tuple(size):
        raise DatasetError(f"{path}: depth map is {raw.shape[1]}x{raw.shape[0]}, expected {size[0]}x{size[1]}")
    return raw.astype(np.float32) / DEPTH_SCALE


def read_radar_npy(path: Path) -> np.ndarray:
    """radar/*.npy -> N x 3 float64 [u, v, depth]; a single point of shape (3,) becomes 1 x 3."""
    arr = load_npy(Path(path))
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1 and arr.shape[0] == 3:
        arr = arr[None, :]
    if arr.size == 0:
        raise DatasetError(f"{path}: radar file is empty (no points)")
    if arr.ndim != 2 or arr.shape[1] != 3:
        raise DatasetError(f"{path}: expected N x 3 [u, v, depth], got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise DatasetError(f"{path}: {int((~np.isfinite(arr)).any(axis=1).sum())} radar point(s) contain NaN or inf")
    return arr


def backproject(u: np.ndarray, v: np.ndarray, depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pixels (u, v) with depth (camera z, m) -> N x 3 camera-frame points (inverse of the pinhole projection)."""
    x = (np.asarray(u, np.float64) - K[0, 2]) / K[0, 0]
    y = (np.asarray(v, np.float64) - K[1, 2]) / K[1, 1]
    d = np.asarray(depth, np.float64)
    return np.stack([x * d, y * d, d], axis=1)


class ZJUDataset(FrameDataset):
    """ZJU-4DRadarCam frames; ids are the file stems of `full.txt` (or of image/*.png if there is no full.txt)."""

    name = "zju"
    sensor = ("ZJU-4DRadarCam: Oculii EAGLE 4D radar (as projected u, v, depth), RealSense D455 camera 1280x720, "
              "RoboSense M1 LiDAR")
    real = True
    splits = ("train", "val", "test", "full")
    eval_crop_rows: Optional[tuple[int, int]] = EVAL_CROP_ROWS

    def __init__(self, root, K: Optional[np.ndarray] = None, prior_dir=None,
                 image_size: tuple[int, int] = IMAGE_SIZE):
        root = Path(root)
        self.root = root / "data" if (root / "data").is_dir() else root
        if not (self.root / "image").is_dir():
            raise DatasetError(f"{root}: not a ZJU-4DRadarCam folder (no data/image/ or image/)")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        try:
            self.camera = CameraModel(NOMINAL_K if K is None else K, *self.image_size)
        except FrameError as exc:
            raise DatasetError(f"K: {exc}") from None
        self.prior_dir = None
        if prior_dir is not None:
            p = Path(prior_dir)
            self.prior_dir = self.root / p if not p.is_absolute() and (self.root / p).is_dir() else p
            if not self.prior_dir.is_dir():
                raise DatasetError(f"{self.prior_dir}: prior folder does not exist")
        full = self.root / "full.txt"
        if full.is_file():
            ids = self._read_list(full)
        else:
            ids = sorted(p.stem for p in (self.root / "image").glob("*.png"))
        super().__init__(ids)
        if not self.ids:
            raise DatasetError(f"{self.root}: no frames (empty full.txt and image/)")

    @staticmethod
    def _read_list(path: Path) -> list[str]:
        try:
            lines = path.read_text().splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{path}: cannot read split list ({exc})") from None
        return [ln.strip() for ln in lines if ln.strip()]

    def split_ids(self, name: str) -> list[str]:
        if name not in self.splits:
            raise KeyError(f"zju: unknown split {name!r}; choose one of {self.splits}")
        path = self.root / f"{name}.txt"
        if not path.is_file():
            if name == "full":
                return list(self.ids)
            raise KeyError(f"zju: split {name!r} has no list file {path}")
        return self._read_list(path)

    def load(self, frame_id: str) -> Frame:
        r = self.root
        img_path = r / "image" / f"{frame_id}.png"
        image = read_image(img_path, self.image_size, size_source="the camera")

        radar_uvd = read_radar_npy(r / "radar" / f"{frame_id}.npy")
        K = self.camera.K
        radar = backproject(radar_uvd[:, 0], radar_uvd[:, 1], radar_uvd[:, 2], K).astype(np.float32)

        gt = read_depth_png(r / "gt" / f"{frame_id}.png", self.image_size)
        rows, cols = np.nonzero(gt > 0)
        lidar = backproject(cols, rows, gt[rows, cols], K).astype(np.float32)
        extras = {"depth_gt_sparse": gt}
        interp = r / "gt_interp" / f"{frame_id}.png"
        if interp.exists():
            extras["depth_gt_interp"] = read_depth_png(interp, self.image_size)

        prior = None
        if self.prior_dir is not None:
            from .priors import load_precomputed_prior
            prior = load_precomputed_prior(self.prior_dir, frame_id, (self.camera.height, self.camera.width))
        try:
            return Frame(image=image, camera=self.camera, radar=radar, T_cam_radar=np.eye(4),
                         radar_fields=("x", "y", "z"), lidar=lidar, T_cam_lidar=np.eye(4), prior=prior,
                         frame_id=frame_id, extras=extras)
        except FrameError as exc:
            raise DatasetError(f"zju frame {frame_id} ({r}): {exc}") from None


__all__ = ["ZJUDataset", "NOMINAL_K", "EVAL_CROP_ROWS", "IMAGE_SIZE", "backproject", "read_depth_png",
           "read_radar_npy"]
