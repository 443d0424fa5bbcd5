"""Run racalnet_node as a process: the one harness used by `racalnet evaluate-bag`, `racalnet demo`, the live node
benchmark and the tests.

    with NodeProcess({"prior.source": "topic", "device": "cpu"}, log_dir=out, domain_id=17) as node:
        node.wait_ready(120)          # the node logged "racalnet_node ready" (NodeError with its log if it exited)
        ...                           # publish / subscribe on the same ROS_DOMAIN_ID
                                      # stopped on exit: SIGINT, then SIGTERM, then SIGKILL to its process group

Parameters go in a ROS parameter file written from a flat {dotted key: value} dict (nested with the config
module's `nest`, `/**: ros__parameters:`), exactly as `ros2 launch` passes them; string values are single-quoted so
rcl's YAML 1.1 parser never turns "y" or "on" into a boolean. Further `--params-file`s, remappings and ROS
arguments are passed as given. The node runs in its own process group (its children go with it), on loopback DDS
(racalnet_ros.ros.dds), with stdout and stderr in one log file. rclpy is not imported here.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

import yaml

from ..config import nest
from ..errors import RacalnetError
from .dds import default_domain_id, local_ros_env

READY = "racalnet_node ready"
_COUNTER = itertools.count()


class NodeError(RacalnetError, RuntimeError):
    """The node did not start, died, or answered nothing; the message gives its last words and the log file."""


class _Quoted(str):
    """A string value written single-quoted."""


yaml.SafeDumper.add_representer(_Quoted, lambda d, s: d.represent_scalar("tag:yaml.org,2002:str", str(s), style="'"))


def _quoted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _quoted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_quoted(v) for v in value]
    return _Quoted(value) if isinstance(value, str) else value


def write_params_file(path: str | Path, params: Mapping[str, Any]) -> Path:
    """Write flat dotted parameters as a ROS 2 parameter file (`/**: ros__parameters:` with nested keys; strings
    single-quoted, so rcl reads them as strings whatever they spell)."""
    path = Path(path)
    path.write_text(yaml.safe_dump({"/**": {"ros__parameters": _quoted(nest(params))}}, sort_keys=False))
    return path


def last_words(log: str) -> str:
    """The line that says why a node stopped: its FATAL line, else the last non-empty line."""
    lines = [ln.strip() for ln in log.splitlines() if ln.strip()]
    fatal = [ln for ln in lines if "FATAL" in ln]
    return (fatal or lines or ["(no output)"])[-1]


class NodeProcess:
    """racalnet_node (`python -m racalnet_ros.node --ros-args ...`) as a subprocess; see the module docstring.

    params: flat {dotted key: value} written to a parameter file in `log_dir`; params_files: more parameter files
    (applied first, so `params` win); remaps: "from:=to" remappings; args: further ROS arguments (e.g.
    ("-r", "__ns:=/robot")); env: the environment (default: loopback DDS on `domain_id`, logs in `log_dir`);
    log_path: default <log_dir>/racalnet_node_<n>.log; pid_file: written at start; params_path: where the parameter
    file goes (default: in log_dir).
    """

    def __init__(self, params: Optional[Mapping[str, Any]] = None, *, log_dir: str | Path,
                 domain_id: Optional[int] = None, params_files: Sequence[str | Path] = (),
                 remaps: Sequence[str] = (), args: Sequence[str] = (), env: Optional[Mapping[str, str]] = None,
                 log_path: str | Path | None = None, pid_file: str | Path | None = None,
                 params_path: str | Path | None = None, cwd: str | Path | None = None) -> None:
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        n = next(_COUNTER)
        stem = f"racalnet_node_{os.getpid()}_{n}"
        self.params = dict(params or {})
        files = [Path(f) for f in params_files]
        if self.params:
            files.append(write_params_file(params_path or self.log_dir / f"{stem}_params.yaml", self.params))
        self.cmd = [sys.executable, "-m", "racalnet_ros.node", "--ros-args"]
        for f in files:
            self.cmd += ["--params-file", str(f)]
        for r in remaps:
            self.cmd += ["-r", r]
        self.cmd += list(args)
        if env is None:
            env = local_ros_env(default_domain_id() if domain_id is None else domain_id, self.log_dir)
        self.env = dict(env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")  # the log is current when we read it
        self.log_path = Path(log_path) if log_path else self.log_dir / f"{stem}.log"
        self.pid_file = Path(pid_file) if pid_file else None
        self.cwd = cwd
        self.proc: Optional[subprocess.Popen] = None
        self._log = None

    # ------------------------------------------------------------------------------------------------------------
    def start(self) -> "NodeProcess":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.cwd)
        if self.pid_file is not None:
            self.pid_file.write_text(f"{self.proc.pid}\n")
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def output(self) -> str:
        """Everything the node printed so far."""
        if self._log is not None and not self._log.closed:
            self._log.flush()
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-n:])

    def wait(self, timeout: float) -> int:
        """Wait for the node to exit; its exit code (subprocess.TimeoutExpired after `timeout` s)."""
        return self.proc.wait(timeout=timeout)

    def check_alive(self) -> None:
        """NodeError naming the exit code, the node's last words and the log file when it has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise NodeError(f"racalnet_node exited with code {self.proc.returncode}: {last_words(self.output())} "
                            f"(log: {self.log_path})")

    def wait_ready(self, timeout: float, poll: float = 0.1) -> None:
        """Return once the node logged that it is ready; NodeError if it exits first or `timeout` s pass."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if READY in self.output():
                return
            self.check_alive()
            time.sleep(poll)
        self.check_alive()
        raise NodeError(f"racalnet_node was not ready within {timeout:.0f} s (log: {self.log_path}): "
                        f"{last_words(self.output())}")

    def stop(self, timeout: float = 10.0) -> Optional[int]:
        """SIGINT the process group, then SIGTERM, then SIGKILL; returns the exit code. Idempotent."""
        if self.proc is None:
            return None
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        try:  # children left in the group (none expected) go too
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._log is not None:
            self._log.close()
        return self.proc.poll()

    def __enter__(self) -> "NodeProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit(143) in this (main) process, so that `finally` blocks and context managers
    that stop node processes run when a command is terminated."""
    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


__all__ = ["NodeError", "NodeProcess", "READY", "last_words", "terminate_on_sigterm", "write_params_file"]
