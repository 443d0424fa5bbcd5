"""`Aligner`: the three stages of Metric Depth Optimization (paper Sec. III-B, Algorithm 1) on one frame:
global affine alignment (Eq. 11-12) -> depth-aware local refinement (Eq. 13-14) -> edge-aware smoothing.
Refinement and smoothing can be switched off (ablations: `PipelineConfig.ablation`, racalnet_ros/config.py, defines
them, the RadarCam-Depth stage-2 "baseline" among them).

Device residency: the prior (numpy or a tensor) goes to the Aligner's device once; the fit, the refinement and the
smoothing run there in torch without reading anything back; the depth map and the fit's diagnostics are read back
once at the end (`AlignmentOutput` holds numpy). Precision: per-pixel maps in float32, or float16 on CUDA with
`align.fp16` (anchor sums and 2 x 2 solves in float64, memberships in float32: tensors.py, refine.feature_dtype).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

import torch

from .align import AlignConfig, GlobalFit, affine_inverse_depth, anchor_tensors, fit_global, sample_prior
from .refine import RefineConfig, apply_clusters, refine_inverse_depth
from .smooth import SmoothConfig, smooth_depth
from .tensors import as_tensor, host_value, synchronize

log = logging.getLogger(__name__)


@dataclass
class AlignmentOutput:
    """depth: H x W float32 metres in [min_depth, max_depth], NaN where the prior is not finite or no fit exists.
    fit: the global fit. used: bool mask over the input anchors that the fit used (inliers of Eq. 12).
    n_local: clusters with their own affine map. fallbacks: guard flags. times_ms: stage -> milliseconds (on CUDA
    the stage times are enqueue times unless `Aligner.sync_stages`; the sum is real because the read-back waits)."""

    depth: np.ndarray
    fit: GlobalFit
    used: np.ndarray
    n_local: int = 0
    fallbacks: list[str] = field(default_factory=list)
    times_ms: dict[str, float] = field(default_factory=dict)


def _or_eager(compiled, eager):
    """`compiled`, falling back to `eager` for good (with one warning) when compiling fails: align.compile is
    optional, and a robot without a C++ compiler (or an unsupported torch) must still get its depth."""
    state = {"fn": compiled}

    def call(*args, **kwargs):
        if state["fn"] is compiled:
            try:
                return compiled(*args, **kwargs)
            except Exception as exc:  # torch.compile raises many types (backend, dynamo, compiler not found)
                log.warning("align.compile: torch.compile failed (%s: %s); running the stages eagerly",
                            type(exc).__name__, str(exc).splitlines()[0][:200] if str(exc) else "")
                state["fn"] = eager
        return eager(*args, **kwargs)

    return call


class Aligner:
    """Align a relative inverse-depth prior to metric anchors on one device. Keeps the last successful global fit,
    used as the fallback of a frame without usable anchors (a stream of frames: the ROS node).

    device: "cpu" | "cuda[:N]". dtype: the per-pixel compute dtype (default float32, float16 on CUDA with
    align.fp16; tests pass float64 for a reference or float16 on CPU). sync_stages: wait for the device at each
    stage boundary so times_ms is per stage (benchmarks; it costs the overlap of host and device)."""

    def __init__(self, align: Optional[AlignConfig] = None, refine: Optional[RefineConfig] = None,
                 smooth: Optional[SmoothConfig] = None, device: str = "cpu", dtype: Optional[torch.dtype] = None):
        self.align_cfg = (align or AlignConfig()).validate()
        self.refine_cfg = (refine or RefineConfig()).validate()
        self.smooth_cfg = (smooth or SmoothConfig()).validate()
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.dtype = dtype or (torch.float16 if self.align_cfg.fp16 and cuda else torch.float32)
        self.sync_stages = False
        self.previous: Optional[tuple[float, float]] = None
        self._apply, self._smooth = apply_clusters, smooth_depth
        if self.align_cfg.compile:
            # optional, never required: the per-pixel stages have fixed shapes per image size, so they compile
            # once; on CUDA "reduce-overhead" replays them as CUDA graphs (launch overhead is their cost there)
            mode = "reduce-overhead" if cuda else None
            self._apply = _or_eager(torch.compile(apply_clusters, dynamic=False, mode=mode), apply_clusters)
            self._smooth = _or_eager(torch.compile(smooth_depth, dynamic=False, mode=mode), smooth_depth)

    def reset(self) -> None:
        """Forget the previous frame's fit."""
        self.previous = None

    def _lap(self, times: dict[str, float], stage: str, t0: float) -> float:
        if self.sync_stages:
            synchronize(self.device)
        t = time.perf_counter()
        times[stage] = (t - t0) * 1e3
        return t

    @torch.inference_mode()  # no autograd bookkeeping: halves the cost of the few-hundred small ops of the fit
    def run(self, prior, uv, depth, weights=None) -> AlignmentOutput:
        """prior: H x W relative inverse depth (numpy or torch, any device); uv: N x 2 anchor pixels; depth: N anchor
        depths (metres); weights: optional N per-anchor weights >= 0 (default ones; 0 removes an anchor)."""
        a = self.align_cfg
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        p_in = as_tensor(prior, self.device)
        if p_in.ndim != 2:
            raise ValueError(f"prior: expected an H x W map, got shape {tuple(p_in.shape)}")
        p_in = p_in if p_in.is_floating_point() else p_in.float()
        uv_t, d, w = anchor_tensors(uv, depth, weights, self.device)
        x = sample_prior(p_in, uv_t)  # anchors read the prior at its own precision, not the fp16 copy
        p = p_in.to(self.dtype)
        fit = fit_global(x, d, w, a, previous=self.previous)
        known_ok = host_value(fit.ok)
        if known_ok is False:  # CPU: nothing to align; on CUDA the NaN map below comes out of the same stages
            z = torch.full_like(p, float("nan"))
        else:
            z = affine_inverse_depth(p, fit.scale, fit.shift, a.min_depth, a.max_depth)
            if known_ok is None:
                z = torch.where(fit.ok, z, float("nan"))
        t = self._lap(times, "align", t0)
        maps = None
        if self.refine_cfg.enabled and known_ok is not False:
            z_at = affine_inverse_depth(x, fit.scale, fit.shift, a.min_depth, a.max_depth)  # float64 at anchors
            z, maps = refine_inverse_depth(z, uv_t, 1.0 / d, w * fit.inliers, self.refine_cfg, a.min_depth,
                                           a.max_depth, apply=self._apply, z_at=z_at)
            t = self._lap(times, "refine", t)
        dmap = 1.0 / z
        if self.smooth_cfg.enabled and known_ok is not False:
            dmap = self._smooth(dmap, self.smooth_cfg)
            t = self._lap(times, "smooth", t)
        out = dmap.float().cpu().numpy()  # the one read-back of the map (waits for the device)
        host = fit.to_host()
        n_local = int(maps.local.sum()) if maps is not None and host.ok else 0
        fallbacks = list(host.fallbacks)
        if not host.ok:
            fallbacks.append("no_fit")
        elif "previous_fit" not in fallbacks:
            self.previous = (host.scale, host.shift)
        times["readback"] = (time.perf_counter() - t) * 1e3
        return AlignmentOutput(out, host, host.inliers, n_local, fallbacks, times)
