"""Camera rendering by ray casting (Open3D RaycastingScene): RGB image with Lambert shading, sun shadows, sky and
aerial perspective, plus dense ground-truth depth (camera z, metres, 0 = sky).

The look of every frame is drawn from the seed (`sample_appearance`, ranges in SynthConfig): clear sky with sun and
shadows or overcast diffuse light, sun elevation, ambient share, snow, texture contrast, exposure, white balance,
saturation, tone curve, vignetting, optical blur, sensor noise and a JPEG round trip, so that a network trained on
these images meets real photographs (e.g. Astyx's grey winter JPEGs) inside the range it has seen."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from ...frame import CameraModel
from . import textures
from . import scene as S
from .config import SynthConfig, parse_camera
from .rig import Rig
from .scene import Scene

SKY_HORIZON = np.array([0.82, 0.87, 0.93], np.float32)
SKY_ZENITH = np.array([0.35, 0.55, 0.85], np.float32)
OVERCAST_SKY = np.array([0.80, 0.81, 0.83], np.float32)
SNOW = np.array([0.92, 0.93, 0.95], np.float32)
WINTER_CROWN = np.array([0.30, 0.27, 0.23], np.float32)
FOG_DISTANCE = 350.0   # metres; aerial perspective blends towards the horizon colour


def camera_model(cfg: SynthConfig, rng: np.random.Generator | None = None) -> CameraModel:
    """The frame's camera: one of `cfg.cameras` (drawn with `rng`; the first without one). "config" and "WxH@HFOV"
    are pinholes with square pixels, the principal point at the centre and distortion `cfg.dist` (k1, k2 jittered
    by `cfg.dist_jitter`); named cameras (e.g. "astyx") have their own intrinsics and no distortion."""
    spec = cfg.cameras[int(rng.integers(len(cfg.cameras)))] if rng is not None else cfg.cameras[0]
    w, h, hfov, named = parse_camera(spec)
    if named is not None:
        fx, fy, cx, cy = named
        return CameraModel(np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]]), w, h, np.zeros(0))
    if spec == "config":
        w, h, hfov = cfg.width, cfg.height, cfg.hfov_deg
    hfov = cfg.hfov_deg if hfov is None else hfov
    f = (w / 2.0) / np.tan(np.radians(hfov) / 2.0)
    K = np.array([[f, 0, (w - 1) / 2.0], [0, f, (h - 1) / 2.0], [0, 0, 1]])
    dist = np.asarray(cfg.dist, np.float64).copy()
    if rng is not None and dist.size and any(cfg.dist_jitter):
        dist[:2] += rng.uniform(-1, 1, 2) * np.asarray(cfg.dist_jitter)
    return CameraModel(K, w, h, dist)


@dataclass
class Appearance:
    """The look of one frame (drawn by `sample_appearance`)."""

    sun: np.ndarray                 # unit vector towards the sun (world)
    overcast: bool
    ambient: float
    snow: bool
    texture_contrast: float
    exposure: float                 # linear gain 2 ** ev
    wb: np.ndarray                  # R, G, B gains
    saturation: float
    gamma: float
    vignetting: float
    blur_px: float
    noise_std: float
    jpeg_quality: int

    @classmethod
    def plain(cls) -> "Appearance":
        """The fixed look of earlier versions: clear sky, sun at 45 deg, no grading, no JPEG."""
        return cls(np.array([0.5, 0.5, 0.70710678]), False, 0.38, False, 1.0, 1.0, np.ones(3), 1.0, 1.0, 0.0, 0.6,
                   NOISE_STD, 100)


def sample_appearance(cfg: SynthConfig, rng: np.random.Generator) -> Appearance:
    az = rng.uniform(-np.pi, np.pi)
    el = np.radians(rng.uniform(*cfg.sun_elevation_deg))
    sun = np.array([np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)])
    overcast = bool(rng.random() < cfg.overcast_prob)
    ambient = rng.uniform(0.85, 1.0) if overcast else rng.uniform(*cfg.ambient)
    snow = bool(rng.random() < cfg.snow_prob)
    wb = np.array([rng.uniform(*cfg.white_balance), 1.0, rng.uniform(*cfg.white_balance)])
    return Appearance(sun, overcast, float(ambient), snow, float(rng.uniform(*cfg.texture_contrast)),
                      float(2.0 ** rng.uniform(*cfg.exposure_ev)), wb, float(rng.uniform(*cfg.saturation)),
                      float(rng.uniform(*cfg.gamma)), float(rng.uniform(*cfg.vignetting)),
                      float(rng.uniform(*cfg.blur_px)), float(rng.uniform(*cfg.noise_std)),
                      int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1)))


#: pixel spacing of the grid on which rays are undistorted exactly (bilinear in between)
RAY_GRID_PX = 8


@lru_cache(maxsize=4)
def _pixel_rays(K: tuple, dist: tuple, width: int, height: int) -> np.ndarray:
    Km = np.array(K).reshape(3, 3)
    if any(dist):
        # OpenCV's undistortPoints on a grid every RAY_GRID_PX pixels, bilinear in between (cv2.remap): the lens model
        # is smooth, so this is within 0.01 px of undistorting every pixel (tested), which took ~190 ms per 640 x 480
        # frame once the distortion varies per frame (dist_jitter defeats this cache)
        s = RAY_GRID_PX
        gu, gv = np.arange(0, width + s, s, dtype=np.float64), np.arange(0, height + s, s, dtype=np.float64)
        g = np.stack(np.meshgrid(gu, gv), -1).reshape(-1, 1, 2)
        xg = cv2.undistortPoints(g, Km, np.array(dist), criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS,
                                                                 30, 1e-9)).reshape(len(gv), len(gu), 2)
        xn = cv2.remap(xg.astype(np.float32), *_grid_maps(width, height), cv2.INTER_LINEAR).reshape(-1, 2)
    else:
        u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
        xn = (np.stack([u.ravel(), v.ravel()], axis=1) - Km[:2, 2]) / np.diag(Km)[:2]
    rays = np.concatenate([xn, np.ones((len(xn), 1))], axis=1).astype(np.float32)
    rays.flags.writeable = False
    return rays


@lru_cache(maxsize=4)
def _grid_maps(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap maps from the pixel grid into the RAY_GRID_PX grid."""
    return tuple(np.meshgrid(np.arange(width, dtype=np.float32) / RAY_GRID_PX,
                             np.arange(height, dtype=np.float32) / RAY_GRID_PX))


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


