"""`Aligner`: the three stages of Metric Depth Optimization (paper Sec. III-B, Algorithm 1) on one frame:
global affine alignment (Eq. 11-12) -> depth-aware local refinement (Eq. 13-14) -> edge-aware smoothing.
Refinement and smoothing can be switched off (ablations: `PipelineConfig.ablation`, racalnet_ros/config.py, defines
them, the RadarCam-Depth stage-2 "baseline" among them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .align import AlignConfig, GlobalFit, align_global, apply_affine
from .refine import RefineConfig, refine_local
from .smooth import SmoothConfig, smooth_edge_aware


@dataclass
class AlignmentOutput:
    """depth: H x W float32 metres in [min_depth, max_depth], NaN where the prior is not finite or no fit exists.
    fit: the global fit. used: bool mask over the input anchors that the fit used (inliers of Eq. 12).
    n_local: clusters with their own affine map. fallbacks: guard flags. times_ms: stage -> milliseconds."""

    depth: np.ndarray
    fit: GlobalFit
    used: np.ndarray
    n_local: int = 0
    fallbacks: list[str] = field(default_factory=list)
    times_ms: dict[str, float] = field(default_factory=dict)


class Aligner:
    """Align a relative inverse-depth prior to metric anchors. Keeps the last successful global fit, used as the
    fallback of a frame without usable anchors (a stream of frames: the ROS node)."""

    def __init__(self, align: Optional[AlignConfig] = None, refine: Optional[RefineConfig] = None,
                 smooth: Optional[SmoothConfig] = None, device: str = "cpu"):
        self.align_cfg = (align or AlignConfig()).validate()
        self.refine_cfg = (refine or RefineConfig()).validate()
        self.smooth_cfg = (smooth or SmoothConfig()).validate()
        self.device = device
        self.previous: Optional[tuple[float, float]] = None

    def reset(self) -> None:
        """Forget the previous frame's fit."""
        self.previous = None

    def run(self, prior: np.ndarray, uv: np.ndarray, depth: np.ndarray) -> AlignmentOutput:
        """prior: H x W relative inverse depth; uv: N x 2 anchor pixels; depth: N anchor depths (metres)."""
        prior = np.asarray(prior, np.float32)
        if prior.ndim != 2:
            raise ValueError(f"prior: expected an H x W map, got shape {prior.shape}")
        a = self.align_cfg
        times: dict[str, float] = {}
        t0 = time.perf_counter()
        fit = align_global(prior, uv, depth, a, previous=self.previous)
        fallbacks = list(fit.fallbacks)
        if not fit.ok:
            out = np.full(prior.shape, np.nan, np.float32)
            fallbacks.append("no_fit")
            times["align"] = (time.perf_counter() - t0) * 1e3
            return AlignmentOutput(out, fit, fit.inliers, 0, fallbacks, times)
        if "previous_fit" not in fallbacks:
            self.previous = (fit.scale, fit.shift)
        dmap = apply_affine(prior, fit.scale, fit.shift, a.min_depth, a.max_depth)
        t1 = time.perf_counter()
        times["align"] = (t1 - t0) * 1e3

        n_local = 0
        if self.refine_cfg.enabled:
            used = fit.inliers
            uv_arr = np.asarray(uv, np.float64).reshape(-1, 2)
            ref = refine_local(dmap, uv_arr[used], np.asarray(depth).reshape(-1)[used], self.refine_cfg,
                               a.min_depth, a.max_depth, self.device, return_labels=False)
            dmap, n_local = ref.depth, ref.n_local
        t2 = time.perf_counter()
        times["refine"] = (t2 - t1) * 1e3
        if self.smooth_cfg.enabled:
            dmap = smooth_edge_aware(dmap, self.smooth_cfg)
        times["smooth"] = (time.perf_counter() - t2) * 1e3
        return AlignmentOutput(dmap, fit, fit.inliers, n_local, fallbacks, times)
