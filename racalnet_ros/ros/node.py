"""`racalnet_node`: synced 4D radar + camera in, dense metric depth and anchors out. A thin shell around `Pipeline`.

Inputs (relative names, sensor-data QoS): radar/points (PointCloud2), image (Image), camera_info (CameraInfo) and,
with prior.source topic, prior/inverse_depth (Image 32FC1, relative inverse depth).
Outputs (reliable, depth 5, QoS overridable): depth/image (32FC1 metres, the image's header), depth/camera_info,
anchors (PointCloud2 x y z u v confidence, camera optical frame), depth/colored (rgb8), /diagnostics.

Parameters: one read-only parameter per key of ros/params.py (the pipeline's keys and the node's own), described
and checked by the config module; a bad value stops the node at start with one line naming it.
Threads: executor callbacks only stamp-check and synchronise (ros/sync.py); a synced set goes to a single-slot
mailbox (the newest wins, a replaced one is counted as dropped) that the worker drains (ros/overlap.py): with
pipeline_overlap (off by default) two threads, stage 1 = convert -> Pipeline.prepare (recalibration network, prior) for
frame t+1 while stage 2 = Pipeline.optimize (Metric Depth Optimization) -> publish runs for frame t; without it one
thread does both in turn. Rates, counters and /diagnostics: ros/diagnostics.py. rclpy Humble or newer.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..config import ConfigError, apply_cpu_threads, constraint_text
from ..errors import RacalnetError
from ..frame import FrameError
from ..metric_depth.output import colorize_depth, draw_colour_bar
from ..metric_depth.weights import check_prior
from ..pipeline import Pipeline, Prepared
from . import convert
from .diagnostics import ERROR, WARN, NodeDiagnostics
from .overlap import TwoStageRunner
from .params import parameter_defaults, parameter_fields, settings_from_values
from .sync import LatestSlot, make_synchronizer

INPUTS = ("radar/points", "image", "camera_info", "prior/inverse_depth")
INPUT_TYPES = (PointCloud2, Image, CameraInfo, Image)


class StartupError(RuntimeError):
    """The node cannot start (bad parameter, unusable checkpoint or prior, missing dependency); the message says
    why."""


class SkipFrame(RuntimeError):
    """This synced set cannot be processed (bad input); logged, counted, and the next one is processed."""


def descriptor(name: str, f) -> ParameterDescriptor:
    """Read-only, described; dynamically typed so that the config module checks every value (and so gives the same
    message as the CLI): ranges and choices are stated in additional_constraints."""
    return ParameterDescriptor(name=name, description=f.metadata["description"], read_only=True, dynamic_typing=True,
                               additional_constraints=constraint_text(f))


class RacalnetNode(Node):
    """Radar recalibration + metric depth node (see module docstring)."""

    def __init__(self, node_name: str = "racalnet_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.settings = self._read_parameters()
        s, cfg = self.settings.node, self.settings.pipeline
        try:
            check_prior(cfg.prior.source, cfg.prior.path)  # before torch is imported: an offline miss fails fast
            threads = apply_cpu_threads(cfg.cpu_threads)
            self.get_logger().info(f"loading the pipeline: prior {cfg.prior.spec()}, recalibration "
                                   + ((cfg.recalibration.checkpoint or "(shipped checkpoint)")
                                      if cfg.recalibration.enabled else "off"))
            self.pipeline = Pipeline.from_config(cfg)
            self._check_radar_columns()
        except RacalnetError as e:  # checkpoint or prior unavailable, device without CUDA: decided in pipeline.py
            raise StartupError(str(e)) from None
        self._tf_buffer = self._make_tf() if s.extrinsics.use_tf else None

        self._inputs = INPUTS[: 4 if self.settings.prior_topic else 3]
        self._latest_stamp: list[Optional[int]] = [None] * len(self._inputs)
        self._lock = threading.Lock()
        self._mailbox = LatestSlot()
        self.diag = NodeDiagnostics(f"{self.get_name()}: pipeline", self.pipeline.config.device, self._inputs,
                                    s.diagnostics_period, static={"pipeline_overlap": str(s.pipeline_overlap).lower(),
                                                                  **self._checkpoint_report()})
        self._sync = make_synchronizer(len(self._inputs), s.sync.queue_size, s.sync.slop, self._on_synced)

        for i, topic in enumerate(self._inputs):
            self.create_subscription(INPUT_TYPES[i], topic, lambda m, i=i: self._on_input(i, m),
                                     qos_profile_sensor_data)
        qos_out = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=5, reliability=ReliabilityPolicy.RELIABLE)
        kw = {"qos_overriding_options": QoSOverridingOptions.with_default_policies()}
        self.pub_depth = self.create_publisher(Image, "depth/image", qos_out, **kw)
        self.pub_info = self.create_publisher(CameraInfo, "depth/camera_info", qos_out, **kw)
        self.pub_anchors = self.create_publisher(PointCloud2, "anchors", qos_out, **kw)
        self.pub_colored = self.create_publisher(Image, "depth/colored", qos_out, **kw) if s.publish_colored else None
        self.pub_diag = self.create_publisher(DiagnosticArray, "/diagnostics", qos_out)
        self.create_timer(s.diagnostics_period, self._publish_diagnostics)

        self._worker = TwoStageRunner(self._mailbox, self._prepare, self._finish, self._on_failure,
                                      overlap=s.pipeline_overlap).start()
        self.get_logger().info(
            f"racalnet_node ready on {self.pipeline.config.device} ({threads} torch thread(s) per stage, pipeline "
            f"overlap {'on' if s.pipeline_overlap else 'off'}): inputs "
            f"{', '.join(self.resolve_topic_name(t) for t in self._inputs)}; sync queue {s.sync.queue_size}, "
            f"slop {s.sync.slop} s; sync via {self._sync.kind}")

    # ------------------------------------------------------------------------------------------ start-up
    def _read_parameters(self):
        """Declare every parameter (ros/params.py), read the values (overrides from --params-file / -p applied by
        rclpy) and check them all with the config module; an override naming no parameter is an unknown key."""
        defaults, fields = parameter_defaults(), parameter_fields()
        values: dict[str, Any] = {}
        for name, default in defaults.items():
            try:
                v = self.declare_parameter(name, default, descriptor(name, fields[name])).value
            except ParameterException as e:  # rclpy could not even store it (a malformed value)
                raise StartupError(f"{name}: {e}") from None
            values[name] = list(v) if isinstance(v, (list, tuple)) or hasattr(v, "tolist") else v
        for name, p in self._parameter_overrides.items():  # rclpy keeps --params-file / -p values here (Humble+)
            if not self.has_parameter(name) and not name.startswith("qos_overrides."):
                values[name] = p.value
        try:
            return settings_from_values(values)
        except ConfigError as e:
            raise StartupError(str(e)) from None

    def _checkpoint_report(self) -> dict[str, str]:
        """Log the checkpoint and what it was trained on (a warning when it is synthetic-only: the node always
        meets a real sensor); the same as /diagnostics key-values."""
        from ..recalibration.checkpoint import provenance_text

        ckpt, prov = self.pipeline.checkpoint, self.pipeline.provenance
        if ckpt is None:
            return {"checkpoint": "none (recalibration.enabled: false)"}
        trained_on = provenance_text(prov)
        self.get_logger().info(f"recalibration checkpoint {ckpt}, trained on {trained_on}")
        real = prov.get("real")
        report = {"checkpoint": str(ckpt), "checkpoint/trained_on": trained_on,
                  "checkpoint/real_data": "unknown" if real is None else str(bool(real)).lower()}
        warning = self.pipeline.synthetic_on_real_warning()
        if warning:
            self.get_logger().warning(warning)
            report["checkpoint/warning"] = "trained on synthetic data only; train it on your own data " \
                                           "(docs/recalibration.md)"
        return report

    def _make_tf(self):
        try:
            from tf2_ros import Buffer, TransformListener
        except ImportError:
            raise StartupError("extrinsics.use_tf: true needs tf2_ros, which is not installed; set "
                               "extrinsics.T_cam_radar or extrinsics.xyz_rpy instead") from None
        buf = Buffer()
        self._tf_listener = TransformListener(buf, self)
        return buf

    # ------------------------------------------------------------------------------------------ executor side
    def _on_input(self, index: int, msg) -> None:
        stamp = convert.stamp_to_ns(msg.header.stamp)  # integer ns: what message_filters compares
        self.diag.tick(self._inputs[index])
        with self._lock:
            last = self._latest_stamp[index]
            if last is not None and stamp < last:
                self._reset_sync(f"{self._inputs[index]} stamp jumped backwards ({last * 1e-9:.3f} -> "
                                 f"{stamp * 1e-9:.3f} s)")
            self._latest_stamp[index] = stamp
        self._sync.add(index, stamp, msg)

    def _reset_sync(self, why: str) -> None:
        """Bag loop or clock reset: forget queued messages (and TF history) and start over."""
        self.diag.count("sync_resets")
        self._latest_stamp = [None] * len(self._inputs)
        self._sync.reset()
        if self._tf_buffer is not None:
            self._tf_buffer.clear()
        self.diag.note(WARN, f"sync reset: {why}")
        self.get_logger().warning(f"{why}; synchronisation reset")

    def _on_synced(self, *msgs) -> None:
        if self._mailbox.put(msgs):
            self.get_logger().debug("worker busy: dropped the older synced set")

    # ------------------------------------------------------------------------------------------ worker side
    def _on_failure(self, exc: BaseException) -> None:
        """A frame failed in either stage: count it, note it for /diagnostics, log it (throttled); the worker goes
        on with the next frame."""
        if isinstance(exc, SkipFrame):
            self.diag.count("skipped")
            self.diag.note(WARN, str(exc))
            self.diag.log_once_per(2.0, self.get_logger().warning, f"frame skipped: {exc}")
        else:  # unexpected: keep the node alive, the next frame may be fine
            self.diag.count("errors")
            self.diag.note(ERROR, f"{type(exc).__name__}: {exc}")
            self.diag.log_once_per(2.0, self.get_logger().error, f"frame failed: {type(exc).__name__}: {exc}",
                                   "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)))

    def _check_radar_columns(self) -> None:
        """A checkpoint reading Doppler or power with radar.field.doppler / .power set to '' (the radar has none)
        cannot work: stop at start with the columns named (features.check_radar_columns)."""
        from ..recalibration.features import check_radar_columns

        rec = self.pipeline.recalibrator
        if rec is not None:
            fields = tuple(k for k, v in self.settings.node.field_map.items() if v)
            check_radar_columns(rec.cfg.features, fields)

    def _extrinsics(self, cloud: PointCloud2, image: Image) -> np.ndarray:
        if self._tf_buffer is None:
            return self.settings.T_cam_radar
        from rclpy.duration import Duration
        from rclpy.time import Time

        try:
            tf = self._tf_buffer.lookup_transform(image.header.frame_id, cloud.header.frame_id,
                                                  Time.from_msg(cloud.header.stamp), timeout=Duration(seconds=0.1))
        except Exception as e:  # tf2 LookupException / ExtrapolationException / ConnectivityException
            raise SkipFrame(f"transform {cloud.header.frame_id!r} -> {image.header.frame_id!r} not found: {e}")
        return convert.transform_to_matrix(tf.transform)

    def _prepare(self, msgs: tuple) -> "InFlight":
        """Stage 1: the synced messages -> Frame -> Pipeline.prepare (recalibration network, prior)."""
        cloud, image, info = msgs[:3]
        prior = msgs[3] if len(msgs) > 3 else None
        s = self.settings.node
        t0 = time.perf_counter()
        T = self._extrinsics(cloud, image)
        try:
            frame, nan_dropped = convert.messages_to_frame(image, cloud, info, T, s.field_map, prior)
        except (convert.ConversionError, FrameError) as e:
            raise SkipFrame(str(e)) from None
        if nan_dropped:
            self.diag.count("radar_nan_dropped", nan_dropped)
        if frame.num_radar == 0:
            raise SkipFrame(f"radar cloud is empty (after dropping {nan_dropped} NaN point(s))")
        t1 = time.perf_counter()
        try:
            prepared = self.pipeline.prepare(frame)
        except FrameError as e:  # e.g. a cloud without a radar column the checkpoint reads: this frame only
            raise SkipFrame(str(e)) from None
        return InFlight(image.header, info, prepared, t0, t1, time.perf_counter())

    def _finish(self, job: "InFlight") -> None:
        """Stage 2: Pipeline.optimize (Metric Depth Optimization) -> publish with the image's header."""
        s = self.settings.node
        t3 = time.perf_counter()
        result = self.pipeline.optimize(job.prepared)
        t4 = time.perf_counter()

        header, info = job.header, job.info
        depth = np.asarray(result.depth, dtype=np.float32)
        self.pub_depth.publish(convert.array_to_image(depth, "32FC1", header))
        info.header = header
        self.pub_info.publish(info)
        self.pub_anchors.publish(convert.anchors_to_pointcloud2(result.anchors, job.prepared.frame.camera, header))
        if self.pub_colored is not None:
            coloured = draw_colour_bar(colorize_depth(depth, max_depth=s.colored.max_depth),
                                       max_depth=s.colored.max_depth)
            self.pub_colored.publish(convert.array_to_image(coloured, "rgb8", header))
        t5 = time.perf_counter()
        self.diag.frame_done({"convert_in_ms": (job.t1 - job.t0) * 1e3,
                              "stage1_ms": (job.t2 - job.t1) * 1e3, "handoff_wait_ms": (t3 - job.t2) * 1e3,
                              "stage2_ms": (t4 - t3) * 1e3, "pipeline_ms": (job.t2 - job.t1 + t4 - t3) * 1e3,
                              "publish_ms": (t5 - t4) * 1e3, "total_ms": (t5 - job.t0) * 1e3},
                             result.diagnostics or {}, len(result.anchors), result.anchors.num_kept)

    # ------------------------------------------------------------------------------------------ diagnostics
    def _publish_diagnostics(self) -> None:
        self.pub_diag.publish(self.diag.report(self.get_clock().now().to_msg(), self._mailbox.dropped,
                                               self.resolve_topic_name, self.get_logger().warning))

    def destroy_node(self) -> None:
        # also called by rclpy's context shutdown on a node whose __init__ failed part-way
        worker = getattr(self, "_worker", None)
        if worker is not None:
            worker.close(timeout=5.0)  # joins both stage threads
        elif getattr(self, "_mailbox", None) is not None:
            self._mailbox.close()
        super().destroy_node()


@dataclass
class InFlight:
    """A frame between the two stages: what stage 2 publishes with, and stage 1's clock readings (perf_counter s:
    t0 taken, t1 converted, t2 prepared)."""

    header: Any
    info: CameraInfo
    prepared: Prepared
    t0: float
    t1: float
    t2: float


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
    except (KeyboardInterrupt, ExternalShutdownException):  # Ctrl-C while the models load
        print("[racalnet_node] interrupted during start-up", file=sys.stderr, flush=True)
        rclpy.try_shutdown()
        return 130
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
