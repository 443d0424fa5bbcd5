"""The node's parameters: every `PipelineConfig` key (racalnet_ros/config.py) plus the node's own keys, defined here
with their descriptions and allowed values in the same dataclass metadata: synchronisation, radar field names,
extrinsics, outputs and the worker's two-stage overlap. Pure Python (no rclpy), so the rules are testable on their own; ros/node.py declares one
read-only ROS parameter per key and hands the values to `settings_from_values`, which checks them with the config
module's rules: a bad value (or an unknown key) gets the same one-line message as on the command line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..config import ConfigError, PipelineConfig, flat_fields, setting, unknown_key, with_values

#: Radar x forward, y left, z up, mounted at the camera centre -> camera optical (x right, y down, z forward).
RADAR_TO_OPTICAL = [0.0, -1.0, 0.0, 0.0,
                    0.0, 0.0, -1.0, 0.0,
                    1.0, 0.0, 0.0, 0.0,
                    0.0, 0.0, 0.0, 1.0]

#: Pipeline defaults that differ in the node: a robot usually has a GPU to pick, and the prior usually comes from
#: another node on prior/inverse_depth.
NODE_DEFAULTS: dict[str, Any] = {"device": "auto", "prior.source": "topic"}


@dataclass
class SyncSection:
    queue_size: int = setting(10, "Time sync: messages kept per input while waiting for a match.",
                              ge=1, le=1000)
    slop: float = setting(0.05, "Time sync: a matched radar / image / camera_info (/ prior) set spreads less than "
                                "this many seconds (approximate time); 0 = identical stamps only (exact time, "
                                "message_filters' TimeSynchronizer).", ge=0.0, le=10.0)


@dataclass
class RadarFieldSection:
    x: str = setting("x", "PointCloud2 field holding radar x (m, radar frame); required.")
    y: str = setting("y", "PointCloud2 field holding radar y (m, radar frame); required.")
    z: str = setting("z", "PointCloud2 field holding radar z (m, radar frame); required.")
    doppler: str = setting("doppler", "PointCloud2 field holding radial (Doppler) velocity in m/s; '' = the radar "
                                      "has none.")
    power: str = setting("power", "PointCloud2 field holding power / RCS / magnitude; '' = the radar has none.")


@dataclass
class RadarSection:
    field: RadarFieldSection = field(default_factory=RadarFieldSection)


@dataclass
class ExtrinsicsSection:
    T_cam_radar: list = setting(RADAR_TO_OPTICAL, "4x4 transform radar frame -> camera optical frame, 16 floats "
                                                  "row-major, rigid (default: radar x forward, y left, z up at the "
                                                  "camera centre).", length=16)
    xyz_rpy: list = setting([0.0] * 6, "Alternative to T_cam_radar: x y z (m) roll pitch yaw (rad, R = Rz(yaw) "
                                       "Ry(pitch) Rx(roll)) of the radar in the camera optical frame; all zeros = "
                                       "unused, T_cam_radar applies.", length=6)
    use_tf: bool = setting(False, "Look T_cam_radar up from TF (image frame_id <- radar frame_id at the radar stamp) "
                                  "instead; needs tf2_ros.")


@dataclass
class ColoredSection:
    max_depth: float = setting(80.0, "Depth (m) mapped to the far end of the depth/colored colour map.",
                               ge=1.0, le=1000.0)


@dataclass
class NodeConfig:
    """The node's own keys (everything else is PipelineConfig's)."""

    sync: SyncSection = field(default_factory=SyncSection)
    radar: RadarSection = field(default_factory=RadarSection)
    extrinsics: ExtrinsicsSection = field(default_factory=ExtrinsicsSection)
    publish_colored: bool = setting(True, "Publish depth/colored (rgb8 turbo colour map of the depth, with a "
                                          "colour bar).")
    colored: ColoredSection = field(default_factory=ColoredSection)
    diagnostics_period: float = setting(1.0, "Seconds between /diagnostics messages.", ge=0.1, le=60.0)
    pipeline_overlap: bool = setting(False, "Two worker threads: the recalibration network and the prior of frame "
                                            "t+1 run while frame t is aligned, refined, smoothed and published "
                                            "(meant for a GPU prior network; on 2 CPU cores it measured the same "
                                            "rate with more latency, docs/benchmarks/node.md); false = one thread, "
                                            "one frame at a time.")

    @property
    def field_map(self) -> dict[str, str]:
        """canonical radar column -> the cloud's field name ("" = not used)."""
        f = self.radar.field
        return {"x": f.x, "y": f.y, "z": f.z, "doppler": f.doppler, "power": f.power}

    def transform(self) -> np.ndarray:
        """T_cam_radar (4x4) from extrinsics.xyz_rpy when it is not all zeros, else from extrinsics.T_cam_radar."""
        e = self.extrinsics
        if any(e.xyz_rpy):
            from ..geometry import transform_from_xyz_rpy

            return transform_from_xyz_rpy(e.xyz_rpy)
        return np.asarray(e.T_cam_radar, dtype=np.float64).reshape(4, 4)

    def check(self) -> list[str]:
        from ..frame import FrameError, _check_transform

        errors = [f"radar.field.{c}: must name a PointCloud2 field (x, y and z are required)"
                  for c in ("x", "y", "z") if not self.field_map[c]]
        name = "extrinsics.xyz_rpy" if any(self.extrinsics.xyz_rpy) else "extrinsics.T_cam_radar"
        try:
            _check_transform(name, self.transform())
        except FrameError as e:
            errors.append(str(e))
        return errors


def parameter_defaults() -> dict[str, Any]:
    """{key: default} of every node parameter: the pipeline's keys (with NODE_DEFAULTS) then the node's own."""
    from ..config import to_flat

    return {**PipelineConfig().to_flat(), **NODE_DEFAULTS, **to_flat(NodeConfig())}


def parameter_fields() -> dict[str, Any]:
    """{key: dataclass Field} of every node parameter (descriptions and allowed values in the metadata)."""
    return {**flat_fields(PipelineConfig), **flat_fields(NodeConfig)}


@dataclass
class NodeSettings:
    """Everything the node needs, checked: built by `settings_from_values`."""

    pipeline: PipelineConfig
    node: NodeConfig
    T_cam_radar: np.ndarray

    @property
    def prior_topic(self) -> bool:
        """The prior arrives on prior/inverse_depth (prior.source topic / frame / synthetic)."""
        return self.pipeline.prior.from_frame


def settings_from_values(values: Mapping[str, Any]) -> NodeSettings:
    """Check the parameter values (declared ones and any unknown override) with the config module's rules. Raises
    ConfigError listing every unknown, mistyped or out-of-range key, one message each (the same text `--set` gives)."""
    pipeline_keys, node_keys = flat_fields(PipelineConfig), flat_fields(NodeConfig)
    errors = [unknown_key(k, list(pipeline_keys) + list(node_keys))
              for k in values if k not in pipeline_keys and k not in node_keys]
    pipe = node = None
    try:
        pipe = PipelineConfig.from_flat({**NODE_DEFAULTS, **{k: v for k, v in values.items() if k in pipeline_keys}})
    except ConfigError as e:
        errors += e.errors
    try:
        node = with_values(NodeConfig(), {k: v for k, v in values.items() if k in node_keys})
    except ConfigError as e:
        errors += e.errors
    if errors:
        raise ConfigError(errors)
    return NodeSettings(pipe, node, node.transform())


__all__ = ["NODE_DEFAULTS", "RADAR_TO_OPTICAL", "NodeConfig", "NodeSettings", "parameter_defaults",
           "parameter_fields", "settings_from_values"]
