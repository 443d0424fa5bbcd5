"""Configuration of the pipeline: one set of knobs for CLI flags, YAML files and ROS parameters.

`PipelineConfig` holds the sections `recalibration` (paper Sec. III-A), `prior`, `align` (Eq. 11-12), `refine`
(Eq. 13-14) and `smooth`, plus the runtime knobs every entry point needs (`device`, `cpu_threads`). Every field
carries its description and allowed values in its metadata (`setting(...)`); from that one place come

- validation, with one `ConfigError` message per bad key whatever the entry point (`--set`, a CLI flag, `--config`
  YAML, a ROS parameter): unknown key (with a "did you mean"), wrong type, out of range, not one of the choices;
- the node's declared ROS parameters (racalnet_ros/ros/node.py) and the CLI's `--set` keys;
- the parameter tables in docs/parameters.md (`python -m racalnet_ros.config --markdown`; a test fails when the
  committed file is stale).

Keys are flat and dotted (`recalibration.threshold`, `refine.n_clusters`, `device`). One loader reads plain YAML
(nested sections or dotted keys) or the ROS layout (`/**:` or a node name, then `ros__parameters:`), and overrides
(`key=value`, values parsed as YAML scalars) apply on top. The same machinery (`flat_fields`, `from_flat`,
`with_values`) serves any dataclass whose fields are `setting(...)`s, e.g. the node's own keys in ros/params.py.

Defined once here: the ablations of paper Table IV (`ABLATIONS`, `PipelineConfig.ablation`), the prior sources
(`PRIOR_SOURCES`, `parse_prior_spec`), device resolution (`resolve_device`) and the CPU thread rule
(`default_cpu_threads`, `apply_cpu_threads`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

from .errors import RacalnetError


class ConfigError(RacalnetError, ValueError):
    """One or more configuration keys are unknown, mistyped or out of range. `errors` holds one message per bad key,
    each starting with the key; str(error) joins them with "; "."""

    def __init__(self, errors: str | Sequence[str]) -> None:
        self.errors = [errors] if isinstance(errors, str) else list(errors)
        super().__init__("; ".join(self.errors))


# ---------------------------------------------------------------------------------------------------------------
# field metadata
def setting(default: Any, description: str, *, ge: Optional[float] = None, gt: Optional[float] = None,
            le: Optional[float] = None, choices: Optional[Sequence[str]] = None, pattern: Optional[str] = None,
            pattern_doc: str = "", length: Optional[int] = None) -> Any:
    """A dataclass field with its description and allowed values: ge / gt / le bound numbers (inclusive / exclusive
    lower, inclusive upper), choices lists the allowed strings, pattern is a regex a string must match in full
    (pattern_doc says it in words), length is the required length of a list of numbers."""
    meta = {"description": description, "ge": ge, "gt": gt, "le": le,
            "choices": tuple(choices) if choices is not None else None, "pattern": pattern,
            "pattern_doc": pattern_doc, "length": length}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory()  # type: ignore[misc]


@lru_cache(maxsize=None)
def flat_fields(cls: type) -> dict[str, dataclasses.Field]:
    """{dotted key: dataclass Field} of every leaf setting of a (nested) config dataclass, in declaration order."""
    out: dict[str, dataclasses.Field] = {}
    for f in dataclasses.fields(cls):
        d = _default(f)
        if dataclasses.is_dataclass(d):
            out.update({f"{f.name}.{k}": g for k, g in flat_fields(type(d)).items()})
        else:
            out[f.name] = f
    return out


def _number(value: Any) -> Optional[float]:
    """A finite int / float (numpy scalars and numeric strings too) as a Python number, else None (booleans are not
    numbers here)."""
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eEn") else int(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return None
    if not isinstance(value, numbers.Real):
        return None
    return value if math.isfinite(float(value)) else None


def _bool_words(value: bool) -> tuple[str, ...]:
    return ("y", "yes", "on", "true") if value else ("n", "no", "off", "false")


def coerce(key: str, f: dataclasses.Field, value: Any) -> Any:
    """`value` converted to the type of field `f` (named `key` in messages) and checked against its metadata; raises
    ConfigError with one message naming the key. Integers are fine for float fields (YAML and ROS write `1` for 1.0),
    numeric strings for numbers, true/false/yes/no/on/off/1/0 strings for booleans; a boolean is never a string (a
    YAML 1.1 parser such as rcl's reads unquoted y, n, yes, no, on, off as booleans: the message says how to quote)."""
    default = _default(f)
    meta = f.metadata
    err = None
    if isinstance(default, bool):
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            value = bool(value)
        elif isinstance(value, int) and value in (0, 1):
            value = bool(value)
        elif isinstance(value, str) and value.strip().lower() in ("true", "false", "yes", "no", "on", "off", "1", "0"):
            value = value.strip().lower() in ("true", "yes", "on", "1")
        else:
            err = f"{key}: expected true or false, got {value!r}"
    elif isinstance(default, int):
        v = _number(value)
        if v is None or not float(v).is_integer():
            err = f"{key}: expected an integer, got {value!r}"
        else:
            value = int(v)
    elif isinstance(default, float):
        v = _number(value)
        if v is None:
            err = f"{key}: expected a number, got {value!r}"
        else:
            value = float(v)
    elif isinstance(default, str):
        if value is None:
            value = ""
        elif isinstance(value, bool):
            guess = default if default.lower() in _bool_words(value) else "..."
            err = (f"{key}: expected a string, got the boolean {str(value).lower()} (YAML 1.1 reads unquoted y, n, "
                   f"yes, no, on, off, true, false as booleans): quote it, e.g. {key}: '{guess}' in a YAML file or "
                   f"-p \"{key}:='{guess}'\" on the command line")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)  # unambiguous: the number as written
        elif not isinstance(value, str):
            err = f"{key}: expected a string, got {value!r}"
    elif isinstance(default, list):
        if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
            err = f"{key}: expected a list of numbers, got {value!r}"
        else:
            items = list(value)
            if meta.get("length") is not None and len(items) != meta["length"]:
                err = f"{key}: expected {meta['length']} numbers, got {len(items)}"
            elif not all(not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x) for x in items):
                err = f"{key}: expected finite numbers, got {items}"
            else:
                value = [float(x) for x in items]
    if err is None:
        err = _check_bounds(key, meta, value)
    if err is not None:
        raise ConfigError(err)
    return value


