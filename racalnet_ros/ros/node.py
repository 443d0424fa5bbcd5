"""`racalnet_node`: synced 4D radar + camera in, dense metric depth and anchors out. A thin shell around `Pipeline`.

Inputs (relative names, sensor-data QoS): radar/points (PointCloud2), image (Image), camera_info (CameraInfo) and,
with prior.source topic, prior/inverse_depth (Image 32FC1, relative inverse depth).
Outputs (reliable, depth 5, QoS overridable): depth/image (32FC1 metres, the image's header), depth/camera_info,
anchors (PointCloud2 x y z u v confidence, camera optical frame), depth/colored (rgb8), /diagnostics.

Threads: executor callbacks only stamp-check and synchronise; a synced set goes to a single-slot mailbox (the newest
wins, a replaced one is counted as dropped) that one worker thread drains: convert -> Pipeline.run -> publish.
Uses only rclpy APIs present in Humble, Jazzy and Kilted.
"""

from __future__ import annotations

import collections
import threading
import time
import traceback
from typing import Any, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..frame import FrameError
from . import convert
from .params import ParameterError, ParamSpec, all_specs, settings_from_values
from .sync import ApproximateTimeSync, LatestSlot

try:  # Galactic and newer
    from rclpy.qos_overriding_options import QoSOverridingOptions
except ImportError:  # pragma: no cover - very old rclpy
    QoSOverridingOptions = None

INPUTS = ("radar/points", "image", "camera_info", "prior/inverse_depth")
PRIOR_SOURCES_FALLBACK = ("frame", "precomputed", "depth-anything-v2")


class StartupError(RuntimeError):
    """The node cannot start (bad parameter, unusable checkpoint, missing dependency); the message says why."""


class SkipFrame(RuntimeError):
    """This synced set cannot be processed (bad input); logged, counted, and the next one is processed."""


