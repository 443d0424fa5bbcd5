"""Projection with OpenCV distortion, in-image masks, z-buffered sparse depth maps, LiDAR ground truth and the
optional occlusion filter."""

import cv2
import numpy as np
import pytest

from racalnet_ros.frame import CameraModel, Frame
from racalnet_ros.geometry import (filter_occluded, in_image_mask, lidar_depth_map, project_to_image,
                                   sparse_depth_map, transform_points)

K = np.array([[100.0, 0, 50.0], [0, 100.0, 40.0], [0, 0, 1]])
CAM = CameraModel(K, 100, 80)


def test_pinhole_projection_by_hand():
    # camera-frame point (1, -0.5, 5): u = 100 * 1/5 + 50 = 70, v = 100 * -0.5/5 + 40 = 30
    p = project_to_image(np.array([[1.0, -0.5, 5.0], [0.0, 0.0, -3.0], [100.0, 0, 1.0]]), np.eye(4), CAM)
    assert p.index.tolist() == [0]  # behind the camera and outside the image are dropped
    np.testing.assert_allclose(p.uv[0], [70.0, 30.0])
    assert p.depth[0] == pytest.approx(5.0)


def test_distortion_matches_opencv():
    dist = np.array([-0.2, 0.05, 0.001, -0.002, 0.0])
    cam = CameraModel(K, 100, 80, dist)
    pts = np.array([[0.3, 0.2, 2.0], [-0.4, 0.1, 3.0]])
    ref, _ = cv2.projectPoints(pts.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, dist)
    p = project_to_image(pts, np.eye(4), cam)
    np.testing.assert_allclose(p.uv, ref.reshape(-1, 2), atol=1e-4)
    assert not np.allclose(p.uv, project_to_image(pts, np.eye(4), CAM).uv, atol=0.1)  # distortion matters


def test_transform_then_project():
    T = np.eye(4)
    T[:3, 3] = [0, 0, 2.0]  # sensor 2 m behind the camera
    p = project_to_image(np.array([[0.0, 0.0, 3.0]]), T, CAM)
    assert p.depth[0] == pytest.approx(5.0)
    np.testing.assert_allclose(transform_points(T, [[1.0, 2.0, 3.0]]), [[1.0, 2.0, 5.0]])


def test_in_image_mask_uses_pixel_centres():
    uv = np.array([[-0.49, 0.0], [-0.51, 0.0], [99.49, 79.49], [99.5, 10.0], [np.nan, 3.0]])
    assert in_image_mask(uv, 100, 80).tolist() == [True, False, True, False, False]


def test_sparse_depth_map_nearest_point_wins():
    uv = np.array([[3.2, 2.4], [2.8, 1.6], [5.0, 5.0], [500.0, 1.0]])
    d = np.array([10.0, 4.0, 7.0, 1.0])
    m = sparse_depth_map(uv, d, 8, 6)
    assert m[2, 3] == 4.0  # both first points round to (row 2, col 3): the nearer wins
    assert m[5, 5] == 7.0 and (m > 0).sum() == 2


def _frame(lidar_cam):
    img = np.zeros((80, 100, 3), np.uint8)
    return Frame(image=img, camera=CAM, radar=np.zeros((0, 3)), T_cam_radar=np.eye(4),
                 lidar=lidar_cam, T_cam_lidar=np.eye(4))


def test_lidar_depth_map_and_occlusion_filter():
    # a wall at 5 m covering u = 40..60 (two points) and a background point at 20 m between them, hidden from the
    # camera but seen by the LiDAR; plus an isolated far point with nothing near it
    pts = np.array([[-0.1 * 5, 0, 5.0], [0.1 * 5, 0, 5.0], [0.01 * 20, 0, 20.0], [0.4 * 30, 0.3 * 30, 30.0]])
    f = _frame(pts)
    raw = lidar_depth_map(f)
    assert raw[40, 51] == pytest.approx(20.0) and (raw > 0).sum() == 4
    filt = lidar_depth_map(f, occlusion_filter=True, window=21)
    assert filt[40, 51] == 0.0  # hidden point removed
    assert filt[40, 40] == pytest.approx(5.0) and filt[70, 90] == pytest.approx(30.0)  # others kept
    # with a window too small to reach the wall, nothing is removed
    assert (lidar_depth_map(f, occlusion_filter=True, window=3) > 0).sum() == 4
    no_lidar = Frame(image=f.image, camera=CAM, radar=np.zeros((0, 3)), T_cam_radar=np.eye(4))
    assert lidar_depth_map(no_lidar).shape == (80, 100) and not lidar_depth_map(no_lidar).any()


def test_filter_occluded_margin():
    uv = np.array([[10.0, 10.0], [11.0, 10.0]])
    # 5.4 m next to 5 m: within max(1 m, 10%) -> kept ; 7 m next to 5 m: occluded
    assert filter_occluded(uv, np.array([5.0, 5.4]), 20, 20).tolist() == [True, True]
    assert filter_occluded(uv, np.array([5.0, 7.0]), 20, 20).tolist() == [True, False]
    with pytest.raises(ValueError, match="window"):
        filter_occluded(uv, np.array([5.0, 7.0]), 20, 20, window=4)


def test_points_beyond_the_field_of_view_do_not_fold_into_the_image():
    # k1 = -0.3: r_d = r (1 - 0.3 r^2) turns back after r ~ 1.05; a point at 63 degrees (r = 2) would land at
    # r_d = -0.4, i.e. inside the image, if projected blindly
    cam = CameraModel(K, 100, 80, np.array([-0.3, 0.0, 0.0, 0.0, 0.0]))
    naive, _ = cv2.projectPoints(np.array([[[2.0, 0.0, 1.0]]]), np.zeros(3), np.zeros(3), K, cam.dist)
    assert in_image_mask(naive.reshape(-1, 2), 100, 80).all()  # the trap is real
    p = project_to_image(np.array([[2.0, 0.0, 1.0], [0.3, 0.1, 1.0]]), np.eye(4), cam)
    assert p.index.tolist() == [1]
