"""Checkpoints: `<name>.safetensors` (weights) + `<name>.json` (the configuration that built them and its
provenance: what it was trained on, `PROVENANCE`).

Loading rebuilds the network from the JSON and refuses, with a message naming the mismatch, a configuration this code
does not understand, missing or unexpected tensors, and tensors whose shapes differ from the network's. A path that is
a folder, a file of another kind, or a `.safetensors` without its `.json` is named as such (`CheckpointError`).
"""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path
from typing import Any, Mapping, Optional

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


#: A checkpoint's provenance (the "provenance" object of its JSON): what it was trained on. `fit()` writes it into
#: every checkpoint it saves (last, best, --export); the dataset keys come from `FrameDataset.describe()` of the
#: training frames (datasets/base.py; every dataset implements it). Keys and what they hold:
PROVENANCE: dict[str, str] = {
    "dataset": "dataset kind: synthetic | astyx | zju | bag | samples (a prepared-samples file) | ...",
    "sensor": "the sensors the training frames come from",
    "real": "true for recordings of real sensors, false for synthetic frames (null: unknown)",
    "root": "dataset folder or bag ('' for frames generated on the fly)",
    "frames": "training frame ids as inclusive ranges, e.g. '000000-000079'",
    "seeds": "synthetic only: generator seeds as ranges, e.g. '0-299'",
    "n_frames": "number of training frames",
    "validation": "the same description of the validation frames (null without validation)",
    "preset": "model preset: small | paper | tiny | custom",
    "init": "checkpoint whose weights training started from ('' = from scratch)",
    "date": "UTC time the checkpoint was written, ISO 8601",
    "version": "racalnet_ros version that trained it",
    "command": "the command line that trained it",
}


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
    js.write_text(json.dumps(meta, indent=2, allow_nan=False))
    return st


def describe_data(data: Any) -> Optional[dict[str, Any]]:
    """The dataset keys of PROVENANCE for what `fit` trains on: a FrameDataset's `describe()`, a prepared-samples
    file, or prepared samples in memory; None for no data."""
    if data is None:
        return None
    if hasattr(data, "describe"):
        return dict(data.describe())
    if isinstance(data, (str, Path)):
        return {"dataset": "samples", "sensor": "unknown (prepared samples)", "real": None, "root": str(data),
                "frames": "", "n_frames": None}
    return {"dataset": "samples", "sensor": "unknown (prepared samples)", "real": None, "root": "", "frames": "",
            "n_frames": len(data)}


def preset_of(model_cfg: ModelConfig) -> str:
    """The preset whose architecture `model_cfg` has (input width and pretrained weights aside), else "custom"."""
    mine = {k: v for k, v in model_cfg.to_dict().items() if k not in ("input_width", "pretrained")}
    for name in ("small", "paper", "tiny"):
        ref = {k: v for k, v in ModelConfig.preset(name).to_dict().items() if k not in ("input_width", "pretrained")}
        if json.dumps(ref, sort_keys=True, default=list) == json.dumps(mine, sort_keys=True, default=list):
            return name
    return "custom"


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (a provenance's "date")."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def command_text(command: str) -> str:
    """A recorded command line as a user types it: `python -m racalnet_ros.cli ...` (argv[0] .../cli/__main__.py)
    and the console script's full path both read `racalnet ...`."""
    return re.sub(r"^\S*(racalnet_ros/cli/__main__\.py|/racalnet)(?= )", "racalnet", str(command))


def make_provenance(train: Optional[Mapping[str, Any]], validation: Optional[Mapping[str, Any]], preset: str,
                    command: str = "", init: str = "", date: Optional[str] = None) -> dict[str, Any]:
    """A PROVENANCE object from the descriptions of the training and validation frames (`describe_data`)."""
    from .. import __version__

    train = dict(train or {})
    prov = {"dataset": train.pop("dataset", "unknown"), "sensor": train.pop("sensor", "unknown sensor"),
            "real": train.pop("real", None), "root": train.pop("root", ""), "frames": train.pop("frames", ""),
            "seeds": train.pop("seeds", ""), "n_frames": train.pop("n_frames", None)}
    prov.update(train)  # anything else a dataset says about itself (e.g. a bag's topics)
    prov.update({"validation": dict(validation) if validation else None, "preset": preset, "init": str(init or ""),
                 "date": date or utc_now(),
                 "version": __version__, "command": command_text(command)})
    return prov


def provenance_of(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance in a checkpoint's JSON metadata; a checkpoint written before provenance existed gets what its
    metadata says ("dataset") and unknowns."""
    prov = meta.get("provenance")
    if isinstance(prov, dict):
        return dict(prov)
    dataset = str(meta.get("dataset", "unknown"))
    return {"dataset": dataset, "sensor": "unknown", "real": False if dataset == "synthetic" else None,
            "root": "", "frames": "", "seeds": "", "n_frames": None, "validation": None, "preset": "unknown",
            "init": "", "date": "unknown", "version": "unknown", "command": ""}


def read_provenance(path: str | Path) -> dict[str, Any]:
    """The provenance of the checkpoint at `path` (CheckpointError if its JSON cannot be read)."""
    return provenance_of(read_config(path))


def provenance_text(prov: Mapping[str, Any], short: bool = False) -> str:
    """One line: 'synthetic: simulated ... ; seeds 0-299, 300 frames; preset small; 2026-11-22; racalnet_ros 0.1.0'
    (`short`: 'synthetic, seeds 0-299, 300 frames, 2026-11-22')."""
    what = f"seeds {prov['seeds']}" if prov.get("seeds") else f"frames {prov['frames']}" if prov.get("frames") else ""
    n = prov.get("n_frames")
    data = ", ".join(x for x in (what, f"{n} frames" if n else "") if x)
    date = str(prov.get("date") or "unknown")[:10]
    init = f"; fine-tuned from {prov['init']}" if prov.get("init") else ""
    if short:
        return ", ".join(x for x in (str(prov.get("dataset", "unknown")), data, date) if x)
    return "; ".join(x for x in (f"{prov.get('dataset', 'unknown')}: {prov.get('sensor') or 'unknown sensor'}", data)
                     if x) + f"{init}; preset {prov.get('preset', 'unknown')}; {date}; racalnet_ros " \
        f"{prov.get('version', 'unknown')}"


def synthetic_on_real_warning(path: str | Path, prov: Mapping[str, Any]) -> Optional[str]:
    """The one line said when a checkpoint trained only on synthetic frames meets a real sensor, else None."""
    if prov.get("real") is not False:
        return None
    from . import default_checkpoint

    return (f"recalibration: checkpoint {Path(path).name} was trained on synthetic data only "
            f"({provenance_text(prov, short=True)}); on a real sensor it can drop and move anchors wrongly and make "
            f"depth worse than no recalibration: train it on your own data (racalnet train --dataset bag --root BAG "
            f"--init {default_checkpoint()}, docs/recalibration.md) or turn it off (recalibration.enabled: false, "
            "--no-recalibration)")


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
