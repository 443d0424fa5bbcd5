"""On-disk layout of a synthetic dataset (written by `racalnet synth`, read by `SyntheticDataset(root)`):

    DIR/meta.json            {"format": "racalnet-synthetic", "version": 1, "config": SynthConfig fields,
                              "radar_fields": [...], "frames": [{"id": "000042", "seed": 42}, ...],
                              "splits": {"train": [ids], "val": [ids], "test": [ids]}, "split_rule": text}
    DIR/image/<id>.png       RGB image (8-bit PNG)
    DIR/radar/<id>.npy       N x 5 float32 radar points (x, y, z radar frame m, doppler m/s, power dB over the floor)
    DIR/lidar/<id>.npy       M x 3 float32 LiDAR points (LiDAR frame, m)
    DIR/prior/<id>.npy       H x W float32 simulated monocular prior (relative inverse depth)
    DIR/depth_gt/<id>.npy    H x W float32 dense ground-truth depth (camera z, m; 0 = sky)
    DIR/calib/<id>.json      {"frame_id", "stamp", "width", "height", "K" 3x3, "dist", "T_cam_radar" 4x4 (the
                              calibrated, slightly wrong one), "T_cam_lidar" 4x4}
    DIR/extras/<id>.npz      radar_uv_true, radar_depth_true, radar_is_outlier, radar_kind, radar_visible_in_camera,
                              radar_class, object_boxes, radar_doppler_period, T_cam_radar_true, radar_time_offset,
                              ego_speed, ego_velocity_radar, seed
Everything is lossless (PNG, .npy, JSON floats in repr form), so reading returns the generated Frame exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from ...frame import CameraModel, Frame, FrameError
from ..base import DatasetError, load_npy

FORMAT = "racalnet-synthetic"
VERSION = 1
SPLIT_RULE = "by seed: seed % 10 == 8 -> val, seed % 10 == 9 -> test, otherwise train"
ARRAYS = ("radar", "lidar", "prior", "depth_gt")


def split_of_seed(seed: int) -> str:
    """The split a seed belongs to (same rule on disk and on the fly): last digit 8 -> val, 9 -> test, else train."""
    return {8: "val", 9: "test"}.get(int(seed) % 10, "train")


def write_meta(root: Path, config: dict, seeds: list[int], radar_fields) -> None:
    from .generate import frame_id_of
    ids = [frame_id_of(s) for s in seeds]
    splits = {name: [frame_id_of(s) for s in seeds if split_of_seed(s) == name] for name in ("train", "val", "test")}
    meta = {"format": FORMAT, "version": VERSION, "config": config, "radar_fields": list(radar_fields),
            "frames": [{"id": i, "seed": int(s)} for i, s in zip(ids, seeds)], "splits": splits,
            "split_rule": SPLIT_RULE}
    (root / "meta.json").write_text(json.dumps(meta, indent=1))


def read_meta(root: Path) -> dict:
    path = Path(root) / "meta.json"
    if not path.is_file():
        raise DatasetError(f"{path}: file is missing (not a folder written by `racalnet synth`?)")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON ({exc})") from None
    if meta.get("format") != FORMAT:
        raise DatasetError(f"{path}: format is {meta.get('format')!r}, expected {FORMAT!r}")
    if meta.get("version") != VERSION:
        raise DatasetError(f"{path}: version {meta.get('version')!r} not supported (expected {VERSION})")
    for key in ("frames", "splits", "radar_fields", "config"):
        if key not in meta:
            raise DatasetError(f"{path}: missing key {key!r}")
    return meta


def write_frame(root: Path, frame: Frame) -> None:
    """Write one Frame into the layout above (folders are created as needed)."""
    root = Path(root)
    fid = frame.frame_id
    for sub in ("image", "calib", "extras", *ARRAYS):
        (root / sub).mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(root / "image" / f"{fid}.png"), frame.image[:, :, ::-1]):
        raise OSError(f"{root / 'image' / f'{fid}.png'}: cannot write PNG")
    for name in ARRAYS:
        np.save(root / name / f"{fid}.npy", np.asarray(getattr(frame, name), np.float32))
    cam = frame.camera
    calib = {"frame_id": fid, "stamp": frame.stamp, "width": cam.width, "height": cam.height,
             "K": cam.K.tolist(), "dist": cam.dist.tolist(), "distortion_model": cam.distortion_model,
             "T_cam_radar": frame.T_cam_radar.tolist(), "T_cam_lidar": frame.T_cam_lidar.tolist()}
    (root / "calib" / f"{fid}.json").write_text(json.dumps(calib, indent=1))
    np.savez(root / "extras" / f"{fid}.npz", **{k: np.asarray(v) for k, v in frame.extras.items()})


def read_frame(root: Path, fid: str, radar_fields) -> Frame:
    """Read one frame back; DatasetError naming the file on any missing or malformed piece."""
    root = Path(root)
    img_path = root / "image" / f"{fid}.png"
    if not img_path.is_file():
        raise DatasetError(f"{img_path}: file is missing")
    bgr = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DatasetError(f"{img_path}: cannot decode PNG (corrupt or truncated?)")
    calib_path = root / "calib" / f"{fid}.json"
    if not calib_path.is_file():
        raise DatasetError(f"{calib_path}: file is missing")
    try:
        c = json.loads(calib_path.read_text())
        camera = CameraModel(np.array(c["K"]), c["width"], c["height"], np.array(c["dist"]),
                             c.get("distortion_model", "plumb_bob"))
        T_cam_radar, T_cam_lidar, stamp = np.array(c["T_cam_radar"]), np.array(c["T_cam_lidar"]), float(c["stamp"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{calib_path}: malformed calibration ({type(exc).__name__}: {exc})") from None
    if (bgr.shape[1], bgr.shape[0]) != (camera.width, camera.height):
        raise DatasetError(f"{img_path}: image is {bgr.shape[1]}x{bgr.shape[0]}, calibration {calib_path.name} says "
                           f"{camera.width}x{camera.height}")
    arrays = {name: load_npy(root / name / f"{fid}.npy") for name in ARRAYS}
    ex_path = root / "extras" / f"{fid}.npz"
    if not ex_path.is_file():
        raise DatasetError(f"{ex_path}: file is missing")
    try:
        with np.load(ex_path, allow_pickle=False) as z:
            extras = {k: z[k] for k in z.files}
    except (ValueError, OSError, EOFError) as exc:
        raise DatasetError(f"{ex_path}: cannot read .npz ({exc})") from None
    extras = {k: (v[()] if v.ndim == 0 else v) for k, v in extras.items()}
    try:
        return Frame(image=np.ascontiguousarray(bgr[:, :, ::-1]), camera=camera, radar=arrays["radar"],
                     T_cam_radar=T_cam_radar, radar_fields=tuple(radar_fields), lidar=arrays["lidar"],
                     T_cam_lidar=T_cam_lidar, prior=arrays["prior"], depth_gt=arrays["depth_gt"], stamp=stamp,
                     frame_id=fid, extras=extras)
    except FrameError as exc:
        raise DatasetError(f"{root}: frame {fid}: {exc}") from None
