"""Astyx HiRes2019 reader: real frames load into Frames with the documented conventions; bad files raise a
DatasetError naming the file and the problem (tested on small broken copies of real frames)."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from racalnet_ros.datasets import DatasetError, open_dataset
from racalnet_ros.datasets.astyx import AstyxDataset
from racalnet_ros.geometry import project_to_image, transform_points

SUBDIRS = ("calibration", "camera_front", "radar_6455", "lidar_vlp16")


def copy_frames(src: Path, dst: Path, ids, rename=None):
    """Copy frames into dst in the published layout (no dataset.json); rename maps old id -> new id."""
    for fid in ids:
        new = (rename or {}).get(fid, fid)
        for sub in SUBDIRS:
            ext = {"calibration": ".json", "camera_front": ".jpg"}.get(sub, ".txt")
            (dst / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(src / sub / f"{fid}{ext}", dst / sub / f"{new}{ext}")
    return dst


def test_real_frame_loads_with_named_radar_columns(astyx_root):
    ds = AstyxDataset(astyx_root)
    f = ds.load("000000")
    assert f.image.shape == (618, 2048, 3) and f.image.dtype == np.uint8
    assert f.radar_fields == ("x", "y", "z", "doppler", "power")
    assert f.radar.shape == (831, 5)  # 833 lines minus the blank line and the header
    first = [0.108118820531769647, 2.30565393293341492, -0.279097884893417358, 0, 48]
    np.testing.assert_allclose(f.radar[0], first, rtol=1e-6)
    assert f.lidar.shape == (22988, 3) and len(f.extras["lidar_laser_id"]) == 22988
    assert set(np.unique(f.extras["lidar_laser_id"])) <= set(range(16))
    assert not f.camera.has_distortion  # the calibration has no distortion coefficients
    assert f.prior is None and ds.eval_crop_rows is None


def test_radar_forward_axis_is_camera_optical_axis(astyx_root):
    f = AstyxDataset(astyx_root).load("000000")
    # the reference (radar) frame is x forward, y left, z up; the camera optical frame is x right, y down, z forward
    p = transform_points(f.T_cam_radar, np.array([[20.0, 0.0, 0.0], [20.0, 1.0, 0.0], [20.0, 0.0, 1.0]]))
    assert p[0, 2] == pytest.approx(20.0, abs=0.5)
    assert p[1, 0] < p[0, 0] - 0.9  # radar left -> camera -x
    assert p[2, 1] < p[0, 1] - 0.9  # radar up -> camera -y
    # most radar and LiDAR points in the camera's field of view land in the image, at positive depth
    rad = project_to_image(f.radar_xyz, f.T_cam_radar, f.camera)
    lid = project_to_image(f.lidar, f.T_cam_lidar, f.camera)
    assert 400 < len(rad) <= f.num_radar and 1000 < len(lid) < 5000
    assert rad.depth.min() > 0.1 and lid.depth.min() > 0.1


def test_splits_and_prior(astyx_root):
    ds = open_dataset("astyx", str(astyx_root), prior_dir="mono_fastdepth")
    assert ds.split_ids("train")[:2] == ["000000", "000001"] and ds.split_ids("train")[-1] == "000069"
    assert [int(i) for i in ds.split_ids("val")] == list(range(70, 80))      # choosing the epoch and threshold
    assert [int(i) for i in ds.split_ids("test")] == list(range(80, 100))    # never seen in training or selection
    assert set(ds.split_ids("full")) == set(ds.ids)
    with pytest.raises(KeyError):
        ds.split_ids("nope")
    f = ds.split("test").load("000080")
    assert f.prior.shape == (618, 2048) and f.prior.dtype == np.float32


def test_any_frame_ids_in_the_layout_are_found(astyx_root, tmp_path):
    copy_frames(astyx_root, tmp_path, ["000003", "000004"], rename={"000004": "000123"})
    ds = AstyxDataset(tmp_path)
    assert ds.ids == ["000003", "000123"]
    assert ds.split_ids("test") == ["000123"] and ds.split_ids("train") == ["000003"]   # 123: beyond 0-99
    assert ds.load("000123").frame_id == "000123"


@pytest.fixture
def broken(astyx_root, tmp_path):
    return copy_frames(astyx_root, tmp_path, ["000001", "000002"])


def test_missing_file_names_it(broken):
    (broken / "lidar_vlp16" / "000001.txt").unlink()
    ds = AstyxDataset(broken)
    with pytest.raises(DatasetError, match=r"lidar_vlp16/000001\.txt: file is missing"):
        ds.load("000001")
    frames = list(ds.iter_frames(skip_bad=True))  # the other frame still loads
    assert [f.frame_id for f in frames] == ["000002"] and len(ds.skipped) == 1


def test_truncated_radar_file(broken):
    p = broken / "radar_6455" / "000001.txt"
    text = p.read_text()
    p.write_text(text[: len(text) // 2 - 7])  # cut in the middle of a line
    with pytest.raises(DatasetError, match=r"radar_6455/000001\.txt: malformed or truncated table: line \d+ has"):
        AstyxDataset(broken).load("000001")


def test_truncated_calibration(broken):
    p = broken / "calibration" / "000002.json"
    p.write_text(p.read_text()[:300])
    with pytest.raises(DatasetError, match=r"calibration/000002\.json: not valid JSON"):
        AstyxDataset(broken).load("000002")


@pytest.mark.parametrize("content", ["", "\nX Y Z V_r Mag\n"])
def test_empty_radar_file(broken, content):
    (broken / "radar_6455" / "000002.txt").write_text(content)
    with pytest.raises(DatasetError, match=r"radar_6455/000002\.txt: (file is empty|no points)"):
        AstyxDataset(broken).load("000002")


def test_image_size_must_match_calibration(broken):
    p = broken / "camera_front" / "000001.jpg"
    img = cv2.imread(str(p))
    cv2.imwrite(str(p), cv2.resize(img, (1024, 309)))
    with pytest.raises(DatasetError, match=r"camera_front/000001\.jpg: image is 1024x309 but the calibration's "
                                           r"camera is 2048x618"):
        AstyxDataset(broken).load("000001")


def test_corrupt_jpeg(broken):
    p = broken / "camera_front" / "000002.jpg"
    p.write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(DatasetError, match=r"camera_front/000002\.jpg: cannot decode"):
        AstyxDataset(broken).load("000002")


def test_calibration_without_camera(broken):
    p = broken / "calibration" / "000001.json"
    doc = json.loads(p.read_text())
    doc["sensors"] = [s for s in doc["sensors"] if s["sensor_uid"] != "camera_front"]
    p.write_text(json.dumps(doc))
    with pytest.raises(DatasetError, match=r"000001\.json: no sensor 'camera_front'"):
        AstyxDataset(broken).load("000001")


def test_missing_root():
    with pytest.raises(DatasetError, match="does not exist"):
        AstyxDataset("/nonexistent/astyx")


def test_dataset_json_paths_are_followed(astyx_root, tmp_path):
    copy_frames(astyx_root, tmp_path, ["000006"])
    (tmp_path / "radar_6455" / "000006.txt").rename(tmp_path / "radar_6455" / "elsewhere.txt")
    entry = {"calibration": "calibration/000006.json", "camera_front": "camera_front/000006.jpg",
             "lidar_vlp16": "lidar_vlp16/000006.txt", "radar_6455": "radar_6455/elsewhere.txt"}
    (tmp_path / "dataset.json").write_text(json.dumps({"data": {"6": entry}}))
    ds = AstyxDataset(tmp_path)
    assert ds.ids == ["000006"] and ds.load("000006").num_radar > 0
    (tmp_path / "dataset.json").write_text('{"data": {"6": ')
    with pytest.raises(DatasetError, match=r"dataset\.json: not a valid Astyx dataset\.json"):
        AstyxDataset(tmp_path)


def test_the_dataset_describes_itself_for_checkpoint_provenance(astyx_root):
    from racalnet_ros.datasets.astyx import AstyxDataset
    from racalnet_ros.datasets.base import id_ranges
    d = AstyxDataset(astyx_root, load_lidar=False).split("test").describe()
    assert (d["dataset"], d["real"], d["frames"], d["n_frames"]) == ("astyx", True, "000080-000099", 20)
    assert "6455" in d["sensor"] and d["root"] == str(astyx_root)
    assert id_ranges(["000001", "000002", "000004", "x", "7", "8"]) == "000001-000002,000004,x,7-8"
