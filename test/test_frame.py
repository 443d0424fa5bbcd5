"""The Frame data model rejects malformed input with an error naming the field."""

import numpy as np
import pytest

from racalnet_ros.frame import CameraModel, Frame, FrameError, RadarAnchors

K = np.array([[100.0, 0, 50.0], [0, 100.0, 40.0], [0, 0, 1]])


def make(**kw):
    args = dict(image=np.zeros((80, 100, 3), np.uint8), camera=CameraModel(K, 100, 80),
                radar=np.ones((4, 5), np.float32), T_cam_radar=np.eye(4),
                radar_fields=("x", "y", "z", "doppler", "power"))
    args.update(kw)
    return Frame(**args)


def test_valid_frame_and_named_columns():
    f = make(radar=np.arange(20, dtype=np.float32).reshape(4, 5))
    assert f.num_radar == 4 and f.radar_xyz.shape == (4, 3)
    np.testing.assert_array_equal(f.radar_column("power"), [4, 9, 14, 19])
    with pytest.raises(KeyError, match="rcs"):
        f.radar_column("rcs")
    assert make(radar=np.zeros((0, 5))).num_radar == 0


@pytest.mark.parametrize("kw, field", [
    (dict(image=np.zeros((80, 100), np.uint8)), "image"),
    (dict(image=np.zeros((80, 100, 3), np.float32)), "image"),
    (dict(image=np.zeros((60, 100, 3), np.uint8)), "image: size"),
    (dict(radar=np.ones((4, 3))), "radar"),
    (dict(radar=np.array([[1, 2, np.nan, 0, 0]])), "radar: 1 point"),
    (dict(radar_fields=("y", "x", "z", "doppler", "power")), "radar_fields"),
    (dict(T_cam_radar=np.eye(3)), "T_cam_radar"),
    (dict(T_cam_radar=np.full((4, 4), np.inf)), "T_cam_radar"),
    (dict(T_cam_radar=np.diag([1.0, 1.0, 0.0, 1.0])), "T_cam_radar: rotation part is singular"),
    (dict(T_cam_radar=np.diag([1.0, 1.0, -1.0, 1.0])), "T_cam_radar: rotation part is not a proper rotation"),
    (dict(lidar=np.ones((5, 3))), "T_cam_lidar"),
    (dict(T_cam_lidar=np.zeros((4, 4))), "T_cam_lidar"),  # checked even without LiDAR points
    (dict(lidar=np.ones((5, 2)), T_cam_lidar=np.eye(4)), "lidar"),
    (dict(lidar=np.full((5, 3), np.nan), T_cam_lidar=np.eye(4)), "lidar"),
    (dict(prior=np.ones((10, 10))), "prior"),
    (dict(prior=np.full((80, 100), np.nan)), "prior"),
    (dict(depth_gt=np.ones((80, 99))), "depth_gt"),
])
def test_bad_input_names_the_field(kw, field):
    with pytest.raises(FrameError, match=field):
        make(**kw)


@pytest.mark.parametrize("kw, field", [
    (dict(K=np.eye(2)), "camera.K"),
    (dict(K=np.diag([-1.0, 1.0, 1.0])), "camera.K"),
    (dict(dist=[0.1, 0.2, 0.3]), "camera.dist"),
    (dict(dist=[np.nan] * 5), "camera.dist"),
    (dict(width=0), "width/height"),
])
def test_bad_camera_names_the_field(kw, field):
    args = dict(K=K, width=100, height=80)
    args.update(kw)
    with pytest.raises(FrameError, match=field):
        CameraModel(**args)


def test_scaled_camera():
    cam = CameraModel(K, 100, 80).scaled(0.5, 0.5)
    assert (cam.width, cam.height) == (50, 40) and cam.K[0, 0] == 50.0 and cam.K[1, 2] == 20.0


def test_raw_anchors_keep_every_projection():
    a = RadarAnchors.from_raw(np.array([3, 7]), np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([5.0, 6.0]))
    assert len(a) == 2 and a.num_kept == 2
    np.testing.assert_array_equal(a.kept_array(), [[1, 2, 5, 1], [3, 4, 6, 1]])
    assert len(RadarAnchors.empty()) == 0
