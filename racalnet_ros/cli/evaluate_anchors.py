"""`racalnet evaluate-anchors`: anchor precision / recall / depth error (and pixel error on synthetic data) for raw
radar, screened, and screened + displaced anchors."""

from __future__ import annotations

from ..errors import UsageError

HELP = "score radar anchors against the LiDAR: raw vs screened vs screened+displaced"


def add_arguments(p) -> None:
    from .options import DATASET_KINDS, add_alias, add_bag_options, add_pipeline_options, add_synth_config_option

    p.add_argument("--dataset", required=True, choices=DATASET_KINDS)
    p.add_argument("--root", default=None,
                   help="dataset folder (synthetic: omit to generate --seeds on the fly; bag: the rosbag2 directory)")
    p.add_argument("--split", default="val")
    p.add_argument("--ids", default="", help="only these frame ids of the split, comma-separated")
    p.add_argument("--seeds", default="100000-100039",
                   help="synthetic on-the-fly seeds when --root is not given (A-B inclusive, a,b,c, or A:B)")
    add_synth_config_option(p)
    p.add_argument("--sweep", default="", help="extra thresholds to report, e.g. 0.3,0.5,0.7")
    p.add_argument("--json", default=None, help="write the summary as JSON to this file")
    add_pipeline_options(p, device="cpu")
    add_alias(p, "--threshold", "recalibration.threshold", help="confidence threshold (default: the checkpoint's)")
    add_bag_options(p)


def main(args) -> int:
    
    import numpy as np
    from tqdm import tqdm

    from ..config import resolve_device
    from ..pipeline import checkpoint_path, load_recalibrator
    from ..recalibration.evaluate import AnchorStats, format_anchor_table
    from ..recalibration.labels import default_label_config
    from .options import dataset_kwargs, parse_ranges, synth_config, setup

    cfg = setup(args)
    ckpt = checkpoint_path(cfg.recalibration)
    rec = load_recalibrator(cfg.recalibration, resolve_device(cfg.device))
    if args.dataset == "synthetic" and not args.root:
        from ..datasets.synthetic import SyntheticDataset
        ds = SyntheticDataset.generate(parse_ranges(args.seeds, "--seeds"), synth_config(args))
    else:
        if not args.root:
            raise UsageError(f"--root is required for --dataset {args.dataset}")
        from ..datasets import open_dataset
        ds = open_dataset(args.dataset, args.root, split=args.split, **dataset_kwargs(args))
    if args.ids:
        ds = ds.subset([i for i in args.ids.split(",") if i])
    label_cfg, _ = default_label_config(ds)  # the dataset's preset, or measured from a bag's LiDAR
    thresholds = [rec.threshold] + [float(t) for t in args.sweep.split(",") if t]
    stats = {t: AnchorStats(label_cfg) for t in thresholds}
    trusts, distances = [], []
    for frame in tqdm(ds.iter_frames(skip_bad=True), total=len(ds), desc="evaluating anchors", unit="frame"):
        pr, conf, disp = rec.predict(frame)
        trust, distance = rec.last_trust  # the out-of-distribution guard, as the pipeline applies it (trust.py)
        trusts.append(trust)
        distances.append(distance)
        uv_true = None
        if "radar_uv_true" in frame.extras:
            uv_true = np.asarray(frame.extras["radar_uv_true"], np.float32)[pr.index]
        for t, s in stats.items():
            s.add(frame, pr.uv.astype(np.float32), pr.depth, conf, disp * trust, t * trust, uv_true)
    guard = {"trust_margin": rec.trust_margin, "has_statistics": rec.trust_stats is not None,
             "trust_mean": float(np.mean(trusts)) if trusts else float("nan"),
             "distrusted_frames": int(sum(t < 1.0 for t in trusts)),
             "fully_distrusted_frames": int(sum(t <= 0.0 for t in trusts)),
             "feature_distance_median": float(np.nanmedian(distances)) if np.isfinite(distances).any()
             else float("nan")}
    out = {}
    for t, s in stats.items():
        summ = s.summary()
        out[f"{t:g}"] = summ
        print(f"\n{args.dataset} {args.split if args.root else args.seeds}: {s.frames} frames, threshold {t:g}, "
              f"checkpoint {ckpt}")
        print(format_anchor_table(summ))
    print(f"\nout-of-distribution guard (recalibration.trust_margin {guard['trust_margin']:g}"
          f"{'' if guard['has_statistics'] else ', checkpoint without statistics'}): mean trust "
          f"{guard['trust_mean']:.3f}, {guard['distrusted_frames']} frame(s) distrusted "
          f"({guard['fully_distrusted_frames']} fully), median feature distance / d_ref "
          f"{guard['feature_distance_median']:.3f}")
    if args.json:
        from ..summary import write_json

        write_json(args.json, {"checkpoint": str(ckpt), "dataset": args.dataset, "label": label_cfg.to_dict(),
                               "thresholds": out, "guard": guard})
    return 0
