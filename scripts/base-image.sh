#!/usr/bin/env bash
# Offline base images: make the Debian base every Demohub image starts FROM without any
# container registry. debootstrap (Debian's packages only) -> tar -> `docker import`.
# Idempotent and cached: an image that exists is left alone; the root file system tarball is
# kept under ${DEMOHUB_CACHE:-~/.cache/demohub} so re-importing after a prune takes seconds.
#
#   scripts/base-image.sh                # makes demohub/base:bookworm
#   BASE_IMAGE=demohub/base:bookworm EXTRA_TAGS="debian:bookworm-slim" scripts/base-image.sh
set -euo pipefail

BASE_IMAGE=${BASE_IMAGE:-demohub/base:bookworm}
SUITE=${BASE_SUITE:-bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
CACHE=${DEMOHUB_CACHE:-$HOME/.cache/demohub}
TARBALL="$CACHE/rootfs-$SUITE.tar"
log() { echo "[base-image] $*" >&2; }

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  for t in ${EXTRA_TAGS:-}; do docker tag "$BASE_IMAGE" "$t"; done
  exit 0
fi

mkdir -p "$CACHE"
if [ ! -s "$TARBALL" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    log "installing debootstrap"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  root=$(mktemp -d)
  trap 'rm -rf "$root"' EXIT
  log "debootstrap $SUITE (about 40 s)"
  debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates,curl \
    "$SUITE" "$root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 \
    || { tail -20 "$CACHE/debootstrap.log" >&2; exit 1; }
  # Keep the image lean and apt usable inside builds.
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -cf "$TARBALL.part" . && mv "$TARBALL.part" "$TARBALL"
fi
log "importing $BASE_IMAGE"
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["bash"]' \
  --change 'LABEL demohub.role=base' \
  "$TARBALL" "$BASE_IMAGE" >/dev/null
for t in ${EXTRA_TAGS:-}; do docker tag "$BASE_IMAGE" "$t"; done
log "done: $BASE_IMAGE"
