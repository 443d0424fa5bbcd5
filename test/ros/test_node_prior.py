"""racalnet_node and the Depth Anything V2 prior (issue 8 item 2): offline and not cached, the node stops at start
with one FATAL line naming the model and the alternatives (no retries, no traceback); Ctrl-C while the prior's
network loads ends the node cleanly (exit 130, no traceback, nothing of its process group left)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from racalnet_ros.ros.dds import local_ros_env
from racalnet_ros.ros.harness import NodeProcess, write_params_file

from test_prior_weights import SLOW_LOAD, UNREACHABLE, interrupt_when_loading
from test_priors import save_tiny_depth_anything

pytest.importorskip("rclpy")
pytestmark = [pytest.mark.ros, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]


def offline_env(tmp_path, domain_id) -> dict:
    env = local_ros_env(domain_id, tmp_path)
    env.update(HF_HOME=str(tmp_path / "hf_home"), HF_ENDPOINT=UNREACHABLE, PYTHONPATH=str(REPO))
    env.pop("HF_HUB_OFFLINE", None)
    return env


def test_offline_without_the_weights_the_node_stops_with_one_line(tmp_path, ros_domain_id):
    node = NodeProcess({"prior.source": "depth-anything-v2", "device": "cpu"}, log_dir=tmp_path,
                       env=offline_env(tmp_path, ros_domain_id), cwd=REPO).start()
    try:
        rc = node.wait(300)
    finally:
        node.stop()
    out = node.output()
    assert rc == 2 and "Traceback" not in out and "Retrying" not in out, out
    (line,) = [ln for ln in out.splitlines() if "FATAL" in ln]
    assert "depth-anything/Depth-Anything-V2-Small-hf" in line and "cannot be reached" in line
    assert "prior.source: topic" in line and "prior.path" in line and "precomputed:DIR" in line


def test_ctrl_c_while_the_node_loads_the_prior_exits_cleanly(tmp_path, ros_domain_id):
    tiny = save_tiny_depth_anything(tmp_path / "tiny_da")
    params = write_params_file(tmp_path / "params.yaml", {"prior.source": "depth-anything-v2",
                                                          "prior.path": str(tiny), "device": "cpu"})
    script = SLOW_LOAD + "from racalnet_ros.ros.node import main\nsys.exit(main(sys.argv))\n"
    rc, out = interrupt_when_loading([sys.executable, "-c", script, "--ros-args", "--params-file", str(params)],
                                     {**offline_env(tmp_path, ros_domain_id), "PYTHONFAULTHANDLER": "1"})
    assert rc == 130, out
    assert "interrupted during start-up" in out and "Traceback" not in out, out
