#!/usr/bin/env bash
# The README's main command. On a fresh machine: set everything up (scripts/setup.sh: venv + package + ROS 2 wheels),
# then run `racalnet demo`: synthetic rosbag2 -> racalnet_node on loopback DDS -> recorded outputs -> metrics and
# PNG report, whose path is printed last. Extra arguments go to `racalnet demo` (e.g. --frames 20 --device cuda;
# --real: the shared real Astyx frames instead of synthetic ones).
# Exits non-zero if anything fails; the node and every other process it started are stopped in all cases.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
VENV=${RACALNET_VENV:-.venv}
exec "$VENV/bin/python" -m racalnet_ros.cli demo "$@"
