"""The CPU thread rule under load (`racalnet bench --what threads [--load N]`): the small recalibration network's
forward pass (640x480, 1,000 radar points, random weights) with 1 torch thread, 2 threads and what the rule
(`config.default_cpu_threads`) picks on this machine, optionally while N busy-looping processes (a load generator
started and stopped here) compete for the CPUs.

Thread counts are measured in interleaved rounds (1, 2, rule, 1, 2, rule, ...) so a change in the machine's load
affects them alike; each row gives the median and the 10th / 90th percentiles over every call, the load average
before and after, the CPU count and the number of load generators. Timings on a shared machine are noisy: compare
rows of one run, not across runs.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import statistics
import time


def _busy() -> None:  # a load generator: one CPU-bound process
    while True:
        pass


def _percentile(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, max(0, round(q * (len(v) - 1))))]


def run(device: str = "cpu", quick: bool = False, load: int = 0) -> list[dict]:
    import torch

    from ..config import default_cpu_threads
    from ..recalibration.config import ModelConfig
    from ..recalibration.model import RecalibrationNet
    from ..recalibration.recalibrator import Recalibrator
    from ..recalibration.toy import toy_frame

    torch.manual_seed(0)
    cfg = ModelConfig.preset("small")
    rec = Recalibrator(RecalibrationNet(cfg).eval(), cfg, device=device)
    frame = toy_frame(0, width=640, height=480, n_radar=1000)
    rule = default_cpu_threads()
    counts = sorted({1, 2, rule})
    rounds, calls = (2, 3) if quick else (5, 6)
    before = torch.get_num_threads()
    samples: dict[int, list[float]] = {n: [] for n in counts}
    ctx = mp.get_context("spawn")
    generators = [ctx.Process(target=_busy, daemon=True) for _ in range(load)]
    for g in generators:
        g.start()
    try:
        if generators:
            time.sleep(2.0)  # let the generators reach the run queue
        load_start = os.getloadavg()[0]
        for _ in range(rounds):
            for n in counts:
                torch.set_num_threads(n)
                rec.predict(frame)  # warm-up at this thread count
                for _ in range(calls):
                    t0 = time.perf_counter()
                    rec.predict(frame)
                    samples[n].append((time.perf_counter() - t0) * 1e3)
        load_end = os.getloadavg()[0]
    finally:
        for g in generators:
            g.terminate()
        for g in generators:
            g.join(5)
        torch.set_num_threads(before)
    return [{"name": "recalibrate small 640x480 1000 points", "threads": n,
             "rule": "yes" if n == rule else "", "ms": statistics.median(v), "p10_ms": _percentile(v, 0.1),
             "p90_ms": _percentile(v, 0.9), "calls": len(v), "load_generators": load,
             "loadavg_1m_start": round(load_start, 2), "loadavg_1m_end": round(load_end, 2),
             "cpus": os.cpu_count(), "device": device} for n, v in samples.items()]
