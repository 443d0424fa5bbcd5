"""`racalnet demo` (run by `bash scripts/demo.sh`): the whole system on one machine, in a few minutes on a CPU.

1. the recalibration checkpoint: --checkpoint, else the shipped racalnet_ros/checkpoints/small_synthetic.safetensors
   (it always ships; a missing one stops the demo at once with one line, as every command does);
2. a synthetic rosbag2 (racalnet_ros.datasets.synthetic, --frames frames of --width x --height);
3. racalnet_node as a subprocess (own process group) and the bag replayed to it on loopback DDS with its own
   ROS_DOMAIN_ID, lockstep (one frame, wait for its depth, next) so every frame is scored whatever the CPU;
4. the node's outputs recorded to a bag and scored against the bag's LiDAR with the paper's metrics, next to the
   same pipeline without recalibration run in-process on the same frames (what recalibration buys);
5. a report (markdown + PNGs of the image with raw and recalibrated anchors, and the coloured depth next to the
   LiDAR ground truth) whose path is printed last.

Exit status: 0 when every frame got a depth image and the report is written; 2 with one line on stderr otherwise
(the error policy of every command). The node (racalnet_ros.ros.harness) is always stopped (SIGINT, SIGTERM, then
SIGKILL to its process group), also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..errors import UsageError

HELP = "end-to-end demo: synthetic bag -> racalnet_node on loopback DDS -> recorded outputs -> metrics + PNG report"

log = logging.getLogger("racalnet.demo")


def add_arguments(p) -> None:
    from .options import add_pipeline_options

    p.add_argument("--out", default=None, help="output folder (default: runs/demo-<UTC time>)")
    p.add_argument("--frames", type=int, default=12, help="synthetic frames in the bag")
    p.add_argument("--seed", type=int, default=1000, help="first synthetic seed (frames use seed .. seed+frames-1)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="mcap")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: derived from the pid)")
    p.add_argument("--pngs", type=int, default=3, help="frames drawn in the report")
    p.add_argument("--frame-timeout", type=float, default=120.0, help="seconds to wait for one frame's depth")
    add_pipeline_options(p, device="cpu")
    p.add_argument("--params", dest="config", action="append", metavar="FILE", help="alias of --config")
    # no longer used: the shipped checkpoint always ships (kept so old command lines still parse)
    p.add_argument("--train-minutes", type=float, default=None, help=argparse.SUPPRESS)
    p.add_argument("--train-frames", type=int, default=None, help=argparse.SUPPRESS)


def _step(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
def synthetic_frames(n: int, seed: int, width: int, height: int) -> list:
    from ..datasets.synthetic import SynthConfig, SyntheticDataset
    cfg = SynthConfig(width=width, height=height)
    return list(SyntheticDataset.generate(list(range(seed, seed + n)), cfg))


# ---------------------------------------------------------------------------------------------------------------
# drawing (OpenCV; images are RGB in memory, BGR on disk)
#: the depth range of the demo's pictures (metres)
NEAR, FAR = 2.0, 80.0


def _label(img: np.ndarray, text: str) -> None:
    """White text on a dark band at the top, scaled to the image width."""
    import cv2
    font = max(0.45, 0.5 * img.shape[1] / 900)
    h = int(30 * font) + 8
    img[:h] = (img[:h] * 0.35).astype(np.uint8)
    cv2.putText(img, text, (6, h - 8), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255), 1, cv2.LINE_AA)


def draw_anchors(frame, anchors_msg) -> np.ndarray:
    """BGR image: raw radar projections (with the bag's extrinsic) as small grey dots, the node's published anchors
    as circles coloured by depth; a legend in the corner."""
    import cv2

    from .. import geometry
    from ..metric_depth.output import depth_colours, draw_colour_bar
    from ..ros import convert
    img = np.ascontiguousarray(frame.image[:, :, ::-1])
    p = geometry.project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    for u, v in p.uv:
        cv2.circle(img, (int(round(u)), int(round(v))), 1, (200, 200, 200), -1, cv2.LINE_AA)
    n = 0
    if anchors_msg is not None:
        a = convert.pointcloud2_to_columns(anchors_msg, ("z", "u", "v", "confidence"), name="anchors")
        n = len(a)
        for (z, u, v, c), col in zip(a, depth_colours(a[:, 0], NEAR, FAR, bgr=True)):
            cv2.circle(img, (int(round(u)), int(round(v))), 4, tuple(int(x) for x in col), -1, cv2.LINE_AA)
            cv2.circle(img, (int(round(u)), int(round(v))), 4, (0, 0, 0), 1, cv2.LINE_AA)
    _label(img, f"grey: raw radar projections ({len(p)}); colour: node anchors ({n}), by depth")
    return draw_colour_bar(img, NEAR, FAR, bgr=True)


def draw_depth(frame, depth: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """BGR panel: node depth (colour map) | image with LiDAR ground truth dots in the same colour map."""
    import cv2

    from ..metric_depth.output import colorize_depth, depth_colours, draw_colour_bar
    left = colorize_depth(depth, NEAR, FAR)[:, :, ::-1].copy()
    right = (frame.image[:, :, ::-1] * 0.6).astype(np.uint8)
    rows, cols = np.nonzero(gt > 0)
    for r, c, col in zip(rows, cols, depth_colours(gt[rows, cols], NEAR, FAR, bgr=True)):
        cv2.circle(right, (int(c), int(r)), 2, tuple(int(x) for x in col), -1)
    _label(left, f"racalnet_node depth/image (red {NEAR:g} m .. blue {FAR:g} m)")
    _label(right, "LiDAR ground truth")
    return np.concatenate([left, draw_colour_bar(right, NEAR, FAR, bgr=True)], axis=1)


# ---------------------------------------------------------------------------------------------------------------
def raw_radar_baseline(bag: Path, cfg) -> dict:
    """The node's pipeline configuration `cfg` without recalibration (raw radar projections as anchors), in-process
    on the bag's frames: the reference row that shows what recalibration changes."""
    from ..geometry import lidar_depth_map
    from ..metrics import MetricAccumulator
    from ..pipeline import Pipeline
    from ..ros import bag as bagio
    cfg = cfg.with_values({"prior.source": "frame"})
    pipe = Pipeline.from_config(cfg.ablation("no-recalibration"))
    acc = MetricAccumulator()
    for frame in bagio.read_frames(bag):
        acc.add(pipe.run(frame).depth, lidar_depth_map(frame))
    return acc.summary()


def write_demo_report(out: Path, bag: Path, out_bag: Path, scores: dict, stats, baseline: dict | None,
                      baseline_note: str, ckpt: Path | None, n_png: int, t_total: float) -> Path:
    import cv2

    from ..geometry import lidar_depth_map
    from ..metrics import format_table
    from ..ros import bag as bagio
    from ..ros import convert
    from .evaluate_bag import ANCHORS_TOPIC, DEPTH_TOPIC, _jsonable, read_outputs

    depth_msgs, anchor_msgs = read_outputs(out_bag, DEPTH_TOPIC), read_outputs(out_bag, ANCHORS_TOPIC)
    frames = list(bagio.read_frames(bag))
    picks = sorted({int(round(i)) for i in np.linspace(0, len(frames) - 1, min(n_png, len(frames)))})
    figs = []
    for i in picks:
        f = frames[i]
        s = f.extras["stamp_ns"]
        a_png, d_png = out / f"frame_{f.frame_id}_anchors.png", out / f"frame_{f.frame_id}_depth.png"
        cv2.imwrite(str(a_png), draw_anchors(f, anchor_msgs.get(s)))
        if s in depth_msgs:
            cv2.imwrite(str(d_png), draw_depth(f, convert.depth_from_image(depth_msgs[s]), lidar_depth_map(f)))
            figs.append((f.frame_id, a_png.name, d_png.name))
        else:
            figs.append((f.frame_id, a_png.name, None))

    rows = {("racalnet_node (recalibrated radar)" if ckpt else "racalnet_node (recalibration off)"): scores["summary"]}
    if baseline is not None:
        rows["same pipeline, raw radar (no recalibration)"] = baseline
    diag = _last_diagnostics(out_bag)
    lines = [
        "# racalnet_ros demo", "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {t_total:.0f} s in all.", "",
        f"- input bag: `{bag}` ({len(frames)} synthetic frames, {frames[0].width}x{frames[0].height})",
        f"- node outputs recorded to: `{out_bag}` ({stats.recorded})",
        f"- recalibration checkpoint: `{ckpt}`" if ckpt else "- recalibration: disabled",
        f"- frames replayed {stats.frames_published}, answered by the node {stats.frames_answered}; node log "
        f"`{out / 'node.log'}`", "",
        "## Depth vs the bag's LiDAR", "",
        "Paper metrics (racalnet_ros.metrics: per image, then averaged; MAE/RMSE/SqRel in mm, iMAE/iRMSE in 1/km). "
        "Ground truth: the bag's single LiDAR sweep projected into the camera." + (" " + baseline_note if
                                                                                  baseline_note else ""), "",
        format_table(rows), "",
        f"Frames scored: {scores['n_scored']} of {scores['n_frames']}"
        + (f"; no output for {', '.join(scores['missing'])}" if scores["missing"] else ""), "",
    ]
    if diag:
        lines += ["## Last /diagnostics from the node", "", "| status | key | value |", "|---|---|---|"]
        lines += [f"| {name} | {k} | {v} |" for name, k, v in diag] + [""]
    lines += ["## Frames", "",
              "Left: grey dots are the radar points projected with the (miscalibrated) extrinsic; coloured circles "
              "are the node's anchors after recalibration (kept points, moved by the predicted displacement), "
              "coloured by depth. Right: the node's depth next to the LiDAR ground truth, same colour map "
              "(turbo on inverse depth, red = near).", ""]
    for fid, a, d in figs:
        lines += [f"### frame {fid}", "", f"![anchors {fid}]({a})", ""]
        lines += [f"![depth {fid}]({d})", ""] if d else ["(no depth output for this frame)", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    import json
    (out / "metrics.json").write_text(json.dumps(_jsonable({"node": scores, "raw_radar": baseline}), indent=1))
    return report


def _last_diagnostics(out_bag: Path) -> list[tuple[str, str, str]]:
    from ..ros import bag as bagio
    last = None
    for _, _, _, msg in bagio.read_messages(out_bag, ["/diagnostics"]):
        last = msg
    if last is None:
        return []
    return [(st.name, kv.key, kv.value) for st in last.status for kv in st.values]


# ---------------------------------------------------------------------------------------------------------------
def main(args) -> int:
    logging.basicConfig(level=logging.WARNING, format="[demo] %(message)s")
    from ..pipeline import checkpoint_path
    from ..ros.bag import write_bag
    from ..ros.harness import terminate_on_sigterm
    from ..ros.params import settings_from_values
    from .evaluate_bag import evaluate, metrics_markdown
    from .options import node_parameters

    terminate_on_sigterm()
    t0 = time.monotonic()
    out = Path(args.out or f"runs/demo-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}").resolve()
    if (out / "input_bag").exists() or (out / "outputs").exists():
        raise UsageError(f"{out} already holds a demo run; choose another --out")
    if args.checkpoint:
        args.checkpoint = str(Path(args.checkpoint).resolve())
    params = node_parameters(args)  # checked with the node's rules before anything runs
    cfg = settings_from_values(params).pipeline
    ckpt = checkpoint_path(cfg.recalibration) if cfg.recalibration.enabled else None
    _step(f"checkpoint: {ckpt}" if ckpt else "recalibration disabled (recalibration.enabled=false)")
    out.mkdir(parents=True, exist_ok=True)
    _step(f"generating {args.frames} synthetic frames ({args.width}x{args.height}, seeds {args.seed}..)")
    frames = synthetic_frames(args.frames, args.seed, args.width, args.height)
    bag = out / "input_bag"
    summary = write_bag(frames, bag, storage=args.storage, extrinsics="first", custom={"racalnet.dataset": "synthetic"})
    del frames
    _step(f"wrote {bag} ({summary.storage}: " + ", ".join(f"{t} x{n}" for t, n in summary.topics.items()) + ")")
    _step("starting racalnet_node and replaying the bag on loopback DDS (lockstep) ...")
    from .evaluate_bag import bag_node_parameters
    params = node_parameters(args, implied=bag_node_parameters(bag))
    scores, stats, out_bag = evaluate(bag, out, params, pace="lockstep", storage=args.storage,
                                      domain_id=args.domain_id, frame_timeout=args.frame_timeout)
    _step(f"node answered {stats.frames_answered}/{stats.frames_published} frames in {stats.seconds:.0f} s")
    baseline = None
    if ckpt is not None:  # with recalibration off the node's row already is this one
        _step("scoring the same pipeline without recalibration (reference row) ...")
        baseline = raw_radar_baseline(bag, settings_from_values(params).pipeline)
    report = write_demo_report(out, bag, out_bag, scores, stats, baseline, "", ckpt, args.pngs,
                               time.monotonic() - t0)
    print(metrics_markdown(scores, "racalnet_node"))
    print(f"report: {report}")
    if not (scores["n_scored"] == scores["n_frames"] and scores["n_frames"] > 0):
        raise UsageError(f"only {scores['n_scored']} of {scores['n_frames']} frames got a depth image "
                         f"(report: {report})")
    return 0
