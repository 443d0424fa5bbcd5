"""rosbag2 files (sqlite3 and MCAP) with `rosbags`: Frames -> bag, bag -> Frames, and the small message <-> numpy
conversions both directions need. Pure Python: no rclpy here, so bags can be written and scored without a ROS install.

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
import transforms3d
import yaml

from ..frame import CameraModel, Frame, FrameError

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

# message type names
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
TF_MESSAGE = "tf2_msgs/msg/TFMessage"


class BagError(ValueError):
    """A bag is missing, malformed, or lacks a topic; the message names the bag and the topic."""


@lru_cache(maxsize=1)
def typestore():
    """The rosbags type store for ROS 2 Kilted message definitions (the same definitions Humble/Jazzy use for every
    type written here)."""
    from rosbags.typesys import Stores, get_typestore
    return get_typestore(Stores.ROS2_KILTED)


def _t(name: str):
    return typestore().types[name]


# ---------------------------------------------------------------------------------------------------------------
# stamps and headers
def stamp_to_ns(stamp: Any) -> int:
    """builtin_interfaces/Time (rosbags or rclpy object) -> integer nanoseconds."""
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


def header_msg(stamp_ns: int, frame_id: str):
    Time = _t("builtin_interfaces/msg/Time")
    sec, nsec = divmod(int(stamp_ns), 10**9)
    return _t("std_msgs/msg/Header")(stamp=Time(sec=sec, nanosec=nsec), frame_id=frame_id)


# ---------------------------------------------------------------------------------------------------------------
# numpy -> rosbags messages
def image_msg(image: np.ndarray, stamp_ns: int, frame_id: str, encoding: str | None = None):
    """H x W x 3 uint8 RGB -> rgb8 Image; H x W float32 -> 32FC1 Image (little endian, no row padding)."""
    arr = np.ascontiguousarray(image)
    if encoding is None:
        if arr.ndim == 3 and arr.shape[2] == 3 and arr.dtype == np.uint8:
            encoding = "rgb8"
        elif arr.ndim == 2 and arr.dtype == np.float32:
            encoding = "32FC1"
        else:
            raise FrameError(f"image: cannot choose an encoding for shape {arr.shape} dtype {arr.dtype}")
    if encoding == "32FC1":
        arr = np.ascontiguousarray(arr, dtype="<f4")
    h, w = arr.shape[:2]
    step = arr.strides[0]
    return _t(IMAGE)(header=header_msg(stamp_ns, frame_id), height=h, width=w, encoding=encoding, is_bigendian=0,
                     step=int(step), data=arr.reshape(-1).view(np.uint8))


def camera_info_msg(camera: CameraModel, stamp_ns: int, frame_id: str):
    """CameraModel -> CameraInfo (R = identity, P = [K | 0]: a monocular, unrectified camera)."""
    P = np.zeros((3, 4))
    P[:, :3] = camera.K
    roi = _t("sensor_msgs/msg/RegionOfInterest")(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return _t(CAMERA_INFO)(
        header=header_msg(stamp_ns, frame_id), height=camera.height, width=camera.width,
        distortion_model=camera.distortion_model, d=camera.dist.astype(np.float64).copy(),
        k=camera.K.reshape(-1).astype(np.float64), r=np.eye(3).reshape(-1), p=P.reshape(-1),
        binning_x=0, binning_y=0, roi=roi)


def pointcloud_msg(points: np.ndarray, fields: Sequence[str], stamp_ns: int, frame_id: str):
    """N x C float32 points -> an unorganised PointCloud2 (height 1) with one float32 field per column."""
    PointField = _t("sensor_msgs/msg/PointField")
    pts = np.ascontiguousarray(points, dtype="<f4")
    if pts.ndim != 2 or pts.shape[1] != len(fields):
        raise FrameError(f"points: expected N x {len(fields)} ({', '.join(fields)}), got shape {pts.shape}")
    n, c = pts.shape
    pf = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1) for i, name in enumerate(fields)]
    return _t(POINTCLOUD2)(header=header_msg(stamp_ns, frame_id), height=1, width=n, fields=pf, is_bigendian=False,
                           point_step=4 * c, row_step=4 * c * n, data=pts.reshape(-1).view(np.uint8),
                           is_dense=True)


def transform_stamped_msg(T_parent_child: np.ndarray, parent: str, child: str, stamp_ns: int):
    """4x4 T (child-frame points -> parent frame) -> geometry_msgs/TransformStamped (tf2: child's pose in parent)."""
    T = np.asarray(T_parent_child, dtype=np.float64)
    w, x, y, z = transforms3d.quaternions.mat2quat(T[:3, :3])
    Vector3 = _t("geometry_msgs/msg/Vector3")
    Quaternion = _t("geometry_msgs/msg/Quaternion")
    tf = _t("geometry_msgs/msg/Transform")(translation=Vector3(x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
                                           rotation=Quaternion(x=float(x), y=float(y), z=float(z), w=float(w)))
    return _t("geometry_msgs/msg/TransformStamped")(header=header_msg(stamp_ns, parent), child_frame_id=child,
                                                    transform=tf)


def tf_message(transforms: Sequence[Any]):
    return _t(TF_MESSAGE)(transforms=list(transforms))


# ---------------------------------------------------------------------------------------------------------------
# rosbags / rclpy messages -> numpy (duck-typed: works on both, since the field names are the same)
_IMAGE_DTYPES = {
    "rgb8": (np.uint8, 3), "bgr8": (np.uint8, 3), "rgba8": (np.uint8, 4), "bgra8": (np.uint8, 4),
    "mono8": (np.uint8, 1), "8UC1": (np.uint8, 1), "mono16": (np.uint16, 1), "16UC1": (np.uint16, 1),
    "32FC1": (np.float32, 1),
}


def image_to_array(msg: Any) -> np.ndarray:
    """Image -> H x W (1 channel) or H x W x C array, honouring `step` (row padding) and `is_bigendian`.
    Colour encodings come back as RGB (bgr8/bgra8 are reordered, alpha dropped)."""
    enc = msg.encoding
    if enc not in _IMAGE_DTYPES:
        raise BagError(f"image encoding {enc!r} not supported; expected one of {sorted(_IMAGE_DTYPES)}")
    base, ch = _IMAGE_DTYPES[enc]
    dt = np.dtype(base).newbyteorder(">" if msg.is_bigendian else "<")
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = w * ch * dt.itemsize
    buf = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, dtype=np.uint8)
    if step < row_bytes or buf.size < step * h:
        raise BagError(f"image: {enc} {w}x{h} needs step >= {row_bytes} and {step * h} bytes, "
                       f"got step {step} and {buf.size} bytes")
    rows = buf[: step * h].reshape(h, step)[:, :row_bytes]
    arr = np.ascontiguousarray(rows).view(dt).astype(base, copy=False)
    arr = arr.reshape(h, w, ch) if ch > 1 else arr.reshape(h, w)
    if enc.startswith("bgr"):
        arr = arr[..., [2, 1, 0]]
    elif enc == "rgba8":
        arr = arr[..., :3]
    return np.ascontiguousarray(arr)


def camera_info_to_model(msg: Any) -> CameraModel:
    """CameraInfo -> CameraModel (K and D; R/P are ignored: images here are unrectified)."""
    return CameraModel(np.asarray(msg.k, np.float64).reshape(3, 3), int(msg.width), int(msg.height),
                       np.asarray(msg.d, np.float64), msg.distortion_model or "plumb_bob")


_PF_DTYPES = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 8: "f8"}


