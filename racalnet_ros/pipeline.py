"""The one entry point used by the CLI, the ROS node and the tests:

    Pipeline(recalibrator, prior, aligner, config).run(frame) -> Result
    (= optimize(prepare(frame)): stage 1 needs only the frame, stage 2 is Metric Depth Optimization; the node
    overlaps them across frames, ros/overlap.py)

recalibrate radar (paper Sec. III-A; or raw projections when recalibration is off) -> monocular prior (relative
inverse depth) -> Metric Depth Optimization (Sec. III-B: global alignment, local refinement, edge-aware smoothing).

Result.depth: H x W float32 metres at the frame's full resolution, clamped to [align.min_depth, align.max_depth];
NaN where no depth could be produced: no prior, no usable anchor and no previous fit, or a non-finite prior pixel.

Result.diagnostics: "scale", "shift" (global fit, inverse depth = scale * prior + shift; NaN without a fit),
"threshold" (tau* of Eq. 12, inf = all anchors, NaN = no search), "anchors_total" (radar points in the image),
"anchors_kept" (kept by screening), "anchors_used" (used by the global fit), "clusters_local" (clusters with their
own affine map), "anchors_subsampled" (in-image radar points the network did not evaluate because of the
recalibration.max_points cap; never used as anchors), "fallbacks" (list of guard flags, see metric_depth/align.py;
"no_prior" when there is no prior; "radar_subsampled" when the cap thinned the cloud: a WARN on /diagnostics;
"recalibration_distrusted" when the out-of-distribution guard relaxed the screening), "recalibration_trust" (1 =
the checkpoint's screening as trained, 0 = raw projections kept; recalibration/trust.py) and "feature_distance"
(the frame's image-feature distance over the checkpoint's reference d_ref; NaN without statistics or recalibration),
"times_ms" (stage -> ms: "recalibrate", "prior", "align", "refine", "smooth", "total").

Built in one way, `Pipeline.from_config(cfg)` (every command and the node): the configuration (racalnet_ros/config.py)
decides the stages, and a checkpoint or prior that cannot be loaded is decided here, at load time, the same for every
entry point: `load_recalibrator` raises CheckpointError naming `recalibration.checkpoint` and the file,
`load_prior` raises PriorError / PriorUnavailable naming the prior source. Nothing falls back silently.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Protocol

import numpy as np

from .config import (ABLATIONS, PRIOR_SOURCES, ConfigError, PipelineConfig, PriorConfig, RecalibrationConfig,
                     resolve_device)
from .frame import Frame, FrameError, RadarAnchors, Result
from .geometry import project_to_image
from .metric_depth.aligner import Aligner
from .metric_depth.priors import MonocularPrior, make_prior


class RecalibratorLike(Protocol):
    def recalibrate(self, frame: Frame) -> RadarAnchors: ...


def raw_anchors(frame: Frame) -> RadarAnchors:
    """Radar points projected with the given extrinsic, unchanged (the "no recalibration" input)."""
    if frame.num_radar == 0:
        return RadarAnchors.empty()
    p = project_to_image(frame.radar_xyz, frame.T_cam_radar, frame.camera)
    return RadarAnchors.from_raw(p.index, p.uv, p.depth)


def checkpoint_path(cfg: RecalibrationConfig) -> Path:
    """The checkpoint `cfg` names (the shipped default when empty), checked to exist; CheckpointError naming
    recalibration.checkpoint otherwise (the shipped one always ships: its absence is a packaging error)."""
    from .recalibration import default_checkpoint
    from .recalibration.checkpoint import CheckpointError, checkpoint_paths

    if not cfg.checkpoint:
        path = default_checkpoint()
        if not path.is_file():
            raise CheckpointError(f"recalibration.checkpoint: the shipped default {path} is missing (a broken "
                                  "install: reinstall racalnet_ros, or pass a checkpoint)")
        return path
    given = Path(cfg.checkpoint).expanduser()
    what = f"recalibration.checkpoint {cfg.checkpoint}"
    if given.is_dir():
        raise CheckpointError(f"{what}: is a folder; a checkpoint is <name>.safetensors with <name>.json beside it "
                              "(e.g. RUN_DIR/best.safetensors)")
    if given.is_file() and given.suffix not in (".safetensors", ".json"):
        raise CheckpointError(f"{what}: is not a checkpoint (expected <name>.safetensors with <name>.json beside it)")
    path, js = checkpoint_paths(given)
    if not path.is_file():
        raise CheckpointError(f"{what}: no such file {path}")
    if not js.is_file():
        raise CheckpointError(f"{what}: its configuration {js} is missing (a checkpoint is {path.name} + {js.name})")
    return path


def load_recalibrator(cfg: RecalibrationConfig, device: str = "cpu"):
    """Recalibrator from the configured checkpoint (the shipped default when empty). CheckpointError naming
    recalibration.checkpoint and the file when it is missing, corrupt or does not match this code."""
    from .recalibration import Recalibrator
    from .recalibration.checkpoint import CheckpointError

    path = checkpoint_path(cfg)
    try:
        return Recalibrator.from_checkpoint(path, device=device, threshold=None if cfg.threshold < 0 else cfg.threshold,
                                            use_screening=cfg.use_screening, use_displacement=cfg.use_displacement,
                                            max_points=cfg.max_points, trust_margin=cfg.trust_margin)
    except CheckpointError as exc:
        raise CheckpointError(f"recalibration.checkpoint {cfg.checkpoint or path}: {exc}") from None


def load_prior(cfg: PriorConfig, device: str = "cpu") -> MonocularPrior:
    """The configured prior (frame.prior for frame / synthetic / topic). PriorError / PriorUnavailable naming the
    source and what is missing."""
    return make_prior(cfg.spec(), device=device, fp16=cfg.fp16)


class Pipeline:
    """recalibrator (None = raw radar) -> prior (None = frame.prior) -> aligner. `checkpoint` / `provenance`: the
    recalibrator's checkpoint file and what it was trained on (recalibration/checkpoint.py, PROVENANCE)."""

    def __init__(self, recalibrator: Optional[RecalibratorLike], prior: Optional[MonocularPrior],
                 aligner: Aligner, config: Optional[PipelineConfig] = None, checkpoint: Optional[Path] = None,
                 provenance: Optional[dict] = None):
        self.recalibrator = recalibrator
        self.prior = prior
        self.aligner = aligner
        self.config = config or PipelineConfig()
        self.checkpoint = checkpoint
        self.provenance = provenance

    def checkpoint_info(self) -> dict[str, Any]:
        """{"checkpoint": resolved path or None (no recalibration), "provenance": dict or None}: what summaries
        record."""
        return {"checkpoint": str(self.checkpoint) if self.checkpoint is not None else None,
                "provenance": self.provenance}

    def synthetic_on_real_warning(self) -> Optional[str]:
        """The one line to say when this pipeline's checkpoint was trained on synthetic data only and meets a real
        sensor (the caller knows whether its frames are real), else None."""
        if self.checkpoint is None or self.provenance is None:
            return None
        from .recalibration.checkpoint import synthetic_on_real_warning

        return synthetic_on_real_warning(self.checkpoint, self.provenance)

    @classmethod
    def from_config(cls, cfg: PipelineConfig, prior: Optional[MonocularPrior] = None) -> "Pipeline":
        """Build every stage on cfg.device ("auto" resolves to cuda when available, else cpu); the pipeline's
        config is a copy holding the resolved device. `prior`: an already built prior to share (e.g. one network
        for the four ablations of `racalnet evaluate`); default: `load_prior(cfg.prior)`."""
        cfg = copy.deepcopy(cfg).validate()
        cfg.device = resolve_device(cfg.device)
        rec, ckpt, provenance = None, None, None
        if cfg.recalibration.enabled:
            from .recalibration.checkpoint import read_provenance

            rec = load_recalibrator(cfg.recalibration, cfg.device)
            ckpt = checkpoint_path(cfg.recalibration).resolve()
            provenance = read_provenance(ckpt)
        if prior is None:
            prior = load_prior(cfg.prior, cfg.device)
        aligner = Aligner(cfg.align, cfg.refine, cfg.smooth, device=cfg.device)
        return cls(rec, prior, aligner, cfg, checkpoint=ckpt, provenance=provenance)

    def anchors(self, frame: Frame) -> RadarAnchors:
        return self.recalibrator.recalibrate(frame) if self.recalibrator is not None else raw_anchors(frame)

    def run(self, frame: Frame, prior: Optional[np.ndarray] = None) -> Result:
        """`prior`: the frame's relative inverse depth when the caller already has it (computed once per frame and
        shared by several pipelines); otherwise the pipeline's prior makes it (or frame.prior without one).
        The one-call API: `optimize(prepare(frame, prior))`."""
        return self.optimize(self.prepare(frame, prior))

    def prepare(self, frame: Frame, prior: Optional[np.ndarray] = None) -> "Prepared":
        """Stage 1, everything that depends only on the frame: the recalibration network (anchors) and the
        monocular prior. The node runs it for frame t+1 while `optimize` runs for frame t (ros/overlap.py)."""
        t0 = time.perf_counter()
        times: dict[str, float] = {}
        anchors = self.anchors(frame)
        # the out-of-distribution guard's verdict on this frame (recalibration/trust.py), read in this thread
        trust = tuple(getattr(self.recalibrator, "last_trust", (1.0, math.nan)))
        t1 = time.perf_counter()
        times["recalibrate"] = (t1 - t0) * 1e3

        if prior is None and self.prior is not None:
            # the prior goes to the aligner's device as a tensor (a network's output never leaves its device)
            prior = self.prior.predict_tensor(frame, self.aligner.device)
        elif prior is None and frame.prior is not None:
            prior = np.asarray(frame.prior, np.float32)
        elif isinstance(prior, np.ndarray):  # shared by the caller: numpy or a tensor on any device
            prior = prior.astype(np.float32, copy=False)
        if prior is not None and tuple(prior.shape) != (frame.height, frame.width):
            raise FrameError(f"prior: {tuple(prior.shape)} does not match the image's {(frame.height, frame.width)}")
        times["prior"] = (time.perf_counter() - t1) * 1e3
        return Prepared(frame, anchors, prior, times, (time.perf_counter() - t0) * 1e3, trust)

    def optimize(self, prepared: "Prepared") -> Result:
        """Stage 2, Metric Depth Optimization (paper Sec. III-B: global fit, local refinement, smoothing) of a
        prepared frame, and the Result. times_ms["total"] = stage 1 + stage 2 compute time (a wait between the
        stages is not counted)."""
        t0 = time.perf_counter()
        frame, anchors, prior, times = prepared.frame, prepared.anchors, prepared.prior, dict(prepared.times_ms)
        cap = getattr(self.recalibrator, "max_points", 0)
        dropped = len(anchors) - cap if self.recalibrator is not None and 0 < cap < len(anchors) else 0
        trust, distance = prepared.trust
        diag: dict[str, Any] = {"anchors_total": len(anchors), "anchors_kept": anchors.num_kept,
                                "anchors_subsampled": dropped, "recalibration_trust": float(trust),
                                "feature_distance": float(distance)}
        if prior is None:
            depth = np.full((frame.height, frame.width), np.nan, np.float32)
            diag.update(scale=math.nan, shift=math.nan, threshold=math.nan, anchors_used=0, clusters_local=0,
                        fallbacks=["no_prior"])
            times.update(align=0.0, refine=0.0, smooth=0.0)
        else:
            out = self.aligner.run(prior, *anchors.fit_inputs(self.config.align.anchor_weights))
            depth = out.depth
            diag.update(scale=float(out.fit.scale), shift=float(out.fit.shift), threshold=float(out.fit.threshold),
                        anchors_used=int(out.used.sum()), clusters_local=int(out.n_local),
                        fallbacks=list(out.fallbacks))
            times.update({s: out.times_ms.get(s, 0.0) for s in ("align", "refine", "smooth")})
        if dropped:
            diag["fallbacks"].append("radar_subsampled")
        if trust < 1.0:
            diag["fallbacks"].append("recalibration_distrusted")
        times["total"] = prepared.ms + (time.perf_counter() - t0) * 1e3
        diag["times_ms"] = times
        return Result(depth=depth, anchors=anchors, diagnostics=diag)


@dataclass
class Prepared:
    """A frame after stage 1 (`Pipeline.prepare`): its anchors, its prior (numpy, or a tensor on the aligner's
    device; None = no prior) and the stage times so far ("recalibrate", "prior"); `ms`: stage 1's wall time;
    `trust`: (recalibration_trust, feature_distance) of the out-of-distribution guard for this frame."""

    frame: Frame
    anchors: RadarAnchors
    prior: Any
    times_ms: dict
    ms: float
    trust: tuple = (1.0, math.nan)

__all__ = ["ABLATIONS", "PRIOR_SOURCES", "ConfigError", "Pipeline", "PipelineConfig", "Prepared", "PriorConfig",
           "RecalibrationConfig", "checkpoint_path", "load_prior", "load_recalibrator", "raw_anchors",
           "resolve_device"]
