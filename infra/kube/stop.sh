#!/usr/bin/env bash
# Stops the daemons infra/kube/start.sh started, by their pid files under $TAMARACK_KUBE_STATE (default
# /var/lib/tamarack-kube), newest first; with names (etcd apiserver controller-manager scheduler kwok),
# only those. etcd's data, the PKI and the kubeconfig stay, so the next start.sh is quick and finds the
# objects the last run left. Running it when nothing runs is fine.
set -euo pipefail

state="${TAMARACK_KUBE_STATE:-/var/lib/tamarack-kube}"

# stop <name>: TERM, then KILL after a bounded wait, so a wedged daemon cannot hang the caller.
stop() {
  local name="$1" pidfile="$state/run/$1.pid" pid
  [ -s "$pidfile" ] || return 0
  pid="$(cat "$pidfile")"
  if kill -0 "$pid" 2>/dev/null; then
    echo "kube: stopping $name ($pid)" >&2
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

if [ $# -eq 0 ]; then set -- kwok scheduler controller-manager apiserver etcd; fi
for name in "$@"; do stop "$name"; done
