#!/usr/bin/env bash
# GPU proof: on a host with an NVIDIA GPU, its driver and the NVIDIA container toolkit, show that a
# sandbox gets a real GPU the way operators will run it. It
#   1. checks the host has a GPU (nvidia-smi -L) and fails clearly when it has none;
#   2. reads the host's CDI spec (/etc/cdi, /var/run/cdi), or generates one into the work directory with
#      nvidia-ctk cdi generate (nothing is written to /etc/cdi);
#   3. builds tamarack, runs `tamarack doctor`, seeds the demo data into a throwaway data directory and
#      starts `tamarack serve` on it;
#   4. runs bench/gpuproof against it: staff enrol this host's GPUs (a local pool, node discovered), the
#      demo vendor lists them, and the demo SME launches a 1-GPU sandbox from IMAGE, a CUDA image with
#      python3 and torch pinned by digest (staff allow it on the pool, the vendor offers it as a model
#      listing's try-it image, the SME orders that listing's free plan: the path of any image), and runs
#      `nvidia-smi -L` and an fp16 matrix multiply in its terminal; the same multiply runs outside on the
#      same GPU and both throughputs are printed. Without IMAGE the sandbox runs the built-in python image,
#      which has no torch: the GPU is listed, the multiply skipped.
#
# Run as root from the repository root (Go 1.26 in PATH), on a host that can pull IMAGE:
#   IMAGE=docker.io/pytorch/pytorch@sha256:<digest of a -cuda…-runtime tag> bench/gpu-proof.sh
# Settings: IMAGE, PORT (18080), WORK (a new temporary directory), KEEP=1 keeps WORK, N and ITERS (the
# multiply), PYTHON (python3 with torch, for the multiply outside). Put the figures in docs/performance.md.
set -euo pipefail

fail() { echo "gpu-proof: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || fail "run as root: sandboxes need root (user namespaces, cgroups, loop mounts)"
[ -f go.mod ] && [ -d cmd/tamarack ] || fail "run from the repository root"
command -v go >/dev/null || fail "go not found: install Go 1.26"

# 1. A GPU, or a clear no.
SMI=$(command -v nvidia-smi || true)
[ -n "$SMI" ] || { [ -x /usr/local/nvidia/bin/nvidia-smi ] && SMI=/usr/local/nvidia/bin/nvidia-smi; } || true
[ -n "$SMI" ] || fail "no NVIDIA GPU here: nvidia-smi not found. This proof needs a host with an NVIDIA GPU, its driver and the NVIDIA container toolkit."
GPUS=$("$SMI" -L 2>&1) || fail "no NVIDIA GPU here: nvidia-smi -L failed: $GPUS"
grep -q '^GPU [0-9]' <<<"$GPUS" || fail "no NVIDIA GPU here: nvidia-smi -L lists none: $GPUS"
echo "host GPUs:"; sed 's/^/  /' <<<"$GPUS"

WORK=${WORK:-$(mktemp -d /var/tmp/tamarack-gpu-proof.XXXXXX)}
mkdir -p "$WORK"
chmod 711 "$WORK"
PORT=${PORT:-18080}
SERVE_PID=
cleanup() {
  if [ -n "$SERVE_PID" ]; then kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  if grep -q " $WORK/" /proc/self/mounts; then
    echo "a sandbox is still mounted under $WORK (it outlives serve by design); kept it: stop it with runc --root $WORK/data/sandboxes/.runc" >&2
  elif [ "${KEEP:-0}" = 1 ]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# 2. The CDI spec: the host's, or one generated for this run.
CDI_DIRS=/etc/cdi,/var/run/cdi
if ! grep -qs 'nvidia.com/gpu' /etc/cdi/* /var/run/cdi/* 2>/dev/null; then
  command -v nvidia-ctk >/dev/null || fail "no CDI spec in /etc/cdi or /var/run/cdi and no nvidia-ctk to generate one: install the NVIDIA container toolkit"
  mkdir -p "$WORK/cdi"
  nvidia-ctk cdi generate --output="$WORK/cdi/nvidia.yaml" >"$WORK/cdi-generate.log" 2>&1 ||
    fail "nvidia-ctk cdi generate failed: $(tail -3 "$WORK/cdi-generate.log")"
  CDI_DIRS=$WORK/cdi
  echo "generated a CDI spec: $WORK/cdi/nvidia.yaml (for this run only; operators write /etc/cdi/nvidia.yaml)"
fi

# 3. Build, check the host, seed, serve.
go build -o "$WORK/tamarack" ./cmd/tamarack
go build -o "$WORK/gpuproof" ./bench/gpuproof
DATA=$WORK/data
"$WORK/tamarack" doctor --data "$DATA" --cdi-dirs "$CDI_DIRS" || fail "tamarack doctor says this host cannot run sandboxes (above)"
"$WORK/tamarack" seed --demo --data "$DATA" >"$WORK/seed.log" 2>&1 || fail "seed failed: $(tail -5 "$WORK/seed.log")"
"$WORK/tamarack" serve --data "$DATA" --addr "127.0.0.1:$PORT" --cdi-dirs "$CDI_DIRS" --usage-interval 5s >"$WORK/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  kill -0 "$SERVE_PID" 2>/dev/null || fail "tamarack serve exited: $(tail -5 "$WORK/serve.log")"
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null || fail "tamarack serve is not ready: $(tail -5 "$WORK/serve.log")"

# 4. The proof.
echo
echo "GPU proof on $(hostname), $(date -u +%Y-%m-%dT%H:%MZ), driver $("$SMI" --query-gpu=driver_version --format=csv,noheader | head -1)"
"$WORK/gpuproof" -url "http://127.0.0.1:$PORT" -image "${IMAGE:-}" -n "${N:-8192}" -iters "${ITERS:-50}" -python "${PYTHON:-python3}" ||
  fail "the proof failed (serve's log: $WORK/serve.log; KEEP=1 keeps it)"
