"""`racalnet evaluate`: dense depth against sparse LiDAR, per range, for the paper's configurations (Table IV).

Configurations (same prior, same frames):
  full              Radar Recalibration (screening + displacement) -> Metric Depth Optimization
  no-displacement   screening only (displacement set to zero)
  no-recalibration  raw radar projections into the same Metric Depth Optimization
  baseline          RadarCam-Depth stage 2: plain least squares in inverse depth on raw radar, no threshold search,
                    no refinement, no smoothing

The prior is computed once per frame and shared by every configuration. Frames are independent samples: the
aligner's "previous fit" memory is reset before each frame. Ground truth is the frame's sparse LiDAR depth map
(geometry.lidar_depth_map), cropped to the dataset's eval_crop_rows. Pixels the pipeline leaves NaN are handled by
metrics.py's policy (excluded, reported as coverage).

Outputs in --out: results.json (summaries, settings, per-configuration diagnostics), results.md (tables + command);
--save-depth: <out>/<configuration>/depth/<frame_id>.png (uint16, metres x 256, 0 = invalid, full camera
resolution) and <out>/<configuration>/anchors/<frame_id>.npy (float32 N x 4: u, v, depth, confidence of the kept
anchors); --figures K: <out>/<configuration>/figures/<frame_id>.png for the first K frames.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import logging
import math
import sys
import time
from pathlib import Path

HELP = "evaluate dense depth (full / no-displacement / no-recalibration / baseline) against LiDAR, paper Table IV"

log = logging.getLogger("racalnet.evaluate")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True,
                   help="astyx | zju | synthetic, or MODULE:CLASS of a FrameDataset taking the root folder")
    p.add_argument("--root", default="", help="dataset folder (synthetic: a folder written by `racalnet synth`)")
    p.add_argument("--seeds", default="", help="synthetic only, instead of --root: generate these seeds on the fly "
                                               "(e.g. 1000-1019 or 5,7,9)")
    p.add_argument("--checkpoint", default="", help="recalibration checkpoint (.safetensors; default: shipped one)")
    p.add_argument("--prior", default="frame",
                   help="precomputed:DIR | depth-anything-v2[:ID_OR_PATH] | synthetic | frame (default)")
    p.add_argument("--frames", default="", help="frame ids or numeric ranges, e.g. 80-99 or 000080,000081")
    p.add_argument("--split", default="", help="named split of the dataset (e.g. val)")
    p.add_argument("--ablation", default="all",
                   help="full | no-displacement | no-recalibration | baseline | all, or a comma-separated list")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--save-depth", action="store_true", help="write depth PNGs and kept anchors per frame")
    p.add_argument("--figures", type=int, default=0, metavar="K", help="figures for the first K frames")
    p.add_argument("--config", default="", help="pipeline YAML (plain or ROS parameter layout)")
    p.add_argument("--device", default="auto", help="auto (cuda when available, else cpu) | cpu | cuda | cuda:N")
    p.add_argument("--fp16", action="store_true", help="half-precision prior network on CUDA")
    p.add_argument("--threshold", type=float, default=-1.0, help="recalibration confidence threshold (<0: checkpoint's)")


def parse_configurations(text: str) -> list[str]:
    from ..pipeline import ABLATIONS

    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names or names == ["all"]:
        return list(ABLATIONS)
    bad = [n for n in names if n not in ABLATIONS]
    if bad:
        raise SystemExit(f"racalnet evaluate: --ablation: unknown configuration(s) {bad}; choose from "
                         f"{', '.join(ABLATIONS)} or all")
    return names


def parse_int_list(text: str) -> list[int]:
    """"80-99" / "5,7,9" / "1-3,8" -> ints."""
    out: list[int] = []
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            continue
        a, sep, b = tok.partition("-")
        try:
            out.extend(range(int(a), int(b) + 1) if sep else [int(a)])
        except ValueError:
            raise SystemExit(f"racalnet evaluate: cannot parse {tok!r} (expected N or N-M)") from None
    return out


def select_frames(ds, text: str):
    """Restrict a dataset to --frames: exact ids, or numbers / ranges matched against numeric ids."""
    if not text:
        return ds
    by_num = {}
    for i in ds.ids:
        if i.isdigit():
            by_num.setdefault(int(i), i)
    ids: list[str] = []
    for tok in (t.strip() for t in text.split(",")):
        if not tok:
            continue
        if tok in ds.ids:
            ids.append(tok)
            continue
        for n in parse_int_list(tok):
            if n not in by_num:
                raise SystemExit(f"racalnet evaluate: --frames: no frame numbered {n} in {ds.name}")
            ids.append(by_num[n])
    return ds.subset(ids)


def open_frames(args):
    """The dataset view to evaluate (kind, root or seeds, split, frames)."""
    if args.dataset == "synthetic" and args.seeds:
        from ..datasets.synthetic import SyntheticDataset

        ds = SyntheticDataset.generate(parse_int_list(args.seeds))
    elif ":" in args.dataset:
        module, _, cls = args.dataset.partition(":")
        ds = getattr(importlib.import_module(module), cls)(args.root)
    else:
        from ..datasets import open_dataset

        if not args.root:
            raise SystemExit("racalnet evaluate: --root is required for this dataset")
        ds = open_dataset(args.dataset, args.root)
    if args.split:
        ds = ds.split(args.split)
    return select_frames(ds, args.frames)


def lidar_ground_truth(frame):
    """Sparse LiDAR depth map of the frame (H x W metres, 0 = none)."""
    from .. import geometry

    if frame.lidar is None:
        raise SystemExit(f"racalnet evaluate: frame {frame.frame_id} has no LiDAR: nothing to evaluate against")
    return geometry.lidar_depth_map(frame)


def build_pipelines(names, base, checkpoint: str, threshold: float):
    """{configuration: Pipeline}; recalibrated configurations need the checkpoint. Returns (pipelines, skipped)."""
    from ..metric_depth.aligner import Aligner
    from ..pipeline import Pipeline, load_recalibrator

    pipes, skipped = {}, {}
    for name in names:
        cfg = base.ablation(name)
        cfg.recalibration.checkpoint = checkpoint or cfg.recalibration.checkpoint
        if threshold >= 0:
            cfg.recalibration.threshold = threshold
        rec = None
        if cfg.recalibration.enabled:
            try:
                rec = load_recalibrator(cfg.recalibration, cfg.device)
            except (RuntimeError, OSError, ValueError) as exc:
                skipped[name] = str(exc)
                continue
        pipes[name] = Pipeline(rec, None, Aligner(cfg.align, cfg.refine, cfg.smooth, device=cfg.device), cfg)
    return pipes, skipped


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from ..metric_depth.output import figure, write_anchors, write_depth_png, write_figure
    from ..metric_depth.priors import make_prior
    from ..metrics import MetricAccumulator, format_table
    from ..pipeline import PipelineConfig, resolve_device

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = parse_configurations(args.ablation)
    base = PipelineConfig.from_yaml(args.config) if args.config else PipelineConfig()
    try:
        args.device = resolve_device(args.device)
    except ValueError as exc:
        raise SystemExit(f"racalnet evaluate: --device: {exc}") from None
    base.device = args.device
    pipes, skipped = build_pipelines(names, base, args.checkpoint, args.threshold)
    explicit = args.ablation.strip() != "all"
    if skipped and (explicit or not pipes):
        for n, why in skipped.items():
            print(f"racalnet evaluate: configuration {n!r} needs the recalibration checkpoint: {why}", file=sys.stderr)
        return 2
    for n, why in skipped.items():
        print(f"racalnet evaluate: skipping {n!r} (no recalibration checkpoint: {why})", file=sys.stderr)

    ds = open_frames(args)
    prior = make_prior(args.prior, device=args.device, fp16=args.fp16)
    crop = getattr(ds, "eval_crop_rows", None)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    acc = {n: MetricAccumulator() for n in pipes}
    stats = {n: {"fallbacks": {}, "anchors_total": [], "anchors_kept": [], "anchors_used": [], "scale": [],
                 "shift": [], "times_ms": {}} for n in pipes}
    frame_ids: list[str] = []
    prior_ms: list[float] = []
    t_start = time.perf_counter()
    for k, frame in enumerate(ds.iter_frames(skip_bad=True)):
        t0 = time.perf_counter()
        p = prior.predict(frame)
        prior_ms.append((time.perf_counter() - t0) * 1e3)
        frame = dataclasses.replace(frame, prior=p)
        gt = lidar_ground_truth(frame)
        frame_ids.append(frame.frame_id)
        for name, pipe in pipes.items():
            pipe.aligner.reset()  # frames are independent samples
            res = pipe.run(frame)
            acc[name].add(res.depth, gt, crop_rows=crop)
            st, dg = stats[name], res.diagnostics
            for f in dg["fallbacks"]:
                st["fallbacks"][f] = st["fallbacks"].get(f, 0) + 1
            for key in ("anchors_total", "anchors_kept", "anchors_used", "scale", "shift"):
                st[key].append(float(dg[key]))
            for stage, ms in dg["times_ms"].items():
                st["times_ms"].setdefault(stage, []).append(ms)
            if args.save_depth:
                write_depth_png(out / name / "depth" / f"{frame.frame_id}.png", res.depth)
                write_anchors(out / name / "anchors" / f"{frame.frame_id}.npy", res.anchors)
            if k < args.figures:
                fig = figure(frame, res.depth, res.anchors, gt, pipe.config.align.min_depth,
                             pipe.config.align.max_depth, title=name)
                write_figure(out / name / "figures" / f"{frame.frame_id}.png", fig)
        log.info("frame %s done (%d/%d)", frame.frame_id, k + 1, len(ds))
    if not frame_ids:
        print("racalnet evaluate: no frame could be loaded", file=sys.stderr)
        return 1

    summaries = {n: a.summary() for n, a in acc.items()}
    table = format_table(summaries)
    print(table)

    def med(v):
        return float(np.median(v)) if len(v) else math.nan

    diag = {n: {"fallbacks": st["fallbacks"],
                **{f"{k}_median": med(st[k]) for k in ("anchors_total", "anchors_kept", "anchors_used", "scale")},
                "times_ms_median": {s: med(v) for s, v in st["times_ms"].items()}}
            for n, st in stats.items()}
    command = "racalnet evaluate " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["evaluate"] else ""
    results = {
        "dataset": args.dataset, "root": args.root, "seeds": args.seeds, "split": args.split, "prior": args.prior,
        "checkpoint": args.checkpoint, "frames": frame_ids, "n_frames": len(frame_ids),
        "skipped_frames": [list(s) for s in getattr(ds, "skipped", [])],
        "skipped_configurations": skipped, "eval_crop_rows": list(crop) if crop else None,
        "configurations": summaries, "diagnostics": diag, "prior_ms_median": med(prior_ms),
        "pipeline_config": base.to_flat(), "wall_s": time.perf_counter() - t_start, "command": command,
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, allow_nan=True))
    md = [f"# Evaluation: {args.dataset} ({len(frame_ids)} frames), prior {args.prior}", ""]
    if command:
        md += ["```", command, "```", ""]
    md += [table, ""]
    if skipped:
        md += ["Skipped configurations: " + ", ".join(f"{n} ({why})" for n, why in skipped.items()), ""]
    md += ["| configuration | fallbacks | anchors in image (median) | kept | used by the fit |", "|---|---|---|---|---|"]
    for n, d in diag.items():
        fb = ", ".join(f"{k} x{v}" for k, v in d["fallbacks"].items()) or "none"
        md.append(f"| {n} | {fb} | {d['anchors_total_median']:.0f} | {d['anchors_kept_median']:.0f} | "
                  f"{d['anchors_used_median']:.0f} |")
    (out / "results.md").write_text("\n".join(md) + "\n")
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'}")
    return 0
