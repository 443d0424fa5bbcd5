"""Radar Recalibration (paper section III-A): per-point confidence and pixel displacement for projected radar
points, learned from sparse single-frame LiDAR. See docs/recalibration.md."""

from __future__ import annotations

from pathlib import Path

from .config import LabelConfig, ModelConfig, TrainConfig
from .recalibrator import Recalibrator

CHECKPOINT_DIR = Path(__file__).resolve().parents[1] / "checkpoints"


def default_checkpoint() -> Path:
    """The shipped demo checkpoint (small preset trained on synthetic data): .../checkpoints/small_synthetic.safetensors."""
    return CHECKPOINT_DIR / "small_synthetic.safetensors"


__all__ = ["Recalibrator", "ModelConfig", "LabelConfig", "TrainConfig", "default_checkpoint"]
