"""`racalnet synth`: write synthetic frames (seeds S .. S+N-1) into a folder in the layout of
racalnet_ros/datasets/synthetic/layout.py, readable with `open_dataset("synthetic", DIR)`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ..errors import UsageError

HELP = "generate synthetic camera/LiDAR/4D-radar/prior frames into a folder (docs/synthetic.md)"


def add_arguments(p) -> None:
    p.add_argument("--out", required=True, help="output folder (created; must not already hold a dataset)")
    p.add_argument("--frames", type=int, required=True, help="number of frames N")
    p.add_argument("--seed", type=int, default=0, help="first seed S; frames use seeds S .. S+N-1 (default 0)")
    p.add_argument("--width", type=int, default=None, help="image width (default 640)")
    p.add_argument("--height", type=int, default=None, help="image height (default 480)")
    p.add_argument("--config", default=None,
                   help="a SynthConfig preset (default, astyx) or a JSON or YAML file of SynthConfig fields to "
                        "override, with an optional preset: key (see datasets/synthetic/config.py)")
    p.add_argument("--overwrite", action="store_true", help="write into a folder that already has a meta.json")
    p.add_argument("--quiet", action="store_true", help="no per-frame progress")


def main(args) -> int:
    from racalnet_ros.datasets.synthetic import SynthConfig, SynthConfigError, generate_frame
    from racalnet_ros.datasets.synthetic import layout
    from racalnet_ros.datasets.synthetic.generate import RADAR_FIELDS

    if args.frames < 1:
        raise UsageError(f"--frames must be >= 1, got {args.frames}")
    if args.seed < 0:
        raise UsageError(f"--seed must be >= 0, got {args.seed}")
    from .options import synth_config

    base = synth_config(argparse.Namespace(synth_config=args.config))
    fields = base.to_dict() if base is not None else {}
    if args.width is not None:
        fields["width"] = args.width
    if args.height is not None:
        fields["height"] = args.height
    try:
        cfg = SynthConfig.from_dict(fields)
    except (SynthConfigError, TypeError) as exc:
        raise UsageError(str(exc)) from None

    out = Path(args.out)
    if (out / "meta.json").exists() and not args.overwrite:
        raise UsageError(f"{out / 'meta.json'} exists; pass --overwrite or choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seed, args.seed + args.frames))
    t_all = time.perf_counter()
    for k, seed in enumerate(seeds):
        t0 = time.perf_counter()
        frame = generate_frame(seed, cfg)
        t1 = time.perf_counter()
        layout.write_frame(out, frame)
        if not args.quiet:
            print(f"[{k + 1}/{len(seeds)}] {frame.frame_id}: radar {frame.num_radar}, lidar {len(frame.lidar)}, "
                  f"generate {t1 - t0:.2f} s, write {time.perf_counter() - t1:.2f} s", flush=True)
    layout.write_meta(out, cfg.to_dict(), seeds, RADAR_FIELDS)   # last, so a complete meta.json means a complete set
    dt = time.perf_counter() - t_all
    print(f"wrote {len(seeds)} frame(s) to {out} in {dt:.1f} s ({dt / len(seeds):.2f} s per frame)")
    return 0
