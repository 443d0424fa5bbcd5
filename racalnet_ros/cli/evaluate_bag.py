"""`racalnet evaluate-bag`: run racalnet_node on a replayed rosbag2, record its outputs to a bag, and score the
recorded depth against the bag's LiDAR with the paper's metrics (racalnet_ros.metrics).

    racalnet evaluate-bag BAG --out DIR [--config FILE] [--set KEY=VALUE] [--checkpoint CKPT] [--pace lockstep|realtime]
    racalnet evaluate-bag BAG --out DIR --recorded OUTPUT_BAG        # only score an already recorded output bag

Everything runs on loopback DDS in its own ROS domain (racalnet_ros.ros.dds); the node runs with the one harness
(racalnet_ros.ros.harness: parameter file, own process group, stopped with SIGINT, then SIGTERM/SIGKILL, whatever
happens). The node's parameters (the bag's extrinsic, --config files, --set, the shortcuts) are checked with the
node's own rules before it starts. Pacing "lockstep" (default) publishes one
frame and waits for the node's depth of that frame before the next, so every frame is scored whatever the CPU speed;
"realtime" plays the bag with its own timing x --rate and scores what the node managed (it drops frames when busy).

Matching: output depth images are matched to the bag's frames by header stamp (the node keeps the input image's
header). Ground truth: the bag's LiDAR projected with the bag's camera info and T_cam_lidar (geometry), 0 = none.
Writes DIR/outputs (the recorded bag), DIR/metrics.json, DIR/report.md, DIR/node.log.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ..config import FRAME_PRIOR_SOURCES
from ..errors import UsageError

HELP = "run racalnet_node on a replayed bag, record its outputs and score them against the bag's LiDAR"

log = logging.getLogger("racalnet.evaluate_bag")

DEPTH_TOPIC = "/depth/image"
ANCHORS_TOPIC = "/anchors"
COLORED_TOPIC = "/depth/colored"


def add_arguments(p) -> None:
    from .options import add_pipeline_options, add_skip_bad_option

    p.add_argument("bag", help="input rosbag2 directory (written by `racalnet bag-from-dataset` or with its topics)")
    p.add_argument("--out", required=True, help="output directory (created; must not hold an 'outputs' bag)")
    p.add_argument("--recorded", default=None,
                   help="score this already recorded output bag instead of running the node")
    p.add_argument("--pace", choices=("lockstep", "realtime"), default="lockstep")
    p.add_argument("--rate", type=float, default=1.0, help="realtime pace: playback speed factor")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3", help="output bag storage")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: one for this process)")
    p.add_argument("--startup-timeout", type=float, default=180.0, help="seconds for the node to subscribe")
    p.add_argument("--frame-timeout", type=float, default=60.0, help="seconds to wait for one frame's output")
    add_skip_bad_option(p)
    add_pipeline_options(p, device="auto")
    p.add_argument("--params", dest="config", action="append", metavar="FILE",
                   help="alias of --config (node parameter files; the bag's extrinsic is applied over them)")


# ---------------------------------------------------------------------------------------------------------------
# node parameters
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


def node_remaps(bag: str | Path) -> list[str]:
    """`-r` remappings from the node's relative input names to the bag's topics."""
    from ..ros import bag as bagio
    t = bagio.bag_topics(bag)
    return [f"image:={t.image}", f"camera_info:={t.camera_info}", f"radar/points:={t.radar}",
            f"prior/inverse_depth:={t.prior}"]


# ---------------------------------------------------------------------------------------------------------------
# run: replay + record against a running node
@dataclass
class RunStats:
    frames_published: int = 0
    frames_answered: int = 0
    missing_stamps: list[int] = field(default_factory=list)
    recorded: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def run_node_on_bag(bag: str | Path, out_bag: str | Path, node: NodeProcess, domain_id: int,
                    log_dir: str | Path, pace: str = "lockstep", rate: float = 1.0, storage: str = "sqlite3",
                    startup_timeout: float = 180.0, frame_timeout: float = 60.0,
                    prior_topic: bool = False) -> RunStats:
    """Start `node`, replay `bag` to it (in this process, own rclpy context on loopback DDS `domain_id`), record its
    outputs to `out_bag`, stop the node. prior_topic: the node takes its prior from the bag's prior topic (so that
    subscription is awaited too). NodeError if the node dies, never subscribes, or answers no frame."""
    from ..ros import bag as bagio
    from ..ros.convert import stamp_to_ns
    from ..ros.dds import apply_local_ros_env
    apply_local_ros_env(domain_id, log_dir)
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from ..ros.harness import NodeError, last_words
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

    check_node = node.check_alive

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
                raise NodeError(f"racalnet_node did not subscribe to {needed} within {startup_timeout:.0f} s "
                                f"(log: {node.log_path}): {last_words(node.output())}")
            spin(0.1)
        # outputs are matched too, from the recorder's side (it must not miss the first frame's depth)
        deadline = time.monotonic() + startup_timeout
        while not recorder.matched(DEPTH_TOPIC):
            check_node()
            if time.monotonic() > deadline:
                raise NodeError(f"the recorder did not match racalnet_node's {DEPTH_TOPIC} within "
                                f"{startup_timeout:.0f} s (log: {node.log_path})")
            spin(0.1)
        settle = time.monotonic() + 1.0  # the node's subscriptions match ours a moment after ours see them
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
            stamps = [stamp_to_ns(m.header.stamp) for _, _, _, m in bagio.read_messages(bag, [topics.image])]
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
    image_stamps = [stamp_to_ns(m.header.stamp) for _, _, _, m in bagio.read_messages(bag, [topics.image])]
    answered = set(recorder.stamps.get(DEPTH_TOPIC, []))
    stats.frames_answered = len(answered & set(image_stamps))
    stats.missing_stamps = [s for s in image_stamps if s not in answered]
    stats.seconds = time.monotonic() - t_start
    if stats.frames_answered == 0:
        raise NodeError(f"racalnet_node published no {DEPTH_TOPIC} for any of the bag's {len(image_stamps)} frames "
                        f"(log: {node.log_path}): {last_words(node.output())}")
    return stats


# ---------------------------------------------------------------------------------------------------------------
# scoring
def read_outputs(output_bag: str | Path, topic: str = DEPTH_TOPIC) -> dict[int, Any]:
    """{header stamp ns: message} of one topic of a recorded output bag (the last message wins per stamp)."""
    from ..ros import bag as bagio
    from ..ros.convert import stamp_to_ns
    return {stamp_to_ns(m.header.stamp): m for _, _, _, m in bagio.read_messages(output_bag, [topic])}


def score_bag(input_bag: str | Path, output_bag: str | Path, crop_rows=None) -> dict[str, Any]:
    """Score recorded depth images against the input bag's LiDAR. Returns {"summary": MetricAccumulator.summary(),
    "frames": per-frame rows, "n_frames", "n_scored", "missing": frame ids without output}."""
    from ..geometry import lidar_depth_map
    from ..metrics import MetricAccumulator
    from ..ros import bag as bagio
    from ..ros import convert

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
        depth = convert.depth_from_image(msg, f"{output_bag}: {DEPTH_TOPIC}")
        gt = lidar_depth_map(frame, required=True)
        if depth.shape != (frame.height, frame.width):
            raise bagio.BagError(f"{output_bag}: depth of frame {frame.frame_id} is {depth.shape[1]}x{depth.shape[0]},"
                                 f" the image is {frame.width}x{frame.height}")
        per_range = acc.add(depth, gt, crop_rows=crop_rows)
        row = {"frame_id": frame.frame_id, "stamp_ns": stamp,
               "valid_fraction": float(np.mean(np.isfinite(depth) & (depth > 0))),
               "anchors": convert.point_count(anchor_msgs[stamp]) if stamp in anchor_msgs else None}
        for name, m in per_range.items():
            row[name] = m
        rows.append(row)
    return {"summary": acc.summary(), "frames": rows, "n_frames": n_frames, "n_scored": len(rows),
            "missing": missing}


def _jsonable(x):
    """Standard JSON values (NaN -> null): summary.to_json, the one converter."""
    from ..summary import to_json

    return to_json(x)


def checkpoint_info(params: Mapping[str, Any]) -> dict[str, Any]:
    """{"checkpoint": the resolved file the node loads (None without recalibration), "provenance": what it was
    trained on}, from the node's flat parameters; CheckpointError naming the file when it is missing or broken."""
    from ..pipeline import checkpoint_path
    from ..recalibration.checkpoint import read_provenance
    from ..ros.params import parameter_fields, settings_from_values

    settings = settings_from_values({k: v for k, v in params.items() if k in parameter_fields()})
    if not settings.pipeline.recalibration.enabled:
        return {"checkpoint": None, "provenance": None}
    path = checkpoint_path(settings.pipeline.recalibration).resolve()
    return {"checkpoint": str(path), "provenance": read_provenance(path)}


