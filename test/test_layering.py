"""The core never imports rclpy or ROS message packages: only racalnet_ros.ros (and the node entry point, the ROS
subcommands and the node benchmark, which import it lazily) may. Checked on the source, so a stray top-level import
anywhere in the core fails here even on a machine with ROS installed."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "racalnet_ros"
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "diagnostic_msgs", "rosgraph_msgs",
               "builtin_interfaces", "message_filters", "tf2_ros", "rcl_interfaces")
ALLOWED = {"ros", "node.py"}  # racalnet_ros/ros/ and racalnet_ros/node.py


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """(module, line, top_level) of every import in a file."""
    tree = ast.parse(path.read_text(), str(path))
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno, id(node) in top))
    return out


def test_core_modules_never_import_ros():
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] in ALLOWED:
            continue
        lazy_ok = rel.parts[0] in ("cli", "bench")  # ROS subcommands / node bench import ROS inside functions
        for module, line, top_level in _imports(path):
            if module.split(".")[0] in ROS_MODULES and (top_level or not lazy_ok):
                offenders.append(f"{rel}:{line} imports {module}")
    assert not offenders, "\n".join(offenders)


def test_core_modules_never_import_the_ros_layer_at_top_level():
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] in ALLOWED:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if isinstance(node, ast.ImportFrom) and (
                    (node.level > 0 and (node.module or "").split(".")[0] == "ros")
                    or (node.level == 0 and (node.module or "").startswith("racalnet_ros.ros"))):
                offenders.append(f"{rel}:{node.lineno}")
    assert not offenders, "\n".join(offenders)
