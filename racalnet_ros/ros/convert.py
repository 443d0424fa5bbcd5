"""The one message codec: sensor_msgs (and geometry / tf2) messages <-> numpy, and synced messages -> `Frame`, for
the node, the bag reader and writer, the recorder and the replay tools alike. Conversions happen here once, at the
edge; nothing outside racalnet_ros/ros/ decodes a ROS message (test/test_layering.py checks it).

Decoders are duck-typed: rosbags' message classes and rclpy's have the same field names, so `image_to_array`,
`pointcloud2_to_array`, `camera_info_to_model`, ... take either. PointField datatypes are keyed on their integer
values (INT8 = 1 ... FLOAT64 = 8), not on a sensor_msgs import. Encoders build messages of either library: `RCLPY`
(the node; sensor_msgs imported on first use) or `ROSBAGS` (the type store the bag writer serialises with). Nothing
imports rclpy or sensor_msgs when this module is imported, so the bag tools work without a ROS install.

Hand-written on purpose: cv_bridge and sensor_msgs_py are not on PyPI (the tests run on the PyPI ROS wheels), and
these numpy views are all the package needs. Incoming data is viewed, not copied, where the layout allows it
(`np.frombuffer` on the message's byte array; row padding skipped by striding; count > 1 fields become sub-arrays;
foreign byte order converted once); outgoing arrays are copied once into the message's byte field (rclpy:
`array('B')`, since assigning bytes or lists would make rosidl's field check walk every byte in Python; rosbags:
a numpy uint8 array).

Every malformed message raises `ConversionError` whose message names the field at fault.
"""

from __future__ import annotations

import array
import importlib
import sys
from typing import Any, Mapping, Optional, Sequence

import cv2
import numpy as np

from ..errors import RacalnetError
from ..frame import RADAR_OPTIONAL, RADAR_XYZ, CameraModel, Frame, FrameError, RadarAnchors


class ConversionError(RacalnetError, ValueError):
    """A ROS message that cannot be converted; the message names the field (e.g. "image.encoding")."""


# ---------------------------------------------------------------------------------------------------- message types
class MessageTypes:
    """Builds messages of one library: `types("sensor_msgs/msg/Image", height=..., ...)`. Numeric arrays are handed
    over in the form that library stores fastest."""

    def __init__(self, name: str) -> None:
        self.name = name

    def cls(self, msgtype: str):
        if self.name == "rosbags":
            from .bag import typestore

            return typestore().types[msgtype]
        pkg, kind, cls = msgtype.split("/")
        return getattr(importlib.import_module(f"{pkg}.{kind}"), cls)

    def __call__(self, msgtype: str, **fields: Any):
        out = {}
        for k, v in fields.items():
            if isinstance(v, np.ndarray) and v.dtype == np.uint8:
                v = _byte_array(v) if self.name == "rclpy" else np.ascontiguousarray(v).reshape(-1)
            elif isinstance(v, np.ndarray):
                v = [float(x) for x in v.reshape(-1)] if self.name == "rclpy" else v.astype(np.float64).reshape(-1)
            out[k] = v
        return self.cls(msgtype)(**out)

    def __repr__(self) -> str:
        return f"MessageTypes({self.name!r})"


RCLPY = MessageTypes("rclpy")
ROSBAGS = MessageTypes("rosbags")


def make_header(stamp_ns: int, frame_id: str, types: MessageTypes = RCLPY):
    """std_msgs/Header with stamp `stamp_ns` (integer nanoseconds) and `frame_id`."""
    sec, nsec = divmod(int(stamp_ns), 10**9)
    return types("std_msgs/msg/Header", stamp=types("builtin_interfaces/msg/Time", sec=sec, nanosec=nsec),
                 frame_id=frame_id)


