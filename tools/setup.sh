#!/usr/bin/env bash
# Create the development venv (.venv/) and build the package with colcon.
#
# Usage: tools/setup.sh   (or `make setup`; PYTHON=python3.X picks the
# interpreter, VENV=dir the venv location, BUILD=dir the colcon build root,
# EXPORT=1 adds torch + transformers for the SegFormer -> ONNX export tool, RAY=1 adds ray).
#
# Steps:
#  1. python -m venv + pip install -r tools/requirements-dev.txt (skipped when
#     the stamp file matches the requirements and the interpreter);
#  2. re-point the /opt/python/... include dirs hard-coded in the ROS wheels'
#     exported CMake files at this venv's Python and numpy headers;
#  3. colcon build (merge install) of this repo into $BUILD/colcon/install:
#     proves the package builds with colcon, and produces the generated
#     segformer_ros.msg Python module + typesupport libraries for the tests,
#     plus the test-only vision_msgs fixture (test/fixtures/vision_msgs);
#  3b. the ROS 2 user tools (ros2, launch_ros, tf2_ros) from ../shared/ros-src
#     (tools/setup_ros_tools.sh);
#  4. the console scripts of setup.py (segformer-ros-eval, -selfcheck, -export,
#     -build-engine, image_source, segformer_node) as small launchers in
#     $VENV/bin that run this checkout's code in the tools/ros_env.sh environment.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python3}
VENV=${VENV:-$REPO/.venv}
BUILD=${BUILD:-$REPO/.build}
case $VENV in /*) ;; *) VENV=$REPO/$VENV ;; esac
case $BUILD in /*) ;; *) BUILD=$REPO/$BUILD ;; esac
# REQ=file installs another requirements list (tools/test_jazzy.sh: the Jazzy wheels).
REQ=${REQ:-$REPO/tools/requirements-dev.txt}
# torch + transformers (~1.5 GB) are only for the export tool (segformer-ros-export,
# test_export.py): opt in with EXPORT=1 (CI does). Without them the export tests skip
# and the account at the end of `make test` says so. EXPORT=1 needs Python 3.11: the
# only torch wheel on local disk is cp311 CPU, and any other torch install pulls GBs
# of CUDA wheels. NO_TORCH=1 (the older switch) still means EXPORT=0.
EXPORT=${EXPORT:-0}
[[ ${NO_TORCH:-0} == 1 ]] && EXPORT=0
# RAY=1 adds ray (tools/requirements-ray.txt) for segformer-ros-bag --ray (CI does); without
# it the Ray test skips and the local --workers pool still runs.
RAY=${RAY:-0}
STAMP=$VENV/.segformer_ros-setup-stamp

log() { echo "[setup] $*" >&2; }

# pip prints two "Location ... is ignored" warnings per package for this
# machine's extra file:// indexes; they are noise.
quiet_pip() {
  local rc
  set +e
  "$VENV/bin/python" -m pip "$@" 2>&1 | grep -v 'is ignored: it is neither a file nor a directory'
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

# ---------------------------------------------------------------- 1. venv
# NODEPS_REQ: packages installed WITHOUT their declared dependencies (tools/requirements-nodeps.txt:
# cityscapesscripts, whose dependency list pulls the old `typing` backport); what they import
# is listed in the main requirements. Only with the default requirements list.
NODEPS_REQ=${NODEPS_REQ-}
[[ -z $NODEPS_REQ && $REQ == "$REPO/tools/requirements-dev.txt" ]] && NODEPS_REQ=$REPO/tools/requirements-nodeps.txt
want_stamp="$("$PYTHON" -c 'import sys; print(sys.version)' | head -1) $(sha256sum "$REQ" | cut -c1-16) export=$EXPORT"
if [[ $RAY == 1 ]]; then want_stamp+=" ray=$(sha256sum "$REPO/tools/requirements-ray.txt" | cut -c1-16)"; fi
if [[ -n $NODEPS_REQ ]]; then want_stamp+=" nodeps=$(sha256sum "$NODEPS_REQ" | cut -c1-16)"; fi
# A pip constraints file (tools/test_jazzy.sh) is part of what was installed.
if [[ -n ${PIP_CONSTRAINT:-} ]]; then want_stamp+=" constraints=$(sha256sum "$PIP_CONSTRAINT" | cut -c1-16)"; fi
if [[ -f $STAMP && "$(cat "$STAMP")" == "$want_stamp" ]]; then
  log "venv $VENV up to date (stamp matches)"
else
  if [[ ! -x $VENV/bin/python ]]; then
    log "creating venv $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
  fi
  req=$REQ
  if [[ $EXPORT == 1 ]]; then
    log "installing requirements (tools/requirements-dev.txt, with torch/transformers: EXPORT=1)"
  else
    log "installing requirements (tools/requirements-dev.txt without torch/transformers;" \
        "EXPORT=1 adds them for the export tool)"
    req=$VENV/requirements-no-export.txt
    grep -vE '^(torch|transformers)([^a-z_-]|$)' "$REQ" > "$req"
  fi
  # RAY=1: ray in the same pip run, so one resolver sees every requirement.
  extra_req=()
  if [[ $RAY == 1 ]]; then
    log "... plus tools/requirements-ray.txt (RAY=1)"
    extra_req=(-r "$REPO/tools/requirements-ray.txt")
  fi
  # Not -q: a first install takes a minute or more; pip's lines show it is moving.
  set +e
  quiet_pip install --disable-pip-version-check --progress-bar off -r "$req" \
    ${extra_req[@]+"${extra_req[@]}"} | grep -vE '^Requirement already satisfied'
  pip_rc=${PIPESTATUS[0]}
  set -e
  (( pip_rc == 0 )) || { log "pip install failed (exit $pip_rc)"; exit "$pip_rc"; }
  if [[ -n $NODEPS_REQ ]]; then
    log "installing $(basename "$NODEPS_REQ") without dependencies"
    set +e
    quiet_pip install --disable-pip-version-check --progress-bar off --no-deps -r "$NODEPS_REQ" \
      | grep -vE '^Requirement already satisfied'
    pip_rc=${PIPESTATUS[0]}
    set -e
    (( pip_rc == 0 )) || { log "pip install --no-deps failed (exit $pip_rc)"; exit "$pip_rc"; }
  fi
  echo "$want_stamp" > "$STAMP"
fi
# Keep colcon from discovering the ROS wheels' share/*/package.xml.
touch "$VENV/COLCON_IGNORE"

