"""`racalnet train`: train the radar recalibration network (paper section III-A). The argparse side of
racalnet_ros/recalibration/train.py (`fit`); the optimisation options are generated from `TrainConfig`'s fields
(--epochs, --batch-size, --lr, --max-points, ...: each field's name with dashes, its description as help), and are
checked by the config module like every other setting."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..errors import UsageError

HELP = "train the radar recalibration network (confidence + displacement) from sparse LiDAR labels"


def add_arguments(p) -> None:
    from ..config import bounds_text
    from ..recalibration.config import TrainConfig

    from .options import DATASET_KINDS, add_bag_options, add_synth_config_option

    p.add_argument("--dataset", required=True, choices=DATASET_KINDS)
    p.add_argument("--root", default=None,
                   help="dataset folder (synthetic: a folder written by `racalnet synth`; omit to generate frames "
                        "on the fly from --train-seeds / --val-seeds; bag: the rosbag2 directory)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.csv, cache/)")
    p.add_argument("--preset", default=None, choices=["small", "paper", "tiny"],
                   help="network size (default small; with --init: the checkpoint's network)")
    p.add_argument("--init", default=None, metavar="CHECKPOINT",
                   help="fine-tune: start from this checkpoint's weights and network (--input-width may change; a "
                        "different --preset is refused). Default for real data (astyx, zju, bag): the shipped "
                        "synthetic checkpoint when it matches (its preset, the radar's columns), else from scratch; "
                        "'none' = from scratch")
    p.add_argument("--labels", default=None, metavar="PRESET",
                   help="label windows (Eq. 4-8): astyx | zju | synthetic (LABEL_DEFAULTS) or auto (measured from the "
                        "LiDAR's density in the first frames); default: the dataset's preset, auto for a bag")
    p.add_argument("--label", action="append", default=[], metavar="KEY=VALUE",
                   help="one LabelConfig field over --labels, e.g. --label conf_window=[61,15] --label n_min=2")
    p.add_argument("--features", default=None, metavar="GROUPS",
                   help="radar feature groups, comma-separated from xyz,depth,uv,doppler,power (default: the preset's "
                        "that the data's radar has)")
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
    add_synth_config_option(p)
    p.add_argument("--train-cache", default=None, help="a file of prepared samples (skips the dataset)")
    p.add_argument("--val-cache", default=None)
    p.add_argument("--no-val", action="store_true")
    p.add_argument("--prep-workers", type=int, default=1,
                   help="processes preparing samples (frame loading / synthetic generation + labels), once per run")
    p.add_argument("--threshold", default="auto", metavar="auto|T",
                   help="confidence threshold stored in the checkpoints; auto (default): chosen on the validation "
                        "frames at every epoch by the rule fixed in advance, the highest precision keeping at least "
                        "--min-kept of the points (0.5 with --no-val)")
    p.add_argument("--min-kept", type=float, default=0.3, metavar="SHARE",
                   help="the share of points the auto threshold keeps at least (default 0.3)")
    p.add_argument("--export", default=None, help="also write the best weights as float16 to this checkpoint path")
    add_bag_options(p)


def open_split(args, which: str):
    """The train or val frames: a FrameDataset (synthetic: a folder written by `racalnet synth`, or generated on the
    fly from seeds when --root is not given), or a prepared-samples file (--train-cache / --val-cache)."""
    cache = getattr(args, f"{which}_cache")
    if cache:
        return cache
    if which == "val" and args.no_val:
        return None
    from ..datasets import open_dataset
    from .options import dataset_kwargs, parse_ranges, synth_config

    if args.dataset == "synthetic" and not args.root:
        from ..datasets.synthetic import SyntheticDataset
        flag = f"--{which}-seeds"
        return SyntheticDataset.generate(parse_ranges(getattr(args, f"{which}_seeds"), flag), synth_config(args))
    if not args.root:
        raise UsageError(f"--root is required for --dataset {args.dataset}")
    return open_dataset(args.dataset, args.root, split=args.train_split if which == "train" else args.val_split,
                        **dataset_kwargs(args))


def has_frames(data) -> bool:
    """Whether `data` (what open_split returns) is a FrameDataset, not None or a prepared-samples file."""
    return not (data is None or isinstance(data, (str, Path, list)))


def label_config(args, train_data):
    """--labels / --label over the defaults (the dataset's preset; for a bag, measured from its LiDAR)."""
    import logging

    from ..config import parse_overrides
    from ..recalibration.config import LABEL_DEFAULTS, LabelConfig
    from ..recalibration.labels import default_label_config

    name = args.labels or ("auto" if args.dataset == "bag" else args.dataset)
    if name == "auto":
        if not has_frames(train_data):
            raise UsageError("--labels auto: needs frames (not --train-cache)")
        cfg, how = default_label_config(train_data, measure=True)
    elif name in LABEL_DEFAULTS:
        cfg, how = LabelConfig.for_dataset(name), f"preset {name!r}"
    else:
        raise UsageError(f"--labels: {name!r} is not one of {', '.join(sorted(LABEL_DEFAULTS))}, auto")
    if args.label:
        try:
            cfg = LabelConfig.from_dict({**cfg.to_dict(), **parse_overrides(args.label, "--label")})
        except (ValueError, TypeError) as exc:
            raise UsageError(f"--label: {exc}") from None
        how += " with " + ", ".join(args.label)
    logging.getLogger("racalnet.train").info("labels: %s: %s", how, cfg.to_dict())
    return cfg


def radar_features(model_cfg, train_data, args, init: bool):
    """The model config with --features applied, and the radar feature groups (doppler, power) the data's radar
    lacks dropped; refused when --init's network or --features needs them."""
    import logging

    from ..recalibration.config import ModelConfig

    if args.features:
        if init:
            raise UsageError("--features and --init: the checkpoint's network fixes its features")
        try:
            model_cfg = ModelConfig.from_dict({**model_cfg.to_dict(), "features": [
                f.strip() for f in args.features.split(",") if f.strip()]})
        except ValueError as exc:
            raise UsageError(f"--features: {exc}") from None
    if not has_frames(train_data) or not len(train_data):
        return model_cfg
    frame = next(iter(train_data.iter_frames(skip_bad=True)), None)
    if frame is None:
        return model_cfg
    lacking = [g for g in ("doppler", "power") if g in model_cfg.features and g not in frame.radar_fields]
    if not lacking:
        return model_cfg
    if init or args.features:
        why = f"--init {args.init}'s network" if init else "--features"
        raise UsageError(f"{why} uses radar {' and '.join(lacking)}, which {args.dataset} {args.root or ''} lacks "
                         f"(its radar has {', '.join(frame.radar_fields)})")
    model_cfg = ModelConfig.from_dict({**model_cfg.to_dict(), "features": [
        g for g in model_cfg.features if g not in lacking]})
    logging.getLogger("racalnet.train").info("radar has no %s: features %s", " / ".join(lacking),
                                             ", ".join(model_cfg.features))
    return model_cfg


def threshold_arg(args):
    """--threshold: None for auto, else a float in [0, 1]; --min-kept in (0, 1]."""
    if not 0.0 < args.min_kept <= 1.0:
        raise UsageError(f"--min-kept {args.min_kept}: a share in (0, 1]")
    if str(args.threshold).lower() == "auto":
        return None
    try:
        t = float(args.threshold)
    except ValueError:
        t = -1.0
    if not 0.0 <= t <= 1.0:
        raise UsageError(f"--threshold {args.threshold}: auto or a number in [0, 1]")
    return t


REAL_DATASETS = ("astyx", "zju", "bag")


def default_init(args, train_data):
    """The checkpoint a run starts from (issue 9: fine-tuning the shipped synthetic checkpoint is the default on real
    data when it matches). --init PATH: that one; --init none, synthetic data, --pretrained: from scratch (None);
    otherwise the shipped checkpoint when its preset is the one asked for and the data's radar has the columns its
    features use, else None, with one log line saying why."""
    import logging

    from ..frame import RADAR_OPTIONAL
    from ..recalibration import default_checkpoint
    from ..recalibration.checkpoint import preset_of, read_config
    from ..recalibration.config import ModelConfig

    if args.init is not None:
        return None if args.init.lower() == "none" else args.init
    if args.dataset not in REAL_DATASETS or args.pretrained:
        return None
    log = logging.getLogger("racalnet.train")
    shipped = default_checkpoint()
    if not shipped.is_file():
        log.info("init: no shipped checkpoint at %s: training from scratch", shipped)
        return None
    cfg = ModelConfig.from_dict(read_config(shipped)["model"])
    if args.preset and preset_of(cfg) != args.preset:
        log.info("init: the shipped checkpoint is preset %s, not %s: training from scratch", preset_of(cfg),
                 args.preset)
        return None
    frame = next(iter(train_data.iter_frames(skip_bad=True)), None) if has_frames(train_data) else None
    lacking = [g for g in RADAR_OPTIONAL if frame is not None and g in cfg.features
               and g not in frame.radar_fields]
    if lacking:
        log.info("init: the shipped checkpoint uses radar %s, which this radar lacks: training from scratch",
                 " and ".join(lacking))
        return None
    log.info("init: fine-tuning the shipped checkpoint %s (--init none trains from scratch)", shipped)
    return str(shipped)


def main(args) -> int:
    import hashlib
    import json
    import logging
    import sys

    from ..config import apply_cpu_threads, with_values
    from ..recalibration.config import ModelConfig, TrainConfig
    from ..recalibration.train import fit, init_model_config, load_run_config

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.threads is not None:
        from ..config import PipelineConfig
        apply_cpu_threads(PipelineConfig.from_flat({"cpu_threads": args.threads}).cpu_threads)
    explicit_init = args.init is not None and args.init.lower() != "none"
    if explicit_init and args.resume:
        raise UsageError("--init and --resume: choose one (a resumed run continues from its own last state)")
    if explicit_init and args.pretrained:
        raise UsageError("--init and --pretrained: choose one (--init brings its own weights)")
    threshold = threshold_arg(args)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None}
    saved = load_run_config(args.out) if args.resume else None
    train_data = open_split(args, "train")
    if args.dataset == "bag" and not getattr(train_data, "has_lidar", True):
        raise UsageError(f"{args.root}: the bag has no LiDAR topic (topics.lidar, --lidar-topic): training needs "
                         "LiDAR for its labels")
    tag = f"{args.dataset}:{args.root}" + (f":{args.synth_config}" if args.synth_config else "")
    record = {"dataset": args.dataset, "root": str(args.root or ""), "command": " ".join(sys.argv)}
    if args.dataset == "bag":
        bag_cfg = json.dumps(train_data.frames.config.to_flat(), sort_keys=True)
        tag += ":" + hashlib.sha1(bag_cfg.encode()).hexdigest()[:12]
    if saved is not None:  # a resumed run keeps the configuration it was started with (more epochs allowed)
        model_cfg, label_cfg, train_cfg = saved
        train_cfg = with_values(train_cfg, {k: v for k, v in given.items() if k == "epochs"})
    else:
        args.init = default_init(args, train_data)
        if args.init:
            model_cfg = init_model_config(args.init, ModelConfig.preset(args.preset) if args.preset else None,
                                          args.input_width)
            record["init"] = str(args.init)
        else:
            model_cfg = ModelConfig.preset(args.preset or "small")
            if args.input_width:
                model_cfg.input_width = args.input_width
            if args.pretrained:
                model_cfg.pretrained = args.pretrained
        model_cfg = radar_features(model_cfg, train_data, args, init=bool(args.init))
        label_cfg = label_config(args, train_data)
        train_cfg = with_values(TrainConfig(), given)
    fit(model_cfg, label_cfg, train_cfg, args.out, train_data, open_split(args, "val"),
        device=args.device, resume=args.resume, max_minutes=args.max_minutes, threshold=threshold,
        min_kept=args.min_kept, export=args.export, prep_workers=args.prep_workers, tag=tag, record=record,
        init=args.init if saved is None else None)
    return 0