def _descriptor(spec: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(name=spec.name, description=spec.description, read_only=True)
    v = spec.default
    if isinstance(v, list):
        # dynamic typing: YAML lists such as [1, 0, 0, ...] (ints) are accepted; length/finiteness checked later
        d.dynamic_typing = True
        d.additional_constraints = f"{spec.length} numbers" if spec.length else ""
    elif isinstance(v, float):
        # dynamic typing: "slop: 1" (an integer in YAML or on the command line) is accepted for a float parameter;
        # the type (a number) and the range are checked by params.validate_values as well
        d.dynamic_typing = True
    if spec.range is not None and isinstance(v, float):
        d.floating_point_range = [FloatingPointRange(from_value=float(spec.range[0]), to_value=float(spec.range[1]),
                                                     step=0.0)]
    elif spec.range is not None and isinstance(v, int) and not isinstance(v, bool):
        d.integer_range = [IntegerRange(from_value=int(spec.range[0]), to_value=int(spec.range[1]), step=1)]
    if spec.choices:
        d.additional_constraints = "one of: " + ", ".join(spec.choices)
    return d


class _Rate:
    """Messages per second over a sliding window of wall-clock arrival times."""

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.times: collections.deque = collections.deque()
        self.count = 0

    def tick(self, now: float) -> None:
        self.times.append(now)
        self.count += 1
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self.times and now - self.times[0] > self.window:
            self.times.popleft()

    def hz(self, now: float) -> float:
        self._trim(now)
        if len(self.times) < 2:
            return 0.0
        span = max(now - self.times[0], 1e-6)
        return (len(self.times) - 1) / span if span > 0 else 0.0

    def age(self, now: float) -> float:
        return now - self.times[-1] if self.times else float("inf")


class RacalnetNode(Node):
    """Radar recalibration + metric depth node (see module docstring)."""

    def __init__(self, node_name: str = "racalnet_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self._lock = threading.RLock()
        self.settings = self._read_parameters()
        if self.settings.cpu_threads > 0:
            import torch

            torch.set_num_threads(self.settings.cpu_threads)
        self.pipeline = self._build_pipeline()
        self._tf_buffer = self._make_tf() if self.settings.use_tf else None

        s = self.settings
        self._num_inputs = 4 if s.prior_topic else 3
        self._latest_stamp: list[Optional[float]] = [None] * self._num_inputs
        self._rates = {name: _Rate() for name in INPUTS[: self._num_inputs] + ("output",)}
        self._counts = collections.Counter(
            {k: 0 for k in ("frames", "skipped", "errors", "sync_resets", "radar_nan_dropped", "fallbacks")})
        self._problem: Optional[tuple[int, str]] = None  # worst (level, message) since the last diagnostics
        self._last: dict[str, Any] = {}
        self._mailbox = LatestSlot()
        self._logged: dict[str, float] = {}
        self._make_sync()

        for i, topic in enumerate(INPUTS[: self._num_inputs]):
            msg_type = (PointCloud2, Image, CameraInfo, Image)[i]
            self.create_subscription(msg_type, topic, lambda m, i=i: self._on_input(i, m), qos_profile_sensor_data)

        qos_out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
        kw = {}
        if QoSOverridingOptions is not None:
            kw["qos_overriding_options"] = QoSOverridingOptions.with_default_policies()
        self.pub_depth = self.create_publisher(Image, "depth/image", qos_out, **kw)
        self.pub_info = self.create_publisher(CameraInfo, "depth/camera_info", qos_out, **kw)
        self.pub_anchors = self.create_publisher(PointCloud2, "anchors", qos_out, **kw)
        self.pub_colored = (self.create_publisher(Image, "depth/colored", qos_out, **kw)
                            if s.publish_colored else None)
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", qos_out)
        self.create_timer(s.diagnostics_period, self._publish_diagnostics)

        self._worker = threading.Thread(target=self._work, name="racalnet_worker", daemon=True)
        self._worker.start()
        self.get_logger().info(
            f"racalnet_node ready on {s.device}: inputs "
            f"{', '.join(self._resolved(t) for t in INPUTS[: self._num_inputs])}; "
            f"sync queue {s.queue_size}, slop {s.slop} s; sync via {self._sync_kind}")

    # ------------------------------------------------------------------------------------------ start-up
    def _warn(self, message: str) -> None:
        logger = self.get_logger()
        getattr(logger, "warning", logger.warn)(message)  # `warning` where it exists, `warn` on older rclpy

    def _resolved(self, topic: str) -> str:
        resolve = getattr(self, "resolve_topic_name", None)
        return resolve(topic) if resolve is not None else topic

    def _read_parameters(self):
        try:
            from ..pipeline import PipelineConfig
            from .. import pipeline as pipeline_module
        except ImportError as e:
            raise StartupError(f"racalnet_ros.pipeline is not importable: {e}") from None
        flat = PipelineConfig().to_flat()
        choices = tuple(getattr(pipeline_module, "PRIOR_SOURCES", PRIOR_SOURCES_FALLBACK))
        specs = all_specs(flat, choices)
        values = {}
        errors = []
        for spec in specs:
            try:
                p = self.declare_parameter(spec.name, spec.default, _descriptor(spec))
                v = p.value
                values[spec.name] = list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v
            except ParameterException as e:
                errors.append(f"{spec.name}: {e}")
        if errors:
            raise StartupError(str(ParameterError(errors)))
        try:
            return settings_from_values(values, list(flat), specs)
        except ParameterError as e:
            raise StartupError(str(e)) from None

    def _build_pipeline(self):
        from ..pipeline import Pipeline, PipelineConfig

        flat = self.settings.pipeline_flat
        try:
            cfg = PipelineConfig.from_flat(flat)
        except (ValueError, TypeError, KeyError) as e:
            raise StartupError(f"invalid pipeline parameter: {e}") from None
        try:
            return Pipeline.from_config(cfg)
        except Exception as e:  # checkpoint missing / broken, prior model unavailable, ...
            hint = ""
            if flat.get("recalibration.enabled", True) and "recalibration.checkpoint" in flat:
                hint = f" (recalibration.checkpoint={flat['recalibration.checkpoint']!r})"
            raise StartupError(f"cannot build the pipeline{hint}: {type(e).__name__}: {e}") from None

    def _make_tf(self):
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError:
            raise StartupError("extrinsics.use_tf: true needs tf2_ros, which is not installed; set "
                               "extrinsics.T_cam_radar or extrinsics.xyz_rpy instead") from None
        buf = Buffer()
        self._tf_listener = TransformListener(buf, self)
        return buf

    def _make_sync(self) -> None:
        s = self.settings
        try:
            import message_filters
        except ImportError:
            message_filters = None
        if message_filters is not None:
            self._mf_inputs = [message_filters.SimpleFilter() for _ in range(self._num_inputs)]
            sync = message_filters.ApproximateTimeSynchronizer(self._mf_inputs, s.queue_size, s.slop)
            sync.registerCallback(self._on_synced)
            self._sync, self._sync_kind = sync, "message_filters.ApproximateTimeSynchronizer"
        else:
            self._mf_inputs = None
            self._sync = ApproximateTimeSync(self._num_inputs, s.queue_size, s.slop)
            self._sync.register_callback(self._on_synced)
            self._sync_kind = "racalnet_ros.ros.sync.ApproximateTimeSync"

    # ------------------------------------------------------------------------------------------ executor side
    def _on_input(self, index: int, msg) -> None:
        stamp = convert.stamp_to_sec(msg.header.stamp)
        now = time.monotonic()
        with self._lock:
            self._rates[INPUTS[index]].tick(now)
            last = self._latest_stamp[index]
            if last is not None and stamp < last:
                self._reset_sync(f"{INPUTS[index]} stamp jumped backwards ({last:.3f} -> {stamp:.3f} s)")
            self._latest_stamp[index] = stamp
        if self._mf_inputs is not None:
            self._mf_inputs[index].signalMessage(msg)
        else:
            self._sync.add(index, stamp, msg)

    def _reset_sync(self, why: str) -> None:
        """Bag loop or clock reset: forget queued messages (and TF history) and start over."""
        self._counts["sync_resets"] += 1
        self._latest_stamp = [None] * self._num_inputs
        if self._mf_inputs is not None:
            self._make_sync()
        else:
            self._sync.reset()
        if self._tf_buffer is not None:
            self._tf_buffer.clear()
        self._note(DiagnosticStatus.WARN, f"sync reset: {why}")
        self._warn(f"{why}; synchronisation reset")

    def _on_synced(self, *msgs) -> None:
        if self._mailbox.put(msgs):
            self.get_logger().debug("worker busy: dropped the older synced set")

    # ------------------------------------------------------------------------------------------ worker side
    def _work(self) -> None:
        while not self._mailbox.closed:
            item = self._mailbox.take(timeout=0.5)
            if item is None:
                continue
            try:
                self._process(*item)
            except SkipFrame as e:
                self._count("skipped")
                self._note(DiagnosticStatus.WARN, str(e))
                self._log_once_per(2.0, self._warn, f"frame skipped: {e}")
            except Exception as e:  # keep the node alive; the next frame may be fine
                self._count("errors")
                self._note(DiagnosticStatus.ERROR, f"{type(e).__name__}: {e}")
                self._log_once_per(2.0, self.get_logger().error, f"frame failed: {type(e).__name__}: {e}",
                                   traceback.format_exc())

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def _log_once_per(self, period: float, log, message: str, detail: str = "") -> None:
        """Log `message` unless the same message was logged less than `period` s ago (a replayed bag repeats the
        same fault every frame; a new fault is always logged at once)."""
        now = time.monotonic()
        with self._lock:  # called from the worker and from the diagnostics timer
            due = now - self._logged.get(message, -1e9) >= period
            if due:
                if len(self._logged) > 256:
                    self._logged.clear()
                self._logged[message] = now
        if due:
            log(message + (f"\n{detail}" if detail else ""))

    def _extrinsics(self, cloud: PointCloud2, image: Image) -> np.ndarray:
        if self._tf_buffer is None:
            return self.settings.T_cam_radar
        from rclpy.duration import Duration
        from rclpy.time import Time
        from transforms3d.quaternions import quat2mat

        try:
            tf = self._tf_buffer.lookup_transform(image.header.frame_id, cloud.header.frame_id,
                                                  Time.from_msg(cloud.header.stamp), timeout=Duration(seconds=0.1))
        except Exception as e:  # tf2 LookupException / ExtrapolationException / ConnectivityException
            raise SkipFrame(f"transform {cloud.header.frame_id!r} -> {image.header.frame_id!r} not found: {e}")
        q, t = tf.transform.rotation, tf.transform.translation
        T = np.eye(4)
        T[:3, :3] = quat2mat([q.w, q.x, q.y, q.z])
        T[:3, 3] = [t.x, t.y, t.z]
        return T

    def _process(self, cloud: PointCloud2, image: Image, info: CameraInfo, prior: Optional[Image] = None) -> None:
        s = self.settings
        t0 = time.perf_counter()
        T = self._extrinsics(cloud, image)
        try:
            frame, nan_dropped = convert.messages_to_frame(image, cloud, info, T, s.field_map, prior)
        except (convert.ConversionError, FrameError) as e:
            raise SkipFrame(str(e)) from None
        if nan_dropped:
            self._count("radar_nan_dropped", nan_dropped)
        if frame.num_radar == 0:
            raise SkipFrame(f"radar cloud is empty (after dropping {nan_dropped} NaN point(s))")
        t1 = time.perf_counter()
        result = self.pipeline.run(frame)
        t2 = time.perf_counter()

        header = image.header
        depth = np.asarray(result.depth, dtype=np.float32)
        self.pub_depth.publish(convert.array_to_image(depth, "32FC1", header))
        info.header = header
        self.pub_info.publish(info)
        self.pub_anchors.publish(convert.anchors_to_pointcloud2(result.anchors, frame.camera, header))
        if self.pub_colored is not None:
            coloured = convert.colorize_depth(depth, max_depth=s.colored_max_depth)
            self.pub_colored.publish(convert.array_to_image(coloured, "rgb8", header))
        t3 = time.perf_counter()

        diag = result.diagnostics or {}
        with self._lock:
            self._counts["frames"] += 1
            self._rates["output"].tick(time.monotonic())
            self._last = {
                "convert_in_ms": (t1 - t0) * 1e3, "pipeline_ms": (t2 - t1) * 1e3, "publish_ms": (t3 - t2) * 1e3,
                "total_ms": (t3 - t0) * 1e3, "stages_ms": dict(diag.get("times_ms", {})),
                "anchors_total": diag.get("anchors_total", len(result.anchors)),
                "anchors_kept": diag.get("anchors_kept", result.anchors.num_kept),
                "fallbacks": list(diag.get("fallbacks", [])), "scale": diag.get("scale"), "shift": diag.get("shift"),
            }
            if self._last["fallbacks"]:
                self._counts["fallbacks"] += 1
        if self._last["fallbacks"]:
            self._note(DiagnosticStatus.WARN, "fallbacks: " + ", ".join(map(str, self._last["fallbacks"])))

    # ------------------------------------------------------------------------------------------ diagnostics
    def _note(self, level: bytes, message: str) -> None:
        with self._lock:
            if self._problem is None or level > self._problem[0]:
                self._problem = (level, message)

    def _publish_diagnostics(self) -> None:
        now = time.monotonic()
        with self._lock:
            problem, self._problem = self._problem, None
            counts, last = dict(self._counts), dict(self._last)
            rates = {k: r.hz(now) for k, r in self._rates.items()}
            ages = {k: r.age(now) for k, r in self._rates.items()}
            counts["dropped_busy"] = self._mailbox.dropped
        # an input that stays silent while the image flows blocks synchronisation: say which
        silent = max(2.0, 5.0 * self.settings.diagnostics_period)
        missing = [k for k in INPUTS[: self._num_inputs] if k != "image" and ages["image"] < 1.0 and ages[k] > silent]
        level, message = DiagnosticStatus.OK, "ok"
        if missing:
            level = DiagnosticStatus.WARN
            message = "no messages on " + ", ".join(self._resolved(k) for k in missing)
            self._log_once_per(10.0, self._warn, message + " while images arrive; nothing can be synchronised")
        if problem is not None and problem[0] >= level:
            level, message = problem
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: pipeline", message=message,
                                  hardware_id=self.settings.device)
        kv = [(f"rate_in/{k} (Hz)", f"{rates[k]:.2f}") for k in INPUTS[: self._num_inputs]]
        kv.append(("rate_out (Hz)", f"{rates['output']:.2f}"))
        kv += [(k, str(v)) for k, v in sorted(counts.items())]
        for k in ("convert_in_ms", "pipeline_ms", "publish_ms", "total_ms"):
            if k in last:
                kv.append((f"latency/{k}", f"{last[k]:.2f}"))
        for k, v in last.get("stages_ms", {}).items():
            kv.append((f"latency/stage/{k}_ms", f"{float(v):.2f}"))
        for k in ("anchors_total", "anchors_kept", "scale", "shift"):
            if last.get(k) is not None:
                kv.append((k, f"{last[k]:.4g}" if isinstance(last[k], float) else str(last[k])))
        if last.get("fallbacks"):
            kv.append(("fallbacks_last", ", ".join(map(str, last["fallbacks"]))))
        status.values = [KeyValue(key=k, value=v) for k, v in kv]
        arr = DiagnosticArray(status=[status])
        arr.header.stamp = self.get_clock().now().to_msg()
        self.pub_diag.publish(arr)

    def destroy_node(self) -> None:
        # also called by rclpy's context shutdown on a node whose __init__ failed part-way
        if getattr(self, "_mailbox", None) is not None:
            self._mailbox.close()
        worker = getattr(self, "_worker", None)
        if worker is not None and worker.is_alive():
            worker.join(timeout=5.0)
        super().destroy_node()


def main(args: Optional[list[str]] = None) -> int:
    """Entry point of `racalnet_node` (console script) and `python -m racalnet_ros.node`."""
    import sys

    from rclpy.executors import ExternalShutdownException

    try:
        rclpy.init(args=args)
    except Exception as e:  # rcl rejects malformed --ros-args (e.g. a list mixing ints and floats)
        print(f"[racalnet_node] FATAL: cannot parse the ROS arguments {args[1:] if args else []}: {e}",
              file=sys.stderr, flush=True)
        return 2
    try:
        node = RacalnetNode()
    except StartupError as e:
        print(f"[racalnet_node] FATAL: {e}", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
