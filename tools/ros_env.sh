# shellcheck shell=bash
# Source this file (bash) to run segformer_ros from the source checkout:
#   source tools/ros_env.sh
# It needs `make setup` (tools/setup.sh) to have built .venv/ and
# .build/colcon/install/. It sets:
#  * the venv on PATH (python, pytest, colcon, flake8);
#  * PYTHONPATH = <repo root>:<colcon install>/lib/python3.X/site-packages:
#    our sources come from the checkout, the generated segformer_ros.msg from
#    the install tree (segformer_ros/__init__.py merges the two with
#    pkgutil.extend_path);
#  * LD_LIBRARY_PATH += <colcon install>/lib (the message's typesupport
#    libraries; the ROS wheels' own libs are added by the ros-wheels-bootstrapper
#    .pth, which re-execs python and keeps what is set here);
#  * AMENT_PREFIX_PATH = <colcon install>:<venv>;
#  * Fast DDS restricted to loopback (config/fastdds_loopback.xml), and a
#    ROS_DOMAIN_ID derived from this shell's PID unless one is already set
#    (`make shell` sets one shared, documented domain instead: tools/shell_rc.sh).
# Override the locations with SEGFORMER_ROS_VENV / SEGFORMER_ROS_INSTALL.

_sr_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_sr_venv=${SEGFORMER_ROS_VENV:-$_sr_repo/.venv}
_sr_install=${SEGFORMER_ROS_INSTALL:-$_sr_repo/.build/colcon/install}

if [[ ! -x $_sr_venv/bin/python ]]; then
  echo "ros_env.sh: no venv at $_sr_venv (run \`make setup\`)" >&2
fi
_sr_site=
for _sr_d in "$_sr_install"/lib/python3.*/site-packages; do
  [[ -d $_sr_d ]] && _sr_site=$_sr_d
done
if [[ -z $_sr_site ]]; then
  echo "ros_env.sh: no colcon install at $_sr_install (run \`make setup\`)" >&2
fi