#: encoding -> (numpy dtype, channels). The set the node accepts (sensor_msgs/image_encodings.hpp names).
IMAGE_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "rgba8": (np.dtype(np.uint8), 4),
    "bgra8": (np.dtype(np.uint8), 4),
    "mono8": (np.dtype(np.uint8), 1),
    "mono16": (np.dtype(np.uint16), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "32FC1": (np.dtype(np.float32), 1),
}

#: PointField.datatype -> numpy dtype (sensor_msgs/PointField constants INT8 = 1 ... FLOAT64 = 8, the same in every
#: ROS 2 distro and in rosbags).
POINTFIELD_DTYPES: dict[int, np.dtype] = {
    1: np.dtype(np.int8), 2: np.dtype(np.uint8), 3: np.dtype(np.int16), 4: np.dtype(np.uint16),
    5: np.dtype(np.int32), 6: np.dtype(np.uint32), 7: np.dtype(np.float32), 8: np.dtype(np.float64),
}
FLOAT32 = 7

_BIG_ENDIAN_HOST = sys.byteorder == "big"


def stamp_to_sec(stamp) -> float:
    """builtin_interfaces/Time -> float seconds."""
    return float(stamp.sec) + 1e-9 * float(stamp.nanosec)


def stamp_to_ns(stamp) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


def cdr_header_stamp_ns(data: bytes) -> int:
    """Header stamp of a serialized message whose first field is std_msgs/Header, read from the CDR bytes directly
    (4-byte encapsulation header, then int32 sec + uint32 nanosec in the stated byte order): the recorder and the
    replay tools need stamps of messages they never deserialise (a whole image just for its stamp is wasteful)."""
    little = data[1] & 1  # encapsulation kind: CDR_LE = 0x0001, CDR_BE = 0x0000
    order = "little" if little else "big"
    sec = int.from_bytes(data[4:8], order, signed=True)
    nsec = int.from_bytes(data[8:12], order, signed=False)
    return sec * 10**9 + nsec


def _byte_array(buf: np.ndarray) -> array.array:
    """One copy of a contiguous numpy array into the array('B') that rosidl message byte fields hold."""
    out = array.array("B")
    out.frombytes(np.ascontiguousarray(buf).reshape(-1).view(np.uint8).data)
    return out


def _as_uint8(data) -> np.ndarray:
    """The message's byte field (rclpy array('B') or bytes, rosbags numpy uint8) as a uint8 view."""
    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.size else np.zeros(0, np.uint8)
    return np.frombuffer(data, dtype=np.uint8) if len(data) else np.zeros(0, np.uint8)


