"""Metric Depth Optimization (paper Sec. III-B): monocular priors, global affine alignment (Eq. 11-12), depth-aware
local refinement (Eq. 13-14), edge-aware smoothing, and the `Aligner` that chains them."""

from .align import AlignConfig, GlobalFit, align_global, apply_affine
from .aligner import Aligner, AlignmentOutput
from .priors import DepthAnythingV2Prior, FramePrior, MonocularPrior, PrecomputedPrior, make_prior
from .refine import LocalRefinement, RefineConfig, refine_local
from .smooth import SmoothConfig, smooth_edge_aware

__all__ = ["AlignConfig", "GlobalFit", "align_global", "apply_affine", "Aligner", "AlignmentOutput",
           "DepthAnythingV2Prior", "FramePrior", "MonocularPrior", "PrecomputedPrior", "make_prior",
           "LocalRefinement", "RefineConfig", "refine_local", "SmoothConfig", "smooth_edge_aware"]
