"""Training loop of the recalibration network (`racalnet train`), in the style of torchvision's reference train.py.

Adam (beta 0.9, 0.999) with step-wise learning-rate decay (StepLR), flip + colour-jitter augmentation, safetensors
checkpoints with their JSON config, a tqdm progress bar, a CSV metrics log (RUN_DIR/metrics.csv), resumable
(RUN_DIR/last_state.pt), a wall-clock budget (--max-minutes), and DistributedDataParallel when started by torchrun
(gloo on CPU, nccl on CUDA). Per-frame samples (projection, labels, resized image) are prepared once and cached in
RUN_DIR/cache/ so epochs are cheap.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from .checkpoint import checkpoint_paths, load_checkpoint, save_checkpoint
from .config import LabelConfig, ModelConfig, TrainConfig
from .data import RecalibrationSamples, cache_key, collate_samples, prepare_dataset, prepare_samples
from .evaluate import label_metrics
from .loss import recalibration_loss
from .model import RecalibrationNet

log = logging.getLogger(__name__)


def parse_seeds(text: str) -> list[int]:
    """"A:B" -> range(A, B); "1,2,5" -> [1, 2, 5]."""
    if ":" in text:
        a, b = text.split(":")
        return list(range(int(a), int(b)))
    return [int(x) for x in text.split(",") if x]


def open_split(args, which: str):
    """The train or val frames as a FrameDataset (synthetic: a folder written by `racalnet synth`, or generated on
    the fly from seeds when --root is not given)."""
    from ..datasets import open_dataset
    if args.dataset == "synthetic" and not args.root:
        from ..datasets.synthetic import SyntheticDataset
        seeds = parse_seeds(args.train_seeds if which == "train" else args.val_seeds)
        return SyntheticDataset.generate(seeds)
    if not args.root:
        raise SystemExit(f"--root is required for --dataset {args.dataset}")
    split = args.train_split if which == "train" else args.val_split
    return open_dataset(args.dataset, args.root, split=split)


def _dist_info() -> tuple[bool, int, int]:
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    return ws > 1, int(os.environ.get("RANK", "0")), ws


def _load_samples(args, which, model_cfg, label_cfg, out: Path, rank: int, distributed: bool):
    explicit = getattr(args, f"{which}_cache", None)
    if explicit:
        return torch.load(explicit, weights_only=False)
    if which == "val" and args.no_val:
        return []
    ds = open_split(args, which)
    key = cache_key(ds.ids, model_cfg, label_cfg, extra=f"{args.dataset}:{args.root}:{which}")
    cache = out / "cache" / f"{which}-{key}.pt"
    if rank == 0:
        samples = prepare_dataset(ds, model_cfg, label_cfg, cache, workers=args.prep_workers, progress=True)
    if distributed:
        dist.barrier()
    if rank != 0:
        samples = prepare_samples([], model_cfg, label_cfg, cache)
    return samples


def _to(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def validate(model, samples, model_cfg, batch_size, device, disp_weight, threshold) -> dict[str, float]:
    if not samples:
        return {}
    model.eval()
    dl = DataLoader(RecalibrationSamples(samples, model_cfg), batch_size=batch_size, collate_fn=collate_samples)
    probs, labels, masks, losses = [], [], [], []
    derr, draw = [], []
    for batch in dl:
        batch = _to(batch, device)
        logit, disp = model(batch["image"], batch["feats"], batch["uv"], batch["valid"])
        losses.append(recalibration_loss(logit, disp, batch, disp_weight)[1]["loss"])
        v = batch["valid"]
        probs.append(torch.sigmoid(logit)[v].cpu().numpy())
        labels.append(batch["conf_label"][v].cpu().numpy())
        masks.append(batch["conf_mask"][v].cpu().numpy())
        dm = batch["disp_mask"]
        derr.append(((disp - batch["disp_label"])[dm] * model_cfg.disp_norm).norm(dim=-1).cpu().numpy())
        draw.append((batch["disp_label"][dm] * model_cfg.disp_norm).norm(dim=-1).cpu().numpy())
    m = label_metrics(np.concatenate(probs), np.concatenate(labels), np.concatenate(masks), threshold)
    m["val_loss"] = float(np.mean(losses))
    derr, draw = np.concatenate(derr), np.concatenate(draw)
    m["val_disp_err_px"] = float(derr.mean()) if derr.size else float("nan")
    m["val_disp_label_px"] = float(draw.mean()) if draw.size else float("nan")
    return m


def train(args) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    distributed, rank, world = _dist_info()
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    if distributed:
        backend = "nccl" if args.device.startswith("cuda") else "gloo"
        dist.init_process_group(backend)
        if args.device.startswith("cuda"):
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            args.device = f"cuda:{local}"
    device = torch.device(args.device)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    # configuration: a resumed run keeps the configuration it was started with
    state_path = out / "last_state.pt"
    if args.resume and (out / "config.json").is_file():
        saved = json.loads((out / "config.json").read_text())
        model_cfg, label_cfg = ModelConfig.from_dict(saved["model"]), LabelConfig.from_dict(saved["label"])
        train_cfg = TrainConfig.from_dict(saved["train"])
        if args.epochs is not None:
            train_cfg.epochs = args.epochs
    else:
        model_cfg = ModelConfig.preset(args.preset)
        if args.input_width:
            model_cfg.input_width = args.input_width
        if args.pretrained:
            model_cfg.pretrained = args.pretrained
        label_cfg = LabelConfig.for_dataset(args.dataset)
        train_cfg = TrainConfig()
        for name in ("epochs", "batch_size", "lr", "lr_step", "lr_gamma", "disp_weight", "pos_weight", "max_points",
                     "seed", "workers", "jitter", "flip_prob"):
            v = getattr(args, name, None)
            if v is not None:
                setattr(train_cfg, name, v)
        if rank == 0:
            (out / "config.json").write_text(json.dumps(
                {"model": model_cfg.to_dict(), "label": label_cfg.to_dict(), "train": train_cfg.to_dict(),
                 "dataset": args.dataset, "root": str(args.root or ""), "command": " ".join(sys.argv)}, indent=2))
    torch.manual_seed(train_cfg.seed)

    train_samples = _load_samples(args, "train", model_cfg, label_cfg, out, rank, distributed)
    val_samples = _load_samples(args, "val", model_cfg, label_cfg, out, rank, distributed)
    if not train_samples:
        raise SystemExit("no training samples")
    if rank == 0:
        n_pts = sum(len(s["uv"]) for s in train_samples)
        n_sup = sum(int(s["conf_mask"].sum()) for s in train_samples)
        n_pos = sum(int(s["conf_label"][s["conf_mask"]].sum()) for s in train_samples)
        n_disp = sum(int(s["disp_mask"].sum()) for s in train_samples)
        log.info("train: %d frames, %d points, %d with LiDAR (%.1f%% positive), %d with a displacement label; "
                 "val: %d frames", len(train_samples), n_pts, n_sup, 100 * n_pos / max(n_sup, 1), n_disp,
                 len(val_samples))

    model = RecalibrationNet(model_cfg).to(device)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    core = getattr(model, "module", model)
    optim = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, betas=(0.9, 0.999),
                             weight_decay=train_cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(optim, step_size=train_cfg.lr_step, gamma=train_cfg.lr_gamma)
    start_epoch, best = 0, math.inf
    if args.resume and state_path.is_file():
        st = torch.load(state_path, map_location="cpu", weights_only=False)
        w, _, _ = load_checkpoint(out / "last.safetensors")
        core.load_state_dict(w.state_dict())
        optim.load_state_dict(st["optimizer"])
        sched.load_state_dict(st["scheduler"])
        start_epoch, best = st["epoch"] + 1, st.get("best", math.inf)
        if rank == 0:
            log.info("resumed from %s at epoch %d", state_path, start_epoch)

    ds = RecalibrationSamples(train_samples, model_cfg, train_cfg)
    sampler = DistributedSampler(ds, world, rank, shuffle=True, seed=train_cfg.seed) if distributed else None
    gen = torch.Generator().manual_seed(train_cfg.seed)
    dl = DataLoader(ds, batch_size=train_cfg.batch_size, shuffle=sampler is None, sampler=sampler,
                    collate_fn=collate_samples, num_workers=train_cfg.workers, generator=gen, drop_last=False)

    csv_path = out / "metrics.csv"
    t0 = time.time()
    budget = args.max_minutes * 60.0 if args.max_minutes else math.inf
    stop = False
    extra = {"train": train_cfg.to_dict(), "dataset": args.dataset}
    for epoch in range(start_epoch, train_cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        ds.epoch = epoch
        model.train()
        sums, nb, te = {}, 0, time.time()
        it = dl
        if rank == 0:
            from tqdm import tqdm
            it = tqdm(dl, desc=f"epoch {epoch + 1}/{train_cfg.epochs}", unit="batch", leave=False)
        for batch in it:
            batch = _to(batch, device)
            logit, disp = model(batch["image"], batch["feats"], batch["uv"], batch["valid"])
            loss, parts = recalibration_loss(logit, disp, batch, train_cfg.disp_weight, train_cfg.pos_weight)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            nb += 1
            if rank == 0 and hasattr(it, "set_postfix"):
                it.set_postfix(loss=f"{parts['loss']:.3f}")
            over = torch.tensor(float(time.time() - t0 > budget))
            if distributed:
                dist.all_reduce(over, op=dist.ReduceOp.MAX)
            if over.item() > 0:
                stop = True
                break
        sched.step()
        row = {"epoch": epoch + 1, "lr": optim.param_groups[0]["lr"], **{k: v / max(nb, 1) for k, v in sums.items()},
               "batches": nb, "epoch_s": time.time() - te, "elapsed_s": time.time() - t0}
        if rank == 0:
            row.update(validate(core, val_samples, model_cfg, train_cfg.batch_size, device, train_cfg.disp_weight,
                                args.threshold))
            new = not csv_path.exists()
            with csv_path.open("a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(row))
                if new:
                    w.writeheader()
                w.writerow(row)
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                         for k, v in row.items()))
            meta = dict(extra, epoch=epoch + 1)
            save_checkpoint(out / "last", core, model_cfg, label_cfg, args.threshold, extra=meta)
            score = row.get("val_loss", row["loss"])
            if score < best:
                best = score
                save_checkpoint(out / "best", core, model_cfg, label_cfg, args.threshold, extra=meta)
            torch.save({"epoch": epoch, "optimizer": optim.state_dict(), "scheduler": sched.state_dict(),
                        "best": best}, state_path)
        if distributed:
            dist.barrier()
        if stop:
            if rank == 0:
                log.info("stopping: --max-minutes %.1f reached after %d epoch(s)", args.max_minutes, epoch + 1)
            break
    if rank == 0 and args.export:
        src = out / "best" if (out / "best.safetensors").exists() else out / "last"
        m, _, meta = load_checkpoint(src)
        save_checkpoint(args.export, m, model_cfg, label_cfg, args.threshold, fp16=True,
                        extra={k: v for k, v in meta.items() if k not in
                               ("format", "version", "model", "label", "threshold", "dtype")})
        log.info("exported %s (float16) to %s", src, checkpoint_paths(args.export)[0])
    if distributed:
        dist.destroy_process_group()
    return 0
