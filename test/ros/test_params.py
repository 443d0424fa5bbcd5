"""The node's parameters without ROS: every PipelineConfig key and every node key is a parameter with a description,
the shipped config/racalnet.yaml names only known keys and is valid, bad values are rejected naming the parameter
(with the config module's messages), and the extrinsics parameters give the documented transforms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from racalnet_ros.config import ConfigError, PipelineConfig, bounds_text, read_yaml
from racalnet_ros.ros.params import (NODE_DEFAULTS, NodeConfig, parameter_defaults, parameter_fields,
                                     settings_from_values)

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"


def test_every_pipeline_key_and_node_setting_is_a_described_parameter():
    defaults, fields = parameter_defaults(), parameter_fields()
    assert set(defaults) == set(fields)
    assert set(PipelineConfig().to_flat()) <= set(defaults)
    assert all(f.metadata["description"] for f in fields.values())
    for required in ("device", "cpu_threads", "sync.queue_size", "sync.slop", "radar.field.x", "radar.field.doppler",
                     "radar.field.power", "extrinsics.T_cam_radar", "extrinsics.xyz_rpy", "extrinsics.use_tf",
                     "prior.source", "publish_colored", "diagnostics_period"):
        assert required in defaults
    assert "topic" in fields["prior.source"].metadata["choices"]
    assert defaults["device"] == "auto" and defaults["prior.source"] == "topic" == NODE_DEFAULTS["prior.source"]


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_the_shipped_config_names_only_known_parameters_and_is_valid(path):
    values, ros = read_yaml(path)
    assert ros
    assert set(values) <= set(parameter_defaults()), f"unknown keys in {path.name}"
    s = settings_from_values(values)
    assert s.pipeline.device == "auto" and s.pipeline.prior.source == values["prior.source"]
    assert PipelineConfig.from_yaml(path).prior.source == values["prior.source"]  # the CLI's reader agrees


def test_defaults_are_valid_and_the_topic_prior_comes_with_the_frame():
    s = settings_from_values({})
    assert s.prior_topic and s.pipeline.prior.source == "topic" and s.pipeline.prior.from_frame
    assert s.node.field_map == {"x": "x", "y": "y", "z": "z", "doppler": "doppler", "power": "power"}


@pytest.mark.parametrize("name, value", [
    ("sync.slop", -0.1), ("sync.queue_size", 0), ("diagnostics_period", 0.0), ("recalibration.threshold", 1.5),
    ("prior.source", "oracle"), ("device", "gpu0"), ("extrinsics.T_cam_radar", [1.0] * 15),
    ("extrinsics.xyz_rpy", [0.0, 0.0, float("nan"), 0.0, 0.0, 0.0]), ("radar.field.z", ""),
    ("colored.max_depth", "far"), ("radar.field.y", True), ("cpu_threads", -1),
])
def test_a_bad_value_is_rejected_naming_the_parameter(name, value):
    with pytest.raises(ConfigError) as e:
        settings_from_values({name: value})
    assert len(e.value.errors) == 1 and e.value.errors[0].startswith(name), e.value.errors


def test_an_unknown_parameter_is_rejected_with_a_suggestion():
    with pytest.raises(ConfigError, match=r"unknown key 'sync\.slope' \(did you mean 'sync\.slop'\?\)"):
        settings_from_values({"sync.slope": 0.1})


def test_a_boolean_for_a_string_parameter_says_how_to_quote_it():
    with pytest.raises(ConfigError) as e:
        settings_from_values({"radar.field.y": True})
    assert "radar.field.y" in str(e.value) and """-p "radar.field.y:='y'\"""" in str(e.value)


def test_a_non_rigid_transform_is_rejected():
    T = np.eye(4)
    T[0, 1] = 0.5
    with pytest.raises(ConfigError, match="extrinsics.T_cam_radar"):
        settings_from_values({"extrinsics.T_cam_radar": T.reshape(-1).tolist()})


def test_the_default_extrinsic_maps_radar_forward_to_optical_forward():
    T = NodeConfig().transform()
    np.testing.assert_allclose(T[:3, :3] @ [1, 0, 0], [0, 0, 1])   # radar x (forward) -> camera z
    np.testing.assert_allclose(T[:3, :3] @ [0, 1, 0], [-1, 0, 0])  # radar y (left) -> camera -x
    np.testing.assert_allclose(T[:3, :3] @ [0, 0, 1], [0, -1, 0])  # radar z (up) -> camera -y


def test_xyz_rpy_overrides_the_matrix_with_R_equal_Rz_Ry_Rx():
    roll, pitch, yaw = 0.1, -0.2, 0.3
    T = settings_from_values({"extrinsics.xyz_rpy": [1.0, 2.0, 3.0, roll, pitch, yaw]}).T_cam_radar
    c, s = np.cos, np.sin
    Rx = np.array([[1, 0, 0], [0, c(roll), -s(roll)], [0, s(roll), c(roll)]])
    Ry = np.array([[c(pitch), 0, s(pitch)], [0, 1, 0], [-s(pitch), 0, c(pitch)]])
    Rz = np.array([[c(yaw), -s(yaw), 0], [s(yaw), c(yaw), 0], [0, 0, 1]])
    np.testing.assert_allclose(T[:3, :3], Rz @ Ry @ Rx, atol=1e-12)
    np.testing.assert_allclose(T[:3, 3], [1, 2, 3])


def test_parameter_ranges_are_well_formed_and_hold_their_defaults():
    defaults = parameter_defaults()
    for name, f in parameter_fields().items():
        m = f.metadata
        if m["ge"] is not None or m["gt"] is not None or m["le"] is not None:
            assert bounds_text(m), name
            lo = m["ge"] if m["ge"] is not None else m["gt"]
            if lo is not None and m["le"] is not None:
                assert lo < m["le"], name
        settings_from_values({name: defaults[name]})  # every default passes its own checks