def metrics_markdown(scores: Mapping[str, Any], name: str = "racalnet_node") -> str:
    from ..metrics import format_table
    return (f"Frames scored: {scores['n_scored']} of {scores['n_frames']}"
            + (f" (no output for: {', '.join(scores['missing'])})" if scores["missing"] else "") + "\n\n"
            + format_table({name: scores["summary"]}) + "\n")


def write_report(out: Path, input_bag: Path, output_bag: Path, scores: Mapping[str, Any],
                 stats: Optional[RunStats] = None, command: str = "", extra: str = "",
                 info: Optional[Mapping[str, Any]] = None) -> Path:
    """metrics.json (standard JSON: the scores, plus `info`, e.g. checkpoint_info()) and report.md."""
    from ..summary import write_json

    write_json(out / "metrics.json", {"input_bag": str(input_bag), "output_bag": str(output_bag), **(info or {}),
                                      **scores}, indent=1)
    lines = ["# racalnet evaluate-bag", "", f"- input bag: `{input_bag}`", f"- node outputs: `{output_bag}`"]
    if command:
        lines.append(f"- command: `{command}`")
    if info and "checkpoint" in info:
        from ..recalibration.checkpoint import provenance_text

        prov = info.get("provenance")
        lines.append(f"- checkpoint: `{info['checkpoint']}`" + (f" (trained on {provenance_text(prov)})" if prov
                                                                 else ""))
    if stats is not None:
        lines.append(f"- frames published {stats.frames_published}, answered {stats.frames_answered}, "
                     f"wall time {stats.seconds:.1f} s, recorded {stats.recorded}")
    lines += ["", "## Depth vs the bag's LiDAR (paper metrics, per image then averaged)", "",
              metrics_markdown(scores), extra]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


