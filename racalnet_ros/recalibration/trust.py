"""Out-of-distribution guard ("where it cannot help, it must not hurt"): how far a frame's image features are from
those the checkpoint was trained on, and how much of the recalibration to trust for it.

At export (`fit_feature_statistics`, run by recalibration/train.py) the exported network encodes every training and
validation frame; the per-frame descriptor is the mean and the log standard deviation of each channel of the fused
image feature map (2 x fpn_channels numbers). The training frames give a mean and a standard deviation per entry; the
distance of a frame is the root mean square of its standardised descriptor (a diagonal Mahalanobis distance per
entry). The reference distance `d_ref` is the 95th percentile of the distances of the validation frames (frames
the statistics were not computed on), so a frame like the held-out synthetic ones has ratio d / d_ref <= 1 95% of
the time. Everything is stored in the checkpoint's JSON metadata under "trust".

At inference (`trust_of`), with margin m = recalibration.trust_margin:

    r = d / d_ref,  trust = clip(1 - (r - 1) / m, 0, 1)

so trust is 1 up to the reference distance, falls linearly, and is 0 at (1 + m) d_ref. The recalibrator then keeps
a point when confidence >= trust x threshold and moves it by trust x displacement: a fully distrusted frame keeps
every raw projection (the "no recalibration" anchors). A checkpoint without statistics, or m = 0, always trusts.
The margin is fixed in advance (1.0: fully distrusted at twice the reference distance), not tuned on real data.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Optional

import numpy as np
import torch

DESCRIPTOR = "fmap_channel_mean_logstd"
QUANTILE = 0.95


def image_descriptor(fmap: torch.Tensor) -> np.ndarray:
    """fmap: B x C x h x w fused image features -> B x 2C float64 (channel means, log channel standard deviations)."""
    f = fmap.float().flatten(2)                                                   # B x C x hw
    mean = f.mean(dim=2)
    logstd = torch.log(f.std(dim=2, unbiased=False) + 1e-6)
    return torch.cat([mean, logstd], dim=1).cpu().double().numpy()


def feature_distance(desc: np.ndarray, stats: Mapping[str, Any]) -> np.ndarray:
    """Descriptor(s) ... x 2C -> root mean square standardised distance to the training statistics."""
    mean, std = np.asarray(stats["mean"], np.float64), np.asarray(stats["std"], np.float64)
    z = (np.asarray(desc, np.float64) - mean) / std
    return np.sqrt(np.mean(z * z, axis=-1))


def trust_of(distance: float, d_ref: float, margin: float) -> float:
    """1 up to d_ref, linear down to 0 at (1 + margin) d_ref; 1 when the guard is off (margin 0)."""
    if margin <= 0 or not math.isfinite(distance) or d_ref <= 0:
        return 1.0
    return float(min(1.0, max(0.0, 1.0 - (distance / d_ref - 1.0) / margin)))


@torch.inference_mode()
def encode_descriptors(model, samples: Iterable[Mapping[str, Any]], device="cpu") -> np.ndarray:
    """The descriptor of each prepared sample (recalibration/data.py: its "image" is at working resolution)."""
    from .preprocess import image_tensor

    model = model.to(device).eval()
    out = [image_descriptor(model.encode_image(image_tensor(s["image"]).unsqueeze(0).to(device)))[0]
           for s in samples]
    return np.stack(out) if out else np.zeros((0, 2 * model.cfg.fpn_channels))


def fit_feature_statistics(model, train_samples, val_samples, device="cpu") -> Optional[dict[str, Any]]:
    """The "trust" metadata of a checkpoint: per-entry mean / std of the training frames' descriptors and the 95th
    percentile distance of the validation frames (d_ref). None without validation frames."""
    train = encode_descriptors(model, train_samples, device)
    val = encode_descriptors(model, val_samples, device)
    if len(train) < 2 or len(val) < 1:
        return None
    stats = {"descriptor": DESCRIPTOR, "mean": train.mean(0).tolist(), "std": (train.std(0) + 1e-6).tolist()}
    d_val = feature_distance(val, stats)
    d_train = feature_distance(train, stats)
    stats.update(d_ref=float(np.quantile(d_val, QUANTILE)), quantile=QUANTILE, n_train=len(train), n_val=len(val),
                 d_val_median=float(np.median(d_val)), d_train_median=float(np.median(d_train)))
    return stats
