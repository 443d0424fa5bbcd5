"""`racalnet bag-from-dataset`: write dataset frames (synthetic or Astyx) as a rosbag2 (sqlite3 or MCAP) with radar,
image, camera_info, LiDAR, prior (when the frames have one) and /tf_static topics; layout in racalnet_ros/ros/bag.py
and docs/bags.md.

    racalnet bag-from-dataset --dataset synthetic --root data/synth --out synth_bag --max-frames 10
    racalnet bag-from-dataset --dataset synthetic --generate 10 --seed 0 --out synth_bag      # no folder needed
    racalnet bag-from-dataset --dataset astyx --root ../shared/data/astyx_hires2019 --split test --out astyx_bag \
        --storage mcap
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError

HELP = "write dataset frames (synthetic | astyx) as a rosbag2 (sqlite3 | mcap) for replay and evaluation"


def add_arguments(p) -> None:
    p.add_argument("--dataset", choices=("synthetic", "astyx", "zju"), required=True)
    p.add_argument("--root", default=None, help="dataset folder (synthetic: written by `racalnet synth`)")
    p.add_argument("--generate", type=int, default=0, metavar="N",
                   help="synthetic only: generate N frames on the fly (seeds --seed .. --seed+N-1) instead of --root")
    p.add_argument("--seed", type=int, default=0, help="first seed for --generate")
    p.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    p.add_argument("--split", default=None, help="named split (train, val, test, full)")
    p.add_argument("--frames", nargs="+", default=None, help="frame ids to write (default: all of the split)")
    p.add_argument("--max-frames", type=int, default=None, help="write at most this many frames")
    p.add_argument("--prior-dir", default=None, help="astyx/zju: precomputed prior folder attached as the prior topic")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="sqlite3")
    p.add_argument("--extrinsics", choices=("same", "first"), default=None,
                   help="a bag holds one static calibration: 'same' requires every frame to share it, 'first' uses "
                        "the first frame's for all (default: first for synthetic, whose frames each draw their own "
                        "calibration error; same otherwise)")
    p.add_argument("--rate", type=float, default=10.0,
                   help="frame rate (Hz) for stamps when the dataset's own stamps are missing or not increasing")


def load_frames(args):
    """The frames the arguments select (a list; bags here are small enough to hold in memory)."""
    if args.generate:
        if args.dataset != "synthetic":
            raise UsageError("--generate: only for --dataset synthetic")
        from ..datasets.synthetic import SyntheticDataset
        return list(SyntheticDataset.generate(list(range(args.seed, args.seed + args.generate))))
    if not args.root:
        raise UsageError("--root: required (or --generate N for synthetic frames)")
    from ..datasets import open_dataset
    kw = {"prior_dir": args.prior_dir} if args.prior_dir else {}
    ds = open_dataset(args.dataset, args.root, split=args.split, **kw)
    if args.frames:
        ds = ds.subset(args.frames)
    if args.max_frames is not None:
        ds = ds.subset(ds.ids[: args.max_frames])
    return list(ds.iter_frames(skip_bad=True))


def main(args) -> int:
    from ..ros.bag import write_bag
    frames = load_frames(args)
    if args.max_frames is not None:
        frames = frames[: args.max_frames]
    summary = write_bag(frames, args.out, storage=args.storage, rate_hz=args.rate,
                        custom={"racalnet.dataset": args.dataset},
                        extrinsics=args.extrinsics or ("first" if args.dataset == "synthetic" else "same"))
    print(f"wrote {summary.frames} frame(s) to {Path(summary.path)} ({summary.storage}): "
          + ", ".join(f"{t} x{n}" for t, n in summary.topics.items()))
    return 0
