"""End to end: Frame in -> depth out through `Pipeline.run`, every stage included (recalibration network, prior,
global fit, refinement, smoothing, read-back), per device, precision, image size, radar point count and prior.

    racalnet bench --what pipeline [--device cpu|cuda|all] [--quick] [--threads N] [--out DIR]

Grid (full run): 640x480 and 1280x720; 1,000 / 4,000 / 20,000 radar points; devices cpu and cuda (a cuda row says
"not measured" without a CUDA device); fp32, and fp16 on cuda (the prior network and the per-pixel maps; fp16 is
CUDA-only, as in the pipeline); priors
  dav2-small-random  Depth Anything V2 Small's architecture and preprocessing with RANDOM weights, built offline
                     from a transformers config (timing only, no download);
  precomputed        a folder of .npy maps loaded and resized per frame (`prior.source: precomputed`).
The recalibration network is the "small" preset with random weights (same cost as a trained one).

Per configuration: per-stage median and p95 over the timed frames (on CUDA measured with `Aligner.sync_stages`,
i.e. the device is waited for at each stage boundary), and the end-to-end median / p95 of `Pipeline.run` measured
separately without stage synchronisation (on CPU one pass gives both). Rows that fail (out of memory, ...) say so.
The scene: a ground ramp, a box and a far wall; radar points on the surfaces with 20% range outliers; image noise.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Optional

import numpy as np

SIZES = ((640, 480), (1280, 720))
POINTS = (1000, 4000, 20000)
PRIORS = ("dav2-small-random", "precomputed")
STAGES = ("recalibrate", "prior", "align", "refine", "smooth", "total")


def scene_frame(width: int, height: int, n_points: int, seed: int = 0):
    """A Frame (radar frame = camera optical frame) of `scene.ramp_box_scene` with its true depth: the radar points
    are its anchors (20% outliers, 5 cm range noise) with Doppler and power columns; a striped, noisy image."""
    from ..frame import CameraModel, Frame
    from .scene import ramp_box_scene

    prior, uv, z, depth = ramp_box_scene(height, width, n_points, seed)
    rng = np.random.default_rng(seed + 1)
    z = z + rng.normal(0, 0.05, n_points)
    u, v = uv[:, 0], uv[:, 1]
    uu = np.arange(width, dtype=np.float32)[None, :]
    f = 0.8 * width
    K = np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]])
    xyz = np.stack([(u - K[0, 2]) / f * z, (v - K[1, 2]) / f * z, z], 1)
    radar = np.concatenate([xyz, rng.normal(0, 1, (n_points, 1)), rng.uniform(20, 60, (n_points, 1))], 1)
    image = np.clip(120 + 60 * np.sin(uu / 17)[..., None] + rng.normal(0, 20, (height, width, 3)), 0, 255)
    frame = Frame(image.astype(np.uint8), CameraModel(K, width, height), radar.astype(np.float32), np.eye(4),
                  radar_fields=("x", "y", "z", "doppler", "power"), prior=prior, frame_id=f"bench{seed:04d}")
    return frame, depth


def machine_info() -> dict:
    """Where the numbers come from: CPU model and cores, torch threads and version, load average, GPU."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "time_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())}
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError:
        pass
    return info


def _quantiles(values: list[float]) -> tuple[float, float]:
    """(median, p95) in ms; p95 by linear interpolation (the max for fewer than 3 values)."""
    if not values:
        return float("nan"), float("nan")
    v = sorted(values)
    p95 = v[-1] if len(v) < 3 else float(np.quantile(v, 0.95))
    return statistics.median(v), p95


def build_pipeline(device: str, fp16: bool, prior_kind: str, prior_dir: Optional[Path], seed: int = 0):
    """Pipeline with a random-weight small recalibration network (the default point cap), the chosen prior and the
    default alignment."""
    import torch

    from ..metric_depth.aligner import Aligner
    from ..metric_depth.priors import DepthAnythingV2Prior, PrecomputedPrior
    from ..pipeline import Pipeline, PipelineConfig
    from ..recalibration.config import ModelConfig
    from ..recalibration.model import RecalibrationNet
    from ..recalibration.recalibrator import Recalibrator

    cfg = PipelineConfig()
    cfg.device, cfg.prior.fp16, cfg.align.fp16 = device, fp16, fp16
    torch.manual_seed(seed)
    mcfg = ModelConfig.preset("small")
    rec = Recalibrator(RecalibrationNet(mcfg), mcfg, device=device,
                       max_points=cfg.recalibration.max_points)  # the shipped cap (4,096), as the node runs
    if prior_kind == "dav2-small-random":
        prior = DepthAnythingV2Prior.small_random(device=device, fp16=fp16, seed=seed)
    elif prior_kind == "precomputed":
        prior = PrecomputedPrior(prior_dir)
    else:
        raise ValueError(f"bench pipeline: unknown prior {prior_kind!r}; choose from {PRIORS}")
    return Pipeline(rec, prior, Aligner(cfg.align, cfg.refine, cfg.smooth, device=device), cfg)


