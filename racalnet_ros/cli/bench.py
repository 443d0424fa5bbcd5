"""`racalnet bench`: timing benchmarks (never timed tests). Each area lives in racalnet_ros/bench/<area>.py with
`run(device="cpu", quick=False) -> list[dict]`; every row has at least "name" and "ms" (median per call)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
from pathlib import Path

HELP = ("time the whole pipeline end to end, the recalibration network, the alignment stages, the node overhead and "
        "synthetic frame generation (writes a table / JSON)")

AREAS = ("pipeline", "recalibration", "alignment", "node", "synthetic")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--what", default="all", help=f"comma-separated areas out of {', '.join(AREAS)}, or 'all'")
    p.add_argument("--device", default="", help="cpu | cuda | cuda:N | all (default: cpu; pipeline: all = cpu and "
                   "cuda, cuda rows 'not measured' without a GPU)")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and sizes (a smoke run)")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch default)")
    p.add_argument("--json", default="", help="also write all rows to this JSON file")
    p.add_argument("--out", default="", help="write bench.json and bench.md (machine, load, tables) into this folder")
    p.add_argument("--points", default="", help="pipeline only: radar point counts, e.g. 1000,4000")
    p.add_argument("--sizes", default="", help="pipeline only: image sizes, e.g. 640x480,1280x720")
    p.add_argument("--priors", default="", help="pipeline only: dav2-small-random and/or precomputed")


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


def _pipeline_filters(args: argparse.Namespace) -> dict:
    try:
        points = tuple(int(x) for x in args.points.split(",") if x.strip())
        sizes = tuple(tuple(int(v) for v in x.lower().split("x")) for x in args.sizes.split(",") if x.strip())
    except ValueError:
        raise SystemExit(f"racalnet bench: --points / --sizes: expected e.g. 1000,4000 and 640x480, got "
                         f"{args.points!r}, {args.sizes!r}") from None
    priors = tuple(x.strip() for x in args.priors.split(",") if x.strip())
    return {"points": points or None, "sizes": sizes or None, "priors": priors or None}


def main(args: argparse.Namespace) -> int:
    import torch

    from ..bench.pipeline import machine_info, markdown

    if args.threads:
        torch.set_num_threads(args.threads)
    areas = AREAS if args.what == "all" else tuple(a.strip() for a in args.what.split(",") if a.strip())
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        raise SystemExit(f"racalnet bench: unknown area(s) {unknown}; choose from {AREAS}")
    info = machine_info()
    print(f"# racalnet bench on {info['cpu']} ({info['cores']} cores), GPU {info['gpu'] or 'none'}, "
          f"torch threads={info['torch_threads']}, torch {info['torch']}, load average {info['loadavg']}")
    everything: dict = {}
    pages = []
    for area in areas:
        mod = importlib.import_module(f"racalnet_ros.bench.{area}")
        if area == "pipeline":
            rows = mod.run(device=args.device or "all", quick=args.quick, **_pipeline_filters(args))
        else:
            rows = mod.run(device=args.device or "cpu", quick=args.quick)
        everything[area] = rows
        print(f"\n## {area}\n")
        table = markdown(rows, {**info, "loadavg_after": [round(x, 2) for x in os.getloadavg()]}) \
            if area == "pipeline" else format_rows(rows)
        print(table)
        pages.append(f"## {area}\n\n{table}")
    info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(everything, f, indent=2)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.json").write_text(json.dumps({"machine": info, "areas": everything}, indent=2))
        (out / "bench.md").write_text(f"# racalnet bench\n\n" + "\n".join(pages))
        print(f"\nwrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0
