#!/usr/bin/env bash
# Lint + pytest in the environment of tools/ros_env.sh; used by `make test`.
# Extra arguments go to pytest. Exits non-zero if either failed, and treats
# "pytest collected no tests" (exit 5) as a failure.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
# shellcheck source=tools/ros_env.sh
source tools/ros_env.sh

echo "== flake8 (setup.cfg: ament style, pep257 docstrings)"
lint_rc=0
python -m flake8 setup.py segformer_ros/ benchmarks/ launch/ test/ tools/ || lint_rc=$?
[[ $lint_rc == 0 ]] && echo "flake8: clean"

echo "== pytest (ROS_DOMAIN_ID=$ROS_DOMAIN_ID, RMW=$RMW_IMPLEMENTATION, DDS on loopback)"
test_rc=0
python -m pytest -q -p no:cacheprovider "$@" || test_rc=$?
if [[ $test_rc == 5 ]]; then
  echo "pytest collected no tests: counting that as a failure" >&2
fi

if [[ $lint_rc != 0 ]]; then
  echo "FAILED: flake8 reported problems (exit $lint_rc)" >&2
fi
if [[ $lint_rc != 0 || $test_rc != 0 ]]; then
  exit 1
fi
