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


def run_info(device: str = "cpu") -> dict:
    """What every timing row carries: torch intra-op threads, the 1-minute load average when the row was taken (other
    jobs on the machine inflate timings), the torch version and the device."""
    import os

    import torch

    return {"threads": torch.get_num_threads(), "load": round(os.getloadavg()[0], 2), "torch": torch.__version__,
            "device": device}
