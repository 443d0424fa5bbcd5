"""Node overhead per frame at 640x480, without the pipeline: what racalnet_node adds around `Pipeline.run`.

Stages (each timed separately, median over repetitions):
  sync         ApproximateTimeSync.add for radar + image + camera_info (+ prior) of one frame
  convert_in   Image (bgr8) + PointCloud2 (N radar points, 5 fields, some NaN) + CameraInfo + prior (32FC1) -> Frame
  build_out    depth/image (32FC1), anchors PointCloud2 (back-projected), depth/colored (turbo rgb8) messages
  publish      rclpy publish of those three messages + camera_info (serialisation into Fast DDS, no subscriber)
  node_total   sync + convert_in + build_out + publish
and, for the end-to-end picture, `Pipeline.run` on the same frame (raw radar anchors, prior from the topic; and with
the recalibration network when a checkpoint is available).

    racalnet bench --what node            # add --live to also run the node through DDS (measure_live)
    racalnet bench --what node --live 30 --points 1000 --threads 1    # live rows: pipeline_overlap false / true
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from . import median_ms

W, H = 640, 480
NUM_RADAR = 300


def _scene(seed: int = 0, num_radar: int = NUM_RADAR):
    """640x480 bgr image, a slanted-wall prior, radar points on the wall (radar frame: x forward, y left, z up)."""
    rng = np.random.default_rng(seed)
    v, u = np.mgrid[0:H, 0:W].astype(np.float32)
    inv = 1 / 40 + (1 / 5 - 1 / 40) * (0.6 * u / W + 0.4 * v / H)
    prior = (2.0 * inv + 0.05).astype(np.float32)
    image = rng.integers(0, 255, (H, W, 3), dtype=np.uint8)
    K = np.array([[500.0, 0, W / 2], [0, 500.0, H / 2], [0, 0, 1]])
    pu, pv = rng.uniform(0, W - 1, num_radar), rng.uniform(0, H - 1, num_radar)
    z = 1.0 / (1 / 40 + (1 / 5 - 1 / 40) * (0.6 * pu / W + 0.4 * pv / H))
    x, y = (pu - K[0, 2]) / K[0, 0] * z, (pv - K[1, 2]) / K[1, 1] * z
    radar = np.stack([z, -x, -y, rng.normal(0, 2, num_radar), rng.uniform(0, 30, num_radar)], 1).astype(np.float32)
    radar[:5] = np.nan  # a few invalid returns, dropped by the conversion
    return image, prior, radar, K


def run(device: str = "cpu", quick: bool = False) -> list[dict]:
    from ..frame import CameraModel, RadarAnchors
    from ..geometry import project_to_image
    from ..metric_depth.output import colorize_depth, draw_colour_bar
    from ..ros import convert
    from ..ros.params import RADAR_TO_OPTICAL
    from ..ros.sync import ApproximateTimeSync

    reps = 20 if quick else 100
    image, prior, radar, K = _scene()
    T = np.array(RADAR_TO_OPTICAL).reshape(4, 4)
    fields = {"x": "x", "y": "y", "z": "z", "doppler": "doppler", "power": "power"}
    header = convert.make_header(10**9, "camera_optical")
    img_msg = convert.array_to_image(np.ascontiguousarray(image), "bgr8", header)
    cloud_msg = convert.array_to_pointcloud2({n: radar[:, i] for i, n in enumerate(fields)}, header)
    info_msg = convert.camera_model_to_info(CameraModel(K, W, H, np.zeros(5)), header)
    prior_msg = convert.array_to_image(prior, "32FC1", header)

    frame, _ = convert.messages_to_frame(img_msg, cloud_msg, info_msg, T, fields, prior_msg)
    p = project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    anchors = RadarAnchors.from_raw(p.index, p.uv, p.depth)
    depth = (1.0 / inv_depth(prior)).astype(np.float32)

    sync = ApproximateTimeSync(4, queue_size=10, slop=0.05)
    counter = [0]

    def do_sync():
        counter[0] += 100_000_000  # 0.1 s in ns
        for i, m in enumerate((cloud_msg, img_msg, info_msg, prior_msg)):
            sync.add(i, counter[0], m)

    def convert_in():
        return convert.messages_to_frame(img_msg, cloud_msg, info_msg, T, fields, prior_msg)

    def build_out():
        return (convert.array_to_image(depth, "32FC1", header),
                convert.anchors_to_pointcloud2(anchors, frame.camera, header),
                convert.array_to_image(draw_colour_bar(colorize_depth(depth)), "rgb8", header))

    params = {"size": f"{W}x{H}", "radar_points": NUM_RADAR, "anchors": len(anchors)}
    rows = [
        {"name": "sync (4 inputs)", "ms": median_ms(do_sync, repeat=reps, warmup=3), **params},
        {"name": "convert_in (image+cloud+info+prior -> Frame)", "ms": median_ms(convert_in, reps, warmup=3),
         **params},
        {"name": "build_out (depth 32FC1 + anchors + colored rgb8)", "ms": median_ms(build_out, reps, warmup=3),
         **params},
    ]
    rows.append({"name": "publish (rclpy, 4 messages, no subscriber)", "ms": _publish_ms(build_out(), info_msg, reps),
                 **params})
    rows.append({"name": "node_total (overhead per frame)", "ms": sum(r["ms"] for r in rows), **params})

    rows += _pipeline_rows(frame, device, max(3, reps // 10), params)
    return rows


def inv_depth(prior: np.ndarray) -> np.ndarray:
    """The bench scene's true inverse depth from its prior (prior = 2 * inv + 0.05)."""
    return (prior - 0.05) / 2.0


