"""`racalnet demo` (run by `bash scripts/demo.sh`): the whole system on one machine, in a few minutes on a CPU.

1. a recalibration checkpoint: --checkpoint, else the shipped racalnet_ros/checkpoints/small_synthetic.safetensors,
   else (said clearly) a short `racalnet train --dataset synthetic --max-minutes M` run into the output folder;
2. a synthetic rosbag2 (racalnet_ros.datasets.synthetic, --frames frames of --width x --height);
3. racalnet_node as a subprocess (own process group) and the bag replayed to it on loopback DDS with its own
   ROS_DOMAIN_ID, lockstep (one frame, wait for its depth, next) so every frame is scored whatever the CPU;
4. the node's outputs recorded to a bag and scored against the bag's LiDAR with the paper's metrics, next to the
   same pipeline without recalibration run in-process on the same frames (what recalibration buys);
5. a report (markdown + PNGs of the image with raw and recalibrated anchors, and the coloured depth next to the
   LiDAR ground truth) whose path is printed last.

Exit status: 0 when every frame got a depth image and the report is written, non-zero otherwise. Subprocesses are
always stopped (SIGINT, SIGTERM, then SIGKILL to their process group), also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

HELP = "end-to-end demo: synthetic bag -> racalnet_node on loopback DDS -> recorded outputs -> metrics + PNG report"

log = logging.getLogger("racalnet.demo")


def add_arguments(p) -> None:
    p.add_argument("--out", default=None, help="output folder (default: runs/demo-<UTC time>)")
    p.add_argument("--frames", type=int, default=12, help="synthetic frames in the bag")
    p.add_argument("--seed", type=int, default=1000, help="first synthetic seed (frames use seed .. seed+frames-1)")
    p.add_argument("--width", type=int, default=640)
    p.add_argument("--height", type=int, default=480)
    p.add_argument("--checkpoint", default=None, help="recalibration checkpoint (default: the shipped one)")
    p.add_argument("--train-minutes", type=float, default=2.0,
                   help="when no checkpoint exists: minutes of `racalnet train` on synthetic data first (after "
                        "preparing --train-frames samples, about 1 s each on a CPU)")
    p.add_argument("--train-frames", type=int, default=48, help="synthetic frames for that fallback training")
    p.add_argument("--device", default="cpu", help="node device: cpu, cuda, cuda:N or auto")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="mcap")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: derived from the pid)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra node parameter, e.g. --set refine.enabled=false; --set recalibration.enabled=false "
                        "runs without a checkpoint")
    p.add_argument("--pngs", type=int, default=3, help="frames drawn in the report")
    p.add_argument("--frame-timeout", type=float, default=120.0, help="seconds to wait for one frame's depth")


def _step(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------------------------
def ensure_checkpoint(requested: str | None, out: Path, minutes: float, device: str, frames: int = 48) -> Path:
    """The checkpoint to use; trains one briefly when none exists (FileNotFoundError if that fails too)."""
    if requested:
        p = Path(requested)
        if not p.exists():
            raise FileNotFoundError(f"--checkpoint {p}: no such file")
        return p.resolve()
    from ..recalibration import default_checkpoint
    shipped = default_checkpoint()
    if shipped.exists():
        return shipped
    target = out / "checkpoint" / "small_synthetic"
    _step(f"NO recalibration checkpoint at {shipped} (the shipped one is missing); training a stand-in on "
          f"{frames} synthetic frames for {minutes:g} min (a weak model: ship the real one) -> {target}.safetensors")
    cmd = [sys.executable, "-m", "racalnet_ros.cli", "train", "--dataset", "synthetic", "--preset", "small",
           "--out", str(out / "train"), "--max-minutes", str(minutes),
           "--train-seeds", f"0:{frames}", "--val-seeds", f"100000:{100000 + max(4, frames // 6)}",
           "--device", "cpu" if device == "auto" else device,
           "--export", str(target)]
    _step("  " + " ".join(cmd))
    with open(out / "train.log", "wb") as fh:
        # own process group: data-loader workers go too if the demo is interrupted
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=minutes * 60 + 600)
        except subprocess.TimeoutExpired:
            rc = -1
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
    ckpt = target.with_suffix(".safetensors")
    if rc != 0 or not ckpt.exists():
        tail = "\n".join((out / "train.log").read_text(errors="replace").splitlines()[-20:])
        raise FileNotFoundError(f"training a fallback checkpoint failed (exit {rc}); see {out / 'train.log'}:\n{tail}")
    return ckpt


def synthetic_frames(n: int, seed: int, width: int, height: int) -> list:
    from ..datasets.synthetic import SynthConfig, SyntheticDataset
    cfg = SynthConfig(width=width, height=height)
    return list(SyntheticDataset.generate(list(range(seed, seed + n)), cfg))


# ---------------------------------------------------------------------------------------------------------------
# drawing (OpenCV; images are RGB in memory, BGR on disk)
def colorize_depth(depth: np.ndarray, near: float = 2.0, far: float = 80.0) -> np.ndarray:
    """The package's colour map (metric_depth.output.colorize_depth) over `near` .. `far` metres."""
    from ..metric_depth.output import colorize_depth as _colorize
    return _colorize(depth, near, far)


