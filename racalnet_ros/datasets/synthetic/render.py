"""Camera rendering by ray casting (Open3D RaycastingScene): RGB image with Lambert shading, sun shadows, sky and
aerial perspective, plus dense ground-truth depth (camera z, metres, 0 = sky)."""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from ...frame import CameraModel
from . import textures
from .config import SynthConfig
from .rig import Rig
from .scene import Scene

AMBIENT = 0.38
SKY_HORIZON = np.array([0.82, 0.87, 0.93], np.float32)
SKY_ZENITH = np.array([0.35, 0.55, 0.85], np.float32)
FOG_DISTANCE = 350.0   # metres; aerial perspective blends towards the horizon colour


def camera_model(cfg: SynthConfig) -> CameraModel:
    """Pinhole camera with the configured horizontal FOV, square pixels, principal point at the centre."""
    f = (cfg.width / 2.0) / np.tan(np.radians(cfg.hfov_deg) / 2.0)
    K = np.array([[f, 0, (cfg.width - 1) / 2.0], [0, f, (cfg.height - 1) / 2.0], [0, 0, 1]])
    return CameraModel(K, cfg.width, cfg.height, np.asarray(cfg.dist, np.float64))


@lru_cache(maxsize=4)
def _pixel_rays(K: tuple, dist: tuple, width: int, height: int) -> np.ndarray:
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pix = np.stack([u.ravel(), v.ravel()], axis=1)
    Km = np.array(K).reshape(3, 3)
    if any(dist):
        xn = cv2.undistortPoints(pix.reshape(-1, 1, 2), Km, np.array(dist),
                                 criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 30, 1e-9)).reshape(-1, 2)
    else:
        xn = (pix - Km[:2, 2]) / np.diag(Km)[:2]
    rays = np.concatenate([xn, np.ones((len(xn), 1))], axis=1).astype(np.float32)
    rays.flags.writeable = False
    return rays


def ray_lengths(camera: CameraModel) -> np.ndarray:
    """|ray| of every pixel ray (rotation does not change it): camera z-depth -> distance along the ray."""
    return _ray_lengths(tuple(camera.K.ravel()), tuple(camera.dist.ravel()), camera.width, camera.height)


@lru_cache(maxsize=4)
def _ray_lengths(K: tuple, dist: tuple, width: int, height: int) -> np.ndarray:
    out = np.linalg.norm(_pixel_rays(K, dist, width, height), axis=1).astype(np.float32)
    out.flags.writeable = False
    return out


NOISE_STD = 0.012     # image sensor noise (linear intensity)
NOISE_PAD = 61


@lru_cache(maxsize=4)
def _noise_field(height: int, width: int) -> np.ndarray:
    """A fixed Gaussian noise image larger than the frame; each frame uses a random crop of it (drawing 0.9 M
    normals per frame cost more than the rest of the compositing)."""
    f = NOISE_STD * np.random.default_rng(12345).standard_normal((height + NOISE_PAD, width + NOISE_PAD, 3),
                                                                  dtype=np.float32)
    f.flags.writeable = False
    return f