def _check_bounds(key: str, meta: Mapping[str, Any], value: Any) -> Optional[str]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
        if (ge is not None and value < ge) or (gt is not None and value <= gt) or (le is not None and value > le):
            return f"{key}: {value:g} is outside {bounds_text(meta)}"
    if isinstance(value, str):
        if meta.get("choices") is not None and value not in meta["choices"]:
            return f"{key}: {value!r} is not one of {', '.join(meta['choices'])}"
        if meta.get("pattern") is not None and not re.fullmatch(meta["pattern"], value):
            return f"{key}: {value!r} is not valid (expected {meta.get('pattern_doc') or meta['pattern']})"
    return None


def bounds_text(meta: Mapping[str, Any]) -> str:
    """The allowed range in words: "[0, 10]", "> 0", ">= 1"."""
    ge, gt, le = meta.get("ge"), meta.get("gt"), meta.get("le")
    if le is not None and (ge is not None or gt is not None):
        return f"{'[' if ge is not None else '('}{ge if ge is not None else gt:g}, {le:g}]"
    if le is not None:
        return f"<= {le:g}"
    if gt is not None:
        return f"> {gt:g}"
    if ge is not None:
        return f">= {ge:g}"
    return ""


def constraint_text(f: dataclasses.Field) -> str:
    """The allowed values of a field in words (docs, ROS parameter descriptors)."""
    m = f.metadata
    if m.get("choices"):
        return "one of " + ", ".join(m["choices"])
    if m.get("pattern_doc"):
        return m["pattern_doc"]
    if m.get("length"):
        return f"{m['length']} numbers"
    return bounds_text(m)


