"""`racalnet evaluate-bag`: run racalnet_node on a replayed rosbag2, record its outputs to a bag, and score the
recorded depth against the bag's LiDAR with the paper's metrics (racalnet_ros.metrics).

    racalnet evaluate-bag BAG --out DIR [--params FILE] [--checkpoint CKPT] [--pace lockstep|realtime] [--rate R]
    racalnet evaluate-bag BAG --out DIR --recorded OUTPUT_BAG        # only score an already recorded output bag

Everything runs on loopback DDS in its own ROS domain (racalnet_ros.ros.dds); the node is a subprocess in its own
process group, stopped (SIGINT, then SIGTERM/SIGKILL) whatever happens. Pacing "lockstep" (default) publishes one
frame and waits for the node's depth of that frame before the next, so every frame is scored whatever the CPU speed;
"realtime" plays the bag with its own timing x --rate and scores what the node managed (it drops frames when busy).

Matching: output depth images are matched to the bag's frames by header stamp (the node keeps the input image's
header). Ground truth: the bag's LiDAR projected with the bag's camera info and T_cam_lidar (geometry), 0 = none.
Writes DIR/outputs (the recorded bag), DIR/metrics.json, DIR/report.md, DIR/node.log.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import numpy as np

HELP = "run racalnet_node on a replayed bag, record its outputs and score them against the bag's LiDAR"

log = logging.getLogger("racalnet.evaluate_bag")

DEPTH_TOPIC = "/depth/image"
ANCHORS_TOPIC = "/anchors"
COLORED_TOPIC = "/depth/colored"


def add_arguments(p) -> None:
    p.add_argument("bag", help="input rosbag2 directory (written by `racalnet bag-from-dataset` or with its topics)")
    p.add_argument("--out", required=True, help="output directory (created; must not hold an 'outputs' bag)")
    p.add_argument("--recorded", default=None,
                   help="score this already recorded output bag instead of running the node")
    p.add_argument("--params", action="append", default=[],
                   help="node parameters file(s) (/**: ros__parameters), applied before the bag's extrinsic")
    p.add_argument("--checkpoint", default=None, help="recalibration checkpoint (.safetensors) for the node")
    p.add_argument("--device", default=None, help="node device (auto, cpu, cuda, cuda:N)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra node parameter (YAML value), e.g. --set refine.enabled=false")
    p.add_argument("--pace", choices=("lockstep", "realtime"), default="lockstep")
    p.add_argument("--rate", type=float, default=1.0, help="realtime pace: playback speed factor")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="output bag storage")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: one for this process)")
    p.add_argument("--startup-timeout", type=float, default=180.0, help="seconds for the node to subscribe")
    p.add_argument("--frame-timeout", type=float, default=60.0, help="seconds to wait for one frame's output")


# ---------------------------------------------------------------------------------------------------------------
# node parameters and process
def _nest(flat: Mapping[str, Any]) -> dict:
    out: dict = {}
    for key, value in flat.items():
        d = out
        parts = key.split(".")
        for p in parts[:-1]:
            d = d.setdefault(p, {})
        d[parts[-1]] = value
    return out


def bag_node_parameters(bag: str | Path) -> dict[str, Any]:
    """Node parameters a bag implies: its radar extrinsic (`extrinsics.T_cam_radar`, from /tf_static or metadata)
    and `prior.source: topic` when it carries a prior topic."""
    from ..ros import bag as bagio
    ext = bagio.read_extrinsics(bag)
    params: dict[str, Any] = {"extrinsics.T_cam_radar": [float(x) for x in ext["T_cam_radar"].reshape(-1)],
                              "extrinsics.use_tf": False}
    reader = bagio.open_reader(bag)
    try:
        topics = {c.topic for c in reader.connections}
    finally:
        reader.close()
    if bagio.bag_topics(bag).prior in topics:
        params["prior.source"] = "topic"
    return params


def write_params_file(path: str | Path, params: Mapping[str, Any]) -> Path:
    """Write flat dotted parameters as a ROS 2 params file (`/**: ros__parameters:` with nested keys)."""
    import yaml
    path = Path(path)
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": _nest(params)}}, sort_keys=False))
    return path


def node_remaps(bag: str | Path) -> list[str]:
    """`-r` remappings from the node's relative input names to the bag's topics."""
    from ..ros import bag as bagio
    t = bagio.bag_topics(bag)
    return [f"image:={t.image}", f"camera_info:={t.camera_info}", f"radar/points:={t.radar}",
            f"prior/inverse_depth:={t.prior}"]


class NodeProcess:
    """racalnet_node as a subprocess in its own process group (so its children die with it), output to a log file.

    with NodeProcess(params_files, remaps, env, log_path) as node: ...   # always stopped on exit
    """

    def __init__(self, params_files: Sequence[str | Path], remaps: Sequence[str], env: Mapping[str, str],
                 log_path: str | Path, pid_file: str | Path | None = None):
        self.cmd = [sys.executable, "-m", "racalnet_ros.node", "--ros-args"]
        for f in params_files:
            self.cmd += ["--params-file", str(f)]
        for r in remaps:
            self.cmd += ["-r", r]
        self.env = dict(env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")  # the log is current when we show its tail
        self.log_path = Path(log_path)
        self.pid_file = Path(pid_file) if pid_file else None  # written at start: lets callers check it is gone
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "NodeProcess":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        if self.pid_file is not None:
            self.pid_file.write_text(f"{self.proc.pid}\n")
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGINT the process group, then SIGTERM, then SIGKILL; returns the exit code."""
        if self.proc is None:
            return None
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        try:  # children left in the group (none expected) go too
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._log.close()
        return self.proc.poll()

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------------------------
# run: replay + record against a running node
@dataclass
class RunStats:
    frames_published: int = 0
    frames_answered: int = 0
    missing_stamps: list[int] = field(default_factory=list)
    recorded: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class RunError(RuntimeError):
    """The node did not start, died, or answered nothing; the message includes the end of its log."""


