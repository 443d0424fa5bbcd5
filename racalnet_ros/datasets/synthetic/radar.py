"""4D imaging radar by ray casting from the radar's own origin (Open3D RaycastingScene).

Model (documented in docs/synthetic.md):
- the radar measures at time `dt` after the camera (a per-frame time offset): the scene's moving objects and the ego
  vehicle have moved by then;
- `radar_rays` random directions inside the radar's field of view are cast from the radar origin; every surface hit
  within range is a candidate reflection, weighted by reflectivity: material RCS (scene.MATERIAL_RCS_DB, metal strong,
  vegetation/ground weak) x incidence (0.2 + 0.8 cos) / (1 + (r / 40 m)^2) for the range fall-off;
- the true detections are drawn from the candidates by that weight (without replacement), then measured in spherical
  coordinates with range, azimuth and (larger) elevation noise;
- multipath ghosts: a detection re-appears further along its ray (range x 1.15..2.0, a second bounce) or mirrored
  below the road surface (ground bounce), with less power;
- clutter: uniform points in the field of view with low power and random Doppler;
- Doppler = radial velocity of the target relative to the radar, (v_target - v_ego) . u (u = unit vector radar ->
  target), positive = receding, plus noise; power = simulated RCS in dB (material + incidence + noise).
Because the radar is mounted lower and ahead of the camera with a wider FOV, some detections lie on surfaces the
camera cannot see (outside its FOV or occluded); `visible_in_camera` flags those that it can.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...geometry import project_camera_points, transform_points
from ...frame import CameraModel
from . import scene as S
from .config import SynthConfig
from .rig import Rig, make_T, rotation_xyz

TRUE, GHOST, CLUTTER = 0, 1, 2
RAYS_PER_FRAME = 20000


@dataclass
class RadarSweep:
    """points: N x 5 float32 (x, y, z in the radar frame, doppler m/s, power dB); kind: N int8 (TRUE/GHOST/CLUTTER);
    uv_true: N x 2 float32 pixel of the true surface point at the camera's time with the TRUE extrinsic (NaN for
    ghosts/clutter or behind the camera); depth_true: N float32 its camera depth (NaN likewise); visible_in_camera:
    N bool (true detection whose surface point is inside the image and not hidden from the camera)."""

    points: np.ndarray
    kind: np.ndarray
    uv_true: np.ndarray
    depth_true: np.ndarray
    visible_in_camera: np.ndarray


def perturb_extrinsic(T: np.ndarray, cfg: SynthConfig, rng: np.random.Generator) -> np.ndarray:
    """The 'calibrated' extrinsic: T @ dT with a small random rotation (std radar_calib_rot_deg per axis) and
    translation (std radar_calib_trans_m per axis) in the radar frame."""
    r = np.radians(rng.normal(0.0, cfg.radar_calib_rot_deg, 3))
    dT = make_T(rotation_xyz(*r), rng.normal(0.0, cfg.radar_calib_trans_m, 3))
    return T @ dT


def _spherical(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = np.linalg.norm(p, axis=1)
    return r, np.arctan2(p[:, 1], p[:, 0]), np.arcsin(np.clip(p[:, 2] / np.maximum(r, 1e-9), -1, 1))


def _cartesian(r, az, el) -> np.ndarray:
    return np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], axis=1)


def simulate_radar(scene: S.Scene, rc_cam, rig: Rig, camera: CameraModel, dt: float, cfg: SynthConfig,
                   rng: np.random.Generator) -> RadarSweep:
    """One radar sweep at time dt (s after the camera). `rc_cam` is the RaycastingScene at the camera's time."""
    import open3d as o3d

    T_world_radar = rig.T_world_ego(dt) @ rig.T_ego_radar
    R, o = T_world_radar[:3, :3], T_world_radar[:3, 3]
    # --- candidate reflections: random rays in the FOV, cast into the scene at the radar's time
    hf, vf = np.radians(cfg.radar_hfov_deg) / 2, np.radians(cfg.radar_vfov_deg) / 2
    az = rng.uniform(-hf, hf, RAYS_PER_FRAME)
    el = np.arcsin(rng.uniform(np.sin(-vf), np.sin(vf), RAYS_PER_FRAME))   # uniform over the solid angle
    d_rad = _cartesian(np.ones_like(az), az, el)
    d = d_rad @ R.T
    rc = scene.raycaster(dt) if dt != 0.0 else rc_cam
    ans = rc.cast_rays(o3d.core.Tensor(np.concatenate([np.broadcast_to(o, d.shape), d], 1).astype(np.float32)))
    t = ans["t_hit"].numpy().astype(np.float64)
    hit = np.flatnonzero(np.isfinite(t) & (t <= cfg.radar_max_range) & (t > 0.5))
    prim = ans["primitive_ids"].numpy()[hit].astype(np.int64)
    cos_inc = np.abs(np.sum(ans["primitive_normals"].numpy()[hit] * d[hit], axis=1))
    obj = scene.tri_object[prim]
    rcs_db = S.MATERIAL_RCS_DB[scene.material[obj]].astype(np.float64)
    r_hit = t[hit]
    weight = 10 ** (rcs_db / 10) * (0.2 + 0.8 * cos_inc) / (1 + (r_hit / 40.0) ** 2)

    n_total = int(rng.integers(cfg.radar_points[0], cfg.radar_points[1] + 1))
    n_ghost = int(round(n_total * rng.uniform(*cfg.radar_ghost_fraction)))
    n_clutter = int(round(n_total * rng.uniform(*cfg.radar_clutter_fraction)))
    n_true = n_total - n_ghost - n_clutter
    if len(hit) == 0:                 # nothing within range (an empty scene): the radar reports clutter only
        n_true, n_ghost, n_clutter = 0, 0, n_total
    pick = rng.choice(len(hit), size=n_true, replace=n_true > len(hit), p=weight / weight.sum()) if n_true else \
        np.zeros(0, np.int64)

    # --- true detections: exact surface point (world, radar time), then measurement noise in spherical coordinates
    p_world = o + d[hit[pick]] * r_hit[pick, None]
    v_obj = scene.velocity[obj[pick]].astype(np.float64)
    p_rad = (p_world - o) @ R                                      # world -> radar frame (rotation only, R orthonormal)
    rng_m, az_m, el_m = _spherical(p_rad)
    meas = _cartesian(rng_m + rng.normal(0, cfg.radar_range_noise_m, n_true),
                      az_m + np.radians(rng.normal(0, cfg.radar_azimuth_noise_deg, n_true)),
                      el_m + np.radians(rng.normal(0, cfg.radar_elevation_noise_deg, n_true)))
    u = p_rad / np.maximum(rng_m, 1e-9)[:, None]
    v_rel = (v_obj - rig.ego_velocity) @ R                         # relative velocity in the radar frame
    doppler = np.sum(v_rel * u, axis=1) + rng.normal(0, cfg.radar_doppler_noise, n_true)
    cos_p = cos_inc[pick]
    power = rcs_db[pick] + 10 * np.log10(np.maximum(cos_p, 0.05)) + rng.normal(0, 1.5, n_true)

    # --- ghosts from random true detections: a later echo along the same ray or a ground-bounce mirror image
    src = rng.integers(0, max(n_true, 1), n_ghost)
    if n_true:
        g_world = p_world[src].copy()
        bounce = rng.random(n_ghost) < 0.5
        ext = rng.uniform(1.15, 2.0, n_ghost)
        g_world[~bounce] = o + (g_world[~bounce] - o) * ext[~bounce, None]
        g_world[bounce, 2] = -g_world[bounce, 2]                  # mirrored below the road surface
        g_rad = (g_world - o) @ R
        g_dopp = doppler[src] * rng.uniform(0.8, 1.6, n_ghost)
        g_pow = power[src] - rng.uniform(6.0, 15.0, n_ghost)
    else:
        g_rad, g_dopp, g_pow = np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    keep_g = np.linalg.norm(g_rad, axis=1) <= cfg.radar_max_range
    g_rad, g_dopp, g_pow = g_rad[keep_g], g_dopp[keep_g], g_pow[keep_g]

    # --- clutter: uniform in the field of view, weak, Doppler of static ground +- noise
    c_r = rng.uniform(1.0, cfg.radar_max_range, n_clutter)
    c_az = rng.uniform(-hf, hf, n_clutter)
    c_el = rng.uniform(-vf, vf, n_clutter)
    c_rad = _cartesian(c_r, c_az, c_el)
    c_u = c_rad / c_r[:, None]
    c_dopp = -(rig.ego_velocity @ R) @ c_u.T + rng.normal(0, 1.0, n_clutter)
    c_pow = rng.uniform(-25.0, -10.0, n_clutter)

    xyz = np.concatenate([meas, g_rad, c_rad])
    pts = np.concatenate([xyz, np.concatenate([doppler, g_dopp, c_dopp])[:, None],
                          np.concatenate([power, g_pow, c_pow])[:, None]], axis=1).astype(np.float32)
    kind = np.concatenate([np.full(n_true, TRUE), np.full(len(g_rad), GHOST), np.full(n_clutter, CLUTTER)]).astype(np.int8)

    # --- ground truth: the true surface point at the camera's time (object moved back by -v dt), true extrinsic
    p0 = p_world - v_obj * dt
    T_cam_world = np.linalg.inv(rig.T_ego_cam)                     # ego = world at the camera's time
    pc = transform_points(T_cam_world, p0)
    uv, z = project_camera_points(pc, camera)
    visible = _visible_from_camera(rc_cam, rig.T_ego_cam[:3, 3], p0) & np.isfinite(uv).all(1)
    visible &= (uv[:, 0] >= -0.5) & (uv[:, 0] < camera.width - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] < camera.height - 0.5)
    n = len(pts)
    uv_true = np.full((n, 2), np.nan, np.float32)
    depth_true = np.full(n, np.nan, np.float32)
    uv_true[:n_true] = uv
    depth_true[:n_true] = np.where(np.isfinite(uv).all(1), z, np.nan)
    vis = np.zeros(n, bool)
    vis[:n_true] = visible
    order = rng.permutation(n)                                      # do not leak the kind through the row order
    return RadarSweep(pts[order], kind[order], uv_true[order], depth_true[order], vis[order])


def _visible_from_camera(rc, cam_origin: np.ndarray, p: np.ndarray, tol: float = 0.05) -> np.ndarray:
    """True where nothing lies between the camera centre and world point p (N x 3) at the camera's time."""
    import open3d as o3d

    if len(p) == 0:
        return np.zeros(0, bool)
    d = p - cam_origin
    dist = np.linalg.norm(d, axis=1)
    rays = np.concatenate([np.broadcast_to(cam_origin, d.shape), d / dist[:, None]], 1).astype(np.float32)
    t = rc.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy()
    return ~(t < dist - tol)
