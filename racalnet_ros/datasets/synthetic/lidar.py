"""Single-sweep spinning LiDAR by ray casting (Open3D RaycastingScene).

`lidar_beams` beams spread evenly between `lidar_fov_down_deg` and `lidar_fov_up_deg`, a full 360 deg turn at
`lidar_azimuth_res_deg`; returns within `lidar_max_range` with Gaussian range noise. The sweep is taken at the camera's
timestamp (no rolling-shutter motion within the turn). Beams that enter tree crowns meet a twig some way in
(`foliage_depth_m`), so crowns look like scattered clouds, as real single-sweep LiDAR shows them; optionally weak far
returns drop out (`lidar_range_50_m`). The LiDAR sits apart from the camera (see rig.py), so after projection into the
camera some points land on surfaces the camera cannot see (parallax occlusion), as with real data.
"""

from __future__ import annotations

import numpy as np

from .config import SynthConfig
from .rig import Rig


def beam_directions(cfg: SynthConfig) -> np.ndarray:
    """B*A x 3 unit ray directions in the LiDAR frame (x forward, y left, z up), beam-major."""
    el = np.radians(np.linspace(cfg.lidar_fov_down_deg, cfg.lidar_fov_up_deg, cfg.lidar_beams))
    az = np.radians(np.arange(-180.0, 180.0, cfg.lidar_azimuth_res_deg))
    el, az = np.meshgrid(el, az, indexing="ij")
    return np.stack([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)], -1).reshape(-1, 3)


def simulate_lidar(rc, rig: Rig, cfg: SynthConfig, rng: np.random.Generator, scene=None) -> np.ndarray:
    """One sweep: M x 3 float32 points in the LiDAR frame (metres). `rc` is the scene's RaycastingScene at t = 0;
    with `scene` and `cfg.foliage_depth_m` > 0, beams enter tree crowns (scene.penetrate_foliage)."""
    import open3d as o3d

    from .scene import penetrate_foliage

    d_lidar = beam_directions(cfg)
    R, o = rig.T_ego_lidar[:3, :3], rig.T_ego_lidar[:3, 3]
    d = d_lidar @ R.T
    rays = np.concatenate([np.broadcast_to(o, d.shape), d], axis=1).astype(np.float32)
    ans = rc.cast_rays(o3d.core.Tensor(rays))
    t = ans["t_hit"].numpy().astype(np.float64)   # = range (unit directions)
    if scene is not None and cfg.foliage_depth_m > 0:
        t = penetrate_foliage(scene, rc, np.broadcast_to(o, d.shape), d, t,
                              ans["primitive_ids"].numpy().astype(np.int64), cfg.foliage_depth_m, rng)
    hit = np.isfinite(t) & (t <= cfg.lidar_max_range)
    if cfg.lidar_range_50_m > 0:      # weak far returns drop out: P(return) = 1 / (1 + (r / r50)^4)
        with np.errstate(invalid="ignore"):
            hit &= rng.random(len(t)) < 1.0 / (1.0 + (t / cfg.lidar_range_50_m) ** 4)
    r = t[hit] + rng.normal(0.0, cfg.lidar_noise_m, int(hit.sum()))
    return (d_lidar[hit] * r[:, None]).astype(np.float32)
