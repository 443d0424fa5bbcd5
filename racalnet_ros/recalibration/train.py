"""Training of the recalibration network (`racalnet train`), shaped like torchvision's
references/classification/train.py: `train_one_epoch`, `validate` (their `evaluate`), and `fit` (their `main`
without argparse, which stays in racalnet_ros/cli/train.py). Failures raise `TrainError`, never exit.

Adam (beta 0.9, 0.999) with step-wise learning-rate decay (StepLR), flip + colour-jitter augmentation, safetensors
checkpoints with their JSON config, a tqdm progress bar, a CSV metrics log (RUN_DIR/metrics.csv), resumable
(RUN_DIR/last_state.pt), a wall-clock budget (max_minutes), and DistributedDataParallel when started by torchrun
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
from typing import Any, Optional, Union

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from ..errors import RacalnetError
from .checkpoint import (checkpoint_paths, command_text, describe_data, load_checkpoint, make_provenance, preset_of,
                         save_checkpoint, utc_now)
from .config import LabelConfig, ModelConfig, TrainConfig
from .data import RecalibrationSamples, cache_key, collate_samples, prepare_dataset, prepare_samples
from .evaluate import label_metrics, select_threshold
from .loss import recalibration_loss
from .model import RecalibrationNet
from .trust import fit_feature_statistics

log = logging.getLogger(__name__)


class TrainError(RacalnetError, RuntimeError):
    """Training cannot run (no samples, no CUDA, ...); the message says why."""


#: what `fit` takes as training or validation data: a FrameDataset (prepared and cached in RUN_DIR/cache), a file
#: of prepared samples (`prepare_samples(..., cache=FILE)`), the prepared samples themselves, or None (no data)
Data = Union[Any, str, Path, list, None]


def _dist_info() -> tuple[bool, int, int]:
    ws = int(os.environ.get("WORLD_SIZE", "1"))
    return ws > 1, int(os.environ.get("RANK", "0")), ws


def load_run_config(run_dir: str | Path) -> Optional[tuple[ModelConfig, LabelConfig, TrainConfig]]:
    """The configuration a run was started with (RUN_DIR/config.json), or None: a resumed run keeps it."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return (ModelConfig.from_dict(saved["model"]), LabelConfig.from_dict(saved["label"]),
            TrainConfig.from_dict(saved["train"]))


def init_model_config(init: str | Path, preset: Optional[ModelConfig] = None,
                      input_width: Optional[int] = None) -> ModelConfig:
    """The network to fine-tune checkpoint `init` with: the checkpoint's own (its weights fit only that network);
    the working width may change (the weights do not depend on it). TrainError naming the differing sizes when
    `preset` (a preset chosen explicitly) builds another network."""
    from .checkpoint import read_config

    meta = read_config(init)
    cfg = ModelConfig.from_dict(dict(meta["model"], pretrained=""))
    if preset is not None:
        a, b = cfg.to_dict(), preset.to_dict()
        diff = [k for k in a if k not in ("input_width", "pretrained") and a[k] != b[k]]
        if diff:
            raise TrainError(f"--init {init}: its network differs from the chosen preset in "
                             + ", ".join(f"{k} ({a[k]} vs {b[k]})" for k in diff[:4])
                             + "; drop --preset to fine-tune the checkpoint's network")
    if input_width:
        cfg.input_width = int(input_width)
    return cfg


def prepare(data: Data, which: str, model_cfg: ModelConfig, label_cfg: LabelConfig, run_dir: Path, tag: str = "",
            workers: int = 1) -> list[dict]:
    """Prepared samples of `data` (see `Data`); under torchrun rank 0 prepares and the others load its cache."""
    if data is None:
        return []
    if isinstance(data, (str, Path)):
        return torch.load(data, weights_only=False)
    if isinstance(data, list):
        return data
    distributed, rank, _ = _dist_info()
    key = cache_key(data.ids, model_cfg, label_cfg, extra=f"{tag}:{which}")
    cache = run_dir / "cache" / f"{which}-{key}.pt"
    samples = prepare_dataset(data, model_cfg, label_cfg, cache, workers=workers, progress=True) if rank == 0 else None
    if distributed:
        dist.barrier()
    if rank != 0:
        samples = prepare_samples([], model_cfg, label_cfg, cache)
    return samples


def _fresh_provenance(record: dict, train_data: Data, val_data: Data, model_cfg: ModelConfig) -> dict:
    """PROVENANCE of `train_data` / `val_data` as of now (checkpoint.make_provenance)."""
    return make_provenance(describe_data(train_data), describe_data(val_data), preset_of(model_cfg),
                           command=record.get("command") or " ".join(sys.argv), init=str(record.get("init") or ""))


