"""rosbag2 storage (sqlite3 and MCAP) with `rosbags`: Frames -> bag, bag -> Frames, the topics and the extrinsics
metadata. Messages are encoded and decoded by the one codec, racalnet_ros/ros/convert.py (rosbags' message classes);
this module only stores them. Pure Python: no rclpy here, so bags can be written and scored without a ROS install.

Layout of a bag written by `write_bag` (topic names in `BagTopics`, frame ids in `BagFrameIds`):

  /camera/image         sensor_msgs/msg/Image        rgb8, header.frame_id = camera optical frame
  /camera/camera_info   sensor_msgs/msg/CameraInfo   K, D (plumb_bob / rational_polynomial), P = [K | 0]
  /radar/points         sensor_msgs/msg/PointCloud2  float32 x, y, z (radar frame, metres)[, doppler, power]
  /lidar/points         sensor_msgs/msg/PointCloud2  float32 x, y, z (LiDAR frame, metres)        (when present)
  /prior/inverse_depth  sensor_msgs/msg/Image        32FC1 relative inverse depth (larger = nearer)  (when present)
  /tf_static            tf2_msgs/msg/TFMessage       camera optical -> radar and camera optical -> lidar, once

Every message of one frame carries the same header stamp (the frame's stamp), and the bag's log time equals it.

How the extrinsics travel: twice, on purpose. (1) A `/tf_static` message at the start of the bag with one
TransformStamped per sensor (header.frame_id = camera optical frame, child_frame_id = sensor frame), so that
`ros2 bag play` + tf2 + rviz2 see them; its transform is T_cam_sensor (it maps sensor-frame points into the camera
optical frame, the tf2 convention "pose of child in parent"). (2) The bag's metadata.yaml `custom_data` under
`racalnet.T_cam_radar` / `racalnet.T_cam_lidar` (16 row-major floats as JSON), readable without deserialising
anything and exact; `read_extrinsics` takes the metadata's when present and checks /tf_static agrees. The node
does not need tf2: the replay tools pass `extrinsics.T_cam_radar` from the bag as a parameter (docs/bags.md).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Sequence

import numpy as np
import yaml

from ..errors import RacalnetError
from ..frame import Frame
from . import convert
from .convert import ROSBAGS, stamp_to_ns

log = logging.getLogger(__name__)

#: Default stamp of the first frame when a dataset has no usable stamps (2023-11-14T22:13:20Z; any fixed value works,
#: it only has to be positive and deterministic).
DEFAULT_START_NS = 1_700_000_000 * 10**9

STORAGES = ("sqlite3", "mcap")


@dataclass(frozen=True)
class BagTopics:
    """Topic names used in bags written by this package (absolute, so `ros2 bag play` publishes them as is)."""

    image: str = "/camera/image"
    camera_info: str = "/camera/camera_info"
    radar: str = "/radar/points"
    lidar: str = "/lidar/points"
    prior: str = "/prior/inverse_depth"
    tf_static: str = "/tf_static"


@dataclass(frozen=True)
class BagFrameIds:
    """header.frame_id of each sensor in bags written by this package."""

    camera: str = "camera_optical_frame"
    radar: str = "radar"
    lidar: str = "lidar"


TOPICS = BagTopics()
FRAME_IDS = BagFrameIds()

class BagError(RacalnetError, ValueError):
    """A bag is missing, malformed, or lacks a topic; the message names the bag and the topic."""


@lru_cache(maxsize=1)
def typestore():
    """The rosbags type store for ROS 2 Kilted message definitions (the same definitions Humble/Jazzy use for every
    type written here)."""
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_KILTED)


# ---------------------------------------------------------------------------------------------------------------
# writing
@dataclass
class BagSummary:
    """What `write_bag` wrote."""

    path: Path
    storage: str
    frames: int
    stamps_ns: list[int]
    topics: dict[str, int] = field(default_factory=dict)  # topic -> message count


def _open_writer(out: Path, storage: str):
    from rosbags.rosbag2 import StoragePlugin, Writer
    if storage not in STORAGES:
        raise BagError(f"storage {storage!r} not supported; choose one of {STORAGES}")
    if out.exists():
        raise BagError(f"{out}: exists already; rosbag2 writers never overwrite (remove it or pick another --out)")
    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    w = Writer(out, version=9, storage_plugin=plugin)
    return w


def _qos(transient_local: bool = False, depth: int = 10):
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, 1 if transient_local else depth, QosReliability.RELIABLE,
               QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE, zero, zero,
               QosLiveliness.AUTOMATIC, zero, False)


class BagWriter:
    """Thin wrapper over rosbags' Writer that adds connections on first use and serialises rosbags messages.

    >>> with BagWriter(path, "mcap") as bw: bw.write("/camera/image", msg, stamp_ns)
    """

    def __init__(self, path: str | Path, storage: str = "sqlite3"):
        self.path = Path(path)
        self.storage = storage
        self._writer = _open_writer(self.path, storage)
        self._conns: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def __enter__(self) -> "BagWriter":
        self._writer.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._writer.close()

    def set_custom_data(self, key: str, value: str) -> None:
        self._writer.set_custom_data(key, value)

    def connection(self, topic: str, msgtype: str, transient_local: bool = False):
        if topic not in self._conns:
            self._conns[topic] = self._writer.add_connection(
                topic, msgtype, typestore=typestore(), offered_qos_profiles=[_qos(transient_local)])
            self.counts[topic] = 0
        conn = self._conns[topic]
        if conn.msgtype != msgtype:
            raise BagError(f"{self.path}: topic {topic} has type {conn.msgtype}, cannot write a {msgtype}")
        return conn

    def write(self, topic: str, msg: Any, log_time_ns: int, transient_local: bool = False) -> None:
        """Serialise a rosbags message object and write it."""
        self.write_raw(topic, msg.__msgtype__, typestore().serialize_cdr(msg, msg.__msgtype__), log_time_ns,
                       transient_local)

    def write_raw(self, topic: str, msgtype: str, data: bytes, log_time_ns: int, transient_local: bool = False):
        """Write already serialised CDR bytes (as received from a raw rclpy subscription)."""
        self._writer.write(self.connection(topic, msgtype, transient_local), int(log_time_ns), data)
        self.counts[topic] += 1


def _matrix_json(T: np.ndarray) -> str:
    return json.dumps([float(x) for x in np.asarray(T, np.float64).reshape(-1)])


def frame_messages(frame: Frame, stamp_ns: int, topics: BagTopics = TOPICS,
                   ids: BagFrameIds = FRAME_IDS) -> list[tuple[str, Any]]:
    """The (topic, rosbags message) pairs of one frame, all with header stamp `stamp_ns`; the image comes last so a
    player that publishes in this order has every other input of the frame out before its image."""
    cam = convert.make_header(stamp_ns, ids.camera, ROSBAGS)

    def cloud(points, names, frame_id):
        pts = np.asarray(points, np.float32)
        return convert.array_to_pointcloud2({n: pts[:, i] for i, n in enumerate(names)},
                                            convert.make_header(stamp_ns, frame_id, ROSBAGS), ROSBAGS)

    msgs = [(topics.camera_info, convert.camera_model_to_info(frame.camera, cam, ROSBAGS)),
            (topics.radar, cloud(frame.radar, frame.radar_fields, ids.radar))]
    if frame.lidar is not None:
        msgs.append((topics.lidar, cloud(frame.lidar, ("x", "y", "z"), ids.lidar)))
    if frame.prior is not None:
        msgs.append((topics.prior, convert.array_to_image(frame.prior.astype(np.float32), "32FC1", cam, ROSBAGS)))
    msgs.append((topics.image, convert.array_to_image(frame.image, "rgb8", cam, ROSBAGS)))
    return msgs


def _frame_stamps(frames: Sequence[Frame], rate_hz: float, start_ns: int | None) -> list[int]:
    """Dataset stamps if every frame has one and they strictly increase (and no start was forced); otherwise
    start + i / rate."""
    stamps = [f.stamp for f in frames]
    if start_ns is None and all(s > 0 for s in stamps) and all(b > a for a, b in zip(stamps, stamps[1:])):
        return [int(round(s * 1e9)) for s in stamps]
    if rate_hz <= 0:
        raise BagError(f"rate: must be > 0 Hz, got {rate_hz}")
    start = DEFAULT_START_NS if start_ns is None else int(start_ns)
    return [start + int(round(i * 1e9 / rate_hz)) for i in range(len(frames))]


def _in_first_sensor_frames(f: Frame, first: Frame) -> Frame:
    """A shallow copy of `f` whose radar/LiDAR xyz are expressed in `first`'s radar/LiDAR frames (see write_bag)."""
    import copy

    from ..geometry import transform_points
    if f is first:
        return f
    g = copy.copy(f)
    if not np.allclose(f.T_cam_radar, first.T_cam_radar, atol=1e-12):
        radar = f.radar.copy()
        radar[:, :3] = transform_points(np.linalg.inv(first.T_cam_radar) @ f.T_cam_radar, f.radar_xyz)
        g.radar, g.T_cam_radar = radar, first.T_cam_radar
    if f.lidar is not None and not np.allclose(f.T_cam_lidar, first.T_cam_lidar, atol=1e-12):
        g.lidar = transform_points(np.linalg.inv(first.T_cam_lidar) @ f.T_cam_lidar, f.lidar).astype(np.float32)
        g.T_cam_lidar = first.T_cam_lidar
    return g


