"""Checkpoints: `<name>.safetensors` (weights) + `<name>.json` (the configuration that built them).

Loading rebuilds the network from the JSON and refuses, with a message naming the mismatch, a configuration this code
does not understand, missing or unexpected tensors, and tensors whose shapes differ from the network's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..errors import RacalnetError
from .config import LabelConfig, ModelConfig
from .model import RecalibrationNet

FORMAT = "racalnet_ros.recalibration"
VERSION = 1


class CheckpointError(RacalnetError, ValueError):
    """A checkpoint is missing, unreadable or does not match this code; the message names the file and the
    mismatch."""


def checkpoint_paths(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    return p.with_suffix(".safetensors"), p.with_suffix(".json")


def save_checkpoint(path: str | Path, model: torch.nn.Module, model_cfg: ModelConfig,
                    label_cfg: LabelConfig | None = None, threshold: float = 0.5, fp16: bool = False,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write weights (optionally stored as float16) and config; returns the .safetensors path."""
    st, js = checkpoint_paths(path)
    st.parent.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: (v.detach().to("cpu", torch.float16 if fp16 and v.is_floating_point() else v.dtype)).contiguous()
             for k, v in model.state_dict().items()}
    save_file(state, str(st), metadata={"format": FORMAT})
    meta = {"format": FORMAT, "version": VERSION, "model": model_cfg.to_dict(),
            "label": label_cfg.to_dict() if label_cfg else None, "threshold": float(threshold),
            "dtype": "float16" if fp16 else "float32", **(extra or {})}
    js.write_text(json.dumps(meta, indent=2))
    return st


def read_config(path: str | Path) -> dict[str, Any]:
    _, js = checkpoint_paths(path)
    if not js.is_file():
        raise CheckpointError(f"checkpoint config {js} not found (a checkpoint is <name>.safetensors + <name>.json)")
    try:
        meta = json.loads(js.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{js}: not a readable checkpoint config ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        meta = meta if isinstance(meta, dict) else {}
        raise CheckpointError(f"{js}: format {meta.get('format')!r} is not {FORMAT!r}")
    if int(meta.get("version", -1)) != VERSION:
        raise CheckpointError(f"{js}: version {meta.get('version')} is not supported (expected {VERSION})")
    return meta


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu"
                    ) -> tuple[RecalibrationNet, ModelConfig, dict[str, Any]]:
    """-> (model in eval mode on `device`, its ModelConfig, the JSON metadata)."""
    st, js = checkpoint_paths(path)
    meta = read_config(path)
    try:
        cfg = ModelConfig.from_dict(dict(meta["model"], pretrained=""))  # never fetch backbone weights at load
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{js}: model config does not match this code: {exc}") from None
    if not st.is_file():
        raise CheckpointError(f"checkpoint weights {st} not found")
    model = RecalibrationNet(cfg)
    try:
        state = load_file(str(st))
    except Exception as exc:  # safetensors raises its own SafetensorError (or OSError) for a corrupt file
        raise CheckpointError(f"{st}: not a readable safetensors file ({exc})") from None
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing tensors {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        if unexpected:
            parts.append(f"unexpected tensors {unexpected[:5]}{' ...' if len(unexpected) > 5 else ''}")
        if shapes:
            parts.append("shape mismatch " + "; ".join(shapes[:5]))
        raise CheckpointError(f"{st} does not match the network built from {js.name}: " + "; ".join(parts))
    model.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()})
    return model.to(device).eval(), cfg, meta
