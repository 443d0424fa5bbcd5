"""racalnet_node over real rclpy and DDS (loopback, own domain per worker): the node runs as a subprocess, a test
publisher sends synced radar + image + camera_info + prior, and the outputs are checked against `Pipeline.run` on the
same frame. Generous timeouts, few frames."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]

from builtin_interfaces.msg import Time  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_msgs.msg import Header  # noqa: E402

from racalnet_ros.frame import CameraModel, Frame  # noqa: E402
from racalnet_ros.pipeline import Pipeline, PipelineConfig  # noqa: E402
from racalnet_ros.ros import convert  # noqa: E402
from racalnet_ros.ros.params import RADAR_TO_OPTICAL  # noqa: E402

W, H = 160, 120
K = np.array([[100.0, 0, 80.0], [0, 100.0, 60.0], [0, 0, 1]])
T_CAM_RADAR = np.array(RADAR_TO_OPTICAL).reshape(4, 4)
RADAR_FIELDS = ("x", "y", "z", "doppler", "power")
CAMERA_FRAME, RADAR_FRAME = "camera_optical", "radar"

#: Raw radar anchors, a prior from the topic and a frame-by-frame fit: deterministic and independent of history.
NODE_PARAMS = {"prior.source": "topic", "recalibration.enabled": False, "align.use_previous_fit": False,
               "publish_colored": True, "diagnostics_period": 0.2, "device": "cpu", "sync.slop": 0.02}


def make_scene(seed: int = 0):
    """A slanted wall (inverse depth affine in pixels, 6-20 m), a textured image, radar points on the wall (in the
    radar frame, x forward) and a relative inverse-depth prior = 3 * true inverse depth + 0.1."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    inv = 1 / 20 + (1 / 6 - 1 / 20) * (0.7 * u / W + 0.3 * v / H)
    prior = (3.0 * inv + 0.1).astype(np.float32)
    image = np.zeros((H, W, 3), np.uint8)
    image[..., 0] = (u * 255 / W).astype(np.uint8)
    image[..., 1] = (v * 255 / H).astype(np.uint8)
    image[..., 2] = rng.integers(0, 60, (H, W), dtype=np.uint8)
    image[40:80, 60:100] = (200, 30, 30)  # an edge for the edge-aware smoothing
    pu, pv = rng.uniform(2, W - 3, 60), rng.uniform(2, H - 3, 60)
    z = 1.0 / (1 / 20 + (1 / 6 - 1 / 20) * (0.7 * pu / W + 0.3 * pv / H))
    cam = np.stack([(pu - K[0, 2]) / K[0, 0] * z, (pv - K[1, 2]) / K[1, 1] * z, z], axis=1)
    radar_xyz = (cam - T_CAM_RADAR[:3, 3]) @ T_CAM_RADAR[:3, :3]  # inverse rigid transform, row vectors
    radar = np.concatenate([radar_xyz, rng.normal(0, 2, (60, 1)), rng.uniform(0, 30, (60, 1))], axis=1)
    return image, prior, radar.astype(np.float32)


def make_messages(image, prior, radar, stamp_sec: float, *, nan_points: int = 3, encoding: str = "bgr8"):
    stamp = Time(sec=int(stamp_sec), nanosec=int(round((stamp_sec % 1) * 1e9)))
    cam_header = Header(stamp=stamp, frame_id=CAMERA_FRAME)
    img = image[:, :, ::-1] if encoding == "bgr8" else image
    img_msg = convert.array_to_image(np.ascontiguousarray(img), encoding, cam_header)
    cloud = radar
    if nan_points:
        cloud = np.concatenate([radar, np.full((nan_points, radar.shape[1]), np.nan, np.float32)])
    cloud_msg = convert.array_to_pointcloud2({n: cloud[:, i] for i, n in enumerate(RADAR_FIELDS)},
                                             Header(stamp=stamp, frame_id=RADAR_FRAME))
    info = CameraInfo(header=cam_header, width=W, height=H, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=K.reshape(-1).tolist(), p=np.c_[K, np.zeros(3)].reshape(-1).tolist())
    prior_msg = convert.array_to_image(prior, "32FC1", cam_header)
    return {"radar/points": cloud_msg, "image": img_msg, "camera_info": info, "prior/inverse_depth": prior_msg}


