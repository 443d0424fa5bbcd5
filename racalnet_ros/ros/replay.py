"""Publish a rosbag2 through rclpy: the bag's raw CDR bytes go out unchanged (rclpy publishers accept serialized
bytes), so every header keeps its original stamp; `/clock` (rosgraph_msgs/Clock) follows the bag's log time so nodes
with `use_sim_time: true` run on bag time. Pacing is the bag's own timing scaled by `rate`, or lockstep (publish one
frame, wait for a callback, e.g. until the node's output for that frame arrived: what offline evaluation uses).

At a loop the stamps and /clock jump backwards (the bag restarts); nodes must cope (racalnet_node resets its sync
queues). Topics whose message package is not importable (e.g. tf2_msgs in a venv with only the PyPI ROS wheels) are
skipped with a warning; the racalnet node takes the radar extrinsic as a parameter, so it needs no /tf_static.
"""

from __future__ import annotations

import importlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional, Sequence

from . import bag as bagio

log = logging.getLogger(__name__)


def message_class(msgtype: str):
    """"sensor_msgs/msg/Image" -> the rclpy message class; ImportError naming the package if it is not installed."""
    pkg, kind, name = msgtype.split("/")
    try:
        return getattr(importlib.import_module(f"{pkg}.{kind}"), name)
    except (ImportError, AttributeError) as exc:
        raise ImportError(f"message type {msgtype}: package {pkg} is not installed ({exc})") from exc


def parse_remaps(remaps: Sequence[str]) -> dict[str, str]:
    """["/camera/image:=/cam/img", ...] -> {"/camera/image": "/cam/img"}; ValueError naming a malformed entry."""
    out = {}
    for r in remaps:
        src, sep, dst = r.partition(":=")
        if not sep or not src or not dst:
            raise ValueError(f"remap {r!r}: expected FROM:=TO")
        out[src] = dst
    return out


@dataclass
class BagMessage:
    topic: str       # topic in the bag
    msgtype: str
    log_ns: int      # bag log time (what /clock shows)
    data: bytes      # serialized CDR, published as is


