"""`racalnet demo` (run by `bash scripts/demo.sh`): the whole system on one machine, in a few minutes on a CPU.

1. the recalibration checkpoint: --checkpoint, else the shipped racalnet_ros/checkpoints/small_synthetic.safetensors
   (it always ships; a missing one stops the demo at once with one line, as every command does);
2. a rosbag2 of the frames: synthetic (default; racalnet_ros.datasets.synthetic, --frames frames of --width x
   --height, with the generator's simulated prior) or, with `--dataset astyx` / `--real`, the shared real Astyx
   HiRes2019 frames (--frames, default the test frames 80-99) with their precomputed FastDepth priors;
3. racalnet_node as a subprocess (own process group) and the bag replayed to it on loopback DDS with its own
   ROS_DOMAIN_ID, lockstep (one frame, wait for its depth, next) so every frame is scored whatever the CPU;
4. the node's outputs recorded to a bag and scored against the bag's LiDAR with the paper's metrics, next to the
   same pipeline run in-process on the same frames without recalibration and as the baseline (config ablations),
   and the prior alone, fitted to the LiDAR itself;
5. a report (markdown + PNGs of the image with raw and recalibrated anchors, and the coloured depth next to the
   LiDAR ground truth, with colour bars; what limits the numbers, stated plainly) whose path is printed last.

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

HELP = ("end-to-end demo: synthetic (or, with --real, real Astyx) bag -> racalnet_node on loopback DDS -> recorded "
        "outputs -> metrics + PNG report")

#: the real demo's frames: the Astyx test frames (never used to train or select anything shipped)
ASTYX_DEMO_FRAMES = "80-99"

log = logging.getLogger("racalnet.demo")


def add_arguments(p) -> None:
    from .options import add_pipeline_options

    p.add_argument("--dataset", choices=("synthetic", "astyx"), default="synthetic",
                   help="synthetic frames (default) or the shared real Astyx HiRes2019 frames")
    p.add_argument("--real", dest="dataset", action="store_const", const="astyx", help="= --dataset astyx")
    p.add_argument("--root", default=None,
                   help="astyx: the Astyx HiRes2019 folder (default: $RACALNET_ASTYX_ROOT, else "
                        "../shared/data/astyx_hires2019 from the current folder or the repository)")
    p.add_argument("--prior-dir", default="mono_fastdepth",
                   help="astyx: precomputed prior folder (relative to --root) replayed on /prior/inverse_depth")
    p.add_argument("--out", default=None, help="output folder (default: runs/demo-<UTC time>)")
    p.add_argument("--frames", default=None,
                   help=f"synthetic: number of frames (default 12); astyx: frame numbers, e.g. 80-99 or 80,85,90 "
                        f"(default {ASTYX_DEMO_FRAMES}, the test frames)")
    p.add_argument("--seed", type=int, default=1000, help="first synthetic seed (frames use seed .. seed+frames-1)")
    p.add_argument("--width", type=int, default=640, help="synthetic image width")
    p.add_argument("--height", type=int, default=480, help="synthetic image height")
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


def astyx_root(given: str | None) -> Path:
    """--root, else $RACALNET_ASTYX_ROOT, else ../shared/data/astyx_hires2019 from the current folder or from the
    repository holding this package. Only read, never copied."""
    import os
    rel = Path("..") / "shared" / "data" / "astyx_hires2019"
    candidates = [Path(given)] if given else [
        *([Path(os.environ["RACALNET_ASTYX_ROOT"])] if os.environ.get("RACALNET_ASTYX_ROOT") else []),
        Path.cwd() / rel, Path(__file__).resolve().parents[2] / rel]
    for c in candidates:
        if (c / "dataset.json").is_file() or (c / "calibration").is_dir():
            return c.resolve()
    raise UsageError(f"--root: no Astyx HiRes2019 frames at {' or '.join(str(c) for c in candidates)} (the real demo "
                     "reads the shared Astyx frames; give --root DIR)")


def astyx_frames(root: Path, frames: str, prior_dir: str) -> list:
    """The chosen Astyx frames with their precomputed priors (resized to the image); every one must load."""
    from ..datasets import open_dataset
    from .options import parse_ranges
    ds = open_dataset("astyx", root, prior_dir=prior_dir)
    return list(ds.subset([f"{n:06d}" for n in parse_ranges(frames, "--frames")]).iter_frames())


def demo_frames(args) -> tuple[list, str, str]:
    """(frames, --extrinsics policy of write_bag, a one-line description) of the chosen dataset."""
    if args.dataset == "astyx":
        root = astyx_root(args.root)
        text = args.frames or ASTYX_DEMO_FRAMES
        _step(f"reading Astyx frames {text} from {root} (prior: {args.prior_dir})")
        frames = astyx_frames(root, text, args.prior_dir)
        return frames, "same", f"{len(frames)} real Astyx HiRes2019 frames ({text}) from `{root}`"
    try:
        n = int(args.frames or 12)
    except ValueError:
        raise UsageError(f"--frames: a number of synthetic frames, got {args.frames!r}") from None
    if n < 1:
        raise UsageError(f"--frames: at least 1, got {n}")
    _step(f"generating {n} synthetic frames ({args.width}x{args.height}, seeds {args.seed}..)")
    return synthetic_frames(n, args.seed, args.width, args.height), "first", f"{n} synthetic frames"


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
#: rows computed in-process next to the node's: ablations of the node's own configuration (config.ABLATIONS)
REFERENCE_ROWS = {"no-recalibration": "same pipeline, raw radar (no recalibration)",
                  "baseline": "baseline: RadarCam-Depth stage 2 on raw radar"}
NODE_ROW = "racalnet_node (full: recalibrated radar)"
PRIOR_LIMIT_ROW = "prior fitted to the LiDAR itself (one affine map per frame)"


def prior_fitted_to_lidar(prior: np.ndarray, gt: np.ndarray, align) -> np.ndarray:
    """How good the prior itself is on a frame: one affine map of its inverse depth fitted (least squares, Eq. 11
    without regulariser) to every LiDAR pixel, with the pipeline's depth clamp: what a global alignment reaches with
    perfect anchors everywhere the LiDAR is (local refinement can do better where the prior's error is local). NaN
    when the fit is singular."""
    import torch

    from ..metric_depth.align import affine_rows, apply_affine, solve_affine

    m = gt > 0
    x, y = (torch.from_numpy(a[m].astype(np.float64)) for a in (prior, 1.0 / np.where(m, gt, 1.0)))
    theta, ok = solve_affine(affine_rows(x, y, torch.ones_like(x)).sum(0))
    if not bool(ok):
        return np.full(gt.shape, np.nan, np.float32)
    return apply_affine(prior, float(theta[0]), float(theta[1]), align.min_depth, align.max_depth)


def reference_rows(bag: Path, cfg, names) -> tuple[dict, dict]:
    """({row: MetricAccumulator summary}, stats): the node's pipeline configuration `cfg` as the ablations `names`
    (REFERENCE_ROWS) in-process on the bag's frames, and the prior fitted to the LiDAR; stats: frames, mean LiDAR
    pixels per frame."""
    from ..geometry import lidar_depth_map
    from ..metrics import MetricAccumulator
    from ..pipeline import Pipeline
    from ..ros import bag as bagio
    cfg = cfg.with_values({"prior.source": "frame"})
    pipes = {REFERENCE_ROWS[n]: Pipeline.from_config(cfg.ablation(n)) for n in names}
    accs = {label: MetricAccumulator() for label in [*pipes, PRIOR_LIMIT_ROW]}
    lidar_px = []
    for frame in bagio.read_frames(bag):
        gt = lidar_depth_map(frame, required=True)
        lidar_px.append(int((gt > 0).sum()))
        for label, pipe in pipes.items():
            pipe.aligner.reset()  # frames are independent samples
            accs[label].add(pipe.run(frame).depth, gt)
        if frame.prior is not None:
            accs[PRIOR_LIMIT_ROW].add(prior_fitted_to_lidar(frame.prior, gt, cfg.align), gt)
    rows = {k: a.summary() for k, a in accs.items() if a.n_images}
    return rows, {"lidar_pixels_mean": float(np.mean(lidar_px)) if lidar_px else 0.0, "frames": len(lidar_px)}


def _rmse_m(summary: dict, rng: str = "0-80") -> float:
    v = summary.get(rng, {}).get("rmse", float("nan"))
    return float(v) / 1000.0 if v is not None else float("nan")


def limits(dataset: str, rows: dict, stats: dict, ckpt: Path | None) -> list[str]:
    """What limits the numbers, stated plainly (markdown bullets)."""
    limit = _rmse_m(rows.get(PRIOR_LIMIT_ROW, {}))
    if dataset == "synthetic":
        return [
            "- **The prior is simulated from the ground truth.** The synthetic frames carry no network's prediction: "
            "their \"monocular prior\" is the true inverse depth, blurred, bent by a gamma and a low-frequency warp, "
            "put through an unknown affine map and given noise (`racalnet_ros/datasets/synthetic/prior.py`). A real "
            "network's prior is much worse, so these numbers are optimistic: they show that the system runs end to "
            "end, not how accurate it is on real data (`bash scripts/demo.sh --real` for that).",
            "- The scenes, the radar, the LiDAR and the calibration errors are simulated as well; the shipped "
            "checkpoint was trained on the same generator (other seeds; the demo's start at 1000).",
            f"- Ground truth: one simulated LiDAR sweep projected into the image, about "
            f"{stats['lidar_pixels_mean']:.0f} pixels per frame.",
        ]
    out = [
        "- **The prior is weak.** FastDepth (a small network trained on indoor scenes, NYU Depth v2), precomputed at "
        "224x224 and resized to 2048x618, on outdoor road scenes. Even fitted to the LiDAR itself (one affine map "
        f"per frame, perfect anchors wherever the LiDAR is) it reaches only {limit:.1f} m RMSE at 0-80 m (the "
        f"\"{PRIOR_LIMIT_ROW}\" row); the radar-aligned rows start from that handicap. A stronger prior "
        "(`--prior depth-anything-v2`, docs/metric_depth.md) is the first thing to change.",
        f"- **The ground truth is one VLP-16 sweep**: 16 beams about 60 px apart in the image, about "
        f"{stats['lidar_pixels_mean']:.0f} LiDAR pixels per frame on the few rows the beams cross, nothing above or "
        "below them, not occlusion-filtered. The errors are measured only there.",
    ]
    if ckpt is not None:
        full = _rmse_m(rows.get(NODE_ROW, {}))
        raw = _rmse_m(rows.get(REFERENCE_ROWS["no-recalibration"], {}))
        change = (full - raw) / raw * 100 if raw > 0 else float("nan")
        verdict = "helps" if change < 0 else "hurts"
        out.append(
            f"- **The checkpoint was trained on synthetic data only** (`{ckpt.name}`). On these real frames "
            f"recalibration changes the 0-80 m RMSE from {raw:.2f} m (raw radar) to {full:.2f} m ({change:+.0f}%): it "
            f"{verdict} here. To train on real data: `racalnet train --dataset astyx` (trains on frames 0-69, "
            "selects on 70-79, docs/recalibration.md) or on your own recording (docs/bags.md, \"Train on your own "
            "robot\").")
    out.append(f"- These are Astyx test frames (80-99): nothing shipped was trained or selected on them. "
               f"{stats['frames']} frame(s) is a small sample; read differences of a few percent as noise.")
    return out


def write_demo_report(out: Path, bag: Path, out_bag: Path, scores: dict, stats, references: dict,
                      notes: list[str], description: str, dataset: str, ckpt: Path | None, n_png: int,
                      t_total: float) -> Path:
    import cv2

    from ..geometry import lidar_depth_map
    from ..metrics import format_table
    from ..ros import convert
    from ..ros.bag_frames import BagFrames, BagSourceConfig
    from .evaluate_bag import ANCHORS_TOPIC, DEPTH_TOPIC, _jsonable, read_outputs

    depth_msgs, anchor_msgs = read_outputs(out_bag, DEPTH_TOPIC), read_outputs(out_bag, ANCHORS_TOPIC)
    frames = BagFrames(bag, BagSourceConfig.from_values({"sync.slop": 0.0}))  # decoded one at a time, on demand
    picks = sorted({int(round(i)) for i in np.linspace(0, len(frames) - 1, min(n_png, len(frames)))})
    figs = []
    size = "{0.width}x{0.height}".format(frames.load(0))
    for i in picks:
        f = frames.load(i)
        s = f.extras["stamp_ns"]
        a_png, d_png = out / f"frame_{f.frame_id}_anchors.png", out / f"frame_{f.frame_id}_depth.png"
        cv2.imwrite(str(a_png), draw_anchors(f, anchor_msgs.get(s)))
        if s in depth_msgs:
            cv2.imwrite(str(d_png), draw_depth(f, convert.depth_from_image(depth_msgs[s]), lidar_depth_map(f)))
            figs.append((f.frame_id, a_png.name, d_png.name))
        else:
            figs.append((f.frame_id, a_png.name, None))

    rows = {(NODE_ROW if ckpt else "racalnet_node (recalibration off)"): scores["summary"], **references}
    diag = _last_diagnostics(out_bag)
    calib = ("the (miscalibrated) extrinsic" if dataset == "synthetic" else "the dataset's calibration")
    lines = [
        f"# racalnet_ros demo: {'real Astyx frames' if dataset == 'astyx' else 'synthetic frames'}", "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {t_total:.0f} s in all.", "",
        f"- input bag: `{bag}` ({description}, {size})",
        f"- node outputs recorded to: `{out_bag}` ({stats.recorded})",
        f"- recalibration checkpoint: `{ckpt}`" if ckpt else "- recalibration: disabled",
        f"- frames replayed {stats.frames_published}, answered by the node {stats.frames_answered}; node log "
        f"`{out / 'node.log'}`", "",
        "## Depth vs the bag's LiDAR", "",
        "Paper metrics (racalnet_ros.metrics: per image, then averaged; MAE/RMSE/SqRel in mm, iMAE/iRMSE in 1/km). "
        "Ground truth: the bag's single LiDAR sweep projected into the camera. The first row is the node (recorded "
        "outputs); the others run the node's configuration in-process on the same frames and prior: without "
        "recalibration (raw radar projections as anchors), as the baseline (RadarCam-Depth stage 2: one least-squares "
        "fit in inverse depth on the raw radar, no refinement), and the prior alone, fitted to the LiDAR itself with "
        "one affine map per frame (how good the prior is; local refinement can beat it where its error is local).",
        "",
        format_table(rows), "",
        f"Frames scored: {scores['n_scored']} of {scores['n_frames']}"
        + (f"; no output for {', '.join(scores['missing'])}" if scores["missing"] else ""), "",
        "## What limits these numbers", "", *notes, "",
    ]
    if diag:
        lines += ["## Last /diagnostics from the node", "", "| status | key | value |", "|---|---|---|"]
        lines += [f"| {name} | {k} | {v} |" for name, k, v in diag] + [""]
    lines += ["## Frames", "",
              f"Left: grey dots are the radar points projected with {calib}; coloured circles are the node's anchors "
              "after recalibration (kept points, moved by the predicted displacement), coloured by depth. Right: the "
              "node's depth next to the LiDAR ground truth, same colour map (turbo on inverse depth, red = near, "
              "colour bar in metres).", ""]
    for fid, a, d in figs:
        lines += [f"### frame {fid}", "", f"![anchors {fid}]({a})", ""]
        lines += [f"![depth {fid}]({d})", ""] if d else ["(no depth output for this frame)", ""]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n")
    import json
    (out / "metrics.json").write_text(json.dumps(_jsonable({"dataset": dataset, "node": scores,
                                                            "references": references}), indent=1))
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
    from .evaluate_bag import bag_node_parameters, evaluate, metrics_markdown
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
    if args.dataset == "astyx":
        astyx_root(args.root)  # a missing data folder stops the demo before anything is written
    out.mkdir(parents=True, exist_ok=True)
    frames, extrinsics, description = demo_frames(args)
    bag = out / "input_bag"
    summary = write_bag(frames, bag, storage=args.storage, extrinsics=extrinsics,
                        custom={"racalnet.dataset": args.dataset})
    del frames
    _step(f"wrote {bag} ({summary.storage}: " + ", ".join(f"{t} x{n}" for t, n in summary.topics.items()) + ")")
    _step("starting racalnet_node and replaying the bag on loopback DDS (lockstep) ...")
    params = node_parameters(args, implied=bag_node_parameters(bag))
    scores, stats, out_bag = evaluate(bag, out, params, pace="lockstep", storage=args.storage,
                                      domain_id=args.domain_id, frame_timeout=args.frame_timeout)
    _step(f"node answered {stats.frames_answered}/{stats.frames_published} frames in {stats.seconds:.0f} s")
    # with recalibration off the node's row already is the no-recalibration one
    names = ["no-recalibration", "baseline"] if ckpt is not None else ["baseline"]
    _step("scoring the same pipeline in-process: " + ", ".join(names) + ", and the prior fitted to the LiDAR ...")
    references, ref_stats = reference_rows(bag, settings_from_values(params).pipeline, names)
    node_row = NODE_ROW if ckpt else "racalnet_node (recalibration off)"
    notes = limits(args.dataset, {node_row: scores["summary"], **references}, ref_stats, ckpt)
    report = write_demo_report(out, bag, out_bag, scores, stats, references, notes, description, args.dataset,
                               ckpt, args.pngs, time.monotonic() - t0)
    print(metrics_markdown(scores, "racalnet_node"))
    print(f"report: {report}")
    if not (scores["n_scored"] == scores["n_frames"] and scores["n_frames"] > 0):
        raise UsageError(f"only {scores['n_scored']} of {scores['n_frames']} frames got a depth image "
                         f"(report: {report})")
    return 0
