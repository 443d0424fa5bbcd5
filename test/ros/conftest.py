"""ROS test setup: every pytest-xdist worker gets its own ROS_DOMAIN_ID, loopback-only discovery and the package's
Fast DDS profile (racalnet_ros.ros.dds), set here before any test imports rclpy. Fixtures start the node as a
subprocess on the same domain (racalnet_ros.ros.harness, the harness the CLI uses) and give tests an rclpy node to
publish and subscribe with."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Optional

import pytest

from racalnet_ros.ros.dds import apply_local_ros_env
from racalnet_ros.ros.harness import NodeProcess

apply_local_ros_env()  # per worker: domain from PYTEST_XDIST_WORKER (+ run id), or from the pid without xdist

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def ros_domain_id() -> int:
    return int(os.environ["ROS_DOMAIN_ID"])


@pytest.fixture(scope="module")
def ros_node():
    """An rclpy node (own context) for publishing test inputs and collecting outputs; shut down after the module."""
    rclpy = pytest.importorskip("rclpy")
    from rclpy.context import Context

    ctx = Context()
    rclpy.init(context=ctx)
    node = rclpy.create_node(f"racalnet_test_{os.getpid()}", context=ctx)
    try:
        yield node
    finally:
        node.destroy_node()
        rclpy.shutdown(context=ctx)


def spin_until(node, predicate: Callable[[], bool], timeout: float, step: Optional[Callable[[], None]] = None,
               period: float = 0.1) -> bool:
    """Spin `node` until predicate() is true or `timeout` s pass; `step()` is called every `period` s (e.g. to
    publish). Returns predicate()."""
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor(context=node.context)
    ex.add_node(node)
    try:
        end = time.monotonic() + timeout
        next_step = 0.0
        while time.monotonic() < end:
            if predicate():
                return True
            if step is not None and time.monotonic() >= next_step:
                step()
                next_step = time.monotonic() + period
            ex.spin_once(timeout_sec=0.02)
        return predicate()
    finally:
        ex.remove_node(node)
        ex.shutdown()


def _node_factory(log_dir: Path, domain_id: int):
    procs: list[NodeProcess] = []

    def _start(params: dict, args: tuple[str, ...] = ()) -> NodeProcess:
        p = NodeProcess(params, log_dir=log_dir, domain_id=domain_id, args=args, cwd=REPO_ROOT).start()
        procs.append(p)
        return p

    return _start, procs


@pytest.fixture
def start_node(tmp_path, ros_domain_id):
    """Factory: start_node({"param": value, ...}, args=(ROS arguments...)) -> a started harness NodeProcess; every
    node is stopped after the test."""
    start, procs = _node_factory(tmp_path, ros_domain_id)
    yield start
    for p in procs:
        p.stop()


@pytest.fixture(scope="module")
def start_module_node(tmp_path_factory, ros_domain_id):
    """Like start_node, but the nodes live until the end of the test module (one node shared by several tests)."""
    start, procs = _node_factory(tmp_path_factory.mktemp("racalnet_node"), ros_domain_id)
    yield start
    for p in procs:
        p.stop()


@pytest.fixture(scope="session")
def spin():
    """spin_until(node, predicate, timeout, step=None, period=0.1) -> bool."""
    return spin_until
