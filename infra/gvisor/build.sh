#!/usr/bin/env bash
# Builds gVisor's runsc at the pinned version when it is not built yet, and prints its path.
#
# runsc comes from the Go module proxy (gvisor.dev/gvisor serves gVisor's `go` branch, which builds with
# the go tool; the master branch needs Bazel). It is a static binary (CGO_ENABLED=0), kept by version
# outside the repository: $TAMARACK_RUNSC_CACHE/runsc-<version>/runsc, default /var/cache/tamarack. A
# cached binary is used only if `go version -m` says it was built from the pinned module version, so a
# bump of the pin rebuilds. The build takes about 3 minutes on two cores.
#
# Debian's runsc package (2022) is not used: it predates nvproxy (GPUs) and exec under its seccomp filter.
#
#   runsc="$(infra/gvisor/build.sh)"
set -euo pipefail

version=v0.0.0-20260905035102-160fafc42237
module=gvisor.dev/gvisor
cache="${TAMARACK_RUNSC_CACHE:-/var/cache/tamarack}/runsc-$version"
bin="$cache/runsc"

built() { go version -m "$bin" 2>/dev/null | grep -Eq "^[[:space:]]+mod[[:space:]]+$module[[:space:]]+$version([[:space:]]|$)"; }

if ! built; then
  mkdir -p "$cache"
  # One build at a time per cache directory; a second caller waits and then finds the binary.
  exec 9>"$cache/.lock"
  flock 9
  if ! built; then
    tmp="$(mktemp -d "$cache/.build.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    echo "building runsc $version (about 3 minutes) into $cache" >&2
    start=$(date +%s)
    # GOFLAGS cleared: a caller's -mod=vendor or -tags must not change what is built; GOTOOLCHAIN=local
    # builds with the installed go (gVisor's go.mod names its minimum) instead of fetching another.
    env CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local GOBIN="$tmp" go install "$module/runsc@$version" >&2
    mv -f "$tmp/runsc" "$bin"
    echo "built runsc in $(( $(date +%s) - start )) s" >&2
  fi
fi
echo "$bin"
