"""Small hand-made frames for tests and benchmarks: a two-wall scene (left half of the image at `near` metres,
right half at `far` metres) with a dense LiDAR grid, radar points on the walls seen through a miscalibrated extrinsic
(a pixel shift), and depth outliers (ghosts) with lower power. Deterministic per seed; no external data."""

from __future__ import annotations

import numpy as np

from ..frame import CameraModel, Frame


def toy_frame(seed: int = 0, width: int = 160, height: int = 120, n_radar: int = 60, outlier_frac: float = 0.3,
              shift_px: tuple[float, float] = (4.0, 0.0), near: float = 8.0, far: float = 20.0,
              lidar_step: int = 3, fields: tuple[str, ...] = ("x", "y", "z", "doppler", "power")) -> Frame:
    rng = np.random.default_rng(seed)
    f = 0.8 * width
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
    cam = CameraModel(K, width, height)
    depth = np.where(np.arange(width)[None, :] < width // 2, near, far) * np.ones((height, 1))
    # image: colour encodes the wall, plus texture noise
    img = np.where((np.arange(width) < width // 2)[None, :, None], [200, 80, 60], [60, 90, 200]) * np.ones((height, 1, 1))
    img = np.clip(img + rng.normal(0, 20, img.shape), 0, 255).astype(np.uint8)

    def backproject(u, v, z):
        return np.stack([(u - K[0, 2]) / f * z, (v - K[1, 2]) / f * z, z], 1)

    # LiDAR grid on the walls (camera frame = LiDAR frame)
    vv, uu = np.mgrid[0:height:lidar_step, 0:width:lidar_step]
    uu, vv = uu.ravel().astype(float), vv.ravel().astype(float)
    lidar = backproject(uu, vv, depth[vv.astype(int), uu.astype(int)])
    # radar: true surface pixels, seen through an extrinsic error equal to a pixel shift at the surface's depth
    n_out = int(round(n_radar * outlier_frac))
    ut = rng.uniform(2, width - 3, n_radar)
    vt = rng.uniform(2, height - 3, n_radar)
    zt = depth[np.rint(vt).astype(int), np.rint(ut).astype(int)]
    z = zt + rng.normal(0, 0.05, n_radar)
    z[:n_out] = rng.uniform(2.0, 40.0, n_out)  # ghosts: wrong depth
    us, vs = ut + shift_px[0], vt + shift_px[1]
    us, vs = np.clip(us, 0, width - 1), np.clip(vs, 0, height - 1)
    xyz = backproject(us, vs, z)
    doppler = rng.normal(0, 0.2, n_radar)
    power = np.where(np.arange(n_radar) < n_out, rng.normal(40, 3, n_radar), rng.normal(55, 3, n_radar))
    cols = {"x": xyz[:, 0], "y": xyz[:, 1], "z": xyz[:, 2], "doppler": doppler, "power": power}
    radar = np.stack([cols[c] for c in fields], 1).astype(np.float32)
    uv_true = np.stack([ut, vt], 1).astype(np.float32)
    uv_true[:n_out] = np.nan
    return Frame(image=img, camera=cam, radar=radar, T_cam_radar=np.eye(4), radar_fields=fields,
                 lidar=lidar.astype(np.float32), T_cam_lidar=np.eye(4), frame_id=f"toy{seed:04d}",
                 extras={"radar_uv_true": uv_true, "radar_is_outlier": np.arange(n_radar) < n_out})
