"""rosbag2 files with rosbags (racalnet_ros.ros.bag): frames survive a write/read round trip in sqlite3 and MCAP, the
extrinsics travel in /tf_static and in the metadata, and the one codec (racalnet_ros.ros.convert) decodes rosbags'
messages as it decodes rclpy's, honouring padding and byte order, without importing rclpy or sensor_msgs.
No rclpy or DDS here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import transforms3d

from racalnet_ros.frame import CameraModel, Frame
from racalnet_ros.geometry import project_to_image
from racalnet_ros.ros import bag as bagio
from racalnet_ros.ros import convert
from racalnet_ros.ros.convert import ROSBAGS, ConversionError

FIELDS = ("x", "y", "z", "doppler", "power")


def make_frame(i: int, rng: np.random.Generator, with_lidar: bool = True, with_prior: bool = True,
               T_cam_radar: np.ndarray | None = None) -> Frame:
    K = np.array([[250.0, 0, 159.5], [0, 250.0, 119.5], [0, 0, 1]])
    if T_cam_radar is None:
        T_cam_radar = np.eye(4)
        T_cam_radar[:3, :3] = transforms3d.euler.euler2mat(0.02, -0.01, 0.03)
        T_cam_radar[:3, 3] = [0.1, 0.3, -0.2]
    T_cam_lidar = np.eye(4)
    T_cam_lidar[:3, 3] = [0.0, -0.4, 0.1]
    return Frame(image=rng.integers(0, 256, (240, 320, 3), dtype=np.uint8),
                 camera=CameraModel(K, 320, 240, [-0.05, 0.01, 0.001, -0.002, 0.0]),
                 radar=(rng.normal(size=(37, 5)) * [3, 1, 5, 2, 10] + [0, 0, 20, 0, 30]).astype(np.float32),
                 radar_fields=FIELDS, T_cam_radar=T_cam_radar,
                 lidar=rng.normal(size=(500, 3)).astype(np.float32) * 10 if with_lidar else None,
                 T_cam_lidar=T_cam_lidar if with_lidar else None,
                 prior=rng.random((240, 320)).astype(np.float32) if with_prior else None,
                 stamp=0.0, frame_id=f"{i:06d}")


def assert_same_frame(a: Frame, b: Frame) -> None:
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.radar, b.radar)
    assert a.radar_fields == b.radar_fields
    np.testing.assert_allclose(a.T_cam_radar, b.T_cam_radar, atol=1e-12)
    np.testing.assert_array_equal(a.camera.K, b.camera.K)
    np.testing.assert_array_equal(a.camera.dist, b.camera.dist)
    assert (a.camera.width, a.camera.height, a.camera.distortion_model) == \
        (b.camera.width, b.camera.height, b.camera.distortion_model)
    for name in ("lidar", "prior"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y)
    if a.lidar is not None:
        np.testing.assert_allclose(a.T_cam_lidar, b.T_cam_lidar, atol=1e-12)
    assert a.frame_id == b.frame_id


@pytest.mark.parametrize("storage", ["sqlite3", "mcap"])
def test_frames_survive_a_bag_round_trip(tmp_path, storage):
    rng = np.random.default_rng(1)
    frames = [make_frame(i, rng) for i in range(3)]
    summary = bagio.write_bag(frames, tmp_path / "bag", storage=storage, rate_hz=10.0)
    assert summary.frames == 3 and summary.storage == storage
    assert summary.topics["/camera/image"] == 3 and summary.topics["/tf_static"] == 1
    back = list(bagio.read_frames(tmp_path / "bag"))
    assert len(back) == 3
    for a, b, s in zip(frames, back, summary.stamps_ns):
        assert_same_frame(a, b)
        assert b.extras["stamp_ns"] == s and b.stamp == pytest.approx(s * 1e-9)
    # frames without stamps get start + i / rate
    assert np.diff(summary.stamps_ns).tolist() == [100_000_000, 100_000_000]


def test_every_message_of_a_frame_carries_the_frame_stamp_and_sensor_frame_id(tmp_path):
    rng = np.random.default_rng(2)
    frames = [make_frame(i, rng) for i in range(2)]
    frames[0].stamp, frames[1].stamp = 12.5, 12.75  # increasing dataset stamps are kept
    bagio.write_bag(frames, tmp_path / "bag")
    expected = {"/camera/image": "camera_optical_frame", "/camera/camera_info": "camera_optical_frame",
                "/prior/inverse_depth": "camera_optical_frame", "/radar/points": "radar", "/lidar/points": "lidar"}
    seen = {}
    for topic, msgtype, log_ns, msg in bagio.read_messages(tmp_path / "bag"):
        if topic == "/tf_static":
            continue
        assert msg.header.frame_id == expected[topic]
        assert convert.stamp_to_ns(msg.header.stamp) == log_ns
        seen.setdefault(topic, []).append(log_ns)
    assert all(v == [12_500_000_000, 12_750_000_000] for v in seen.values()), seen


def test_extrinsics_travel_in_tf_static_and_metadata_and_agree(tmp_path):
    rng = np.random.default_rng(3)
    f = make_frame(0, rng)
    bagio.write_bag([f], tmp_path / "bag")
    msgs = [m for t, _, _, m in bagio.read_messages(tmp_path / "bag", ["/tf_static"])]
    assert len(msgs) == 1
    by_child = {tf.child_frame_id: tf for tf in msgs[0].transforms}
    assert set(by_child) == {"radar", "lidar"}
    assert all(tf.header.frame_id == "camera_optical_frame" for tf in by_child.values())
    np.testing.assert_allclose(convert.transform_to_matrix(by_child["radar"].transform), f.T_cam_radar, atol=1e-12)
    custom = bagio.bag_custom_data(tmp_path / "bag")
    np.testing.assert_allclose(np.reshape(json.loads(custom["racalnet.T_cam_radar"]), (4, 4)), f.T_cam_radar)
    ext = bagio.read_extrinsics(tmp_path / "bag")
    np.testing.assert_allclose(ext["T_cam_lidar"], f.T_cam_lidar, atol=1e-12)


def test_frames_without_lidar_or_prior_write_only_their_topics(tmp_path):
    rng = np.random.default_rng(4)
    s = bagio.write_bag([make_frame(0, rng, with_lidar=False, with_prior=False)], tmp_path / "bag", storage="mcap")
    assert set(s.topics) == {"/tf_static", "/camera/image", "/camera/camera_info", "/radar/points"}
    (back,) = bagio.read_frames(tmp_path / "bag")
    assert back.lidar is None and back.prior is None
    assert "T_cam_lidar" not in bagio.read_extrinsics(tmp_path / "bag")


def test_one_static_extrinsic_per_bag(tmp_path):
    rng = np.random.default_rng(5)
    a = make_frame(0, rng)
    T = a.T_cam_radar.copy()
    T[0, 3] += 0.5
    b = make_frame(1, rng, T_cam_radar=T)
    with pytest.raises(bagio.BagError, match="T_cam_radar differs"):
        bagio.write_bag([a, b], tmp_path / "bag")
    bagio.write_bag([a, b], tmp_path / "bag2", extrinsics="first")
    back = list(bagio.read_frames(tmp_path / "bag2"))
    for orig, f in zip((a, b), back):
        np.testing.assert_allclose(f.T_cam_radar, a.T_cam_radar, atol=1e-12)
        # b's points were re-expressed in a's radar frame: the camera sees them exactly where b's extrinsic put them
        p_orig = project_to_image(orig.radar_xyz, orig.T_cam_radar, orig.camera)
        p_back = project_to_image(f.radar_xyz, f.T_cam_radar, f.camera)
        np.testing.assert_array_equal(p_orig.index, p_back.index)
        np.testing.assert_allclose(p_back.uv, p_orig.uv, atol=1e-3)
        np.testing.assert_allclose(p_back.depth, p_orig.depth, atol=1e-4)
        np.testing.assert_array_equal(f.radar[:, 3:], orig.radar[:, 3:])  # doppler, power unchanged


def test_writers_never_overwrite_and_bad_storage_is_named(tmp_path):
    rng = np.random.default_rng(6)
    (tmp_path / "bag").mkdir()
    with pytest.raises(bagio.BagError, match="exists already"):
        bagio.write_bag([make_frame(0, rng)], tmp_path / "bag")
    with pytest.raises(bagio.BagError, match="storage 'rosbag1'"):
        bagio.write_bag([make_frame(0, rng)], tmp_path / "other", storage="rosbag1")
    with pytest.raises(bagio.BagError, match="no such bag"):
        list(bagio.read_frames(tmp_path / "missing"))


def _image(arr_bytes: bytes, h: int, w: int, enc: str, step: int, big: bool):
    Image = bagio.typestore().types["sensor_msgs/msg/Image"]
    return Image(header=convert.make_header(0, "cam", ROSBAGS), height=h, width=w, encoding=enc,
                 is_bigendian=int(big), step=step, data=np.frombuffer(arr_bytes, np.uint8).copy())


def test_the_codec_decodes_rosbags_images_honouring_row_padding_and_byte_order():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4) / 4
    padded = np.zeros((3, 4 * 4 + 8), np.uint8)  # 8 padding bytes per row
    padded[:, :16] = depth.astype(">f4").view(np.uint8).reshape(3, 16)
    out = convert.image_to_array(_image(padded.tobytes(), 3, 4, "32FC1", 24, big=True))
    np.testing.assert_array_equal(out, depth)
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    bgr = rgb[..., ::-1].copy()
    np.testing.assert_array_equal(convert.image_to_rgb(_image(bgr.tobytes(), 2, 3, "bgr8", 9, False)), rgb)
    with pytest.raises(ConversionError, match="encoding.*'yuv422'"):
        convert.image_to_array(_image(bgr.tobytes(), 2, 3, "yuv422", 9, False))
    with pytest.raises(ConversionError, match="step"):
        convert.image_to_array(_image(bgr.tobytes(), 2, 3, "rgb8", 6, False))


def _cloud(pts: np.ndarray, fields=FIELDS):
    return convert.array_to_pointcloud2({n: pts[:, i] for i, n in enumerate(fields)},
                                        convert.make_header(5, "radar", ROSBAGS), ROSBAGS)


def test_the_codec_reads_rosbags_clouds_dropping_nan_points_and_naming_missing_fields():
    pts = np.array([[1, 2, 3, 0.5, 9], [np.nan, 0, 0, 0, 0], [4, 5, 6, -1, 7]], np.float32)
    msg = _cloud(pts)
    got = convert.pointcloud2_to_columns(msg, ("x", "y", "z", "power"))
    np.testing.assert_array_equal(got, pts[[0, 2]][:, [0, 1, 2, 4]])
    with pytest.raises(ConversionError, match="intensity"):
        convert.pointcloud2_to_columns(msg, ("x", "y", "z", "intensity"))


def test_the_codec_keys_field_types_on_pointfield_integers_and_reads_count_above_one():
    """A rosbags cloud with a float64 field and a 3-vector field (count 3), serialised and read back."""
    PointField = bagio.typestore().types["sensor_msgs/msg/PointField"]
    dt = np.dtype({"names": ["x", "y", "z", "normal", "t"], "formats": ["<f4", "<f4", "<f4", ("<f4", (3,)), "<f8"],
                   "offsets": [0, 4, 8, 12, 24], "itemsize": 32})
    p = np.zeros(3, dt)
    p["x"], p["normal"], p["t"] = [1, 2, 3], np.arange(9).reshape(3, 3), [0.5, 1.5, 2.5]
    fields = [PointField(name=n, offset=o, datatype=d, count=c) for n, o, d, c in
              (("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("normal", 12, 7, 3), ("t", 24, 8, 1))]
    msg = bagio.typestore().types["sensor_msgs/msg/PointCloud2"](
        header=convert.make_header(0, "l", ROSBAGS), height=1, width=3, fields=fields, is_bigendian=False,
        point_step=32, row_step=96, data=p.view(np.uint8).copy(), is_dense=True)
    ts = bagio.typestore()
    back = ts.deserialize_cdr(ts.serialize_cdr(msg, "sensor_msgs/msg/PointCloud2"), "sensor_msgs/msg/PointCloud2")
    arr = convert.pointcloud2_to_array(back)
    np.testing.assert_array_equal(arr["normal"], p["normal"])
    np.testing.assert_array_equal(arr["t"], p["t"])


def test_bag_tools_import_and_write_without_rclpy_or_sensor_msgs(tmp_path):
    """The codec and the bag storage work on a machine without a ROS install (sensor_msgs / rclpy unimportable)."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['rclpy'] = None; sys.modules['sensor_msgs'] = None; "
            "sys.modules['sensor_msgs.msg'] = None\n"
            "import numpy as np\n"
            "from racalnet_ros.ros import bag, convert\n"
            "from racalnet_ros.recalibration.toy import toy_frame\n"
            f"bag.write_bag([toy_frame(0)], {str(tmp_path / 'b')!r})\n"
            f"(f,) = bag.read_frames({str(tmp_path / 'b')!r})\n"
            "print(f.image.shape, 'rclpy' in sys.modules and sys.modules['rclpy'] is not None)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.split()[-1] == "False"


