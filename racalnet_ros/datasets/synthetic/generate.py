"""`generate_frame(seed, config)`: one synthetic Frame, deterministic from the seed.

Steps: scene (scene.py) -> sensor rig and ego speed (rig.py) -> camera model and appearance, camera image + dense
depth (render.py) -> LiDAR sweep (lidar.py) -> radar sweep at the radar's time offset (radar.py) with a perturbed
'calibrated' extrinsic -> simulated monocular prior (prior.py). Every step draws from its own child of
`numpy.random.SeedSequence(seed)`, so changing one step's model does not reshuffle the others.
"""

from __future__ import annotations

import numpy as np

from ...frame import Frame
from .config import SynthConfig, SynthConfigError
from .lidar import simulate_lidar
from .prior import simulate_prior
from .radar import simulate_radar, perturb_extrinsic
from .render import camera_model, render_camera, sample_appearance
from .rig import Rig
from .scene import build_scene

RADAR_FIELDS = ("x", "y", "z", "doppler", "power")
FRAME_PERIOD_S = 0.1   # stamp = seed * FRAME_PERIOD_S (10 Hz), so consecutive seeds replay as a 10 Hz stream


def frame_id_of(seed: int) -> str:
    return f"{seed:06d}"


def check_seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SynthConfigError(f"seed: expected a non-negative integer, got {seed!r}")
    return int(seed)


def generate_frame(seed: int, config: SynthConfig | None = None) -> Frame:
    """A synthetic Frame for `seed` (non-negative int); identical output for identical (seed, config)."""
    seed = check_seed(seed)
    cfg = config if config is not None else SynthConfig()
    if not isinstance(cfg, SynthConfig):
        raise SynthConfigError(f"config: expected a SynthConfig, got {type(cfg).__name__}")
    cfg.validate()
    r_scene, r_rig, r_cam, r_lidar, r_radar, r_calib, r_prior, r_camera_model, r_look = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(9))

    lo, hi = cfg.ego_speed
    ego_speed = float(lo + (hi - lo) * r_rig.random() ** cfg.ego_speed_exponent)
    scene = build_scene(r_scene, cfg, ego_speed)
    rig = Rig.sample(r_rig, ego_speed, cfg)
    camera = camera_model(cfg, r_camera_model)
    rc = scene.raycaster(0.0)
    look = sample_appearance(cfg, r_look)
    if cfg.render_image:
        image, depth = render_camera(scene, rc, rig, camera, r_cam, shadows=cfg.shadows, look=look)
    else:
        image = np.full((camera.height, camera.width, 3), 128, np.uint8)
        depth = np.zeros((camera.height, camera.width), np.float32)
    lidar = simulate_lidar(rc, rig, cfg, r_lidar, scene)
    dt = float(r_calib.uniform(-cfg.radar_time_offset_s, cfg.radar_time_offset_s))
    T_cam_radar_true = rig.T_cam_radar
    T_cam_radar = perturb_extrinsic(T_cam_radar_true, cfg, r_calib)
    sweep = simulate_radar(scene, rc, rig, camera, dt, cfg, r_radar)
    prior = simulate_prior(depth, cfg, r_prior)

    extras = {
        "radar_uv_true": sweep.uv_true,
        "radar_depth_true": sweep.depth_true,
        "radar_is_outlier": sweep.kind != 0,
        "radar_kind": sweep.kind,
        "radar_visible_in_camera": sweep.visible_in_camera,
        "radar_class": sweep.cls,
        "object_boxes": sweep.boxes,
        "radar_doppler_period": np.float64(cfg.radar_doppler_period),
        "T_cam_radar_true": T_cam_radar_true,
        "radar_time_offset": np.float64(dt),
        "ego_speed": np.float64(ego_speed),
        "ego_velocity_radar": rig.T_ego_radar[:3, :3].T @ rig.ego_velocity,
        "seed": np.int64(seed),
    }
    return Frame(image=image, camera=camera, radar=sweep.points, T_cam_radar=T_cam_radar, radar_fields=RADAR_FIELDS,
                 lidar=lidar, T_cam_lidar=rig.T_cam_lidar, prior=prior, depth_gt=depth,
                 stamp=seed * FRAME_PERIOD_S, frame_id=frame_id_of(seed), extras=extras)