# ---------------------------------------------------------------------------------------------------------- images
def image_to_array(msg, name: str = "image") -> np.ndarray:
    """Image -> H x W (1 channel) or H x W x C array in native byte order. A view on msg.data when the byte order
    is native (row padding is skipped by striding, not copying)."""
    enc = msg.encoding
    if enc not in IMAGE_ENCODINGS:
        raise ConversionError(f"{name}.encoding: unsupported encoding {enc!r}; supported: {', '.join(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[enc]
    h, w, step = int(msg.height), int(msg.width), int(msg.step)
    if h <= 0 or w <= 0:
        raise ConversionError(f"{name}: empty image ({w}x{h})")
    row_bytes = w * channels * dtype.itemsize
    if step < row_bytes:
        raise ConversionError(f"{name}.step: {step} bytes is less than width * bytes per pixel = {row_bytes}")
    buf = _as_uint8(msg.data)
    if buf.size < step * (h - 1) + row_bytes:
        raise ConversionError(f"{name}.data: {buf.size} bytes, expected {step * h} (step {step} x height {h})")
    rows = np.lib.stride_tricks.as_strided(buf, shape=(h, row_bytes), strides=(step, 1))
    big = bool(msg.is_bigendian)
    arr = rows.view(dtype.newbyteorder(">" if big else "<")).reshape(h, w, channels)
    if dtype.itemsize > 1 and big != _BIG_ENDIAN_HOST:
        arr = arr.astype(dtype)  # foreign byte order: one copy into native order
    return arr[:, :, 0] if channels == 1 else arr


def image_to_rgb(msg, name: str = "image") -> np.ndarray:
    """Colour (or mono) Image -> H x W x 3 uint8 RGB, contiguous (what `Frame.image` holds)."""
    arr = image_to_array(msg, name)
    enc = msg.encoding
    if enc == "rgb8":
        return np.ascontiguousarray(arr)
    if enc == "bgr8":
        return np.ascontiguousarray(arr[:, :, ::-1])
    if enc == "rgba8":
        return np.ascontiguousarray(arr[:, :, :3])
    if enc == "bgra8":
        return np.ascontiguousarray(arr[:, :, 2::-1])
    if enc == "mono8":
        return np.repeat(arr[:, :, None], 3, axis=2)
    if enc in ("mono16",):
        return np.repeat((arr >> 8).astype(np.uint8)[:, :, None], 3, axis=2)
    raise ConversionError(f"{name}.encoding: {enc!r} is not a colour or mono image (expected rgb8, bgr8, rgba8, "
                          f"bgra8, mono8 or mono16)")


def compressed_image_to_rgb(msg, name: str = "image") -> np.ndarray:
    """sensor_msgs/CompressedImage -> H x W x 3 uint8 RGB, decoded with OpenCV (`cv2.imdecode`). image_transport's
    compressed plugin writes format "<encoding>; jpeg compressed bgr8" (or png; colour is always BGR, mono stays
    mono; older publishers write just "jpeg" / "png"); OpenCV decodes every such variant to BGR. A compressedDepth
    image is not a colour image and is refused."""
    fmt = str(msg.format)
    if "compresseddepth" in fmt.lower():
        raise ConversionError(f"{name}.format: {fmt!r} is a compressed depth image, not a colour image")
    buf = _as_uint8(msg.data)
    if buf.size == 0:
        raise ConversionError(f"{name}.data: empty compressed image")
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        raise ConversionError(f"{name}.data: OpenCV cannot decode this {fmt or 'compressed'} image ({buf.size} bytes; "
                              "corrupt or truncated?)")
    return np.ascontiguousarray(bgr[:, :, ::-1])


#: message types a camera image may come in (`image_message_to_rgb` decodes both)
IMAGE_MSGTYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")


def compressed_image(rgb: np.ndarray, fmt: str = "jpeg", header=None, types: MessageTypes = RCLPY):
    """H x W x 3 uint8 RGB -> CompressedImage as image_transport's compressed plugin writes it ("rgb8; jpeg
    compressed bgr8" or "rgb8; png compressed bgr8")."""
    if fmt not in ("jpeg", "png"):
        raise ConversionError(f"format: expected jpeg or png, got {fmt!r}")
    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", np.ascontiguousarray(np.asarray(rgb)[:, :, ::-1]))
    if not ok:
        raise ConversionError(f"image: OpenCV cannot encode it as {fmt}")
    return types("sensor_msgs/msg/CompressedImage",
                 header=header if header is not None else make_header(0, "", types),
                 format=f"rgb8; {fmt} compressed bgr8", data=buf.reshape(-1))


def array_to_image(arr: np.ndarray, encoding: str, header=None, types: MessageTypes = RCLPY):
    """H x W (x C) array -> Image with `encoding`, tightly packed rows, host byte order."""
    if encoding not in IMAGE_ENCODINGS:
        raise ConversionError(f"encoding: unsupported {encoding!r}; supported: {', '.join(IMAGE_ENCODINGS)}")
    dtype, channels = IMAGE_ENCODINGS[encoding]
    arr = np.asarray(arr)
    shape_ok = (arr.ndim == 2 and channels == 1) or (arr.ndim == 3 and arr.shape[2] == channels)
    if not shape_ok:
        raise ConversionError(f"array: shape {arr.shape} does not fit encoding {encoding} ({channels} channel(s))")
    if arr.dtype != dtype:
        raise ConversionError(f"array: dtype {arr.dtype} does not fit encoding {encoding} ({dtype})")
    return types("sensor_msgs/msg/Image", header=header if header is not None else make_header(0, "", types),
                 height=int(arr.shape[0]), width=int(arr.shape[1]), encoding=encoding,
                 is_bigendian=int(_BIG_ENDIAN_HOST), step=int(arr.shape[1] * channels * dtype.itemsize),
                 data=np.ascontiguousarray(arr).reshape(-1).view(np.uint8))


def prior_from_image(msg, name: str = "prior") -> np.ndarray:
    """Relative inverse depth Image (32FC1) -> H x W float32 (a view when possible)."""
    if msg.encoding != "32FC1":
        raise ConversionError(f"{name}.encoding: expected 32FC1 relative inverse depth, got {msg.encoding!r}")
    return image_to_array(msg, name)


def depth_from_image(msg, name: str = "depth") -> np.ndarray:
    """Depth Image (32FC1 metres, NaN = none; what racalnet_node publishes) -> H x W float32."""
    if msg.encoding != "32FC1":
        raise ConversionError(f"{name}.encoding: expected 32FC1 depth in metres, got {msg.encoding!r}")
    return image_to_array(msg, name)


# ---------------------------------------------------------------------------------------------------- point clouds
def pointcloud2_dtype(msg, name: str = "cloud") -> np.dtype:
    """The structured dtype of one point (all fields, their offsets, itemsize = point_step, message byte order)."""
    order = ">" if msg.is_bigendian else "<"
    names, formats, offsets = [], [], []
    for f in msg.fields:
        if int(f.datatype) not in POINTFIELD_DTYPES:
            raise ConversionError(f"{name}.fields[{f.name}].datatype: unknown PointField datatype {f.datatype}")
        if f.name in names:
            raise ConversionError(f"{name}.fields: duplicate field {f.name!r}")
        base = POINTFIELD_DTYPES[int(f.datatype)].newbyteorder(order)
        count = max(int(f.count), 1)
        names.append(f.name)
        formats.append(base if count == 1 else np.dtype((base, (count,))))
        offsets.append(int(f.offset))
        end = int(f.offset) + base.itemsize * count
        if end > msg.point_step:
            raise ConversionError(f"{name}.fields[{f.name}]: ends at byte {end}, beyond point_step {msg.point_step}")
    return np.dtype({"names": names, "formats": formats, "offsets": offsets, "itemsize": int(msg.point_step)})


def point_count(msg) -> int:
    """Number of points of a PointCloud2 (width x height)."""
    return int(msg.width) * int(msg.height)


def pointcloud2_to_array(msg, field_names: Optional[Sequence[str]] = None, skip_nans: bool = True,
                         name: str = "cloud") -> np.ndarray:
    """PointCloud2 -> structured array (N,) with `field_names` (default: all fields), in native byte order.

    Rows padded beyond width * point_step (row_step) are handled; points with NaN/inf in any selected float field
    are dropped when `skip_nans`. Raises ConversionError naming a missing field and listing the available ones.
    """
    dtype = pointcloud2_dtype(msg, name)
    if field_names is None:
        field_names = list(dtype.names or ())
    missing = [f for f in field_names if f not in (dtype.names or ())]
    if missing:
        raise ConversionError(f"{name}: missing field(s) {missing}; the cloud has {list(dtype.names or ())}")
    h, w, ps, rs = int(msg.height), int(msg.width), int(msg.point_step), int(msg.row_step)
    n = h * w
    buf = _as_uint8(msg.data)
    if n == 0:
        pts = np.zeros(0, dtype)
    else:
        if ps <= 0:
            raise ConversionError(f"{name}.point_step: must be positive, got {ps}")
        if rs < w * ps:
            raise ConversionError(f"{name}.row_step: {rs} is less than width * point_step = {w * ps}")
        if buf.size < rs * (h - 1) + w * ps:
            raise ConversionError(f"{name}.data: {buf.size} bytes, expected {rs * h} (row_step {rs} x height {h})")
        if rs == w * ps or h == 1:
            pts = np.frombuffer(buf.data, dtype=dtype, count=n)  # zero-copy view
        else:  # padded rows: drop the padding (one copy)
            rows = np.lib.stride_tricks.as_strided(buf, shape=(h, w * ps), strides=(rs, 1))
            pts = np.ascontiguousarray(rows).view(dtype).reshape(n)
    out_dtype = np.dtype([(f, dtype.fields[f][0].newbyteorder("=")) for f in field_names])
    out = np.empty(len(pts), out_dtype)
    for f in field_names:
        out[f] = pts[f]
    if skip_nans and len(out):
        ok = np.ones(len(out), bool)
        for f in field_names:
            if out.dtype[f].base.kind == "f":
                col = out[f]
                ok &= np.isfinite(col) if col.ndim == 1 else np.isfinite(col).all(axis=1)
        if not ok.all():
            out = out[ok]
    return out


def pointcloud2_to_columns(msg, field_names: Sequence[str], name: str = "cloud") -> np.ndarray:
    """PointCloud2 -> N x len(field_names) float32, the named (scalar) fields in order; points with NaN/inf in any
    of them dropped. ConversionError naming a missing field and listing the available ones."""
    pts = pointcloud2_to_array(msg, list(field_names), skip_nans=True, name=name)
    out = np.empty((len(pts), len(field_names)), np.float32)
    for i, f in enumerate(field_names):
        col = pts[f]
        if col.ndim != 1:
            raise ConversionError(f"{name}.fields[{f}]: count must be 1 for a column")
        out[:, i] = col
    return out


def radar_from_pointcloud2(msg, field_map: Mapping[str, str],
                           name: str = "radar") -> tuple[np.ndarray, tuple[str, ...], int]:
    """Radar cloud -> (N x C float32, canonical column names, number of NaN points dropped).

    `field_map` maps canonical names (x, y, z, doppler, power) to the cloud's field names; an empty value means
    "not used" (x, y, z are required). Columns come out as x, y, z, then the optional ones in canonical order.
    """
    canon = [c for c in RADAR_XYZ + RADAR_OPTIONAL if field_map.get(c, "")]
    for c in RADAR_XYZ:
        if c not in canon:
            raise ConversionError(f"radar.field.{c}: must name a field of the radar cloud")
    src = [field_map[c] for c in canon]
    dtype = pointcloud2_dtype(msg, name)
    avail = list(dtype.names or ())
    missing = [(c, s) for c, s in zip(canon, src) if s not in avail]
    if missing:
        desc = ", ".join(f"radar.field.{c}={s!r}" for c, s in missing)
        raise ConversionError(f"{name}: cloud has no field for {desc}; available fields: {avail}")
    radar = pointcloud2_to_columns(msg, src, name=name)
    return radar, tuple(canon), point_count(msg) - len(radar)


def array_to_pointcloud2(columns: Mapping[str, np.ndarray], header=None, types: MessageTypes = RCLPY):
    """Columns of equal length (name -> N values) -> unorganised PointCloud2 (height 1) with float32 fields;
    `is_dense` is true only when no value is NaN or infinite (readers such as sensor_msgs_py's
    read_points(skip_nans=True) filter only clouds that say they are not dense)."""
    names = list(columns)
    n = len(next(iter(columns.values()))) if names else 0
    for k in names:
        if np.asarray(columns[k]).shape != (n,):
            raise ConversionError(f"columns[{k}]: expected shape ({n},), got {np.asarray(columns[k]).shape}")
    arr = np.empty(n, np.dtype([(k, "<f4") for k in names]))
    for k in names:
        arr[k] = columns[k]
    fields = [types("sensor_msgs/msg/PointField", name=k, offset=4 * i, datatype=FLOAT32, count=1)
              for i, k in enumerate(names)]
    return types("sensor_msgs/msg/PointCloud2", header=header if header is not None else make_header(0, "", types),
                 height=1, width=n, fields=fields, is_bigendian=False, point_step=4 * len(names),
                 row_step=4 * len(names) * n, data=arr.view(np.uint8).reshape(-1),
                 is_dense=bool(all(np.isfinite(arr[k]).all() for k in names)))


# ------------------------------------------------------------------------------------------------------- cameras
#: distortion_model -> accepted numbers of coefficients (OpenCV order k1, k2, p1, p2, k3[, k4, k5, k6]).
DISTORTION_MODELS = {"plumb_bob": (4, 5), "rational_polynomial": (8,)}


def camera_info_to_model(msg, name: str = "camera_info") -> CameraModel:
    """CameraInfo -> CameraModel (K, OpenCV distortion; R and P are not used: images here are unrectified). All-zero
    D (or none) means no distortion (kept as given when OpenCV takes that many coefficients)."""
    K = np.asarray(msg.k, dtype=np.float64).reshape(3, 3)
    if not np.any(K):
        raise ConversionError(f"{name}.k: all zeros (uncalibrated camera)")
    d = np.asarray(msg.d, dtype=np.float64).reshape(-1)
    model = msg.distortion_model
    if d.size == 0 or not np.any(d):
        dist = d if d.size in (4, 5, 8, 12, 14) else np.zeros(0)
        model = model if model in DISTORTION_MODELS else "plumb_bob"
    elif model in DISTORTION_MODELS:
        if d.size not in DISTORTION_MODELS[model]:
            raise ConversionError(f"{name}.d: {model} expects {' or '.join(map(str, DISTORTION_MODELS[model]))} "
                                  f"coefficients, got {d.size}")
        dist = d
    else:
        raise ConversionError(f"{name}.distortion_model: unsupported {model!r} with non-zero D; "
                              f"supported: {', '.join(DISTORTION_MODELS)}")
    try:
        return CameraModel(K, int(msg.width), int(msg.height), dist, model)
    except FrameError as e:
        raise ConversionError(f"{name}: {e}") from None


def camera_model_to_info(camera: CameraModel, header=None, types: MessageTypes = RCLPY):
    """CameraModel -> CameraInfo (R = identity, P = [K | 0]: a monocular, unrectified camera)."""
    P = np.zeros((3, 4))
    P[:, :3] = camera.K
    roi = types("sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
    return types("sensor_msgs/msg/CameraInfo", header=header if header is not None else make_header(0, "", types),
                 height=camera.height, width=camera.width, distortion_model=camera.distortion_model,
                 d=camera.dist.astype(np.float64), k=camera.K.astype(np.float64).reshape(-1),
                 r=np.eye(3).reshape(-1), p=P.reshape(-1), binning_x=0, binning_y=0, roi=roi)


# ----------------------------------------------------------------------------------------------------- transforms
def transform_to_matrix(tf) -> np.ndarray:
    """geometry_msgs/Transform -> 4x4 (child-frame points -> parent frame)."""
    from transforms3d.quaternions import quat2mat

    q = tf.rotation
    T = np.eye(4)
    T[:3, :3] = quat2mat([q.w, q.x, q.y, q.z])
    T[:3, 3] = [tf.translation.x, tf.translation.y, tf.translation.z]
    return T


def matrix_to_transform_stamped(T_parent_child: np.ndarray, parent: str, child: str, stamp_ns: int,
                                types: MessageTypes = RCLPY):
    """4x4 T (child-frame points -> parent frame) -> geometry_msgs/TransformStamped (tf2: child's pose in parent)."""
    from transforms3d.quaternions import mat2quat

    T = np.asarray(T_parent_child, dtype=np.float64)
    w, x, y, z = mat2quat(T[:3, :3])
    tf = types("geometry_msgs/msg/Transform",
               translation=types("geometry_msgs/msg/Vector3", x=float(T[0, 3]), y=float(T[1, 3]), z=float(T[2, 3])),
               rotation=types("geometry_msgs/msg/Quaternion", x=float(x), y=float(y), z=float(z), w=float(w)))
    return types("geometry_msgs/msg/TransformStamped", header=make_header(stamp_ns, parent, types),
                 child_frame_id=child, transform=tf)


def tf_message(transforms: Sequence[Any], types: MessageTypes = RCLPY):
    return types("tf2_msgs/msg/TFMessage", transforms=list(transforms))


# --------------------------------------------------------------------------------------------------------- frames
def image_message_to_rgb(msg, name: str = "image") -> np.ndarray:
    """Image (any encoding of `image_to_rgb`) or CompressedImage -> H x W x 3 uint8 RGB."""
    if hasattr(msg, "encoding"):
        return image_to_rgb(msg, name)
    return compressed_image_to_rgb(msg, name)


def messages_to_frame(image, cloud, info, T_cam_radar: np.ndarray,
                      field_map: Mapping[str, str], prior=None) -> tuple[Frame, int]:
    """Synced messages (image: Image or CompressedImage) -> (Frame, NaN radar points dropped). Raises
    ConversionError / FrameError naming the field. The node and the bag reader (ros/bag_frames.py) both build their
    frames here."""
    camera = camera_info_to_model(info)
    size = (camera.width, camera.height)
    if hasattr(image, "encoding") and (int(image.width), int(image.height)) != size:  # before decoding
        raise ConversionError(f"image: size {image.width}x{image.height} differs from camera_info's "
                              f"{camera.width}x{camera.height}")
    rgb = image_message_to_rgb(image)
    if rgb.shape[1::-1] != size:
        raise ConversionError(f"image: size {rgb.shape[1]}x{rgb.shape[0]} differs from camera_info's "
                              f"{camera.width}x{camera.height}")
    radar, names, dropped = radar_from_pointcloud2(cloud, field_map)
    prior_arr = None
    if prior is not None:
        prior_arr = prior_from_image(prior)
        if prior_arr.shape != rgb.shape[:2]:
            raise ConversionError(f"prior: size {prior.width}x{prior.height} differs from the image's "
                                  f"{rgb.shape[1]}x{rgb.shape[0]}")
    stamp = stamp_to_sec(image.header.stamp)
    frame = Frame(image=rgb, camera=camera, radar=radar, T_cam_radar=T_cam_radar, radar_fields=names,
                  prior=prior_arr, stamp=stamp, frame_id=f"{image.header.frame_id}@{stamp:.9f}")
    return frame, dropped


def anchors_to_pointcloud2(anchors: RadarAnchors, camera: CameraModel, header=None,
                           kept_only: bool = True, types: MessageTypes = RCLPY):
    """Anchors -> PointCloud2 in the camera optical frame with float32 fields x, y, z, u, v, confidence.

    x, y, z back-project the refined pixel (u, v) at the radar depth (recalibration moves pixels, not depth), undoing
    the lens distortion, so the points lie on the rays rviz draws through the image.
    """
    k = anchors.kept if kept_only else np.ones(len(anchors), bool)
    uv = anchors.uv[k].astype(np.float64)
    d = anchors.depth[k].astype(np.float64)
    if len(uv) and camera.has_distortion:
        xn = cv2.undistortPoints(uv.reshape(-1, 1, 2), camera.K, camera.dist).reshape(-1, 2)
    elif len(uv):
        xn = (uv - camera.K[:2, 2]) / np.diag(camera.K)[:2]
    else:
        xn = np.zeros((0, 2))
    return array_to_pointcloud2({"x": xn[:, 0] * d, "y": xn[:, 1] * d, "z": d, "u": uv[:, 0], "v": uv[:, 1],
                                 "confidence": anchors.confidence[k]}, header, types)
