"""4D imaging radar by ray casting from the radar's own origin (Open3D RaycastingScene).

Model (documented in docs/synthetic.md "Radar model"; the defaults are matched to the Astyx 6455 with
`racalnet inspect --radar-stats`):
- the radar measures at time `dt` after the camera (a per-frame time offset): the scene's moving objects and the ego
  vehicle have moved by then;
- `RAYS_PER_FRAME` random directions inside the radar's field of view are cast from the radar origin (rays entering
  a tree crown meet a twig some way in, scene.penetrate_foliage); every surface hit within range is a candidate
  detection, weighted by scene.MATERIAL_DETECTION (metal near certain, facades and crowns often, flat ground rarely)
  x incidence (0.2 + 0.8 cos) x (r / 10 m) ** radar_range_gain (extended surfaces fill more range cells far away)
  x the elevation beam exp(-el^2 / 2 radar_elevation_beam_deg^2) (antenna gain away from boresight);
- the true detections are drawn from the candidates by that weight, then measured in spherical coordinates with
  range (quantised to radar_range_bin_m), azimuth and (larger) elevation noise;
- multipath ghosts: a detection re-appears further along its ray (range x 1.15..2.0) or mirrored below the road
  surface (ground bounce), weaker, with its source's Doppler;
- clutter: uniform points in the field of view with low power and the static world's Doppler;
- Doppler: radial velocity of the target relative to the radar, (v_target - v_ego) . u, plus noise; reported with the
  sensor's sign (radar_doppler_approaching_positive: positive = closing in, as Astyx), quantised and aliased into
  [-radar_doppler_period / 2, radar_doppler_period / 2);
- power: the excess over the detection threshold, radar_power_floor + Exp(scene.MATERIAL_POWER_DB), quantised (the
  Astyx "Mag" column: floor 45, steps of 0.5, nearly independent of range).
Because the radar can be mounted apart from the camera with a wider FOV, some detections lie on surfaces the camera
cannot see (outside its FOV or occluded); `visible_in_camera` flags those that it can. `cls` records what each ray hit
(scene.MATERIAL_CLASS), and `boxes` the vehicles in the radar frame, for the radar statistics.
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
#: radar_class of ghosts and clutter (true detections get scene.MATERIAL_CLASS of what they hit, 0-3)
GHOST_OR_CLUTTER = 5
#: mean power above the detection floor of clutter (dB)
CLUTTER_POWER_DB = 2.0


@dataclass
class RadarSweep:
    """points: N x 5 float32 (x, y, z in the radar frame, doppler m/s, power dB); kind: N int8 (TRUE/GHOST/CLUTTER);
    uv_true: N x 2 float32 pixel of the true surface point at the camera's time with the TRUE extrinsic (NaN for
    ghosts/clutter or behind the camera); depth_true: N float32 its camera depth (NaN likewise); visible_in_camera:
    N bool (true detection whose surface point is inside the image and not hidden from the camera); cls: N int8
    class of what the ray hit (scene.MATERIAL_CLASS; GHOST_OR_CLUTTER otherwise); boxes: K x 7 vehicle boxes in the
    radar frame at the radar's time (centre, length, width, height, yaw)."""

    points: np.ndarray
    kind: np.ndarray
    uv_true: np.ndarray
    depth_true: np.ndarray
    visible_in_camera: np.ndarray
    cls: np.ndarray
    boxes: np.ndarray


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
    prim_all = ans["primitive_ids"].numpy().astype(np.int64)
    t = S.penetrate_foliage(scene, rc, np.broadcast_to(o, d.shape), d, ans["t_hit"].numpy(), prim_all,
                            cfg.foliage_depth_m, rng)
    hit = np.flatnonzero(np.isfinite(t) & (t <= cfg.radar_max_range) & (t > 0.5))
    prim = prim_all[hit]
    cos_inc = np.abs(np.sum(ans["primitive_normals"].numpy()[hit] * d[hit], axis=1))
    obj = scene.tri_object[prim]
    material = scene.material[obj]
    r_hit = t[hit]
    weight = S.MATERIAL_DETECTION[material].astype(np.float64) * (0.2 + 0.8 * cos_inc) \
        * (r_hit / 10.0) ** cfg.radar_range_gain
    if cfg.radar_elevation_beam_deg > 0:                          # antenna gain falls off away from boresight
        weight *= np.exp(-0.5 * (el[hit] / np.radians(cfg.radar_elevation_beam_deg)) ** 2)

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
    meas = _cartesian(_quantise(rng_m + rng.normal(0, cfg.radar_range_noise_m, n_true), cfg.radar_range_bin_m),
                      az_m + np.radians(rng.normal(0, cfg.radar_azimuth_noise_deg, n_true)),
                      el_m + np.radians(rng.normal(0, cfg.radar_elevation_noise_deg, n_true)))
    u = p_rad / np.maximum(rng_m, 1e-9)[:, None]
    v_rel = (v_obj - rig.ego_velocity) @ R                         # relative velocity in the radar frame
    doppler = np.sum(v_rel * u, axis=1) + rng.normal(0, cfg.radar_doppler_noise, n_true)
    excess = S.MATERIAL_POWER_DB[material[pick]] * rng.exponential(1.0, n_true)

    # --- ghosts from random true detections: a later echo along the same ray or a ground-bounce mirror image
    src = rng.integers(0, max(n_true, 1), n_ghost)
    if n_true:
        g_world = p_world[src].copy()
        bounce = rng.random(n_ghost) < 0.5
        ext = rng.uniform(1.15, 2.0, n_ghost)
        g_world[~bounce] = o + (g_world[~bounce] - o) * ext[~bounce, None]
        g_world[bounce, 2] = -g_world[bounce, 2]                  # mirrored below the road surface
        g_rad = (g_world - o) @ R
        # ghosts keep their source's Doppler (on Astyx only ~8% of all points leave the static-world Doppler pattern,
        # movers included, so its ghosts cannot carry stretched range rates)
        g_dopp = doppler[src] + rng.normal(0, cfg.radar_doppler_noise, n_ghost)
        g_exc = excess[src] * rng.uniform(0.2, 0.6, n_ghost)
    else:
        g_rad, g_dopp, g_exc = np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    keep_g = np.linalg.norm(g_rad, axis=1) <= cfg.radar_max_range
    g_rad, g_dopp, g_exc = g_rad[keep_g], g_dopp[keep_g], g_exc[keep_g]

    # --- clutter: uniform in the field of view, weak, Doppler of static ground +- noise
    c_r = rng.uniform(1.0, cfg.radar_max_range, n_clutter)
    c_az = rng.uniform(-hf, hf, n_clutter)
    c_el = rng.uniform(-vf, vf, n_clutter)
    c_rad = _cartesian(c_r, c_az, c_el)
    c_u = c_rad / c_r[:, None]
    c_dopp = -(rig.ego_velocity @ R) @ c_u.T + rng.normal(0, 0.3, n_clutter)
    c_exc = rng.exponential(CLUTTER_POWER_DB, n_clutter)

    xyz = np.concatenate([meas, g_rad, c_rad])
    dopp = np.concatenate([doppler, g_dopp, c_dopp])
    if cfg.radar_doppler_approaching_positive:
        dopp = -dopp
    dopp = _quantise(_wrap(dopp, cfg.radar_doppler_period), cfg.radar_doppler_bin)
    power = _quantise(cfg.radar_power_floor + np.concatenate([excess, g_exc, c_exc]), cfg.radar_power_step)
    pts = np.concatenate([xyz, dopp[:, None], power[:, None]], axis=1).astype(np.float32)
    kind = np.concatenate([np.full(n_true, TRUE), np.full(len(g_rad), GHOST), np.full(n_clutter, CLUTTER)]).astype(np.int8)
    cls = np.concatenate([S.MATERIAL_CLASS[material[pick]], np.full(len(g_rad) + n_clutter, GHOST_OR_CLUTTER)])

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
    return RadarSweep(pts[order], kind[order], uv_true[order], depth_true[order], vis[order],
                      cls[order].astype(np.int8), _boxes_in_radar(scene.boxes_at(dt), R, o))


def _quantise(x: np.ndarray, step: float) -> np.ndarray:
    return np.round(x / step) * step if step > 0 else x


def _wrap(x: np.ndarray, period: float) -> np.ndarray:
    return (x + period / 2) % period - period / 2 if period > 0 else x


def _boxes_in_radar(boxes: np.ndarray, R: np.ndarray, o: np.ndarray) -> np.ndarray:
    """World boxes K x 7 (centre, size, yaw) -> the radar frame (centre moved, yaw of the box's x axis there)."""
    out = np.asarray(boxes, np.float64).copy().reshape(-1, 7)
    out[:, :3] = (out[:, :3] - o) @ R
    axis = np.stack([np.cos(out[:, 6]), np.sin(out[:, 6]), np.zeros(len(out))], 1) @ R
    out[:, 6] = np.arctan2(axis[:, 1], axis[:, 0])
    return out.astype(np.float32)


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