def run_node_on_bag(bag: str | Path, out_bag: str | Path, node: NodeProcess, domain_id: int,
                    log_dir: str | Path, pace: str = "lockstep", rate: float = 1.0, storage: str = "sqlite3",
                    startup_timeout: float = 180.0, frame_timeout: float = 60.0,
                    prior_topic: bool = False) -> RunStats:
    """Start `node`, replay `bag` to it (in this process, own rclpy context on loopback DDS `domain_id`), record its
    outputs to `out_bag`, stop the node. prior_topic: the node takes its prior from the bag's prior topic (so that
    subscription is awaited too). RunError if the node dies, never subscribes, or answers no frame."""
    from ..ros import bag as bagio
    from ..ros.dds import apply_local_ros_env
    apply_local_ros_env(domain_id, log_dir)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from ..ros.record import NODE_OUTPUTS, BagRecorder
    from ..ros.replay import BagPlayer

    topics = bagio.bag_topics(bag)
    stats = RunStats()
    t_start = time.monotonic()
    from rclpy.signals import SignalHandlerOptions
    ctx = rclpy.Context()
    # No rclpy signal handlers: Ctrl-C / SIGTERM must unwind through the `finally` below, which stops the node.
    rclpy.init(context=ctx, signal_handler_options=SignalHandlerOptions.NO)
    ros_node = rclpy.create_node("racalnet_evaluate_bag", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(ros_node)
    recorder = None

    def spin(dt: float) -> None:
        executor.spin_once(timeout_sec=max(0.0, dt))

    def check_node() -> None:
        if not node.alive():
            raise RunError(f"racalnet_node exited with code {node.proc.poll()}; end of {node.log_path}:\n"
                           + node.log_tail())

    try:
        player = BagPlayer(ros_node, bag)
        recorder = BagRecorder(ros_node, out_bag, NODE_OUTPUTS, storage=storage)
        node.start()
        deadline = time.monotonic() + startup_timeout
        needed = [topics.image, topics.radar, topics.camera_info] + ([topics.prior] if prior_topic else [])
        missing = [t for t in needed if t not in player.publishers]
        if missing:
            raise bagio.BagError(f"{bag}: has no {', '.join(missing)} topic (has {sorted(player.publishers)})")
        while not all(player.publishers[t].get_subscription_count() > 0 for t in needed):
            check_node()
            if time.monotonic() > deadline:
                raise RunError(f"racalnet_node did not subscribe to {needed} within {startup_timeout:.0f} s; end of "
                               f"{node.log_path}:\n" + node.log_tail())
            spin(0.1)
        # outputs are matched too (the recorder must not miss the first frame's depth)
        deadline = time.monotonic() + 30.0
        while ros_node.count_publishers(DEPTH_TOPIC) == 0 and time.monotonic() < deadline:
            check_node()
            spin(0.1)
        settle = time.monotonic() + 1.0  # the subscriber side matches a moment after the publisher side
        while time.monotonic() < settle:
            spin(0.05)

        def after_frame(stamp: int) -> None:
            stats.frames_published += 1
            end = time.monotonic() + frame_timeout
            while time.monotonic() < end:
                if recorder.has_stamp(DEPTH_TOPIC, stamp):
                    return
                check_node()
                spin(0.02)
            log.warning("no %s for stamp %d within %.0f s", DEPTH_TOPIC, stamp, frame_timeout)

        if pace == "lockstep":
            player.play_lockstep(after_frame)
        else:
            player.play(rate=rate, idle=spin)
            stamps = [bagio.stamp_to_ns(m.header.stamp) for _, _, _, m in bagio.read_messages(bag, [topics.image])]
            stats.frames_published = len(stamps)
            # the last frame is the newest, so the node processes it even when it dropped others: wait for it
            end = time.monotonic() + frame_timeout
            while stamps and not recorder.has_stamp(DEPTH_TOPIC, stamps[-1]) and time.monotonic() < end:
                check_node()
                spin(0.05)
        settle = time.monotonic() + 1.0  # anchors / colored / diagnostics of the last frame
        while time.monotonic() < settle:
            spin(0.05)
    finally:
        if recorder is not None:
            recorder.close()
            stats.recorded = dict(recorder.counts)
        node.stop()
        executor.shutdown()
        ros_node.destroy_node()
        rclpy.shutdown(context=ctx)
    image_stamps = [bagio.stamp_to_ns(m.header.stamp) for _, _, _, m in bagio.read_messages(bag, [topics.image])]
    answered = set(recorder.stamps.get(DEPTH_TOPIC, []))
    stats.frames_answered = len(answered & set(image_stamps))
    stats.missing_stamps = [s for s in image_stamps if s not in answered]
    stats.seconds = time.monotonic() - t_start
    if stats.frames_answered == 0:
        raise RunError(f"racalnet_node published no {DEPTH_TOPIC} for any of the bag's {len(image_stamps)} frames; "
                       f"end of {node.log_path}:\n" + node.log_tail())
    return stats


# ---------------------------------------------------------------------------------------------------------------
# scoring
def lidar_ground_truth(frame) -> np.ndarray:
    """H x W float32 sparse LiDAR depth (0 = none): geometry.lidar_depth_map where available, else the same
    projection + z-buffer written out."""
    from .. import geometry
    if frame.lidar is None:
        raise ValueError(f"frame {frame.frame_id}: the bag has no LiDAR to score against")
    if hasattr(geometry, "lidar_depth_map"):
        return geometry.lidar_depth_map(frame)
    p = geometry.project_to_image(frame.lidar, frame.T_cam_lidar, frame.camera)
    return geometry.sparse_depth_map(p.uv, p.depth, frame.width, frame.height)


def read_outputs(output_bag: str | Path, topic: str = DEPTH_TOPIC) -> dict[int, Any]:
    """{header stamp ns: message} of one topic of a recorded output bag (the last message wins per stamp)."""
    from ..ros import bag as bagio
    return {bagio.stamp_to_ns(m.header.stamp): m for _, _, _, m in bagio.read_messages(output_bag, [topic])}


def score_bag(input_bag: str | Path, output_bag: str | Path, crop_rows=None) -> dict[str, Any]:
    """Score recorded depth images against the input bag's LiDAR. Returns {"summary": MetricAccumulator.summary(),
    "frames": per-frame rows, "n_frames", "n_scored", "missing": frame ids without output}."""
    from ..metrics import MetricAccumulator
    from ..ros import bag as bagio

    depth_msgs = read_outputs(output_bag, DEPTH_TOPIC)
    anchor_msgs = read_outputs(output_bag, ANCHORS_TOPIC)
    acc = MetricAccumulator()
    rows, missing, n_frames = [], [], 0
    for frame in bagio.read_frames(input_bag):
        n_frames += 1
        stamp = frame.extras["stamp_ns"]
        msg = depth_msgs.get(stamp)
        if msg is None:
            missing.append(frame.frame_id)
            continue
        if msg.encoding != "32FC1":
            raise bagio.BagError(f"{output_bag}: {DEPTH_TOPIC} has encoding {msg.encoding}, expected 32FC1")
        depth = bagio.image_to_array(msg)
        if depth.shape != (frame.height, frame.width):
            raise bagio.BagError(f"{output_bag}: depth of frame {frame.frame_id} is {depth.shape[1]}x{depth.shape[0]},"
                                 f" the image is {frame.width}x{frame.height}")
        per_range = acc.add(depth, lidar_ground_truth(frame), crop_rows=crop_rows)
        row = {"frame_id": frame.frame_id, "stamp_ns": stamp,
               "valid_fraction": float(np.mean(np.isfinite(depth) & (depth > 0))),
               "anchors": int(anchor_msgs[stamp].width * anchor_msgs[stamp].height) if stamp in anchor_msgs else None}
        for name, m in per_range.items():
            row[name] = m
        rows.append(row)
    return {"summary": acc.summary(), "frames": rows, "n_frames": n_frames, "n_scored": len(rows),
            "missing": missing}


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def metrics_markdown(scores: Mapping[str, Any], name: str = "racalnet_node") -> str:
    from ..metrics import format_table
    return (f"Frames scored: {scores['n_scored']} of {scores['n_frames']}"
            + (f" (no output for: {', '.join(scores['missing'])})" if scores["missing"] else "") + "\n\n"
            + format_table({name: scores["summary"]}) + "\n")


def write_report(out: Path, input_bag: Path, output_bag: Path, scores: Mapping[str, Any],
                 stats: Optional[RunStats] = None, command: str = "", extra: str = "") -> Path:
    (out / "metrics.json").write_text(json.dumps(_jsonable({"input_bag": str(input_bag),
                                                            "output_bag": str(output_bag), **scores}), indent=1))
    lines = ["# racalnet evaluate-bag", "", f"- input bag: `{input_bag}`", f"- node outputs: `{output_bag}`"]
    if command:
        lines.append(f"- command: `{command}`")
    if stats is not None:
        lines.append(f"- frames published {stats.frames_published}, answered {stats.frames_answered}, "
                     f"wall time {stats.seconds:.1f} s, recorded {stats.recorded}")
    lines += ["", "## Depth vs the bag's LiDAR (paper metrics, per image then averaged)", "",
              metrics_markdown(scores), extra]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
def parse_sets(items: Sequence[str]) -> dict[str, Any]:
    import yaml
    out = {}
    for it in items:
        key, sep, value = it.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {it!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value)
    return out


def evaluate(bag: Path, out: Path, params_files: Sequence[str | Path] = (), overrides: Mapping[str, Any] = (),
             pace: str = "lockstep", rate: float = 1.0, storage: str = "sqlite3", domain_id: Optional[int] = None,
             startup_timeout: float = 180.0, frame_timeout: float = 60.0) -> tuple[dict, RunStats, Path]:
    """Run + record + score (the body of `racalnet evaluate-bag` without --recorded). Returns (scores, stats,
    output bag)."""
    from ..ros.dds import default_domain_id, local_ros_env
    out.mkdir(parents=True, exist_ok=True)
    out_bag = out / "outputs"
    if out_bag.exists():
        raise FileExistsError(f"{out_bag} exists; remove it or choose another --out")
    if domain_id is None:
        domain_id = int(os.environ["ROS_DOMAIN_ID"]) if os.environ.get("ROS_DOMAIN_ID", "").strip() \
            else default_domain_id()
    params = bag_node_parameters(bag)
    params.update(dict(overrides))
    bag_params = write_params_file(out / "node_params.yaml", params)
    log_dir = out / "ros_log"
    env = local_ros_env(domain_id, log_dir)
    node = NodeProcess(list(params_files) + [bag_params], node_remaps(bag), env, out / "node.log",
                       pid_file=out / "node.pid")
    stats = run_node_on_bag(bag, out_bag, node, domain_id, log_dir, pace=pace, rate=rate, storage=storage,
                            startup_timeout=startup_timeout, frame_timeout=frame_timeout,
                            prior_topic=params.get("prior.source") == "topic")
    return score_bag(bag, out_bag), stats, out_bag


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit so `finally` blocks (which stop the node's process group) run."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)


def main(args) -> int:
    logging.basicConfig(level=logging.INFO, format="[evaluate-bag] %(message)s")
    terminate_on_sigterm()
    from ..ros.bag import BagError
    bag, out = Path(args.bag), Path(args.out)
    try:
        if args.recorded:
            out.mkdir(parents=True, exist_ok=True)
            scores, stats, out_bag = score_bag(bag, args.recorded), None, Path(args.recorded)
        else:
            overrides = parse_sets(args.set)
            if args.checkpoint:
                overrides["recalibration.checkpoint"] = str(Path(args.checkpoint).resolve())
            if args.device:
                overrides["device"] = args.device
            scores, stats, out_bag = evaluate(bag, out, args.params, overrides, args.pace, args.rate, args.storage,
                                              args.domain_id, args.startup_timeout, args.frame_timeout)
    except (BagError, RunError, FileExistsError, ValueError) as exc:
        print(f"evaluate-bag: {exc}", file=sys.stderr)
        return 1
    report = write_report(out, bag, out_bag, scores, stats, " ".join(sys.argv))
    print(metrics_markdown(scores))
    print(f"report: {report}")
    return 0 if scores["n_scored"] > 0 else 1