def _to(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def validate(model, samples, model_cfg, batch_size, device, disp_weight, threshold: Optional[float],
             min_kept: float = 0.3) -> dict[str, float]:
    """Validation loss and label-space metrics. `threshold` None: chosen here by `select_threshold` (the highest
    precision keeping >= min_kept of the points), reported as "threshold"."""
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
    probs, labels, masks = np.concatenate(probs), np.concatenate(labels), np.concatenate(masks)
    if threshold is None:    # the rule fixed in advance, on these validation points (evaluate.select_threshold)
        threshold, m = select_threshold(probs, labels, masks, min_kept)
    else:
        m = label_metrics(probs, labels, masks, threshold)
    m["threshold"] = float(threshold)
    m["val_loss"] = float(np.mean(losses))
    derr, draw = np.concatenate(derr), np.concatenate(draw)
    m["val_disp_err_px"] = float(derr.mean()) if derr.size else float("nan")
    m["val_disp_label_px"] = float(draw.mean()) if draw.size else float("nan")
    return m


def train_one_epoch(model, loader, optimizer, train_cfg: TrainConfig, device, epoch: int, deadline: float,
                    distributed: bool = False, progress: bool = True) -> tuple[dict[str, float], bool]:
    """One pass over `loader` (Eq. 10 loss, Adam step per batch). Returns (mean loss terms and "batches", stopped):
    stopped is True when the wall-clock `deadline` (time.time()) passed, agreed by every process under torchrun."""
    model.train()
    sums: dict[str, float] = {}
    nb = 0
    it = loader
    if progress:
        from tqdm import tqdm
        it = tqdm(loader, desc=f"epoch {epoch + 1}/{train_cfg.epochs}", unit="batch", leave=False)
    stopped = False
    for batch in it:
        batch = _to(batch, device)
        logit, disp = model(batch["image"], batch["feats"], batch["uv"], batch["valid"])
        loss, parts = recalibration_loss(logit, disp, batch, train_cfg.disp_weight, train_cfg.pos_weight)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        nb += 1
        if hasattr(it, "set_postfix"):
            it.set_postfix(loss=f"{parts['loss']:.3f}")
        over = torch.tensor(float(time.time() > deadline))
        if distributed:
            dist.all_reduce(over, op=dist.ReduceOp.MAX)
        if over.item() > 0:
            stopped = True
            break
    return {**{k: v / max(nb, 1) for k, v in sums.items()}, "batches": nb}, stopped


def fit(model_cfg: ModelConfig, label_cfg: LabelConfig, train_cfg: TrainConfig, run_dir: str | Path,
        train_data: Data, val_data: Data = None, *, device: str = "cpu", resume: bool = False,
        max_minutes: Optional[float] = None, threshold: Optional[float] = None, min_kept: float = 0.3,
        export: Optional[str | Path] = None, prep_workers: int = 1, tag: str = "",
        record: Optional[dict[str, Any]] = None, init: Optional[str | Path] = None) -> Path:
    """Train RecalibrationNet(model_cfg) on `train_data` with labels from `label_cfg`, into `run_dir`
    (config.json, metrics.csv, last / best checkpoints, last_state.pt, cache/). Under torchrun each process calls it
    (DistributedDataParallel; rank 0 writes). `resume` continues from last_state.pt; `max_minutes` stops cleanly
    after the batch that passes it and saves; `export` also writes the best weights as float16 to that checkpoint
    path. `tag` distinguishes cached samples of different sources (e.g. "synthetic:ROOT"); `record` goes into
    config.json and the checkpoints' metadata. `init`: fine-tune, starting from that checkpoint's weights (its
    network must be `model_cfg` up to the working width: `init_model_config`). `threshold`: the confidence threshold
    stored in every checkpoint; None chooses it on the validation frames at every epoch by the rule fixed in advance
    (evaluate.select_threshold: the highest precision keeping >= `min_kept` of the points; 0.5 without validation
    frames). Returns the best checkpoint
    (.safetensors; last when no validation improved). TrainError when training cannot run."""
    distributed, rank, world = _dist_info()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrainError(f"--device {device}: CUDA is not available (use --device cpu)")
    if distributed:
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        if device.startswith("cuda"):
            local = int(os.environ.get("LOCAL_RANK", "0"))
            torch.cuda.set_device(local)
            device = f"cuda:{local}"
    try:
        return _fit(model_cfg, label_cfg, train_cfg, Path(run_dir), train_data, val_data, torch.device(device),
                    resume, max_minutes, threshold, min_kept, export, prep_workers, tag, dict(record or {}), rank,
                    world, distributed, init)
    finally:
        if distributed:
            dist.destroy_process_group()


def _fit(model_cfg, label_cfg, train_cfg, out: Path, train_data, val_data, device, resume, max_minutes, threshold,
         min_kept, export, prep_workers, tag, record, rank, world, distributed, init=None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "last_state.pt"
    if rank == 0 and not (resume and (out / "config.json").is_file()):
        (out / "config.json").write_text(json.dumps(
            {"model": model_cfg.to_dict(), "label": label_cfg.to_dict(), "train": train_cfg.to_dict(), **record},
            indent=2))
    torch.manual_seed(train_cfg.seed)

    train_samples = prepare(train_data, "train", model_cfg, label_cfg, out, tag, prep_workers)
    val_samples = prepare(val_data, "val", model_cfg, label_cfg, out, tag, prep_workers)
    if not train_samples:
        raise TrainError("no training samples (the dataset or the sample file is empty, or every frame was skipped)")
    if rank == 0:
        n_pts = sum(len(s["uv"]) for s in train_samples)
        n_sup = sum(int(s["conf_mask"].sum()) for s in train_samples)
        n_pos = sum(int(s["conf_label"][s["conf_mask"]].sum()) for s in train_samples)
        n_disp = sum(int(s["disp_mask"].sum()) for s in train_samples)
        log.info("train: %d frames, %d points, %d with LiDAR (%.1f%% positive), %d with a displacement label; "
                 "val: %d frames", len(train_samples), n_pts, n_sup, 100 * n_pos / max(n_sup, 1), n_disp,
                 len(val_samples))

    model = RecalibrationNet(model_cfg).to(device)
    if init is not None and not (resume and state_path.is_file()):
        w, init_cfg, _ = load_checkpoint(init)
        if {**init_cfg.to_dict(), "input_width": 0} != {**model_cfg.to_dict(), "input_width": 0, "pretrained": ""}:
            raise TrainError(f"init {init}: its network is not model_cfg (use init_model_config)")
        model.load_state_dict(w.state_dict())
        if rank == 0:
            log.info("fine-tuning from %s", init)
    if distributed:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    core = getattr(model, "module", model)
    optim = torch.optim.Adam(model.parameters(), lr=train_cfg.lr, betas=(0.9, 0.999),
                             weight_decay=train_cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(optim, step_size=train_cfg.lr_step, gamma=train_cfg.lr_gamma)
    start_epoch, best = 0, math.inf
    if resume and state_path.is_file():
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
    deadline = t0 + (max_minutes * 60.0 if max_minutes else math.inf)
    extra = {"train": train_cfg.to_dict(), **{k: v for k, v in record.items() if k in ("dataset", "init")}}
    # what every checkpoint of this run was trained on (checkpoint.PROVENANCE); its date is the save's
    extra["provenance"] = _fresh_provenance(record, train_data, val_data, model_cfg)
    for epoch in range(start_epoch, train_cfg.epochs):
        if sampler is not None:
            sampler.set_epoch(epoch)
        ds.epoch = epoch
        te = time.time()
        losses, stopped = train_one_epoch(model, dl, optim, train_cfg, device, epoch, deadline, distributed,
                                          progress=rank == 0)
        sched.step()
        row = {"epoch": epoch + 1, "lr": optim.param_groups[0]["lr"], **losses, "epoch_s": time.time() - te,
               "elapsed_s": time.time() - t0}
        if rank == 0:
            row.update(validate(core, val_samples, model_cfg, train_cfg.batch_size, device, train_cfg.disp_weight,
                                threshold, min_kept))
            thr = row.get("threshold", 0.5 if threshold is None else threshold)
            new = not csv_path.exists()
            with csv_path.open("a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=list(row))
                if new:
                    w.writeheader()
                w.writerow(row)
            log.info("epoch %d: %s", epoch + 1, ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                                         for k, v in row.items()))
            meta = dict(extra, epoch=epoch + 1)
            meta["provenance"] = dict(extra["provenance"], date=utc_now())
            save_checkpoint(out / "last", core, model_cfg, label_cfg, thr, extra=meta)
            score = row.get("val_loss", row["loss"])
            if score < best:
                best = score
                save_checkpoint(out / "best", core, model_cfg, label_cfg, thr, extra=meta)
            torch.save({"epoch": epoch, "optimizer": optim.state_dict(), "scheduler": sched.state_dict(),
                        "best": best}, state_path)
        if distributed:
            dist.barrier()
        if stopped:
            if rank == 0:
                log.info("stopping: max_minutes %.1f reached after %d epoch(s)", max_minutes, epoch + 1)
            break
    src = out / "best" if (out / "best.safetensors").exists() else out / "last"
    if rank == 0 and export:
        m, _, meta = load_checkpoint(src)
        extra = {k: v for k, v in meta.items() if k not in ("format", "version", "model", "label", "threshold",
                                                            "dtype", "trust")}
        # what it was trained on as this run describes it; the command that trained it, then this one (export)
        trained_by = command_text(meta.get("provenance", {}).get("command", ""))
        now = extra["provenance"] = _fresh_provenance(record, train_data, val_data, model_cfg)
        if trained_by and trained_by != now["command"]:
            now["command"] = f"{trained_by}; then {now['command']}"
        # the out-of-distribution guard's reference (trust.py): image-feature statistics of the training frames and
        # the validation frames' distances to them, from the exported weights
        trust = fit_feature_statistics(m, train_samples, val_samples)
        if trust is not None:
            extra["trust"] = trust
            log.info("trust statistics: d_ref %.3f (val median %.3f, train median %.3f)", trust["d_ref"],
                     trust["d_val_median"], trust["d_train_median"])
        save_checkpoint(export, m, model_cfg, label_cfg, float(meta["threshold"]), fp16=True, extra=extra)
        log.info("exported %s (float16) to %s", src, checkpoint_paths(export)[0])
    return checkpoint_paths(src)[0]
