#!/usr/bin/env bash
# The user-facing ROS 2 tools for the tests: `ros2` (launch, run, pkg, lifecycle, param,
# topic, node, service, interface), launch / launch_ros and tf2_ros, built from the source
# snapshots in ../shared/ros-src (no PyPI wheel exists for them; README.md there says what
# each archive holds). Called by tools/setup.sh after the colcon build of this package,
# for the Kilted venv (.venv, .build) and the Jazzy one (.venv-jazzy, .build/jazzy) alike.
#
# Where it goes -- so that tools/ros_env.sh needs no path of its own:
#  * the pure-Python packages: `pip install --no-deps` into $VENV (their PyPI dependencies
#    are pinned in the requirements files), which also puts the `ros2` console script
#    in $VENV/bin and their ament index entries in $VENV/share;
#  * composition_interfaces, tf2_msgs, tf2, tf2_py (and python_cmake_module where the
#    distro has no wheel of it): colcon into the same merged install as this package,
#    $BUILD/colcon/install.
# Never into the repository: the sources are unpacked under $BUILD/ros-tools.
#
# Skipped, with one line saying why, when ../shared/ros-src is absent (the tests that need
# these tools then skip with a `missing shared asset: ros-src ...` reason) or when a real
# ROS 2 installation (/opt/ros/<distro> sourced) already provides them. Cached: a stamp in
# the venv and one in the install tree record what was built from which archives.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:?VENV must be set (tools/setup.sh sets it)}
BUILD=${BUILD:?BUILD must be set (tools/setup.sh sets it)}
SRC=${SEGFORMER_ROS_SHARED:-$REPO/../shared}/ros-src
INSTALL=$BUILD/colcon/install

log() { echo "[setup] ros tools: $*" >&2; }

if [[ ! -f $SRC/SOURCES.tsv ]]; then
  log "skipped: no ROS tool sources at $SRC (../shared/ros-src); ros2 / launch / tf2_ros" \
      "tests will skip with 'missing shared asset: ros-src'"
  exit 0
fi
# A sourced real installation (/opt/ros/<distro>/setup.bash) that has the tools: use it.
for prefix in ${AMENT_PREFIX_PATH:+${AMENT_PREFIX_PATH//:/ }}; do
  if [[ $prefix == /opt/ros/* && -x $prefix/bin/ros2 ]] \
      && compgen -G "$prefix/lib/python3*/site-packages/launch_ros" > /dev/null; then
    log "skipped: using the ROS 2 installation at $prefix (sourced)"
    exit 0
  fi
done

py=$VENV/bin/python
pyver=$("$py" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
want="$(cat "$SRC"/SOURCES.tsv "$SRC"/*.tar.gz "${BASH_SOURCE[0]}" | sha256sum | cut -c1-16) py$pyver"
venv_stamp=$VENV/.segformer_ros-ros-tools-stamp
install_stamp=$INSTALL/.segformer_ros-ros-tools-stamp
if [[ -f $venv_stamp && -f $install_stamp && "$(cat "$venv_stamp")" == "$want" \
      && "$(cat "$install_stamp")" == "$want" ]]; then
  log "up to date (stamp matches)"
  exit 0
fi

start=$SECONDS
work=$BUILD/ros-tools
rm -rf "$work/src"
mkdir -p "$work/src"
touch "$work/COLCON_IGNORE"
for archive in "$SRC"/*.tar.gz; do
  tar -xzf "$archive" -C "$work/src"
done
s=$work/src

# --------------------------------------------- colcon: interfaces, tf2 and its C extension
paths=("$s/rcl_interfaces/composition_interfaces" "$s/geometry2/tf2_msgs" "$s/geometry2/tf2"
       "$s/geometry2/tf2_py")
# Jazzy has a python_cmake_module wheel (tools/requirements-jazzy.txt); Kilted does not.
if [[ ! -d $VENV/share/python_cmake_module ]]; then
  paths=("$s/python_cmake_module" "${paths[@]}")
fi
log "colcon build of ${#paths[@]} packages -> $INSTALL"
rc=0
(
  export PATH="$VENV/bin:$PATH"
  export CMAKE_PREFIX_PATH="$INSTALL:$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export AMENT_PREFIX_PATH="$INSTALL:$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  cd "$work"
  set +e
  "$VENV/bin/colcon" --log-base "$work/log" build \
    --paths "${paths[@]}" \
    --build-base "$work/build" \
    --install-base "$INSTALL" \
    --merge-install \
    --event-handlers console_cohesion- summary+ status- \
    --cmake-args \
      -DPython3_EXECUTABLE="$py" \
      -DBUILD_TESTING=OFF 2>&1 \
    | grep -vF "doesn't contain any 'local_setup.*' files"
  exit "${PIPESTATUS[0]}"
) || rc=$?
if (( rc )); then
  log "colcon build FAILED (exit $rc); end of the build logs:"
  tail -n 40 "$work"/log/latest_build/*/stdout_stderr.log >&2 2>/dev/null || true
  exit "$rc"
fi

# ------------------------------------------------ pip: the pure-Python launch / ros2cli / tf2_ros
pure=("$s"/launch/{launch,launch_xml,launch_yaml,launch_testing}
      "$s"/launch_ros/{launch_ros,ros2launch,launch_testing_ros}
      "$s"/ros2cli/{ros2cli,ros2pkg,ros2run,ros2lifecycle,ros2param,ros2topic,ros2node}
      "$s"/ros2cli/{ros2service,ros2interface}
      "$s/rosidl_runtime_py" "$s/geometry2/tf2_ros_py")
log "pip install --no-deps of ${#pure[@]} pure-Python packages -> $VENV"
set +e
"$py" -m pip install --disable-pip-version-check --no-deps --no-build-isolation --no-index \
  --progress-bar off -q "${pure[@]}" 2>&1 | grep -v 'is ignored: it is neither a file nor a directory'
rc=${PIPESTATUS[0]}
set -e
(( rc == 0 )) || { log "pip install FAILED (exit $rc)"; exit "$rc"; }

# launch_testing and launch_testing_ros register pytest plugins (entry point group
# pytest11) whose hooks no longer load on pytest >= 9 ("Argument(s) {'path'} are declared in
# the hookimpl but can not be found in the hookspec"): pytest autoloads them, so every test
# run in this venv would fail before collecting. The tests here do not use them: drop the
# two plugin entries, keep the packages (and `launch_test`).
"$py" - <<'PYEOF'
import importlib.metadata as md
import re
for name in ('launch_testing', 'launch_testing_ros'):
    dist = md.distribution(name)
    (path,) = [f.locate() for f in dist.files if f.name == 'entry_points.txt']
    text = path.read_text()
    path.write_text(re.sub(r'\[pytest11\]\n(?:[^\[\n].*\n?)*\n*', '', text))
PYEOF

echo "$want" > "$venv_stamp"
echo "$want" > "$install_stamp"
log "done in $(( SECONDS - start )) s: ros2 in $VENV/bin, tf2_py and the interfaces in $INSTALL"
