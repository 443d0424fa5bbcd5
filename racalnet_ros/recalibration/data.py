"""Prepared training samples and batching for the recalibration network.

`prepare_sample(frame, model_cfg, label_cfg)` does the expensive per-frame work once (projection, LiDAR depth map,
Eq. 4-8 labels, resizing the image to the working resolution); `prepare_samples` caches a list of them in a file so
that epochs are cheap. `RecalibrationSamples` turns prepared samples into tensors, with training augmentation
(horizontal flip of image, u and camera x together; colour jitter; a random subset of points), and
`collate_samples` pads a batch to the largest point count with a validity mask.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..frame import Frame
from ..geometry import lidar_depth_map
from .config import LabelConfig, ModelConfig, TrainConfig
from .features import project_radar, radar_point_features
from .labels import make_labels
from .preprocess import image_tensor, resize_image, to_working_uv, working_size

log = logging.getLogger(__name__)


def prepare_sample(frame: Frame, model_cfg: ModelConfig, label_cfg: LabelConfig | None) -> dict:
    """One frame -> a dict of numpy arrays (labels only when label_cfg is given and the frame has LiDAR)."""
    pr = project_radar(frame)
    size = working_size(frame.width, frame.height, model_cfg.input_width)
    s = {
        "frame_id": frame.frame_id, "width": frame.width, "height": frame.height,
        "image": resize_image(frame.image, size), "index": pr.index, "uv": pr.uv, "depth": pr.depth,
        "xyz_cam": pr.xyz_cam, "doppler": pr.doppler, "power": pr.power,
    }
    if label_cfg is not None:
        lab = make_labels(pr.uv, pr.depth, lidar_depth_map(frame, required=True), label_cfg)
        s.update(conf_label=lab.confidence, conf_mask=lab.conf_mask, disp_label=lab.displacement,
                 disp_mask=lab.disp_mask)
    if "radar_uv_true" in frame.extras:
        s["uv_true"] = np.asarray(frame.extras["radar_uv_true"], np.float32)[pr.index]
    return s


def cache_key(ids: Iterable[str], model_cfg: ModelConfig, label_cfg: LabelConfig, extra: str = "") -> str:
    d = {"ids": list(ids), "input_width": model_cfg.input_width, "label": label_cfg.to_dict(), "extra": extra}
    return hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]


def prepare_samples(frames: Iterable[Frame], model_cfg: ModelConfig, label_cfg: LabelConfig,
                    cache: Path | None = None, progress: bool = False) -> list[dict]:
    """Prepare every frame (skipping none); load from / save to `cache` (a torch file) when given."""
    if cache is not None and Path(cache).is_file():
        log.info("loading prepared samples from %s", cache)
        return torch.load(cache, weights_only=False)
    if progress:
        from tqdm import tqdm
        frames = tqdm(frames, desc="preparing samples", unit="frame")
    samples = [prepare_sample(f, model_cfg, label_cfg) for f in frames]
    if cache is not None:
        _save_cache(samples, cache)
    return samples


def _save_cache(samples: list, cache: str | Path) -> None:
    """Write prepared samples atomically (tmp file + rename), so an interrupted run never leaves half a cache."""
    Path(cache).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(str(cache) + ".tmp")
    torch.save(samples, tmp)
    tmp.replace(cache)


_POOL_STATE: dict = {}


def _pool_init(ds, model_cfg, label_cfg) -> None:
    _POOL_STATE.update(ds=ds, model_cfg=model_cfg, label_cfg=label_cfg)


def _pool_prepare(frame_id: str):
    try:
        frame = _POOL_STATE["ds"].load(frame_id)
        return prepare_sample(frame, _POOL_STATE["model_cfg"], _POOL_STATE["label_cfg"])
    except (ValueError, OSError) as exc:  # DatasetError / FrameError are ValueErrors: skip the frame, say why
        log.warning("skipping frame %s: %s", frame_id, exc)
        return None


def prepare_dataset(ds, model_cfg: ModelConfig, label_cfg: LabelConfig, cache: Path | None = None,
                    workers: int = 1, progress: bool = False) -> list[dict]:
    """Prepare every frame of a FrameDataset (bad frames skipped with a warning), in `workers` processes (useful
    when frames are generated on the fly); cached like `prepare_samples`."""
    if workers <= 1 or (cache is not None and Path(cache).is_file()):
        return prepare_samples(ds.iter_frames(skip_bad=True), model_cfg, label_cfg, cache, progress)
    import multiprocessing as mp
    with mp.get_context("fork").Pool(workers, _pool_init, (ds, model_cfg, label_cfg)) as pool:
        it = pool.imap(_pool_prepare, ds.ids)
        if progress:
            from tqdm import tqdm
            it = tqdm(it, total=len(ds.ids), desc="preparing samples", unit="frame")
        samples = [s for s in it if s is not None]
    if cache is not None:
        _save_cache(samples, cache)
    return samples


def _jitter(img: torch.Tensor, strength: float, rng: np.random.Generator) -> torch.Tensor:
    """Brightness, contrast and saturation jitter (paper IV-B) with torchvision's functional ops."""
    import torchvision.transforms.v2.functional as TF
    for fn in (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation):
        img = fn(img, float(rng.uniform(1 - strength, 1 + strength)))
    return img.clamp(0, 1)


