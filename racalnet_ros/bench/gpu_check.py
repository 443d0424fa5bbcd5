"""The CUDA-vs-CPU equivalence part of scripts/bench_gpu.sh: the same frame through the same code on both devices,
compared with stated tolerances, plus whether torch.compile / CUDA graphs pay off for the per-pixel stages.

    PYTHONPATH=. python3 -m racalnet_ros.bench.gpu_check --out DIR [--device cuda] [--allow-cpu] [--no-compile]

Checks (relative depth error per pixel; "frac>1%" = share of pixels beyond 1%):
  aligner_fp32     Aligner on the device vs on the CPU, same prior and anchors: p50 <= 1e-6, p99 <= 1e-4,
                   frac>1% <= 1e-3 (K-means and the edge tests are decisions; a float rounding may flip one);
                   global scale and shift within 1e-9 relative (float64 sums in another order).
  aligner_fp16     the device's float16 path vs a float64 CPU reference: p50 <= 1e-3, p99 <= 5e-3, frac>1% <= 3e-3
                   (the tolerances of test/test_aligner_precision.py).
  compiled         align.compile (torch.compile; CUDA graphs on CUDA) vs eager on the device: as aligner_fp32;
                   and the median time of both (does it pay off?).
  recalibration    the random-weight small network, device vs CPU: confidence and displacement max abs difference
                   <= 1e-2 (cuDNN convolutions may run in TF32).
  pipeline_fp32    Pipeline.run end to end (network, precomputed prior, alignment), device vs CPU: p50 <= 1e-4,
                   frac>1% <= 1e-2 (screening decisions near the threshold may differ, see recalibration).
  prior_dav2       Depth Anything V2 Small (random weights) output, device vs CPU: p50 <= 1e-2 relative (TF32).
Writes gpu_check.json and gpu_check.md into --out; exit status 1 when a check fails. Never imports rclpy.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FORBIDDEN = ("rclpy", "rosbags", "open3d", "message_filters", "cv_bridge", "sensor_msgs", "launch")


def depth_errors(a: np.ndarray, ref: np.ndarray) -> dict:
    """Quantiles of |a - ref| / ref over pixels finite in both; NaN agreement."""
    a, ref = np.asarray(a, np.float64), np.asarray(ref, np.float64)
    same_nan = bool(np.array_equal(np.isnan(a), np.isnan(ref)))
    ok = np.isfinite(a) & np.isfinite(ref) & (ref != 0)
    rel = np.abs(a[ok] - ref[ok]) / np.abs(ref[ok])
    if rel.size == 0:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "frac>1%": float("nan"),
                "same_nan": same_nan}
    return {"p50": float(np.median(rel)), "p99": float(np.quantile(rel, 0.99)), "max": float(rel.max()),
            "frac>1%": float((rel > 0.01).mean()), "same_nan": same_nan}


def within(err: dict, p50: float, p99: float = float("inf"), frac: float = float("inf")) -> bool:
    return err["same_nan"] and err["p50"] <= p50 and err["p99"] <= p99 and err["frac>1%"] <= frac


def median_ms(fn, device, reps: int = 30) -> float:
    from .pipeline import _quantiles
    from ..metric_depth.tensors import synchronize

    times = []
    for _ in range(reps):
        synchronize(device)
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return _quantiles(times)[0]


def run_checks(device: str, compile_check: bool = True, size: tuple[int, int] = (640, 480)) -> list[dict]:
    import torch

    from ..metric_depth.aligner import Aligner
    from ..metric_depth.align import AlignConfig
    from ..pipeline import raw_anchors
    from .pipeline import build_pipeline, scene_frame

    checks: list[dict] = []

    def record(name: str, passed: bool, **numbers):
        checks.append({"check": name, "passed": bool(passed), **numbers})
        print(f"{'PASS' if passed else 'FAIL'} {name}: {json.dumps(numbers, default=float)}", flush=True)

    frame, _ = scene_frame(size[0], size[1], 1000, seed=0)
    anchors = raw_anchors(frame)
    uv, d = anchors.uv, anchors.depth
    cpu = Aligner().run(frame.prior, uv, d)
    dev = Aligner(device=device).run(frame.prior, uv, d)
    err = depth_errors(dev.depth, cpu.depth)
    fit_rel = max(abs(dev.fit.scale / cpu.fit.scale - 1), abs(dev.fit.shift - cpu.fit.shift) / abs(cpu.fit.shift))
    record("aligner_fp32", within(err, 1e-6, 1e-4, 1e-3) and fit_rel <= 1e-9, **err, fit_rel=fit_rel,
           n_local=(cpu.n_local, dev.n_local))

    ref = Aligner(dtype=torch.float64).run(frame.prior, uv, d)
    half = Aligner(AlignConfig(fp16=True), device=device,
                   dtype=None if device.startswith("cuda") else torch.float16).run(frame.prior, uv, d)
    err = depth_errors(half.depth, ref.depth)
    record("aligner_fp16", within(err, 1e-3, 5e-3, 3e-3), **err)

    if compile_check:
        eager = Aligner(device=device)
        try:
            compiled = Aligner(AlignConfig(compile=True), device=device)
            t0 = time.perf_counter()
            out = compiled.run(frame.prior, uv, d)
            compile_s = time.perf_counter() - t0
            err = depth_errors(out.depth, eager.run(frame.prior, uv, d).depth)
            prior_t = torch.from_numpy(frame.prior).to(device)
            t_eager = median_ms(lambda: eager.run(prior_t, uv, d), eager.device)
            t_comp = median_ms(lambda: compiled.run(prior_t, uv, d), compiled.device)
            record("compiled", within(err, 1e-6, 1e-4, 1e-3), **err, compile_s=round(compile_s, 1),
                   eager_ms=round(t_eager, 2), compiled_ms=round(t_comp, 2))
        except Exception as exc:  # torch.compile is optional: a missing compiler is a finding, not a crash
            record("compiled", False, error=f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}")

    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / f"{frame.frame_id}.npy", frame.prior)
        p_cpu = build_pipeline("cpu", False, "precomputed", Path(tmp))
        p_dev = build_pipeline(device, False, "precomputed", Path(tmp))
        _, c0, d0 = p_cpu.recalibrator.predict(frame)
        _, c1, d1 = p_dev.recalibrator.predict(frame)
        dc, dd = float(np.abs(c0 - c1).max()), float(np.abs(d0 - d1).max())
        record("recalibration", dc <= 1e-2 and dd <= 1e-2, conf_max_abs=dc, disp_max_abs_px=dd)
        r_cpu, r_dev = p_cpu.run(frame), p_dev.run(frame)
    err = depth_errors(r_dev.depth, r_cpu.depth)
    record("pipeline_fp32", within(err, 1e-4, float("inf"), 1e-2), **err,
           kept=(r_cpu.diagnostics["anchors_kept"], r_dev.diagnostics["anchors_kept"]))

    from ..metric_depth.priors import DepthAnythingV2Prior

    pc = DepthAnythingV2Prior.small_random("cpu").predict(frame)
    pd = DepthAnythingV2Prior.small_random(device).predict(frame)
    err = depth_errors(pd, pc)
    record("prior_dav2", err["p50"] <= 1e-2, **err)
    return checks


def main(argv=None) -> int:
    import torch

    ap = argparse.ArgumentParser(prog="racalnet_ros.bench.gpu_check", description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", required=True)
    ap.add_argument("--allow-cpu", action="store_true", help="dry run on the CPU when there is no CUDA device")
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile check")
    ap.add_argument("--size", default="640x480", help="frame size WxH (default 640x480)")
    args = ap.parse_args(argv)
    device = args.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        if not args.allow_cpu:
            print("gpu_check: no CUDA device (use --allow-cpu for a dry run on the CPU)", file=sys.stderr)
            return 2
        device = "cpu"
    from .pipeline import machine_info

    info = machine_info()
    print(f"gpu_check on {device}: {info}", flush=True)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    checks = run_checks(device, compile_check=not args.no_compile, size=size)
    leaked = sorted(m for m in sys.modules if m.split(".")[0] in FORBIDDEN)
    checks.append({"check": "no_ros_imports", "passed": not leaked, "modules": leaked})
    print(f"{'PASS' if not leaked else 'FAIL'} no_ros_imports: {leaked}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu_check.json").write_text(json.dumps({"device": device, "machine": info, "checks": checks},
                                                   indent=2, default=float))
    lines = [f"# GPU check on {device} ({info.get('gpu') or info.get('cpu')})", "", "| check | result | numbers |",
             "|---|---|---|"]
    for c in checks:
        nums = {k: v for k, v in c.items() if k not in ("check", "passed")}
        lines.append(f"| {c['check']} | {'pass' if c['passed'] else 'FAIL'} | {json.dumps(nums, default=float)} |")
    (out / "gpu_check.md").write_text("\n".join(lines) + "\n")
    return 0 if all(c["passed"] for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
