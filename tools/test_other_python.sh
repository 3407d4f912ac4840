#!/usr/bin/env bash
# `make test-py310` / `make test-py312`: build a separate venv + colcon
# install for another Python (without torch/transformers: the local torch
# wheel is cp311 only) and run the tests there. Skips (exit 0) with a message
# when that interpreter is not available.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ver=${1:?usage: $0 3.10|3.12}
tag=py${ver/./}
shift

py=
cands=("python$ver")
# pyenv's interpreters, also where pyenv itself is not on PATH (a clean `env -i` shell).
pyenv_root=$(pyenv root 2> /dev/null || echo "${PYENV_ROOT:-$HOME/.pyenv}")
for p in "$pyenv_root"/versions/"$ver".*/bin/python"$ver"; do if [[ -x $p ]]; then cands+=("$p"); fi; done
for c in "${cands[@]}"; do
  # pyenv shims exist on PATH even when they cannot run: try it.
  if "$c" -c 'import sys, venv' > /dev/null 2>&1; then py=$(command -v "$c" || echo "$c"); break; fi
done
if [[ -z $py ]]; then
  echo "SKIP: no working python$ver found (tried: ${cands[*]})"
  exit 0
fi
echo "== using $py"
PYTHON=$py VENV=$REPO/.venv-$tag BUILD=$REPO/.build/$tag NO_TORCH=1 RAY=0 "$REPO/tools/setup.sh"
SEGFORMER_ROS_VENV=$REPO/.venv-$tag SEGFORMER_ROS_INSTALL=$REPO/.build/$tag/colcon/install \
  "$REPO/tools/run_tests.sh" "$@"
