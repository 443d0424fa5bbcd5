"""Device residency for Metric Depth Optimization: every stage takes and returns torch tensors on one device (cpu or
cuda), so the prior, the global fit, the refinement and the smoothing run without host round trips. numpy arrays
are accepted at the public boundaries (`as_tensor`) and converted back only there.

Precision (docs/metric_depth.md, "Device and precision"): per-pixel maps run in a compute dtype (float32, or
float16 on CUDA with `align.fp16`); anchor-level sums and the 2 x 2 solves of Eq. 11 and Eq. 14 always run in
float64 (a few thousand values: free, and the normal equations lose digits as sums of squares).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

#: anchor-level arithmetic (sums, 2 x 2 solves, scalars of the fit)
ANCHOR_DTYPE = torch.float64


def as_tensor(a, device: Optional[torch.device | str] = None, dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """A tensor on `device` (default: the input's own, cpu for numpy) with `dtype` (default: kept); numpy arrays
    are wrapped without a copy where possible."""
    if isinstance(a, torch.Tensor):
        return a.to(device=device or a.device, dtype=dtype or a.dtype)
    t = torch.from_numpy(np.ascontiguousarray(a))
    return t.to(device=device or "cpu", dtype=dtype or t.dtype)


def host_value(t: torch.Tensor) -> Optional[bool]:
    """bool(t) when that costs nothing (a CPU tensor), else None (on CUDA reading it would wait for the device).
    Stages use it to skip work whose result is known (a NaN map, an identity refinement); on CUDA that work runs
    and gives the same result."""
    return bool(t) if t.device.type == "cpu" else None


def synchronize(device: torch.device) -> None:
    """Wait for the device (only for stage timing in benchmarks; a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