@lru_cache(maxsize=8)
def _gamma_lut(gamma: float = 1.0) -> np.ndarray:
    """[0, 1] in 1024 steps -> uint8: the frame's tone curve x ** gamma, then the display gamma 1 / 1.1."""
    return (np.linspace(0, 1, 1024) ** (gamma / 1.1) * 255 + 0.5).astype(np.uint8)


@lru_cache(maxsize=4)
def _vignette(height: int, width: int) -> np.ndarray:
    """Corner darkening profile in [0, 1] (0 at the centre): squared radius over the half-width, capped at 1.5."""
    yy, xx = np.ogrid[:height, :width]
    r2 = ((xx - (width - 1) / 2) / (width / 2)) ** 2 + ((yy - (height - 1) / 2) / (width / 2)) ** 2
    out = (np.minimum(r2, 1.5) / 1.5).astype(np.float32)
    out.flags.writeable = False
    return out


def pixel_rays(camera: CameraModel) -> np.ndarray:
    """H*W x 3 ray directions in the optical frame with z = 1 (so a ray's hit distance t is the depth), row-major,
    undistorted with OpenCV so the rendered image has the camera's distortion."""
    return _pixel_rays(tuple(camera.K.ravel()), tuple(camera.dist.ravel()), camera.width, camera.height)


def sky_colour(d_world: np.ndarray, overcast: bool = False) -> np.ndarray:
    """Sky gradient from horizon to zenith by the ray's elevation (N x 3 unit-ish directions); overcast: grey."""
    e = np.clip(d_world[:, 2] / np.linalg.norm(d_world, axis=1), 0.0, 1.0) ** 0.6
    if overcast:
        return OVERCAST_SKY * (1.0 - 0.12 * e[:, None])
    return SKY_HORIZON * (1 - e[:, None]) + SKY_ZENITH * e[:, None]


