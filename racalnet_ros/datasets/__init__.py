"""Datasets yielding `Frame`s: Astyx HiRes2019 (real), ZJU-4DRadarCam (the paper's benchmark), synthetic scenes, and
your own rosbag2 (`bag`)."""

from __future__ import annotations

import importlib

from .base import DatasetError, FrameDataset

#: dataset kind -> (module, class) ; imported lazily so e.g. Open3D loads only for synthetic data
DATASETS = {
    "astyx": ("racalnet_ros.datasets.astyx", "AstyxDataset"),
    "zju": ("racalnet_ros.datasets.zju", "ZJUDataset"),
    "synthetic": ("racalnet_ros.datasets.synthetic", "SyntheticDataset"),
    "bag": ("racalnet_ros.datasets.bag", "BagDataset"),
}


def open_dataset(kind: str, root: str, split: str | None = None, **kwargs) -> FrameDataset:
    """Open a dataset by kind ("astyx" | "zju" | "synthetic" | "bag") at `root`, optionally restricted to a named
    split. Extra keyword arguments go to the dataset class (e.g. prior_dir=..., or config=... for a bag)."""
    try:
        module, cls = DATASETS[kind]
    except KeyError:
        raise DatasetError(f"unknown dataset {kind!r}; choose one of {sorted(DATASETS)}") from None
    ds = getattr(importlib.import_module(module), cls)(root, **kwargs)
    return ds.split(split) if split else ds


__all__ = ["DatasetError", "FrameDataset", "open_dataset", "DATASETS"]
