"""`racalnet bench`: timing benchmarks (never timed tests). Each area lives in a module of racalnet_ros/bench/
(`AREAS`: area -> module) with `run(device="cpu", quick=False) -> list[dict]`; every row has at least "name" and "ms"
(median per call). Torch threads: --threads / cpu_threads as in every command (default: config.default_cpu_threads)."""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

HELP = ("time the whole pipeline end to end, the recalibration network, the alignment stages, the node overhead, "
        "synthetic frame generation and the CPU thread rule under load (writes a table / JSON)")

#: area (`--what`) -> module under racalnet_ros.bench
AREAS = {"pipeline": "pipeline", "recalibration": "recalibration", "alignment": "alignment", "node": "node_overhead",
         "synthetic": "synthetic", "threads": "threads", "rcnet": "rcnet"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from .options import add_pipeline_options

    p.add_argument("--what", default="all", help=f"comma-separated areas out of {', '.join(AREAS)}, or 'all'")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and sizes (a smoke run)")
    p.add_argument("--json", default="", help="also write all rows to this JSON file")
    p.add_argument("--out", default="", help="write bench.json and bench.md (machine, load, tables) into this folder")
    p.add_argument("--points", default="", help="pipeline: radar point counts, e.g. 1000,4000; node --live: the "
                                                "first one (default 300)")
    p.add_argument("--sizes", default="", help="pipeline only: image sizes, e.g. 640x480,1280x720")
    p.add_argument("--priors", default="", help="pipeline only: dav2-small-random and/or precomputed")
    p.add_argument("--live", type=float, default=0.0, metavar="SECONDS",
                   help="node area: also run racalnet_node through DDS for SECONDS (20 Hz of 640x480 frames), once "
                        "with pipeline_overlap false and once true (the recalibration network on: the configured "
                        "checkpoint, default the shipped small one; prior on the topic; --points: the cloud size)")
    p.add_argument("--load", type=int, default=0, metavar="N",
                   help="threads area: run N busy-looping processes meanwhile (a load generator)")
    add_pipeline_options(p, device="cpu")  # --device: every area on it; also "all" here (the pipeline area on cpu
    # and cuda, which is also what the pipeline area does without --device)


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
    from ..errors import UsageError

    try:
        points = tuple(int(x) for x in args.points.split(",") if x.strip())
        sizes = tuple(tuple(int(v) for v in x.lower().split("x")) for x in args.sizes.split(",") if x.strip())
    except ValueError:
        raise UsageError(f"--points / --sizes: expected e.g. 1000,4000 and 640x480, got "
                         f"{args.points!r}, {args.sizes!r}") from None
    priors = tuple(x.strip() for x in args.priors.split(",") if x.strip())
    return {"points": points or None, "sizes": sizes or None, "priors": priors or None}


def main(args: argparse.Namespace) -> int:
    import os

    import torch

    from ..bench.pipeline import machine_info, markdown
    from ..config import resolve_device
    from ..errors import UsageError
    from ..summary import write_json
    from .options import setup

    every_device = args.device == "all"  # bench only: the pipeline area on cpu and cuda
    if every_device:
        args.device = None
    cfg = setup(args)  # sets torch's threads from --threads / cpu_threads
    device = resolve_device(cfg.device)
    areas = tuple(AREAS) if args.what == "all" else tuple(a.strip() for a in args.what.split(",") if a.strip())
    unknown = [a for a in areas if a not in AREAS]
    if unknown:
        raise UsageError(f"--what: unknown area(s) {unknown}; choose from {', '.join(AREAS)}")
    info = machine_info()
    print(f"# racalnet bench on {info['cpu']} ({info['cores']} cores), GPU {info['gpu'] or 'none'}, device={device}, "
          f"torch threads={info['torch_threads']}, torch {info['torch']}, load average {info['loadavg']}")
    everything: dict = {}
    pages = []
    for area in areas:
        module = importlib.import_module(f"racalnet_ros.bench.{AREAS[area]}")
        if area == "pipeline":  # without --device: the cpu rows and the cuda rows ("not measured" without a GPU)
            rows = module.run(device="all" if every_device or not args.device else device, quick=args.quick, **_pipeline_filters(args))
        else:
            rows = module.run(device=device, quick=args.quick, **({"load": args.load} if area == "threads" else {}))
        if area == "node" and args.live > 0:
            points = _pipeline_filters(args)["points"] or (module.NUM_RADAR,)
            rows += module.measure_live_overlap(args.live, num_radar=points[0], params={
                "device": device, "cpu_threads": cfg.cpu_threads, "recalibration.enabled": cfg.recalibration.enabled,
                "recalibration.checkpoint": cfg.recalibration.checkpoint})
        everything[area] = rows
        print(f"\n## {area}\n")
        table = markdown(rows, {**info, "loadavg_after": [round(x, 2) for x in os.getloadavg()]}) \
            if area == "pipeline" else format_rows(rows)
        print(table)
        pages.append(f"## {area}\n\n{table}")
    info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        write_json(args.json, everything)  # standard JSON: a row's NaN is null
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "bench.json", {"machine": info, "areas": everything})
        (out / "bench.md").write_text("# racalnet bench\n\n" + "\n".join(pages))
        print(f"\nwrote {out / 'bench.json'} and {out / 'bench.md'}")
    return 0
