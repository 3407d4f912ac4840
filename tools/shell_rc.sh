# shellcheck shell=bash
# The rcfile of `make shell` (bash --rcfile tools/shell_rc.sh -i).
#
# Your ~/.bashrc first (prompt, aliases, history), then this checkout's environment
# (tools/ros_env.sh) on top, so that the venv's python, this package and the loopback DDS
# settings win over whatever ~/.bashrc put first (pyenv shims, a sourced
# /opt/ros/*/setup.bash, another ROS_DOMAIN_ID).
#
# ROS_DOMAIN_ID: every `make shell` uses the same domain, SEGFORMER_ROS_SHELL_DOMAIN (set
# by the Makefile: the ROS_DOMAIN_ID you started `make` with, else 101), so two terminals
# see each other's nodes. Tests and benchmarks keep picking their own domains (1..100).
_sr_shell_domain=${SEGFORMER_ROS_SHELL_DOMAIN:-101}
_sr_shell_repo=${SEGFORMER_ROS_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# shellcheck source=/dev/null
[[ -f ~/.bashrc ]] && source ~/.bashrc
# shellcheck source=tools/ros_env.sh
source "$_sr_shell_repo/tools/ros_env.sh"
export ROS_DOMAIN_ID=$_sr_shell_domain
hash -r
PS1="(segformer_ros dom $ROS_DOMAIN_ID) ${PS1:-\$ }"
echo "segformer_ros shell: python $(command -v python), ROS_DOMAIN_ID=$ROS_DOMAIN_ID" \
     "(DDS on loopback); console scripts: segformer-ros-eval, image_source, ..." >&2
unset _sr_shell_domain _sr_shell_repo
