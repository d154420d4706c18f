#!/usr/bin/env bash
# Stops the daemons infra/slurm/start.sh started, by their pid files under $TAMARACK_SLURM_STATE (default
# /var/lib/tamarack-slurm), newest first. Packages, config, keys and the user stay, so the next start.sh is
# quick; so do the sudoers rule and the Epilog, which start.sh rewrites each time and which allow no more than
# the installed $state/bin/tamarack does (start.sh calls this script to restart on a config change, and a job
# still finishing then needs them). Running it when nothing runs is fine.
set -euo pipefail

state="${TAMARACK_SLURM_STATE:-/var/lib/tamarack-slurm}"

# stop <name> <pid file>: TERM, then KILL after a bounded wait, so a wedged daemon cannot hang the caller.
stop() {
  local name="$1" pidfile="$2" pid
  [ -s "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    echo "slurm: stopping $name ($pid)" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

stop slurmrestd "$state/run/slurmrestd.pid"
stop slurmd "$state/run/slurmd.pid"
stop slurmctld "$state/run/slurmctld.pid"
stop munged "$state/munge/munged.pid"
