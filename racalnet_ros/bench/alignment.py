"""Timing of Metric Depth Optimization per frame: global alignment (Eq. 11-12), local refinement (Eq. 13-14),
edge-aware smoothing, and the whole Aligner, on a synthetic 640x480 (and 2048x618, Astyx-sized) frame with 300
anchors of which 20% are outliers."""

from __future__ import annotations

import numpy as np

from . import median_ms
from .scene import ramp_box_scene


def run(device: str = "cpu", quick: bool = False) -> list[dict]:
    from ..config import PipelineConfig
    from ..metric_depth.align import AlignConfig, align_global, apply_affine
    from ..metric_depth.aligner import Aligner
    from ..metric_depth.refine import RefineConfig, refine_local
    from ..metric_depth.smooth import SmoothConfig, smooth_edge_aware

    repeat = 5 if quick else 20
    sizes = ((480, 640),) if quick else ((480, 640), (618, 2048))
    rows = []
    for h, w in sizes:
        prior, uv, d, _ = ramp_box_scene(h, w, 300)
        acfg, rcfg, scfg = AlignConfig(), RefineConfig(), SmoothConfig()
        fit = align_global(prior, uv, d, acfg)
        aligned = apply_affine(prior, fit.scale, fit.shift, acfg.min_depth, acfg.max_depth)
        used = fit.inliers
        size = f"{w}x{h}"
        params = f"{len(d)} anchors, K={rcfg.n_clusters}, sample {rcfg.sample_size}, stride {rcfg.stride}"
        rows.append({"name": "align_global (Eq. 11-12, threshold search)", "size": size, "device": "cpu",
                     "ms": median_ms(lambda: align_global(prior, uv, d, acfg), repeat), "params": params})
        rows.append({"name": "refine_local (Eq. 13-14, K-means + blend, default stride)", "size": size, "device": device,
                     "ms": median_ms(lambda: refine_local(aligned, uv[used], d[used], rcfg, device=device,
                                                          return_labels=False), repeat), "params": params})
        exact = RefineConfig(stride=1)
        rows.append({"name": "refine_local, stride 1 (per-pixel memberships)", "size": size, "device": device,
                     "ms": median_ms(lambda: refine_local(aligned, uv[used], d[used], exact, device=device,
                                                          return_labels=False), repeat),
                     "params": params.replace(f"stride {rcfg.stride}", "stride 1")})
        rows.append({"name": "smooth_edge_aware (Sobel + Gaussian)", "size": size, "device": "cpu",
                     "ms": median_ms(lambda: smooth_edge_aware(aligned, scfg), repeat),
                     "params": f"sigma {scfg.sigma}"})
        full = Aligner(acfg, rcfg, scfg, device=device)
        rows.append({"name": "Aligner total (all three stages)", "size": size, "device": device,
                     "ms": median_ms(lambda: full.run(prior, uv, d), repeat), "params": params})
        b = PipelineConfig().ablation("baseline")
        base = Aligner(b.align, b.refine, b.smooth)
        rows.append({"name": "Aligner, baseline ablation (plain least squares)", "size": size, "device": "cpu",
                     "ms": median_ms(lambda: base.run(prior, uv, d), repeat), "params": f"{len(d)} anchors"})
    return rows
