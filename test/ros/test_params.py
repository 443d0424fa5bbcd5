"""The node's parameters without ROS: the shipped config/racalnet.yaml is complete and valid, every
PipelineConfig key is a parameter with a description, bad values are rejected naming the parameter, and the
extrinsics parameters give the documented transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from racalnet_ros.pipeline import PipelineConfig
from racalnet_ros.ros.params import (NODE_PARAMS, ParameterError, all_specs, read_ros_yaml, settings_from_values,
                                     transform_from_values, validate_values)

CONFIG = Path(__file__).resolve().parents[2] / "config" / "racalnet.yaml"
FLAT = PipelineConfig().to_flat()
SPECS = all_specs(FLAT, ("frame", "precomputed", "depth-anything-v2"))


def defaults() -> dict:
    return {s.name: s.default for s in SPECS}


def test_every_pipeline_key_and_node_setting_is_a_described_parameter():
    names = [s.name for s in SPECS]
    assert len(names) == len(set(names))
    assert set(FLAT) <= set(names)  # "device" is shared: the node's own, with "auto"
    assert all(s.description for s in SPECS)
    for required in ("device", "sync.queue_size", "sync.slop", "radar.field.x", "radar.field.doppler",
                     "radar.field.power", "extrinsics.T_cam_radar", "extrinsics.xyz_rpy", "extrinsics.use_tf",
                     "prior.source", "publish_colored", "diagnostics_period"):
        assert required in names
    assert "topic" in next(s for s in SPECS if s.name == "prior.source").choices


def test_the_shipped_config_names_only_known_parameters_and_is_valid():
    values = read_ros_yaml(CONFIG)
    known = {s.name for s in SPECS}
    assert set(values) <= known, f"unknown keys in {CONFIG.name}: {sorted(set(values) - known)}"
    merged = {**defaults(), **values}
    assert validate_values(SPECS, merged) == []
    s = settings_from_values(merged, list(FLAT), SPECS)
    assert s.device in ("cpu", "cuda")
    PipelineConfig.from_flat(s.pipeline_flat)  # the pipeline accepts the node's view of its keys
    assert PipelineConfig.from_yaml(CONFIG).prior.source == values["prior.source"]  # D's reader agrees


def test_defaults_are_valid_and_topic_prior_maps_to_frame_prior():
    s = settings_from_values({**defaults(), "device": "cpu"}, list(FLAT), SPECS)
    assert s.prior_topic and s.pipeline_flat["prior.source"] == "frame" and s.pipeline_flat["device"] == "cpu"
    assert s.field_map == {"x": "x", "y": "y", "z": "z", "doppler": "doppler", "power": "power"}


@pytest.mark.parametrize("name, value", [
    ("sync.slop", -0.1), ("sync.queue_size", 0), ("diagnostics_period", 0.0), ("recalibration.threshold", 1.5),
    ("prior.source", "oracle"), ("device", "gpu0"), ("extrinsics.T_cam_radar", [1.0] * 15),
    ("extrinsics.xyz_rpy", [0.0, 0.0, float("nan"), 0.0, 0.0, 0.0]), ("radar.field.z", ""),
    ("colored.max_depth", "far"),
])
def test_a_bad_value_is_rejected_naming_the_parameter(name, value):
    errors = validate_values(SPECS, {**defaults(), name: value})
    assert len(errors) == 1 and errors[0].startswith(name), errors
    with pytest.raises(ParameterError, match=name.replace(".", r"\.")):
        settings_from_values({**defaults(), name: value}, list(FLAT), SPECS)


def test_a_non_rigid_transform_is_rejected():
    T = np.eye(4)
    T[0, 1] = 0.5
    with pytest.raises(ParameterError, match="extrinsics.T_cam_radar"):
        settings_from_values({**defaults(), "device": "cpu", "extrinsics.T_cam_radar": T.reshape(-1).tolist()},
                             list(FLAT), SPECS)


def test_the_default_extrinsic_maps_radar_forward_to_optical_forward():
    T = transform_from_values(defaults())
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 0, 1])   # radar x (forward) -> camera z
    np.testing.assert_allclose(T[:3, :3] @ [0, 1, 0], [-1, 0, 0])  # radar y (left) -> camera -x
    np.testing.assert_allclose(T[:3, :3] @ [0, 0, 1], [0, -1, 0])  # radar z (up) -> camera -y


def test_xyz_rpy_overrides_the_matrix_with_R_equal_Rz_Ry_Rx():
    roll, pitch, yaw = 0.1, -0.2, 0.3
    T = transform_from_values({**defaults(), "extrinsics.xyz_rpy": [1.0, 2.0, 3.0, roll, pitch, yaw]})
    c, s = np.cos, np.sin
    Rx = np.array([[1, 0, 0], [0, c(roll), -s(roll)], [0, s(roll), c(roll)]])
    Ry = np.array([[c(pitch), 0, s(pitch)], [0, 1, 0], [-s(pitch), 0, c(pitch)]])
    Rz = np.array([[c(yaw), -s(yaw), 0], [s(yaw), c(yaw), 0], [0, 0, 1]])
    np.testing.assert_allclose(T[:3, :3], Rz @ Ry @ Rx, atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], [1, 2, 3])


def test_node_parameter_ranges_are_well_formed():
    for s in NODE_PARAMS:
        if s.range is not None:
            assert s.range[0] < s.range[1]
            assert s.range[0] <= s.default <= s.range[1], s.name
