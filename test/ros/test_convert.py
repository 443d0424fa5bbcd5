"""sensor_msgs <-> numpy conversions: every supported encoding round-trips, row padding and byte order are honoured,
clouds keep their named fields and lose their NaN points, CameraInfo becomes the right CameraModel, and malformed
messages raise errors naming the field."""

from __future__ import annotations

import array

import numpy as np
import pytest

pytest.importorskip("sensor_msgs")

from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField  # noqa: E402

from racalnet_ros.frame import RadarAnchors  # noqa: E402
from racalnet_ros.ros import convert  # noqa: E402
from racalnet_ros.ros.convert import ConversionError  # noqa: E402

RNG = np.random.default_rng(0)


def _random(encoding: str, h: int = 7, w: int = 5) -> np.ndarray:
    dtype, c = convert.IMAGE_ENCODINGS[encoding]
    shape = (h, w) if c == 1 else (h, w, c)
    if dtype.kind == "f":
        return RNG.normal(size=shape).astype(dtype)
    return RNG.integers(0, np.iinfo(dtype).max, size=shape, dtype=dtype)


@pytest.mark.parametrize("encoding", list(convert.IMAGE_ENCODINGS))
def test_every_encoding_round_trips(encoding):
    a = _random(encoding)
    msg = convert.array_to_image(a, encoding)
    assert (msg.height, msg.width, msg.encoding) == (7, 5, encoding)
    np.testing.assert_array_equal(convert.image_to_array(msg), a)


def _padded(a: np.ndarray, encoding: str, pad: int, bigendian: bool) -> Image:
    """A message with `pad` junk bytes after every row, in the requested byte order."""
    h, w = a.shape[:2]
    data = a.astype(a.dtype.newbyteorder(">" if bigendian else "<")).reshape(h, -1).view(np.uint8)
    rows = np.concatenate([data, np.full((h, pad), 0xAB, np.uint8)], axis=1)
    msg = Image(height=h, width=w, encoding=encoding, is_bigendian=int(bigendian), step=rows.shape[1])
    msg.data = array.array("B", rows.tobytes())
    return msg


@pytest.mark.parametrize("encoding", ["rgb8", "mono16", "16UC1", "32FC1", "bgra8"])
@pytest.mark.parametrize("bigendian", [False, True])
def test_row_padding_and_byte_order_are_honoured(encoding, bigendian):
    a = _random(encoding)
    got = convert.image_to_array(_padded(a, encoding, pad=6, bigendian=bigendian))
    np.testing.assert_array_equal(got, a)
    assert got.dtype.isnative


def test_little_endian_unpadded_images_are_views_not_copies():
    msg = convert.array_to_image(_random("32FC1"), "32FC1")
    view = convert.image_to_array(msg)
    view[0, 0] = 42.0
    assert np.frombuffer(msg.data, np.float32)[0] == 42.0


@pytest.mark.parametrize("encoding, to_rgb", [
    ("rgb8", lambda a: a), ("bgr8", lambda a: a[..., ::-1]), ("rgba8", lambda a: a[..., :3]),
    ("bgra8", lambda a: a[..., 2::-1]), ("mono8", lambda a: np.repeat(a[..., None], 3, 2)),
])
def test_colour_encodings_become_rgb(encoding, to_rgb):
    a = _random(encoding)
    rgb = convert.image_to_rgb(convert.array_to_image(a, encoding))
    assert rgb.shape == (7, 5, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, to_rgb(a))


