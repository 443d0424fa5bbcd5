"""ZJU-4DRadarCam reader on tiny fixtures written in exactly the baseline's format (the data is not reachable here)."""

import cv2
import numpy as np
import pytest

from racalnet_ros.datasets import DatasetError, open_dataset
from racalnet_ros.datasets.zju import EVAL_CROP_ROWS, NOMINAL_K, ZJUDataset
from racalnet_ros.geometry import lidar_depth_map, project_to_image

W, H = 1280, 720


def write_frame(data, stem, radar, gt_points, interp=True):
    """radar: array saved as-is to radar/<stem>.npy; gt_points: list of (row, col, metres)."""
    rng = np.random.default_rng(abs(hash(stem)) % 2**32)
    img = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    img[0, 0] = (10, 20, 30)  # RGB
    cv2.imwrite(str(data / "image" / f"{stem}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    np.save(data / "radar" / f"{stem}.npy", radar)
    gt = np.zeros((H, W), np.uint16)
    for r, c, m in gt_points:
        gt[r, c] = round(m * 256)
    cv2.imwrite(str(data / "gt" / f"{stem}.png"), gt)
    if interp:
        cv2.imwrite(str(data / "gt_interp" / f"{stem}.png"), np.full((H, W), 10 * 256, np.uint16))
    cv2.imwrite(str(data / "radar_png" / f"{stem}.png"), np.zeros((H, W), np.uint16))


@pytest.fixture
def zju(tmp_path):
    data = tmp_path / "data"
    for sub in ("image", "gt", "gt_interp", "radar", "radar_png"):
        (data / sub).mkdir(parents=True)
    write_frame(data, "1000", np.array([[100.0, 300.0, 12.5], [640.7, 401.2, 30.0], [1279.0, 719.0, 80.0]]),
                [(300, 100, 12.5), (400, 641, 29.99609375), (719, 1279, 80.0)])
    write_frame(data, "1001", np.array([500.0, 250.0, 7.0]), [(250, 500, 7.0)], interp=False)  # shape (3,)
    write_frame(data, "1002", np.array([[5.0, 5.0, 5.0]]), [(5, 5, 5.0)])
    (data / "full.txt").write_text("1000\n1001\n1002\n")
    (data / "train.txt").write_text("1000\n1001\n")
    (data / "val.txt").write_text("1002\n")
    (data / "test.txt").write_text("1002\n")
    return tmp_path


def test_frames_and_splits(zju):
    ds = open_dataset("zju", str(zju))  # the folder holding data/ ...
    assert ds.ids == ["1000", "1001", "1002"]
    assert ds.split_ids("train") == ["1000", "1001"] and ds.split_ids("test") == ["1002"]
    assert ZJUDataset(zju / "data").ids == ds.ids  # ... or data/ itself
    assert ds.eval_crop_rows == EVAL_CROP_ROWS == (240, 540)
    f = ds.load("1000")
    assert f.image.shape == (H, W, 3) and tuple(f.image[0, 0]) == (10, 20, 30)
    assert f.radar_fields == ("x", "y", "z") and f.num_radar == 3
    np.testing.assert_allclose(f.camera.K, NOMINAL_K)
    np.testing.assert_array_equal(f.T_cam_radar, np.eye(4))
    assert f.extras["depth_gt_interp"][0, 0] == 10.0


def test_depth_png_encoding_is_value_over_256(zju):
    f = ZJUDataset(zju).load("1000")
    gt = f.extras["depth_gt_sparse"]
    assert gt.dtype == np.float32 and gt.shape == (H, W)
    assert gt[300, 100] == 12.5 and gt[400, 641] == 29.99609375 and gt[719, 1279] == 80.0
    assert (gt > 0).sum() == 3  # 0 = invalid


def test_reprojection_returns_the_stored_pixels(zju):
    ds = ZJUDataset(zju, K=np.array([[700.0, 0, 600], [0, 710.0, 380], [0, 0, 1]]))  # any K works
    f = ds.load("1000")
    p = project_to_image(f.radar_xyz, f.T_cam_radar, f.camera)
    np.testing.assert_allclose(p.uv, [[100.0, 300.0], [640.7, 401.2], [1279.0, 719.0]], atol=1e-3)
    np.testing.assert_allclose(p.depth, [12.5, 30.0, 80.0], rtol=1e-6)
    # the LiDAR ground truth rebuilt from the back-projected gt pixels equals the gt PNG exactly
    np.testing.assert_array_equal(lidar_depth_map(f), f.extras["depth_gt_sparse"])


def test_single_point_radar_of_shape_3(zju):
    f = ZJUDataset(zju).load("1001")
    assert f.radar.shape == (1, 3)
    p = project_to_image(f.radar_xyz, f.T_cam_radar, f.camera)
    np.testing.assert_allclose(p.uv[0], [500.0, 250.0], atol=1e-3)
    assert "depth_gt_interp" not in f.extras


def test_bad_input_names_file_and_problem(zju):
    data = zju / "data"
    ds = ZJUDataset(zju)
    np.save(data / "radar" / "1002.npy", np.zeros((0, 3)))
    with pytest.raises(DatasetError, match=r"radar/1002\.npy: radar file is empty"):
        ds.load("1002")
    np.save(data / "radar" / "1002.npy", np.zeros((4, 2)))
    with pytest.raises(DatasetError, match=r"radar/1002\.npy: expected N x 3"):
        ds.load("1002")
    (data / "gt" / "1001.png").unlink()
    with pytest.raises(DatasetError, match=r"gt/1001\.png: file is missing"):
        ds.load("1001")
    cv2.imwrite(str(data / "image" / "1000.png"), np.zeros((360, 640, 3), np.uint8))
    with pytest.raises(DatasetError, match=r"image/1000\.png: image is 640x360 but the camera is 1280x720"):
        ds.load("1000")
    assert list(ds.iter_frames(skip_bad=True)) == [] and len(ds.skipped) == 3


def test_8bit_depth_png_is_rejected(zju):
    cv2.imwrite(str(zju / "data" / "gt" / "1002.png"), np.zeros((H, W), np.uint8))
    with pytest.raises(DatasetError, match=r"gt/1002\.png: expected a single-channel uint16"):
        ZJUDataset(zju).load("1002")


def test_unknown_split(zju):
    with pytest.raises(KeyError):
        ZJUDataset(zju).split_ids("bogus")


def test_the_dataset_describes_itself_for_checkpoint_provenance(zju):
    d = open_dataset("zju", str(zju)).split("train").describe()
    assert (d["dataset"], d["real"], d["frames"], d["n_frames"]) == ("zju", True, "1000-1001", 2)
    assert "Oculii EAGLE" in d["sensor"] and d["root"] == str(zju / "data")
