"""`racalnet bench`: timing benchmarks (never timed tests). Each area lives in a module of racalnet_ros/bench/
(`AREAS`: area -> module) with `run(device="cpu", quick=False) -> list[dict]`; every row has at least "name" and "ms"
(median per call). Torch threads: --threads / cpu_threads as in every command (default: config.default_cpu_threads)."""

from __future__ import annotations

import argparse
import importlib
import platform

HELP = ("time the recalibration network, the alignment stages, the node overhead, synthetic frame generation and the "
        "CPU thread rule under load (writes a table / JSON)")

#: area (`--what`) -> module under racalnet_ros.bench
AREAS = {"recalibration": "recalibration", "alignment": "alignment", "node": "node_overhead", "synthetic": "synthetic",
         "threads": "threads", "rcnet": "rcnet"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .options import add_pipeline_options

    p.add_argument("--what", default="all", help=f"comma-separated areas out of {', '.join(AREAS)}, or 'all'")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and sizes (a smoke run)")
    p.add_argument("--json", default="", help="also write all rows to this JSON file")
    p.add_argument("--live", type=float, default=0.0, metavar="SECONDS",
                   help="node area: also run racalnet_node through DDS for SECONDS (20 Hz of 640x480 frames)")
    p.add_argument("--load", type=int, default=0, metavar="N",
                   help="threads area: run N busy-looping processes meanwhile (a load generator)")
    add_pipeline_options(p, device="cpu")


def format_rows(rows: list[dict]) -> str:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    width = {k: max(len(k), *(len(_fmt(r.get(k, ""))) for r in rows)) for k in keys}
    line = "| " + " | ".join(k.ljust(width[k]) for k in keys) + " |"
    sep = "|" + "|".join("-" * (width[k] + 2) for k in keys) + "|"
    body = ["| " + " | ".join(_fmt(r.get(k, "")).ljust(width[k]) for k in keys) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def _fmt(v) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def main(args: argparse.Namespace) -> int:
    import os

    import torch

    from ..config import resolve_device
    from ..errors import UsageError
    from .options import setup

    cfg = setup(args)  # sets torch's threads from --threads / cpu_threads
    device = resolve_device(cfg.device)
    areas = tuple(AREAS) if args.what == "all" else tuple(a.strip() for a in args.what.split(",") if a.strip())
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        raise UsageError(f"--what: unknown area(s) {unknown}; choose from {', '.join(AREAS)}")
    print(f"# racalnet bench on {platform.processor() or platform.machine()}, device={device}, "
          f"torch threads={torch.get_num_threads()}, torch {torch.__version__}, load average "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    everything = {}
    for area in areas:
        module = importlib.import_module(f"racalnet_ros.bench.{AREAS[area]}")
        rows = module.run(device=device, quick=args.quick, **({"load": args.load} if area == "threads" else {}))
        if area == "node" and args.live > 0:
            rows.append(module.measure_live(args.live, params={"device": device, "cpu_threads": cfg.cpu_threads}))
        everything[area] = rows
        print(f"\n## {area}\n")
        print(format_rows(rows))
    if args.json:
        from ..summary import write_json

        write_json(args.json, everything)  # standard JSON: a row's NaN is null
    return 0
