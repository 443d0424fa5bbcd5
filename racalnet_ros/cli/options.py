"""Options every `racalnet` command shares, and how they become a configuration.

Every command that runs the pipeline (infer, evaluate, evaluate-anchors, bench, evaluate-bag, demo) takes

  --config FILE      pipeline settings: plain YAML (nested or dotted keys) or a ROS parameter file (repeatable)
  --set KEY=VALUE    one setting, the value parsed as YAML (repeatable; keys: docs/parameters.md)
  --checkpoint PATH  = --set recalibration.checkpoint=PATH
  --prior SPEC       = prior.source / prior.path: frame | synthetic | topic | precomputed:DIR |
                       depth-anything-v2[:ID_OR_PATH]
  --device DEVICE    = --set device=DEVICE (auto | cpu | cuda | cuda:N)
  --threads N        = --set cpu_threads=N (torch intra-op threads; 0 = the default rule of config.default_cpu_threads)

and every command takes --debug (tracebacks for expected failures). Later sources win: the dataclass defaults, the
command's own defaults, the --config files in order, the shortcuts and old flags, then --set. Old flags stay as
documented aliases of the same keys (`add_alias`): infer --no-recalibration and --fp16, evaluate --threshold and
--fp16, evaluate-anchors --threshold, evaluate-bag --params (= --config). Every value goes through the config
module's checks, so a bad one gets the same message whether it came from a flag, a file or --set.

Ranges of integers (frames, seeds) have one syntax, `parse_ranges`: "80-99" (inclusive), "5,7,9", "1-3,8"; the
older "A:B" (end excluded, Python style) is accepted as an alias.
"""

from __future__ import annotations

import argparse
from typing import Any, Mapping, Optional

from ..config import PipelineConfig, apply_cpu_threads, parse_overrides, parse_prior_spec
from ..errors import UsageError


def add_debug_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--debug", action="store_true",
                   help="show the traceback of an expected failure (bad input, missing file) instead of one line")


def add_pipeline_options(p: argparse.ArgumentParser, *, device: str = "auto", prior: Optional[str] = None,
                         checkpoint: bool = True) -> None:
    """--config, --set and the shortcuts. `device` / `prior`: this command's defaults (below --config)."""
    g = p.add_argument_group("configuration (keys and ranges: docs/parameters.md)")
    g.add_argument("--config", action="append", default=[], metavar="FILE",
                   help="settings file: plain YAML (nested or dotted keys) or ROS /**: ros__parameters layout; "
                        "repeatable, later files win")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="one setting, value parsed as YAML, e.g. --set refine.enabled=false (repeatable, wins over "
                        "everything else)")
    if checkpoint:
        g.add_argument("--checkpoint", default=None, metavar="PATH",
                       help="= --set recalibration.checkpoint=PATH (default: the shipped checkpoint)")
    g.add_argument("--prior", default=None, metavar="SPEC",
                   help="frame | synthetic | topic | precomputed:DIR | depth-anything-v2[:ID_OR_PATH]"
                        + (f" (default: {prior})" if prior else ""))
    g.add_argument("--device", default=None, help=f"= --set device=...: auto | cpu | cuda | cuda:N (default: {device})")
    g.add_argument("--threads", default=None, metavar="N",
                   help="= --set cpu_threads=N: torch intra-op CPU threads (default 0 = 1 on a machine with at most 2 "
                        "CPUs, else min(4, CPUs // 2))")
    defaults = {"device": device}
    if prior is not None:
        defaults.update(parse_prior_spec(prior))
    p.set_defaults(_config_defaults=defaults, _aliases=list(p.get_default("_aliases") or []))