class Harness:
    """Publishers for the node's inputs and recorders for its outputs on the test's rclpy node."""

    def __init__(self, node, namespace: str = "") -> None:
        self.node = node
        ns = namespace.rstrip("/") + "/" if namespace else ""
        self.pubs = {
            "radar/points": node.create_publisher(PointCloud2, ns + "radar/points", qos_profile_sensor_data),
            "image": node.create_publisher(Image, ns + "image", qos_profile_sensor_data),
            "camera_info": node.create_publisher(CameraInfo, ns + "camera_info", qos_profile_sensor_data),
            "prior/inverse_depth": node.create_publisher(Image, ns + "prior/inverse_depth", qos_profile_sensor_data),
        }
        self.got: dict[str, list] = {k: [] for k in ("depth/image", "depth/camera_info", "anchors", "depth/colored",
                                                     "/diagnostics")}
        for topic, typ in (("depth/image", Image), ("depth/camera_info", CameraInfo), ("anchors", PointCloud2),
                           ("depth/colored", Image), ("/diagnostics", DiagnosticArray)):
            name = topic if topic.startswith("/") else ns + topic
            node.create_subscription(typ, name, lambda m, t=topic: self.got[t].append(m), 10)

    def publish(self, msgs: dict) -> None:
        for k, m in msgs.items():
            self.pubs[k].publish(m)

    def latest(self, topic: str, stamp_sec: float):
        for m in reversed(self.got[topic]):
            if abs(convert.stamp_to_sec(m.header.stamp) - stamp_sec) < 1e-6:
                return m
        return None

    def diagnostics(self) -> list:
        return [s for a in self.got["/diagnostics"] for s in a.status if s.name.startswith("racalnet_node")]


@pytest.fixture(scope="module")
def running(start_module_node, ros_node, spin):
    """One racalnet_node for the module, and a harness that has seen it produce diagnostics (i.e. it is up)."""
    proc = start_module_node(NODE_PARAMS)
    h = Harness(ros_node)
    up = spin(ros_node, lambda: bool(h.diagnostics()) or proc.proc.poll() is not None, timeout=120)
    assert proc.proc.poll() is None, f"node exited:\n{proc.output()}"
    assert up, f"no diagnostics from the node within 120 s:\n{proc.output()}"
    return proc, h


def send_until_output(h: Harness, spin, msgs: dict, stamp: float, timeout: float = 60.0,
                      topics=("depth/image", "depth/camera_info", "anchors")) -> bool:
    return spin(h.node, lambda: all(h.latest(t, stamp) is not None for t in topics), timeout,
                step=lambda: h.publish(msgs), period=0.25)


