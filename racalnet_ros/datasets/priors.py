"""Precomputed monocular priors: a folder of `<frame_id>.npy`, each float32 relative inverse depth (larger = nearer,
unknown scale and shift) at any resolution, resized bilinearly to the image (e.g. Astyx's `mono_fastdepth/`, 224x224).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .base import DatasetError, load_npy


def load_precomputed_prior(folder, frame_id: str, size_hw: tuple[int, int]) -> np.ndarray:
    """Read `folder/<frame_id>.npy` and resize it bilinearly (OpenCV INTER_LINEAR, pixel-centre aligned) to
    size_hw = (H, W). Returns H x W float32. DatasetError naming the file if it is missing, unreadable, not 2-D
    (a leading or trailing axis of size 1 is squeezed) or contains NaN/inf."""
    path = Path(folder) / f"{frame_id}.npy"
    arr = load_npy(path, "prior file")
    arr = np.asarray(arr)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.reshape(arr.shape[1:] if arr.shape[0] == 1 else arr.shape[:-1])
    if arr.ndim != 2 or arr.size == 0:
        raise DatasetError(f"{path}: expected a 2-D H x W prior, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise DatasetError(f"{path}: expected a numeric array, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)):
        raise DatasetError(f"{path}: prior contains NaN or inf")
    h, w = int(size_hw[0]), int(size_hw[1])
    if arr.shape != (h, w):
        arr = cv2.resize(arr, (w, h), interpolation=cv2.INTER_LINEAR)
    return arr


__all__ = ["load_precomputed_prior"]
