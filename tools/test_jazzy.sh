#!/usr/bin/env bash
# `make test-jazzy`: the node-level suite on ROS 2 Jazzy's real rclpy (7.1.x, Fast DDS 2).
#
# Builds .venv-jazzy (Python 3.12 + PyPI's ros-jazzy-* wheels, tools/requirements-jazzy.txt,
# with Ubuntu 24.04's numpy 1.26.4: tools/constraints-ubuntu2404.txt) and its own colcon
# install in .build/jazzy, then runs the tests given (default: JAZZY_TESTS below) with
# ROS_DISTRO=jazzy, which selects the Fast DDS 2 loopback profile
# (config/fastdds_loopback_fastdds2.xml). Python 3.12 is found like tools/test_other_python.sh
# does (python3.12 on PATH, else pyenv); without it this FAILS: CI must not pass without
# having run Jazzy.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

py=
cands=(python3.12)
# pyenv's interpreters, also where pyenv itself is not on PATH (a clean `env -i` shell).
pyenv_root=$(pyenv root 2> /dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for p in "$pyenv_root"/versions/3.12.*/bin/python3.12; do if [[ -x $p ]]; then cands+=("$p"); fi; done
for c in "${cands[@]}"; do
  # pyenv shims exist on PATH even when they cannot run: try it.
  if "$c" -c 'import sys, venv' > /dev/null 2>&1; then py=$(command -v "$c" || echo "$c"); break; fi
done
if [[ -z $py ]]; then
  echo "test-jazzy: FAILED: no working python3.12 (tried: ${cands[*]}); Jazzy's wheels are cp312" >&2
  exit 1
fi
echo "== Jazzy leg with $py"
start=$SECONDS
PIP_CONSTRAINT=$REPO/tools/constraints-ubuntu2404.txt REQ=$REPO/tools/requirements-jazzy.txt \
  PYTHON=$py VENV=$REPO/.venv-jazzy BUILD=$REPO/.build/jazzy NO_TORCH=1 RAY=0 "$REPO/tools/setup.sh"
echo "== Jazzy venv + colcon build: $(( SECONDS - start )) s"
SEGFORMER_ROS_DISTRO=jazzy SEGFORMER_ROS_VENV=$REPO/.venv-jazzy \
  SEGFORMER_ROS_INSTALL=$REPO/.build/jazzy/colcon/install "$REPO/tools/run_tests.sh" "$@"
echo "== Jazzy leg total: $(( SECONDS - start )) s"