def _snow_cover(material: np.ndarray, p: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Share of snow (0..1) on upward-facing ground, sidewalk, roof and crown surfaces, patchy by value noise."""
    up = np.clip((n[:, 2] - 0.5) * 2.0, 0.0, 1.0)
    where = np.isin(material, (S.GROUND, S.SIDEWALK, S.BUILDING, S.FOLIAGE)).astype(np.float32)
    where[material == S.FOLIAGE] = 0.6
    patch = textures.value_noise(p[:, 0] * 0.7, p[:, 1] * 0.7, 11)
    return where * up * np.clip((patch - 0.25) * 2.5, 0.0, 1.0)


def render_camera(scene: Scene, rc, rig: Rig, camera: CameraModel, rng: np.random.Generator,
                  shadows: bool = True, look: Appearance | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Ray cast one camera image at t = 0 with appearance `look` (default `Appearance.plain()`). Returns (image
    H x W x 3 uint8 RGB, depth H x W float32 metres, 0 = sky)."""
    import open3d as o3d

    look = look if look is not None else Appearance.plain()
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
    mat = scene.material[obj]
    alb = textures.albedo(mat, obj, p, n, scene)
    if look.texture_contrast != 1.0:                             # scale the texture's variation around the base colour
        base = scene.color[obj]
        alb = np.clip(base + look.texture_contrast * (alb - base), 0.0, 1.0)
    if look.snow:                                                # winter: bare grey-brown crowns, snow on top
        fol = mat == S.FOLIAGE
        alb[fol] = 0.35 * alb[fol] + 0.65 * WINTER_CROWN * (alb[fol].mean(1, keepdims=True) / 0.25)
        cover = _snow_cover(mat, p, n)[:, None]
        alb = alb * (1 - cover) + SNOW * cover

    sun = look.sun.astype(np.float32)
    if look.overcast:                                            # diffuse sky light: brighter facing up, no shadows
        shade = look.ambient * (0.72 + 0.28 * n[:, 2])
    else:
        lambert = np.clip(n[:, 0] * sun[0] + n[:, 1] * sun[1] + n[:, 2] * sun[2], 0.0, None)
        if shadows:
            lit = lambert > 0
            srays = np.concatenate([p[lit] + n[lit] * 0.02, np.broadcast_to(sun, (int(lit.sum()), 3))], axis=1)
            occluded = scene_occluded(rc, srays.astype(np.float32))
            lam = lambert[lit]
            lam[occluded] = 0.0
            lambert[lit] = lam
        shade = look.ambient * (0.8 + 0.2 * n[:, 2]) + (1.0 - look.ambient) * lambert
    rgb = alb * shade[:, None]
    rh = rays_cam[hit]
    dist = t[hit] * np.sqrt(rh[:, 0] * rh[:, 0] + rh[:, 1] * rh[:, 1] + 1.0)     # depth -> distance along the ray
    fog = (1.0 - np.exp(-dist / FOG_DISTANCE))[:, None]
    horizon = OVERCAST_SKY if look.overcast else SKY_HORIZON
    rgb = rgb * (1 - fog) + horizon * fog

    img = np.empty((H * W, 3), np.float32)
    img[~hit] = sky_colour(d[~hit], look.overcast)
    img[hit] = rgb
    img = img.reshape(H, W, 3)
    img = _develop(img, look, rng)

    depth = np.zeros(H * W, np.float32)
    depth[hit] = t[hit]       # ray z = 1 in the optical frame, so t is the camera-frame depth
    return img, depth.reshape(H, W)


def _develop(img: np.ndarray, look: Appearance, rng: np.random.Generator) -> np.ndarray:
    """Linear radiance H x W x 3 -> uint8 RGB as a camera would: exposure, vignetting, optical blur, sensor noise,
    white balance, tone curve, saturation, 8-bit quantisation, JPEG round trip (OpenCV)."""
    H, W = img.shape[:2]
    img *= np.float32(look.exposure)
    if look.vignetting > 0:
        img *= (1.0 - np.float32(look.vignetting) * _vignette(H, W))[..., None]
    if look.blur_px > 0:
        img = cv2.GaussianBlur(img, (0, 0), look.blur_px)
    if look.noise_std > 0:
        img += _noise_crop(H, W, rng) * np.float32(look.noise_std / NOISE_STD)
    if not np.allclose(look.wb, 1.0):
        img *= look.wb.astype(np.float32)
    if look.saturation != 1.0:
        luma = cv2.transform(img, np.array([[0.299, 0.587, 0.114]], np.float32))[..., None]
        img = luma + np.float32(look.saturation) * (img - luma)
    np.clip(img, 0, 1, out=img)
    out = _gamma_lut(look.gamma)[(img * 1023 + 0.5).astype(np.int32)]   # tone curve + display gamma, one table
    if look.jpeg_quality < 100:
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, look.jpeg_quality])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
    return out


def scene_occluded(rc, rays: np.ndarray) -> np.ndarray:
    """True where a ray (N x 6 origin + direction) hits anything."""
    import open3d as o3d

    if len(rays) == 0:
        return np.zeros(0, bool)
    return rc.test_occlusions(o3d.core.Tensor(rays)).numpy().astype(bool)
