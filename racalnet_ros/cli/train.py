"""`racalnet train`: train the radar recalibration network (paper section III-A). The argparse side of
racalnet_ros/recalibration/train.py (`fit`); the optimisation options are generated from `TrainConfig`'s fields
(--epochs, --batch-size, --lr, --max-points, ...: each field's name with dashes, its description as help), and are
checked by the config module like every other setting."""

from __future__ import annotations

import dataclasses

from ..errors import UsageError

HELP = "train the radar recalibration network (confidence + displacement) from sparse LiDAR labels"


def add_arguments(p) -> None:
    from ..config import bounds_text
    from ..recalibration.config import TrainConfig

    p.add_argument("--dataset", required=True, choices=["astyx", "zju", "synthetic"])
    p.add_argument("--root", default=None,
                   help="dataset folder (synthetic: a folder written by `racalnet synth`; omit to generate frames "
                        "on the fly from --train-seeds / --val-seeds)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.csv, cache/)")
    p.add_argument("--preset", default="small", choices=["small", "paper", "tiny"])
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; stops cleanly and saves")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--threads", default=None, metavar="N",
                   help="torch intra-op CPU threads, as cpu_threads everywhere (0 = the default rule; default: "
                        "torch's own choice)")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from last_state.pt")
    g = p.add_argument_group("optimisation (TrainConfig; default: its value, or the resumed run's)")
    for f in dataclasses.fields(TrainConfig):
        rng = bounds_text(f.metadata)
        g.add_argument("--" + f.name.replace("_", "-"), dest=f.name, default=None, metavar=f.name.upper(),
                       help=f"{f.metadata['description']} (default {f.default}{', ' + rng if rng else ''})")
    p.add_argument("--input-width", type=int, default=None, help="working image width (overrides the preset)")
    p.add_argument("--pretrained", default=None, help="'imagenet' (torchvision enum, online) or a state-dict path")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--train-seeds", default="0-399",
                   help="synthetic on-the-fly training seeds: A-B inclusive, a,b,c, or A:B (end excluded)")
    p.add_argument("--val-seeds", default="100000-100039", help="synthetic on-the-fly validation seeds")
    p.add_argument("--train-cache", default=None, help="a file of prepared samples (skips the dataset)")
    p.add_argument("--val-cache", default=None)
    p.add_argument("--no-val", action="store_true")
    p.add_argument("--prep-workers", type=int, default=1,
                   help="processes preparing samples (frame loading / synthetic generation + labels), once per run")
    p.add_argument("--threshold", type=float, default=0.5, help="confidence threshold stored in the checkpoint")
    p.add_argument("--export", default=None, help="also write the best weights as float16 to this checkpoint path")


def open_split(args, which: str):
    """The train or val frames: a FrameDataset (synthetic: a folder written by `racalnet synth`, or generated on the
    fly from seeds when --root is not given), or a prepared-samples file (--train-cache / --val-cache)."""
    cache = getattr(args, f"{which}_cache")
    if cache:
        return cache
    if which == "val" and args.no_val:
        return None
    from ..datasets import open_dataset
    from .options import parse_ranges

    if args.dataset == "synthetic" and not args.root:
        from ..datasets.synthetic import SyntheticDataset
        flag = f"--{which}-seeds"
        return SyntheticDataset.generate(parse_ranges(getattr(args, f"{which}_seeds"), flag))
    if not args.root:
        raise UsageError(f"--root is required for --dataset {args.dataset}")
    return open_dataset(args.dataset, args.root, split=args.train_split if which == "train" else args.val_split)


def main(args) -> int:
    import logging
    import sys

    from ..config import apply_cpu_threads, with_values
    from ..recalibration.config import LabelConfig, ModelConfig, TrainConfig
    from ..recalibration.train import fit, load_run_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads is not None:
        from ..config import PipelineConfig
        apply_cpu_threads(PipelineConfig.from_flat({"cpu_threads": args.threads}).cpu_threads)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    saved = load_run_config(args.out) if args.resume else None
    if saved is not None:  # a resumed run keeps the configuration it was started with (more epochs allowed)
        model_cfg, label_cfg, train_cfg = saved
        train_cfg = with_values(train_cfg, {k: v for k, v in given.items() if k == "epochs"})
    else:
        model_cfg = ModelConfig.preset(args.preset)
        if args.input_width:
            model_cfg.input_width = args.input_width
        if args.pretrained:
            model_cfg.pretrained = args.pretrained
        label_cfg = LabelConfig.for_dataset(args.dataset)
        train_cfg = with_values(TrainConfig(), given)
    fit(model_cfg, label_cfg, train_cfg, args.out, open_split(args, "train"), open_split(args, "val"),
        device=args.device, resume=args.resume, max_minutes=args.max_minutes, threshold=args.threshold,
        export=args.export, prep_workers=args.prep_workers, tag=f"{args.dataset}:{args.root}",
        record={"dataset": args.dataset, "root": str(args.root or ""), "command": " ".join(sys.argv)})
    return 0