def test_outputs_have_the_image_header_and_depth_equals_pipeline(running, spin):
    proc, h = running
    image, prior, radar = make_scene(0)
    stamp = 1000.25
    ok = send_until_output(h, spin, make_messages(image, prior, radar, stamp), stamp,
                           topics=("depth/image", "depth/camera_info", "anchors", "depth/colored"))
    assert ok, f"no outputs for stamp {stamp}:\n{proc.output()}"

    depth_msg = h.latest("depth/image", stamp)
    assert (depth_msg.encoding, depth_msg.width, depth_msg.height) == ("32FC1", W, H)
    assert depth_msg.header.frame_id == CAMERA_FRAME
    depth = convert.image_to_array(depth_msg)

    # the same frame, built without the node's conversions, through the same pipeline configuration
    flat = dict(PipelineConfig().to_flat())
    flat.update({"prior.source": "frame", "recalibration.enabled": False, "align.use_previous_fit": False,
                 "device": "cpu"})
    frame = Frame(image=image, camera=CameraModel(K, W, H), radar=radar, T_cam_radar=T_CAM_RADAR,
                  radar_fields=RADAR_FIELDS, prior=prior)
    expected = Pipeline.from_config(PipelineConfig.from_flat(flat)).run(frame)
    assert np.isfinite(expected.depth).mean() > 0.9, "the scene should give a dense depth"
    np.testing.assert_allclose(depth, expected.depth, rtol=1e-5, atol=1e-4, equal_nan=True)

    info = h.latest("depth/camera_info", stamp)
    assert info.header.frame_id == CAMERA_FRAME and (info.width, info.height) == (W, H)
    np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), K)

    anchors = h.latest("anchors", stamp)
    assert anchors.header.frame_id == CAMERA_FRAME
    assert [(f.name, f.datatype) for f in anchors.fields] == [
        (n, 7) for n in ("x", "y", "z", "u", "v", "confidence")]  # 7 = FLOAT32
    pts = convert.pointcloud2_to_array(anchors)
    assert len(pts) == expected.anchors.num_kept == len(radar)  # NaN points dropped, every wall point in view
    assert np.all((pts["u"] >= 0) & (pts["u"] < W) & (pts["v"] >= 0) & (pts["v"] < H))
    # back-projection: (x/z, y/z) is the pixel ray of (u, v), z is the radar depth
    np.testing.assert_allclose(pts["x"] / pts["z"], (pts["u"] - K[0, 2]) / K[0, 0], atol=1e-4)
    np.testing.assert_allclose(np.sort(pts["z"]), np.sort(expected.anchors.depth), rtol=1e-5)

    colored = h.latest("depth/colored", stamp)
    assert (colored.encoding, colored.width, colored.height) == ("rgb8", W, H)
    assert colored.header.frame_id == CAMERA_FRAME

    # diagnostics report rates, per-stage latency, anchors and drops
    assert spin(h.node, lambda: any(_values(s).get("anchors_kept") == str(len(radar)) for s in h.diagnostics()), 60)
    values = next(_values(s) for s in reversed(h.diagnostics()) if "anchors_kept" in _values(s))
    for key in ("rate_in/image (Hz)", "rate_out (Hz)", "latency/total_ms", "latency/stage/align_ms",
                "dropped_busy", "frames"):
        assert key in values, sorted(values)



@pytest.mark.parametrize("overlap", [True, False], ids=["overlap", "serial"])
def test_outputs_keep_input_order_and_stamps_with_and_without_the_two_stage_overlap(overlap, running, start_node,
                                                                                      ros_node, spin):
    """pipeline_overlap true (stage 1 of frame t+1 while stage 2 of frame t) and false (the default, one thread): every
    output carries its input's stamp, outputs arrive in input order, /diagnostics says which mode runs and reports
    both stages' latencies."""
    if not overlap:
        (proc, h), name = running, "racalnet_node: pipeline"
    else:  # own namespace and name: the module's node keeps running and also reports on /diagnostics
        proc = start_node({**NODE_PARAMS, "pipeline_overlap": True},
                          args=("-r", "__ns:=/overlap", "-r", "__node:=racalnet_node_overlap"))
        h, name = Harness(ros_node, namespace="/overlap"), "racalnet_node_overlap: pipeline"
    image, prior, radar = make_scene(5)
    stamps = [12000.0 + 0.1 * i + (0.05 if overlap else 0.0) for i in range(6)]
    for st in stamps:  # one frame at a time (each until it is out), then a burst the worker may thin out
        assert send_until_output(h, spin, make_messages(image, prior, radar, st), st, timeout=120), \
            proc.output()[-3000:]
    burst = [13000.0 + 0.1 * i for i in range(10)]
    msgs = [make_messages(image, prior, radar, st) for st in burst]
    for m in msgs:
        h.publish(m)
    assert send_until_output(h, spin, msgs[-1], burst[-1], timeout=120), proc.output()[-3000:]
    got = [convert.stamp_to_sec(m.header.stamp) for m in h.got["depth/image"]]
    mine = [g for g in got if any(abs(g - st) < 1e-6 for st in stamps + burst)]
    assert mine == sorted(mine), f"outputs out of input order: {mine}"
    assert all(any(abs(g - st) < 1e-6 for g in mine) for st in stamps)
    mine_diag = lambda: [s for s in h.diagnostics() if s.name == name and "latency/stage2_ms" in _values(s)]  # noqa
    assert spin(h.node, lambda: bool(mine_diag()), 30)
    values = _values(mine_diag()[-1])
    assert values["pipeline_overlap"] == str(overlap).lower()
    for key in ("latency/stage1_ms", "latency/handoff_wait_ms", "latency/stage2_ms", "latency/stage/recalibrate_ms",
                "latency/stage/prior_ms", "rate_out (Hz)"):
        assert key in values, sorted(values)

