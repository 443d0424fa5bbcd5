"""Offline evaluation from a bag (`racalnet evaluate-bag`): scoring matches outputs to frames by header stamp and
uses the bag's LiDAR; replay -> racalnet_node -> recorded outputs -> metrics on a short synthetic bag gives the same
depth (and so the same numbers) as `Pipeline.run` on the same frames."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from racalnet_ros.cli import evaluate_bag as ev
from racalnet_ros.frame import CameraModel, Frame
from racalnet_ros.geometry import lidar_depth_map
from racalnet_ros.ros import bag as bagio
from racalnet_ros.ros import convert
from racalnet_ros.ros.convert import ROSBAGS


def depth_msg(depth, stamp_ns):
    return convert.array_to_image(depth, "32FC1", convert.make_header(stamp_ns, "camera_optical_frame", ROSBAGS),
                                  ROSBAGS)


def lidar_frame(i: int, rng: np.random.Generator) -> Frame:
    """160 x 120 frame whose LiDAR is a grid of points 5..60 m ahead (identity LiDAR extrinsic)."""
    K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    z = rng.uniform(5, 60, 400)
    uv = rng.uniform([0, 0], [159, 119], (400, 2))
    xyz = np.stack([(uv[:, 0] - 79.5) * z / 100, (uv[:, 1] - 59.5) * z / 100, z], 1).astype(np.float32)
    return Frame(image=rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), camera=CameraModel(K, 160, 120),
                 radar=xyz[:30], T_cam_radar=np.eye(4), lidar=xyz, T_cam_lidar=np.eye(4),
                 prior=rng.random((120, 160)).astype(np.float32), frame_id=f"f{i}")


def test_scoring_matches_outputs_by_stamp_against_the_bags_lidar(tmp_path):
    rng = np.random.default_rng(0)
    frames = [lidar_frame(i, rng) for i in range(3)]
    s = bagio.write_bag(frames, tmp_path / "in")
    # outputs: frame 0 exact where the LiDAR measured, frame 1 missing, frame 2 twice too far
    with bagio.BagWriter(tmp_path / "out", "mcap") as bw:
        for k, factor in ((0, 1.0), (2, 2.0)):
            gt = lidar_depth_map(frames[k])
            depth = np.where(gt > 0, gt * factor, 7.0).astype(np.float32)
            bw.write(ev.DEPTH_TOPIC, depth_msg(depth, s.stamps_ns[k]), s.stamps_ns[k])
    scores = ev.score_bag(tmp_path / "in", tmp_path / "out")
    assert (scores["n_frames"], scores["n_scored"], scores["missing"]) == (3, 2, ["f1"])
    r0, r2 = scores["frames"]
    assert r0["0-80"]["mae"] == 0 and r0["0-80"]["delta1"] == 1
    assert r2["0-80"]["absrel"] == pytest.approx(1.0) and r2["0-80"]["delta1"] == 0
    assert scores["summary"]["0-80"]["absrel"] == pytest.approx(0.5)
    assert scores["summary"]["0-80"]["n_images"] == 2


def test_scoring_rejects_depth_of_the_wrong_size(tmp_path):
    rng = np.random.default_rng(1)
    s = bagio.write_bag([lidar_frame(0, rng)], tmp_path / "in")
    with bagio.BagWriter(tmp_path / "out") as bw:
        bw.write(ev.DEPTH_TOPIC, depth_msg(np.ones((60, 80), np.float32), s.stamps_ns[0]), s.stamps_ns[0])
    with pytest.raises(bagio.BagError, match="80x60, the image is 160x120"):
        ev.score_bag(tmp_path / "in", tmp_path / "out")


def test_the_bag_tells_the_node_its_extrinsic_and_prior_source(tmp_path):
    rng = np.random.default_rng(2)
    f = lidar_frame(0, rng)
    f.T_cam_radar = np.array([[0, -1, 0, 0.1], [0, 0, -1, 0.2], [1, 0, 0, 0.3], [0, 0, 0, 1]], float)
    bagio.write_bag([f], tmp_path / "in")
    p = ev.bag_node_parameters(tmp_path / "in")
    assert p["extrinsics.T_cam_radar"] == f.T_cam_radar.reshape(-1).tolist()
    assert p["prior.source"] == "topic"
    f.prior = None
    bagio.write_bag([f], tmp_path / "noprior")
    assert "prior.source" not in ev.bag_node_parameters(tmp_path / "noprior")


# ---------------------------------------------------------------------------------------------------------------
# replay -> node -> evaluation over real DDS
@pytest.fixture(scope="module")
def synthetic_bag(tmp_path_factory):
    from racalnet_ros.datasets.synthetic import SynthConfig, SyntheticDataset
    frames = list(SyntheticDataset.generate([7, 8, 9], SynthConfig(width=320, height=240)))
    path = tmp_path_factory.mktemp("evalbag") / "bag"
    bagio.write_bag(frames, path, storage="sqlite3", extrinsics="first")
    return path


@pytest.fixture(scope="module")
def evaluated(synthetic_bag, tmp_path_factory):
    """`racalnet evaluate-bag` run once as a subprocess on the worker's ROS domain."""
    import os
    out = tmp_path_factory.mktemp("evalout")
    cmd = [sys.executable, "-m", "racalnet_ros.cli", "evaluate-bag", str(synthetic_bag), "--out", str(out),
           "--domain-id", os.environ["ROS_DOMAIN_ID"], "--frame-timeout", "120"]
    cmd += ["--device", "cpu"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    return proc, out


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(700)
def test_replay_node_evaluation_gives_pipeline_depth_and_its_metrics(evaluated, synthetic_bag):
    from racalnet_ros.metrics import MetricAccumulator
    from racalnet_ros.pipeline import Pipeline, PipelineConfig
    proc, out = evaluated
    assert proc.returncode == 0, proc.stdout + proc.stderr + (out / "node.log").read_text(errors="replace")
    assert "report: " in proc.stdout and (out / "report.md").exists()
    metrics = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"JSON with {c}"))
    assert (metrics["n_frames"], metrics["n_scored"], metrics["missing"]) == (3, 3, [])
    from racalnet_ros.recalibration import default_checkpoint
    assert metrics["checkpoint"] == str(default_checkpoint().resolve())  # resolved, never ""
    assert metrics["provenance"]["dataset"] == "synthetic" and metrics["provenance"]["seeds"] == "0-299"
    node_log = (out / "node.log").read_text(errors="replace")
    assert "trained on synthetic data only" in node_log and "--init" in node_log  # the node always warns

    depth_msgs = ev.read_outputs(out / "outputs", ev.DEPTH_TOPIC)
    anchors = ev.read_outputs(out / "outputs", ev.ANCHORS_TOPIC)
    cfg = PipelineConfig.from_yaml(out / "node_params.yaml")  # what the node was given (bag extrinsic, overrides)
    cfg.prior.source = "frame"  # the node attaches the prior topic to the Frame
    pipe = Pipeline.from_config(cfg)
    acc = MetricAccumulator()
    for frame in bagio.read_frames(synthetic_bag):
        msg = depth_msgs[frame.extras["stamp_ns"]]
        assert (msg.encoding, msg.width, msg.height) == ("32FC1", 320, 240)
        assert msg.header.frame_id == "camera_optical_frame"
        assert [f.name for f in anchors[frame.extras["stamp_ns"]].fields] == ["x", "y", "z", "u", "v", "confidence"]
        expected = pipe.run(frame).depth
        np.testing.assert_allclose(convert.depth_from_image(msg), expected, rtol=1e-5, atol=1e-5, equal_nan=True)
        acc.add(expected, lidar_depth_map(frame))
    for rng_name, summary in acc.summary().items():
        for k in ("mae", "rmse", "absrel", "delta1"):
            assert metrics["summary"][rng_name][k] == pytest.approx(summary[k], rel=1e-4), (rng_name, k)


