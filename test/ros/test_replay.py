"""`racalnet replay` over real rclpy + DDS (loopback, the worker's own ROS_DOMAIN_ID from conftest): the bag's
messages arrive byte for byte with their original stamps, /clock follows the bag's time, --loop starts again with
stamps jumping back, and the process stops cleanly on SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from racalnet_ros.frame import CameraModel, Frame
from racalnet_ros.ros import bag as bagio
from racalnet_ros.ros import convert
from racalnet_ros.ros.dds import local_ros_env

pytestmark = [pytest.mark.ros, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def small_bag(tmp_path_factory):
    """3 frames of 160 x 120 at 10 Hz (0.2 s of bag time)."""
    rng = np.random.default_rng(0)
    K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    frames = [Frame(image=rng.integers(0, 256, (120, 160, 3), dtype=np.uint8), camera=CameraModel(K, 160, 120),
                    radar=rng.normal(size=(20, 3)).astype(np.float32) + [0, 0, 10], T_cam_radar=np.eye(4),
                    frame_id=str(i)) for i in range(3)]
    path = tmp_path_factory.mktemp("replay") / "bag"
    bagio.write_bag(frames, path, storage="mcap", rate_hz=10.0)
    return path


#: every topic under a namespace of this test process: another process that happens to share the DDS domain
#: (pid-derived ids can collide on a shared machine) cannot add messages to what the tests count.
NS = f"/replay_test_{os.getpid()}"
REMAPS = [a for t in ("/camera/image", "/camera/camera_info", "/radar/points", "/clock")
          for a in ("--remap", f"{t}:={NS}{t}")]


def start_replay(bag, domain_id, log_dir, *args) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "racalnet_ros.cli", "replay", str(bag), "--domain-id", str(domain_id), *REMAPS,
           *args]
    return subprocess.Popen(cmd, env=local_ros_env(domain_id, log_dir), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> str:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(120)  # a failure bound only: a loaded machine takes seconds to unwind rclpy + DDS
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.stdout.read().decode(errors="replace")


class Collector:
    """Raw subscriptions that keep everything that arrives (keep all: nothing is dropped on this side). Transient
    local: the replay's publishers offer it, so messages sent before this side of DDS discovery matched them (a
    loaded machine) are delivered too, in order."""

    def __init__(self, node, topics):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock
        from sensor_msgs.msg import Image, PointCloud2
        types = {"/camera/image": Image, "/radar/points": PointCloud2}
        qos = QoSProfile(history=HistoryPolicy.KEEP_ALL, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.raw = {t: [] for t in topics}
        self.clock: list[int] = []
        self.subs = [node.create_subscription(types[t], NS + t, lambda d, t=t: self.raw[t].append(bytes(d)), qos,
                                              raw=True) for t in topics]
        self.subs.append(node.create_subscription(
            Clock, NS + "/clock", lambda m: self.clock.append(m.clock.sec * 10**9 + m.clock.nanosec), qos))
        self.node = node

    def close(self):
        for s in self.subs:
            self.node.destroy_subscription(s)


def test_replay_publishes_the_bag_byte_for_byte_with_original_stamps_and_clock(small_bag, ros_node, spin,
                                                                              ros_domain_id, tmp_path):
    topics = ["/camera/image", "/radar/points"]
    expected = {t: [] for t in topics}
    log_times = []
    for topic, _, t, raw in bagio.read_messages(small_bag, topics, deserialize=False):
        expected[topic].append(bytes(raw))
        log_times.append(t)
    col = Collector(ros_node, topics)
    proc = start_replay(small_bag, ros_domain_id, tmp_path, "--rate", "2", "--wait-for-subscribers", "60")
    try:
        done = spin(ros_node, lambda: all(len(col.raw[t]) >= 3 for t in topics) or proc.poll() is not None, 300)
        assert proc.wait(120) == 0  # the replay waits until every message is acknowledged before it exits
        spin(ros_node, lambda: False, 0.5)  # nothing more may arrive (the counts below are exact)
    finally:
        out = stop(proc)
        col.close()
    assert done, out
    for t in topics:  # the same CDR bytes; DDS pads the payload with zeros to a multiple of 4 bytes
        assert len(col.raw[t]) == len(expected[t]) == 3
        for got, sent in zip(col.raw[t], expected[t]):
            assert got[:len(sent)] == sent and got[len(sent):] == bytes(len(got) - len(sent)), t
            assert len(got) - len(sent) < 4
    stamps = [convert.stamp_to_ns(bagio.typestore().deserialize_cdr(d, "sensor_msgs/msg/Image").header.stamp)
              for d in col.raw["/camera/image"]]
    assert stamps == [bagio.DEFAULT_START_NS + i * 100_000_000 for i in range(3)]
    assert set(log_times) <= set(col.clock) and col.clock == sorted(col.clock)


def test_loop_starts_again_with_stamps_jumping_back_and_sigint_stops_it(small_bag, ros_node, spin, ros_domain_id,
                                                                        tmp_path):
    """Deterministic under load: the replay's reliable publishers keep 1,000 messages (--qos-depth) and the collector
    keeps all, so nothing is lost however slow this process is, and the test waits on conditions (two complete
    loops on the images, a jump back on /clock), never on a fixed time: a loaded machine only makes it slower."""
    col = Collector(ros_node, ["/camera/image"])
    proc = start_replay(small_bag, ros_domain_id, tmp_path, "--loop", "--rate", "2", "--qos-depth", "1000",
                        "--wait-for-subscribers", "60")
    s0 = bagio.DEFAULT_START_NS
    period = [s0, s0 + 100_000_000, s0 + 200_000_000]

    def stamps() -> list[int]:
        return [convert.cdr_header_stamp_ns(d) for d in col.raw["/camera/image"]]

    def looped() -> bool:  # two whole periods arrived, and /clock jumped back
        return len(stamps()) >= 2 * len(period) and any(b < a for a, b in zip(col.clock, col.clock[1:]))

    rc = None
    try:
        ok = spin(ros_node, lambda: looped() or proc.poll() is not None, 300)
        assert proc.poll() is None, "replay --loop exited by itself"
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(120)
    finally:
        out = stop(proc)
        col.close()
    assert rc == 0, out
    assert ok, (stamps(), out)
    s = stamps()
    assert s == (period * len(s))[:len(s)], s  # the bag's stamps in order, from the start, again and again


def test_replay_names_a_missing_bag_and_rejects_a_bad_rate(ros_domain_id, tmp_path):
    proc = start_replay(tmp_path / "nope", ros_domain_id, tmp_path)
    assert proc.wait(120) == 2
    assert "nope: no such bag" in stop(proc)
    proc = start_replay(tmp_path / "nope", ros_domain_id, tmp_path, "--rate", "0")
    assert proc.wait(120) == 2
    assert "--rate must be > 0" in stop(proc)
    proc = start_replay(tmp_path / "nope", ros_domain_id, tmp_path, "--qos-depth", "0")
    assert proc.wait(120) == 2
    assert "--qos-depth must be >= 1" in stop(proc)


class _FakeNode:
    """Enough of rclpy.Node for BagPlayer's grouping (no DDS)."""

    def create_publisher(self, *args, **kwargs):
        return None


