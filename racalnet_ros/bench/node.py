"""Node overhead per frame at 640x480, without the pipeline: what racalnet_node adds around `Pipeline.run`.

Stages (each timed separately, median over repetitions):
  sync         ApproximateTimeSync.add for radar + image + camera_info (+ prior) of one frame
  convert_in   Image (bgr8) + PointCloud2 (N radar points, 5 fields, some NaN) + CameraInfo + prior (32FC1) -> Frame
  build_out    depth/image (32FC1), anchors PointCloud2 (back-projected), depth/colored (turbo rgb8) messages
  publish      rclpy publish of those three messages + camera_info (serialisation into Fast DDS, no subscriber)
  node_total   sync + convert_in + build_out + publish
and, for the end-to-end picture, `Pipeline.run` on the same frame (raw radar anchors, prior from the topic; and with
the recalibration network when a checkpoint is available).

    racalnet bench --what node            # or: python -c "from racalnet_ros.bench.node import run; print(run())"
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

W, H = 640, 480
NUM_RADAR = 300


def _median_ms(fn: Callable[[], object], reps: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def _scene(seed: int = 0):
    """640x480 bgr image, a slanted-wall prior, radar points on the wall (radar frame: x forward, y left, z up)."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    inv = 1 / 40 + (1 / 5 - 1 / 40) * (0.6 * u / W + 0.4 * v / H)
    prior = (2.0 * inv + 0.05).astype(np.float32)
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    K = np.array([[500.0, 0, W / 2], [0, 500.0, H / 2], [0, 0, 1]])
    pu, pv = rng.uniform(0, W - 1, NUM_RADAR), rng.uniform(0, H - 1, NUM_RADAR)
    z = 1.0 / (1 / 40 + (1 / 5 - 1 / 40) * (0.6 * pu / W + 0.4 * pv / H))
    x, y = (pu - K[0, 2]) / K[0, 0] * z, (pv - K[1, 2]) / K[1, 1] * z
    radar = np.stack([z, -x, -y, rng.normal(0, 2, NUM_RADAR), rng.uniform(0, 30, NUM_RADAR)], 1).astype(np.float32)
    radar[:5] = np.nan  # a few invalid returns, dropped by the conversion
    return image, prior, radar, K


def run(device: str = "cpu", quick: bool = False) -> list[dict]:
    from builtin_interfaces.msg import Time
    from sensor_msgs.msg import CameraInfo
    from std_msgs.msg import Header

    from ..frame import RadarAnchors
    from ..geometry import project_to_image
    from ..ros import convert
    from ..ros.params import RADAR_TO_OPTICAL
    from ..ros.sync import ApproximateTimeSync

    reps = 20 if quick else 100
    image, prior, radar, K = _scene()
    T = np.array(RADAR_TO_OPTICAL).reshape(4, 4)
    fields = {"x": "x", "y": "y", "z": "z", "doppler": "doppler", "power": "power"}
    header = Header(stamp=Time(sec=1, nanosec=0), frame_id="camera_optical")
    img_msg = convert.array_to_image(np.ascontiguousarray(image), "bgr8", header)
    cloud_msg = convert.array_to_pointcloud2({n: radar[:, i] for i, n in enumerate(fields)}, header)
    info_msg = CameraInfo(header=header, width=W, height=H, distortion_model="plumb_bob", d=[0.0] * 5,
                          k=K.reshape(-1).tolist())
    prior_msg = convert.array_to_image(prior, "32FC1", header)

    frame, _ = convert.messages_to_frame(img_msg, cloud_msg, info_msg, T, fields, prior_msg)
    p = project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    anchors = RadarAnchors.from_raw(p.index, p.uv, p.depth)
    depth = (1.0 / inv_depth(prior)).astype(np.float32)

    sync = ApproximateTimeSync(4, queue_size=10, slop=0.05)
    counter = [0.0]

    def do_sync():
        counter[0] += 0.1
        for i, m in enumerate((cloud_msg, img_msg, info_msg, prior_msg)):
            sync.add(i, counter[0], m)

    def convert_in():
        return convert.messages_to_frame(img_msg, cloud_msg, info_msg, T, fields, prior_msg)

    def build_out():
        return (convert.array_to_image(depth, "32FC1", header),
                convert.anchors_to_pointcloud2(anchors, frame.camera, header),
                convert.array_to_image(convert.colorize_depth(depth), "rgb8", header))

    params = {"size": f"{W}x{H}", "radar_points": NUM_RADAR, "anchors": len(anchors)}
    rows = [
        {"name": "sync (4 inputs)", "ms": _median_ms(do_sync, reps), **params},
        {"name": "convert_in (image+cloud+info+prior -> Frame)", "ms": _median_ms(convert_in, reps), **params},
        {"name": "build_out (depth 32FC1 + anchors + colored rgb8)", "ms": _median_ms(build_out, reps), **params},
    ]
    publish_ms = _publish_ms(build_out(), info_msg, reps)
    if publish_ms is not None:
        rows.append({"name": "publish (rclpy, 4 messages, no subscriber)", "ms": publish_ms, **params})
    rows.append({"name": "node_total (overhead per frame)", "ms": sum(r["ms"] for r in rows), **params})

    rows += _pipeline_rows(frame, device, max(3, reps // 10), params)
    return rows


def inv_depth(prior: np.ndarray) -> np.ndarray:
    """The bench scene's true inverse depth from its prior (prior = 2 * inv + 0.05)."""
    return (prior - 0.05) / 2.0


def _publish_ms(msgs, info_msg, reps: int):
    """Median time to publish the outputs through rclpy + Fast DDS (loopback-only env, own context)."""
    try:
        import rclpy
        from rclpy.context import Context
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2

        from ..ros.dds import apply_local_ros_env
    except ImportError:
        return None
    apply_local_ros_env()
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        node = rclpy.create_node("racalnet_bench", context=ctx)
        pubs = [node.create_publisher(Image, "bench/depth", 5), node.create_publisher(PointCloud2, "bench/anchors", 5),
                node.create_publisher(Image, "bench/colored", 5), node.create_publisher(CameraInfo, "bench/info", 5)]
        depth_msg, anchors_msg, colored_msg = msgs

        def publish():
            pubs[0].publish(depth_msg)
            pubs[1].publish(anchors_msg)
            pubs[2].publish(colored_msg)
            pubs[3].publish(info_msg)

        ms = _median_ms(publish, reps)
        node.destroy_node()
        return ms
    finally:
        rclpy.shutdown(context=ctx)


def _pipeline_rows(frame, device: str, reps: int, params: dict) -> list[dict]:
    """End-to-end reference: Pipeline.run on the same frame (not node overhead)."""
    from ..pipeline import Pipeline, PipelineConfig

    rows = []
    configs = [("pipeline.run (raw anchors, topic prior)", {"recalibration.enabled": False})]
    try:
        from ..recalibration import default_checkpoint

        if default_checkpoint().exists():
            configs.append(("pipeline.run (recalibration, topic prior)", {"recalibration.enabled": True}))
    except Exception:  # no shipped checkpoint in this build
        pass
    for name, over in configs:
        cfg = PipelineConfig.from_flat({"prior.source": "frame", "device": device, **over})
        pipe = Pipeline.from_config(cfg)
        rows.append({"name": name, "ms": _median_ms(lambda: pipe.run(frame), reps, warmup=1), **params,
                     "device": device})
    return rows
