"""The launch file and the rviz2 config: the launch file compiles and declares the documented arguments (always
checked, from its text); where launch and launch_ros are importable (a ROS install, or RACALNET_LAUNCH_PATH: their
source folders, os.pathsep-separated) its description is built, and it is run with the real launch.LaunchService
against a fake install prefix: an optional part that cannot start (rviz2 missing, a bag that cannot be replayed, a
bag path with a quote) never leaves racalnet_node running without its launch parent."""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
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


def test_the_bag_path_is_never_evaluated_as_python():
    src = LAUNCH.read_text()
    assert "PythonExpression" not in src  # a quote in bag:= broke the launch: eval("'/x/it's' != ''")


LAUNCH_PATH = [p for p in os.environ.get("RACALNET_LAUNCH_PATH", "").split(os.pathsep) if p]


@pytest.fixture(scope="module")
def launch_importable():
    sys.path[:0] = [p for p in LAUNCH_PATH if p not in sys.path]
    for module in ("launch", "launch_ros"):
        try:
            importlib.import_module(module)
        except ImportError as exc:
            pytest.skip(f"{module} is not importable ({exc}): it comes with a ROS install and is not on PyPI; set "
                        "RACALNET_LAUNCH_PATH to the source folders of github.com/ros2/launch (launch/) and "
                        "ros2/launch_ros (launch_ros/) plus their pure-Python dependencies (osrf_pycommon, ...)")
    return True


def test_launch_description_builds_where_launch_ros_is_installed(launch_importable):
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument

    spec = importlib.util.spec_from_file_location("racalnet_launch", LAUNCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    ld = module.generate_launch_description()
    assert isinstance(ld, LaunchDescription)
    args = {e.name for e in ld.entities if isinstance(e, DeclareLaunchArgument)}
    assert args == ARGUMENTS


# ----------------------------------------------------------------------- the launch file run by launch.LaunchService
RUN_LAUNCH = """
import sys
from launch import LaunchDescription, LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
args = [tuple(a.split(":=", 1)) for a in sys.argv[2:]]
service = LaunchService()
service.include_launch_description(LaunchDescription([IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]), launch_arguments=args)]))
sys.exit(service.run())
"""


def fake_prefix(root: Path) -> Path:
    """What `colcon build` installs for racalnet_ros, as far as launch_ros looks: the ament index marker, the share
    folder and lib/racalnet_ros/racalnet_node (here a script running this checkout's node)."""
    prefix = root / "install"
    index = prefix / "share" / "ament_index" / "resource_index" / "packages"
    index.mkdir(parents=True)
    (index / "racalnet_ros").write_text("")
    share = prefix / "share" / "racalnet_ros"
    share.mkdir(parents=True)
    for d in ("config", "rviz", "launch"):
        (share / d).symlink_to(ROOT / d)
    lib = prefix / "lib" / "racalnet_ros"
    lib.mkdir(parents=True)
    exe = lib / "racalnet_node"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m racalnet_ros.node \"$@\"\n")
    exe.chmod(0o755)
    return prefix


class Launch:
    """`ros2 launch racalnet_ros racalnet.launch.py ARGS` as launch.LaunchService in a subprocess."""

    def __init__(self, tmp_path: Path, domain_id: int, *args: str):
        from racalnet_ros.ros.dds import local_ros_env
        env = local_ros_env(domain_id, tmp_path)
        env.update(AMENT_PREFIX_PATH=str(fake_prefix(tmp_path)),
                   PYTHONPATH=os.pathsep.join(LAUNCH_PATH + [str(ROOT)]),
                   PATH=os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                        if not (Path(p) / "ros2").exists()))  # no ros2 command: a plain venv
        self.log = open(tmp_path / "launch.log", "wb")
        self.path = tmp_path / "launch.log"
        self.proc = subprocess.Popen([sys.executable, "-c", RUN_LAUNCH, str(LAUNCH), *args], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if text in self.output() or self.proc.poll() is not None:
                return text in self.output()
            time.sleep(0.2)
        return False

    def node_pids(self) -> list[int]:
        return [int(p) for p in re.findall(r"\[racalnet_node-1\]: process started with pid \[(\d+)\]", self.output())]

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        for pid in self.node_pids():  # never leave one behind, whatever the test found
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()


def gone(pid: int, timeout: float = 30.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


TOPIC_PRIOR = "/**:\n  ros__parameters:\n    prior.source: 'topic'\n    device: 'cpu'\n"


@pytest.mark.ros
@pytest.mark.timeout(600)
def test_rviz_requested_but_not_installed_leaves_the_node_running_under_its_launch(launch_importable, tmp_path,
                                                                                   ros_domain_id):
    (tmp_path / "topic.yaml").write_text(TOPIC_PRIOR)
    launch = Launch(tmp_path, ros_domain_id, "rviz:=true", f"params_file:={tmp_path / 'topic.yaml'}")
    try:
        assert launch.wait_for("racalnet_node ready", 300), launch.output()[-3000:]
        assert "rviz2 is not installed" in launch.output() and launch.proc.poll() is None
        (pid,) = launch.node_pids()
        os.kill(launch.proc.pid, signal.SIGINT)  # Ctrl-C on the launch process alone
        assert launch.proc.wait(60) == 0 and gone(pid), launch.output()[-3000:]
    finally:
        launch.close()


@pytest.mark.ros
@pytest.mark.timeout(600)
@pytest.mark.parametrize("bag", ["/nowhere/it's a bag", "/nowhere/plain_bag"], ids=["quote", "plain"])
def test_a_bag_that_cannot_be_replayed_stops_the_launch_and_the_node(launch_importable, tmp_path, ros_domain_id,
                                                                      bag):
    (tmp_path / "topic.yaml").write_text(TOPIC_PRIOR)
    launch = Launch(tmp_path, ros_domain_id, f"bag:={bag}", f"params_file:={tmp_path / 'topic.yaml'}")
    try:
        rc = launch.proc.wait(300)
        out = launch.output()
        assert f"shutting down: bag:={bag} needs the ros2 command" in out or "bag replay failed" in out, out[-3000:]
        assert "Caught exception" not in out and rc == 0, out[-3000:]
        assert all(gone(pid) for pid in launch.node_pids()), out[-3000:]
    finally:
        launch.close()


@pytest.mark.ros
@pytest.mark.timeout(600)
def test_a_node_that_cannot_start_ends_the_launch(launch_importable, tmp_path, ros_domain_id):
    (tmp_path / "bad.yaml").write_text("/**:\n  ros__parameters:\n    sync.slop: -1.0\n")
    launch = Launch(tmp_path, ros_domain_id, f"params_file:={tmp_path / 'bad.yaml'}")
    try:
        launch.proc.wait(300)
        out = launch.output()
        assert "FATAL: sync.slop: -1" in out and "racalnet_node exited" in out or "was required" in out, out[-3000:]
        assert all(gone(pid) for pid in launch.node_pids())
    finally:
        launch.close()
