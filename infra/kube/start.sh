#!/usr/bin/env bash
# Starts a real Kubernetes control plane for tests, with no kubelet and no containers: etcd, kube-apiserver,
# kube-controller-manager and kube-scheduler on loopback, and kwok, which plays the kubelet for two fake GPU
# nodes (nvidia.com/gpu: 8 each): Pods bound to them go Pending -> Running, Pods of Jobs complete, deleted
# Pods go away. Prints, as its last line on stdout, the admin kubeconfig the Kubernetes tests read:
#
#   eval "$(infra/kube/start.sh)"   # TAMARACK_TEST_KUBE=/var/lib/tamarack-kube/admin.kubeconfig
#   go test ./testbed/backend/kubernetes/
#
# The binaries come from infra/kube/build.sh (built from the Go module proxy and cached by version; the
# first build takes minutes). Everything else lives under $TAMARACK_KUBE_STATE (default
# /var/lib/tamarack-kube): etcd's data, the PKI, kubeconfigs, logs, pid files. The PKI is made once with
# openssl: a CA, the API server's serving certificate (127.0.0.1, localhost and the in-cluster names), the
# service-account signing key pair, and an admin client certificate in system:masters. Authorization is
# Node,RBAC, so RBAC rules are enforced for every identity but the admin. Admission plugins are the
# release's defaults.
#
# Root is not needed: only the ports and the state directory must be free and writable. A second run while
# everything answers only re-applies the fake nodes; a daemon that an earlier run left running but not
# answering is restarted, and so is everything when the configuration or the binaries change. stop.sh stops
# what this started; etcd's data stays (TAMARACK_KUBE_STATE removed by hand starts from nothing).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
state="${TAMARACK_KUBE_STATE:-/var/lib/tamarack-kube}"
etcd_port="${TAMARACK_KUBE_ETCD_PORT:-2479}" # not 2379: a host's own etcd keeps its port
api_port="${TAMARACK_KUBE_API_PORT:-6443}"
cm_port="${TAMARACK_KUBE_CONTROLLER_MANAGER_PORT:-10257}"
sched_port="${TAMARACK_KUBE_SCHEDULER_PORT:-10259}"
kwok_port="${TAMARACK_KUBE_KWOK_PORT:-10247}"
service_range=10.96.0.0/16
pki="$state/pki"
kubeconfig="$state/admin.kubeconfig"

log() { echo "kube: $*" >&2; }
die() {
  echo "kube: $*" >&2
  exit 1
}

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for <what> <name> <tries of 0.2 s> <command...>: bounded, so a daemon that never comes up fails the
# run instead of hanging CI, and at once when its process is gone (a fatal flag or port taken), with the
# end of its log.
wait_for() {
  local what="$1" name="$2" tries="$3"
  shift 3
  for _ in $(seq 1 "$tries"); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if ! alive "$state/run/$name.pid"; then break; fi
    sleep 0.2
  done
  tail -n 30 "$state/log/$name.log" >&2 || true
  die "$what did not come up (log: $state/log/$name.log)"
}

command -v openssl >/dev/null || die "openssl is needed (apt-get install openssl)"
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"

bin="$("$here/build.sh")" # a plain assignment, so that a failed build stops here

mkdir -p "$state"/{run,log,pki,etcd}
chmod 0700 "$state/pki" "$state/etcd"
# One start at a time; the daemons do not inherit the lock (each starts with fd 9 closed).
exec 9>"$state/.lock"
flock -w 600 9 || die "another start.sh holds $state/.lock"

