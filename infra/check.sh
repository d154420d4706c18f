#!/usr/bin/env bash
# Validates the deployment files without a cluster, Docker or Tilt (see infra/check/main.go for what it
# checks): builds every kustomization, decodes each object strictly into its Kubernetes API type,
# cross-checks references, runs the Tiltfile against stand-ins for Tilt's builtins, and hands nats.conf and
# the dev gateway's nginx config to nats-server -t / nginx -t when those are installed.
#
# infra/check is a Go module of its own (Kubernetes and kustomize libraries): the platform's go.mod stays
# free of them. The first run downloads those modules through the Go module proxy.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/infra/check"
exec go run . -root "$root" "$@"