def write_bag(frames: Iterable[Frame], out: str | Path, storage: str = "sqlite3", rate_hz: float = 10.0,
              start_ns: int | None = None, topics: BagTopics = TOPICS, ids: BagFrameIds = FRAME_IDS,
              custom: Optional[dict[str, str]] = None, extrinsics: str = "same") -> BagSummary:
    """Write frames as a rosbag2 (directory `out`, which must not exist) in `storage` ("sqlite3" | "mcap").

    Stamps: the frames' own if all are positive and strictly increasing, else start_ns (default DEFAULT_START_NS)
    + i / rate_hz. Extrinsics: /tf_static at the first stamp + metadata custom_data (see module docstring). A bag
    has one static calibration: with extrinsics="same" every frame must share the first frame's T_cam_radar and
    T_cam_lidar (BagError otherwise); with extrinsics="first" (e.g. synthetic frames, each with its own sensor rig
    and calibration error) the first frame's extrinsics are stored and every other frame's radar and LiDAR xyz are
    re-expressed in the first frame's sensor frames (p' = T_first^-1 T_frame p), so projecting them with the stored
    extrinsics gives exactly the pixels and depths the frame's own extrinsics give (LiDAR ground truth and each
    frame's calibration error are preserved; doppler and power are kept as they are).
    """
    frames = list(frames)
    if not frames:
        raise BagError("write_bag: no frames to write")
    if extrinsics not in ("same", "first"):
        raise BagError(f"extrinsics: expected 'same' or 'first', got {extrinsics!r}")
    stamps = _frame_stamps(frames, rate_hz, start_ns)
    first = frames[0]
    for f in frames[1:]:
        if extrinsics == "same" and not np.allclose(f.T_cam_radar, first.T_cam_radar, atol=1e-9):
            raise BagError(f"frame {f.frame_id}: T_cam_radar differs from frame {first.frame_id}'s; a bag stores one "
                           "static extrinsic (pass extrinsics='first' / --extrinsics first to use the first frame's)")
        if f.lidar is not None and first.T_cam_lidar is None:
            raise BagError(f"frame {f.frame_id}: has LiDAR but the first frame has none (no LiDAR extrinsic)")
        if (extrinsics == "same" and f.lidar is not None
                and not np.allclose(f.T_cam_lidar, first.T_cam_lidar, atol=1e-9)):
            raise BagError(f"frame {f.frame_id}: T_cam_lidar differs from frame {first.frame_id}'s")
    out = Path(out)
    with BagWriter(out, storage) as bw:
        tfs = [convert.matrix_to_transform_stamped(first.T_cam_radar, ids.camera, ids.radar, stamps[0], ROSBAGS)]
        bw.set_custom_data("racalnet.T_cam_radar", _matrix_json(first.T_cam_radar))
        if first.T_cam_lidar is not None:
            tfs.append(convert.matrix_to_transform_stamped(first.T_cam_lidar, ids.camera, ids.lidar, stamps[0],
                                                           ROSBAGS))
            bw.set_custom_data("racalnet.T_cam_lidar", _matrix_json(first.T_cam_lidar))
        bw.set_custom_data("racalnet.radar_fields", json.dumps(list(first.radar_fields)))
        bw.set_custom_data("racalnet.frame_ids", json.dumps({str(s): f.frame_id for s, f in zip(stamps, frames)}))
        bw.set_custom_data("racalnet.topics", json.dumps(topics.__dict__))
        bw.set_custom_data("racalnet.sensor_frame_ids", json.dumps(ids.__dict__))
        for k, v in (custom or {}).items():
            bw.set_custom_data(k, v)
        bw.write(topics.tf_static, convert.tf_message(tfs, ROSBAGS), stamps[0], transient_local=True)
        for f, s in zip(frames, stamps):
            if extrinsics == "first":
                f = _in_first_sensor_frames(f, first)
            for topic, msg in frame_messages(f, s, topics, ids):
                bw.write(topic, msg, s)
        counts = dict(bw.counts)
    return BagSummary(out, storage, len(frames), stamps, counts)


