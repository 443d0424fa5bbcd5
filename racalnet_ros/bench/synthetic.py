"""Timing of the synthetic generator (racalnet_ros.datasets.synthetic): whole `generate_frame` and its stages
(scene build, camera render, LiDAR, radar, prior) at 640x480, 320x240 and with the Astyx preset (2048x618). Pure CPU
(Open3D ray casting); `device` is accepted for the common interface and ignored."""

from __future__ import annotations

import time

import numpy as np


def _stage_times(seeds, cfg) -> dict[str, list[float]]:
    """Per-stage wall times (ms) of generate_frame, by wrapping the stage functions it calls."""
    from ..datasets.synthetic import generate as G

    names = ("build_scene", "render_camera", "simulate_lidar", "simulate_radar", "simulate_prior")
    times: dict[str, list[float]] = {n: [] for n in (*names, "generate_frame", "generate_frame_cpu")}
    originals = {n: getattr(G, n) for n in names}

    def timed(name, fn):
        def wrapper(*a, **k):
            t0 = time.perf_counter()
            out = fn(*a, **k)
            times[name].append((time.perf_counter() - t0) * 1e3)
            return out
        return wrapper

    try:
        for n in names:
            setattr(G, n, timed(n, originals[n]))
        for s in seeds:
            t0, c0 = time.perf_counter(), time.process_time()
            G.generate_frame(s, cfg)
            times["generate_frame"].append((time.perf_counter() - t0) * 1e3)
            times["generate_frame_cpu"].append((time.process_time() - c0) * 1e3)   # CPU time, all threads
    finally:
        for n in names:
            setattr(G, n, originals[n])
    return times


def run(device: str = "cpu", quick: bool = False) -> list[dict]:
    from ..datasets.synthetic import SynthConfig, generate_frame

    n = 3 if quick else 10
    rows = []
    configs = [("640x480", SynthConfig())]
    if not quick:
        configs += [("320x240", SynthConfig(width=320, height=240)), ("astyx 2048x618", SynthConfig.preset("astyx"))]
    for size, cfg in configs:
        generate_frame(0, cfg)   # warm-up: Open3D import, mesh templates, pixel-ray cache
        times = _stage_times(range(1000, 1000 + n), cfg)
        for name, t in times.items():
            rows.append({"name": name, "ms": float(np.median(t)), "size": size, "frames": n})
    return rows
