"""`racalnet bench`: timing benchmarks (never timed tests). Each area lives in racalnet_ros/bench/<area>.py with
`run(device="cpu", quick=False) -> list[dict]`; every row has at least "name" and "ms" (median per call)."""

from __future__ import annotations

import argparse
import importlib
import json
import platform

HELP = "time the recalibration network, the alignment stages, the node overhead and synthetic frame generation (writes a table / JSON)"

AREAS = ("recalibration", "alignment", "node", "synthetic", "rcnet")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--what", default="all", help=f"comma-separated areas out of {', '.join(AREAS)}, or 'all'")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:N")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and sizes (a smoke run)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    p.add_argument("--json", default="", help="also write all rows to this JSON file")


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
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    areas = AREAS if args.what == "all" else tuple(a.strip() for a in args.what.split(",") if a.strip())
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        raise SystemExit(f"racalnet bench: unknown area(s) {unknown}; choose from {AREAS}")
    print(f"# racalnet bench on {platform.processor() or platform.machine()}, device={args.device}, "
          f"torch threads={torch.get_num_threads()}, torch {torch.__version__}")
    everything = {}
    for area in areas:
        rows = importlib.import_module(f"racalnet_ros.bench.{area}").run(device=args.device, quick=args.quick)
        everything[area] = rows
        print(f"\n## {area}\n")
        print(format_rows(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=2)
    return 0
