"""`SynthConfig`: every knob of the synthetic generator (camera, LiDAR, radar, prior, scene density), validated.

Ranges given as (lo, hi) pairs are sampled uniformly per frame from the frame's seed. Bad values raise
`SynthConfigError` naming the field.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


class SynthConfigError(ValueError):
    """A SynthConfig field has an invalid value; the message names the field."""


#: named camera models for `SynthConfig.cameras` (name -> width, height, fx, fy, cx, cy; no distortion).
#: "astyx": the Astyx HiRes2019 front camera (the K of every shared calibration file).
NAMED_CAMERAS = {"astyx": (2048, 618, 1817.98103, 1816.83987, 1040.27484, 319.497539)}


@dataclass
class SynthConfig:
    # --- camera (pinhole + optional OpenCV plumb_bob distortion k1, k2, p1, p2, k3) -----------------------------
    width: int = 640
    height: int = 480
    hfov_deg: float = 70.0
    dist: tuple[float, ...] = (-0.04, 0.01, 0.0, 0.0, 0.0)
    # per-frame camera, drawn uniformly from this list: "config" (width, height, hfov_deg, dist above), a name of
    # NAMED_CAMERAS ("astyx": 2048 x 618 with its intrinsics) or "WxH@HFOV" (e.g. "1280x720@60", distortion `dist`)
    cameras: tuple[str, ...] = ("config",)
    dist_jitter: tuple[float, float] = (0.04, 0.01)   # k1, k2 of non-named cameras += U(-j, j) per frame
    shadows: bool = True                      # cast sun shadows (one extra ray per pixel)
    render_image: bool = True                 # False: no camera render (grey image, depth_gt 0 = sky everywhere, a
                                              # flat prior) for radar/LiDAR-only uses such as radar statistics
    # --- appearance, drawn per frame (render.py; docs/synthetic.md "Appearance") -----------------------------------
    overcast_prob: float = 0.5                # diffuse sky light, grey sky, no sun shadows
    ambient: tuple[float, float] = (0.25, 0.5)           # share of sky light under sun (overcast: 0.85-1)
    sun_elevation_deg: tuple[float, float] = (10.0, 65.0)
    exposure_ev: tuple[float, float] = (-0.7, 0.7)
    white_balance: tuple[float, float] = (0.88, 1.12)    # R and B gains relative to G
    saturation: tuple[float, float] = (0.3, 1.05)          # 0 = grey, 1 = as rendered
    texture_contrast: tuple[float, float] = (0.6, 1.4)    # scales the procedural textures' variation
    snow_prob: float = 0.3                                # snow on ground, sidewalks and tree crowns
    gamma: tuple[float, float] = (0.8, 1.25)              # tone curve exponent on top of display gamma 1 / 1.1
    vignetting: tuple[float, float] = (0.0, 0.35)         # corner darkening
    blur_px: tuple[float, float] = (0.4, 1.4)             # Gaussian blur sigma
    noise_std: tuple[float, float] = (0.002, 0.02)        # sensor noise, linear intensity
    jpeg_quality: tuple[int, int] = (55, 95)              # JPEG round trip per frame; (100, 100) = off
    # --- ego motion ---------------------------------------------------------------------------------------------
    ego_speed: tuple[float, float] = (0.0, 20.0)   # m/s along the road: lo + (hi - lo) * U(0, 1) ** exponent
    ego_speed_exponent: float = 1.5                # > 1 favours slow driving (Astyx: median 5.8, p90 17 m/s)
    # --- sensor mounting (ego frame: x forward, y left, z up, origin on the ground below the camera) ---------------
    camera_height_m: tuple[float, float] = (1.35, 1.65)
    lidar_forward_m: tuple[float, float] = (-0.5, -0.3)     # relative to the camera
    lidar_above_camera_m: tuple[float, float] = (0.3, 0.5)
    radar_forward_m: tuple[float, float] = (1.6, 2.2)       # relative to the camera
    radar_height_m: tuple[float, float] = (0.4, 0.7)        # above the ground
    radar_mount_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)   # mean roll, pitch (+ = nose down), yaw
    radar_mount_std_deg: float = 0.5                               # per-axis std around that mean
    # --- LiDAR (single sweep, 360 deg, mounted above/behind the camera) ---------------------------------------------
    lidar_beams: int = 32
    lidar_fov_up_deg: float = 10.0
    lidar_fov_down_deg: float = -30.0
    lidar_azimuth_res_deg: float = 0.6
    lidar_max_range: float = 100.0
    lidar_noise_m: float = 0.02
    lidar_range_50_m: float = 0.0                  # range at which half the returns drop out (0 = none)
    # --- 4D radar: defaults matched to the Astyx 6455 (docs/synthetic.md "Radar model", `racalnet inspect
    #     --radar-stats`); ranges are drawn per frame ---------------------------------------------------------------
    radar_points: tuple[int, int] = (1100, 3300)   # per-frame point count range (ghosts and clutter included)
    radar_hfov_deg: float = 120.0
    radar_vfov_deg: float = 36.0
    radar_max_range: float = 100.0
    radar_range_noise_m: float = 0.15
    radar_azimuth_noise_deg: float = 0.5
    radar_elevation_noise_deg: float = 1.8         # the weak axis of a 4D radar
    radar_doppler_noise: float = 0.1               # m/s
    radar_range_bin_m: float = 0.075               # range quantisation (0 = none)
    radar_doppler_period: float = 10.3936          # Doppler aliases into [-p / 2, p / 2) (0 = none); 128 bins
    radar_doppler_bin: float = 0.0812              # Doppler quantisation (0 = none)
    radar_doppler_approaching_positive: bool = True    # sign convention: positive = the target comes closer
    radar_power_floor: float = 45.0                # power = floor + excess over the detection threshold (dB)
    radar_power_step: float = 0.5                  # power quantisation (0 = none)
    radar_range_gain: float = 1.7                  # detection weight x (r / 10 m) ** gain
    radar_elevation_beam_deg: float = 2.5          # detection weight x exp(-el^2 / 2 beam^2) (0 = flat)
    radar_ghost_fraction: tuple[float, float] = (0.08, 0.18)
    radar_clutter_fraction: tuple[float, float] = (0.04, 0.12)
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
    open_road_prob: float = 0.5                      # share of open roads (tree rows, fields, far buildings)
    foliage_depth_m: float = 1.0                     # mean depth at which a LiDAR or radar ray meets a twig inside a
                                                     # tree crown (crowns are volumes, not shells; 0 = shells)
    parked_cars: tuple[int, int] = (4, 12)
    moving_cars: tuple[int, int] = (1, 5)
    pedestrians: tuple[int, int] = (2, 10)
    poles: tuple[int, int] = (4, 12)
    trees: tuple[int, int] = (3, 12)

    @classmethod
    def preset(cls, name: str, **overrides) -> "SynthConfig":
        """Named configurations: "default" (the field defaults) and "astyx" (the sensors mounted as on the Astyx
        HiRes2019 car: its camera, a VLP-16-like LiDAR, radar, camera and LiDAR side by side 1.65 m above the ground,
        the radar pitched 3.1 deg down and rolled 4.6 deg, as measured from the shared frames' LiDAR ground plane).
        Keyword arguments override fields."""
        if name not in PRESETS:
            raise SynthConfigError(f"SynthConfig.preset: unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

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
        self.cameras = tuple(str(c) for c in self.cameras)
        need(len(self.cameras) > 0, "cameras", "expected at least one camera")
        for c in self.cameras:
            try:
                parse_camera(c)
            except ValueError as exc:
                raise SynthConfigError(f"SynthConfig.cameras: {exc}") from None
        self.dist_jitter = tuple(float(x) for x in self.dist_jitter)
        need(len(self.dist_jitter) == 2 and all(0 <= x <= 0.2 for x in self.dist_jitter), "dist_jitter",
             "expected (k1, k2) jitter amplitudes in [0, 0.2]")
        for name in ("overcast_prob", "snow_prob", "open_road_prob"):
            need(0.0 <= getattr(self, name) <= 1.0, name, "expected a probability in [0, 1]")
        pair("ambient", 0.0, 1.0)
        pair("sun_elevation_deg", 1.0, 90.0)
        pair("exposure_ev", -4.0, 4.0)
        pair("white_balance", 0.3, 3.0)
        pair("saturation", 0.0, 2.0)
        pair("texture_contrast", 0.0, 3.0)
        pair("gamma", 0.3, 3.0)
        pair("vignetting", 0.0, 1.0)
        pair("blur_px", 0.0, 10.0)
        pair("noise_std", 0.0, 0.5)
        pair("jpeg_quality", 1, 100, integer=True)
        pair("camera_height_m", 0.2, 5.0)
        pair("lidar_forward_m", -5.0, 5.0)
        pair("lidar_above_camera_m", -2.0, 3.0)
        pair("radar_forward_m", -5.0, 5.0)
        pair("radar_height_m", 0.1, 5.0)
        self.radar_mount_deg = tuple(float(x) for x in self.radar_mount_deg)
        need(len(self.radar_mount_deg) == 3 and all(abs(x) <= 30 for x in self.radar_mount_deg), "radar_mount_deg",
             "expected (roll, pitch, yaw) in degrees, each within +-30")
        pair("ego_speed", 0.0, 40.0)
        need(0.2 <= self.ego_speed_exponent <= 5, "ego_speed_exponent", "expected an exponent in [0.2, 5]")
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
                     "prior_blur_px", "prior_noise", "radar_mount_std_deg", "radar_range_bin_m", "radar_doppler_period",
                     "radar_doppler_bin", "radar_power_step", "foliage_depth_m", "lidar_range_50_m",
                     "radar_elevation_beam_deg"):
            v = getattr(self, name)
            need(isinstance(v, (int, float)) and 0 <= v < 1e3, name, "expected a finite value >= 0")
        need(isinstance(self.radar_power_floor, (int, float)) and abs(self.radar_power_floor) < 1e3,
             "radar_power_floor", "expected a finite value")
        need(isinstance(self.radar_range_gain, (int, float)) and abs(self.radar_range_gain) <= 4, "radar_range_gain",
             "expected an exponent in [-4, 4]")
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
        """Fields from a dict (lists become tuples); an optional "preset" key names the base (see `preset`), e.g. a
        YAML file `preset: astyx` + overrides for `racalnet synth --config`."""
        d = dict(d)
        name = d.pop("preset", "default")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SynthConfigError(f"SynthConfig: unknown field(s) {unknown}")
        return cls.preset(str(name), **{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def parse_camera(spec: str) -> tuple[int, int, float | None, tuple | None]:
    """A `SynthConfig.cameras` entry -> (width, height, hfov_deg or None, named intrinsics (fx, fy, cx, cy) or None);
    "config" -> (0, 0, None, None). ValueError naming the entry if it is not understood."""
    if spec == "config":
        return 0, 0, None, None
    if spec in NAMED_CAMERAS:
        w, h, *k = NAMED_CAMERAS[spec]
        return w, h, None, tuple(k)
    try:
        size, _, fov = spec.partition("@")
        w, h = (int(x) for x in size.lower().split("x"))
        hfov = float(fov) if fov else None
    except ValueError:
        raise ValueError(f"camera {spec!r} is not 'config', one of {sorted(NAMED_CAMERAS)} or 'WxH[@HFOV]'") from None
    if not (32 <= w <= 8192 and 32 <= h <= 8192) or (hfov is not None and not 10 <= hfov <= 150):
        raise ValueError(f"camera {spec!r}: size must be 32-8192 px and the horizontal FOV 10-150 deg")
    return w, h, hfov, None


#: field values of the named presets (SynthConfig.preset)
PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "astyx": dict(cameras=("astyx",), camera_height_m=(1.55, 1.75), lidar_forward_m=(-0.12, -0.06),
                  lidar_above_camera_m=(0.08, 0.14), radar_forward_m=(0.0, 0.08), radar_height_m=(1.55, 1.75),
                  radar_mount_deg=(4.6, 3.1, 0.0), radar_mount_std_deg=1.0, lidar_beams=16, lidar_fov_up_deg=15.0,
                  lidar_fov_down_deg=-15.0, lidar_azimuth_res_deg=0.2, lidar_noise_m=0.03,
                  lidar_range_50_m=35.0),
}
