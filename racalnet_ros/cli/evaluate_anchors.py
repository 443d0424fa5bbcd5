"""`racalnet evaluate-anchors`: anchor precision / recall / depth error (and pixel error on synthetic data) for raw
radar, screened, and screened + displaced anchors."""

from __future__ import annotations

HELP = "score radar anchors against the LiDAR: raw vs screened vs screened+displaced"


def add_arguments(p) -> None:
    p.add_argument("--dataset", required=True, choices=["astyx", "zju", "synthetic"])
    p.add_argument("--root", default=None, help="dataset folder (synthetic: omit to generate --seeds on the fly)")
    p.add_argument("--checkpoint", default=None, help="recalibration checkpoint (default: the shipped one)")
    p.add_argument("--split", default="val")
    p.add_argument("--ids", default="", help="only these frame ids of the split, comma-separated")
    p.add_argument("--seeds", default="100000:100040", help="synthetic on-the-fly seeds when --root is not given")
    p.add_argument("--threshold", type=float, default=None, help="confidence threshold (default: the checkpoint's)")
    p.add_argument("--sweep", default="", help="extra thresholds to report, e.g. 0.3,0.5,0.7")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", default=None, help="write the summary as JSON to this file")


def main(args) -> int:
    import json

    from racalnet_ros.recalibration import Recalibrator, default_checkpoint
    from racalnet_ros.recalibration.config import LabelConfig
    from racalnet_ros.recalibration.evaluate import AnchorStats, format_anchor_table

    ckpt = args.checkpoint or default_checkpoint()
    rec = Recalibrator.from_checkpoint(ckpt, device=args.device, threshold=args.threshold)
    if args.dataset == "synthetic" and not args.root:
        from racalnet_ros.datasets.synthetic import SyntheticDataset
        from racalnet_ros.recalibration.train import parse_seeds
        ds = SyntheticDataset.generate(parse_seeds(args.seeds))
    else:
        if not args.root:
            raise SystemExit(f"--root is required for --dataset {args.dataset}")
        from racalnet_ros.datasets import open_dataset
        ds = open_dataset(args.dataset, args.root, split=args.split)
    if args.ids:
        ds = ds.subset([i for i in args.ids.split(",") if i])
    label_cfg = LabelConfig.for_dataset(args.dataset)
    thresholds = [rec.threshold] + [float(t) for t in args.sweep.split(",") if t]
    stats = {t: AnchorStats(label_cfg) for t in thresholds}
    import numpy as np
    from tqdm import tqdm
    for frame in tqdm(ds.iter_frames(skip_bad=True), total=len(ds), desc="evaluating anchors", unit="frame"):
        pr, conf, disp = rec.predict(frame)
        uv_true = None
        if "radar_uv_true" in frame.extras:
            uv_true = np.asarray(frame.extras["radar_uv_true"], np.float32)[pr.index]
        for t, s in stats.items():
            s.add(frame, pr.uv.astype(np.float32), pr.depth, conf, disp, t, uv_true)
    out = {}
    for t, s in stats.items():
        summ = s.summary()
        out[f"{t:g}"] = summ
        print(f"\n{args.dataset} {args.split if args.root else args.seeds}: {s.frames} frames, threshold {t:g}, "
              f"checkpoint {ckpt}")
        print(format_anchor_table(summ))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"checkpoint": str(ckpt), "dataset": args.dataset, "label": label_cfg.to_dict(),
                       "thresholds": out}, fh, indent=2)
    return 0
