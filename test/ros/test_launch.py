"""The launch file and the rviz2 config: the launch file compiles and declares the documented arguments (always
checked, from its text); where launch_ros is installed it is also loaded and its description built."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LAUNCH = ROOT / "launch" / "racalnet.launch.py"
RVIZ = ROOT / "rviz" / "racalnet.rviz"
ARGUMENTS = {"params_file", "use_sim_time", "namespace", "rviz", "bag", "radar_topic", "image_topic",
             "camera_info_topic", "prior_topic"}


def declared_arguments(tree: ast.AST) -> set[str]:
    names = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "DeclareLaunchArgument":
            names.add(n.args[0].value)
    return names


def test_launch_file_compiles_and_declares_the_documented_arguments():
    src = LAUNCH.read_text()
    compile(src, str(LAUNCH), "exec")
    tree = ast.parse(src)
    assert declared_arguments(tree) == ARGUMENTS
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
    # remapped inputs are the node's relative topic names
    for topic in ("radar/points", "image", "camera_info", "prior/inverse_depth"):
        assert f'("{topic}", LaunchConfiguration(' in src
    # the files it points at exist and are installed by setup.py's data_files globs
    assert (ROOT / "config" / "racalnet.yaml").is_file() and RVIZ.is_file()


def test_rviz_config_shows_image_coloured_depth_and_anchors():
    cfg = yaml.safe_load(RVIZ.read_text())
    displays = {d["Name"]: d for d in cfg["Visualization Manager"]["Displays"]}
    topics = {d["Topic"]["Value"]: d["Class"] for d in displays.values() if "Topic" in d}
    assert topics == {"/camera/image": "rviz_default_plugins/Image", "/depth/colored": "rviz_default_plugins/Image",
                      "/anchors": "rviz_default_plugins/PointCloud2"}
    anchors = next(d for d in displays.values() if d.get("Topic", {}).get("Value") == "/anchors")
    assert anchors["Channel Name"] == "confidence"


def test_launch_description_builds_where_launch_ros_is_installed():
    pytest.importorskip("launch")
    pytest.importorskip("launch_ros")
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location("racalnet_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    assert isinstance(ld, LaunchDescription)
    args = {e.name for e in ld.entities if isinstance(e, DeclareLaunchArgument)}
    assert args == ARGUMENTS