def time_configuration(device: str, fp16: bool, size: tuple[int, int], n_points: int, prior_kind: str,
                       prior_dir: Path, reps: int, warmup: int = 2, budget_s: float = 60.0) -> dict:
    """One row: per-stage and end-to-end medians / p95 (ms) of Pipeline.run on one frame."""
    from ..metric_depth.tensors import synchronize

    w, h = size
    frame, _ = scene_frame(w, h, n_points)
    np.save(prior_dir / f"{frame.frame_id}.npy", frame.prior)
    pipe = build_pipeline(device, fp16, prior_kind, prior_dir)
    t0 = time.perf_counter()
    for _ in range(warmup):
        res = pipe.run(frame)
    first = (time.perf_counter() - t0) / max(1, warmup)
    reps = max(2, min(reps, int(budget_s / max(first, 1e-3) / (2 if device != "cpu" else 1))))
    stage: dict[str, list[float]] = {s: [] for s in (*STAGES, "overhead")}
    totals: list[float] = []
    dev = pipe.aligner.device
    passes = (True, False) if dev.type == "cuda" else (True,)
    for synced in passes:
        pipe.aligner.sync_stages = synced
        for _ in range(reps):
            synchronize(dev)
            t0 = time.perf_counter()
            res = pipe.run(frame)
            wall = (time.perf_counter() - t0) * 1e3
            if synced:
                tm = res.diagnostics["times_ms"]
                for s in STAGES[:-1]:
                    stage[s].append(tm.get(s, 0.0))
                stage["total"].append(wall)
                stage["overhead"].append(wall - sum(tm.get(s, 0.0) for s in STAGES[:-1]))
            if synced == passes[-1]:
                totals.append(wall)
    row = {"device": device, "precision": "fp16" if fp16 else "fp32", "size": f"{w}x{h}", "points": n_points,
           "anchors": int(res.diagnostics["anchors_total"]), "kept": int(res.diagnostics["anchors_kept"]),
           "prior": prior_kind, "reps": reps}
    for s in (*STAGES[:-1], "overhead"):
        row[f"{s}_ms"], row[f"{s}_p95"] = (round(x, 2) for x in _quantiles(stage[s]))
    row["total_ms"], row["total_p95"] = (round(x, 2) for x in _quantiles(totals))
    row["hz"] = round(1e3 / row["total_ms"], 1) if row["total_ms"] > 0 else float("nan")
    return row


def run(device: str = "all", quick: bool = False, points: Optional[tuple[int, ...]] = None,
        sizes: Optional[tuple[tuple[int, int], ...]] = None, priors: Optional[tuple[str, ...]] = None) -> list[dict]:
    """Rows of the grid. device: "all" (cpu and cuda), "cpu" or "cuda[:N]"; quick: 640x480, 1,000 points, 3
    repetitions; points / sizes / priors replace the grid's (scripts/bench_gpu.sh, tests)."""
    import torch

    devices = ("cpu", "cuda") if device == "all" else (device,)
    sizes = sizes or (SIZES[:1] if quick else SIZES)
    points = points or (POINTS[:1] if quick else POINTS)
    unknown = [p for p in priors or () if p not in PRIORS]
    if unknown:
        raise ValueError(f"bench pipeline: unknown prior(s) {unknown}; choose from {PRIORS}")
    reps = 3 if quick else 10
    rows = []
    with tempfile.TemporaryDirectory(prefix="racalnet_bench_") as tmp:
        for dev in devices:
            for fp16 in ((False,) if dev == "cpu" else (False, True)):  # fp16 is CUDA-only, as in the pipeline
                for size in sizes:
                    for n in points:
                        for prior in priors or PRIORS:
                            base = {"device": dev, "precision": "fp16" if fp16 else "fp32",
                                    "size": f"{size[0]}x{size[1]}", "points": n, "prior": prior}
                            if dev.startswith("cuda") and not torch.cuda.is_available():
                                rows.append({**base, "status": "not measured (no CUDA device)"})
                                continue
                            try:
                                rows.append({**time_configuration(dev, fp16, size, n, prior, Path(tmp), reps),
                                             "status": "ok"})
                            except (RuntimeError, MemoryError, ValueError) as exc:  # out of memory, ...
                                msg = str(exc).splitlines()[0][:160] if str(exc) else ""
                                rows.append({**base, "status": f"failed: {type(exc).__name__}: {msg}"})
                            if dev.startswith("cuda"):
                                torch.cuda.empty_cache()
    return rows


def markdown(rows: list[dict], info: dict) -> str:
    """A markdown page: the machine, then one table row per configuration (median / p95 in ms)."""
    head = (f"Machine: {info.get('cpu')} ({info.get('cores')} cores), GPU: {info.get('gpu') or 'none'}; torch "
            f"{info.get('torch')}, {info.get('torch_threads')} torch threads; load average {info.get('loadavg')} "
            f"(before) / {info.get('loadavg_after', '?')} (after); {info.get('time_utc')} UTC.")
    cols = ["device", "precision", "size", "points", "anchors", "prior", "recalibrate", "prior ms", "align", "refine",
            "smooth", "overhead", "total", "Hz", "reps"]
    lines = [head, "", "Cells: median / p95 in ms over `reps` frames (stages measured with the device synchronised at "
             "each stage boundary; `total` end to end without); `overhead` = total - the stages (conversions, "
             "read-back, Result).", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def mp(r, s):
        return f"{r[s + '_ms']:.1f} / {r[s + '_p95']:.1f}"

    for r in rows:
        if r.get("status") != "ok":
            lines.append(f"| {r['device']} | {r['precision']} | {r['size']} | {r['points']} | | {r['prior']} | "
                         f"{r.get('status')} |" + " |" * (len(cols) - 7))
            continue
        lines.append("| " + " | ".join([r["device"], r["precision"], r["size"], str(r["points"]), str(r["anchors"]),
                                        r["prior"], mp(r, "recalibrate"), mp(r, "prior"), mp(r, "align"),
                                        mp(r, "refine"), mp(r, "smooth"), mp(r, "overhead"), mp(r, "total"),
                                        f"{r['hz']:.1f}", str(r["reps"])]) + " |")
    return "\n".join(lines) + "\n"
