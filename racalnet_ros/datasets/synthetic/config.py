"""`SynthConfig`: every knob of the synthetic generator (camera, LiDAR, radar, prior, scene density), validated.

Ranges given as (lo, hi) pairs are sampled uniformly per frame from the frame's seed. Bad values raise
`SynthConfigError` naming the field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


class SynthConfigError(ValueError):
    """A SynthConfig field has an invalid value; the message names the field."""


@dataclass
class SynthConfig:
    # --- camera (pinhole + optional OpenCV plumb_bob distortion k1, k2, p1, p2, k3) -----------------------------
    width: int = 640
    height: int = 480
    hfov_deg: float = 70.0
    dist: tuple[float, ...] = (-0.04, 0.01, 0.0, 0.0, 0.0)
    shadows: bool = True                      # cast sun shadows (one extra ray per pixel)
    # --- ego motion ---------------------------------------------------------------------------------------------
    ego_speed: tuple[float, float] = (0.0, 15.0)   # m/s along the road
    # --- LiDAR (single sweep, 360 deg, mounted above/behind the camera) ---------------------------------------------
    lidar_beams: int = 32
    lidar_fov_up_deg: float = 10.0
    lidar_fov_down_deg: float = -30.0
    lidar_azimuth_res_deg: float = 0.6
    lidar_max_range: float = 100.0
    lidar_noise_m: float = 0.02
    # --- 4D radar (in the bumper: lower and ahead of the camera, wider FOV) ------------------------------------------
    radar_points: tuple[int, int] = (300, 1500)    # per-frame point count range (ghosts and clutter included)
    radar_hfov_deg: float = 120.0
    radar_vfov_deg: float = 30.0
    radar_max_range: float = 100.0
    radar_range_noise_m: float = 0.15
    radar_azimuth_noise_deg: float = 0.3
    radar_elevation_noise_deg: float = 1.0
    radar_doppler_noise: float = 0.1               # m/s
    radar_ghost_fraction: tuple[float, float] = (0.03, 0.10)
    radar_clutter_fraction: tuple[float, float] = (0.02, 0.08)
    radar_calib_rot_deg: float = 0.7               # std of the per-axis rotation error of the calibrated T_cam_radar
    radar_calib_trans_m: float = 0.05              # std of the per-axis translation error
    radar_time_offset_s: float = 0.05              # radar stamp offset drawn from U(-x, x)
    # --- simulated monocular prior (see docs/synthetic.md) -----------------------------------------------------------
    prior_scale: tuple[float, float] = (0.5, 20.0)   # log-uniform
    prior_shift: tuple[float, float] = (0.0, 0.5)    # times the scale
    prior_lowfreq_amp: tuple[float, float] = (0.03, 0.12)
    prior_gamma: tuple[float, float] = (0.9, 1.1)
    prior_blur_px: float = 3.0
    prior_noise: float = 0.01                        # relative to the mean true inverse depth
    prior_sky_depth_m: float = 500.0                 # the sky's (small) inverse depth is 1 / this
    # --- scene density ---------------------------------------------------------------------------------------------
    parked_cars: tuple[int, int] = (4, 12)
    moving_cars: tuple[int, int] = (1, 5)
    pedestrians: tuple[int, int] = (2, 10)
    poles: tuple[int, int] = (4, 12)
    trees: tuple[int, int] = (3, 12)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> "SynthConfig":
        def need(cond: bool, name: str, msg: str) -> None:
            if not cond:
                raise SynthConfigError(f"SynthConfig.{name}: {msg}, got {getattr(self, name)!r}")

        def pair(name: str, lo: float, hi: float, integer: bool = False) -> None:
            v = getattr(self, name)
            try:
                a, b = v
            except (TypeError, ValueError):
                raise SynthConfigError(f"SynthConfig.{name}: expected a (lo, hi) pair, got {v!r}") from None
            if integer:
                need(float(a).is_integer() and float(b).is_integer(), name, "expected integers")
                a, b = int(a), int(b)
            need(lo <= a <= b <= hi, name, f"expected {lo} <= lo <= hi <= {hi}")
            setattr(self, name, (a, b))

        for name in ("width", "height"):
            need(isinstance(getattr(self, name), int) and 32 <= getattr(self, name) <= 8192, name,
                 "expected an integer in [32, 8192]")
        need(10.0 <= self.hfov_deg <= 150.0, "hfov_deg", "expected degrees in [10, 150]")
        self.dist = tuple(float(d) for d in self.dist)
        need(len(self.dist) in (0, 4, 5), "dist", "expected 0, 4 or 5 OpenCV coefficients")
        need(all(abs(d) < 0.5 for d in self.dist), "dist", "expected small coefficients (|d| < 0.5)")
        pair("ego_speed", 0.0, 40.0)
        need(isinstance(self.lidar_beams, int) and 1 <= self.lidar_beams <= 256, "lidar_beams",
             "expected an integer in [1, 256]")
        need(-90 < self.lidar_fov_down_deg < self.lidar_fov_up_deg < 90, "lidar_fov_up_deg",
             "expected -90 < lidar_fov_down_deg < lidar_fov_up_deg < 90")
        need(0.01 <= self.lidar_azimuth_res_deg <= 10, "lidar_azimuth_res_deg", "expected degrees in [0.01, 10]")
        need(0 < self.lidar_max_range <= 300, "lidar_max_range", "expected metres in (0, 300]")
        need(0 < self.radar_max_range <= 300, "radar_max_range", "expected metres in (0, 300]")
        pair("radar_points", 1, 20000, integer=True)
        need(10 <= self.radar_hfov_deg <= 180, "radar_hfov_deg", "expected degrees in [10, 180]")
        need(2 <= self.radar_vfov_deg <= 90, "radar_vfov_deg", "expected degrees in [2, 90]")
        for name in ("lidar_noise_m", "radar_range_noise_m", "radar_azimuth_noise_deg", "radar_elevation_noise_deg",
                     "radar_doppler_noise", "radar_calib_rot_deg", "radar_calib_trans_m", "radar_time_offset_s",
                     "prior_blur_px", "prior_noise"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0 <= v < 1e3, name, "expected a finite value >= 0")
        pair("radar_ghost_fraction", 0.0, 0.5)
        pair("radar_clutter_fraction", 0.0, 0.5)
        need(self.radar_ghost_fraction[1] + self.radar_clutter_fraction[1] < 0.9, "radar_clutter_fraction",
             "ghost + clutter fractions must stay below 0.9")
        pair("prior_scale", 1e-3, 1e3)
        need(self.prior_scale[0] > 0, "prior_scale", "expected a positive scale")
        pair("prior_shift", -1e3, 1e3)
        pair("prior_lowfreq_amp", 0.0, 0.5)
        pair("prior_gamma", 0.5, 2.0)
        need(self.prior_sky_depth_m > 0, "prior_sky_depth_m", "expected metres > 0")
        for name in ("parked_cars", "moving_cars", "pedestrians", "poles", "trees"):
            pair(name, 0, 200, integer=True)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SynthConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SynthConfigError(f"SynthConfig: unknown field(s) {unknown}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})
