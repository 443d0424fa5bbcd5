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

Outputs in --out: results.json (standard JSON: summaries, settings, per-configuration diagnostics, the resolved
checkpoint and its provenance, the frames that could not be used), results.md (tables + command);
--save-depth: <out>/<configuration>/depth/<frame_id>.png (uint16, metres x 256, 0 = invalid, full camera
resolution) and <out>/<configuration>/anchors/<frame_id>.npy (float32 N x 4: u, v, depth, confidence of the kept
anchors); --figures K: <out>/<configuration>/figures/<frame_id>.png for the first K frames.

A frame that cannot be used (a missing or corrupt file, no LiDAR) is named in the log and in results.json
("bad_frames") and the others are evaluated; the exit code is then 1 unless --skip-bad is given. With a real
dataset and a checkpoint trained on synthetic data only, one line says so (and how to train on your own data).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import math
import sys
import time

from ..errors import RacalnetError, UsageError

HELP = "evaluate dense depth (full / no-displacement / no-recalibration / baseline) against LiDAR, paper Table IV"

log = logging.getLogger("racalnet.evaluate")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .options import add_alias, add_bag_options, add_pipeline_options, add_skip_bad_option, add_synth_config_option

    p.add_argument("--dataset", required=True,
                   help="astyx | zju | synthetic | bag, or MODULE:CLASS of a FrameDataset taking the root folder")
    p.add_argument("--root", default="", help="dataset folder (synthetic: a folder written by `racalnet synth`; bag: "
                                              "the rosbag2 directory)")
    p.add_argument("--seeds", default="", help="synthetic only, instead of --root: generate these seeds on the fly "
                                               "(A-B inclusive, e.g. 1000-1019, or 5,7,9)")
    add_synth_config_option(p)
    p.add_argument("--frames", default="", help="frame ids or numeric ranges, e.g. 80-99 or 000080,000081")
    p.add_argument("--split", default="", help="named split of the dataset (e.g. val)")
    p.add_argument("--ablation", default="all",
                   help="full | no-displacement | no-recalibration | baseline | all, or a comma-separated list")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--save-depth", action="store_true", help="write depth PNGs and kept anchors per frame")
    p.add_argument("--figures", type=int, default=0, metavar="K", help="figures for the first K frames")
    p.add_argument("--lidar-bound", action="store_true",
                   help=f"add the row '{LIDAR_BOUND}': the same Metric Depth Optimization fed with LiDAR anchors "
                        "(every other LiDAR pixel) instead of radar, an oracle for what any anchors can reach with "
                        "this prior; with the baseline row, results.json gets the share of the gap each row closes")
    add_skip_bad_option(p)
    add_pipeline_options(p, device="auto", prior="frame")
    add_alias(p, "--fp16", "prior.fp16", const=True, help="half-precision prior network on CUDA")
    add_alias(p, "--threshold", "recalibration.threshold", help="recalibration confidence threshold (<0: checkpoint's)")
    add_bag_options(p)


#: the oracle row of --lidar-bound (never a method: its anchors are the ground truth)
LIDAR_BOUND = "lidar-anchor bound"


def lidar_anchors(gt) -> tuple:
    """(uv K x 2, depth K) of every other valid pixel of a LiDAR depth map, in raster order: the anchors of the
    --lidar-bound row (half the LiDAR, so the other half still scores pixels no anchor sits on)."""
    import numpy as np

    vv, uu = np.nonzero(np.isfinite(gt) & (gt > 0))
    vv, uu = vv[::2], uu[::2]
    return np.stack([uu, vv], 1).astype(np.float32), gt[vv, uu].astype(np.float64)


def gap_closed(summaries: dict, rng: str = "0-50") -> dict:
    """Share of the RMSE gap between the baseline row and the LiDAR-anchor bound that each row closes (1 = reaches
    the bound, 0 = no better than the baseline); {} without both rows."""
    try:
        base, bound = summaries["baseline"][rng]["rmse"], summaries[LIDAR_BOUND][rng]["rmse"]
    except KeyError:
        return {}
    if not base > bound:
        return {}
    return {n: (base - s[rng]["rmse"]) / (base - bound) for n, s in summaries.items() if n != LIDAR_BOUND}