# --- PKI --------------------------------------------------------------------------------------------------
# sign <name> <subject> <extensions>: a key and a certificate signed by the CA, kept once made.
sign() {
  local name="$1" subj="$2" ext="$3"
  [ -s "$pki/$name.crt" ] && [ -s "$pki/$name.key" ] && return 0
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 3650 \
    -extfile <(printf '%s\n' "$ext") -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr"
}
if [ ! -s "$pki/ca.crt" ] || [ ! -s "$pki/ca.key" ]; then
  log "making the PKI in $pki"
  rm -f "$pki"/*
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 3650 \
    -subj /CN=tamarack-test-kube-ca -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
fi
sign apiserver /CN=kube-apiserver "$(
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n'
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,DNS:kubernetes,DNS:kubernetes.default,'
  printf 'DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n'
)"
# system:masters: the tests' and the control plane's own identity; RBAC does not apply to it.
sign admin "/O=system:masters/CN=tamarack-admin" "$(
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n'
)"
if [ ! -s "$pki/sa.key" ]; then
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$pki/sa.key" 2>/dev/null
  openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub"
fi
chmod 0600 "$pki"/*.key

b64() { base64 -w0 <"$1"; }
kubeconfig_text="$(
  cat <<EOF
# Written by infra/kube/start.sh: the test control plane's admin (system:masters).
apiVersion: v1
kind: Config
clusters:
- name: tamarack-test
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: tamarack-admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: tamarack-test
  context:
    cluster: tamarack-test
    user: tamarack-admin
current-context: tamarack-test
EOF
)"
(umask 077 && printf '%s\n' "$kubeconfig_text" >"$kubeconfig.tmp")
mv -f "$kubeconfig.tmp" "$kubeconfig"

# --- daemons' command lines -------------------------------------------------------------------------------
etcd_cmd=("$bin/etcd" --name=tamarack-test --data-dir="$state/etcd"
  --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port"
  --listen-peer-urls="http://127.0.0.1:$((etcd_port + 1))" --initial-advertise-peer-urls="http://127.0.0.1:$((etcd_port + 1))"
  --initial-cluster="tamarack-test=http://127.0.0.1:$((etcd_port + 1))"
  --log-level=warn
  # Test data: not worth an fsync per write on a shared disk.
  --unsafe-no-fsync)
apiserver_cmd=("$bin/kube-apiserver" --etcd-servers="http://127.0.0.1:$etcd_port"
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" --cert-dir="$state/run/apiserver"
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" --client-ca-file="$pki/ca.crt"
  --service-account-issuer=https://kubernetes.default.svc.cluster.local
  --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key"
  --service-cluster-ip-range="$service_range" --authorization-mode=Node,RBAC --allow-privileged=true
  # The `kubernetes` Service's endpoint would be 127.0.0.1, which Endpoints refuse: nothing in the tests
  # dials the API server through that Service.
  --endpoint-reconciler-type=none)
controller_manager_cmd=("$bin/kube-controller-manager" --kubeconfig="$kubeconfig" --leader-elect=false
  --bind-address=127.0.0.1 --secure-port="$cm_port" --cert-dir="$state/run/controller-manager"
  --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" --use-service-account-credentials=false
  --service-cluster-ip-range="$service_range")
scheduler_cmd=("$bin/kube-scheduler" --kubeconfig="$kubeconfig" --leader-elect=false
  --bind-address=127.0.0.1 --secure-port="$sched_port" --cert-dir="$state/run/scheduler")
# Stages from kwok's own module: nodes become Ready and keep a lease (the node lifecycle controller would
# otherwise mark them NotReady and evict their Pods), Pods run, Jobs' Pods complete, deleted Pods go.
stage="$bin/stage"
kwok_cmd=("$bin/kwok" --kubeconfig="$kubeconfig" --server-address="127.0.0.1:$kwok_port"
  --manage-all-nodes=false --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake
  --manage-nodes-with-label-selector= --disregard-status-with-annotation-selector=kwok.x-k8s.io/status=custom
  --disregard-status-with-label-selector= --cidr=10.0.0.0/16 --node-lease-duration-seconds=40
  --config="$stage/node/fast/node-initialize.yaml" --config="$stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml"
  --config="$stage/pod/fast/pod-ready.yaml" --config="$stage/pod/fast/pod-complete.yaml"
  --config="$stage/pod/fast/pod-delete.yaml")
daemons=(etcd apiserver controller-manager scheduler kwok)

# What the daemons run, binaries' times included: a rebuilt binary restarts them as a changed flag does.
config="$(
  for d in "${daemons[@]}"; do
    n="${d//-/_}_cmd[@]"
    printf '%s\n' "$d: ${!n}"
  done
  stat -c '%n %Y' "$bin"/etcd "$bin"/kube-* "$bin"/kwok
)"
if [ -f "$state/config" ] && [ "$(cat "$state/config")" != "$config" ]; then
  log "configuration or binaries changed: restarting"
  "$here/stop.sh" >&2
fi
printf '%s\n' "$config" >"$state/config"

# --- health checks ----------------------------------------------------------------------------------------
api() { curl -fsS --max-time 5 --cacert "$pki/ca.crt" --cert "$pki/admin.crt" --key "$pki/admin.key" "$@"; }
base="https://127.0.0.1:$api_port"
etcd_ok() { curl -fsS --max-time 2 "http://127.0.0.1:$etcd_port/health" | grep -q '"health":"true"'; }
apiserver_ok() { api "$base/readyz" | grep -qx ok; }
controller_manager_ok() { curl -fsSk --max-time 2 "https://127.0.0.1:$cm_port/healthz" | grep -qx ok; }
scheduler_ok() { curl -fsSk --max-time 2 "https://127.0.0.1:$sched_port/healthz" | grep -qx ok; }
answers() {
  for _ in $(seq 1 10); do
    if "$1" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  return 1
}
kwok_ok() { curl -fsS --max-time 2 "http://127.0.0.1:$kwok_port/healthz" | grep -qx ok; }

# --- daemons ----------------------------------------------------------------------------------------------
# A daemon keeps the directory it was started from as its own: start them from /, so a removed CI clone or
# worktree does not break them, and restart any that an earlier run started from a directory removed since.
cd /
for d in "${daemons[@]}"; do
  pidfile="$state/run/$d.pid"
  if alive "$pidfile" && [[ "$(readlink "/proc/$(cat "$pidfile")/cwd" 2>/dev/null)" == *" (deleted)" ]]; then
    log "$d runs from a removed directory: restarting it"
    "$here/stop.sh" "$d" >&2
  fi
done

for d in "${daemons[@]}"; do
  pidfile="$state/run/$d.pid"
  check="${d//-/_}_ok"
  # Half-alive: running, but not answering for 2 s (a daemon an earlier run left wedged, or one whose
  # port another process holds).
  if alive "$pidfile" && ! answers "$check"; then
    log "$d runs but does not answer: restarting it"
    "$here/stop.sh" "$d" >&2
  fi
  if ! alive "$pidfile"; then
    log "starting $d"
    n="${d//-/_}_cmd[@]"
    setsid "${!n}" </dev/null >>"$state/log/$d.log" 2>&1 9>&- &
    echo $! >"$pidfile"
  fi
  # 60 s each: the API server's first start (RBAC bootstrap, CRD and priority-and-fairness setup) takes
  # about 10 s on two busy cores.
  wait_for "$d" "$d" 300 "$check"
done

# --- fake GPU nodes ---------------------------------------------------------------------------------------
# Server-side apply: creates the nodes, or brings them back to this shape, whatever an earlier run or a
# test left. The status (capacity, allocatable) is applied through the status subresource, since updates
# of the node itself ignore it; kwok's stages keep it and add conditions, addresses and a lease.
apply() {
  api -X PATCH -H 'Content-Type: application/apply-patch+yaml' --data-binary @- \
    "$base/api/v1/nodes/$1$2?fieldManager=tamarack-kube-start&force=true" >/dev/null
}
resources='{"cpu": "64", "memory": "512Gi", "pods": "110", "ephemeral-storage": "1Ti", "nvidia.com/gpu": "8"}'
nodes=(tamarack-gpu-0 tamarack-gpu-1)
for n in "${nodes[@]}"; do
  node="$(
    cat <<EOF
{"apiVersion": "v1", "kind": "Node",
 "metadata": {"name": "$n",
   "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
   "labels": {"kubernetes.io/hostname": "$n", "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
     "type": "kwok", "node-role.kubernetes.io/gpu": "",
     "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8"}},
 "status": {"capacity": $resources, "allocatable": $resources}}
EOF
  )"
  printf '%s' "$node" | apply "$n" "" || die "could not apply node $n"
  printf '%s' "$node" | apply "$n" /status || die "could not apply the status of node $n"
done
# The API server pretty-prints JSON for curl: spaces and newlines go before matching.
node_ready() { api "$base/api/v1/nodes/$1" | tr -d ' \n' | grep -q '"type":"Ready","status":"True"'; }
for n in "${nodes[@]}"; do wait_for "kwok (node $n Ready)" kwok 300 node_ready "$n"; done
# The controller-manager gives each namespace its `default` ServiceAccount, which Pods need to be admitted.
default_sa() { api "$base/api/v1/namespaces/default/serviceaccounts/default"; }
wait_for "controller-manager (ServiceAccount default/default)" controller-manager 300 default_sa

echo "TAMARACK_TEST_KUBE=$kubeconfig"
