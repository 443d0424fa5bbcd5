"""rosbag2 -> Frames, for any bag with a radar PointCloud2, an Image or CompressedImage, its CameraInfo and (for
training and scoring) a LiDAR PointCloud2: which topics, how messages become frames, where the extrinsics come from.
The `bag` dataset (racalnet_ros/datasets/bag.py) and `bag.read_frames` are built on `BagFrames`.

1. **Index** (one pass when the bag is opened; nothing is decoded but headers): every message of the chosen topics is
   read once as raw CDR bytes, its header stamp read from the bytes (`convert.cdr_header_stamp_ns`), and the
   messages are fed in log-time order to the node's approximate-time policy (`ros/sync.py`, `sync.slop` and
   `sync.queue_size` as the node's parameters). Each matched set (image, camera_info, radar[, lidar][, prior]) is one
   frame; the rest are dropped as the node would drop them. Frames are ordered by image stamp; `split.stride` keeps
   every Nth.
2. **Frames are decoded on demand** (`load(i)`): the frame's messages are read back by log time and decoded by the
   one codec (`convert.messages_to_frame`, as in the node), so a bag larger than memory streams.
3. **Extrinsics**: parameters first (`extrinsics.T_cam_radar` / `extrinsics.xyz_rpy` and `extrinsics.T_cam_lidar` /
   `extrinsics.lidar_xyz_rpy`, the node's conventions), then the bag: the exact matrices in the metadata of bags
   written by this package, else the `/tf_static` chain camera optical frame <- ... <- sensor frame (frame ids from
   the messages' headers; `geometry.TransformTree`). `extrinsics.use_tf: true` always takes the bag's.

Topic names: `topics.*`; '' = the bag's own names (metadata of bags written here) or `BagTopics`' defaults. LiDAR
and prior are optional ('none' = do not use; a topic given explicitly must exist). Radar fields: `radar.field.*`
as the node's parameters (optional doppler / power absent from a bag written here default to '').
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional, Sequence

import numpy as np

from ..config import flat_fields, setting, to_flat, with_values
from ..frame import Frame, FrameError
from . import convert
from .bag import BagError, BagFrameIds, bag_custom_data, bag_topics, open_reader, read_extrinsics, typestore
from .params import RadarSection, SyncSection

log = logging.getLogger(__name__)

POINTCLOUD2 = "sensor_msgs/msg/PointCloud2"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
IMAGE = "sensor_msgs/msg/Image"
NONE = "none"


# ---------------------------------------------------------------------------------------------------------------
# settings
@dataclass
class BagTopicSection:
    image: str = setting("", "Image (rgb8, bgr8, rgba8, bgra8, mono8, mono16) or CompressedImage (jpeg / png) topic; "
                             "'' = the bag's own (metadata) or /camera/image.")
    camera_info: str = setting("", "CameraInfo topic of that camera; '' = the bag's own or /camera/camera_info.")
    radar: str = setting("", "Radar PointCloud2 topic; '' = the bag's own or /radar/points.")
    lidar: str = setting("", "LiDAR PointCloud2 topic (labels and scores); '' = the bag's own or /lidar/points when "
                             "present; 'none' = no LiDAR.")
    prior: str = setting("", "32FC1 relative inverse depth topic attached as frame.prior; '' = the bag's own or "
                             "/prior/inverse_depth when present; 'none' = no prior.")
    tf_static: str = setting("/tf_static", "tf2_msgs/TFMessage topic with the static transforms.")


@dataclass
class BagExtrinsicsSection:
    T_cam_radar: list = setting([], "Radar frame -> camera optical frame, 16 floats row-major (as the node's "
                                    "extrinsics.T_cam_radar); [] = from the bag.")
    xyz_rpy: list = setting([0.0] * 6, "Alternative to T_cam_radar: x y z (m) roll pitch yaw (rad, R = Rz Ry Rx) of "
                                       "the radar in the camera optical frame; all zeros = unused.", length=6)
    T_cam_lidar: list = setting([], "LiDAR frame -> camera optical frame, 16 floats row-major; [] = from the bag.")
    lidar_xyz_rpy: list = setting([0.0] * 6, "Alternative to T_cam_lidar, as xyz_rpy; all zeros = unused.",
                                  length=6)
    use_tf: bool = setting(False, "Take both transforms from the bag (metadata or /tf_static) even when given "
                                  "above (the node's extrinsics.use_tf).")
    camera_frame: str = setting("", "Camera optical frame id for /tf_static look-ups; '' = the image's "
                                    "header.frame_id.")


@dataclass
class BagSplitSection:
    val_fraction: float = setting(0.2, "The last fraction of the matched frames (by image stamp) forms the 'val' "
                                       "split, the rest 'train'.", ge=0.0, le=0.9)
    stride: int = setting(1, "Keep every Nth matched frame (consecutive frames of a 10-30 Hz bag are near "
                             "duplicates).", ge=1)


@dataclass
class BagSourceConfig:
    """Where the frames of a bag come from (dotted keys, checked like every setting: `--bag-set KEY=VALUE`,
    `--bag-config FILE`; a node parameter file works as is: its radar.field.*, extrinsics.*, sync.* keys apply)."""

    topics: BagTopicSection = field(default_factory=BagTopicSection)
    radar: RadarSection = field(default_factory=RadarSection)
    extrinsics: BagExtrinsicsSection = field(default_factory=BagExtrinsicsSection)
    sync: SyncSection = field(default_factory=SyncSection)
    split: BagSplitSection = field(default_factory=BagSplitSection)

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "BagSourceConfig":
        return with_values(cls(), values)

    def to_flat(self) -> dict[str, Any]:
        return to_flat(self)

    @property
    def field_map(self) -> dict[str, str]:
        f = self.radar.field
        return {"x": f.x, "y": f.y, "z": f.z, "doppler": f.doppler, "power": f.power}

    def transform(self, sensor: str) -> Optional[np.ndarray]:
        """T_cam_<sensor> ("radar" | "lidar") from the parameters, or None (= from the bag)."""
        from ..geometry import transform_from_xyz_rpy

        e = self.extrinsics
        T, xyz_rpy = (e.T_cam_radar, e.xyz_rpy) if sensor == "radar" else (e.T_cam_lidar, e.lidar_xyz_rpy)
        if e.use_tf:
            return None
        if any(xyz_rpy):
            return transform_from_xyz_rpy(xyz_rpy)
        if T:
            return np.asarray(T, np.float64).reshape(4, 4)
        return None

    def check(self) -> list[str]:
        from ..frame import _check_transform

        errors = [f"radar.field.{c}: must name a PointCloud2 field (x, y and z are required)"
                  for c in ("x", "y", "z") if not self.field_map[c]]
        for key in ("T_cam_radar", "T_cam_lidar"):
            if len(getattr(self.extrinsics, key)) not in (0, 16):
                errors.append(f"extrinsics.{key}: expected 16 numbers (or [] = from the bag), got "
                              f"{len(getattr(self.extrinsics, key))}")
        if errors:
            return errors
        for sensor, names in (("radar", "extrinsics.T_cam_radar / extrinsics.xyz_rpy"),
                              ("lidar", "extrinsics.T_cam_lidar / extrinsics.lidar_xyz_rpy")):
            try:
                T = self.transform(sensor)
                if T is not None:
                    _check_transform(names, T)
            except FrameError as e:
                errors.append(str(e))
        for key in ("image", "camera_info", "radar"):
            if getattr(self.topics, key) == NONE:
                errors.append(f"topics.{key}: required, cannot be 'none'")
        return errors


def load_source_config(files: Sequence[str | Path] = (), values: Optional[Mapping[str, Any]] = None
                       ) -> BagSourceConfig:
    """BagSourceConfig from YAML files (plain or a ROS parameter file, read with the config module's one reader) and
    then `values`. Keys of the node that are not about the bag (recalibration.*, prior.*, ...) are skipped in files so
    the node's own parameter file can be given as is; any other unknown key is an error."""
    from ..config import read_yaml
    from .params import parameter_fields

    mine, node = flat_fields(BagSourceConfig), parameter_fields()
    flat: dict[str, Any] = {}
    for path in files:
        for k, v in read_yaml(path)[0].items():
            if k in mine or (k not in node and k != "use_sim_time" and not k.startswith("qos_overrides.")):
                flat[k] = v
    flat.update(values or {})
    return BagSourceConfig.from_values(flat)


# ---------------------------------------------------------------------------------------------------------------
# the index
@dataclass(frozen=True)
class Entry:
    """One indexed message: which input, its topic, log time and header stamp (both ns)."""

    input: int
    topic: str
    log_time: int
    stamp: int


class BagFrames:
    """The frames of a bag (see the module docstring). `ids[i]` names frame i, `load(i)` decodes it; `topics` (input
    name -> topic, in input order), `msgtypes`, `frame_ids` (input name -> header.frame_id of its first message),
    `extrinsics` / `extrinsics_source`, `field_map` (radar columns) and `dropped` (input name -> messages in no
    frame) say how."""

    def __init__(self, path: str | Path, config: Optional[BagSourceConfig] = None) -> None:
        self.path = Path(path)
        self.config = config or BagSourceConfig()
        self._choose_topics()
        self._index()
        self._resolve_extrinsics()

    # ------------------------------------------------------------------ topics
    def _choose_topics(self) -> None:
        cfg, own = self.config.topics, bag_topics(self.path)
        reader = open_reader(self.path)
        try:
            present: dict[str, str] = {}
            for c in reader.connections:
                present.setdefault(c.topic, c.msgtype)
        finally:
            reader.close()
        listing = ", ".join(f"{t} ({m})" for t, m in sorted(present.items())) or "none"
        wanted = {"image": (convert.IMAGE_MSGTYPES, True), "camera_info": ((CAMERA_INFO,), True),
                  "radar": ((POINTCLOUD2,), True), "lidar": ((POINTCLOUD2,), False), "prior": ((IMAGE,), False)}
        self.topics, self.msgtypes = {}, {}
        errors = []
        for name, (types, required) in wanted.items():
            given = getattr(cfg, name)
            if given == NONE:
                continue
            topic = given or getattr(own, name)
            if topic not in present:
                if given or required:
                    errors.append(f"topics.{name}: no topic {topic!r} in the bag")
            elif present[topic] not in types:
                errors.append(f"topics.{name}: {topic} carries {present[topic]}, expected {' or '.join(types)}")
            else:
                self.topics[name], self.msgtypes[name] = topic, present[topic]
        if errors:
            raise BagError(f"{self.path}: " + "; ".join(errors) + f" (the bag has: {listing})")
        custom = bag_custom_data(self.path)
        self.field_map = dict(self.config.field_map)
        if "racalnet.radar_fields" in custom:  # a bag written here lists its radar columns
            stored = json.loads(custom["racalnet.radar_fields"])
            default = dataclasses.asdict(type(self.config.radar.field)())
            for c in ("doppler", "power"):
                if self.field_map[c] == default[c] and c not in stored:
                    self.field_map[c] = ""

    # ------------------------------------------------------------------ index
    def _index(self) -> None:
        # The node's matching policy, run offline. The pure-Python ApproximateTimeSync rather than
        # make_synchronizer: message_filters needs ROS message objects and a clock, the entries here are index rows,
        # and both follow the same policy (ros/sync.py).
        from .sync import ApproximateTimeSync

        names = list(self.topics)
        index_of = {t: i for i, t in enumerate(self.topics.values())}
        sync = ApproximateTimeSync(len(names), self.config.sync.queue_size, self.config.sync.slop)
        matched: list[tuple[Entry, ...]] = []
        counts = [0] * len(names)
        first_raw: dict[int, tuple[str, bytes]] = {}
        reader = open_reader(self.path)
        try:
            conns = [c for c in reader.connections if c.topic in index_of]
            for conn, t, raw in reader.messages(connections=conns):
                i = index_of[conn.topic]
                counts[i] += 1
                first_raw.setdefault(i, (conn.msgtype, bytes(raw)))
                try:
                    stamp = convert.cdr_header_stamp_ns(raw)
                except (IndexError, ValueError):
                    raise BagError(f"{self.path}: {conn.topic}: message at log time {t} has no readable "
                                   "header") from None
                m = sync.add(i, stamp * 1e-9, Entry(i, conn.topic, int(t), stamp))
                if m is not None:
                    matched.append(m)
        finally:
            reader.close()
        matched.sort(key=lambda m: (m[0].stamp, m[0].log_time))
        self.frames = matched[:: self.config.split.stride]
        self.dropped = {n: counts[i] - len(matched) for i, n in enumerate(names)}
        missing = [self.topics[n] for i, n in enumerate(names) if i not in first_raw]
        if missing:
            raise BagError(f"{self.path}: no message on {', '.join(missing)}")
        self.frame_ids = {n: typestore().deserialize_cdr(first_raw[i][1], first_raw[i][0]).header.frame_id
                          for i, n in enumerate(names)}
        id_map = json.loads(bag_custom_data(self.path).get("racalnet.frame_ids", "{}"))
        self.ids = [id_map.get(str(m[0].stamp), str(m[0].stamp)) for m in self.frames]
        if len(set(self.ids)) != len(self.ids):  # two frames sharing an image stamp: make the ids unique
            self.ids = [f"{fid}#{k}" for k, fid in enumerate(self.ids)]
        if not self.frames:
            raise BagError(f"{self.path}: no frame: no set of {', '.join(self.topics.values())} within sync.slop "
                           f"{self.config.sync.slop:g} s (messages: "
                           + ", ".join(f"{self.topics[n]} x{counts[i]}" for i, n in enumerate(names)) + ")")

    # ------------------------------------------------------------------ extrinsics
    def _resolve_extrinsics(self) -> None:
        camera = self.config.extrinsics.camera_frame or self.frame_ids["image"]
        sensors = ["radar"] + (["lidar"] if "lidar" in self.topics else [])
        self.extrinsics, self.extrinsics_source = {}, {}
        for s in sensors:
            T = self.config.transform(s)
            if T is not None:
                self.extrinsics[f"T_cam_{s}"], self.extrinsics_source[f"T_cam_{s}"] = T, "parameters"
        if len(self.extrinsics) == len(sensors):
            return
        ids = BagFrameIds(camera=camera, radar=self.frame_ids["radar"], lidar=self.frame_ids.get("lidar", ""))
        found = read_extrinsics(self.path, ids, require_radar=False, tf_topic=self.config.topics.tf_static)
        custom = bag_custom_data(self.path)
        for s in sensors:
            key = f"T_cam_{s}"
            if key in self.extrinsics:
                continue
            if key not in found:
                hint = "extrinsics.T_cam_radar or extrinsics.xyz_rpy" if s == "radar" else \
                    "extrinsics.T_cam_lidar or extrinsics.lidar_xyz_rpy"
                raise BagError(f"{self.path}: no {s} extrinsic: {self.config.topics.tf_static} has no chain "
                               f"{camera} <- ... <- {getattr(ids, s)} (the {s} cloud's frame_id), and the metadata "
                               f"has none; give {hint}")
            self.extrinsics[key] = found[key]
            stored = json.loads(custom.get("racalnet.sensor_frame_ids", "{}"))
            exact = f"racalnet.{key}" in custom and stored.get(s) == getattr(ids, s) and stored.get("camera") == camera
            self.extrinsics_source[key] = "bag metadata" if exact else self.config.topics.tf_static

    # ------------------------------------------------------------------ frames
    def __len__(self) -> int:
        return len(self.frames)

    def stamp_ns(self, i: int) -> int:
        """Header stamp (ns) of frame i's image."""
        return self.frames[i][0].stamp

    def messages(self, i: int) -> dict[str, Any]:
        """{input name: decoded message} of frame i, read back by log time."""
        entries = self.frames[i]
        names = list(self.topics)
        wanted = {(e.topic, e.log_time, e.stamp): names[e.input] for e in entries}
        out: dict[str, Any] = {}
        reader = open_reader(self.path)
        try:
            conns = [c for c in reader.connections if c.topic in {e.topic for e in entries}]
            start, stop = min(e.log_time for e in entries), max(e.log_time for e in entries) + 1
            for conn, t, raw in reader.messages(connections=conns, start=start, stop=stop):
                key = (conn.topic, int(t), convert.cdr_header_stamp_ns(raw))
                if key in wanted and wanted[key] not in out:
                    out[wanted[key]] = typestore().deserialize_cdr(raw, conn.msgtype)
        finally:
            reader.close()
        if len(out) != len(entries):
            lost = [self.topics[n] for n in names if n not in out]
            raise BagError(f"{self.path}: frame {self.ids[i]}: messages on {', '.join(lost)} not found again "
                           "(was the bag changed?)")
        return out

    def load(self, i: int) -> Frame:
        """Decode frame i; BagError naming the bag, the frame and the field at fault."""
        fid = self.ids[i]
        msgs = self.messages(i)
        try:
            frame, _ = convert.messages_to_frame(msgs["image"], msgs["radar"], msgs["camera_info"],
                                                 self.extrinsics["T_cam_radar"], self.field_map, msgs.get("prior"))
            lidar = None
            if "lidar" in msgs:
                lidar = convert.pointcloud2_to_columns(msgs["lidar"], ("x", "y", "z"), name=self.topics["lidar"])
            return dataclasses.replace(frame, lidar=lidar, T_cam_lidar=self.extrinsics.get("T_cam_lidar"),
                                       frame_id=fid, extras={"stamp_ns": self.stamp_ns(i)})
        except (convert.ConversionError, FrameError) as exc:
            raise BagError(f"{self.path}: frame {fid}: {exc}") from None

    def iter_frames(self) -> Iterator[Frame]:
        for i in range(len(self)):
            yield self.load(i)

    def describe(self) -> dict[str, Any]:
        """What the frames are: topics, sensor frame ids, extrinsics and where they came from, sync settings."""
        custom = bag_custom_data(self.path)
        return {"topics": dict(self.topics), "message_types": dict(self.msgtypes),
                "sensor_frames": dict(self.frame_ids), "radar_fields": self.field_map,
                "extrinsics_source": dict(self.extrinsics_source),
                "sync": {"slop": self.config.sync.slop, "queue_size": self.config.sync.queue_size},
                "stride": self.config.split.stride, "messages_not_matched": dict(self.dropped),
                "written_from": custom.get("racalnet.dataset", "")}
