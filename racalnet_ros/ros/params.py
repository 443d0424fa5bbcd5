"""The node's parameters: `PipelineConfig.to_flat()` keys plus the node's own, with descriptions, ranges and
validation. Pure Python (no rclpy) so the rules are testable on their own; `node.py` turns `ParamSpec`s into
`ParameterDescriptor`s with `FloatingPointRange` / `IntegerRange`.

Parameters are read once at start (declared read-only): a bad value stops the node with a message naming it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

import numpy as np

Value = Union[bool, int, float, str, list]

#: Radar x forward, y left, z up, mounted at the camera centre -> camera optical (x right, y down, z forward).
RADAR_TO_OPTICAL = [0.0, -1.0, 0.0, 0.0,
                    0.0, 0.0, -1.0, 0.0,
                    1.0, 0.0, 0.0, 0.0,
                    0.0, 0.0, 0.0, 1.0]

#: prior.source values the node adds to the pipeline's: the prior arrives on `prior/inverse_depth` and is attached to
#: the Frame (the pipeline then sees source "frame"; "frame" in the node means the same).
TOPIC_PRIOR_SOURCES = ("topic", "frame")


class ParameterError(ValueError):
    """One or more parameters are invalid; `errors` holds one message per parameter, each starting with its name."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("invalid parameter(s):\n  " + "\n  ".join(self.errors))


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter. range: inclusive (lo, hi) for int/float scalars; choices: allowed strings; length:
    required array length; pattern: regex a string must match (full match)."""

    name: str
    default: Value
    description: str
    range: Optional[tuple[float, float]] = None
    choices: Optional[tuple[str, ...]] = None
    length: Optional[int] = None
    pattern: Optional[str] = None


NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("device", "auto", "Where the networks run: auto (cuda when available, else cpu), cpu, cuda or cuda:N.",
              pattern=r"auto|cpu|cuda(:\d+)?"),
    ParamSpec("cpu_threads", 0, "torch intra-op threads on the CPU (0 = torch's default); 1 avoids thread "
              "oversubscription on a busy CPU.", range=(0, 256)),
    ParamSpec("sync.queue_size", 10, "Approximate-time sync: messages kept per input while waiting for a match.",
              range=(1, 1000)),
    ParamSpec("sync.slop", 0.05, "Approximate-time sync: largest stamp spread (s) of a matched radar/image/info set.",
              range=(0.0, 10.0)),
    ParamSpec("radar.field.x", "x", "PointCloud2 field holding radar x (m, radar frame)."),
    ParamSpec("radar.field.y", "y", "PointCloud2 field holding radar y (m, radar frame)."),
    ParamSpec("radar.field.z", "z", "PointCloud2 field holding radar z (m, radar frame)."),
    ParamSpec("radar.field.doppler", "doppler",
              "PointCloud2 field holding radial (Doppler) velocity in m/s; empty string = the radar has none."),
    ParamSpec("radar.field.power", "power",
              "PointCloud2 field holding power / RCS / magnitude; empty string = the radar has none."),
    ParamSpec("extrinsics.T_cam_radar", RADAR_TO_OPTICAL,
              "4x4 transform radar frame -> camera optical frame, 16 floats row-major (default: radar x forward, "
              "y left, z up at the camera centre).", length=16),
    ParamSpec("extrinsics.xyz_rpy", [0.0] * 6,
              "Alternative to T_cam_radar: x y z (m) roll pitch yaw (rad, R = Rz(yaw) Ry(pitch) Rx(roll)) of the "
              "radar in the camera optical frame; all zeros = unused, T_cam_radar applies.", length=6),
    ParamSpec("extrinsics.use_tf", False,
              "Look T_cam_radar up from TF (image frame_id <- radar frame_id at the radar stamp) instead; needs "
              "tf2_ros."),
    ParamSpec("publish_colored", True, "Publish depth/colored (rgb8 turbo colour map of the depth)."),
    ParamSpec("colored.max_depth", 80.0, "Depth (m) mapped to the far end of the depth/colored colour map.",
              range=(1.0, 1000.0)),
    ParamSpec("diagnostics_period", 1.0, "Seconds between /diagnostics messages.", range=(0.1, 60.0)),
)

#: Descriptions and ranges for the pipeline keys the node knows; other `PipelineConfig.to_flat()` keys get a generic
#: description (their validation is `PipelineConfig.from_flat`'s).
PIPELINE_DOCS: dict[str, tuple[str, Optional[tuple[float, float]]]] = {
    "recalibration.enabled": ("Run radar recalibration (paper III-A); false = raw projections as anchors.", None),
    "recalibration.checkpoint": ("Recalibration checkpoint (<name>.safetensors + <name>.json); empty = the "
                                 "shipped default.", None),
    "recalibration.threshold": ("Confidence threshold for keeping an anchor (paper Eq. 3); < 0 = the "
                                "checkpoint's own.", (-1.0, 1.0)),
    "recalibration.use_screening": ("Drop anchors whose confidence is below the threshold.", None),
    "recalibration.use_displacement": ("Move anchors by the predicted pixel displacement.", None),
    "recalibration.max_points": ("At most this many in-image radar points per frame go through the network (0 = no "
                                 "cap); a larger cloud is thinned on a pixel grid, the rest are not used as anchors "
                                 "and the frame is flagged radar_subsampled (WARN).", (0, 1_000_000)),
    "prior.source": ("Monocular prior: topic (prior/inverse_depth, 32FC1 relative inverse depth), "
                     "depth-anything-v2 (run in this node) or precomputed.", None),
    "prior.path": ("precomputed: the folder; depth-anything-v2: Hugging Face id or local folder ('' = default).",
                   None),
    "prior.fp16": ("Run the prior network in half precision (cuda only).", None),
    "align.min_depth": ("Output depth is clamped to [align.min_depth, align.max_depth] metres.", (0.0, 1000.0)),
    "align.max_depth": ("Output depth is clamped to [align.min_depth, align.max_depth] metres.", (0.0, 10000.0)),
    "align.use_previous_fit": ("Reuse the previous frame's global fit when a frame has too few anchors.", None),
    "refine.enabled": ("Local refinement with K-means clusters of anchors (paper Eq. 13-14).", None),
    "smooth.enabled": ("Edge-aware smoothing of the refined depth.", None),
}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def pipeline_specs(flat_defaults: Mapping[str, Value], prior_choices: Sequence[str] = ()) -> list[ParamSpec]:
    """ParamSpecs for `PipelineConfig.to_flat()` keys (the node's own `device` replaces the pipeline's)."""
    specs = []
    for key, default in flat_defaults.items():
        if key == "device":
            continue
        desc, rng = PIPELINE_DOCS.get(key, (f"Pipeline setting {key} (PipelineConfig, see docs/ros.md).", None))
        choices = None
        if key == "prior.source":
            choices = tuple(dict.fromkeys(list(prior_choices) + list(TOPIC_PRIOR_SOURCES)))
            if default == "frame":
                default = "topic"
        if isinstance(default, (tuple, list)):
            default = list(default)
        elif default is None:
            default = ""
        specs.append(ParamSpec(key, default, desc, range=rng, choices=choices))
    return specs


def all_specs(flat_defaults: Mapping[str, Value], prior_choices: Sequence[str] = ()) -> list[ParamSpec]:
    return list(NODE_PARAMS) + pipeline_specs(flat_defaults, prior_choices)


def validate_values(specs: Sequence[ParamSpec], values: Mapping[str, Value]) -> list[str]:
    """Check ranges, choices, patterns and array lengths; one message per bad parameter (naming it)."""
    errors = []
    for s in specs:
        if s.name not in values:
            continue
        v = values[s.name]
        if isinstance(s.default, float) and not _is_number(v):
            errors.append(f"{s.name}: expected a number, got {v!r}")
            continue
        if isinstance(s.default, float):
            v = float(v)
        if s.range is not None and _is_number(v):
            lo, hi = s.range
            if not (math.isfinite(float(v)) and lo <= v <= hi):
                errors.append(f"{s.name}: {v} is outside [{lo}, {hi}]")
        if s.choices is not None and v not in s.choices:
            errors.append(f"{s.name}: {v!r} is not one of {', '.join(s.choices)}")
        if s.pattern is not None and not (isinstance(v, str) and re.fullmatch(s.pattern, v)):
            errors.append(f"{s.name}: {v!r} is not valid (expected {s.pattern.replace('|', ' | ')})")
        if s.length is not None:
            if not isinstance(v, (list, tuple)) or len(v) != s.length:
                n = len(v) if isinstance(v, (list, tuple)) else "a scalar"
                errors.append(f"{s.name}: expected {s.length} numbers, got {n}")
            elif not all(_is_number(x) and math.isfinite(x) for x in v):
                errors.append(f"{s.name}: contains NaN, inf or non-numbers")
    for c in ("x", "y", "z"):
        if values.get(f"radar.field.{c}", c) == "":
            errors.append(f"radar.field.{c}: must name a PointCloud2 field (x, y and z are required)")
    return errors


def transform_from_values(values: Mapping[str, Value]) -> np.ndarray:
    """T_cam_radar (4x4) from extrinsics.xyz_rpy when it is not all zeros, else from extrinsics.T_cam_radar."""
    xyz_rpy = [float(x) for x in values.get("extrinsics.xyz_rpy", [0.0] * 6)]
    if any(xyz_rpy):
        from transforms3d.euler import euler2mat

        T = np.eye(4)
        T[:3, :3] = euler2mat(xyz_rpy[3], xyz_rpy[4], xyz_rpy[5], "sxyz")  # static axes: Rz(yaw) Ry(pitch) Rx(roll)
        T[:3, 3] = xyz_rpy[:3]
        return T
    return np.asarray(values.get("extrinsics.T_cam_radar", RADAR_TO_OPTICAL), dtype=np.float64).reshape(4, 4)


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; other values unchanged (cuda without a GPU is an error)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError([f"device: {device!r} requested but torch sees no CUDA device (use auto or cpu)"])
    return device


@dataclass
class NodeSettings:
    """Everything the node needs, checked: built by `settings_from_values`."""

    queue_size: int
    slop: float
    field_map: dict[str, str]
    T_cam_radar: np.ndarray
    use_tf: bool
    prior_topic: bool
    publish_colored: bool
    colored_max_depth: float
    diagnostics_period: float
    device: str
    cpu_threads: int = 0
    pipeline_flat: dict[str, Value] = field(default_factory=dict)


def settings_from_values(values: Mapping[str, Value], pipeline_keys: Sequence[str],
                         specs: Sequence[ParamSpec]) -> NodeSettings:
    """Validate and assemble. Raises ParameterError listing every bad parameter."""
    from ..frame import FrameError, _check_transform

    errors = validate_values(specs, values)
    T = None
    if not errors:
        try:
            T = _check_transform("extrinsics.T_cam_radar" if not any(values.get("extrinsics.xyz_rpy", []))
                                 else "extrinsics.xyz_rpy", transform_from_values(values))
        except FrameError as e:
            errors.append(str(e))
    if errors:
        raise ParameterError(errors)
    device = resolve_device(str(values["device"]))
    flat = {k: values[k] for k in pipeline_keys if k in values and k != "device"}
    prior_topic = flat.get("prior.source") in TOPIC_PRIOR_SOURCES
    if prior_topic:
        flat["prior.source"] = "frame"
    if "device" in pipeline_keys:
        flat["device"] = device
    return NodeSettings(
        queue_size=int(values["sync.queue_size"]), slop=float(values["sync.slop"]),
        field_map={c: str(values[f"radar.field.{c}"]) for c in ("x", "y", "z", "doppler", "power")},
        T_cam_radar=T, use_tf=bool(values["extrinsics.use_tf"]), prior_topic=prior_topic,
        publish_colored=bool(values["publish_colored"]), colored_max_depth=float(values["colored.max_depth"]),
        diagnostics_period=float(values["diagnostics_period"]), device=device,
        cpu_threads=int(values.get("cpu_threads", 0)), pipeline_flat=flat)


def read_ros_yaml(path: Union[str, Path], node_name: str = "racalnet_node") -> dict[str, Value]:
    """Flat {dotted key: value} from a ROS parameter file (`/**:` or `<node_name>:` -> `ros__parameters:`)."""
    import yaml

    data = yaml.safe_load(Path(path).read_text()) or {}
    out: dict[str, Value] = {}
    for key in ("/**", node_name, "/" + node_name):
        block = data.get(key)
        if isinstance(block, dict) and isinstance(block.get("ros__parameters"), dict):
            out.update(_flatten(block["ros__parameters"]))
    if not out:
        raise ValueError(f"{path}: no '/**: ros__parameters:' (or '{node_name}: ros__parameters:') block")
    return out


def _flatten(d: Mapping[str, Any], prefix: str = "") -> dict[str, Value]:
    out: dict[str, Value] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out