# Hermetic: one install's environment never carries another's. Sourcing this after another
# segformer_ros environment (the Kilted .venv, then tools/test_jazzy.sh's Jazzy one) or after
# /opt/ros/<distro>/setup.bash would otherwise leave that install's Python paths and libraries
# in front of or behind ours: a Python 3.11 build of the generated messages was then loaded
# into the Jazzy (3.12) process and aborted it (issue 21). Dropped from PYTHONPATH,
# LD_LIBRARY_PATH, AMENT_PREFIX_PATH, CMAKE_PREFIX_PATH and PATH: every entry an earlier
# source of this file added (recorded in _SEGFORMER_ROS_ADDED), every /opt/ros/ entry, and
# every lib/python3.N/{site,dist}-packages of another Python than this venv's.
_sr_pyver=$("$_sr_venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
_sr_dropped=()
_sr_ours="$_sr_venv/bin:$_sr_repo${_sr_site:+:$_sr_site}:$_sr_install/lib:$_sr_install:$_sr_venv"
_sr_keep() {  # _sr_keep ENTRY: true when ENTRY belongs to no other install
  local entry=$1 added
  [[ -z $entry ]] && return 1
  case $entry in /opt/ros/*) return 1 ;; esac
  if [[ -n $_sr_pyver && $entry =~ /lib/python3\.([0-9]+)/(site|dist)-packages ]] \
      && [[ 3.${BASH_REMATCH[1]} != "$_sr_pyver" ]]; then
    return 1
  fi
  local IFS=:
  for added in ${_SEGFORMER_ROS_ADDED:-}; do
    [[ $entry == "$added" ]] && return 1
  done
  return 0
}
_sr_clean() {  # _sr_clean VAR: VAR without the entries of other installs
  local name=$1 entry out= IFS=:
  for entry in ${!name:-}; do
    if _sr_keep "$entry"; then
      out+=${out:+:}$entry
    elif [[ -n $entry && :$_sr_ours: != *":$entry:"* ]]; then
      _sr_dropped+=("$name: $entry")   # re-adding our own entries is not worth a word
    fi
  done
  printf -v "$name" '%s' "$out"
  if [[ -n $out ]]; then export "${name?}"; else unset "$name"; fi
}
for _sr_var in PYTHONPATH LD_LIBRARY_PATH AMENT_PREFIX_PATH CMAKE_PREFIX_PATH PATH; do
  _sr_clean "$_sr_var"
done
if (( ${#_sr_dropped[@]} )); then
  echo "ros_env.sh: dropped ${#_sr_dropped[@]} path(s) of another ROS / Python install" \
       "(first: ${_sr_dropped[0]})" >&2
fi
unset ROS_VERSION ROS_PYTHON_VERSION COLCON_PREFIX_PATH PYTHONHOME

export PATH="$_sr_venv/bin:$PATH"
export VIRTUAL_ENV="$_sr_venv"
export PYTHONPATH="$_sr_repo${_sr_site:+:$_sr_site}${PYTHONPATH:+:$PYTHONPATH}"
export LD_LIBRARY_PATH="$_sr_install/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export AMENT_PREFIX_PATH="$_sr_install:$_sr_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
export _SEGFORMER_ROS_ADDED=$_sr_ours
unset -f _sr_keep _sr_clean
unset _sr_pyver _sr_dropped _sr_var _sr_ours

# DDS: this host only. Every test/demo/benchmark process must run with these.
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# The venv's wheels are ROS 2 Kilted (Fast DDS 3): its spelling of the profile, and a
# ROS_DISTRO that says so even where another distro's setup.bash was sourced before.
# SEGFORMER_ROS_DISTRO=jazzy (tools/test_jazzy.sh): Jazzy's wheels, Fast DDS 2 spelling.
export ROS_DISTRO=${SEGFORMER_ROS_DISTRO:-kilted}
# The loopback profile in the spelling of the distro's Fast DDS (3.x for Kilted, 2.x for
# Humble and Jazzy), named by both profile variables: Fast DDS 2 (Humble, Jazzy) reads only
# FASTRTPS_DEFAULT_PROFILES_FILE, Fast DDS 3 only FASTDDS_DEFAULT_PROFILES_FILE. With only the
# latter a Jazzy process ran on the built-in transports and lost best-effort frames above
# ~0.5 MB (issue 21; benchmarks/processes.py PROFILE_VARIABLES). Discovery range SYSTEM_DEFAULT
# on every distro: rmw_fastrtps then takes the profile's lo-only transports as they are
# (LOCALHOST adds transports bound to 0.0.0.0 and the machine's address; processes.py says more).
# (Kilted's rmw_fastrtps logs a deprecation warning when the FASTRTPS_ name is set: not there.)
case $ROS_DISTRO in
  humble|iron|jazzy)
    export FASTDDS_DEFAULT_PROFILES_FILE="$_sr_repo/config/fastdds_loopback_fastdds2.xml"
    export FASTRTPS_DEFAULT_PROFILES_FILE="$FASTDDS_DEFAULT_PROFILES_FILE" ;;
  *)
    export FASTDDS_DEFAULT_PROFILES_FILE="$_sr_repo/config/fastdds_loopback.xml"
    unset FASTRTPS_DEFAULT_PROFILES_FILE ;;
esac
export ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT
unset ROS_STATIC_PEERS
# Humble reads only ROS_LOCALHOST_ONLY (rcl localhost.c); Jazzy honours it too, but warns
# that it is deprecated, and Kilted ignores it: set it only where the distro needs it
# (segformer_ros/ros_compat.py localhost_env says the same for child processes).
case $ROS_DISTRO in
  humble) export ROS_LOCALHOST_ONLY=1 ;;
  *) unset ROS_LOCALHOST_ONLY ;;
esac
# Domain ids 1..100 (0 is the ROS default: avoid meeting other ROS users).
export ROS_DOMAIN_ID=${ROS_DOMAIN_ID:-$(( $$ % 100 + 1 ))}

export SEGFORMER_ROS_REPO="$_sr_repo"
export SEGFORMER_ROS_SHARED="${SEGFORMER_ROS_SHARED:-$_sr_repo/../shared}"
unset _sr_repo _sr_venv _sr_install _sr_site _sr_d