def pointcloud_to_array(msg: Any, fields: Sequence[str]) -> np.ndarray:
    """PointCloud2 -> N x len(fields) float32 with the named fields in order; points with NaN/inf dropped.
    BagError naming the missing field if the cloud lacks one."""
    have = {f.name: f for f in msg.fields}
    missing = [f for f in fields if f not in have]
    if missing:
        raise BagError(f"PointCloud2 has no field(s) {missing}; available: {sorted(have)}")
    order = ">" if msg.is_bigendian else "<"
    dtype = np.dtype({"names": list(fields),
                      "formats": [order + _PF_DTYPES[int(have[f].datatype)] for f in fields],
                      "offsets": [int(have[f].offset) for f in fields],
                      "itemsize": int(msg.point_step)})
    n = int(msg.width) * int(msg.height)
    buf = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, np.ndarray) else msg.data, dtype=np.uint8)
    if int(msg.height) > 1:  # organised cloud: rows may be padded to row_step
        buf = buf.reshape(int(msg.height), int(msg.row_step))[:, : int(msg.width) * int(msg.point_step)].reshape(-1)
    rec = np.frombuffer(np.ascontiguousarray(buf[: n * int(msg.point_step)]).tobytes(), dtype=dtype, count=n)
    out = np.stack([rec[f].astype(np.float32) for f in fields], axis=1) if n else np.zeros((0, len(fields)), np.float32)
    return out[np.all(np.isfinite(out), axis=1)]


def transform_to_matrix(tf: Any) -> np.ndarray:
    """geometry_msgs/Transform -> 4x4 (child-frame points -> parent frame)."""
    q = tf.rotation
    T = np.eye(4)
    T[:3, :3] = transforms3d.quaternions.quat2mat([q.w, q.x, q.y, q.z])
    T[:3, 3] = [tf.translation.x, tf.translation.y, tf.translation.z]
    return T


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
    msgs = [(topics.camera_info, camera_info_msg(frame.camera, stamp_ns, ids.camera)),
            (topics.radar, pointcloud_msg(frame.radar, frame.radar_fields, stamp_ns, ids.radar))]
    if frame.lidar is not None:
        msgs.append((topics.lidar, pointcloud_msg(frame.lidar, ("x", "y", "z"), stamp_ns, ids.lidar)))
    if frame.prior is not None:
        msgs.append((topics.prior, image_msg(frame.prior.astype(np.float32), stamp_ns, ids.camera, "32FC1")))
    msgs.append((topics.image, image_msg(frame.image, stamp_ns, ids.camera, "rgb8")))
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
        tfs = [transform_stamped_msg(first.T_cam_radar, ids.camera, ids.radar, stamps[0])]
        bw.set_custom_data("racalnet.T_cam_radar", _matrix_json(first.T_cam_radar))
        if first.T_cam_lidar is not None:
            tfs.append(transform_stamped_msg(first.T_cam_lidar, ids.camera, ids.lidar, stamps[0]))
            bw.set_custom_data("racalnet.T_cam_lidar", _matrix_json(first.T_cam_lidar))
        bw.set_custom_data("racalnet.radar_fields", json.dumps(list(first.radar_fields)))
        bw.set_custom_data("racalnet.frame_ids", json.dumps({str(s): f.frame_id for s, f in zip(stamps, frames)}))
        bw.set_custom_data("racalnet.topics", json.dumps(topics.__dict__))
        bw.set_custom_data("racalnet.sensor_frame_ids", json.dumps(ids.__dict__))
        for k, v in (custom or {}).items():
            bw.set_custom_data(k, v)
        bw.write(topics.tf_static, tf_message(tfs), stamps[0], transient_local=True)
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


