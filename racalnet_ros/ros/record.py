"""Record topics to a rosbag2 with `rosbags`: raw subscriptions (rclpy hands over the serialized CDR bytes), written
unchanged, log time = receive time on the node's clock (bag time under use_sim_time). The recorder also remembers the
header stamps it has seen per topic, so callers can wait for "the output of frame S arrived".
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Mapping, Optional

from . import bag as bagio
from .convert import cdr_header_stamp_ns

log = logging.getLogger(__name__)

#: racalnet_node's outputs (relative names resolve in the node's namespace; the demo runs it in "/") -> type.
NODE_OUTPUTS = {
    "/depth/image": "sensor_msgs/msg/Image",
    "/depth/camera_info": "sensor_msgs/msg/CameraInfo",
    "/anchors": "sensor_msgs/msg/PointCloud2",
    "/depth/colored": "sensor_msgs/msg/Image",
    "/diagnostics": "diagnostic_msgs/msg/DiagnosticArray",
}

#: message types whose first field is a std_msgs/Header (their stamps are tracked)
HAS_HEADER = {"sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", "sensor_msgs/msg/PointCloud2",
               "diagnostic_msgs/msg/DiagnosticArray"}


class BagRecorder:
    """Raw subscriptions on `node` for `topics` ({topic: msgtype}) written to a new bag at `out`.

    rec = BagRecorder(node, "out_bag", NODE_OUTPUTS); ... spin ...; rec.close()
    """

    def __init__(self, node, out: str | Path, topics: Mapping[str, str] = NODE_OUTPUTS, storage: str = "sqlite3",
                 reliable: bool = True, depth: int = 50):
        from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy

        self.node = node
        self.out = Path(out)
        self._writer = bagio.BagWriter(self.out, storage).__enter__()
        self._lock = threading.Lock()
        self._closed = False
        self.stamps: dict[str, list[int]] = {t: [] for t in topics}
        self.counts: dict[str, int] = {t: 0 for t in topics}
        qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                         reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        self._subs = []
        from .replay import message_class
        for topic, msgtype in topics.items():
            cls = message_class(msgtype)
            cb = (lambda data, topic=topic, msgtype=msgtype: self._on_message(topic, msgtype, data))
            self._subs.append(node.create_subscription(cls, topic, cb, qos, raw=True))

    def _on_message(self, topic: str, msgtype: str, data: bytes) -> None:
        now = self.node.get_clock().now().nanoseconds
        with self._lock:
            if self._closed:
                return
            self._writer.write_raw(topic, msgtype, data, now)
            self.counts[topic] += 1
            if msgtype in HAS_HEADER:
                self.stamps[topic].append(cdr_header_stamp_ns(data))

    def matched(self, topic: str) -> bool:
        """True once this recorder's subscription to `topic` has matched a publisher from its own side (what
        decides whether it receives the next message; the publisher may see the match earlier). rclpy without
        Subscription.get_publisher_count (Humble): the graph's publisher count."""
        sub = self._subs[list(self.stamps).index(topic)]
        count = getattr(sub, "get_publisher_count", None)
        return (count() if count is not None else self.node.count_publishers(topic)) > 0

    def has_stamp(self, topic: str, stamp_ns: int) -> bool:
        with self._lock:
            return stamp_ns in self.stamps.get(topic, ())

    def close(self) -> Optional[Path]:
        """Stop writing and finish the bag (metadata.yaml). Returns its path; idempotent."""
        with self._lock:
            if self._closed:
                return self.out
            self._closed = True
            for s in self._subs:
                self.node.destroy_subscription(s)
            self._writer.__exit__(None, None, None)
        log.info("recorded %s to %s", self.counts, self.out)
        return self.out
