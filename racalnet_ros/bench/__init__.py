"""Benchmark bodies for `racalnet bench` (one module per area, each with run(device, quick) -> list[dict])."""

import statistics
import time
from typing import Callable


def median_ms(fn: Callable[[], object], repeat: int = 10, warmup: int = 2) -> float:
    """Median wall time of fn() in milliseconds after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def median_wall_cpu_ms(fn: Callable[[], object], repeat: int = 10, warmup: int = 2) -> tuple[float, float]:
    """(median wall ms, median process CPU ms) of fn() after `warmup` untimed calls. On a shared machine the CPU time
    of a single-threaded call is a steadier estimate of its cost on an idle one than the wall time (time spent
    waiting for a core is not counted; cache and memory contention still are)."""
    for _ in range(warmup):
        fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def run_info(device: str = "cpu") -> dict:
    """What every timing row carries: torch intra-op threads, the 1-minute load average when the row was taken (other
    jobs on the machine inflate timings), the torch version and the device."""
    import os

    import torch

    return {"threads": torch.get_num_threads(), "load": round(os.getloadavg()[0], 2), "torch": torch.__version__,
            "device": device}