def test_lockstep_frames_keep_late_logged_messages_with_their_image(tmp_path):
    from racalnet_ros.ros.replay import BagPlayer
    rng = np.random.default_rng(1)
    K = np.array([[100.0, 0, 79.5], [0, 100.0, 59.5], [0, 0, 1]])
    cam = CameraModel(K, 160, 120)
    img = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    s0, s1 = 10**18, 10**18 + 10**8
    # as `ros2 bag record` may log it: frame 1's camera_info after its image
    order = [("/camera/camera_info", s0), ("/camera/image", s0), ("/camera/image", s1), ("/camera/camera_info", s1)]
    with bagio.BagWriter(tmp_path / "bag") as bw:
        for k, (topic, s) in enumerate(order):
            h = convert.make_header(s, "c", convert.ROSBAGS)
            msg = (convert.array_to_image(img, "rgb8", h, convert.ROSBAGS) if topic == "/camera/image"
                   else convert.camera_model_to_info(cam, h, convert.ROSBAGS))
            bw.write(topic, msg, s0 + k)  # log times in recording order
    player = BagPlayer(_FakeNode(), tmp_path / "bag", clock=False)
    groups = [([m.topic for m in g], s) for g, s in player.frames()]
    assert groups == [(["/camera/camera_info", "/camera/image"], s0), (["/camera/image", "/camera/camera_info"], s1)]
