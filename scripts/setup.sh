#!/usr/bin/env bash
# Set up everything racalnet_ros needs on a fresh Debian/Ubuntu machine with Python >= 3.10, idempotently:
# system libraries (libusb for Open3D), a venv at $RACALNET_VENV (default .venv), the package with its ROS 2 wheels
# (PyPI ros-* Kilted wheels) and test extras. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${RACALNET_VENV:-.venv}
PY=${PYTHON:-python3}

need_apt=()
ldconfig -p 2>/dev/null | grep 'libusb-1.0.so.0' >/dev/null || need_apt+=(libusb-1.0-0)  # no grep -q: with pipefail its early exit fails the pipe
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "[setup] installing system packages: ${need_apt[*]}"
  $SUDO apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating venv $VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip setuptools wheel
fi
stamp="$VENV/.racalnet-installed"
if [ ! -f "$stamp" ] || [ setup.py -nt "$stamp" ]; then
  echo "[setup] installing racalnet_ros[ros,test] into $VENV (first time: torch is large, a few minutes)"
  "$VENV/bin/pip" install -q -e '.[ros,test]'
  touch "$stamp"
fi
echo "[setup] ready: $VENV"
