"""The shipped configuration works under real rcl (issue 8 item 1): every YAML under config/ is loaded by the real
node exactly as `ros2 launch racalnet_ros racalnet.launch.py` passes it (the file, then the launch file's own
`use_sim_time` in a `/racalnet_node: ros__parameters` file, node name racalnet_node) and the node reaches ready.
rcl parses parameters as YAML 1.1: `-p radar.field.y:=y` is a boolean and is rejected with one line that names the
parameter and says how to quote it; quoted, it is accepted. And a bad key given as a ROS parameter gets the same
message as on the command line (test/test_config.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from racalnet_ros.ros.harness import NodeProcess

pytest.importorskip("rclpy")
pytestmark = [pytest.mark.ros, pytest.mark.timeout(300)]

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "config").glob("*.yaml"))
#: what launch/racalnet.launch.py adds besides params_file (launch_ros writes dict parameters to a file like this)
LAUNCH_DEFAULTS = {"/racalnet_node": {"ros__parameters": {"use_sim_time": False}}}


def node(tmp_path, ros_domain_id, *args: str, files=()) -> NodeProcess:
    return NodeProcess(None, log_dir=tmp_path, domain_id=ros_domain_id, params_files=files,
                       args=("-r", "__node:=racalnet_node", *args), cwd=REPO)


def fatal_line(proc: NodeProcess) -> str:
    rc = proc.wait(timeout=120)
    out = proc.output()
    assert rc == 2 and "Traceback" not in out, out
    (line,) = [ln for ln in out.splitlines() if "FATAL" in ln]
    return line


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_is_loaded_by_the_real_node_as_ros2_launch_passes_it(path, tmp_path, ros_domain_id):
    launch = tmp_path / "launch_params.yaml"
    launch.write_text(yaml.dump(LAUNCH_DEFAULTS, default_flow_style=False))
    with node(tmp_path, ros_domain_id, "-p", "prior.source:=topic", files=[path, launch]) as proc:
        proc.wait_ready(180)
        assert "prior/inverse_depth" in proc.output()


def test_an_unquoted_y_on_the_command_line_is_rejected_naming_the_parameter_and_the_quoting(tmp_path, ros_domain_id):
    with node(tmp_path, ros_domain_id, "-p", "prior.source:=topic", "-p", "radar.field.y:=y") as proc:
        line = fatal_line(proc)
    assert "radar.field.y: expected a string, got the boolean true" in line
    assert """-p "radar.field.y:='y'\"""" in line


def test_a_quoted_y_on_the_command_line_is_accepted(tmp_path, ros_domain_id):
    with node(tmp_path, ros_domain_id, "-p", "prior.source:=topic", "-p", "radar.field.y:='y'",
              "-p", "recalibration.enabled:=false") as proc:
        proc.wait_ready(180)


@pytest.mark.parametrize("key, value, message", [(k, v, m) for k, v, _, m in __import__("test_config").BAD_KEYS],
                         ids=__import__("test_config").IDS)
def test_a_bad_key_as_a_ros_parameter_gets_the_cli_message(key, value, message, tmp_path, ros_domain_id):
    params = tmp_path / "bad.yaml"
    params.write_text(f"/**:\n  ros__parameters:\n    {key}: {value}\n")
    with node(tmp_path, ros_domain_id, files=[params]) as proc:
        assert fatal_line(proc).endswith(f"FATAL: {message}")