def parse_configurations(text: str) -> list[str]:
    from ..config import ABLATIONS

    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names or names == ["all"]:
        return list(ABLATIONS)
    bad = [n for n in names if n not in ABLATIONS]
    if bad:
        raise UsageError(f"--ablation: unknown configuration(s) {bad}; choose from {', '.join(ABLATIONS)} or all")
    return names


def select_frames(ds, text: str):
    """Restrict a dataset to --frames: exact ids, or numbers / ranges matched against numeric ids."""
    from .options import parse_ranges

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
        for n in parse_ranges(tok, "--frames"):
            if n not in by_num:
                raise UsageError(f"--frames: no frame numbered {n} in {ds.name}")
            ids.append(by_num[n])
    return ds.subset(ids)


def open_frames(args):
    """The dataset view to evaluate (kind, root or seeds, split, frames)."""
    from .options import dataset_kwargs, parse_ranges, synth_config

    if args.dataset == "synthetic" and args.seeds:
        from ..datasets.synthetic import SyntheticDataset

        ds = SyntheticDataset.generate(parse_ranges(args.seeds, "--seeds"), synth_config(args))
    elif ":" in args.dataset:
        module, _, cls = args.dataset.partition(":")
        ds = getattr(importlib.import_module(module), cls)(args.root)
    else:
        from ..datasets import open_dataset

        if not args.root:
            raise UsageError("--root is required for this dataset")
        ds = open_dataset(args.dataset, args.root, **dataset_kwargs(args))
    if args.split:
        ds = ds.split(args.split)
    return select_frames(ds, args.frames)


