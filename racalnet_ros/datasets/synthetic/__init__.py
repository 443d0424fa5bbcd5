"""Synthetic street scenes with camera, LiDAR, 4D radar and a simulated monocular prior (see docs/synthetic.md).

    generate_frame(seed, config=None) -> Frame            one frame, deterministic from the seed
    SyntheticDataset(root)                                 a folder written by `racalnet synth`
    SyntheticDataset.generate(seeds, config=None)          the same frames generated on the fly (ids "%06d" % seed)
Splits "train" / "val" / "test" by seed (`layout.split_of_seed`: last digit 8 -> val, 9 -> test), plus "full".
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional

from ...frame import Frame
from ..base import DatasetError, FrameDataset
from . import layout
from .config import SynthConfig, SynthConfigError
from .generate import RADAR_FIELDS, check_seed, frame_id_of, generate_frame


class SyntheticDataset(FrameDataset):
    """Synthetic frames, read from `root` (a `racalnet synth` folder) or, via `generate`, made on the fly."""

    name = "synthetic"
    sensor = "simulated 4D radar, LiDAR and camera (racalnet synth generator)"
    real = False
    splits = ("train", "val", "test", "full")
    eval_crop_rows = None

    def __init__(self, root: Optional[str | Path] = None, *, seeds: Optional[Iterable[int]] = None,
                 config: Optional[SynthConfig] = None):
        if (root is None) == (seeds is None):
            raise ValueError("SyntheticDataset: give either root (a folder) or seeds (on-the-fly generation)")
        if root is not None:
            self.root: Optional[Path] = Path(root)
            meta = layout.read_meta(self.root)
            try:
                self.config = SynthConfig.from_dict(meta["config"])
                frames = meta["frames"]
                self.seeds = {str(f["id"]): int(f["seed"]) for f in frames}
                self._splits = {k: [str(i) for i in v] for k, v in meta["splits"].items()}
            except (SynthConfigError, KeyError, TypeError, ValueError) as exc:
                raise DatasetError(f"{self.root / 'meta.json'}: malformed ({exc})") from None
            self.radar_fields = tuple(meta["radar_fields"])
            ids = list(self.seeds)
        else:
            self.root = None
            self.config = config if config is not None else SynthConfig()
            seed_list = [check_seed(s) for s in seeds]
            self.seeds = {frame_id_of(s): s for s in seed_list}
            if len(self.seeds) != len(seed_list):
                raise ValueError("SyntheticDataset: duplicate seeds")
            self._splits = {name: [frame_id_of(s) for s in seed_list if layout.split_of_seed(s) == name]
                            for name in ("train", "val", "test")}
            self.radar_fields = RADAR_FIELDS
            ids = list(self.seeds)
        super().__init__(ids)

    @classmethod
    def generate(cls, seeds: Iterable[int], config: Optional[SynthConfig] = None) -> "SyntheticDataset":
        """Frames generated on the fly from `seeds` (each frame id is "%06d" % seed)."""
        return cls(seeds=list(seeds), config=config)

    def load(self, frame_id: str) -> Frame:
        if frame_id not in self.seeds:
            raise KeyError(f"synthetic: unknown frame id {frame_id!r}")
        if self.root is None:
            return generate_frame(self.seeds[frame_id], self.config)
        return layout.read_frame(self.root, frame_id, self.radar_fields)

    def describe(self) -> dict:
        """FrameDataset.describe() plus the generator seeds of these frames and the SynthConfig fields that differ
        from the defaults ("generator"): together they define synthetic frames."""
        from ..base import id_ranges

        changed = {k: v for k, v in self.config.to_dict().items() if v != SynthConfig().to_dict()[k]}
        return {**super().describe(), "seeds": id_ranges(self.seeds[i] for i in self.ids), "generator": changed}

    def split_ids(self, name: str) -> list[str]:
        if name == "full":
            return list(self.seeds)
        if name not in self._splits:
            raise KeyError(f"synthetic: unknown split {name!r}; choose one of {self.splits}")
        return list(self._splits[name])


__all__ = ["SyntheticDataset", "SynthConfig", "SynthConfigError", "generate_frame", "RADAR_FIELDS"]
