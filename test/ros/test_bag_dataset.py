"""Your own rosbag2 as a dataset (`--dataset bag`, racalnet_ros/datasets/bag.py on ros/bag_frames.py): a bag recorded
the way a robot records one (its own topic names, CompressedImage, sensors at different rates and stamps, the
extrinsics only as a /tf_static chain through base_link) gives the frames that went in, matched with the node's
approximate-time policy; parameters override the bag's extrinsics; frames decode lazily; splits are by time; and
`racalnet train --dataset bag` trains on it, fine-tunes with --init and refuses a mismatched network in one line.
No rclpy or DDS here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import transforms3d

from racalnet_ros.cli import main as cli
from racalnet_ros.datasets import DatasetError, open_dataset
from racalnet_ros.geometry import project_to_image, transform_points
from racalnet_ros.recalibration.toy import toy_frame
from racalnet_ros.ros import bag_frames, convert
from racalnet_ros.ros.bag import BagWriter
from racalnet_ros.ros.convert import ROSBAGS

T0 = 1_750_000_000 * 10**9


def rigid(rpy, xyz) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = transforms3d.euler.euler2mat(*rpy)
    T[:3, 3] = xyz
    return T


# the robot: base_link -> camera_link -> camera_optical (REP 103 optical axes), base_link -> radar_link, -> velodyne
T_BASE_CAMLINK = rigid((0.0, 0.05, 0.01), (0.3, 0.0, 1.2))
T_CAMLINK_OPTICAL = rigid((-np.pi / 2, 0.0, -np.pi / 2), (0.0, 0.0, 0.0))
T_BASE_RADAR = rigid((0.01, 0.0, -0.02), (0.5, 0.1, 0.6))
T_BASE_LIDAR = rigid((0.0, 0.0, 0.03), (0.0, 0.0, 1.6))
T_CAM_RADAR = np.linalg.inv(T_BASE_CAMLINK @ T_CAMLINK_OPTICAL) @ T_BASE_RADAR
T_CAM_LIDAR = np.linalg.inv(T_BASE_CAMLINK @ T_CAMLINK_OPTICAL) @ T_BASE_LIDAR


def write_robot_bag(path, frames, storage="mcap", camera_hz=20.0, radar_dt=0.012, lidar_dt=-0.021,
                    compressed=True, tf_chain=True, prior=True):
    """A bag as a robot records it: a camera at `camera_hz` (twice the radar's rate: every other image has no radar),
    radar and LiDAR stamped `radar_dt` / `lidar_dt` seconds from their image, their points in their own frames,
    radar fields x y z vel (no power), PNG CompressedImage, the extrinsics only on /tf_static as a chain, and a
    monocular prior node's output (the toy scene's true inverse depth) on /mono/inverse_depth with the image's stamp."""
    def header(stamp, frame_id):
        return convert.make_header(stamp, frame_id, ROSBAGS)

    with BagWriter(path, storage) as bw:
        if tf_chain:
            tfs = [convert.matrix_to_transform_stamped(T, p, c, T0, ROSBAGS) for T, p, c in (
                (T_BASE_CAMLINK, "base_link", "camera_link"), (T_CAMLINK_OPTICAL, "camera_link", "camera_optical"),
                (T_BASE_RADAR, "base_link", "radar_link"), (T_BASE_LIDAR, "base_link", "velodyne"))]
            bw.write("/tf_static", convert.tf_message(tfs, ROSBAGS), T0, transient_local=True)
        period = int(1e9 / camera_hz)
        for k in range(2 * len(frames)):
            t_img = T0 + 10**8 + k * period
            f = frames[k // 2]
            if k % 2 == 0:  # radar and LiDAR with this image; their own stamps, logged around it
                t_r, t_l = t_img + int(radar_dt * 1e9), t_img + int(lidar_dt * 1e9)
                pts = transform_points(np.linalg.inv(T_CAM_RADAR), transform_points(f.T_cam_radar, f.radar[:, :3]))
                bw.write("/lidar/velodyne_points", convert.array_to_pointcloud2(
                    {n: c for n, c in zip("xyz", transform_points(np.linalg.inv(T_CAM_LIDAR),
                                                                  transform_points(f.T_cam_lidar, f.lidar)).T)},
                    header(t_l, "velodyne"), ROSBAGS), t_l + 3 * 10**6)
                bw.write("/radar/detections", convert.array_to_pointcloud2(
                    {"x": pts[:, 0], "y": pts[:, 1], "z": pts[:, 2], "vel": f.radar_column("doppler")},
                    header(t_r, "radar_link"), ROSBAGS), t_r + 2 * 10**6)
            h = header(t_img, "camera_optical")
            if prior:
                inv = np.where(np.arange(f.width)[None, :] < f.width // 2, 1 / 8.0, 1 / 20.0) * np.ones((f.height, 1))
                bw.write("/mono/inverse_depth", convert.array_to_image(inv.astype(np.float32), "32FC1", h, ROSBAGS),
                         t_img + 5 * 10**7)
            bw.write("/cam/camera_info", convert.camera_model_to_info(f.camera, h, ROSBAGS), t_img + 10**6)
            img = convert.compressed_image(f.image, "png", h, ROSBAGS) if compressed else \
                convert.array_to_image(f.image, "rgb8", h, ROSBAGS)
            bw.write("/cam/image_raw/compressed" if compressed else "/cam/image_raw", img, t_img + 10**6)
    return path


def test_the_codec_decodes_compressed_images_as_image_transport_writes_them():
    rgb = toy_frame(0, width=64, height=48).image
    h = convert.make_header(0, "cam", ROSBAGS)
    png = convert.compressed_image(rgb, "png", h, ROSBAGS)
    assert png.format == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(convert.compressed_image_to_rgb(png), rgb)  # channel order kept, lossless
    jpg = convert.compressed_image(rgb, "jpeg", h, ROSBAGS)
    back = convert.compressed_image_to_rgb(jpg)  # lossy, but the same colours: red wall left, blue wall right
    for half in (slice(0, 32), slice(32, 64)):
        np.testing.assert_allclose(back[:, half].mean(axis=(0, 1)), rgb[:, half].mean(axis=(0, 1)), atol=4)
    mono = ROSBAGS("sensor_msgs/msg/CompressedImage", header=h, format="mono8; jpeg compressed mono8",
                   data=np.frombuffer(__import__("cv2").imencode(".jpg", rgb[:, :, 0])[1].tobytes(), np.uint8))
    assert convert.image_message_to_rgb(mono).shape == (48, 64, 3)
    depth = ROSBAGS("sensor_msgs/msg/CompressedImage", header=h, format="16UC1; compressedDepth png", data=png.data)
    with pytest.raises(convert.ConversionError, match=r"image.format: .* is a compressed depth image"):
        convert.compressed_image_to_rgb(depth)
    junk = ROSBAGS("sensor_msgs/msg/CompressedImage", header=h, format="jpeg", data=np.arange(50, dtype=np.uint8))
    with pytest.raises(convert.ConversionError, match=r"image.data: OpenCV cannot decode this jpeg image \(50 bytes"):
        convert.compressed_image_to_rgb(junk)


ROBOT = ["--image-topic", "/cam/image_raw/compressed", "--camera-info-topic", "/cam/camera_info",
         "--radar-topic", "/radar/detections", "--lidar-topic", "/lidar/velodyne_points",
         "--bag-set", "radar.field.doppler=vel", "--bag-set", "radar.field.power="]
ROBOT_KEYS = {"topics.image": "/cam/image_raw/compressed", "topics.camera_info": "/cam/camera_info",
              "topics.radar": "/radar/detections", "topics.lidar": "/lidar/velodyne_points",
              "radar.field.doppler": "vel", "radar.field.power": ""}


@pytest.fixture(scope="module")
def toys():
    return [toy_frame(s, width=160, height=120, n_radar=60, fields=("x", "y", "z", "doppler")) for s in range(10)]


@pytest.fixture(scope="module")
def robot_bag(tmp_path_factory, toys):
    return write_robot_bag(tmp_path_factory.mktemp("robot") / "bag", toys)


def test_a_robot_bag_gives_back_its_frames_matched_by_time_with_the_tf_chain_extrinsics(robot_bag, toys):
    ds = open_dataset("bag", robot_bag, config=ROBOT_KEYS)
    assert len(ds) == len(toys)  # every other image has no radar: dropped, as the node drops it
    np.testing.assert_allclose(ds.frames.extrinsics["T_cam_radar"], T_CAM_RADAR, atol=1e-9)
    np.testing.assert_allclose(ds.frames.extrinsics["T_cam_lidar"], T_CAM_LIDAR, atol=1e-9)
    assert ds.frames.extrinsics_source == {"T_cam_radar": "/tf_static", "T_cam_lidar": "/tf_static"}
    for toy, frame in zip(toys, ds):
        np.testing.assert_array_equal(frame.image, toy.image)  # PNG is lossless
        assert frame.radar_fields == ("x", "y", "z", "doppler")
        np.testing.assert_allclose(frame.radar_column("doppler"), toy.radar_column("doppler"), atol=1e-6)
        a = project_to_image(toy.radar_xyz, toy.T_cam_radar, toy.camera)
        b = project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
        np.testing.assert_allclose(b.uv, a.uv, atol=1e-3)  # the same pixels through the composed chain
        np.testing.assert_allclose(b.depth, a.depth, atol=1e-4)
        c = project_to_image(frame.lidar, frame.T_cam_lidar, frame.camera)
        np.testing.assert_allclose(np.sort(c.depth), np.sort(project_to_image(
            toy.lidar, toy.T_cam_lidar, toy.camera).depth), atol=1e-4)
    assert ds.ids[0] == str(T0 + 10**8)  # no dataset ids stored: the image stamp in ns


def test_sets_whose_stamps_spread_more_than_the_slop_are_not_frames(robot_bag):
    with pytest.raises(DatasetError, match=r"no frame: .* within sync.slop 0.02 s"):
        open_dataset("bag", robot_bag, config={**ROBOT_KEYS, "sync.slop": 0.02})  # spread is 0.033 s
    assert len(open_dataset("bag", robot_bag, config={**ROBOT_KEYS, "sync.slop": 0.04})) == 10


def test_extrinsics_from_parameters_win_and_a_missing_chain_says_what_to_give(robot_bag, tmp_path, toys):
    T = rigid((0.1, -0.2, 0.3), (1.0, 2.0, 3.0))
    xyz_rpy = [1.0, 2.0, 3.0, 0.1, -0.2, 0.3]  # R = Rz(0.3) Ry(-0.2) Rx(0.1): the node's convention
    ds = open_dataset("bag", robot_bag, config={**ROBOT_KEYS, "extrinsics.xyz_rpy": xyz_rpy,
                                                "extrinsics.T_cam_lidar": np.eye(4).reshape(-1).tolist()})
    np.testing.assert_allclose(ds.frames.extrinsics["T_cam_radar"], T, atol=1e-12)
    np.testing.assert_allclose(ds.frames.extrinsics["T_cam_lidar"], np.eye(4))
    assert ds.frames.extrinsics_source == {"T_cam_radar": "parameters", "T_cam_lidar": "parameters"}
    ds = open_dataset("bag", robot_bag, config={**ROBOT_KEYS, "extrinsics.xyz_rpy": xyz_rpy,
                                                "extrinsics.use_tf": True})
    np.testing.assert_allclose(ds.frames.extrinsics["T_cam_radar"], T_CAM_RADAR, atol=1e-9)
    bare = write_robot_bag(tmp_path / "no_tf", toys[:2], tf_chain=False)
    with pytest.raises(DatasetError, match=r"no radar extrinsic: /tf_static has no chain camera_optical <- \.\.\. "
                                           r"<- radar_link .* give extrinsics.T_cam_radar or extrinsics.xyz_rpy"):
        open_dataset("bag", bare, config=ROBOT_KEYS)


def test_bad_settings_and_missing_topics_are_one_line_naming_the_key(robot_bag):
    from racalnet_ros.config import ConfigError

    with pytest.raises(ConfigError, match="extrinsics.T_cam_radar: expected 16 numbers"):
        open_dataset("bag", robot_bag, config={**ROBOT_KEYS, "extrinsics.T_cam_radar": [1.0, 2.0]})
    with pytest.raises(ConfigError, match=r"unknown key 'topic.radar' \(did you mean 'topics.radar'\?\)"):
        open_dataset("bag", robot_bag, config={"topic.radar": "/x"})
    with pytest.raises(DatasetError, match=r"topics.image: no topic '/camera/image' in the bag; topics.camera_info: "
                                           r".*; topics.radar: no topic '/radar/points' in the bag \(the bag has: "
                                           r"/cam/camera_info \(sensor_msgs/msg/CameraInfo\), "):
        open_dataset("bag", robot_bag)  # the defaults are not this robot's names
    with pytest.raises(DatasetError, match=r"topics.image: /cam/camera_info carries sensor_msgs/msg/CameraInfo"):
        open_dataset("bag", robot_bag, config={**ROBOT_KEYS, "topics.image": "/cam/camera_info"})
    ds = open_dataset("bag", robot_bag, config={**ROBOT_KEYS, "radar.field.doppler": "doppler"})
    with pytest.raises(DatasetError, match=r"frame \d+: radar: cloud has no field for radar.field.doppler='doppler'"):
        ds.load(ds.ids[0])


def test_frames_decode_lazily_one_frame_at_a_time(robot_bag, monkeypatch):
    ds = open_dataset("bag", robot_bag, config=ROBOT_KEYS)
    ts = bag_frames.typestore()
    decoded = []
    real = type(ts).deserialize_cdr

    def counting(self, raw, msgtype):
        decoded.append(msgtype)
        return real(self, raw, msgtype)

    monkeypatch.setattr(type(ts), "deserialize_cdr", counting)
    ds.load(ds.ids[7])
    assert sorted(decoded) == sorted(["sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/CameraInfo",
                                      "sensor_msgs/msg/PointCloud2", "sensor_msgs/msg/PointCloud2"])


def test_splits_are_by_time_the_last_fifth_validates_and_stride_thins(robot_bag):
    ds = open_dataset("bag", robot_bag, config=ROBOT_KEYS)
    train, val = ds.split("train"), ds.split("val")
    assert train.ids == ds.ids[:8] and val.ids == ds.ids[8:]
    assert max(int(i) for i in train.ids) < min(int(i) for i in val.ids)
    d = val.describe()
    assert d["dataset"] == "bag" and d["split"] == "val" and d["frames"] == 2 and d["frame_ids"] == val.ids
    assert d["sensor"] == "radar:radar_link + image:camera_optical + lidar:velodyne"
    assert d["topics"]["image"] == "/cam/image_raw/compressed"
    assert d["message_types"]["image"] == "sensor_msgs/msg/CompressedImage"
    assert d["stamps_ns"] == [int(val.ids[0]), int(val.ids[1])]
    json.dumps(d)  # provenance is plain JSON
    thin = open_dataset("bag", robot_bag, config={**ROBOT_KEYS, "split.stride": 3, "split.val_fraction": 0.5})
    assert thin.ids == ds.ids[::3] and thin.split_ids("val") == thin.ids[2:]


def test_a_node_parameter_file_configures_the_bag_as_it_configures_the_node(robot_bag, tmp_path):
    params = tmp_path / "robot.yaml"
    params.write_text("/**:\n  ros__parameters:\n    device: cpu\n    recalibration:\n      threshold: 0.4\n"
                      "    radar:\n      field:\n        doppler: 'vel'\n        power: ''\n"
                      "    extrinsics:\n      xyz_rpy: [0.0, 0.0, 0.5, 0.0, 0.0, 0.0]\n")
    from racalnet_ros.ros.bag_frames import load_source_config

    cfg = load_source_config([params], {k: v for k, v in ROBOT_KEYS.items() if k.startswith("topics.")})
    ds = open_dataset("bag", robot_bag, config=cfg)
    np.testing.assert_allclose(ds.frames.extrinsics["T_cam_radar"][:3, 3], [0.0, 0.0, 0.5])
    assert ds[0].radar_fields == ("x", "y", "z", "doppler")


@pytest.mark.slow
def test_evaluate_evaluate_anchors_and_inspect_read_the_bag(robot_bag, tmp_path, capsys):
    from racalnet_ros.recalibration.checkpoint import save_checkpoint
    from racalnet_ros.recalibration.config import ModelConfig
    from racalnet_ros.recalibration.model import RecalibrationNet

    bag = ["--dataset", "bag", "--root", str(robot_bag), *ROBOT, "--prior-topic", "/mono/inverse_depth"]
    assert cli(["evaluate", *bag, "--split", "val", "--ablation", "no-recalibration,baseline", "--device", "cpu",
                "--out", str(tmp_path / "ev")]) == 0
    res = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert res["n_frames"] == 2 and res["frames"] == open_dataset("bag", robot_bag, config=ROBOT_KEYS).ids[8:]
    # the prior is the scene's true inverse depth: aligned to the radar, the depth is close to the LiDAR's
    assert res["configurations"]["no-recalibration"]["0-50"]["absrel"] < 0.1
    cfg = ModelConfig.from_dict({**ModelConfig.preset("tiny").to_dict(), "features": ["xyz", "depth", "uv", "doppler"]})
    save_checkpoint(tmp_path / "c", RecalibrationNet(cfg), cfg)
    assert cli(["evaluate-anchors", *bag, "--checkpoint", str(tmp_path / "c.safetensors"), "--device", "cpu",
                "--json", str(tmp_path / "anchors.json")]) == 0
    assert json.loads((tmp_path / "anchors.json").read_text())["label"]["conf_window"] == [9, 9]  # measured
    capsys.readouterr()
    assert cli(["inspect", *bag, "--split", "train", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "bag at " in out and ": 8 frame(s), 0 skipped" in out
    assert "-> `train --labels auto`: N(p) 9x9, S(p) 41x41, n_min 3" in out


@pytest.mark.slow
def test_train_on_a_robot_bag_then_fine_tune_with_init(robot_bag, tmp_path, caplog):
    from racalnet_ros.config import PipelineConfig
    from racalnet_ros.pipeline import Pipeline
    from racalnet_ros.recalibration.checkpoint import load_checkpoint

    base = ["train", "--dataset", "bag", "--root", str(robot_bag), *ROBOT, "--batch-size", "4", "--threads", "1"]
    with caplog.at_level("INFO"):
        assert cli(base + ["--out", str(tmp_path / "a"), "--preset", "tiny", "--epochs", "2"]) == 0
    assert "labels: measured on 5 frame(s)" in caplog.text  # the LiDAR-density rule (no preset for a bag)
    assert "radar has no power: features xyz, depth, uv, doppler" in caplog.text
    first, cfg, meta = load_checkpoint(tmp_path / "a" / "best")
    assert meta["epoch"] >= 1 and cfg.features == ("xyz", "depth", "uv", "doppler")

    # fine-tune: the network and weights come from the checkpoint; a learning rate of 1e-12 leaves the parameters as
    # they were (BatchNorm's running statistics still move)
    assert cli(base + ["--out", str(tmp_path / "b"), "--init", str(tmp_path / "a" / "best.safetensors"),
                       "--epochs", "1", "--lr", "1e-12", "--input-width", "96"]) == 0
    tuned, cfg_b, meta_b = load_checkpoint(tmp_path / "b" / "last")
    assert cfg_b.input_width == 96 and meta_b["init"].endswith("best.safetensors")
    for (k, v), w in zip(first.named_parameters(), tuned.parameters()):
        np.testing.assert_allclose(w.detach().numpy(), v.detach().numpy(), atol=1e-6, err_msg=k)

    # the fine-tuned checkpoint runs in the pipeline on a frame of the bag
    frame = open_dataset("bag", robot_bag, config=ROBOT_KEYS)[9]
    pipe = Pipeline.from_config(PipelineConfig().with_values({
        "recalibration.checkpoint": str(tmp_path / "b" / "last.safetensors"), "prior.source": "frame",
        "device": "cpu"}))
    anchors = pipe.recalibrator.recalibrate(frame)
    assert len(anchors) > 0 and np.isfinite(anchors.uv).all()


def test_init_refuses_a_different_network_in_one_line(robot_bag, tmp_path, capsys):
    from racalnet_ros.recalibration.checkpoint import save_checkpoint
    from racalnet_ros.recalibration.config import ModelConfig
    from racalnet_ros.recalibration.model import RecalibrationNet

    cfg = ModelConfig.preset("tiny")
    save_checkpoint(tmp_path / "tiny", RecalibrationNet(cfg), cfg)
    rc = cli(["train", "--dataset", "bag", "--root", str(robot_bag), *ROBOT, "--out", str(tmp_path / "x"),
              "--init", str(tmp_path / "tiny.safetensors"), "--preset", "small"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith(f"racalnet train: --init {tmp_path / 'tiny.safetensors'}: its network differs from the "
                          "chosen preset in num_stages (1 vs 2)")
    # the tiny checkpoint uses doppler and power; this radar has no power
    rc = cli(["train", "--dataset", "bag", "--root", str(robot_bag), *ROBOT, "--out", str(tmp_path / "y"),
              "--init", str(tmp_path / "tiny.safetensors")])
    err = capsys.readouterr().err
    assert rc == 2 and "'s network uses radar power, which bag" in err and err.count("\n") == 1


@pytest.mark.astyx
@pytest.mark.slow
def test_a_bag_of_real_astyx_frames_trains_end_to_end_and_its_checkpoint_runs_in_the_pipeline(astyx_root, tmp_path,
                                                                                               caplog):
    from racalnet_ros.config import PipelineConfig
    from racalnet_ros.pipeline import Pipeline

    bag = tmp_path / "astyx_bag"
    assert cli(["bag-from-dataset", "--dataset", "astyx", "--root", str(astyx_root), "--frames", "000000", "000001",
                "000002", "000003", "000004", "--prior-dir", "mono_fastdepth", "--out", str(bag)]) == 0
    with caplog.at_level("INFO"):
        assert cli(["train", "--dataset", "bag", "--root", str(bag), "--out", str(tmp_path / "run"), "--preset",
                    "tiny", "--input-width", "256", "--epochs", "2", "--batch-size", "2", "--threads", "1"]) == 0
    # the LiDAR-density rule finds the VLP-16's beams ~60 px apart: tall, narrow windows like the astyx preset
    run = json.loads((tmp_path / "run" / "config.json").read_text())
    h, w = run["label"]["conf_window"]
    assert 55 <= h <= 75 and 11 <= w <= 19 and run["dataset"] == "bag"
    ds = open_dataset("bag", bag)
    assert ds.split("train").ids == ["000000", "000001", "000002", "000003"] and ds.split("val").ids == ["000004"]
    frame = ds.load("000004")
    assert frame.prior is not None and frame.lidar is not None
    pipe = Pipeline.from_config(PipelineConfig().with_values({
        "recalibration.checkpoint": str(tmp_path / "run" / "best.safetensors"), "prior.source": "frame",
        "device": "cpu"}))
    res = pipe.run(frame)
    assert res.depth.shape == (618, 2048) and np.isfinite(res.depth).mean() > 0.5
    assert len(res.anchors) > 0