def sample_tensors(s: dict, model_cfg: ModelConfig, train_cfg: TrainConfig | None = None,
                   rng: np.random.Generator | None = None) -> dict:
    """Prepared sample -> tensors for the network; augmentation when train_cfg and rng are given."""
    W, H = s["width"], s["height"]
    uv = s["uv"].astype(np.float32).copy()
    xyz = s["xyz_cam"].astype(np.float32).copy()
    img = s["image"]
    idx = np.arange(len(uv))
    disp_label = s.get("disp_label")
    disp_label = None if disp_label is None else disp_label.copy()
    augment = train_cfg is not None and rng is not None
    if augment and train_cfg.max_points and len(idx) > train_cfg.max_points:
        idx = np.sort(rng.choice(len(idx), train_cfg.max_points, replace=False))
    flip = augment and rng.random() < train_cfg.flip_prob
    if flip:  # mirror the image about its vertical centre line: u -> W - 1 - u, camera x -> -x, du -> -du
        img = img[:, ::-1]
        uv[:, 0] = W - 1 - uv[:, 0]
        xyz[:, 0] = -xyz[:, 0]
        if disp_label is not None:
            disp_label[:, 0] = -disp_label[:, 0]
    sel = lambda a: None if a is None else a[idx]  # noqa: E731
    uv, xyz = uv[idx], xyz[idx]
    feats = radar_point_features(xyz, uv, W, H, sel(s.get("doppler")), sel(s.get("power")), model_cfg.features,
                                 model_cfg.max_range)
    image = image_tensor(img)  # 3 x H' x W'
    if augment and train_cfg.jitter > 0:
        image = _jitter(image, train_cfg.jitter, rng)
    size = (image.shape[2], image.shape[1])
    out = {"image": image, "feats": torch.from_numpy(feats),
           "uv": torch.from_numpy(to_working_uv(uv, W, H, size).astype(np.float32))}
    if "conf_label" in s:
        out["conf_label"] = torch.from_numpy(s["conf_label"][idx].astype(np.float32))
        out["conf_mask"] = torch.from_numpy(s["conf_mask"][idx].astype(bool))
        out["disp_label"] = torch.from_numpy(disp_label[idx] / model_cfg.disp_norm).float()
        out["disp_mask"] = torch.from_numpy(s["disp_mask"][idx].astype(bool))
    return out


class RecalibrationSamples(Dataset):
    """Prepared samples as a torch Dataset; augmentation when `train_cfg` is given (seeded per item and epoch)."""

    def __init__(self, samples: list[dict], model_cfg: ModelConfig, train_cfg: TrainConfig | None = None):
        self.samples, self.model_cfg, self.train_cfg = samples, model_cfg, train_cfg
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        rng = None
        if self.train_cfg is not None:
            rng = np.random.default_rng([self.train_cfg.seed, self.epoch, i])
        return sample_tensors(self.samples[i], self.model_cfg, self.train_cfg, rng)


def collate_samples(items: list[dict]) -> dict:
    """Pad to the batch's largest point count. Images of different sizes are zero-padded at the bottom/right.
    Returns image B x 3 x H x W, feats B x N x F, uv B x N x 2, valid B x N bool (+ labels and masks, padded with
    zeros / False)."""
    B = len(items)
    n = max(1, max(it["feats"].shape[0] for it in items))
    F_ = items[0]["feats"].shape[1]
    h = max(it["image"].shape[1] for it in items)
    w = max(it["image"].shape[2] for it in items)
    out = {"image": torch.zeros(B, 3, h, w), "feats": torch.zeros(B, n, F_), "uv": torch.zeros(B, n, 2),
           "valid": torch.zeros(B, n, dtype=torch.bool)}
    labelled = all("conf_label" in it for it in items)
    if labelled:
        out.update(conf_label=torch.zeros(B, n), conf_mask=torch.zeros(B, n, dtype=torch.bool),
                   disp_label=torch.zeros(B, n, 2), disp_mask=torch.zeros(B, n, dtype=torch.bool))
    for b, it in enumerate(items):
        k = it["feats"].shape[0]
        out["image"][b, :, : it["image"].shape[1], : it["image"].shape[2]] = it["image"]
        out["feats"][b, :k] = it["feats"]
        out["uv"][b, :k] = it["uv"]
        out["valid"][b, :k] = True
        if labelled:
            for key in ("conf_label", "conf_mask", "disp_label", "disp_mask"):
                out[key][b, :k] = it[key]
    return out