def unknown_key(key: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f"unknown key {key!r}" + (f" (did you mean {close[0]!r}?)" if close else "")


# ---------------------------------------------------------------------------------------------------------------
# flat keys <-> nested dataclasses, for any config dataclass made of settings
def to_flat(obj: Any) -> dict[str, Any]:
    """{"recalibration.threshold": -1.0, ..., "device": "cpu"} of a (nested) config dataclass."""
    out = {}
    for key in flat_fields(type(obj)):
        v = obj
        for part in key.split("."):
            v = getattr(v, part)
        out[key] = list(v) if isinstance(v, (list, tuple)) else v
    return out


def _set(obj: Any, key: str, value: Any) -> None:
    *path, leaf = key.split(".")
    for part in path:
        obj = getattr(obj, part)
    setattr(obj, leaf, value)


def with_values(obj: Any, values: Mapping[str, Any]) -> Any:
    """A copy of `obj` with dotted-key `values` applied, each coerced and checked, then the cross-field checks
    (`obj.check()` when it has one). ConfigError lists every bad key."""
    fields_ = flat_fields(type(obj))
    out = copy.deepcopy(obj)
    errors = []
    for key, value in values.items():
        if key not in fields_:
            errors.append(unknown_key(key, fields_))
            continue
        try:
            _set(out, key, coerce(key, fields_[key], value))
        except ConfigError as e:
            errors += e.errors
    if not errors and hasattr(out, "check"):
        errors += out.check()
    if errors:
        raise ConfigError(errors)
    return out


def from_flat(cls: type, values: Mapping[str, Any]) -> Any:
    return with_values(cls(), values)


def check_fields(obj: Any, prefix: str = "") -> list[str]:
    """Coerce every leaf of `obj` in place (so code that set a field by hand gets the same checks) and return the
    messages of the bad ones."""
    errors = []
    current = to_flat(obj)
    for key, f in flat_fields(type(obj)).items():
        try:
            _set(obj, key, coerce(prefix + key, f, current[key]))
        except ConfigError as e:
            errors += e.errors
    return errors


def nest(flat: Mapping[str, Any]) -> dict:
    """{"a.b": 1, "a.c": 2} -> {"a": {"b": 1, "c": 2}} (for writing YAML / ROS parameter files)."""
    out: dict = {}
    for key, value in flat.items():
        d = out
        *path, leaf = key.split(".")
        for part in path:
            d = d.setdefault(part, {})
        d[leaf] = value
    return out


# ---------------------------------------------------------------------------------------------------------------
# the one YAML reader and the overrides
#: node names whose `ros__parameters` block a ROS parameter file may hold for us (besides "/**")
NODE_NAMES = ("racalnet_node",)


def read_yaml(path: str | Path) -> tuple[dict[str, Any], bool]:
    """(flat {dotted key: value}, is_ros_layout) of a YAML file: plain (nested sections or dotted keys) or a ROS
    parameter file (`/**:` and/or `racalnet_node:` blocks with `ros__parameters:`, merged in file order; a file with
    other nodes only: its first block). ConfigError naming the file when it cannot be read."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    blocks = {k: v["ros__parameters"] or {} for k, v in data.items()
              if isinstance(v, dict) and "ros__parameters" in v}
    ros = bool(blocks)
    if ros:
        ours = [b for k, b in blocks.items() if k == "/**" or str(k).rstrip("/").split("/")[-1] in NODE_NAMES]
        data = {}
        for b in ours or [next(iter(blocks.values()))]:
            data.update(b)
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            flat[prefix] = node

    walk("", data)
    return flat, ros


def parse_overrides(items: Iterable[str], flag: str = "--set") -> dict[str, Any]:
    """["refine.enabled=false", "align.max_depth=80"] -> {"refine.enabled": False, "align.max_depth": 80} (values
    parsed as YAML scalars, so lists such as [1, 0, 0] work too)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE")
        try:
            out[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            out[key.strip()] = text
    return out


# ---------------------------------------------------------------------------------------------------------------
# prior sources, ablations, device, threads
#: prior.source values. "frame": the prior that comes with the frame (frame.prior); "synthetic" (the synthetic
#: generator's simulated prior) and "topic" (the node's prior/inverse_depth topic) are the same thing under the
#: names their users know. "precomputed": a folder of <frame_id>.npy (prior.path). "depth-anything-v2": the network,
#: run in-process (prior.path: Hugging Face id or local folder; "" = the default small model).
PRIOR_SOURCES = ("frame", "synthetic", "topic", "precomputed", "depth-anything-v2")
#: the sources whose prior arrives with the frame (the node subscribes to prior/inverse_depth for them)
FRAME_PRIOR_SOURCES = ("frame", "synthetic", "topic")
_PRIOR_ALIASES = {"depth_anything_v2": "depth-anything-v2", "dav2": "depth-anything-v2"}

#: align.anchor_weights values: which anchors enter the fits and with what weight (RadarAnchors.fit_inputs)
ANCHOR_WEIGHTS = ("threshold", "confidence")

#: the paper's configurations (Table IV) plus the RadarCam-Depth stage-2 baseline
ABLATIONS = ("full", "no-displacement", "no-recalibration", "baseline")

_DEVICE = r"auto|cpu|cuda(:\d+)?"


def parse_prior_spec(spec: str) -> dict[str, str]:
    """A prior spec string -> {"prior.source", "prior.path"}: "frame" | "synthetic" | "topic" | "precomputed:DIR" |
    "depth-anything-v2[:ID_OR_PATH]" (also "dav2[:...]"). The source is checked when the config is built."""
    kind, _, arg = (spec or "frame").strip().partition(":")
    kind = kind.strip().lower()
    return {"prior.source": _PRIOR_ALIASES.get(kind, kind), "prior.path": arg.strip()}


def resolve_device(device: str) -> str:
    """The torch device to run on: "auto" -> "cuda" when torch sees a CUDA device, else "cpu"; "cpu", "cuda",
    "cuda:N" are returned as given. ConfigError for anything else, or for cuda when torch sees no CUDA device."""
    device = str(device).strip().lower()
    if not re.fullmatch(_DEVICE, device):
        raise ConfigError(f"device: {device!r} is not valid (expected auto, cpu, cuda or cuda:N)")
    if device == "cpu":
        return device
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise ConfigError(f"device: {device!r} requested but torch sees no CUDA device (use auto or cpu)")
    return device


def default_cpu_threads(cpus: Optional[int] = None) -> int:
    """Torch intra-op threads for CPU inference when none are asked for (cpu_threads: 0): 1 on a machine with at
    most 2 CPUs, else min(4, CPUs // 2), counting the CPUs this process may run on. Measured on a loaded 2-core box:
    the small recalibration network took 700-1266 ms per frame with 2 torch threads and 78-92 ms with 1; leaving
    half of a bigger machine to the camera / radar drivers and DDS keeps the node's latency steady."""
    if cpus is None:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not Linux
            cpus = os.cpu_count() or 1
    return 1 if cpus <= 2 else min(4, cpus // 2)


def apply_cpu_threads(cpu_threads: int) -> int:
    """Set torch's intra-op threads: cpu_threads > 0 as given, 0 = `default_cpu_threads()`. Returns the number set.
    The one place the CLI commands and the node set threads."""
    import torch

    n = int(cpu_threads) if int(cpu_threads) > 0 else default_cpu_threads()
    torch.set_num_threads(n)
    return n


# ---------------------------------------------------------------------------------------------------------------
# the sections
@dataclass
class RecalibrationConfig:
    """Radar Recalibration (paper Sec. III-A)."""

    enabled: bool = setting(True, "Run radar recalibration (paper III-A); false = raw radar projections as anchors "
                                  "(the \"no recalibration\" ablation).")
    checkpoint: str = setting("", "Recalibration checkpoint (<name>.safetensors + <name>.json); empty = the "
                                  "shipped default (racalnet_ros/checkpoints/small_synthetic).")
    threshold: float = setting(-1.0, "Confidence threshold for keeping an anchor (paper Eq. 3); < 0 = the "
                                     "checkpoint's own.", ge=-1.0, le=1.0)
    use_screening: bool = setting(True, "Drop anchors whose confidence is below the threshold (ablation switch).")
    use_displacement: bool = setting(True, "Move anchors by the predicted pixel displacement (ablation switch).")
    max_points: int = setting(4096, "Cap on in-image radar points through the network per frame (0 = no cap); a "
                                    "larger cloud is thinned on a pixel grid (coverage first, duplicates last), the "
                                    "rest are not evaluated and never used as anchors, and the frame is flagged "
                                    "radar_subsampled (a WARN on /diagnostics).", ge=0)
    trust_margin: float = setting(1.0, "Out-of-distribution guard (recalibration/trust.py): a frame whose image "
                                       "features lie beyond the checkpoint's reference distance d_ref (95th "
                                       "percentile of its validation frames) gets trust 1 - (d / d_ref - 1) / margin "
                                       "(clipped to [0, 1]); points are kept at confidence >= trust x threshold and "
                                       "moved by trust x displacement, so a fully distrusted frame (d >= (1 + margin) "
                                       "d_ref) keeps the raw projections. Reported as recalibration_trust in "
                                       "diagnostics (WARN recalibration_distrusted below 1). 0 = off; checkpoints "
                                       "without statistics are always trusted.", ge=0.0, le=100.0)


@dataclass
class PriorConfig:
    """The monocular prior: relative inverse depth (larger = nearer)."""

    source: str = setting("frame", "Monocular prior: frame / synthetic / topic (the prior that comes with the "
                                   "frame; in the node the prior/inverse_depth topic, 32FC1), precomputed (a folder "
                                   "of <frame_id>.npy) or depth-anything-v2 (run in-process).", choices=PRIOR_SOURCES)
    path: str = setting("", "precomputed: the folder; depth-anything-v2: Hugging Face id or local folder "
                            "('' = depth-anything/Depth-Anything-V2-Small-hf).")
    fp16: bool = setting(False, "Run the prior network in half precision (cuda only; ignored on cpu).")

    def spec(self) -> str:
        """The spec string (`--prior`) of this source: "precomputed:DIR", "depth-anything-v2", ..."""
        return f"{self.source}:{self.path}" if self.path else self.source

    @property
    def from_frame(self) -> bool:
        """True when the prior arrives with the frame (frame / synthetic / topic)."""
        return self.source in FRAME_PRIOR_SOURCES

    def check(self) -> list[str]:
        if self.source == "precomputed" and not self.path:
            return ["prior.path: the precomputed source needs a folder, e.g. --prior precomputed:/data/priors"]
        return []


@dataclass
class AlignConfig:
    """Global alignment (Eq. 11-12) and the output depth range; see metric_depth/align.py."""

    min_depth: float = setting(1.0, "Metres; anchors nearer are ignored and the output depth is clamped to "
                                    "[align.min_depth, align.max_depth].", gt=0.0, le=1000.0)
    max_depth: float = setting(100.0, "Metres; anchors farther are ignored and the output depth is clamped to "
                                      "[align.min_depth, align.max_depth].", gt=0.0, le=10000.0)
    regularization: float = setting(1e-6, "lam of Eq. 11 (dimensionless ridge towards zero).", ge=0.0)
    threshold_search: bool = setting(True, "Eq. 12 threshold search on/off (off = plain least squares on every "
                                           "anchor, the RadarCam-Depth baseline).")
    thresholds: str = setting("inf,0.5,0.3,0.2,0.15,0.1,0.05", "Comma-separated candidate relative residuals of "
                                                              "Eq. 12 (inf = keep every anchor).")
    iterations: int = setting(2, "Refits per threshold (Eq. 12).", ge=1)
    error_cap: float = setting(0.5, "Truncation of the relative alignment error E(tau) of Eq. 12.", gt=0.0)
    min_anchors: int = setting(5, "Below this many anchors only the scale is fitted (an affine fit has 2 unknowns).",
                               ge=2)
    use_previous_fit: bool = setting(True, "Reuse the previous frame's global fit when a frame has no usable anchor.")
    anchor_weights: str = setting("confidence", "Which anchors enter the global and local fits and how: "
                                                "confidence = every anchor the network evaluated, weighted by its "
                                                "confidence (Eq. 11 and 14 as weighted least squares; chosen on "
                                                "synthetic validation frames, docs/metric_depth.md); threshold = "
                                                "the kept anchors (confidence >= recalibration.threshold), equal "
                                                "weights (the paper).",
                                  choices=ANCHOR_WEIGHTS)
    fp16: bool = setting(False, "Per-pixel maps of the whole alignment in float16 on CUDA (anchor sums and 2 x 2 "
                                "solves stay float64, memberships float32; CPU stays float32); see "
                                "docs/metric_depth.md.")
    compile: bool = setting(False, "torch.compile the per-pixel stages (CUDA graphs on CUDA); falls back to eager "
                                   "with a warning when compiling fails; see docs/benchmarks/pipeline.md.")

    def threshold_values(self) -> list[float]:
        """The candidate thresholds, loosest first."""
        try:
            vals = [float(t) for t in str(self.thresholds).split(",") if t.strip()]
        except ValueError:
            raise ConfigError(f"align.thresholds: expected comma-separated numbers, got {self.thresholds!r}") from None
        if not vals or any(not v > 0 for v in vals):
            raise ConfigError(f"align.thresholds: need positive values, got {self.thresholds!r}")
        return sorted(vals, reverse=True)

    def check(self) -> list[str]:
        errors = []
        if not self.min_depth < self.max_depth:
            errors.append(f"align.min_depth/max_depth: need min < max, got {self.min_depth:g}, {self.max_depth:g}")
        try:
            self.threshold_values()
        except ConfigError as e:
            errors += e.errors
        return errors

    def validate(self) -> "AlignConfig":
        return _validate(self, "align.")


@dataclass
class RefineConfig:
    """Depth-aware local refinement (Eq. 13-14); see metric_depth/refine.py."""

    enabled: bool = setting(True, "Local refinement with K-means clusters of anchors (paper Eq. 13-14).")
    n_clusters: int = setting(8, "K of Eq. 13.", ge=1)
    sample_size: int = setting(2048, "Pixels used to fit K-means (at least refine.n_clusters).", ge=1)
    depth_weight: float = setting(1.0, "Weight of the log-depth feature of Eq. 13.", ge=0.0)
    min_anchors: int = setting(8, "Anchors a cluster needs for its own affine map (Eq. 14).", ge=2)
    regularization: float = setting(0.05, "lam of Eq. 14, towards the identity map.", ge=0.0)
    blend: float = setting(0.5, "Softness of the cluster borders (0 = hard assignment).", ge=0.0)
    stride: int = setting(2, "Pixel step of the membership computation (parameter maps upsampled bilinearly; "
                             "1 = every pixel).", ge=1)
    seed: int = setting(0, "K-means seed.", ge=0)

    def check(self) -> list[str]:
        if self.sample_size < self.n_clusters:
            return [f"refine.sample_size: must be >= refine.n_clusters ({self.n_clusters}), got {self.sample_size}"]
        return []

    def validate(self) -> "RefineConfig":
        return _validate(self, "refine.")


@dataclass
class SmoothConfig:
    """Edge-aware smoothing (Sec. III-B 3); see metric_depth/smooth.py."""

    enabled: bool = setting(True, "Edge-aware smoothing of the refined depth.")
    sigma: float = setting(1.5, "Gaussian sigma in pixels.", gt=0.0)
    edge_threshold: float = setting(0.5, "Relative depth gradient |grad D| / D (3x3 Sobel) above which a pixel is "
                                         "an edge (0.5 ~ a 6% jump between neighbours).", gt=0.0)

    def validate(self) -> "SmoothConfig":
        return _validate(self, "smooth.")


def _validate(section: Any, prefix: str) -> Any:
    errors = check_fields(section, prefix)
    if not errors and hasattr(section, "check"):
        errors += section.check()
    if errors:
        raise ConfigError(errors)
    return section


@dataclass
class PipelineConfig:
    """Everything `Pipeline.from_config` needs (see racalnet_ros/pipeline.py) plus the runtime knobs."""

    recalibration: RecalibrationConfig = field(default_factory=RecalibrationConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    device: str = setting("cpu", "Where the networks run: auto (cuda when torch sees a GPU, else cpu), cpu, cuda "
                                 "or cuda:N.", pattern=_DEVICE, pattern_doc="auto, cpu, cuda or cuda:N")
    cpu_threads: int = setting(0, "torch intra-op CPU threads; 0 = the default rule: 1 on a machine with at most 2 "
                                  "CPUs, else min(4, CPUs // 2) (more threads than free cores make the network "
                                  "several times slower on a busy CPU).", ge=0, le=256)

    # ------------------------------------------------------------------ flat dotted keys
    def to_flat(self) -> dict[str, Any]:
        """{"recalibration.threshold": -1.0, "refine.enabled": True, ..., "device": "cpu", "cpu_threads": 0}."""
        return to_flat(self)

    @classmethod
    def from_flat(cls, values: Mapping[str, Any]) -> "PipelineConfig":
        """Missing keys keep their defaults; ConfigError names every unknown, mistyped or out-of-range key."""
        return from_flat(cls, values)

    def with_values(self, values: Mapping[str, Any]) -> "PipelineConfig":
        """A checked copy with the dotted-key `values` applied."""
        return with_values(self, values)

    def check(self) -> list[str]:
        errors = []
        for section in (self.prior, self.align, self.refine):
            errors += section.check()
        return errors

    def validate(self) -> "PipelineConfig":
        errors = check_fields(self)
        if not errors:
            errors = self.check()
        if errors:
            raise ConfigError(errors)
        return self

    # ------------------------------------------------------------------ the one loader
    @classmethod
    def load(cls, files: Sequence[str | Path] = (), overrides: Optional[Mapping[str, Any]] = None,
             base: Optional["PipelineConfig"] = None) -> "PipelineConfig":
        """`base` (default: the defaults), then each YAML file in order, then `overrides` (dotted keys). A ROS
        parameter file may also hold the node's own keys (topics, sync, extrinsics, ...): keys outside the pipeline's
        sections are left to the node there; a plain file holds only pipeline keys. ConfigError names the file."""
        cfg = copy.deepcopy(base) if base is not None else cls()
        keys = flat_fields(cls)
        sections = {k.split(".")[0] for k in keys if "." in k}
        for path in files:
            flat, ros = read_yaml(path)
            if ros:
                flat = {k: v for k, v in flat.items() if k in keys or k.split(".")[0] in sections}
            try:
                cfg = cfg.with_values(flat)
            except ConfigError as e:
                raise ConfigError([f"{path}: {m}" for m in e.errors]) from None
        return cfg.with_values(dict(overrides or {}))

    @classmethod
    def from_yaml(cls, path: str | Path) -> "PipelineConfig":
        """Plain YAML (nested sections or dotted keys) or a ROS parameter file (see `load`)."""
        return cls.load([path])

    # ------------------------------------------------------------------ the ablations
    def ablation(self, name: str) -> "PipelineConfig":
        """A copy configured for one of the paper's configurations (Table IV): "full", "no-displacement",
        "no-recalibration" (raw radar, same alignment), "baseline" (RadarCam-Depth stage 2: raw radar, plain least
        squares in inverse depth on every anchor, no refinement, no smoothing)."""
        c = copy.deepcopy(self)
        if name == "full":
            c.recalibration.enabled, c.recalibration.use_displacement = True, True
        elif name == "no-displacement":
            c.recalibration.enabled, c.recalibration.use_displacement = True, False
        elif name == "no-recalibration":
            c.recalibration.enabled = False
        elif name == "baseline":
            c.recalibration.enabled = False
            c.align.threshold_search, c.align.regularization = False, 0.0
            c.refine.enabled = False
            c.smooth.enabled = False
        else:
            raise ConfigError(f"unknown configuration {name!r}; choose one of {', '.join(ABLATIONS)}")
        return c


# ---------------------------------------------------------------------------------------------------------------
# docs
def markdown_table(cls: type, defaults: Optional[Mapping[str, Any]] = None) -> str:
    """| key | default | allowed | description | rows for every setting of a config dataclass."""
    defaults = dict(defaults or {})
    rows = ["| key | default | allowed | description |", "|---|---|---|---|"]
    for key, f in flat_fields(cls).items():
        d = defaults.get(key, _default(f))
        shown = "`''`" if d == "" else f"`{str(d).lower() if isinstance(d, bool) else d}`"
        if isinstance(d, list):
            shown = f"{len(d)} numbers" if len(d) > 6 else f"`{d}`"
        rows.append(f"| `{key}` | {shown} | {constraint_text(f)} | {f.metadata['description'].replace('|', '/')} |")
    return "\n".join(rows)


DOCS = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"


def parameters_markdown() -> str:
    """The text of docs/parameters.md."""
    from .ros.bag_frames import BagSourceConfig  # pure Python too (rosbags only when a bag is opened)
    from .ros.params import NODE_DEFAULTS, NodeConfig  # pure Python (no rclpy); imported here only

    return "\n".join([
        "# Parameters", "",
        "Generated from the dataclass metadata in `racalnet_ros/config.py` and `racalnet_ros/ros/params.py` by",
        "`python -m racalnet_ros.config --markdown` (test/test_config.py fails when this file is stale).", "",
        "## Pipeline (every entry point)", "",
        "One set of knobs: `racalnet <command> --set KEY=VALUE` / `--config FILE` (plain YAML, nested or dotted, or "
        "the ROS `/**: ros__parameters:` layout), and the same keys as `racalnet_node` parameters. A key that is "
        "unknown, mistyped or out of range is rejected with the same message by every entry point. String values "
        "that YAML 1.1 reads as booleans or numbers (y, n, yes, no, on, off, 1) must be quoted in ROS parameter "
        "files and `-p` arguments.", "",
        markdown_table(PipelineConfig), "",
        "Defaults that differ in `racalnet_node`: " + ", ".join(f"`{k}: {v}`" for k, v in NODE_DEFAULTS.items())
        + ".", "",
        "## Node only (`racalnet_node`)", "",
        "Topics, synchronisation, radar field names, extrinsics and outputs (racalnet_ros/ros/params.py).", "",
        markdown_table(NodeConfig), "",
        "## Bag source (`--dataset bag`)", "",
        "Where the frames of your own rosbag2 come from, for `racalnet train|evaluate|evaluate-anchors|inspect "
        "--dataset bag --root BAG`: `--bag-set KEY=VALUE`, `--bag-config FILE` (plain YAML or a ROS parameter file; "
        "the node's own file works as is) and the topic flags `--image-topic`, `--camera-info-topic`, `--radar-topic`, "
        "`--lidar-topic`, `--prior-topic` (racalnet_ros/ros/bag_frames.py; docs/bags.md, \"Train on your own "
        "robot\").", "",
        markdown_table(BagSourceConfig), "",
    ])


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m racalnet_ros.config", description=__doc__.splitlines()[0])
    p.add_argument("--markdown", action="store_true", help=f"write the parameter tables to {DOCS}")
    p.add_argument("--check", action="store_true", help="exit 1 when the committed tables are stale")
    args = p.parse_args(argv)
    text = parameters_markdown()
    if args.check:
        return 0 if DOCS.is_file() and DOCS.read_text() == text else 1
    if args.markdown:
        DOCS.write_text(text)
        print(f"wrote {DOCS}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