class BagPlayer:
    """Publishers for a bag's topics on `node` and the loops that send its messages.

    player = BagPlayer(node, "demo_bag", remap={"/camera/image": "/cam"}); player.play(rate=1.0)
    """

    def __init__(self, node, bag_path: str | Path, remap: Optional[Mapping[str, str]] = None,
                 topics: Optional[Sequence[str]] = None, clock: bool = True, depth: int = 10):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

        self.node = node
        self.path = Path(bag_path)
        self.remap = dict(remap or {})
        self.bag_topics = bagio.bag_topics(self.path)
        reader = bagio.open_reader(self.path)
        try:
            conns = {c.topic: c.msgtype for c in reader.connections}
        finally:
            reader.close()
        self.types = {t: m for t, m in conns.items() if topics is None or t in topics}
        self.publishers = {}
        self.skipped_topics: list[str] = []
        for topic, msgtype in sorted(self.types.items()):
            try:
                cls = message_class(msgtype)
            except ImportError as exc:
                # /tf_static needs tf2_msgs, absent from the PyPI wheels; racalnet_node takes the extrinsic as a
                # parameter, so that one is only worth a note.
                (log.info if topic == "/tf_static" else log.warning)("replay: skipping %s: %s", topic, exc)
                self.skipped_topics.append(topic)
                continue
            # reliable + transient local (offers more than any subscriber asks, so every QoS matches): a subscriber
            # that asks for transient local gets the last `depth` messages even when it matched this publisher
            # after they went out (DDS discovery is asymmetric); volatile subscribers get live messages as usual
            latched = topic == "/tf_static"
            qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1 if latched else depth,
                             reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
            self.publishers[topic] = node.create_publisher(cls, self.remap.get(topic, topic), qos)
        self.clock_pub = None
        if clock:
            from rosgraph_msgs.msg import Clock
            self.clock_pub = node.create_publisher(Clock, self.remap.get("/clock", "/clock"), QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self.published = 0

    # ----------------------------------------------------------------------------------------------------------
    def messages(self) -> Iterator[BagMessage]:
        for topic, msgtype, t, raw in bagio.read_messages(self.path, list(self.publishers), deserialize=False):
            yield BagMessage(topic, msgtype, t, bytes(raw))

    def frames(self) -> Iterator[tuple[list[BagMessage], Optional[int]]]:
        """Messages grouped into frames: a group ends with an image message (the bag's image topic) plus any
        directly following non-image messages stamped no later than that image (bags recorded by `ros2 bag record`
        may log a frame's camera_info or cloud after its image); it comes with the image's header stamp in ns.
        A trailing group without an image has stamp None."""
        from .convert import cdr_header_stamp_ns
        from .record import HAS_HEADER
        group: list[BagMessage] = []
        stamp: Optional[int] = None  # set once the group has its image
        for m in self.messages():
            if stamp is not None:
                late = (m.topic != self.bag_topics.image and m.msgtype in HAS_HEADER
                        and cdr_header_stamp_ns(m.data) <= stamp)
                if late:
                    group.append(m)
                    continue
                yield group, stamp
                group, stamp = [], None
            group.append(m)
            if m.topic == self.bag_topics.image:
                stamp = cdr_header_stamp_ns(m.data)
        if group:
            yield group, stamp

    def publish(self, m: BagMessage) -> None:
        if self.clock_pub is not None:
            from builtin_interfaces.msg import Time
            from rosgraph_msgs.msg import Clock
            sec, nsec = divmod(m.log_ns, 10**9)
            self.clock_pub.publish(Clock(clock=Time(sec=sec, nanosec=nsec)))
        self.publishers[m.topic].publish(m.data)
        self.published += 1

    def wait_for_subscribers(self, topics: Sequence[str], timeout_s: float,
                             idle: Callable[[float], None] = time.sleep, settle_s: float = 1.0) -> bool:
        """Wait until every named bag topic (before remapping) has at least one subscriber, then `settle_s` more:
        the publisher sees the match before the subscriber has matched it back, and a sample sent in between is
        lost (volatile QoS). False on timeout."""
        missing = [t for t in topics if t not in self.publishers]
        if missing:
            raise ValueError(f"{self.path}: no topic(s) {missing} to wait for; bag has {sorted(self.publishers)}")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.publishers[t].get_subscription_count() > 0 for t in topics):
                end = time.monotonic() + settle_s
                while (dt := end - time.monotonic()) > 0:
                    idle(min(dt, 0.05))
                return True
            idle(0.05)
        return False

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every matched reliable subscriber acknowledged what was published (call before shutting
        down: samples still in flight are lost when the publishers go away). False on timeout."""
        from rclpy.duration import Duration
        end = time.monotonic() + timeout_s
        ok = True
        for pub in list(self.publishers.values()) + ([self.clock_pub] if self.clock_pub is not None else []):
            left = max(0.0, end - time.monotonic())
            ok = pub.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9))) and ok
        return ok

    # ----------------------------------------------------------------------------------------------------------
    def play(self, rate: float = 1.0, loop: bool = False, idle: Callable[[float], None] = time.sleep,
             max_loops: Optional[int] = None, should_stop: Callable[[], bool] = lambda: False) -> int:
        """Publish with the bag's timing scaled by `rate` (2.0 = twice as fast). `idle(seconds)` is called to wait
        (pass an executor's spin_once to serve callbacks meanwhile). Returns the number of messages published."""
        if rate <= 0:
            raise ValueError(f"rate: must be > 0, got {rate}")
        loops = 0
        start_wall = time.monotonic()
        while not should_stop():
            t0 = t_last = None
            times: set[int] = set()
            for m in self.messages():
                if should_stop():
                    return self.published
                t0 = m.log_ns if t0 is None else t0
                t_last = m.log_ns
                times.add(m.log_ns)
                target = start_wall + (m.log_ns - t0) * 1e-9 / rate
                while (dt := target - time.monotonic()) > 0:
                    idle(min(dt, 0.05))
                self.publish(m)
            loops += 1
            if not loop or (max_loops is not None and loops >= max_loops) or t0 is None:
                break
            # the next loop starts one mean message interval after this one's last message
            gap_s = (t_last - t0) * 1e-9 / max(1, len(times) - 1)
            start_wall += ((t_last - t0) * 1e-9 + gap_s) / rate
            log.info("replay: loop %d done; restarting (stamps jump back)", loops)
        return self.published

    def play_lockstep(self, after_frame: Callable[[int], None], loop: bool = False,
                      max_loops: Optional[int] = None) -> int:
        """Publish one frame at a time (all messages up to and including an image), then call
        `after_frame(image_stamp_ns)`, which returns when the next frame may go (e.g. the node answered)."""
        loops = 0
        while True:
            for group, stamp in self.frames():
                for m in group:
                    self.publish(m)
                if stamp is not None:
                    after_frame(stamp)
            loops += 1
            if not loop or (max_loops is not None and loops >= max_loops):
                return self.published