# ------------------------------------- 2. patch the wheels' CMake exports
# The ROS wheels were built in a manylinux container; their exported CMake
# files name /opt/python/cpXY-cpXY/include/pythonX.Y and that Python's numpy
# include dir, which do not exist here. Point them at this venv's headers.
py_inc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
mapfile -t to_patch < <(grep -rlE '/opt/python/cp3[0-9]+-cp3[0-9]+' "$VENV/share" --include='*.cmake' 2>/dev/null || true)
if (( ${#to_patch[@]} )); then
  log "patching ${#to_patch[@]} CMake files: python include -> $py_inc, numpy include -> $np_inc"
  sed -i -E \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/lib/python3\.[0-9]+/site-packages/numpy/(_core|core)/include#${np_inc}#g" \
    -e "s#/opt/python/cp3[0-9]+-cp3[0-9]+/include/python3\.[0-9]+#${py_inc}#g" \
    "${to_patch[@]}"
fi
if grep -rqE '/opt/python/cp3' "$VENV/share" --include='*.cmake'; then
  log "ERROR: unpatched /opt/python paths remain:"
  grep -rlE '/opt/python/cp3' "$VENV/share" --include='*.cmake' >&2
  exit 1
fi

# -------------------------------------------------------- 3. colcon build
mkdir -p "$BUILD/src"
touch "$BUILD/COLCON_IGNORE"
# Build from a symlink to the repo, not the repo path itself: .venv/ lies
# inside the repo, and the generated targets export the venv's numpy include
# dir, which CMake refuses to install-export when it is under the source
# directory ("INTERFACE_INCLUDE_DIRECTORIES property contains path ... which is
# prefixed in the source directory"). CMake keeps the symlink path as the
# source dir, so the venv is no longer "inside" it.
ln -sfn "$REPO" "$BUILD/src/segformer_ros"
# Test fixture: vision_msgs' LabelInfo / VisionClass (no vision_msgs wheel exists), so the
# node's real-type label_info path runs in the tests. Its source folder carries COLCON_IGNORE
# (users' workspaces must never build a partial vision_msgs); link its files without it.
mkdir -p "$BUILD/src/vision_msgs"
for f in package.xml CMakeLists.txt msg; do
  ln -sfn "$REPO/test/fixtures/vision_msgs/$f" "$BUILD/src/vision_msgs/$f"
done
log "colcon build -> $BUILD/colcon/install"
rc=0
(
  export PATH="$VENV/bin:$PATH"
  export CMAKE_PREFIX_PATH="$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  # rosidl finds the available typesupports through the ament resource index
  # (AMENT_PREFIX_PATH), not CMake. colcon would warn on every run that the venv
  # has no local_setup.* files (it is a pip prefix, not a colcon workspace, and
  # needs no setup script): that one warning is dropped below, nothing else.
  export AMENT_PREFIX_PATH="$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  cd "$BUILD"
  set +e
  "$VENV/bin/colcon" --log-base "$BUILD/colcon/log" build \
    --paths "$BUILD/src/segformer_ros" "$BUILD/src/vision_msgs" \
    --build-base "$BUILD/colcon/build" \
    --install-base "$BUILD/colcon/install" \
    --merge-install \
    --event-handlers console_cohesion- summary+ status- \
    --cmake-args \
      -DPython3_EXECUTABLE="$VENV/bin/python" \
      -DBUILD_TESTING=OFF 2>&1 \
    | grep -vF "in the environment variable AMENT_PREFIX_PATH doesn't contain any 'local_setup.*' files"
  exit "${PIPESTATUS[0]}"
) || rc=$?
if (( rc )); then
  log "colcon build FAILED (exit $rc); end of the build log:"
  for pkg in vision_msgs segformer_ros; do
    tail -n 60 "$BUILD/colcon/log/latest_build/$pkg/stdout_stderr.log" >&2 2>/dev/null || true
  done
  exit "$rc"
fi

# ------------------------------------------ 3b. the ROS 2 tools from ../shared/ros-src
# ros2 (launch, lifecycle, param, topic, ...), launch_ros and tf2_ros into $VENV and the
# install tree (tools/setup_ros_tools.sh; skipped with a line where ../shared is absent).
VENV=$VENV BUILD=$BUILD "$REPO/tools/setup_ros_tools.sh"

# ----------------------------------------------------- 4. console scripts
# setup.py's console_scripts as launchers in $VENV/bin, so that `make shell` (and
# any shell with the venv on PATH) has segformer-ros-eval & co. They run this
# checkout's sources in the tools/ros_env.sh environment (sourced when the shell
# has not done so), like an editable install but without copying data files or
# touching the import of the generated messages.
"$VENV/bin/python" - "$REPO" "$VENV" "$BUILD/colcon/install" <<'PYEOF'
import re
import sys
from pathlib import Path

repo, venv, install = (Path(a) for a in sys.argv[1:4])
entries = re.findall(r"'([\w.-]+)=([\w.]+):(\w+)'", (repo / 'setup.py').read_text())
for name, module, func in entries:
    script = venv / 'bin' / name
    script.write_text(f"""#!/usr/bin/env bash
# {name}: console script of segformer_ros (setup.py), generated by tools/setup.sh.
# Runs {module}:{func} from the checkout {repo}.
if [[ -z ${{SEGFORMER_ROS_REPO:-}} ]]; then
  export SEGFORMER_ROS_VENV='{venv}' SEGFORMER_ROS_INSTALL='{install}'
  source '{repo}/tools/ros_env.sh'
fi
exec '{venv}/bin/python' -c 'import sys; sys.argv[0] = "{name}"; from {module} import {func}; sys.exit({func}())' "$@"
""")
    script.chmod(0o755)
print(f'[setup] console scripts in {venv}/bin: {", ".join(n for n, _, _ in entries)}',
      file=sys.stderr)
PYEOF
log "done: install tree $BUILD/colcon/install"
