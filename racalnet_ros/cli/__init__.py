"""`racalnet` command line: one subcommand per module in this package, imported lazily so `racalnet --help` stays
fast and a subcommand's heavy dependencies (torch, rclpy) load only when it runs.

Each subcommand module defines HELP (one line), add_arguments(parser) and main(args) -> int; shared options come
from options.py. The one error policy: an expected failure raises a `RacalnetError` (errors.py), and `main` prints
it as one line, `racalnet <command>: <message>`, on stderr and returns 2; `--debug` shows the traceback instead.
Ctrl-C is `racalnet <command>: interrupted` and exit code 130 (128 + SIGINT), without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import RacalnetError

#: (subcommand, module under racalnet_ros.cli)
COMMANDS: list[tuple[str, str]] = [
    ("synth", "synth"),
    ("inspect", "inspect"),
    ("train", "train"),
    ("evaluate-anchors", "evaluate_anchors"),
    ("evaluate", "evaluate"),
    ("infer", "infer"),
    ("bench", "bench"),
    ("bag-from-dataset", "bag_from_dataset"),
    ("replay", "replay"),
    ("evaluate-bag", "evaluate_bag"),
    ("demo", "demo"),
]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    from .options import add_debug_option

    parser = argparse.ArgumentParser(prog="racalnet", description="RaCalNet: radar recalibration + metric depth.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS:
        if only is not None and name != only:
            # Help text only; the module is imported when its subcommand is chosen.
            sub.add_parser(name, add_help=False)
            continue
        mod = importlib.import_module(f"racalnet_ros.cli.{module}")
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        add_debug_option(p)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = {n for n, _ in COMMANDS}
    only = argv[0] if argv and argv[0] in names else None
    parser = build_parser(only if only else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_main", None):
        parser.print_help()
        return 2
    try:
        return int(args._main(args) or 0)
    except RacalnetError as exc:
        if args.debug:
            raise
        print(f"racalnet {args.command}: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:  # Ctrl-C, e.g. while a model loads: what was written so far stays
        if args.debug:
            raise
        print(f"racalnet {args.command}: interrupted", file=sys.stderr, flush=True)
        return 130


if __name__ == "__main__":
    sys.exit(main())
