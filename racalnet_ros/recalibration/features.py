"""Per-point radar features (the radar encoder's input, paper section III-A-1).

A radar point projected into the image is described by its camera-frame position, its depth, its normalised pixel
coordinates and, when the sensor has them, Doppler and power (RCS / magnitude). Which groups are used is
configuration (`ModelConfig.features`); the columns of each group are:

  xyz     3  camera-frame x, y, z / max_range
  depth   2  depth / max_range, log(1 + depth) / log(1 + max_range)
  uv      2  u, v mapped to [-1, 1] over the full image
  doppler 1  radial velocity / 10 m/s, clipped to [-3, 3]
  power   1  power standardised within the frame (z-score, clipped to [-3, 3]); per-frame standardisation because
             sensors report power in unrelated units (dB, linear magnitude, RCS)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..frame import RADAR_OPTIONAL, Frame, FrameError
from ..geometry import project_to_image

class RadarColumnsError(FrameError):
    """The cloud lacks a radar column (doppler, power) the recalibration network reads."""


GROUP_DIMS = {"xyz": 3, "depth": 2, "uv": 2, "doppler": 1, "power": 1}


def feature_dim(groups) -> int:
    return sum(GROUP_DIMS[g] for g in groups)


@dataclass
class ProjectedRadar:
    """Radar points of one frame that land in the image (full-resolution pixels).

    index: N int rows of Frame.radar; uv: N x 2 float32; depth: N float32 metres; xyz_cam: N x 3 float32;
    doppler / power: N float32 or None when the sensor lacks the column; width, height: full image size.
    """

    index: np.ndarray
    uv: np.ndarray
    depth: np.ndarray
    xyz_cam: np.ndarray
    doppler: np.ndarray | None
    power: np.ndarray | None
    width: int
    height: int

    def __len__(self) -> int:
        return int(self.index.shape[0])


def check_radar_columns(groups, radar_fields) -> None:
    """Refuse a cloud that lacks a radar column the network reads (RadarColumnsError naming the network's columns,
    the cloud's and the missing ones): features are built by column name, never by position, and no substitute
    value is invented for a missing Doppler or power."""
    missing = [g for g in RADAR_OPTIONAL if g in groups and g not in radar_fields]
    if missing:
        wanted = ", ".join(g for g in RADAR_OPTIONAL if g in groups)
        raise RadarColumnsError(
            f"radar: the recalibration checkpoint reads radar columns {wanted} but this cloud has "
            f"{', '.join(radar_fields)} (missing {', '.join(missing)}); map the field (node: radar.field.*) or use a "
            "checkpoint trained without it (racalnet train --features ...)")


def project_radar(frame: Frame) -> ProjectedRadar:
    """Project the frame's radar into the image; NaN/inf in any used input raises FrameError naming the field."""
    radar = np.asarray(frame.radar)
    if not np.all(np.isfinite(radar)):
        raise FrameError("radar: contains NaN or inf (rejected before the recalibration network)")
    p = project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    doppler = frame.radar_column("doppler")[p.index].astype(np.float32) if frame.has_radar_field("doppler") else None
    power = frame.radar_column("power")[p.index].astype(np.float32) if frame.has_radar_field("power") else None
    return ProjectedRadar(p.index, p.uv, p.depth, p.points_cam, doppler, power, frame.width, frame.height)


def radar_point_features(xyz_cam: np.ndarray, uv: np.ndarray, width: int, height: int,
                         doppler: np.ndarray | None, power: np.ndarray | None, groups,
                         max_range: float = 100.0) -> np.ndarray:
    """N x feature_dim(groups) float32 features (see the module docstring for the columns).

    A requested group the sensor does not provide ("doppler", "power") raises FrameError naming it.
    """
    n = len(xyz_cam)
    cols = []
    depth = np.maximum(xyz_cam[:, 2], 1e-3)
    for g in groups:
        if g == "xyz":
            cols.append(xyz_cam / max_range)
        elif g == "depth":
            cols.append(np.stack([depth / max_range, np.log1p(depth) / np.log1p(max_range)], axis=1))
        elif g == "uv":
            cols.append(np.stack([uv[:, 0] / max(width - 1, 1) * 2 - 1, uv[:, 1] / max(height - 1, 1) * 2 - 1], 1))
        elif g == "doppler":
            if doppler is None:
                raise FrameError("radar: the model uses the 'doppler' column but the frame has none "
                                 "(train a model without it: ModelConfig.features)")
            cols.append(np.clip(doppler / 10.0, -3, 3)[:, None])
        elif g == "power":
            if power is None:
                raise FrameError("radar: the model uses the 'power' column but the frame has none "
                                 "(train a model without it: ModelConfig.features)")
            p = power.astype(np.float64)
            s = p.std() if n > 1 else 0.0
            z = (p - p.mean()) / s if s > 1e-9 else np.zeros_like(p)
            cols.append(np.clip(z, -3, 3)[:, None])
        else:
            raise ValueError(f"unknown feature group {g!r}")
    out = np.concatenate(cols, axis=1).astype(np.float32) if cols else np.zeros((n, 0), np.float32)
    if not np.all(np.isfinite(out)):
        raise FrameError("radar: features contain NaN or inf")
    return out