def read_extrinsics(path: str | Path, ids: BagFrameIds | None = None) -> dict[str, np.ndarray]:
    """{"T_cam_radar": 4x4, "T_cam_lidar": 4x4 (if stored)} from metadata custom_data (exact) or /tf_static (bags
    written elsewhere). BagError if neither holds T_cam_radar, or if the two sources disagree (> 1e-5)."""
    path = Path(path)
    custom = bag_custom_data(path)
    if ids is None:
        ids = BagFrameIds(**json.loads(custom["racalnet.sensor_frame_ids"])) \
            if "racalnet.sensor_frame_ids" in custom else FRAME_IDS
    topics = bag_topics(path)
    found: dict[str, np.ndarray] = {}
    for _, _, _, msg in read_messages(path, [topics.tf_static]):
        for tf in msg.transforms:
            for name, child in (("T_cam_radar", ids.radar), ("T_cam_lidar", ids.lidar)):
                if tf.header.frame_id == ids.camera and tf.child_frame_id == child:
                    found[name] = transform_to_matrix(tf.transform)
    for name in ("T_cam_radar", "T_cam_lidar"):
        key = f"racalnet.{name}"
        if key in custom:
            T = np.asarray(json.loads(custom[key]), np.float64).reshape(4, 4)
            if name in found and not np.allclose(found[name], T, atol=1e-5):
                raise BagError(f"{path}: {name} in /tf_static and in metadata custom_data disagree")
            found[name] = T  # the exact 16 floats (a quaternion re-orthonormalises a slightly non-orthogonal R)
    if "T_cam_radar" not in found:
        raise BagError(f"{path}: no radar extrinsic: neither {topics.tf_static} ({ids.camera} -> {ids.radar}) nor "
                       "custom_data racalnet.T_cam_radar")
    return found


def read_frames(path: str | Path, radar_fields: Sequence[str] | None = None) -> Iterator[Frame]:
    """Rebuild Frames from a bag written by `write_bag` (or any bag with the same topics): messages are grouped by
    header stamp; a stamp with an image, a camera_info and a radar cloud makes a Frame (LiDAR and prior attached when
    present). frame.stamp is the header stamp in seconds, frame.frame_id the dataset id stored in the bag (or the
    stamp in ns). Groups lacking a required topic are skipped with a warning naming it."""
    path = Path(path)
    custom = bag_custom_data(path)
    topics = bag_topics(path)
    ext = read_extrinsics(path)
    if radar_fields is None:
        radar_fields = tuple(json.loads(custom.get("racalnet.radar_fields", '["x", "y", "z"]')))
    id_map = json.loads(custom.get("racalnet.frame_ids", "{}"))
    wanted = [topics.image, topics.camera_info, topics.radar, topics.lidar, topics.prior]
    groups: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    for topic, _, _, msg in read_messages(path, wanted):
        s = stamp_to_ns(msg.header.stamp)
        if s not in groups:
            groups[s] = {}
            order.append(s)
        groups[s][topic] = msg
    for s in order:
        g = groups[s]
        missing = [t for t in (topics.image, topics.camera_info, topics.radar) if t not in g]
        if missing:
            log.warning("%s: stamp %d lacks %s; skipped", path, s, ", ".join(missing))
            continue
        lidar = pointcloud_to_array(g[topics.lidar], ("x", "y", "z")) if topics.lidar in g else None
        if lidar is not None and "T_cam_lidar" not in ext:
            raise BagError(f"{path}: has {topics.lidar} but no LiDAR extrinsic")
        yield Frame(image=image_to_array(g[topics.image]), camera=camera_info_to_model(g[topics.camera_info]),
                    radar=pointcloud_to_array(g[topics.radar], radar_fields), radar_fields=tuple(radar_fields),
                    T_cam_radar=ext["T_cam_radar"], lidar=lidar,
                    T_cam_lidar=ext.get("T_cam_lidar") if lidar is not None else None,
                    prior=image_to_array(g[topics.prior]) if topics.prior in g else None,
                    stamp=s * 1e-9, frame_id=id_map.get(str(s), str(s)), extras={"stamp_ns": s})
