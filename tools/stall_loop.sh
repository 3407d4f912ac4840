#!/usr/bin/env bash
# `make stall-loop`: issue 21's reproduction loop. Runs the cross-process node tests N times,
# each in a clean environment as CI runs them (env -i, then tools/ros_env.sh of the distro),
# quiet or under CPU load, and prints each run's result and time and the pass rate; one JSON
# line per loop is appended to .build/stall_loop.jsonl. Each run's log and pytest temp folder
# (node logs) stay in the /tmp/stall_loop.* folder printed.
#
#   tools/stall_loop.sh [--runs N] [--distro kilted|jazzy] [--load] [--checkout DIR] [TEST...]
#
# --load: one busy-looping process per core beside the tests (a loaded robot computer).
# --checkout DIR: run another checkout's tests and code (e.g. a worktree of an older commit
#   to measure the rate before a fix) with this checkout's venvs and builds.
# TEST defaults to the two cross-process tests that went silent on Jazzy before issue 21.
set -uo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=20 distro=kilted load=0 checkout=$REPO tests=()
while (( $# )); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --distro) distro=$2; shift 2 ;;
    --load) load=1; shift ;;
    --checkout) checkout=$(cd "$2" && pwd); shift 2 ;;
    -h|--help) sed -n 2,12p "$0"; exit 0 ;;
    *) tests+=("$1"); shift ;;
  esac
done
if (( ${#tests[@]} == 0 )); then
  tests=(test/test_node_cross_process.py)
fi
case $distro in
  kilted) venv=$REPO/.venv install=$REPO/.build/colcon/install ;;
  jazzy) venv=$REPO/.venv-jazzy install=$REPO/.build/jazzy/colcon/install ;;
  *) echo "stall-loop: expected --distro kilted or jazzy, got '$distro'" >&2; exit 2 ;;
esac
if [[ ! -x $venv/bin/python ]]; then
  echo "stall-loop: $venv missing: run make setup (kilted) or make test-jazzy once (jazzy)" >&2
  exit 2
fi
if [[ $checkout != "$REPO" ]]; then
  for d in .venv .venv-jazzy .build; do
    [[ -e $checkout/$d ]] || ln -s "$REPO/$d" "$checkout/$d"
  done
fi
burners=()
if (( load )); then
  for _ in $(seq "$(nproc)"); do
    python3 -c 'while True: pass' & burners+=($!)
  done
fi
trap '(( ${#burners[@]} )) && kill "${burners[@]}" 2> /dev/null' EXIT
logs=$(mktemp -d /tmp/stall_loop.XXXXXX)
passed=0 times=()
for i in $(seq "$runs"); do
  start=$(date +%s.%N)
  if env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="$HOME" CHECKOUT="$checkout" \
      DISTRO="$distro" VENV="$venv" INSTALL="$install" BASETEMP="$logs/tmp_$i" bash -c '
      cd "$CHECKOUT"
      if [[ $DISTRO == jazzy ]]; then
        export SEGFORMER_ROS_DISTRO=jazzy SEGFORMER_ROS_VENV=$VENV SEGFORMER_ROS_INSTALL=$INSTALL
      fi
      source tools/ros_env.sh > /dev/null
      exec python -m pytest -q -p no:cacheprovider --basetemp "$BASETEMP" "$@"' _ "${tests[@]}" \
      > "$logs/run_$i.log" 2>&1; then
    result=PASS; passed=$((passed + 1))
  else
    result=FAIL
  fi
  seconds=$(python3 -c "import time; print(f'{time.time() - $start:.1f}')")
  times+=("$seconds")
  echo "$distro run $i/$runs: $result in $seconds s (log: $logs/run_$i.log)"
done
summary="$distro$( (( load )) && echo ', loaded'): $passed of $runs passed; run times ${times[*]} s"
echo "$summary"
mkdir -p "$REPO/.build"
python3 - "$REPO/.build/stall_loop.jsonl" "$distro" "$load" "$runs" "$passed" "$checkout" \
  "$(git -C "$checkout" rev-parse --short HEAD 2> /dev/null)" "${times[@]}" <<'EOF'
import json, sys, time
path, distro, load, runs, passed, checkout, commit, *times = sys.argv[1:]
with open(path, 'a') as f:
    f.write(json.dumps({'date': time.strftime('%Y-%m-%dT%H:%M:%S'), 'distro': distro,
                        'loaded': load == '1', 'runs': int(runs), 'passed': int(passed),
                        'commit': commit, 'checkout': checkout,
                        'run_seconds': [float(t) for t in times]}) + '\n')
EOF
(( passed == runs ))
