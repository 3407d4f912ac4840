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

export PATH="$_sr_venv/bin:$PATH"
export VIRTUAL_ENV="$_sr_venv"
export PYTHONPATH="$_sr_repo${_sr_site:+:$_sr_site}${PYTHONPATH:+:$PYTHONPATH}"
export LD_LIBRARY_PATH="$_sr_install/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export AMENT_PREFIX_PATH="$_sr_install:$_sr_venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"

# DDS: this host only. Every test/demo/benchmark process must run with these.
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# SYSTEM_DEFAULT: the profile alone decides the transports. LOCALHOST would make
# rmw_fastrtps add a UDP transport of its own that binds 0.0.0.0 and the machine's
# address next to the profile's lo-only one (see benchmarks/processes.py).
export ROS_AUTOMATIC_DISCOVERY_RANGE=SYSTEM_DEFAULT
# The venv's wheels are ROS 2 Kilted (Fast DDS 3): its spelling of the profile, and a
# ROS_DISTRO that says so even where another distro's setup.bash was sourced before.
# SEGFORMER_ROS_DISTRO=jazzy (tools/test_jazzy.sh): Jazzy's wheels, Fast DDS 2 spelling.
export ROS_DISTRO=${SEGFORMER_ROS_DISTRO:-kilted}
case $ROS_DISTRO in
  humble|iron|jazzy) export FASTDDS_DEFAULT_PROFILES_FILE="$_sr_repo/config/fastdds_loopback_fastdds2.xml" ;;
  *) export FASTDDS_DEFAULT_PROFILES_FILE="$_sr_repo/config/fastdds_loopback.xml" ;;
esac
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