def test_unknown_encoding_and_short_data_are_rejected_naming_the_field():
    msg = convert.array_to_image(_random("rgb8"), "rgb8")
    msg.encoding = "yuv422"
    with pytest.raises(ConversionError, match="image.encoding.*yuv422"):
        convert.image_to_array(msg)
    msg = convert.array_to_image(_random("rgb8"), "rgb8")
    msg.data = msg.data[:-10]
    with pytest.raises(ConversionError, match="image.data"):
        convert.image_to_array(msg)
    msg = convert.array_to_image(_random("rgb8"), "rgb8")
    msg.step = 3
    with pytest.raises(ConversionError, match="image.step"):
        convert.image_to_array(msg)
    with pytest.raises(ConversionError, match="32FC1"):
        convert.image_to_rgb(convert.array_to_image(_random("32FC1"), "32FC1"))
    with pytest.raises(ConversionError, match="prior.encoding"):
        convert.prior_from_image(convert.array_to_image(_random("mono8"), "mono8"))


def _cloud(fields: list[tuple[str, int, int]], points: np.ndarray, point_step: int, height: int = 1,
           row_pad: int = 0, bigendian: bool = False) -> PointCloud2:
    """fields: (name, offset, datatype); points: structured array already laid out with itemsize point_step."""
    n = len(points)
    w = n // height
    raw = points.tobytes()
    rows = [raw[i * w * point_step:(i + 1) * w * point_step] + b"\x00" * row_pad for i in range(height)]
    msg = PointCloud2(height=height, width=w, point_step=point_step, row_step=w * point_step + row_pad,
                      is_bigendian=bigendian, is_dense=False,
                      fields=[PointField(name=nm, offset=o, datatype=dt, count=1) for nm, o, dt in fields])
    msg.data = array.array("B", b"".join(rows))
    return msg


def _radar_points(n: int, order: str = "<") -> np.ndarray:
    """Interleaved layout like a real driver: x y z float32, an int16 'ring', range_rate float64, rcs float32."""
    dt = np.dtype({"names": ["x", "y", "z", "ring", "range_rate", "rcs"],
                   "formats": [order + "f4"] * 3 + [order + "i2", order + "f8", order + "f4"],
                   "offsets": [0, 4, 8, 12, 16, 24], "itemsize": 32})
    p = np.zeros(n, dt)
    for k in ("x", "y", "z", "range_rate", "rcs"):
        p[k] = RNG.normal(size=n)
    p["ring"] = np.arange(n)
    return p


RADAR_FIELDS = [("x", 0, PointField.FLOAT32), ("y", 4, PointField.FLOAT32), ("z", 8, PointField.FLOAT32),
                ("ring", 12, PointField.INT16), ("range_rate", 16, PointField.FLOAT64), ("rcs", 24, PointField.FLOAT32)]
FIELD_MAP = {"x": "x", "y": "y", "z": "z", "doppler": "range_rate", "power": "rcs"}


@pytest.mark.parametrize("height, row_pad, bigendian", [(1, 0, False), (3, 8, False), (2, 0, True)],
                         ids=["flat", "organised-padded-rows", "big-endian"])
def test_radar_cloud_gives_named_columns_and_drops_nan_points(height, row_pad, bigendian):
    p = _radar_points(12, ">" if bigendian else "<")
    p["y"][[2, 7]] = np.nan
    p["range_rate"][5] = np.inf
    msg = _cloud(RADAR_FIELDS, p, 32, height=height, row_pad=row_pad, bigendian=bigendian)
    radar, names, dropped = convert.radar_from_pointcloud2(msg, FIELD_MAP)
    assert names == ("x", "y", "z", "doppler", "power")
    assert dropped == 3 and radar.shape == (9, 5) and radar.dtype == np.float32
    keep = np.setdiff1d(np.arange(12), [2, 5, 7])
    expected = np.stack([p["x"], p["y"], p["z"], p["range_rate"], p["rcs"]], 1)[keep].astype(np.float32)
    np.testing.assert_array_equal(radar, expected)


def test_unused_optional_fields_are_left_out():
    msg = _cloud(RADAR_FIELDS, _radar_points(4), 32)
    radar, names, _ = convert.radar_from_pointcloud2(msg, {**FIELD_MAP, "doppler": "", "power": ""})
    assert names == ("x", "y", "z") and radar.shape == (4, 3)


