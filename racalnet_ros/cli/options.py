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

Every command that takes --dataset accepts `bag` (your own rosbag2 at --root) with `add_bag_options`: --bag-config,
--bag-set and the topic shortcuts, which become the bag's `BagSourceConfig` (`dataset_kwargs`).

Ranges of integers (frames, seeds) have one syntax, `parse_ranges`: "80-99" (inclusive), "5,7,9", "1-3,8"; the
older "A:B" (end excluded, Python style) is accepted as an alias.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

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
    """pipeline_config(args), with its prior's model located first (an offline miss stops the command in seconds,
    before torch is imported) and torch's CPU threads set from its cpu_threads (the node does the same)."""
    from ..metric_depth.weights import check_prior

    cfg = pipeline_config(args)
    check_prior(cfg.prior.source, cfg.prior.path)
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
    settings = settings_from_values({k: v for k, v in flat.items() if not _rclpy_key(k)})
    from ..metric_depth.weights import check_prior

    check_prior(settings.pipeline.prior.source, settings.pipeline.prior.path)  # the node would stop on it too
    return flat


def add_skip_bad_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--skip-bad", action="store_true",
                   help="frames that cannot be used (empty radar file, truncated or undecodable image, ...) are named "
                        "and counted in the summary either way; with --skip-bad they do not make the exit code 1")


def check_output_folder(path: str | Path, flag: str = "--out") -> Path:
    """The output folder, created; UsageError before any work when it is a file or cannot be created."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out}: is a file, not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"{flag} {out}: cannot create the folder ({exc.strerror or exc})") from None
    return out


def bad_frames_exit(command: str, bad: Sequence[tuple[str, str]], total: int, skip_bad: bool) -> int:
    """The exit code of a run that finished with `bad` = [(frame, reason), ...] unusable frames out of `total`:
    0 without bad frames or with --skip-bad, else 1; one line on stderr names them (each is in the summary)."""
    if not bad:
        return 0
    names = ", ".join(f for f, _ in bad[:5]) + (" ..." if len(bad) > 5 else "")
    if skip_bad:
        print(f"racalnet {command}: skipped {len(bad)} of {total} frame(s) that could not be used ({names})",
              file=sys.stderr, flush=True)
        return 0
    done = f"the other {total - len(bad)} were written" if total > len(bad) else "none was written"
    print(f"racalnet {command}: {len(bad)} of {total} frame(s) could not be used ({names}; reasons in the summary); "
          f"{done}; --skip-bad accepts that (exit code 0)", file=sys.stderr, flush=True)
    return 1


def _rclpy_key(key: str) -> bool:
    return key == "use_sim_time" or key.startswith("qos_overrides.")


# ---------------------------------------------------------------------------------------------------------------
# --dataset bag: where the frames of your own rosbag2 come from
#: datasets every command that takes --dataset accepts (`open_dataset` kinds)
DATASET_KINDS = ("astyx", "zju", "synthetic", "bag")

#: topic shortcut flag -> BagSourceConfig key
BAG_TOPIC_FLAGS = {"--image-topic": "topics.image", "--camera-info-topic": "topics.camera_info",
                   "--radar-topic": "topics.radar", "--lidar-topic": "topics.lidar", "--prior-topic": "topics.prior"}


def add_bag_options(p: argparse.ArgumentParser) -> None:
    """Options of `--dataset bag` (keys: docs/bags.md, "Train on your own robot")."""
    g = p.add_argument_group("--dataset bag: your own rosbag2 (--root BAG; keys and defaults: docs/bags.md)")
    g.add_argument("--bag-config", action="append", default=[], metavar="FILE",
                   help="bag source settings (topics.*, radar.field.*, extrinsics.*, sync.*, split.*): plain YAML or a "
                        "ROS parameter file; the node's own parameter file works as is (its other keys are skipped)")
    g.add_argument("--bag-set", action="append", default=[], metavar="KEY=VALUE",
                   help="one bag source setting, e.g. --bag-set radar.field.doppler=vel (repeatable, wins)")
    for flag, key in BAG_TOPIC_FLAGS.items():
        g.add_argument(flag, dest="bag_" + key.replace(".", "_"), default=None, metavar="TOPIC",
                       help=f"= --bag-set {key}=TOPIC")


def bag_source_config(args: argparse.Namespace):
    """The BagSourceConfig (ros/bag_frames.py) the command line describes: --bag-config files, the topic flags, then
    --bag-set; every value checked (ConfigError naming the key)."""
    from ..ros.bag_frames import load_source_config

    values = {key: getattr(args, "bag_" + key.replace(".", "_"), None) for key in BAG_TOPIC_FLAGS.values()}
    values = {k: v for k, v in values.items() if v is not None}
    values.update(parse_overrides(getattr(args, "bag_set", []) or [], "--bag-set"))
    return load_source_config(getattr(args, "bag_config", []) or [], values)


def add_synth_config_option(p: argparse.ArgumentParser) -> None:
    """--synth-config: the generator configuration of synthetic frames made on the fly from seeds."""
    p.add_argument("--synth-config", default=None, metavar="PRESET|FILE",
                   help="synthetic frames generated from seeds: a SynthConfig preset (default, astyx) or a JSON/YAML "
                        "file of SynthConfig fields (optional 'preset:' key), as `racalnet synth --config` "
                        "(default: the field defaults)")


def synth_config(args: argparse.Namespace):
    """The SynthConfig that --synth-config names (None when not given); UsageError for a bad name or file."""
    from ..datasets.synthetic import SynthConfig, SynthConfigError
    from ..datasets.synthetic.config import PRESETS

    spec = getattr(args, "synth_config", None)
    if not spec:
        return None
    if spec in PRESETS:
        return SynthConfig.preset(spec)
    path = Path(spec)
    try:
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml
            fields = yaml.safe_load(text) or {}
        else:
            import json
            fields = json.loads(text)
    except (OSError, ValueError) as exc:
        raise UsageError(f"--synth-config {spec}: not a preset ({', '.join(sorted(PRESETS))}) and not a readable "
                         f"config file ({exc})") from None
    if not isinstance(fields, dict):
        raise UsageError(f"{path}: expected a mapping of SynthConfig fields")
    try:
        return SynthConfig.from_dict(fields)
    except (SynthConfigError, TypeError) as exc:
        raise UsageError(f"{path}: {exc}") from None


def dataset_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of `open_dataset` for the command line's --dataset ({"config": ...} for a bag)."""
    return {"config": bag_source_config(args)} if getattr(args, "dataset", None) == "bag" else {}


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


__all__ = ["DATASET_KINDS", "add_alias", "add_bag_options", "add_debug_option", "add_pipeline_options",
           "add_skip_bad_option", "bad_frames_exit", "bag_source_config", "check_output_folder", "dataset_kwargs",
           "node_parameters", "overrides", "parse_ranges", "pipeline_config", "setup"]