# ---------------------------------------------------------------------------------------------------------------
# reading
def open_reader(path: str | Path):
    """An opened rosbags AnyReader-like Reader for a rosbag2 directory; BagError if it is not one."""
    from rosbags.rosbag2 import Reader
    p = Path(path)
    if not p.exists():
        raise BagError(f"{p}: no such bag")
    try:
        r = Reader(p)
        r.open()
    except Exception as exc:  # rosbags raises several types (ReaderError, FileNotFoundError, ...)
        raise BagError(f"{p}: not a readable rosbag2: {exc}") from exc
    return r


def bag_custom_data(path: str | Path) -> dict[str, str]:
    """metadata.yaml custom_data of a rosbag2 directory ({} if absent)."""
    meta = Path(path) / "metadata.yaml"
    if not meta.exists():
        return {}
    info = yaml.safe_load(meta.read_text()).get("rosbag2_bagfile_information", {})
    return dict(info.get("custom_data") or {})


def bag_topics(path: str | Path) -> BagTopics:
    """The topic names a bag was written with (custom_data), or the defaults."""
    raw = bag_custom_data(path).get("racalnet.topics")
    return BagTopics(**json.loads(raw)) if raw else TOPICS


def read_messages(path: str | Path, topics: Sequence[str] | None = None,
                  deserialize: bool = True) -> Iterator[tuple[str, str, int, Any]]:
    """(topic, msgtype, log_time_ns, message or raw bytes) in log-time order, optionally for some topics only."""
    r = open_reader(path)
    try:
        conns = [c for c in r.connections if topics is None or c.topic in topics]
        if not conns:
            return
        ts = typestore()
        for conn, t, raw in r.messages(connections=conns):
            yield conn.topic, conn.msgtype, t, (ts.deserialize_cdr(raw, conn.msgtype) if deserialize else raw)
    finally:
        r.close()