def _values(status) -> dict:
    return {kv.key: kv.value for kv in status.values}


def _bad_cloud(msgs):
    c = msgs["radar/points"]
    for f in c.fields:
        f.name = "range" if f.name == "x" else f.name
    return msgs


def _empty_cloud(msgs):
    m = msgs["radar/points"]
    m.width, m.row_step = 0, 0
    m.data = convert._byte_array(np.zeros(0, np.uint8))
    return msgs


def _wrong_size_info(msgs):
    msgs["camera_info"].width = W * 2
    return msgs


def _unknown_encoding(msgs):
    msgs["image"].encoding = "yuv422"
    return msgs


@pytest.mark.parametrize("break_input, expected", [
    (_bad_cloud, "radar.field.x"),
    (_empty_cloud, "empty"),
    (_wrong_size_info, "differs from camera_info"),
    (_unknown_encoding, "unsupported encoding"),
], ids=["cloud-without-field", "empty-cloud", "image-size-mismatch", "unknown-encoding"])
def test_a_bad_frame_is_reported_and_the_next_good_frame_is_processed(running, spin, break_input, expected):
    proc, h = running
    image, prior, radar = make_scene(1)
    base = 2000.0 + 10 * len(h.got["depth/image"])  # fresh, increasing stamps for every case
    bad = break_input(make_messages(image, prior, radar, base))
    n_diag = len(h.diagnostics())
    seen = spin(h.node, lambda: any(s.level == DiagnosticStatus.WARN and expected in s.message
                                    for s in h.diagnostics()[n_diag:]),
                timeout=30, step=lambda: h.publish(bad), period=0.25)
    assert seen, f"no diagnostics WARN mentioning {expected!r}; got " \
                 f"{[s.message for s in h.diagnostics()[n_diag:]]}\n{proc.output()[-3000:]}"
    assert h.latest("depth/image", base) is None, "a bad frame must be skipped"
    assert expected in proc.output(), "the node's log must say what was wrong"
    good = base + 1.0
    assert send_until_output(h, spin, make_messages(image, prior, radar, good), good), proc.output()[-3000:]


def test_stamps_jumping_backwards_reset_the_sync(running, spin):
    proc, h = running
    image, prior, radar = make_scene(2)
    late, early = 5000.0, 100.0
    assert send_until_output(h, spin, make_messages(image, prior, radar, late), late)
    assert send_until_output(h, spin, make_messages(image, prior, radar, early), early), proc.output()[-3000:]
    assert "jumped backwards" in proc.output()


def test_a_silent_camera_info_is_reported(running, spin):
    proc, h = running
    image, prior, radar = make_scene(3)
    msgs = make_messages(image, prior, radar, 7000.0)
    del msgs["camera_info"]
    n_diag = len(h.diagnostics())
    seen = spin(h.node, lambda: any(s.level == DiagnosticStatus.WARN and "camera_info" in s.message
                                    for s in h.diagnostics()[n_diag:]),
                timeout=30, step=lambda: h.publish(msgs), period=0.2)
    assert seen, [s.message for s in h.diagnostics()[n_diag:]]
    assert "no messages on /camera_info" in proc.output()


