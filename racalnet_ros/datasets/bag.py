"""Your own rosbag2 as a dataset: `racalnet train|evaluate|evaluate-anchors|inspect --dataset bag --root BAG`.

Frames are matched and decoded by racalnet_ros/ros/bag_frames.py (topics, the node's approximate-time policy,
extrinsics from parameters, the bag's metadata or /tf_static; see docs/bags.md, "Train on your own robot"); this
class only adds the dataset interface. The bag is indexed once when opened (one pass over the chosen topics, headers
only) and every frame is decoded when it is loaded, so bags larger than memory stream.

Frame ids: the dataset ids stored by `racalnet bag-from-dataset` (e.g. "000080"), otherwise the image's header stamp
in nanoseconds. Splits, by time: "val" = the last `split.val_fraction` (default 20%) of the matched frames in image
stamp order, "train" = the frames before them, "full" = all. Neighbouring frames of a recording are alike, so the
few frames on either side of the boundary are near duplicates; a gap of a few seconds between them (record it, or
cut it with `--frames`) makes validation more honest.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..frame import Frame
from .base import DatasetError, FrameDataset, UnknownFrameError


#: indexed bags of this process: (path, modification time, settings) -> BagFrames
_OPENED: dict[tuple, Any] = {}


def _mtime(root: Path) -> float:
    try:
        return max(p.stat().st_mtime for p in [root, *root.iterdir()])
    except OSError:
        return 0.0


class BagDataset(FrameDataset):
    """Frames of a rosbag2 directory. `config`: a BagSourceConfig (ros/bag_frames.py) or flat dotted values for one
    (topics.*, radar.field.*, extrinsics.*, sync.*, split.*)."""

    name = "bag"
    splits = ("train", "val", "full")
    eval_crop_rows = None

    def __init__(self, root, config: Any = None):
        from ..ros.bag import BagError
        from ..ros.bag_frames import BagFrames, BagSourceConfig

        self.root = Path(root)
        if not isinstance(config, BagSourceConfig):
            config = BagSourceConfig.from_values(dict(config or {}))
        key = (str(self.root.resolve()), _mtime(self.root), json.dumps(config.to_flat(), sort_keys=True))
        if key not in _OPENED:  # train and val splits of one command share one index pass
            try:
                _OPENED[key] = BagFrames(self.root, config)
            except BagError as exc:
                raise DatasetError(str(exc)) from None
            while len(_OPENED) > 4:
                _OPENED.pop(next(iter(_OPENED)))
        self.frames = _OPENED[key]
        self._index = {fid: i for i, fid in enumerate(self.frames.ids)}
        self.split_name = "full"
        super().__init__(self.frames.ids)

    @property
    def has_lidar(self) -> bool:
        return "lidar" in self.frames.topics

    def load(self, frame_id: str) -> Frame:
        from ..ros.bag import BagError

        if frame_id not in self._index:
            raise UnknownFrameError(f"bag {self.root}: unknown frame id {frame_id!r}")
        try:
            return self.frames.load(self._index[frame_id])
        except BagError as exc:
            raise DatasetError(str(exc)) from None

    def split_ids(self, name: str) -> list[str]:
        ids = self.frames.ids
        n_val = round(len(ids) * self.frames.config.split.val_fraction)
        if self.frames.config.split.val_fraction > 0 and len(ids) > 1:
            n_val = min(max(n_val, 1), len(ids) - 1)
        if name == "full":
            return list(ids)
        if name == "train":
            return list(ids[: len(ids) - n_val])
        if name == "val":
            return list(ids[len(ids) - n_val:]) if n_val else []
        raise KeyError(f"bag: unknown split {name!r}; choose one of {self.splits}")

    def split(self, name: str) -> "BagDataset":
        view = super().split(name)
        view.split_name = name
        return view

    def describe(self) -> dict[str, Any]:
        """What these frames are, for a checkpoint's provenance: the bag, its sensors and topics, the split, the
        number of frames and their time span (ids listed when there are at most 100)."""
        stamps = [self.frames.stamp_ns(self._index[i]) for i in self.ids]
        fr = self.frames.describe()
        sensor = " + ".join(f"{k}:{fr['sensor_frames'][k]}" for k in ("radar", "image", "lidar")
                            if k in fr["sensor_frames"])
        out: dict[str, Any] = {"dataset": "bag", "root": str(self.root.resolve()), "sensor": sensor,
                               "split": self.split_name, "frames": len(self.ids),
                               "stamps_ns": [min(stamps), max(stamps)] if stamps else [],
                               **fr}
        if len(self.ids) <= 100:
            out["frame_ids"] = list(self.ids)
        return out


__all__ = ["BagDataset"]