def _noise_crop(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    r, c = rng.integers(0, NOISE_PAD, 2)
    return _noise_field(height, width)[r:r + height, c:c + width]


@lru_cache(maxsize=1)
def _gamma_lut() -> np.ndarray:
    return (np.linspace(0, 1, 1024) ** (1 / 1.1) * 255 + 0.5).astype(np.uint8)


def pixel_rays(camera: CameraModel) -> np.ndarray:
    """H*W x 3 ray directions in the optical frame with z = 1 (so a ray's hit distance t is the depth), row-major,
    undistorted with OpenCV so the rendered image has the camera's distortion."""
    return _pixel_rays(tuple(camera.K.ravel()), tuple(camera.dist.ravel()), camera.width, camera.height)


def sky_colour(d_world: np.ndarray) -> np.ndarray:
    """Sky gradient from horizon to zenith by the ray's elevation (N x 3 unit-ish directions)."""
    e = np.clip(d_world[:, 2] / np.linalg.norm(d_world, axis=1), 0.0, 1.0) ** 0.6
    return SKY_HORIZON * (1 - e[:, None]) + SKY_ZENITH * e[:, None]


def render_camera(scene: Scene, rc, rig: Rig, camera: CameraModel, rng: np.random.Generator,
                  shadows: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Ray cast one camera image at t = 0. Returns (image H x W x 3 uint8 RGB, depth H x W float32 metres, 0 = sky)."""
    import open3d as o3d

    H, W = camera.height, camera.width
    rays_cam = pixel_rays(camera)
    R, o = rig.T_ego_cam[:3, :3].astype(np.float32), rig.T_ego_cam[:3, 3].astype(np.float32)
    rays = np.empty((len(rays_cam), 6), np.float32)
    rays[:, :3] = o
    d = rays[:, 3:]
    # d = rays_cam @ R.T written out per column: a BLAS matmul with an N x 3 operand is slow on a busy shared CPU
    np.multiply(rays_cam[:, 0:1], R[:, 0], out=d)
    d += rays_cam[:, 1:2] * R[:, 1]
    d += rays_cam[:, 2:3] * R[:, 2]
    ans = rc.cast_rays(o3d.core.Tensor(rays))
    t = ans["t_hit"].numpy()
    hit = np.isfinite(t)
    prim = ans["primitive_ids"].numpy()[hit].astype(np.int64)
    n = ans["primitive_normals"].numpy()[hit]
    dh = d[hit]
    back = n[:, 0] * dh[:, 0] + n[:, 1] * dh[:, 1] + n[:, 2] * dh[:, 2] > 0
    n[back] *= -1.0                                              # face the camera
    p = o + t[hit, None] * dh
    obj = scene.tri_object[prim]
    alb = textures.albedo(scene.material[obj], obj, p, n, scene)

    sun = scene.sun
    lambert = np.clip(n[:, 0] * sun[0] + n[:, 1] * sun[1] + n[:, 2] * sun[2], 0.0, None)
    if shadows:
        lit = lambert > 0
        srays = np.concatenate([p[lit] + n[lit] * 0.02, np.broadcast_to(sun, (int(lit.sum()), 3))], axis=1)
        occluded = scene_occluded(rc, srays.astype(np.float32))
        lam = lambert[lit]
        lam[occluded] = 0.0
        lambert[lit] = lam
    shade = AMBIENT * (0.8 + 0.2 * n[:, 2]) + (1.0 - AMBIENT) * lambert
    rgb = alb * shade[:, None]
    dist = t[hit] * ray_lengths(camera)[hit]
    fog = (1.0 - np.exp(-dist / FOG_DISTANCE))[:, None]
    rgb = rgb * (1 - fog) + SKY_HORIZON * fog

    img = np.empty((H * W, 3), np.float32)
    img[~hit] = sky_colour(d[~hit])
    img[hit] = rgb
    img = img.reshape(H, W, 3)
    img = cv2.GaussianBlur(img, (0, 0), 0.6)                    # optics: soften aliasing
    img += _noise_crop(H, W, rng)                               # sensor noise
    img = _gamma_lut()[(np.clip(img, 0, 1) * 1023 + 0.5).astype(np.int32)]   # display gamma via a lookup table

    depth = np.zeros(H * W, np.float32)
    depth[hit] = t[hit]       # ray z = 1 in the optical frame, so t is the camera-frame depth
    return img, depth.reshape(H, W)


def scene_occluded(rc, rays: np.ndarray) -> np.ndarray:
    """True where a ray (N x 6 origin + direction) hits anything."""
    import open3d as o3d

    if len(rays) == 0:
        return np.zeros(0, bool)
    return rc.test_occlusions(o3d.core.Tensor(rays)).numpy().astype(bool)