def test_with_recalibration_the_depth_still_equals_pipeline(start_node, ros_node, spin, tmp_path):
    """The recalibration network inside the node gives the same anchors and depth as Pipeline outside it. An untrained
    "tiny" network with fixed weights stands in for the shipped checkpoint (equality, not accuracy, is the claim)."""
    import torch
    from racalnet_ros.recalibration.checkpoint import save_checkpoint
    from racalnet_ros.recalibration.config import ModelConfig
    from racalnet_ros.recalibration.model import RecalibrationNet

    from racalnet_ros.datasets.synthetic import SyntheticDataset
    from racalnet_ros.recalibration.checkpoint import make_provenance

    torch.manual_seed(0)
    cfg = ModelConfig.preset("tiny")
    provenance = make_provenance(SyntheticDataset.generate([3, 4, 5]).describe(), None, "tiny", command="test")
    ckpt = save_checkpoint(tmp_path / "tiny_untrained", RecalibrationNet(cfg).eval(), cfg, threshold=0.3,
                           extra={"provenance": provenance})
    # own namespace: the module's node (raw anchors) keeps running on the same domain
    proc = start_node({**NODE_PARAMS, "recalibration.enabled": True, "recalibration.checkpoint": str(ckpt)},
                      args=("-r", "__ns:=/recal"))
    h = Harness(ros_node, namespace="/recal")
    image, prior, radar = make_scene(4)
    stamp = 9000.5
    assert send_until_output(h, spin, make_messages(image, prior, radar, stamp), stamp, timeout=120), \
        proc.output()[-3000:]
    flat = {"prior.source": "frame", "recalibration.enabled": True, "recalibration.checkpoint": str(ckpt),
            "align.use_previous_fit": False, "device": "cpu"}
    frame = Frame(image=image, camera=CameraModel(K, W, H), radar=radar, T_cam_radar=T_CAM_RADAR,
                  radar_fields=RADAR_FIELDS, prior=prior)
    expected = Pipeline.from_config(PipelineConfig.from_flat(flat)).run(frame)
    anchors = convert.pointcloud2_to_array(h.latest("anchors", stamp))
    assert len(anchors) == expected.anchors.num_kept
    k = expected.anchors.kept
    np.testing.assert_allclose(np.sort(anchors["u"]), np.sort(expected.anchors.uv[k, 0]), atol=1e-3)
    np.testing.assert_allclose(np.sort(anchors["confidence"]), np.sort(expected.anchors.confidence[k]), atol=1e-4)
    depth = convert.image_to_array(h.latest("depth/image", stamp))
    np.testing.assert_allclose(depth, expected.depth, rtol=1e-4, atol=1e-3, equal_nan=True)
    # the checkpoint and what it was trained on: logged at start (a synthetic-only one with a warning saying how
    # to train on your own data) and on /diagnostics
    log = proc.output()
    assert f"recalibration checkpoint {ckpt.resolve()}, trained on synthetic" in log and "seeds 3-5" in log
    assert "trained on synthetic data only" in log and "racalnet train --dataset bag --root BAG --init" in log
    assert spin(ros_node, lambda: any(_values(s).get("checkpoint") == str(ckpt.resolve()) for s in h.diagnostics()),
                30)
    values = next(_values(s) for s in h.diagnostics() if _values(s).get("checkpoint") == str(ckpt.resolve()))
    assert values["checkpoint/trained_on"].startswith("synthetic: simulated") and "seeds 3-5, 3 frames" in \
        values["checkpoint/trained_on"]
    assert values["checkpoint/real_data"] == "false" and "synthetic data only" in values["checkpoint/warning"]


@pytest.mark.parametrize("params, name", [
    ({"sync.slop": -1.0}, "sync.slop"),
    ({"sync.queue_size": 0}, "sync.queue_size"),
    ({"prior.source": "crystal-ball"}, "prior.source"),
    ({"extrinsics.T_cam_radar": [1.0, 0.0, 0.0]}, "extrinsics.T_cam_radar"),
    ({"extrinsics.T_cam_radar": (np.diag([2.0, 1.0, 1.0, 1.0])).reshape(-1).tolist()}, "extrinsics.T_cam_radar"),
    ({"device": "tpu"}, "device"),
    ({"recalibration.threshold": 3.0}, "recalibration.threshold"),
], ids=["negative-slop", "zero-queue", "unknown-prior", "short-transform", "non-rigid-transform", "bad-device",
        "threshold-above-1"])
def test_a_bad_parameter_stops_the_node_with_a_message_naming_it(start_node, params, name):
    proc = start_node({**NODE_PARAMS, **params})
    rc = proc.wait(timeout=120)
    out = proc.output()
    assert rc == 2, out
    assert name in out and "FATAL" in out and "Traceback" not in out, out


