#!/usr/bin/env bash
# Builds the test control plane's binaries at the pinned versions when they are not built yet, and prints
# the directory that holds them: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, and
# kwok's stage files (stage/).
#
# Everything comes from the Go module proxy; setup-envtest's and the release pages' downloads are not
# reachable. Each binary is kept by version outside the repository, in $TAMARACK_KUBE_CACHE/kube-<k8s
# version>/bin (default /var/cache/tamarack), and used only if `go version -m` says it was built from the
# pinned module version, so a bump of a pin rebuilds that binary alone.
#
#   - etcd: go.etcd.io/etcd/server/v3 is the etcd program, but its go.mod has replace directives, which
#     `go install module@version` refuses; it is built in a throwaway helper module that requires it.
#   - kube-apiserver, kube-controller-manager and kube-scheduler (the scheduler binds Pods to the fake nodes;
#     the controller-manager makes namespaces' default ServiceAccount, finishes namespace deletion and
#     collects garbage): k8s.io/kubernetes requires its staging modules (k8s.io/api, …) at v0.0.0 and
#     replaces them with ./staging; outside its own repository those replaces do not apply, so the helper
#     module replaces each one with the matching published k8s.io/X v0.<minor>.<patch>. -ldflags stamp
#     the version: without them the server calls itself v0.0.0-master. The release's godebug defaults are
#     copied too, so Go 1.26 runs it with the settings it was released with.
#   - kwok: `go install`, and its stage files (Node and Pod lifecycles) copied from its module.
#
# The helper modules live in a temporary directory under the cache, never in the repository: the
# project's go.mod must not gain k8s.io/kubernetes. A cold build (empty GOCACHE, modules downloaded) took
# 20 minutes on two cores shared with other builds, 12 minutes of CPU time (etcd 2, the three Kubernetes
# programs 14, kwok 5); a warm cache costs nothing.
#
#   bin="$(infra/kube/build.sh)"
set -euo pipefail

k8s_version=v1.34.4       # the Kubernetes release: kube-apiserver, and the API the tests run against
staging_version=v0.34.4   # the same release's staging modules (k8s.io/api, client-go, …)
etcd_version=v3.6.16      # etcd 3.6, the line Kubernetes 1.34 supports
kwok_version=v0.8.0
cache="${TAMARACK_KUBE_CACHE:-/var/cache/tamarack}/kube-$k8s_version"
bin="$cache/bin"

# built <binary> <module> <version>: the binary's build info names the module at that version, as the
# main module (go install) or as a dependency of a helper module.
built() { go version -m "$bin/$1" 2>/dev/null | grep -Eq "^[[:space:]]+(mod|dep)[[:space:]]+$2[[:space:]]+$3([[:space:]]|$)"; }
kube_built() {
  built kube-apiserver k8s.io/kubernetes "$k8s_version" &&
    built kube-controller-manager k8s.io/kubernetes "$k8s_version" &&
    built kube-scheduler k8s.io/kubernetes "$k8s_version"
}
all_built() {
  built etcd go.etcd.io/etcd/server/v3 "$etcd_version" &&
    kube_built &&
    built kwok sigs.k8s.io/kwok "$kwok_version" &&
    [ -f "$bin/stage/.kwok-$kwok_version" ]
}

# GOFLAGS: -mod=mod lets the helper modules take the requirements they are missing (a caller's -mod=vendor
# or -tags must not change what is built); GOTOOLCHAIN=local builds with the installed go instead of
# fetching the one a go.mod names. nice: the build shares two cores with whoever else is working.
gobuild() { nice -n 10 env CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local GOWORK=off "$@"; }

if ! all_built; then
  mkdir -p "$bin"
  # One build at a time per cache directory; a second caller waits and then finds the binaries.
  exec 9>"$cache/.lock"
  flock 9
  tmp="$(mktemp -d "$cache/.build.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  start=$(date +%s)

  if ! built etcd go.etcd.io/etcd/server/v3 "$etcd_version"; then
    echo "kube: building etcd $etcd_version into $bin" >&2
    mkdir "$tmp/etcd"
    (
      cd "$tmp/etcd"
      gobuild go mod init tamarack.invalid/kube-build/etcd >/dev/null 2>&1
      gobuild go mod edit -require "go.etcd.io/etcd/server/v3@$etcd_version"
      gobuild go build -trimpath -ldflags=-s -o "$tmp/etcd.bin" go.etcd.io/etcd/server/v3
    ) >&2
    mv -f "$tmp/etcd.bin" "$bin/etcd"
  fi

  if ! kube_built; then
    echo "kube: building kube-apiserver, kube-controller-manager, kube-scheduler $k8s_version into $bin (the long part)" >&2
    mkdir "$tmp/apiserver"
    (
      cd "$tmp/apiserver"
      gobuild go mod init tamarack.invalid/kube-build/apiserver >/dev/null 2>&1
      gobuild go mod edit -require "k8s.io/kubernetes@$k8s_version"
      # One replace per staging module, read from the release's own go.mod.
      gomod="$(gobuild go mod download -json "k8s.io/kubernetes@$k8s_version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
      [ -s "$gomod" ] || { echo "kube: no go.mod for k8s.io/kubernetes@$k8s_version" >&2; exit 1; }
      staging="$(sed -n 's|^[[:space:]]*\(replace[[:space:]]\+\)\?\(k8s.io/[a-z0-9-]*\) => ./staging/.*|\2|p' "$gomod")"
      [ -n "$staging" ] || { echo "kube: no staging replaces in $gomod" >&2; exit 1; }
      for m in $staging; do gobuild go mod edit -replace "$m=$m@$staging_version"; done
      for g in $(sed -n 's/^godebug[[:space:]]\+\([a-z0-9]*=[^[:space:]]*\).*/\1/p' "$gomod"); do gobuild go mod edit -godebug "$g"; done
      minor="$(echo "$k8s_version" | cut -d. -f2)"
      pkg=k8s.io/component-base/version
      ldflags="-s -X $pkg.gitVersion=$k8s_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
      ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
      mkdir "$tmp/kube"
      gobuild go build -trimpath -ldflags="$ldflags" -o "$tmp/kube/" k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler
    ) >&2
    mv -f "$tmp/kube/"* "$bin/"
  fi

  if ! built kwok sigs.k8s.io/kwok "$kwok_version" || [ ! -f "$bin/stage/.kwok-$kwok_version" ]; then
    echo "kube: building kwok $kwok_version into $bin" >&2
    (
      cd "$tmp"
      gobuild env GOBIN="$tmp" go install -trimpath -ldflags=-s "sigs.k8s.io/kwok/cmd/kwok@$kwok_version"
      dir="$(gobuild go mod download -json "sigs.k8s.io/kwok@$kwok_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
      rm -rf "$tmp/stage"
      cp -R "$dir/kustomize/stage" "$tmp/stage"
      chmod -R u+w "$tmp/stage"
      touch "$tmp/stage/.kwok-$kwok_version"
    ) >&2
    rm -rf "$bin/stage"
    mv -f "$tmp/stage" "$bin/stage"
    mv -f "$tmp/kwok" "$bin/kwok"
  fi
  echo "kube: built in $(($(date +%s) - start)) s" >&2
fi
echo "$bin"
