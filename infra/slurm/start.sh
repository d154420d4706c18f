#!/usr/bin/env bash
# Starts a real single-node Slurm (Debian's 22.05) for tests: munged, slurmctld, slurmd and slurmrestd on
# loopback, the node carrying four fake H100s. Prints, as its last lines on stdout, the assignments the Slurm
# tests read:
#
#   eval "$(infra/slurm/start.sh)"
#   go test ./testbed/backend/slurm/
#
# Everything lives under $TAMARACK_SLURM_STATE (default /var/lib/tamarack-slurm): config, spool, logs, pid
# files, the munge and JWT keys, the fake GPU device nodes. The host's /etc/slurm and /etc/munge are never
# read or written (SLURM_CONF and munge's own socket point every daemon and command here), so a host that
# runs its own Slurm is left alone as long as the ports differ. Runs as root (it installs packages, makes
# device nodes and starts slurmd, which must be root to run jobs as their users). A second run while
# everything answers only issues a fresh token. stop.sh stops what this started.
#
# Sandbox jobs run `tamarack slurm-step` as root through sudo, as on a real cluster: tests install the binary as
# $state/bin/tamarack (TAMARACK_TEST_SLURM_STEP), which /etc/sudoers.d/tamarack-slurm lets the user run as
# root with `slurm-step` arguments only, and the Epilog runs after every job.
#
# Why the unprivileged user: slurmrestd refuses to run as root or as SlurmUser, and slurmctld refuses JWTs
# for root; the tests' jobs therefore run as $TAMARACK_SLURM_USER, so their files must be readable by it.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
state="${TAMARACK_SLURM_STATE:-/var/lib/tamarack-slurm}"
user="${TAMARACK_SLURM_USER:-tamarack-slurm}"
rest_port="${TAMARACK_SLURM_REST_PORT:-6820}"
ctld_port="${TAMARACK_SLURM_CTLD_PORT:-6817}"
slurmd_port="${TAMARACK_SLURM_SLURMD_PORT:-6818}"
token_lifespan="${TAMARACK_SLURM_TOKEN_LIFESPAN:-14400}" # 4 hours: longer than any test run
export SLURM_CONF="$state/etc/slurm.conf"

log() { echo "slurm: $*" >&2; }
die() {
  echo "slurm: $*" >&2
  exit 1
}

