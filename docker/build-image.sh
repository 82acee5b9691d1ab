#!/usr/bin/env bash
# Builds the CPU or GPU image: `make image-cpu` / `make image` run this.
#
#   docker/build-image.sh cpu|gpu TAG [BASE]
#
# BASE defaults to the Dockerfile's own (python:3.10.13-slim-bookworm, or the CUDA image).
# For the CPU image, when that base is neither present nor pullable (no registry reachable),
# the local stand-in from docker/local-base.sh is built and used instead, and the build says
# so. If pip on this machine uses its own CA bundle (PIP_CERT, or `pip config`'s
# global.cert), the build stage gets a copy of it in docker/build-ca/ca.crt. The build
# stage is kept as TAG-build (the cache of the next build); nothing untagged is left behind.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="$1" tag="$2" base="${3:-}"
dockerfile=docker/Dockerfile
[ "$kind" = cpu ] && dockerfile=docker/Dockerfile.cpu
LOCAL_BASE=spoof-detection-base:3.10-bookworm

fail() { echo "error: $*" >&2; exit 1; }
docker info >/dev/null 2>&1 || fail "no Docker engine is reachable: start one (as root: \
dockerd &, or systemctl start docker) and check that \`docker info\` answers"

default_base="$(sed -n 's/^ARG BASE=//p' "$dockerfile")"
if [ -z "$base" ]; then
  base="$default_base"
  if ! docker image inspect "$base" >/dev/null 2>&1 && ! docker pull -q "$base" >/dev/null 2>&1; then
    [ "$kind" = cpu ] || fail "cannot pull the GPU base $base; give one with BASE=IMAGE"
    echo "build-image: $base cannot be pulled here; using the local stand-in $LOCAL_BASE"
    docker image inspect "$LOCAL_BASE" >/dev/null 2>&1 || docker/local-base.sh "$LOCAL_BASE"
    base="$LOCAL_BASE"
  fi
fi

cert="${PIP_CERT:-$(python3 -m pip config get global.cert 2>/dev/null || true)}"
rm -f docker/build-ca/ca.crt
trap 'rm -f docker/build-ca/ca.crt' EXIT
if [ -n "$cert" ]; then
  [ -s "$cert" ] || fail "pip's CA bundle $cert (PIP_CERT or pip config) is missing"
  cp "$cert" docker/build-ca/ca.crt
fi

echo "build-image: $tag from $dockerfile on $base"
started=$(date +%s)
# The build stage gets its own tag ($tag-build) so that it stays the cache of the next build
# instead of an untagged image; what a rebuild leaves untagged (the tag's previous image, the
# previous build stage) is removed by the label both stages carry. Without this every
# rebuild kept about 8 GB, and a machine that builds on each CI run filled its disk.
docker build --network host -f "$dockerfile" --build-arg "BASE=$base" --target build \
  -t "$tag-build" .
docker build --network host -f "$dockerfile" --build-arg "BASE=$base" -t "$tag" .
docker image prune -f --filter label=org.spoof-detection.image >/dev/null
size=$(docker image inspect -f '{{.Size}}' "$tag")
echo "build-image: built $tag in $(( $(date +%s) - started )) s, $(( size / 1000000 )) MB"
