"""`racalnet` command line: one subcommand per module in this package, imported lazily so `racalnet --help` stays
fast and a subcommand's heavy dependencies (torch, rclpy) load only when it runs.

Each subcommand module defines HELP (one line), add_arguments(parser) and main(args) -> int.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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


def _load(module: str):
    return importlib.import_module(f"racalnet_ros.cli.{module}")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="racalnet", description="RaCalNet: radar recalibration + metric depth.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS:
        if only is not None and name != only:
            # Help text only; the module is imported when its subcommand is chosen.
            sub.add_parser(name, add_help=False)
            continue
        try:
            mod = _load(module)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("racalnet_ros.cli."):
                continue  # subcommand not available in this build
            raise
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
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
    return int(args._main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