def test_a_cloud_without_a_configured_field_is_rejected_naming_it():
    msg = _cloud(RADAR_FIELDS, _radar_points(4), 32)
    with pytest.raises(ConversionError, match=r"radar.field.power='power'.*available fields.*rcs"):
        convert.radar_from_pointcloud2(msg, {**FIELD_MAP, "power": "power"})


def test_malformed_clouds_are_rejected_naming_the_field():
    msg = _cloud(RADAR_FIELDS, _radar_points(4), 32)
    msg.data = msg.data[:-1]
    with pytest.raises(ConversionError, match="radar.data"):
        convert.radar_from_pointcloud2(msg, FIELD_MAP)
    msg = _cloud(RADAR_FIELDS, _radar_points(4), 32)
    msg.fields[5].offset = 30  # float32 at 30 ends at 34 > point_step 32
    with pytest.raises(ConversionError, match="rcs"):
        convert.radar_from_pointcloud2(msg, FIELD_MAP)
    msg = _cloud(RADAR_FIELDS, _radar_points(4), 32)
    msg.fields[0].datatype = 42
    with pytest.raises(ConversionError, match="datatype"):
        convert.radar_from_pointcloud2(msg, FIELD_MAP)


def test_empty_cloud_gives_zero_rows():
    msg = _cloud(RADAR_FIELDS, _radar_points(0), 32)
    radar, names, dropped = convert.radar_from_pointcloud2(msg, FIELD_MAP)
    assert radar.shape == (0, 5) and dropped == 0


def test_array_to_pointcloud2_round_trips():
    cols = {"x": RNG.normal(size=6), "u": RNG.uniform(0, 100, 6), "confidence": RNG.uniform(size=6)}
    msg = convert.array_to_pointcloud2(cols)
    assert [f.name for f in msg.fields] == ["x", "u", "confidence"] and msg.point_step == 12
    back = convert.pointcloud2_to_array(msg)
    for k, v in cols.items():
        np.testing.assert_allclose(back[k], v.astype(np.float32))


def test_is_dense_is_true_only_without_nan_or_inf_points():
    assert convert.array_to_pointcloud2({"x": np.ones(3), "y": np.zeros(3)}).is_dense is True
    assert convert.array_to_pointcloud2({"x": np.array([1.0, np.nan]), "y": np.zeros(2)}).is_dense is False
    assert convert.array_to_pointcloud2({"x": np.ones(2), "y": np.array([0.0, np.inf])}).is_dense is False
    assert convert.array_to_pointcloud2({"x": np.zeros(0)}).is_dense is True


SENSOR_MSGS_PY = __import__("os").environ.get("RACALNET_SENSOR_MSGS_PY", "")


def test_the_real_read_points_drops_nan_points_of_our_clouds():
    """sensor_msgs_py.point_cloud2.read_points(skip_nans=True) filters only clouds with is_dense False (a ROS install,
    or RACALNET_SENSOR_MSGS_PY=<common_interfaces checkout>/sensor_msgs_py)."""
    import sys
    if SENSOR_MSGS_PY:
        sys.path.insert(0, SENSOR_MSGS_PY)
    try:
        from sensor_msgs_py import point_cloud2
    except ImportError as exc:
        pytest.skip(f"sensor_msgs_py is not importable ({exc}): it comes with a ROS install and is not on PyPI; set "
                    "RACALNET_SENSOR_MSGS_PY to the sensor_msgs_py folder of a github.com/ros2/common_interfaces "
                    "checkout")
    msg = convert.array_to_pointcloud2({"x": np.array([1.0, np.nan, 3.0]), "y": np.zeros(3), "z": np.ones(3)})
    pts = point_cloud2.read_points(msg, field_names=("x", "y", "z"), skip_nans=True)
    np.testing.assert_array_equal(pts["x"], [1.0, 3.0])


def _info(model: str, d: list[float], w: int = 640, h: int = 480) -> CameraInfo:
    K = [500.0, 0, 320, 0, 510.0, 240, 0, 0, 1]
    return CameraInfo(width=w, height=h, distortion_model=model, d=d, k=K)