@pytest.mark.astyx
def test_an_astyx_frame_survives_the_bag_round_trip(astyx_root, tmp_path):
    from racalnet_ros.datasets import open_dataset
    ds = open_dataset("astyx", str(astyx_root))
    ds = ds.subset(ds.ids[:2])
    frames = list(ds)
    bagio.write_bag(frames, tmp_path / "bag", storage="mcap")
    back = list(bagio.read_frames(tmp_path / "bag"))
    assert len(back) == 2
    for a, b in zip(frames, back):
        assert_same_frame(a, b)
        assert b.stamp == pytest.approx(a.stamp, abs=1e-6)  # Astyx stamps increase, so they are kept


@pytest.mark.astyx
def test_bag_from_dataset_cli_writes_the_chosen_frames(astyx_root, tmp_path):
    from racalnet_ros.cli import main
    rc = main(["bag-from-dataset", "--dataset", "astyx", "--root", str(astyx_root), "--out", str(tmp_path / "b"),
               "--max-frames", "2", "--storage", "mcap"])
    assert rc == 0
    assert [f.frame_id for f in bagio.read_frames(tmp_path / "b")] == ["000000", "000001"]
    assert main(["bag-from-dataset", "--dataset", "astyx", "--root", str(astyx_root), "--out",
                 str(tmp_path / "b"), "--max-frames", "1"]) == 2  # exists: refused (one line), not overwritten