@pytest.mark.parametrize("damage", ["missing-config", "garbage-weights"])
def test_a_missing_or_broken_checkpoint_stops_the_node_with_a_message_naming_it(start_node, tmp_path, damage):
    from racalnet_ros.recalibration.checkpoint import save_checkpoint
    from racalnet_ros.recalibration.config import ModelConfig
    from racalnet_ros.recalibration.model import RecalibrationNet

    cfg = ModelConfig.preset("tiny")
    ckpt = save_checkpoint(tmp_path / "broken", RecalibrationNet(cfg), cfg)
    if damage == "missing-config":
        ckpt.with_suffix(".json").unlink()
    else:
        ckpt.write_bytes(b"not a safetensors file")
    proc = start_node({**NODE_PARAMS, "recalibration.enabled": True, "recalibration.checkpoint": str(ckpt)})
    rc = proc.wait(timeout=120)
    out = proc.output()
    assert rc == 2, out
    assert "Traceback" not in out and "FATAL" in out
    assert "recalibration.checkpoint" in out and "broken.safetensors" in out, out


@pytest.mark.parametrize("where", ["installed", "RACALNET_MESSAGE_FILTERS"])
def test_zero_slop_is_exact_time_matching_with_either_synchroniser(where, ros_node, spin, tmp_path, ros_domain_id):
    """sync.slop: 0 matches identical stamps and nothing else, whether message_filters is there (TimeSynchronizer)
    or not (the package's ExactTimeSync): with message_filters' ApproximateTimeSynchronizer the node would output
    nothing at slop 0. "installed": whatever this environment has; "RACALNET_MESSAGE_FILTERS": the node with the
    message_filters checkout at that path (skipped without it)."""
    import importlib.util
    import os

    from racalnet_ros.ros.dds import local_ros_env
    from racalnet_ros.ros.harness import NodeProcess

    env = local_ros_env(ros_domain_id, tmp_path)
    repo = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    if where == "installed":
        expected = "message_filters.TimeSynchronizer" if importlib.util.find_spec("message_filters") else \
            "racalnet_ros.ros.sync.ExactTimeSync"
        env["PYTHONPATH"] = repo
    else:
        path = os.environ.get("RACALNET_MESSAGE_FILTERS", "")
        if not path:
            pytest.skip("set RACALNET_MESSAGE_FILTERS to the src/ folder of a github.com/ros2/message_filters "
                        "checkout to run the node with message_filters")
        expected = "message_filters.TimeSynchronizer"
        env["PYTHONPATH"] = os.pathsep.join([path, repo])
    ns = f"/exact_{where.lower()}"
    node = NodeProcess({**NODE_PARAMS, "sync.slop": 0.0}, log_dir=tmp_path, env=env, args=("-r", f"__ns:={ns}"))
    node.start()
    try:
        node.wait_ready(120)
        assert f"sync via {expected}" in node.output()
        h = Harness(ros_node, namespace=ns)
        image, prior, radar = make_scene(5)
        exact = 8100.25
        assert send_until_output(h, spin, make_messages(image, prior, radar, exact), exact, timeout=120), \
            node.output()[-3000:]
        # one input 1 ms off: never matched at slop 0
        off = 8200.25
        msgs = make_messages(image, prior, radar, off)
        msgs["camera_info"].header.stamp = Time(sec=8200, nanosec=251_000_000)
        spin(ros_node, lambda: False, 3.0, step=lambda: h.publish(msgs), period=0.2)
        assert h.latest("depth/image", off) is None
    finally:
        node.stop()


def test_a_checkpoint_reading_doppler_with_no_doppler_field_stops_the_node_naming_the_columns(start_node):
    """radar.field.doppler '' says the radar has no Doppler; the shipped checkpoint reads it: no substitute, no shifted
    features, but one FATAL line naming the checkpoint's columns and the missing one."""
    proc = start_node({**NODE_PARAMS, "recalibration.enabled": True, "radar.field.doppler": ""})
    rc = proc.wait(timeout=120)
    out = proc.output()
    assert rc == 2, out
    assert "FATAL" in out and "Traceback" not in out, out
    assert "reads radar columns doppler, power" in out and "missing doppler" in out, out
