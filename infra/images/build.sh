#!/usr/bin/env bash
# Builds the built-in sandbox images from Debian packages, so that sandboxes need no registry on the internet:
#   shell   Debian bookworm's Essential packages (mmdebstrap --variant=essential), merged /usr
#   python  the same plus python3 and rsync (rsync -e ssh through the SSH gateway, docs/ssh.md)
# Each root filesystem is trimmed (no documentation but copyright files, no man pages, no locales, no apt
# lists or caches, no device nodes: the runtime provides /dev) and turned into a single-layer OCI image by `tamarack images build`.
# The OCI layouts and images.json (name -> repository, digest) land in $cache/<key>, where key hashes
# everything that defines the images (this script and the image builder's sources): the images are rebuilt
# only when one of those changes (or with --force). $cache/current points to the latest build. Package
# versions are those of the mirror on the day of the build; --force (or a change here) takes new ones.
#
# Then `tamarack seed --demo` pushes the images into the platform's registry store (see
# docs/sandbox-backends.md, "Images").
#
# Usage: infra/images/build.sh [--force]      prints the output directory on its last line
# Environment:
#   TAMARACK_IMAGES_CACHE   where builds are kept (default /var/cache/tamarack-images, or ~/.cache/... when
#                           that is not writable)
#   TAMARACK_DEBIAN_MIRROR  Debian mirror (default http://deb.debian.org/debian); TAMARACK_DEBIAN_SECURITY too
#   TAMARACK_BIN            a built tamarack binary (default: go build ./cmd/tamarack)
# Exit status 3: a build tool is missing (mmdebstrap, or go without TAMARACK_BIN).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"

cache="${TAMARACK_IMAGES_CACHE:-/var/cache/tamarack-images}"
if ! mkdir -p "$cache" 2>/dev/null || [ ! -w "$cache" ]; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/tamarack-images"
  mkdir -p "$cache"
fi
suite=bookworm
mirror="${TAMARACK_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${TAMARACK_DEBIAN_SECURITY:-http://deb.debian.org/debian-security}"
# File times in the images and the image config's date: the same packages give the same digests.
export SOURCE_DATE_EPOCH=1735689600 # 2025-01-01T00:00:00Z

# name -> extra packages on top of the Essential set.
images=(shell python)
declare -A include=([shell]="" [python]="python3 rsync")

key="$(cat infra/images/build.sh testbed/image/build.go cmd/tamarack/images_cmd.go | sha256sum | cut -c1-16)"
out="$cache/$key"
if [ "${1:-}" != "--force" ] && [ -f "$out/images.json" ]; then
  ln -sfn "$key" "$cache/current"
  echo "built-in images: up to date in $out" >&2
  echo "$out"
  exit 0
fi

if ! command -v mmdebstrap >/dev/null; then
  echo "mmdebstrap not found: install it with 'apt-get install mmdebstrap' (Debian/Ubuntu)" >&2
  exit 3
fi
bin="${TAMARACK_BIN:-}"
if [ -z "$bin" ] && ! command -v go >/dev/null; then
  echo "go not found (or set TAMARACK_BIN to a built tamarack binary)" >&2
  exit 3
fi

start=$SECONDS
tmp="$(mktemp -d "$cache/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
if [ -z "$bin" ]; then
  go build -o "$tmp/tamarack" ./cmd/tamarack
  bin="$tmp/tamarack"
fi

# Trimming: dpkg never writes documentation (copyright files excepted: licences travel with the binaries),
# man or info pages, or translations; the hook removes what package installation leaves behind.
trim=(
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*'
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/* "$1"/var/cache/debconf/*-old "$1"/var/lib/dpkg/*-old'
)
# Images are built side by side: most of the time is downloading and unpacking packages.
pids=()
for name in "${images[@]}"; do
  extra=()
  if [ -n "${include[$name]}" ]; then extra=(--include="${include[$name]}"); fi
  mmdebstrap --variant=essential "${extra[@]}" \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr --dpkgopt=force-unsafe-io \
    "${trim[@]}" --skip=output/dev \
    "$suite" "$tmp/$name.tar" \
    "deb $mirror $suite main" "deb $mirror $suite-updates main" "deb $security $suite-security main" \
    >"$tmp/$name.log" 2>&1 &
  pids+=($!)
done
for i in "${!images[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "mmdebstrap failed for ${images[$i]}:" >&2
    tail -n 30 "$tmp/${images[$i]}.log" >&2
    exit 1
  fi
done
built="$tmp/out"
for name in "${images[@]}"; do
  pkgs="${include[$name]}"
  "$bin" images build --from "$tmp/$name.tar" --name "$name" --out "$built" \
    --cmd "/bin/sh" --workdir / \
    --created-by "mmdebstrap --variant=essential ${pkgs:+--include=$pkgs }$suite (infra/images/build.sh $key)" >&2
  echo "  $name: $(stat -c %s "$tmp/$name.tar") bytes unpacked (tar)" >&2
done

rm -rf "$out"
mv "$built" "$out"
ln -sfn "$key" "$cache/current"
# Keep the three newest builds (branches built alternately by CI do not rebuild each time), drop older ones.
find "$cache" -mindepth 1 -maxdepth 1 -type d ! -name '.build-*' -printf '%T@ %p\n' | sort -rn | tail -n +4 |
  cut -d' ' -f2- | xargs -r rm -rf
echo "built-in images: built in $((SECONDS - start)) s into $out" >&2
echo "$out"