def build_pipelines(names, base) -> dict:
    """{configuration: Pipeline}, each from `base.ablation(name)`, all sharing one prior instance (its network is
    loaded once). A checkpoint or prior that cannot be loaded stops the command (pipeline.py decides, as everywhere)."""
    from ..config import resolve_device
    from ..pipeline import Pipeline, load_prior

    base = base.validate()
    shared = load_prior(base.prior, resolve_device(base.device))
    pipes = {}
    for name in names:
        try:
            pipes[name] = Pipeline.from_config(base.ablation(name), prior=shared)
        except RacalnetError as exc:
            raise type(exc)(f"configuration {name!r}: {exc}") from None
    return pipes


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from ..geometry import lidar_depth_map
    from ..metric_depth.output import figure, write_anchors, write_depth_png, write_figure
    from ..metrics import MetricAccumulator, format_table
    from ..summary import write_json
    from .options import bad_frames_exit, check_output_folder, setup

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = parse_configurations(args.ablation)
    out = check_output_folder(args.out)
    base = setup(args)
    ds = open_frames(args)
    pipes = build_pipelines(names, base)
    prior = next(iter(pipes.values())).prior  # the one shared instance
    ckpt = next((p.checkpoint_info() for p in pipes.values() if p.checkpoint is not None),
                {"checkpoint": None, "provenance": None})
    described = ds.describe() if hasattr(ds, "describe") else {}
    if described.get("real"):  # the synthetic default meets a real sensor: say it once
        warning = next((w for w in (p.synthetic_on_real_warning() for p in pipes.values()) if w), None)
        if warning:
            print(f"racalnet evaluate: {warning}", file=sys.stderr, flush=True)
    crop = getattr(ds, "eval_crop_rows", None)
    rows = [*pipes, *([LIDAR_BOUND] if args.lidar_bound else [])]
    acc = {n: MetricAccumulator() for n in rows}
    stats = {n: {"fallbacks": {}, "anchors_total": [], "anchors_kept": [], "anchors_used": [], "scale": [],
                 "shift": [], "times_ms": {}} for n in rows}
    bound = None
    if args.lidar_bound:
        from ..metric_depth.aligner import Aligner

        bound = Aligner(base.align, base.refine, base.smooth, device=next(iter(pipes.values())).aligner.device)
    frame_ids: list[str] = []
    bad: list[tuple[str, str]] = []  # frames that could not be used: (frame id, reason)
    prior_ms: list[float] = []
    t_start = time.perf_counter()
    for k, frame in enumerate(ds.iter_frames(skip_bad=True)):
        t0 = time.perf_counter()
        try:
            p = prior.predict(frame)  # once per frame, shared by every configuration
            gt = lidar_depth_map(frame, required=True)
        except RacalnetError as exc:
            bad.append((frame.frame_id, " ".join(str(exc).split())))
            log.warning("frame %s cannot be used: %s", frame.frame_id, bad[-1][1])
            continue
        prior_ms.append((time.perf_counter() - t0) * 1e3)
        frame_ids.append(frame.frame_id)
        for name, pipe in pipes.items():
            pipe.aligner.reset()  # frames are independent samples
            res = pipe.run(frame, prior=p)
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
        if bound is not None:
            bound.reset()
            uv, d = lidar_anchors(gt)
            b = bound.run(p, uv, d)
            acc[LIDAR_BOUND].add(b.depth, gt, crop_rows=crop)
            st = stats[LIDAR_BOUND]
            for f in b.fallbacks:
                st["fallbacks"][f] = st["fallbacks"].get(f, 0) + 1
            for key, value in (("anchors_total", len(d)), ("anchors_kept", len(d)), ("anchors_used", b.used.sum()),
                               ("scale", b.fit.scale), ("shift", b.fit.shift)):
                st[key].append(float(value))
        log.info("frame %s done (%d/%d)", frame.frame_id, k + 1, len(ds))
    bad = [(f, " ".join(r.split())) for f, r in getattr(ds, "skipped", [])] + bad
    if not frame_ids:
        raise UsageError("no frame could be used" + (f" ({bad[0][0]}: {bad[0][1]}" + (" ..." if len(bad) > 1 else "")
                                                     + ")" if bad else ""))

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
        "dataset": args.dataset, "root": args.root, "seeds": args.seeds, "split": args.split,
        "prior": base.prior.spec(), **ckpt, "data": described, "frames": frame_ids,
        "n_frames": len(frame_ids), "bad_frames": dict(bad),
        "eval_crop_rows": list(crop) if crop else None,
        "configurations": summaries, "gap_closed_0_50": gap_closed(summaries), "diagnostics": diag, "prior_ms_median": med(prior_ms),
        "pipeline_config": base.to_flat(), "wall_s": time.perf_counter() - t_start, "command": command,
    }
    write_json(out / "results.json", results)
    md = [f"# Evaluation: {args.dataset} ({len(frame_ids)} frames), prior {base.prior.spec()}", ""]
    if command:
        md += ["```", command, "```", ""]
    md += [table, ""]
    if results["gap_closed_0_50"]:
        md += ["Share of the 0-50 m RMSE gap between the baseline and the LiDAR-anchor bound closed: "
               + ", ".join(f"{n} {v:.0%}" for n, v in results["gap_closed_0_50"].items()), ""]
    md += ["| configuration | fallbacks | anchors in image (median) | kept | used by the fit |", "|---|---|---|---|---|"]
    for n, d in diag.items():
        fb = ", ".join(f"{k} x{v}" for k, v in d["fallbacks"].items()) or "none"
        md.append(f"| {n} | {fb} | {d['anchors_total_median']:.0f} | {d['anchors_kept_median']:.0f} | "
                  f"{d['anchors_used_median']:.0f} |")
    (out / "results.md").write_text("\n".join(md) + "\n")
    print(f"\nwrote {out / 'results.json'} and {out / 'results.md'}")
    return bad_frames_exit("evaluate", bad, len(frame_ids) + len(bad), args.skip_bad)
