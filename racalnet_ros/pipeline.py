"""The one entry point used by the CLI, the ROS node and the tests:

    Pipeline(recalibrator, prior, aligner, config).run(frame) -> Result

recalibrate radar (paper Sec. III-A; or raw projections when recalibration is off) -> monocular prior (relative
inverse depth) -> Metric Depth Optimization (Sec. III-B: global alignment, local refinement, edge-aware smoothing).

Result.depth: H x W float32 metres at the frame's full resolution, clamped to [align.min_depth, align.max_depth];
NaN where no depth could be produced: no prior, no usable anchor and no previous fit, or a non-finite prior pixel.

Result.diagnostics: "scale", "shift" (global fit, inverse depth = scale * prior + shift; NaN without a fit),
"threshold" (tau* of Eq. 12, inf = all anchors, NaN = no search), "anchors_total" (radar points in the image),
"anchors_kept" (kept by screening), "anchors_used" (used by the global fit), "clusters_local" (clusters with their
own affine map), "fallbacks" (list of guard flags, see metric_depth/align.py; "no_prior" when there is no prior),
"times_ms" (stage -> ms: "recalibrate", "prior", "align", "refine", "smooth", "total").

Configuration is data: `PipelineConfig` (nested dataclasses) <-> flat dotted keys (`to_flat` / `from_flat`), shared
by CLI flags and ROS parameters; `from_yaml` reads plain YAML (nested or dotted) or the ROS "/**: ros__parameters"
layout.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np

from .frame import Frame, FrameError, RadarAnchors, Result
from .geometry import project_to_image
from .metric_depth.align import AlignConfig
from .metric_depth.aligner import Aligner
from .metric_depth.priors import MonocularPrior, make_prior
from .metric_depth.refine import RefineConfig
from .metric_depth.smooth import SmoothConfig


#: prior.source values: "frame" = frame.prior ("synthetic" and "topic" are aliases: the synthetic generator's
#: simulated prior and the ROS prior topic both arrive as frame.prior), a precomputed folder, Depth Anything V2.
PRIOR_SOURCES = ("frame", "synthetic", "topic", "precomputed", "depth-anything-v2")

_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve_device(device: str) -> str:
    """The torch device to run on: "auto" -> "cuda" when torch sees a CUDA device, else "cpu"; "cpu", "cuda",
    "cuda:N" are returned as given. ValueError for anything else, or for cuda when torch sees no CUDA device."""
    device = str(device).strip().lower()
    if not _DEVICE.match(device):
        raise ValueError(f"pipeline config: device: expected auto | cpu | cuda | cuda:N, got {device!r}")
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ValueError(f"pipeline config: device: {device!r} requested but torch sees no CUDA device "
                         "(use auto or cpu)")
    return device


@dataclass
class RecalibrationConfig:
    """enabled: run the Radar Recalibration network (off = raw projections, the "no recalibration" ablation).
    checkpoint: path to `<name>.safetensors` ("" = the shipped default). threshold: confidence threshold (< 0 = the
    checkpoint's own). use_screening / use_displacement: ablations of the network's two heads."""

    enabled: bool = True
    checkpoint: str = ""
    threshold: float = -1.0
    use_screening: bool = True
    use_displacement: bool = True


@dataclass
class PriorConfig:
    """source: "frame" (frame.prior: synthetic / ROS topic) | "precomputed" | "depth-anything-v2". path: the
    precomputed folder, or the Hugging Face id / local folder of the model ("" = default model). fp16: half precision
    on CUDA."""

    source: str = "frame"
    path: str = ""
    fp16: bool = False

    def spec(self) -> str:
        return f"{self.source}:{self.path}" if self.path else self.source


@dataclass
class PipelineConfig:
    recalibration: RecalibrationConfig = field(default_factory=RecalibrationConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    device: str = "cpu"  # auto (cuda when available, else cpu) | cpu | cuda | cuda:N; resolved by from_config

    # ------------------------------------------------------------------ flat dotted keys
    def to_flat(self) -> dict[str, bool | int | float | str]:
        """{"recalibration.threshold": -1.0, "refine.enabled": True, ..., "device": "cpu"}."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if dataclasses.is_dataclass(v):
                for g in fields(v):
                    out[f"{f.name}.{g.name}"] = getattr(v, g.name)
            else:
                out[f.name] = v
        return out

    @classmethod
    def from_flat(cls, d: dict[str, Any]) -> "PipelineConfig":
        """Inverse of to_flat; missing keys keep their defaults, unknown keys and wrong types raise ValueError naming
        the key. Values are converted to the field's type (so ROS integers for float fields are fine)."""
        cfg = cls()
        known = cfg.to_flat()
        for key, value in d.items():
            if key not in known:
                raise ValueError(f"pipeline config: unknown key {key!r}; known keys: {sorted(known)}")
            default = known[key]
            try:
                if isinstance(default, bool):
                    if isinstance(value, str):
                        if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                            raise ValueError
                        value = value.lower() in ("true", "1", "yes")
                    elif not isinstance(value, (bool, int, np.bool_)):
                        raise ValueError
                    value = bool(value)
                elif isinstance(default, int):
                    if isinstance(value, float) and not float(value).is_integer():
                        raise ValueError
                    value = int(value)
                elif isinstance(default, float):
                    value = float(value)
                else:
                    value = str(value)
            except (TypeError, ValueError):
                raise ValueError(f"pipeline config: {key}: expected {type(default).__name__}, got {value!r}") from None
            head, _, tail = key.partition(".")
            if tail:
                setattr(getattr(cfg, head), tail, value)
            else:
                setattr(cfg, head, value)
        cfg.validate()
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path) -> "PipelineConfig":
        """Plain YAML (nested sections or dotted keys) or a ROS parameter file ("/**:" or a node name, then
        "ros__parameters")."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"pipeline config: cannot read {path}: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError(f"pipeline config: {path} must hold a mapping")
        for v in data.values():  # ROS layout: {node_name_or_/**: {ros__parameters: {...}}}
            if isinstance(v, dict) and "ros__parameters" in v:
                data = v["ros__parameters"] or {}
                break
        flat: dict[str, Any] = {}

        def walk(prefix: str, node: Any) -> None:
            if isinstance(node, dict):
                for k, v in node.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            else:
                flat[prefix] = node

        walk("", data)
        known = cls().to_flat()
        # a ROS parameter file may carry the node's other parameters (topics, queue sizes): keep only ours
        sections = {k.split(".")[0] for k in known}
        ours = {k: v for k, v in flat.items() if k in known or k.split(".")[0] in sections}
        return cls.from_flat(ours)

    def validate(self) -> "PipelineConfig":
        self.align.validate()
        self.refine.validate()
        self.smooth.validate()
        if self.prior.source not in PRIOR_SOURCES:
            raise ValueError(f"pipeline config: prior.source: unknown {self.prior.source!r}; choose from {PRIOR_SOURCES}")
        if not _DEVICE.match(str(self.device).strip().lower()):
            raise ValueError(f"pipeline config: device: expected auto | cpu | cuda | cuda:N, got {self.device!r}")
        return self

    # ------------------------------------------------------------------ presets for the ablations
    def ablation(self, name: str) -> "PipelineConfig":
        """A copy configured for one of the paper's configurations: "full", "no-displacement", "no-recalibration"
        (raw radar, same alignment), "baseline" (raw radar, plain least squares, no refinement, no smoothing)."""
        c = dataclasses.replace(self, recalibration=dataclasses.replace(self.recalibration),
                                align=dataclasses.replace(self.align), refine=dataclasses.replace(self.refine),
                                smooth=dataclasses.replace(self.smooth), prior=dataclasses.replace(self.prior))
        if name == "full":
            c.recalibration.enabled, c.recalibration.use_displacement = True, True
        elif name == "no-displacement":
            c.recalibration.enabled, c.recalibration.use_displacement = True, False
        elif name == "no-recalibration":
            c.recalibration.enabled = False
        elif name == "baseline":
            c.recalibration.enabled = False
            c.align.threshold_search, c.align.regularization = False, 0.0
            c.refine.enabled = False
            c.smooth.enabled = False
        else:
            raise ValueError(f"unknown configuration {name!r}; choose one of {ABLATIONS}")
        return c


#: the paper's configurations (Table IV) plus the RadarCam-Depth stage-2 baseline
ABLATIONS = ("full", "no-displacement", "no-recalibration", "baseline")


class RecalibratorLike(Protocol):
    def recalibrate(self, frame: Frame) -> RadarAnchors: ...


def raw_anchors(frame: Frame) -> RadarAnchors:
    """Radar points projected with the given extrinsic, unchanged (the "no recalibration" input)."""
    if frame.num_radar == 0:
        return RadarAnchors.empty()
    p = project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    return RadarAnchors.from_raw(p.index, p.uv, p.depth)


def load_recalibrator(cfg: RecalibrationConfig, device: str = "cpu"):
    """Recalibrator from the configured checkpoint (the shipped default when empty)."""
    try:
        from .recalibration import Recalibrator, default_checkpoint
    except ImportError as exc:
        raise RuntimeError(f"recalibration: the Recalibrator is not available in this build ({exc}); set "
                           "recalibration.enabled=false to run on raw radar") from exc
    ckpt = cfg.checkpoint or str(default_checkpoint())
    return Recalibrator.from_checkpoint(ckpt, device=device, threshold=None if cfg.threshold < 0 else cfg.threshold,
                                        use_screening=cfg.use_screening, use_displacement=cfg.use_displacement)


class Pipeline:
    """recalibrator (None = raw radar) -> prior (None = frame.prior) -> aligner."""

    def __init__(self, recalibrator: Optional[RecalibratorLike], prior: Optional[MonocularPrior],
                 aligner: Aligner, config: Optional[PipelineConfig] = None):
        self.recalibrator = recalibrator
        self.prior = prior
        self.aligner = aligner
        self.config = config or PipelineConfig()

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> "Pipeline":
        """Build every stage on cfg.device ("auto" resolves to cuda when available, else cpu); the pipeline's
        config is a copy holding the resolved device."""
        cfg.validate()
        cfg = dataclasses.replace(cfg, device=resolve_device(cfg.device))
        rec = load_recalibrator(cfg.recalibration, cfg.device) if cfg.recalibration.enabled else None
        prior = make_prior(cfg.prior.spec(), device=cfg.device, fp16=cfg.prior.fp16)
        aligner = Aligner(cfg.align, cfg.refine, cfg.smooth, device=cfg.device)
        return cls(rec, prior, aligner, cfg)

    def anchors(self, frame: Frame) -> RadarAnchors:
        return self.recalibrator.recalibrate(frame) if self.recalibrator is not None else raw_anchors(frame)

    def run(self, frame: Frame) -> Result:
        t0 = time.perf_counter()
        times: dict[str, float] = {}
        anchors = self.anchors(frame)
        t1 = time.perf_counter()
        times["recalibrate"] = (t1 - t0) * 1e3

        # the prior goes to the aligner's device as a tensor (a network's output never leaves its device)
        prior = None
        if self.prior is not None:
            prior = self.prior.predict_tensor(frame, self.aligner.device)
        elif frame.prior is not None:
            prior = np.asarray(frame.prior, np.float32)
        if prior is not None and tuple(prior.shape) != (frame.height, frame.width):
            raise FrameError(f"prior: {tuple(prior.shape)} does not match the image's {(frame.height, frame.width)}")
        t2 = time.perf_counter()
        times["prior"] = (t2 - t1) * 1e3

        diag: dict[str, Any] = {"anchors_total": len(anchors), "anchors_kept": anchors.num_kept}
        if prior is None:
            depth = np.full((frame.height, frame.width), np.nan, np.float32)
            diag.update(scale=math.nan, shift=math.nan, threshold=math.nan, anchors_used=0, clusters_local=0,
                        fallbacks=["no_prior"])
            times.update(align=0.0, refine=0.0, smooth=0.0)
        else:
            k = anchors.kept
            out = self.aligner.run(prior, anchors.uv[k], anchors.depth[k])
            depth = out.depth
            diag.update(scale=float(out.fit.scale), shift=float(out.fit.shift), threshold=float(out.fit.threshold),
                        anchors_used=int(out.used.sum()), clusters_local=int(out.n_local),
                        fallbacks=list(out.fallbacks))
            times.update({s: out.times_ms.get(s, 0.0) for s in ("align", "refine", "smooth")})
        times["total"] = (time.perf_counter() - t0) * 1e3
        diag["times_ms"] = times
        return Result(depth=depth, anchors=anchors, diagnostics=diag)


__all__ = ["ABLATIONS", "PRIOR_SOURCES", "Pipeline", "PipelineConfig", "PriorConfig", "RecalibrationConfig", "raw_anchors",
           "load_recalibrator", "resolve_device"]