def _depth_colour(depth: float) -> tuple[int, int, int]:
    rgb = colorize_depth(np.array([[depth]], np.float32))[0, 0]
    return int(rgb[2]), int(rgb[1]), int(rgb[0])  # BGR for cv2 drawing


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
    from ..ros import bag as bagio
    img = np.ascontiguousarray(frame.image[:, :, ::-1])
    p = geometry.project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    for u, v in p.uv:
        cv2.circle(img, (int(round(u)), int(round(v))), 1, (200, 200, 200), -1, cv2.LINE_AA)
    n = 0
    if anchors_msg is not None:
        a = bagio.pointcloud_to_array(anchors_msg, ("z", "u", "v", "confidence"))
        n = len(a)
        for z, u, v, c in a:
            cv2.circle(img, (int(round(u)), int(round(v))), 4, _depth_colour(z), -1, cv2.LINE_AA)
            cv2.circle(img, (int(round(u)), int(round(v))), 4, (0, 0, 0), 1, cv2.LINE_AA)
    _label(img, f"grey: raw radar projections ({len(p)}); colour: node anchors ({n}), by depth")
    return img


def draw_depth(frame, depth: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """BGR panel: node depth (colour map) | image with LiDAR ground truth dots in the same colour map."""
    import cv2
    left = colorize_depth(depth)[:, :, ::-1].copy()
    right = (frame.image[:, :, ::-1] * 0.6).astype(np.uint8)
    rows, cols = np.nonzero(gt > 0)
    colours = colorize_depth(gt[rows, cols][None, :])[0][:, ::-1]
    for r, c, col in zip(rows, cols, colours):
        cv2.circle(right, (int(c), int(r)), 2, tuple(int(x) for x in col), -1)
    _label(left, "racalnet_node depth/image (red 2 m .. blue 80 m)")
    _label(right, "LiDAR ground truth")
    return np.concatenate([left, right], axis=1)


# ---------------------------------------------------------------------------------------------------------------
def raw_radar_baseline(bag: Path, device: str) -> dict:
    """The same pipeline without recalibration (raw radar projections as anchors), in-process on the bag's frames:
    the reference row that shows what recalibration changes."""
    from ..metrics import MetricAccumulator
    from ..pipeline import Pipeline, PipelineConfig
    from ..ros import bag as bagio
    from .evaluate_bag import lidar_ground_truth
    cfg = PipelineConfig()
    cfg.prior.source = "frame"
    cfg.device = "cpu" if device == "auto" else device
    pipe = Pipeline.from_config(cfg.ablation("no-recalibration"))
    acc = MetricAccumulator()
    for frame in bagio.read_frames(bag):
        acc.add(pipe.run(frame).depth, lidar_ground_truth(frame))
    return acc.summary()


def write_demo_report(out: Path, bag: Path, out_bag: Path, scores: dict, stats, baseline: dict | None,
                      baseline_note: str, ckpt: Path | None, n_png: int, t_total: float) -> Path:
    import cv2

    from ..metrics import format_table
    from ..ros import bag as bagio
    from .evaluate_bag import ANCHORS_TOPIC, DEPTH_TOPIC, _jsonable, lidar_ground_truth, read_outputs

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
            cv2.imwrite(str(d_png), draw_depth(f, bagio.image_to_array(depth_msgs[s]), lidar_ground_truth(f)))
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
    from ..ros.bag import BagError, write_bag
    from .evaluate_bag import RunError, evaluate, terminate_on_sigterm

    terminate_on_sigterm()
    t0 = time.monotonic()
    out = Path(args.out or f"runs/demo-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}").resolve()
    if (out / "input_bag").exists() or (out / "outputs").exists():
        print(f"demo: {out} already holds a demo run; choose another --out", file=sys.stderr)
        return 1
    out.mkdir(parents=True, exist_ok=True)
    try:
        from .evaluate_bag import parse_sets
        overrides = {"device": args.device, **parse_sets(args.set)}
        if overrides.get("recalibration.enabled", True) is False:
            ckpt = None
            _step("recalibration disabled (--set recalibration.enabled=false): no checkpoint needed")
        else:
            ckpt = ensure_checkpoint(args.checkpoint, out, args.train_minutes, args.device, args.train_frames)
            overrides["recalibration.checkpoint"] = str(ckpt)
            _step(f"checkpoint: {ckpt}")
        _step(f"generating {args.frames} synthetic frames ({args.width}x{args.height}, seeds {args.seed}..)")
        frames = synthetic_frames(args.frames, args.seed, args.width, args.height)
        bag = out / "input_bag"
        summary = write_bag(frames, bag, storage=args.storage, extrinsics="first",
                            custom={"racalnet.dataset": "synthetic"})
        del frames
        _step(f"wrote {bag} ({summary.storage}: " + ", ".join(f"{t} x{n}" for t, n in summary.topics.items()) + ")")
        _step("starting racalnet_node and replaying the bag on loopback DDS (lockstep) ...")
        scores, stats, out_bag = evaluate(bag, out, overrides=overrides, pace="lockstep", storage=args.storage,
                                          domain_id=args.domain_id, frame_timeout=args.frame_timeout)
        _step(f"node answered {stats.frames_answered}/{stats.frames_published} frames in {stats.seconds:.0f} s")
        baseline, note = None, ""
        try:
            if ckpt is not None:  # with recalibration off the node's row already is this one
                _step("scoring the same pipeline without recalibration (reference row) ...")
                baseline = raw_radar_baseline(bag, args.device)
        except Exception as exc:  # the reference row is optional; the node's row is the demo's result
            note = f"(Reference row without recalibration unavailable: {type(exc).__name__}: {exc}.)"
            _step(note)
        report = write_demo_report(out, bag, out_bag, scores, stats, baseline, note, ckpt, args.pngs,
                                   time.monotonic() - t0)
    except (BagError, RunError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"demo: FAILED: {exc}", file=sys.stderr)
        return 1
    from .evaluate_bag import metrics_markdown
    print(metrics_markdown(scores, "racalnet_node"))
    ok = scores["n_scored"] == scores["n_frames"] and scores["n_frames"] > 0
    if not ok:
        print(f"demo: only {scores['n_scored']} of {scores['n_frames']} frames got a depth image", file=sys.stderr)
    print(f"report: {report}")
    return 0 if ok else 1