def add_alias(p: argparse.ArgumentParser, flag: str, key: str, const: Any = None, help: str = "",
              **kwargs: Any) -> None:
    """An old flag kept as a documented alias of `key`: with `const`, a switch that sets key = const; otherwise it
    takes a value (checked by the config module like --set)."""
    dest = "alias_" + flag.lstrip("-").replace("-", "_")
    note = f" (alias of --set {key}={'true' if const is True else 'false' if const is False else const})" \
        if const is not None else f" (alias of --set {key}=...)"
    if const is not None:
        p.add_argument(flag, dest=dest, action="store_const", const=const, default=None, help=help + note, **kwargs)
    else:
        p.add_argument(flag, dest=dest, default=None, help=help + note, **kwargs)
    p.set_defaults(_aliases=list(p.get_default("_aliases") or []) + [(dest, key)])


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The dotted-key settings the command line gives (shortcuts, old flags, then --set), without the files."""
    out: dict[str, Any] = {}
    if getattr(args, "checkpoint", None) is not None:
        out["recalibration.checkpoint"] = args.checkpoint
    if getattr(args, "prior", None) is not None:
        out.update(parse_prior_spec(args.prior))
    if getattr(args, "device", None) is not None:
        out["device"] = args.device
    if getattr(args, "threads", None) is not None:
        out["cpu_threads"] = args.threads
    for dest, key in getattr(args, "_aliases", []):
        if getattr(args, dest, None) is not None:
            out[key] = getattr(args, dest)
    out.update(parse_overrides(getattr(args, "set", []) or []))
    return out


def pipeline_config(args: argparse.Namespace) -> PipelineConfig:
    """The PipelineConfig the command line describes (see the module docstring for the order)."""
    base = PipelineConfig().with_values(getattr(args, "_config_defaults", {}))
    return PipelineConfig.load(getattr(args, "config", []) or [], overrides(args), base=base)


def setup(args: argparse.Namespace) -> PipelineConfig:
    """pipeline_config(args), with torch's CPU threads set from its cpu_threads (the node does the same)."""
    cfg = pipeline_config(args)
    apply_cpu_threads(cfg.cpu_threads)
    return cfg


def node_parameters(args: argparse.Namespace, implied: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
    """The flat parameters the command line gives racalnet_node (evaluate-bag, demo): the --config files (read with
    the one YAML reader), then `implied` (e.g. the bag's extrinsic), then the shortcuts and --set. Checked with the
    node's own rules before the node starts (the same messages the node would give); keys of rclpy itself
    (use_sim_time, qos_overrides.*) pass through."""
    from ..config import read_yaml
    from ..ros.params import settings_from_values

    flat: dict[str, Any] = {}
    for path in getattr(args, "config", []) or []:
        flat.update(read_yaml(path)[0])
    flat.update(implied or {})
    defaults = getattr(args, "_config_defaults", {})
    flat.update({k: v for k, v in defaults.items() if k not in flat})
    flat.update(overrides(args))
    settings_from_values({k: v for k, v in flat.items() if not _rclpy_key(k)})
    return flat


def _rclpy_key(key: str) -> bool:
    return key == "use_sim_time" or key.startswith("qos_overrides.")


# ---------------------------------------------------------------------------------------------------------------
def parse_ranges(text: str, what: str = "--frames") -> list[int]:
    """"80-99" -> 80..99 (inclusive), "5,7,9", "1-3,8"; the older "A:B" means A..B-1 (end excluded). The one parser
    of integer ranges (frames, seeds). UsageError naming `what` for anything else."""
    out: list[int] = []
    for tok in str(text).split(","):
        tok = tok.strip()
        if not tok:
            continue
        try:
            if ":" in tok:
                a, b = tok.split(":")
                out.extend(range(int(a), int(b)))
            elif "-" in tok[1:]:
                a, b = tok[0] + tok[1:].split("-", 1)[0], tok[1:].split("-", 1)[1]
                out.extend(range(int(a), int(b) + 1))
            else:
                out.append(int(tok))
        except ValueError:
            raise UsageError(f"{what}: cannot parse {tok!r} (expected N, A-B inclusive, or a comma list)") from None
    return out


__all__ = ["add_alias", "add_debug_option", "add_pipeline_options", "node_parameters", "overrides",
           "parse_ranges", "pipeline_config", "setup"]