@pytest.mark.ros
@pytest.mark.slow
@pytest.mark.timeout(700)
def test_a_recorded_output_bag_scores_the_same_without_the_node(evaluated, synthetic_bag, tmp_path):
    from racalnet_ros.cli import main
    proc, out = evaluated
    assert proc.returncode == 0
    assert main(["evaluate-bag", str(synthetic_bag), "--out", str(tmp_path), "--recorded", str(out / "outputs")]) == 0
    again = json.loads((tmp_path / "metrics.json").read_text())
    first = json.loads((out / "metrics.json").read_text())
    assert again["summary"] == first["summary"]


def test_a_bad_node_parameter_is_rejected_before_the_node_starts(tmp_path, capsys):
    from racalnet_ros.cli import main
    rng = np.random.default_rng(3)
    bagio.write_bag([lidar_frame(0, rng)], tmp_path / "in")
    assert main(["evaluate-bag", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--set", "sync.slop=-1"]) == 2
    err = capsys.readouterr().err
    assert err == "racalnet evaluate-bag: sync.slop: -1 is outside [0, 10]\n"
    assert not (tmp_path / "out" / "node.log").exists()


@pytest.mark.ros
@pytest.mark.timeout(300)
def test_a_node_that_cannot_start_is_reported_with_its_last_words(tmp_path, ros_domain_id):
    """A checkpoint that exists but is corrupt is found when the node loads it: evaluate-bag reports the node's
    FATAL line (naming the parameter and the file) in one line, with the path of the node's log."""
    from racalnet_ros.recalibration.checkpoint import save_checkpoint
    from racalnet_ros.recalibration.config import ModelConfig
    from racalnet_ros.recalibration.model import RecalibrationNet

    cfg = ModelConfig.preset("tiny")
    ckpt = save_checkpoint(tmp_path / "broken", RecalibrationNet(cfg), cfg)
    ckpt.write_bytes(b"not a safetensors file")
    rng = np.random.default_rng(3)
    bagio.write_bag([lidar_frame(0, rng)], tmp_path / "in")
    proc = subprocess.run([sys.executable, "-m", "racalnet_ros.cli", "evaluate-bag", str(tmp_path / "in"), "--out",
                           str(tmp_path / "out"), "--domain-id", str(ros_domain_id), "--device", "cpu",
                           "--checkpoint", str(ckpt), "--startup-timeout", "120"],
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    (line,) = proc.stderr.strip().splitlines()[-1:]
    assert line.startswith("racalnet evaluate-bag: racalnet_node exited with code 2: ") and "FATAL" in line
    assert "recalibration.checkpoint" in line and "broken.safetensors" in line and "node.log" in line


def test_an_unavailable_prior_model_is_one_line_before_the_node_starts(tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    from racalnet_ros.cli import main
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    rng = np.random.default_rng(3)
    bagio.write_bag([lidar_frame(0, rng)], tmp_path / "in")
    assert main(["evaluate-bag", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--prior",
                 "depth-anything-v2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("racalnet evaluate-bag: depth-anything-v2: 'depth-anything/Depth-Anything-V2-Small-hf'")
    assert "HF_HUB_OFFLINE is set" in err and err.count("\n") == 1
    assert not (tmp_path / "out" / "node.log").exists()