# wait_for <what> <pid file> <log> <tries of 0.2 s> <command...>: bounded, so a daemon that never comes up
# fails the run instead of hanging CI, and at once when its process is gone (a fatal config error), with
# the end of its log.
wait_for() {
  local what="$1" pidfile="$2" logfile="$3" tries="$4"
  shift 4
  for _ in $(seq 1 "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [ -s "$pidfile" ] && ! alive "$pidfile"; then break; fi
    sleep 0.2
  done
  tail -n 20 "$logfile" >&2 || true
  die "$what did not come up (log: $logfile)"
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

[ "$(id -u)" -eq 0 ] || die "run as root (installs packages, makes device nodes, starts slurmd)"

# --- packages -------------------------------------------------------------------------------------------
# slurm-wlm-jwt-plugin holds auth/jwt, which slurmctld needs to accept slurmrestd's tokens; without it
# slurmctld dies at start ("cannot find auth plugin for auth/jwt").
need=()
for p in munge slurmctld slurmd slurmrestd slurm-client slurm-wlm-jwt-plugin sudo; do
  # Not dpkg -s alone: it succeeds for a removed package whose config files remain ("rc").
  [ "$(dpkg-query -W -f '${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || need+=("$p")
done
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# --- the unprivileged user jobs and slurmrestd run as ------------------------------------------------------
if ! id -u "$user" >/dev/null 2>&1; then
  useradd --system --user-group --no-create-home --home-dir "$state/home" --shell /bin/sh "$user"
fi
slurm_uid="$(id -u slurm)" # created by Debian's slurm packages

# --- config ---------------------------------------------------------------------------------------------
host="$(hostname -s)"
# Sixteen CPUs whatever the host has (SlurmdParameters=config_overrides keeps slurmd from draining the node for
# the mismatch): a sandbox's job asks for its template's CPUs (two per GPU), and the tests of several packages
# run jobs side by side, which a 2-core host's real count would queue one behind the other. Nothing is pinned
# (task/none), so it is Slurm's bookkeeping only. Memory is half the host's: it is not a consumable here
# (CR_Core), a job only has to fit it.
topology="CPUs=16 Boards=1 SocketsPerBoard=1 CoresPerSocket=16 ThreadsPerCore=1 "
mem_mb=$(($(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024))
real_mem=$((mem_mb / 2))

conf="$(
  cat <<EOF
# Written by infra/slurm/start.sh; rewritten (and the daemons restarted) when it changes.
ClusterName=tamarack-test
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=slurm
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket.2
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$state/jwt_hs256.key
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/slurmd
SlurmctldPidFile=$state/run/slurmctld.pid
SlurmdPidFile=$state/run/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
# Ends what a sandbox job's step left when Slurm killed it (its sandbox outlives it by design).
Epilog=$state/bin/epilog
# No cgroups: containers and CI hosts often cannot delegate them, and the fake GPUs need no confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
# No AccountingStorageTRES=gres/gpu: 22.05 refuses GPU TRES without slurmdbd, so nodes' and jobs' tres
# strings carry cpu, mem and billing only; GPUs show in their gres fields.
ReturnToService=2
# Finished jobs stay visible to GET /job/{id} for 10 minutes (the default is 5): tests read their end state.
MinJobAge=600
JobCompType=jobcomp/none
# Debian's default (/usr/bin/mail) is not installed; slurmctld would log an error at every start.
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
SlurmctldTimeout=30
SlurmdTimeout=30
SlurmdParameters=config_overrides
NodeName=$host NodeAddr=127.0.0.1 NodeHostname=$host ${topology}RealMemory=$real_mem Gres=gpu:h100:4 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
)"
gres="$(
  cat <<EOF
# Fake H100s: device nodes that exist only so slurmd can account for them; nothing opens them.
NodeName=$host Name=gpu Type=h100 File=$state/dev/nvidia[0-3]
EOF
)"

if [ -f "$state/etc/slurm.conf" ] && { [ "$(cat "$state/etc/slurm.conf")" != "$conf" ] || [ "$(cat "$state/etc/gres.conf")" != "$gres" ]; }; then
  log "configuration changed: restarting"
  "$here/stop.sh" >&2
fi

mkdir -p "$state"/{etc,run,log,dev,home}
install -d -o slurm -g slurm -m 0755 "$state/ctld"
install -d -o root -g root -m 0755 "$state/slurmd"
install -d -o munge -g munge -m 0755 "$state/munge"
chown slurm:slurm "$state/log" "$state/run"
chown "$user:$user" "$state/home"
# Root's alone, every directory up to it too: sudoers hands root to whatever binary lies here.
chown root:root "$state"
chmod 0755 "$state"
install -d -o root -g root -m 0755 "$state/bin"
printf '%s\n' "$conf" >"$state/etc/slurm.conf"
printf '%s\n' "$gres" >"$state/etc/gres.conf"

# --- the step: sudo rule and Epilog ---------------------------------------------------------------------
# The Epilog runs as root after every job; it must never fail (slurmd drains a node whose Epilog fails), and
# does nothing until a test has installed the binary.
epilog="$(
  cat <<EOF
#!/bin/sh
# Written by infra/slurm/start.sh: Slurm's Epilog. Stops and removes the sandbox a killed step left.
if [ -x "$state/bin/tamarack" ]; then
  "$state/bin/tamarack" slurm-step epilog
fi
exit 0
EOF
)"
printf '%s\n' "$epilog" >"$state/bin/epilog.tmp"
chown root:root "$state/bin/epilog.tmp"
chmod 0755 "$state/bin/epilog.tmp"
mv -f "$state/bin/epilog.tmp" "$state/bin/epilog"
# Exactly the step, as root, without a password (the job's script runs sudo -n); nothing else.
sudoers_tmp="$(mktemp)"
printf '# Written by infra/slurm/start.sh: sandbox jobs start their sandbox as root.\n%s ALL=(root) NOPASSWD: %s slurm-step *\n' \
  "$user" "$state/bin/tamarack" >"$sudoers_tmp"
chmod 0440 "$sudoers_tmp"
visudo -cqf "$sudoers_tmp" >&2 || {
  rm -f "$sudoers_tmp"
  die "the sudoers rule for $user does not parse"
}
install -o root -g root -m 0440 "$sudoers_tmp" /etc/sudoers.d/tamarack-slurm
rm -f "$sudoers_tmp"

# Character devices like the real ones (major 195 is nvidia's); a host that forbids mknod gets plain files,
# which slurmd accepts just the same since nothing opens them.
for i in 0 1 2 3; do
  d="$state/dev/nvidia$i"
  [ -e "$d" ] || mknod -m 0666 "$d" c 195 "$i" 2>/dev/null || install -m 0666 /dev/null "$d"
done

if [ ! -s "$state/munge/munge.key" ]; then
  dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
fi
chown munge:munge "$state/munge/munge.key"
chmod 0400 "$state/munge/munge.key"
if [ ! -s "$state/jwt_hs256.key" ]; then
  dd if=/dev/urandom of="$state/jwt_hs256.key" bs=32 count=1 status=none
fi
chown slurm:slurm "$state/jwt_hs256.key"
chmod 0600 "$state/jwt_hs256.key"

# --- daemons --------------------------------------------------------------------------------------------
# A daemon keeps the directory it was started from as its own, and slurmrestd dies ("getcwd failed") at the
# first job submitted once that directory is gone: start them from /, and restart any that
# an earlier run started from a directory removed since (a CI clone, a git worktree).
cd /
for pidfile in "$state/munge/munged.pid" "$state/run/slurmctld.pid" "$state/run/slurmd.pid" "$state/run/slurmrestd.pid"; do
  if alive "$pidfile" && [[ "$(readlink "/proc/$(cat "$pidfile")/cwd" 2>/dev/null)" == *" (deleted)" ]]; then
    log "a daemon runs from a removed directory: restarting"
    "$here/stop.sh" >&2
    break
  fi
done
if ! alive "$state/munge/munged.pid"; then
  log "starting munged"
  rm -f "$state/munge/munge.socket.2"
  setpriv --reuid=munge --regid=munge --init-groups munged \
    --socket="$state/munge/munge.socket.2" --key-file="$state/munge/munge.key" \
    --pid-file="$state/munge/munged.pid" --seed-file="$state/munge/munged.seed" \
    --log-file="$state/munge/munged.log" >&2
  wait_for munged "$state/munge/munged.pid" "$state/munge/munged.log" 50 test -s "$state/munge/munged.pid"
fi
munge_ok() { munge -n -S "$state/munge/munge.socket.2" | unmunge -S "$state/munge/munge.socket.2"; }
wait_for munged "$state/munge/munged.pid" "$state/munge/munged.log" 50 munge_ok

if ! alive "$state/run/slurmctld.pid"; then
  log "starting slurmctld"
  # -i: ignore state files from an earlier configuration (jobs of a killed run are not worth recovering).
  slurmctld -i -f "$SLURM_CONF" >&2
fi
wait_for slurmctld "$state/run/slurmctld.pid" "$state/log/slurmctld.log" 150 scontrol ping

if ! alive "$state/run/slurmd.pid"; then
  log "starting slurmd"
  slurmd -N "$host" -f "$SLURM_CONF" >&2
fi
# ReturnToService=2 brings a node that an earlier run left DOWN back as soon as its slurmd registers.
node_idle() { sinfo -h -N -n "$host" -o %T | grep -Eqx 'idle|mixed|allocated'; }
wait_for "slurmd (node $host idle)" "$state/run/slurmd.pid" "$state/log/slurmd.log" 150 node_idle

token="$(scontrol token username="$user" lifespan="$token_lifespan" | sed -n 's/^SLURM_JWT=//p')"
[ -n "$token" ] || die "scontrol token gave no token"

if ! alive "$state/run/slurmrestd.pid"; then
  log "starting slurmrestd on 127.0.0.1:$rest_port"
  # Without slurmdbd only the v0.0.38 plugin loads (the dbv0.0.38 one needs accounting); SLURM_JWT=daemon
  # makes slurmrestd take each request's token from its X-SLURM-USER-* headers.
  SLURM_JWT=daemon setsid setpriv --reuid="$user" --regid="$user" --init-groups \
    slurmrestd -f "$SLURM_CONF" -s openapi/v0.0.38 -a rest_auth/jwt "127.0.0.1:$rest_port" \
    </dev/null >>"$state/log/slurmrestd.log" 2>&1 &
  echo $! >"$state/run/slurmrestd.pid"
fi
rest_ping() {
  curl -fsS -H "X-SLURM-USER-NAME: $user" -H "X-SLURM-USER-TOKEN: $token" \
    "http://127.0.0.1:$rest_port/slurm/v0.0.38/ping"
}
wait_for slurmrestd "$state/run/slurmrestd.pid" "$state/log/slurmrestd.log" 150 rest_ping

echo "TAMARACK_TEST_SLURM=http://127.0.0.1:$rest_port"
echo "TAMARACK_TEST_SLURM_USER=$user"
echo "TAMARACK_TEST_SLURM_TOKEN=$token"
echo "TAMARACK_TEST_SLURM_STEP=$state/bin/tamarack"
echo "TAMARACK_TEST_SLURM_CONF=$SLURM_CONF"