def _publish_ms(msgs, info_msg, reps: int):
    """Median time to publish the outputs through rclpy + Fast DDS (loopback-only env, own context)."""
    import rclpy
    from rclpy.context import Context
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from ..ros.dds import apply_local_ros_env

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

        ms = median_ms(publish, repeat=reps, warmup=3)
        node.destroy_node()
        return ms
    finally:
        rclpy.shutdown(context=ctx)


def _pipeline_rows(frame, device: str, reps: int, params: dict) -> list[dict]:
    """End-to-end reference: Pipeline.run on the same frame (not node overhead), with raw anchors and with the
    shipped recalibration checkpoint."""
    from ..pipeline import Pipeline, PipelineConfig

    rows = []
    configs = [("pipeline.run (raw anchors, topic prior)", {"recalibration.enabled": False}),
               ("pipeline.run (recalibration small, shipped checkpoint, topic prior)", {"recalibration.enabled": True})]
    for name, over in configs:
        cfg = PipelineConfig.from_flat({"prior.source": "frame", "device": device, **over})
        pipe = Pipeline.from_config(cfg)
        stage_times: list[dict] = []
        total = median_ms(lambda: stage_times.append(pipe.run(frame).diagnostics.get("times_ms", {})),
                          repeat=reps, warmup=1)
        rows.append({"name": name, "ms": total, **params, "device": device})
        for stage in ("recalibrate", "align", "refine", "smooth"):
            vals = [float(t[stage]) for t in stage_times[1:] if stage in t]  # [1:]: skip the warm-up run
            if vals:
                rows.append({"name": f"  stage {stage}", "ms": statistics.median(vals), **params, "device": device})
    return rows


def measure_live_overlap(seconds: float = 20.0, rate_hz: float = 20.0, params: dict | None = None,
                         num_radar: int = NUM_RADAR) -> list[dict]:
    """`measure_live` twice, with the node's two-stage overlap off then on (`pipeline_overlap`), same frames."""
    return [measure_live(seconds, rate_hz, {**(params or {}), "pipeline_overlap": overlap}, num_radar)
            for overlap in (False, True)]


