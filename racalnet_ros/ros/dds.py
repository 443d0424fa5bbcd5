"""Keep DDS on this machine: environment for every process that starts rclpy here (tests, demo, replay).

Each process group gets its own `ROS_DOMAIN_ID` and loopback-only discovery (`ROS_AUTOMATIC_DISCOVERY_RANGE=
LOCALHOST`), and Fast DDS loads `fastdds_localhost.xml`: a 32 MiB shared-memory segment (whole images over best-effort
QoS) plus UDPv4 bound to 127.0.0.1, no builtin transports. rcl logging needs a writable directory (`ROS_LOG_DIR`, else
`$HOME/.ros/log`), so one is provided when `HOME` is unset.

    env = local_ros_env(domain_id=42)            # full environment for subprocess.Popen(..., env=env)
    apply_local_ros_env(domain_id=42)            # same settings in this process; call before rclpy.init()

Domain ids: an explicit argument wins, then `RACALNET_ROS_DOMAIN_ID`; otherwise one is derived per pytest-xdist worker
(`PYTEST_XDIST_WORKER` = gwN, offset by a hash of the run's `PYTEST_XDIST_TESTRUNUID`, so workers of one run never
share a domain and two concurrent runs rarely do) or per process (pid). Ids stay in 1..100: ROS documents 0..101 as
safe with the default port mapping on Linux (higher ids reach the ephemeral port range).
"""

from __future__ import annotations

import os
import re
import tempfile
import zlib
from pathlib import Path
from typing import Mapping, MutableMapping, Optional, Union

#: The Fast DDS XML profile shipped as package data (setup.py package_data "ros/*.xml").
FASTDDS_PROFILE = Path(__file__).with_name("fastdds_localhost.xml")

DOMAIN_MIN = 1
DOMAIN_SPAN = 100  # ids DOMAIN_MIN .. DOMAIN_MIN + DOMAIN_SPAN - 1 = 1..100

#: Variables that would widen discovery beyond this machine or switch middleware behaviour; removed from the env.
_REMOVED = ("ROS_LOCALHOST_ONLY", "ROS_STATIC_PEERS", "ROS_DISCOVERY_SERVER", "ROS_SUPER_CLIENT",
            "RMW_FASTRTPS_USE_QOS_FROM_XML", "FASTDDS_BUILTIN_TRANSPORTS", "FASTRTPS_DEFAULT_PROFILES_FILE")


def default_domain_id(environ: Optional[Mapping[str, str]] = None, pid: Optional[int] = None) -> int:
    """A ROS domain id for this process: `RACALNET_ROS_DOMAIN_ID` if set, else one per pytest-xdist worker, else one
    per process id. Always in DOMAIN_MIN .. DOMAIN_MIN + DOMAIN_SPAN - 1."""
    env = os.environ if environ is None else environ
    explicit = env.get("RACALNET_ROS_DOMAIN_ID", "").strip()
    if explicit:
        return _check_domain_id(int(explicit), "RACALNET_ROS_DOMAIN_ID")
    worker = env.get("PYTEST_XDIST_WORKER", "")
    m = re.fullmatch(r"gw(\d+)", worker)
    if m:
        # crc32, not hash(): stable across processes (str hashes are salted per interpreter).
        run = env.get("PYTEST_XDIST_TESTRUNUID", "")
        seed = zlib.crc32(run.encode()) if run else 0
        return DOMAIN_MIN + (seed + int(m.group(1))) % DOMAIN_SPAN
    return DOMAIN_MIN + (os.getpid() if pid is None else pid) % DOMAIN_SPAN


def _check_domain_id(domain_id: int, what: str = "domain_id") -> int:
    if not 0 <= int(domain_id) <= 232:
        raise ValueError(f"{what}: ROS_DOMAIN_ID must be in 0..232, got {domain_id}")
    return int(domain_id)


def _fast_dds_2(env: Mapping[str, str]) -> bool:
    """True where Fast DDS 2.x is in use (Humble, Iron, Jazzy), which reads FASTRTPS_DEFAULT_PROFILES_FILE. On Fast
    DDS 3 (Kilted) that name triggers a deprecation warning from rmw_fastrtps, so it is only set where needed."""
    distro = env.get("ROS_DISTRO", "").strip().lower()
    if distro:
        return distro in ("humble", "iron", "jazzy")
    try:  # PyPI wheels (no ROS_DISTRO): ros-fastdds carries the Fast DDS version
        from importlib.metadata import PackageNotFoundError, version
        return int(version("ros-fastdds").split(".")[0]) < 3
    except (ImportError, PackageNotFoundError, ValueError):
        return True  # unknown install: set both names


def _settings(domain_id: Optional[int], log_dir: Union[str, os.PathLike, None],
              base: Mapping[str, str]) -> dict[str, str]:
    if domain_id is None:
        domain_id = default_domain_id(base)
    domain_id = _check_domain_id(domain_id)
    if not FASTDDS_PROFILE.is_file():
        raise FileNotFoundError(f"Fast DDS profile missing: {FASTDDS_PROFILE} (package data not installed?)")
    profile = str(FASTDDS_PROFILE)
    out = {
        "ROS_DOMAIN_ID": str(domain_id),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        "FASTDDS_DEFAULT_PROFILES_FILE": profile,   # Fast DDS >= 3 (Kilted and newer)
    }
    if _fast_dds_2(base):
        out["FASTRTPS_DEFAULT_PROFILES_FILE"] = profile  # Fast DDS 2.x (Humble, Jazzy) reads only this name
    if log_dir is not None:
        out["ROS_LOG_DIR"] = str(log_dir)
    elif not base.get("ROS_LOG_DIR") and not base.get("HOME"):
        out["ROS_LOG_DIR"] = str(Path(tempfile.gettempdir()) / f"racalnet_ros_log_{os.getuid()}")
    if "ROS_LOG_DIR" in out:
        Path(out["ROS_LOG_DIR"]).mkdir(parents=True, exist_ok=True)
    return out


def local_ros_env(domain_id: Optional[int] = None, log_dir: Union[str, os.PathLike, None] = None,
                  base: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """A complete environment for a subprocess that uses ROS 2: `base` (default os.environ) plus loopback-only DDS
    on `domain_id` (default: `default_domain_id()`), Fast DDS with the localhost profile, and a log directory."""
    env = dict(os.environ if base is None else base)
    for k in _REMOVED:
        env.pop(k, None)
    env.update(_settings(domain_id, log_dir, env))
    return env


def apply_local_ros_env(domain_id: Optional[int] = None, log_dir: Union[str, os.PathLike, None] = None,
                        environ: Optional[MutableMapping[str, str]] = None) -> dict[str, str]:
    """Set the same settings in this process (must run before `rclpy.init()`). Returns the variables set."""
    env = os.environ if environ is None else environ
    for k in _REMOVED:
        env.pop(k, None)
    settings = _settings(domain_id, log_dir, env)
    env.update(settings)
    return settings
