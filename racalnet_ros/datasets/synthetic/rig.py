"""The sensor rig on the ego vehicle: camera, LiDAR and radar poses, and the ego motion.

Ego frame: x forward, y left, z up (metres), origin on the ground below the camera; at the camera's timestamp it
equals the world frame of `scene.py`. The camera *optical* frame is x right, y down, z forward. The LiDAR sits
above and behind the camera (parallax occlusion in its projections); the radar sits in the front bumper, lower and
ahead of the camera, with a wider field of view.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: optical (x right, y down, z forward) -> ego (x forward, y left, z up)
R_EGO_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def make_T(R: np.ndarray, t) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = R
    T[:3, 3] = t
    return T


def rotation_xyz(rx: float, ry: float, rz: float) -> np.ndarray:
    """R = Rz @ Ry @ Rx (radians)."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    Rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    Ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    Rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return Rz @ Ry @ Rx


@dataclass
class Rig:
    """Sensor poses in the ego frame (4x4, sensor -> ego) and the ego velocity (m/s, along +x)."""

    T_ego_cam: np.ndarray
    T_ego_lidar: np.ndarray
    T_ego_radar: np.ndarray
    ego_speed: float

    @classmethod
    def sample(cls, rng: np.random.Generator, ego_speed: float, cfg=None) -> "Rig":
        """Poses drawn from the mounting ranges of a SynthConfig (`camera_height_m`, `lidar_*`, `radar_*`)."""
        from .config import SynthConfig

        cfg = cfg if cfg is not None else SynthConfig()
        cam_h = rng.uniform(*cfg.camera_height_m)
        pitch = np.radians(rng.normal(0.0, 0.7))    # small mounting pitch (about the ego y axis; + = nose down)
        T_ego_cam = make_T(rotation_xyz(0.0, pitch, 0.0) @ R_EGO_OPTICAL, (0.0, 0.0, cam_h))
        T_ego_lidar = make_T(np.eye(3), (rng.uniform(*cfg.lidar_forward_m), rng.uniform(-0.05, 0.05),
                                         cam_h + rng.uniform(*cfg.lidar_above_camera_m)))
        roll, pitch_r, yaw = np.radians(np.asarray(cfg.radar_mount_deg) + rng.normal(0, cfg.radar_mount_std_deg, 3))
        T_ego_radar = make_T(rotation_xyz(roll, pitch_r, yaw),
                             (rng.uniform(*cfg.radar_forward_m), rng.uniform(-0.3, 0.3),
                              rng.uniform(*cfg.radar_height_m)))
        return cls(T_ego_cam, T_ego_lidar, T_ego_radar, float(ego_speed))

    def T_world_ego(self, t: float) -> np.ndarray:
        """Ego pose at time t (seconds after the camera's timestamp)."""
        return make_T(np.eye(3), (self.ego_speed * t, 0.0, 0.0))

    @property
    def ego_velocity(self) -> np.ndarray:
        return np.array([self.ego_speed, 0.0, 0.0])

    @property
    def T_cam_lidar(self) -> np.ndarray:
        return np.linalg.inv(self.T_ego_cam) @ self.T_ego_lidar

    @property
    def T_cam_radar(self) -> np.ndarray:
        """The TRUE radar -> camera extrinsic (the Frame carries a perturbed, 'calibrated' one)."""
        return np.linalg.inv(self.T_ego_cam) @ self.T_ego_radar
