#!/bin/sh
# Builds the desktop image atelier/desktop:VERSION without an image registry:
#   1. a Debian bookworm root filesystem made by debootstrap from the host's
#      Debian mirror, loaded with `docker import` as atelier/debian-base:bookworm;
#   2. atelier-agent built on the host (no Go toolchain image can be pulled);
#   3. `docker build desktop/` on top of that base.
# Each step is skipped when its image exists and carries the content hash of
# its inputs (label dev.atelier.inputs), so a second run does nothing.
# With a registry, skip all this: build atelier-agent into desktop/image/ and
#   docker build -t atelier/desktop:VERSION desktop/
# (BASE_IMAGE defaults to debian:bookworm-slim).
#
#   scripts/build-image.sh [VERSION]     (VERSION defaults to `dev`)
# Prints the desktop image's reference on its last line.
set -eu
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

VERSION=${1:-dev}
BASE=atelier/debian-base:bookworm
IMAGE=atelier/desktop:$VERSION
LABEL=dev.atelier.inputs

log() { echo "build-image: $*" >&2; }

# label IMAGE prints the image's inputs label, or nothing if it has none.
label() { docker image inspect -f "{{index .Config.Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }

# The host's Debian mirror: the first deb.debian.org-style URI in the apt
# sources that serves the main archive.
mirror() {
  { grep -h '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}'
    grep -h '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}'
  } | grep -E '/debian/?$' | head -n1
}

# --- 1. the base ---------------------------------------------------------
MIRROR=$(mirror)
[ -n "$MIRROR" ] || { log "no Debian mirror in /etc/apt/sources.list(.d)"; exit 1; }
base_inputs=$(printf 'bookworm minbase %s %s\n' "$MIRROR" "$(sha256sum "$0" | cut -c1-64)" | sha256sum | cut -c1-64)
if [ "$(label "$BASE")" = "$base_inputs" ]; then
  log "$BASE is current"
else
  command -v debootstrap >/dev/null || { log "debootstrap missing: apt-get install debootstrap"; exit 1; }
  root=$(mktemp -d /var/tmp/atelier-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  log "debootstrap bookworm from $MIRROR"
  start=$(date +%s)
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >&2
  # The image's apt uses the same mirror, with updates and security fixes.
  sec=$(echo "$MIRROR" | sed 's|/debian/*$|/debian-security|')
  printf 'deb %s bookworm main\ndeb %s bookworm-updates main\ndeb %s bookworm-security main\n' \
    "$MIRROR" "$MIRROR" "$sec" >"$root/etc/apt/sources.list"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import --change "LABEL $LABEL=$base_inputs" \
    --change 'CMD ["/bin/bash"]' - "$BASE" >&2
  rm -rf "$root"
  trap - EXIT
  log "$BASE imported in $(( $(date +%s) - start ))s"
fi

# --- 2. the agent --------------------------------------------------------
CGO_ENABLED=0 go build -trimpath -ldflags "-X atelier/internal/version.Version=$VERSION" \
  -o desktop/image/atelier-agent ./cmd/atelier-agent
make -s BIN=desktop/image desktop/image/atelier-frameclock.so

# --- 3. the desktop image ------------------------------------------------
base_id=$(docker image inspect -f '{{.Id}}' "$BASE")
inputs=$( { echo "$base_id"; cat desktop/Dockerfile desktop/.dockerignore desktop/install-deps.sh desktop/image/atelier-agent desktop/image/atelier-frameclock.so; } \
  | sha256sum | cut -c1-64)
if [ "$(label "$IMAGE")" = "$inputs" ]; then
  log "$IMAGE is current"
else
  log "building $IMAGE"
  start=$(date +%s)
  old=$(docker image inspect -f '{{.Id}}' "$IMAGE" 2>/dev/null || true)
  docker build --build-arg BASE_IMAGE="$BASE" --label "$LABEL=$inputs" -t "$IMAGE" desktop/ >&2
  log "$IMAGE built in $(( $(date +%s) - start ))s, $(docker image inspect -f '{{.Size}}' "$IMAGE") bytes"
  # The image this one replaces, now untagged; kept while a desktop runs from it.
  [ -z "$old" ] || docker rmi "$old" >/dev/null 2>&1 || true
fi
echo "$IMAGE"
