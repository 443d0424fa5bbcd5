"""The package builds as a ROS 2 ament_python package with `colcon build` (colcon from PyPI here; a ROS 2 workspace
uses the same colcon) and installs what `ros2 run` / `ros2 launch` look for."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE_FILES = ["setup.py", "setup.cfg", "package.xml", "README.md", "LICENSE", "resource", "racalnet_ros", "launch",
                 "config", "rviz"]


def test_colcon_build_installs_executables_launch_config_rviz_and_checkpoint(tmp_path):
    pytest.importorskip("colcon_core")
    colcon = shutil.which("colcon") or str(Path(sys.executable).parent / "colcon")
    src = tmp_path / "ws" / "src" / "racalnet_ros"
    src.mkdir(parents=True)
    for name in PACKAGE_FILES:  # a copy, so the build never writes into the repository
        path = REPO_ROOT / name
        if path.is_dir():
            shutil.copytree(path, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(path, src / name)
    ws = tmp_path / "ws"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run([colcon, "build", "--packages-select", "racalnet_ros"], cwd=ws, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    install = ws / "install" / "racalnet_ros"
    share = install / "share" / "racalnet_ros"
    for rel in ["package.xml", "launch/racalnet.launch.py", "config/racalnet.yaml", "rviz/racalnet.rviz"]:
        assert (share / rel).is_file(), rel
    assert (install / "share" / "ament_index" / "resource_index" / "packages" / "racalnet_ros").is_file()
    for exe in ("racalnet_node", "racalnet"):  # where `ros2 run racalnet_ros <exe>` looks
        assert (install / "lib" / "racalnet_ros" / exe).is_file(), exe
    site = next(install.glob("lib/python3*/site-packages/racalnet_ros"))
    assert (site / "checkpoints" / "small_synthetic.safetensors").is_file()
    assert (site / "checkpoints" / "small_synthetic.json").is_file()
    assert (site / "ros" / "fastdds_localhost.xml").is_file()