def test_camera_info_becomes_a_camera_model():
    cam = convert.camera_info_to_model(_info("plumb_bob", [0.1, -0.05, 0.001, 0.002, 0.01]))
    assert (cam.width, cam.height, cam.distortion_model) == (640, 480, "plumb_bob")
    np.testing.assert_allclose(cam.K, [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    np.testing.assert_allclose(cam.dist, [0.1, -0.05, 0.001, 0.002, 0.01])
    rat = convert.camera_info_to_model(_info("rational_polynomial", [0.1, -0.05, 0.0, 0.0, 0.01, 0.2, 0.0, 0.01]))
    assert rat.dist.size == 8 and rat.has_distortion
    assert not convert.camera_info_to_model(_info("plumb_bob", [0.0] * 5)).has_distortion
    assert not convert.camera_info_to_model(_info("", [])).has_distortion


def test_bad_camera_info_is_rejected_naming_the_field():
    with pytest.raises(ConversionError, match="camera_info.d"):
        convert.camera_info_to_model(_info("rational_polynomial", [0.1] * 5))
    with pytest.raises(ConversionError, match="distortion_model.*equidistant"):
        convert.camera_info_to_model(_info("equidistant", [0.1] * 4))
    with pytest.raises(ConversionError, match="camera_info.k"):
        convert.camera_info_to_model(CameraInfo(width=4, height=4))


def test_messages_become_a_frame_and_size_mismatch_is_rejected():
    rgb = _random("rgb8", 48, 64)
    img = convert.array_to_image(rgb[..., ::-1].copy(), "bgr8")
    img.header.frame_id = "cam"
    img.header.stamp.sec, img.header.stamp.nanosec = 12, 500_000_000
    cloud = _cloud(RADAR_FIELDS, _radar_points(5), 32)
    info = _info("plumb_bob", [0.0] * 5, w=64, h=48)
    frame, dropped = convert.messages_to_frame(img, cloud, info, np.eye(4), FIELD_MAP)
    np.testing.assert_array_equal(frame.image, rgb)
    assert frame.radar_fields == ("x", "y", "z", "doppler", "power") and frame.num_radar == 5 and dropped == 0
    assert frame.stamp == pytest.approx(12.5) and frame.frame_id.startswith("cam@")
    with pytest.raises(ConversionError, match="differs from camera_info"):
        convert.messages_to_frame(img, cloud, _info("plumb_bob", [], w=640, h=480), np.eye(4), FIELD_MAP)


def test_anchors_are_back_projected_along_their_pixel_rays():
    cam = convert.camera_info_to_model(_info("plumb_bob", [0.05, -0.01, 0.0, 0.0, 0.0]))
    pts = np.array([[1.0, -0.5, 10.0], [-2.0, 1.0, 20.0], [0.3, 0.2, 5.0]])
    from racalnet_ros.geometry import project_camera_points

    uv, z = project_camera_points(pts, cam)
    anchors = RadarAnchors.from_raw(np.arange(3), uv, z)
    anchors.kept[1] = False
    back = convert.pointcloud2_to_array(convert.anchors_to_pointcloud2(anchors, cam))
    assert len(back) == 2
    xyz = np.stack([back["x"], back["y"], back["z"]], 1)
    np.testing.assert_allclose(xyz, pts[[0, 2]], atol=1e-3)  # distortion undone: the original points come back


def test_colorized_depth_is_black_where_invalid():
    from racalnet_ros.metric_depth.output import colorize_depth

    d = np.array([[1.0, 10.0], [np.nan, 0.0]], np.float32)
    c = colorize_depth(d)
    assert c.shape == (2, 2, 3) and c.dtype == np.uint8
    assert (c[1] == 0).all() and c[0].any(axis=1).all()
    assert not np.array_equal(c[0, 0], c[0, 1])
