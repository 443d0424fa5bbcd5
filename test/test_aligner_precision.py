"""One implementation of Metric Depth Optimization serves CPU and CUDA: the same torch code runs on CPU tensors
here. Its per-pixel maps in float32 (the default) and in float16 (the CUDA `align.fp16` path, run on CPU tensors)
are compared with a float64 reference of the whole Aligner (global fit, refinement, smoothing).

Stated tolerances (relative depth error against the float64 reference, per pixel):
  float32: every pixel within 1e-5.
  float16: median <= 1e-3, 99th percentile <= 5e-3, at most 0.3% of pixels beyond 1%. Those few pixels are
    edge-threshold flips: in a noisy far region a pixel whose relative gradient sits at `smooth.edge_threshold`
    is smoothed in one precision and kept in the other (the difference is the local noise, up to ~15%); without
    smoothing every pixel is within 5e-3. The error against the ground truth moves by less than 1e-3 (AbsRel).
"""

import numpy as np
import pytest
import torch

from racalnet_ros.bench.scene import ramp_box_scene
from racalnet_ros.metric_depth.aligner import Aligner
from racalnet_ros.metric_depth.smooth import SmoothConfig


def noisy_scene(h=240, w=320, n=500, seed=0):
    """The benchmarks' ramp-and-box scene: prior = affine map of inverse depth plus pixel noise, 20% outliers."""
    return ramp_box_scene(h, w, n, seed)


def rel(a, b):
    return np.abs(a.astype(np.float64) - b) / b


@pytest.mark.parametrize("seed", [0, 1])
def test_float32_and_float16_match_a_float64_reference(seed):
    prior, uv, d, gt = noisy_scene(seed=seed)
    ref = Aligner(dtype=torch.float64).run(prior, uv, d)
    f32 = Aligner(dtype=torch.float32).run(prior, uv, d)
    f16 = Aligner(dtype=torch.float16).run(prior, uv, d)
    assert ref.n_local == f32.n_local == f16.n_local > 0
    assert rel(f32.depth, ref.depth).max() < 1e-5
    e16 = rel(f16.depth, ref.depth)
    assert np.median(e16) <= 1e-3 and np.quantile(e16, 0.99) <= 5e-3 and (e16 > 0.01).mean() <= 3e-3
    assert f16.fit.scale == pytest.approx(ref.fit.scale, rel=1e-3)
    assert abs(rel(f16.depth, gt).mean() - rel(ref.depth, gt).mean()) < 1e-3
    # without the edge-threshold decisions of the smoothing, every pixel is within the fp16 rounding
    plain = {dt: Aligner(smooth=SmoothConfig(enabled=False), dtype=dt).run(prior, uv, d).depth
             for dt in (torch.float64, torch.float16)}
    assert rel(plain[torch.float16], plain[torch.float64]).max() < 5e-3


def test_fp16_config_is_ignored_on_cpu_and_nan_prior_pixels_stay_nan_in_every_precision():
    from racalnet_ros.metric_depth.align import AlignConfig

    assert Aligner(AlignConfig(fp16=True)).dtype == torch.float32
    prior, uv, d, _ = noisy_scene(seed=2)
    prior[:5, :7] = np.nan
    for dt in (torch.float64, torch.float32, torch.float16):
        out = Aligner(dtype=dt).run(prior, uv, d).depth
        assert np.isnan(out[:5, :7]).all() and np.isfinite(out[5:]).all() and out.dtype == np.float32


def test_compiled_per_pixel_stages_give_the_eager_result(caplog):
    """align.compile (torch.compile of the per-pixel stages; CUDA graphs on CUDA) is optional: on CPU, where
    torch.compile works (it needs a C++ compiler), the compiled Aligner gives the eager result; where it fails,
    the Aligner falls back to eager with a warning, so the result is the same either way."""
    from racalnet_ros.metric_depth.align import AlignConfig

    prior, uv, d, _ = noisy_scene(h=48, w=64, n=200)
    small = SmoothConfig(sigma=0.5)  # a 3-tap Gaussian: a smaller graph to compile (the same code)
    eager = Aligner(smooth=small).run(prior, uv, d)
    compiled = Aligner(AlignConfig(compile=True), smooth=small)
    for _ in range(2):  # the second call runs the compiled code, not the compilation
        out = compiled.run(prior, uv, d)
        np.testing.assert_allclose(out.depth, eager.depth, rtol=1e-5)
    assert out.n_local == eager.n_local
    if "torch.compile failed" in caplog.text:
        pytest.skip("torch.compile is not available here (the eager fallback gave the same result)")
