"""`racalnet train`: train the radar recalibration network (paper section III-A)."""

from __future__ import annotations

HELP = "train the radar recalibration network (confidence + displacement) from sparse LiDAR labels"


def add_arguments(p) -> None:
    p.add_argument("--dataset", required=True, choices=["astyx", "zju", "synthetic"])
    p.add_argument("--root", default=None,
                   help="dataset folder (synthetic: a folder written by `racalnet synth`; omit to generate frames "
                        "on the fly from --train-seeds / --val-seeds)")
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics.csv, cache/)")
    p.add_argument("--preset", default="small", choices=["small", "paper", "tiny"])
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget; stops cleanly and saves")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--resume", action="store_true", help="continue RUN_DIR from last_state.pt")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--lr-step", type=int, default=None, help="StepLR step (epochs)")
    p.add_argument("--lr-gamma", type=float, default=None)
    p.add_argument("--disp-weight", type=float, default=None, help="lambda of Eq. 10")
    p.add_argument("--pos-weight", type=float, default=None, help="BCE weight of positive labels")
    p.add_argument("--max-points", type=int, default=None, help="points sampled per frame per step (0 = all)")
    p.add_argument("--jitter", type=float, default=None)
    p.add_argument("--flip-prob", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--workers", type=int, default=None)
    p.add_argument("--input-width", type=int, default=None, help="working image width (overrides the preset)")
    p.add_argument("--pretrained", default=None, help="'imagenet' (torchvision enum, online) or a state-dict path")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="val")
    p.add_argument("--train-seeds", default="0:400", help="synthetic on-the-fly training seeds, A:B or a,b,c")
    p.add_argument("--val-seeds", default="100000:100040", help="synthetic on-the-fly validation seeds")
    p.add_argument("--train-cache", default=None, help="a file of prepared samples (skips the dataset)")
    p.add_argument("--val-cache", default=None)
    p.add_argument("--no-val", action="store_true")
    p.add_argument("--prep-workers", type=int, default=1,
                   help="processes preparing samples (frame loading / synthetic generation + labels), once per run")
    p.add_argument("--threshold", type=float, default=0.5, help="confidence threshold stored in the checkpoint")
    p.add_argument("--export", default=None, help="also write the best weights as float16 to this checkpoint path")


def main(args) -> int:
    from racalnet_ros.recalibration.train import train
    return train(args)
