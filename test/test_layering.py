"""The core never imports rclpy or ROS message packages: only racalnet_ros.ros (and the node entry point, the ROS
subcommands and the node benchmark, which import it lazily) may. Checked on the source, so a stray top-level import
anywhere in the core fails here even on a machine with ROS installed."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "racalnet_ros"
ROS_MODULES = ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "diagnostic_msgs", "rosgraph_msgs",
               "builtin_interfaces", "message_filters", "tf2_ros", "rcl_interfaces")
ALLOWED = {"ros", "node.py"}  # racalnet_ros/ros/ and racalnet_ros/node.py (the `python -m racalnet_ros.node` entry)


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


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imported_modules(path: Path) -> set[str]:
    """Package modules a file imports anywhere (top level or inside functions), resolved to dotted names."""
    tree = ast.parse(path.read_text(), str(path))
    me = _module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("racalnet_ros")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("racalnet_ros"):
                mod = node.module
            else:
                continue
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names}  # `from . import convert` names a module
    return out


def _closure(roots: list[str]) -> set[str]:
    files = {_module_name(p): p for p in PKG.rglob("*.py")}
    seen, todo = set(), list(roots)
    while todo:
        m = todo.pop()
        if m in seen or m not in files:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        todo += list(_imported_modules(files[m]))
    return seen


def test_inference_never_imports_training_code():
    """The node, the pipeline and the Recalibrator reach preprocessing (recalibration/preprocess.py) but no
    training module, directly or through anything they import."""
    training = {"racalnet_ros.recalibration.train", "racalnet_ros.recalibration.data",
                "racalnet_ros.recalibration.loss", "racalnet_ros.recalibration.labels"}
    reached = _closure(["racalnet_ros.ros.node", "racalnet_ros.pipeline", "racalnet_ros.recalibration.recalibrator"])
    assert "racalnet_ros.recalibration.preprocess" in reached
    assert not reached & training, sorted(reached & training)


#: attribute names that only a ROS message decoder touches
ROS_MESSAGE_FIELDS = ("point_step", "row_step", "is_bigendian", "is_dense", "encoding", "deserialize_cdr",
                      "serialize_cdr")


def test_nothing_outside_ros_decodes_ros_messages():
    """Message fields (PointCloud2 layout, Image encoding, CDR) are read only in racalnet_ros/ros/ (convert.py is the
    one codec); everything else gets numpy arrays and Frames."""
    offenders = []
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if rel.parts[0] == "ros":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Attribute) and (node.attr in ROS_MESSAGE_FIELDS or (
                    node.attr == "fields" and isinstance(node.value, ast.Name) and node.value.id.endswith("msg"))):
                offenders.append(f"{rel}:{node.lineno} .{node.attr}")
    assert not offenders, "\n".join(offenders)