def measure_live(seconds: float = 20.0, rate_hz: float = 20.0, params: dict | None = None,
                 num_radar: int = NUM_RADAR) -> dict:
    """End-to-end through DDS: start racalnet_node with the harness (loopback, own domain, own process group),
    publish the 640x480 bench frame (`num_radar` radar points) at `rate_hz` for `seconds`, and report the output
    rate, the publish -> depth/image latency (wall clock, median, 90th and 95th percentile) and, from the node's last
    /diagnostics, its drop counter, its per-stage latencies of the last frame and `pipeline_overlap`."""
    import tempfile

    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2

    from ..frame import CameraModel
    from ..ros import convert
    from ..ros.dds import apply_local_ros_env, default_domain_id
    from ..ros.harness import NodeProcess

    params = {"prior.source": "topic", "recalibration.enabled": False, "device": "cpu", **(params or {})}
    domain = default_domain_id()
    log_dir = tempfile.mkdtemp(prefix="racalnet_bench_")
    apply_local_ros_env(domain, log_dir)
    image, prior, radar, K = _scene(num_radar=num_radar)
    fields = ("x", "y", "z", "doppler", "power")
    camera = CameraModel(K, W, H, np.zeros(5))
    ctx = Context()
    rclpy.init(context=ctx)
    try:
        with NodeProcess(params, log_dir=log_dir, domain_id=domain) as proc:
            node = rclpy.create_node("racalnet_bench_live", context=ctx)
            pubs = {k: node.create_publisher(t, k, qos_profile_sensor_data) for k, t in
                    (("radar/points", PointCloud2), ("image", Image), ("camera_info", CameraInfo),
                     ("prior/inverse_depth", Image))}
            sent: dict[float, float] = {}
            received: list[tuple[float, float]] = []
            diags: list = []
            node.create_subscription(Image, "depth/image", lambda m: received.append(
                (convert.stamp_to_sec(m.header.stamp), time.monotonic())), 10)
            node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diags.append(m), 10)
            ex = SingleThreadedExecutor(context=ctx)
            ex.add_node(node)
            bgr = np.ascontiguousarray(image[:, :, ::-1])

            def publish(stamp: float) -> None:
                ns = int(round(stamp * 1e9))
                h = convert.make_header(ns, "camera_optical_frame")
                pubs["radar/points"].publish(convert.array_to_pointcloud2(
                    {n: radar[:, i] for i, n in enumerate(fields)}, convert.make_header(ns, "radar")))
                pubs["camera_info"].publish(convert.camera_model_to_info(camera, h))
                pubs["prior/inverse_depth"].publish(convert.array_to_image(prior, "32FC1", h))
                pubs["image"].publish(convert.array_to_image(bgr, "bgr8", h))
                sent[round(stamp, 6)] = time.monotonic()

            proc.wait_ready(120)
            deadline = time.monotonic() + 60  # its diagnostics arrive: it is up and matched on DDS
            while not diags and time.monotonic() < deadline:
                proc.check_alive()
                ex.spin_once(timeout_sec=0.1)
            t0 = time.monotonic()
            k = 0
            while time.monotonic() - t0 < seconds:
                if time.monotonic() >= t0 + k / rate_hz:
                    publish(1000.0 + k / rate_hz)
                    k += 1
                ex.spin_once(timeout_sec=0.002)
            end = time.monotonic() + 3.0
            while time.monotonic() < end:
                ex.spin_once(timeout_sec=0.05)
            lat = sorted((t - sent[round(s, 6)]) * 1e3 for s, t in received if round(s, 6) in sent)
            values = {kv.key: kv.value for a in diags[-1:] for st in a.status for kv in st.values}
            pct = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] if lat else float("nan")  # noqa: E731
            return {"name": f"live: node on DDS, 640x480, {num_radar} radar points, pipeline_overlap "
                            f"{values.get('pipeline_overlap', '?')}", "sent": k, "outputs": len(received),
                    "rate_in_hz": rate_hz, "rate_out_hz": len(received) / seconds,
                    "latency_ms_median": pct(0.5), "latency_ms_p90": pct(0.9), "latency_ms_p95": pct(0.95),
                    "dropped_busy": values.get("dropped_busy"),
                    "last_frame_ms": {k: values[f"latency/{k}"] for k in ("stage1_ms", "handoff_wait_ms", "stage2_ms",
                                                                          "total_ms") if f"latency/{k}" in values},
                    "params": params}
    finally:
        rclpy.shutdown(context=ctx)