def static_transforms(path: str | Path, topic: str | None = None):
    """Every transform on the bag's /tf_static (or `topic`) as a geometry.TransformTree (TFMessages decoded by the
    codec; a later message for the same child wins, as in tf2)."""
    from ..geometry import TransformTree

    tree = TransformTree()
    for _, _, _, msg in read_messages(path, [topic or bag_topics(path).tf_static]):
        for tf in msg.transforms:
            tree.add(tf.header.frame_id, tf.child_frame_id, convert.transform_to_matrix(tf.transform))
    return tree


def read_extrinsics(path: str | Path, ids: BagFrameIds | None = None, require_radar: bool = True,
                    tf_topic: str | None = None) -> dict[str, np.ndarray]:
    """{"T_cam_radar": 4x4, "T_cam_lidar": 4x4 (if stored)} from metadata custom_data (exact) or the /tf_static
    chain camera <- ... <- sensor (bags written elsewhere). BagError if neither holds T_cam_radar, or if the two
    sources disagree (> 1e-5). `ids`: the sensors' frame ids (default: the bag's racalnet.sensor_frame_ids);
    require_radar=False returns what is there; `tf_topic`: default the bag's /tf_static."""
    from ..frame import FrameError

    path = Path(path)
    custom = bag_custom_data(path)
    stored = BagFrameIds(**json.loads(custom["racalnet.sensor_frame_ids"])) \
        if "racalnet.sensor_frame_ids" in custom else FRAME_IDS
    ids = ids or stored
    tf_topic = tf_topic or bag_topics(path).tf_static
    tree = static_transforms(path, tf_topic)
    found: dict[str, np.ndarray] = {}
    for name, child in (("T_cam_radar", ids.radar), ("T_cam_lidar", ids.lidar)):
        try:
            found[name] = tree.lookup(ids.camera, child)
        except FrameError:
            pass
    for name, sensor in (("T_cam_radar", "radar"), ("T_cam_lidar", "lidar")):
        key = f"racalnet.{name}"
        same_frames = ids.camera == stored.camera and getattr(ids, sensor) == getattr(stored, sensor)
        if key in custom and same_frames:  # the metadata's matrices are about the bag's own sensor frames
            T = np.asarray(json.loads(custom[key]), np.float64).reshape(4, 4)
            if name in found and not np.allclose(found[name], T, atol=1e-5):
                raise BagError(f"{path}: {name} in /tf_static and in metadata custom_data disagree")
            found[name] = T  # the exact 16 floats (a quaternion re-orthonormalises a slightly non-orthogonal R)
    if require_radar and "T_cam_radar" not in found:
        raise BagError(f"{path}: no radar extrinsic: neither {tf_topic} ({ids.camera} <- ... <- {ids.radar}) "
                       "nor custom_data racalnet.T_cam_radar")
    return found


def read_frames(path: str | Path) -> Iterator[Frame]:
    """Frames of a bag written by `write_bag` (or any bag with the same topics and one header stamp per frame): the
    exact-stamp case of ros/bag_frames.py (`BagFrames` with sync.slop 0); LiDAR and prior attached when the bag has
    their topics. frame.stamp is the header stamp in seconds, frame.frame_id the dataset id stored in the bag (or the
    stamp in ns), frame.extras["stamp_ns"] the exact stamp."""
    from .bag_frames import BagFrames, BagSourceConfig

    yield from BagFrames(path, BagSourceConfig.from_values({"sync.slop": 0.0})).iter_frames()
