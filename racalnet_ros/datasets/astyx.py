"""Astyx HiRes2019 in its published layout (see the data folder's SOURCE.md and docs/datasets.md).

    ROOT/dataset.json                {"data": {"0": {"calibration": "calibration/000000.json", ...}, ...}} (optional)
    ROOT/calibration/NNNNNN.json     sensors[]: sensor_uid, calib_data.T_to_ref_COS (4x4 sensor -> reference), camera K
    ROOT/camera_front/NNNNNN.jpg     RGB 2048 x 618
    ROOT/radar_6455/NNNNNN.txt       blank line, "X Y Z V_r Mag", one point per line
    ROOT/lidar_vlp16/NNNNNN.txt      "X Y Z Reflectivity LaserID Timestamp", one point per line (360 degree sweep)
    ROOT/mono_fastdepth/NNNNNN.npy   optional precomputed prior (attach with prior_dir="mono_fastdepth")

Frame ids are the zero-padded stems ("000042"). The reader accepts any set of ids: those listed in dataset.json plus
any stem present in calibration/, camera_front/ or radar_6455/ (a frame with a missing file fails at load() with a
DatasetError naming the file, so `iter_frames(skip_bad=True)` can skip it).

Conventions:
- The reference frame is the radar's, so T_cam_radar = inv(T_camera_to_ref) @ T_radar_to_ref and
  T_cam_lidar = inv(T_camera_to_ref) @ T_lidar_to_ref (the camera's T_to_ref_COS maps optical axes into it).
- Radar columns X Y Z V_r Mag -> radar_fields ("x", "y", "z", "doppler", "power"): doppler = radial velocity (m/s),
  power = magnitude (sensor units).
- The calibration gives K but no distortion coefficients: the camera is treated as undistorted (dist = []).
- The calibration does not store the image size: every JPEG must be `image_size` (2048 x 618 by default).
- stamp = median LiDAR point timestamp in seconds (the VLP-16 clock, microseconds past the hour; it wraps hourly).
- Extras: "lidar_laser_id" (M int, VLP-16 beam 0-15) and "lidar_reflectivity" (M float32), aligned with frame.lidar.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..frame import CameraModel, Frame, FrameError
from .base import DatasetError, FrameDataset, read_image

#: published image size (width, height) of camera_front
IMAGE_SIZE = (2048, 618)
#: sub-folders of one frame: key in dataset.json -> (folder, extension)
FILES = {
    "calibration": ("calibration", ".json"),
    "camera_front": ("camera_front", ".jpg"),
    "radar_6455": ("radar_6455", ".txt"),
    "lidar_vlp16": ("lidar_vlp16", ".txt"),
}
RADAR_COLUMNS = {"X": "x", "Y": "y", "Z": "z", "V_r": "doppler", "Mag": "power"}
RADAR_FIELDS = ("x", "y", "z", "doppler", "power")
LIDAR_COLUMNS = ("X", "Y", "Z", "Reflectivity", "LaserID", "Timestamp")
#: splits (issue 9, must-have 5: nothing reported is seen in training or selection): frames 0-69 train, 70-79
#: validation (choosing the epoch and the threshold), "test" = every other frame (80-99 of the shared 100, and any
#: further frame of this layout: held back for independent evaluation); "full" = every frame present
TRAIN_RANGE = range(0, 70)
VAL_RANGE = range(70, 80)

_ID = re.compile(r"^\d+$")


def read_table(path: Path, expected: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Read an Astyx text table: optional blank lines, a header line of column names, then one row per line.

    Returns (column names, N x C float64). Raises DatasetError naming the file for a missing file, a missing or
    unexpected header, a row with the wrong number of values (e.g. a truncated file), or no rows at all.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file is missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read text ({exc})") from None
    lines = text.splitlines()
    head = 0
    while head < len(lines) and not lines[head].strip():
        head += 1
    if head == len(lines):
        raise DatasetError(f"{path}: file is empty (no header, no points)")
    names = lines[head].split()
    if names[: len(expected)] != list(expected):
        raise DatasetError(f"{path}: header {names} does not start with the expected columns {list(expected)}")
    body = [ln for ln in lines[head + 1:] if ln.strip()]
    if not body:
        raise DatasetError(f"{path}: no points after the header")
    try:
        data = np.loadtxt(body, dtype=np.float64, ndmin=2)
    except ValueError as exc:
        # e.g. a truncated last line with fewer values, or a half-written number
        counts = [len(ln.split()) for ln in body]
        bad = next((i for i, c in enumerate(counts) if c != len(names)), None)
        where = f"line {head + 2 + bad} has {counts[bad]} value(s), expected {len(names)}" if bad is not None \
            else str(exc)
        raise DatasetError(f"{path}: malformed or truncated table: {where}") from None
    if data.shape[1] != len(names):
        raise DatasetError(f"{path}: rows have {data.shape[1]} values but the header names {len(names)} columns")
    if not np.all(np.isfinite(data)):
        raise DatasetError(f"{path}: {int((~np.isfinite(data)).any(axis=1).sum())} row(s) contain NaN or inf")
    return names, data


def read_calibration(path: Path) -> dict[str, dict]:
    """calibration JSON -> {sensor_uid: {"T_to_ref": 4x4, "K": 3x3 (camera only)}}; DatasetError on bad input."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{path}: file is missing") from None
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not valid JSON (truncated?): {exc}") from None
    sensors = doc.get("sensors") if isinstance(doc, dict) else None
    if not isinstance(sensors, list):
        raise DatasetError(f"{path}: expected a 'sensors' list")
    out = {}
    for s in sensors:
        try:
            uid = s["sensor_uid"]
            cal = s["calib_data"]
            entry = {"T_to_ref": np.asarray(cal["T_to_ref_COS"], dtype=np.float64)}
            if "K" in cal:
                entry["K"] = np.asarray(cal["K"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise DatasetError(f"{path}: malformed sensor entry ({exc!r} missing or invalid)") from None
        if entry["T_to_ref"].shape != (4, 4):
            raise DatasetError(f"{path}: {uid}.T_to_ref_COS must be 4x4, got {entry['T_to_ref'].shape}")
        out[uid] = entry
    for uid in ("radar_6455", "lidar_vlp16", "camera_front"):
        if uid not in out:
            raise DatasetError(f"{path}: no sensor '{uid}' in the calibration")
    if "K" not in out["camera_front"]:
        raise DatasetError(f"{path}: camera_front has no 'K'")
    if out["camera_front"]["K"].shape != (3, 3):
        raise DatasetError(f"{path}: camera_front.K must be 3x3, got {out['camera_front']['K'].shape}")
    return out


class AstyxDataset(FrameDataset):
    """Astyx HiRes2019 frames (radar 6455 + VLP-16 LiDAR + front camera).

    root: the dataset folder. prior_dir: optional precomputed prior folder (relative to root if it exists there, e.g.
    "mono_fastdepth"), attached as frame.prior (resized bilinearly). image_size: expected (width, height).
    load_lidar: set False to skip the (large) LiDAR text file, e.g. for radar-only inference.
    """

    name = "astyx"
    sensor = "Astyx HiRes2019: 6455 4D radar, Velodyne VLP-16 LiDAR, front camera 2048x618"
    real = True
    splits = ("train", "val", "test", "full")
    eval_crop_rows: Optional[tuple[int, int]] = None

    def __init__(self, root, prior_dir=None, image_size: tuple[int, int] = IMAGE_SIZE, load_lidar: bool = True):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: Astyx root folder does not exist")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.load_lidar = load_lidar
        self.prior_dir: Optional[Path] = None
        if prior_dir is not None:
            p = Path(prior_dir)
            self.prior_dir = self.root / p if not p.is_absolute() and (self.root / p).is_dir() else p
            if not self.prior_dir.is_dir():
                raise DatasetError(f"{self.prior_dir}: prior folder does not exist")
        self._files = self._index()
        super().__init__(sorted(self._files, key=lambda s: (int(s), s)))
        if not self.ids:
            raise DatasetError(f"{self.root}: no Astyx frames found (no dataset.json entries, no calibration/, "
                               "camera_front/ or radar_6455/ files)")

    # ------------------------------------------------------------------ index
    def _index(self) -> dict[str, dict[str, Path]]:
        """frame id -> {key: path}; dataset.json paths win, otherwise the standard folder/stem.ext."""
        files: dict[str, dict[str, Path]] = {}
        meta = self.root / "dataset.json"
        if meta.exists():
            try:
                data = json.loads(meta.read_text())["data"]
                entries = data.items() if isinstance(data, dict) else enumerate(data)
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise DatasetError(f"{meta}: not a valid Astyx dataset.json ({exc!r})") from None
            for key, entry in entries:
                if not isinstance(entry, dict):
                    raise DatasetError(f"{meta}: entry {key!r} is not an object")
                stem = Path(str(entry.get("radar_6455") or entry.get("calibration") or "")).stem
                fid = stem if _ID.match(stem) else (f"{int(key):06d}" if _ID.match(str(key)) else None)
                if fid is None:
                    raise DatasetError(f"{meta}: entry {key!r} names no numeric frame file (radar_6455/calibration)")
                files[fid] = {k: self.root / entry[k] for k in FILES if k in entry}
        for key, (folder, ext) in FILES.items():
            d = self.root / folder
            if key == "lidar_vlp16" or not d.is_dir():
                continue
            for p in d.glob(f"*{ext}"):
                if _ID.match(p.stem):
                    files.setdefault(p.stem, {})
        for fid, entry in files.items():
            for key, (folder, ext) in FILES.items():
                entry.setdefault(key, self.root / folder / f"{fid}{ext}")
        return files

    def split_ids(self, name: str) -> list[str]:
        if name == "full":
            return list(self.ids)
        if name == "train":
            return [i for i in self.ids if int(i) in TRAIN_RANGE]
        if name == "val":
            return [i for i in self.ids if int(i) in VAL_RANGE]
        if name == "test":
            return [i for i in self.ids if int(i) not in TRAIN_RANGE and int(i) not in VAL_RANGE]
        raise KeyError(f"astyx: unknown split {name!r}; choose one of {self.splits}")

    def path(self, frame_id: str, key: str) -> Path:
        """Path of one file of a frame, key in FILES ("calibration", "camera_front", "radar_6455", "lidar_vlp16")."""
        return self._files[frame_id][key]

    # ------------------------------------------------------------------ loading
    def load(self, frame_id: str) -> Frame:
        if frame_id not in self._files:
            raise KeyError(f"astyx: unknown frame id {frame_id!r}")
        f = self._files[frame_id]
        calib = read_calibration(f["calibration"])
        T_cam_ref = calib["camera_front"]["T_to_ref"]
        try:
            T_ref_cam = np.linalg.inv(T_cam_ref)
        except np.linalg.LinAlgError:
            raise DatasetError(f"{f['calibration']}: camera_front.T_to_ref_COS is singular") from None
        T_cam_radar = T_ref_cam @ calib["radar_6455"]["T_to_ref"]
        T_cam_lidar = T_ref_cam @ calib["lidar_vlp16"]["T_to_ref"]
        try:
            camera = CameraModel(calib["camera_front"]["K"], *self.image_size)
        except FrameError as exc:
            raise DatasetError(f"{f['calibration']}: {exc}") from None

        names, radar = read_table(f["radar_6455"], list(RADAR_COLUMNS))
        radar = radar[:, [names.index(c) for c in RADAR_COLUMNS]].astype(np.float32)
        image = read_image(f["camera_front"], self.image_size)

        lidar = None
        extras: dict = {}
        stamp = 0.0
        if self.load_lidar:
            _, lid = read_table(f["lidar_vlp16"], LIDAR_COLUMNS)
            lidar = lid[:, :3].astype(np.float32)
            extras["lidar_reflectivity"] = lid[:, 3].astype(np.float32)
            extras["lidar_laser_id"] = lid[:, 4].astype(np.int16)
            stamp = float(np.median(lid[:, 5])) * 1e-6

        prior = None
        if self.prior_dir is not None:
            from .priors import load_precomputed_prior
            prior = load_precomputed_prior(self.prior_dir, frame_id, (camera.height, camera.width))
        try:
            return Frame(image=image, camera=camera, radar=radar, T_cam_radar=T_cam_radar, radar_fields=RADAR_FIELDS,
                         lidar=lidar, T_cam_lidar=T_cam_lidar if lidar is not None else None, prior=prior,
                         stamp=stamp, frame_id=frame_id, extras=extras)
        except FrameError as exc:
            raise DatasetError(f"astyx frame {frame_id} ({f['calibration'].parent.parent}): {exc}") from None


__all__ = ["AstyxDataset", "IMAGE_SIZE", "RADAR_FIELDS", "read_table", "read_calibration", "read_image"]
