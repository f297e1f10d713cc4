#!/usr/bin/env bash
# The cgroup that every build step of one installation runs under (BUILD_CGROUP_PARENT): the
# legacy builder sets no pids limit on a RUN step, but a step's cgroup lives below this one,
# whose pids.max then caps the processes of all the installation's builds together (a fork bomb
# in a RUN step stops there). Needs root, and the engine's cgroupfs driver (with the systemd
# driver the parent would have to be a systemd slice: not done here; builds then run without it).
#
#   scripts/build-cgroup.sh NAME    # env BUILD_PIDS_LIMIT (default 2048)
# Prints NAME when the cgroup is in place (for BUILD_CGROUP_PARENT), nothing otherwise.
# Idempotent.
set -euo pipefail

name=${1:?usage: build-cgroup.sh NAME}
limit=${BUILD_PIDS_LIMIT:-2048}
log() { echo "[build-cgroup] $*" >&2; }
[[ $name =~ ^[A-Za-z0-9_.-]+$ ]] || { log "bad cgroup name: $name"; exit 2; }
[[ $limit =~ ^[0-9]+$ ]] || { log "BUILD_PIDS_LIMIT=$limit is not a number"; exit 2; }

driver=$(docker info --format '{{.CgroupDriver}} {{.CgroupVersion}}' 2>/dev/null || true)
if [ "${driver%% *}" != cgroupfs ]; then
  log "the engine's cgroup driver is '${driver%% *}', not cgroupfs: builds run without a pids cap"
  exit 0
fi
if [ -d /sys/fs/cgroup/pids ]; then  # cgroup v1: one hierarchy per controller
  dir=/sys/fs/cgroup/pids/$name
elif [ -f /sys/fs/cgroup/cgroup.controllers ]; then  # cgroup v2: one tree
  dir=/sys/fs/cgroup/$name
  grep -qw pids /sys/fs/cgroup/cgroup.subtree_control || echo +pids >/sys/fs/cgroup/cgroup.subtree_control
else
  log "no pids cgroup controller here: builds run without a pids cap"
  exit 0
fi
if ! mkdir -p "$dir" 2>/dev/null || ! echo "$limit" >"$dir/pids.max" 2>/dev/null; then
  log "cannot write $dir/pids.max (needs root): builds run without a pids cap"
  exit 0
fi
echo "$name"