# ---------------------------------------------------------------------------------------------------------------
def evaluate(bag: Path, out: Path, params: Mapping[str, Any], pace: str = "lockstep", rate: float = 1.0,
             storage: str = "sqlite3", domain_id: Optional[int] = None, startup_timeout: float = 180.0,
             frame_timeout: float = 60.0) -> tuple[dict, RunStats, Path]:
    """Run + record + score (the body of `racalnet evaluate-bag` without --recorded): racalnet_node with the flat
    parameters `params` on the bag. Returns (scores, stats, output bag)."""
    from ..pipeline import checkpoint_path
    from ..ros.dds import default_domain_id, local_ros_env
    from ..ros.harness import NodeProcess
    from ..ros.params import parameter_fields, settings_from_values

    out.mkdir(parents=True, exist_ok=True)
    out_bag = out / "outputs"
    if out_bag.exists():
        raise UsageError(f"{out_bag} exists; remove it or choose another --out")
    if domain_id is None:
        domain_id = int(os.environ["ROS_DOMAIN_ID"]) if os.environ.get("ROS_DOMAIN_ID", "").strip() \
            else default_domain_id()
    settings = settings_from_values({k: v for k, v in params.items() if k in parameter_fields()})
    if settings.pipeline.recalibration.enabled:
        checkpoint_path(settings.pipeline.recalibration)  # a missing checkpoint stops us before the node starts
    log_dir = out / "ros_log"
    node = NodeProcess(params, log_dir=log_dir, remaps=node_remaps(bag), env=local_ros_env(domain_id, log_dir),
                       log_path=out / "node.log", pid_file=out / "node.pid", params_path=out / "node_params.yaml")
    stats = run_node_on_bag(bag, out_bag, node, domain_id, log_dir, pace=pace, rate=rate, storage=storage,
                            startup_timeout=startup_timeout, frame_timeout=frame_timeout,
                            prior_topic=str(params.get("prior.source", "topic")) in FRAME_PRIOR_SOURCES)
    return score_bag(bag, out_bag), stats, out_bag


def main(args) -> int:
    from ..ros.harness import terminate_on_sigterm
    from .options import bad_frames_exit, check_output_folder, node_parameters

    logging.basicConfig(level=logging.INFO, format="[evaluate-bag] %(message)s")
    terminate_on_sigterm()
    bag = Path(args.bag)
    out = check_output_folder(args.out)
    info: dict[str, Any] = {}
    if args.recorded:
        scores, stats, out_bag = score_bag(bag, args.recorded), None, Path(args.recorded)
    else:
        if args.checkpoint:
            args.checkpoint = str(Path(args.checkpoint).resolve())
        params = node_parameters(args, implied=bag_node_parameters(bag))
        info = checkpoint_info(params)  # a missing or broken checkpoint stops us before the node starts
        scores, stats, out_bag = evaluate(bag, out, params, args.pace, args.rate, args.storage, args.domain_id,
                                          args.startup_timeout, args.frame_timeout)
    report = write_report(out, bag, out_bag, scores, stats, " ".join(sys.argv), info=info)
    print(metrics_markdown(scores))
    print(f"report: {report}")
    if scores["n_scored"] == 0:
        raise UsageError(f"no frame of {bag} got a depth image")
    if not args.recorded and args.pace == "lockstep":  # realtime: a busy node drops frames by design
        bad = [(f, "no depth output (the node skipped it: see node.log)") for f in scores["missing"]]
        return bad_frames_exit("evaluate-bag", bad, scores["n_frames"], args.skip_bad)
    return 0
