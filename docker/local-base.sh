#!/usr/bin/env bash
# Builds a local stand-in for python:3.10-slim-bookworm, for machines whose Docker engine can
# reach Debian's package mirror but no container registry:
#   1. a Debian 12 minimal root file system from Debian's packages (debootstrap minbase),
#      imported as an image;
#   2. the shared libraries CPython's extension modules link against, from apt;
#   3. a Python 3.10 installation of this machine (its sys.base_prefix) copied to /usr/local,
#      without its site-packages (the image makes its own virtual environment).
#
#   docker/local-base.sh [TAG]          (default TAG: spoof-detection-base:3.10-bookworm)
#
# Needs root (debootstrap), a running Docker engine, and PYTHON310 (or python3.10 on PATH).
# Environment: DEBIAN_MIRROR (default http://deb.debian.org/debian).
set -euo pipefail
tag="${1:-spoof-detection-base:3.10-bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
python="${PYTHON310:-python3.10}"

fail() { echo "error: $*" >&2; exit 1; }
command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap)"
docker info >/dev/null 2>&1 || fail "no Docker engine is reachable; start one (dockerd) first"
prefix="$("$python" -c 'import sys; assert sys.version_info[:2] == (3, 10); print(sys.base_prefix)')" \
  || fail "$python is not a Python 3.10; set PYTHON310 to one"
[ "$(id -u)" = 0 ] || fail "debootstrap needs root"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "local-base: debootstrap bookworm (minbase) from $mirror"
debootstrap --variant=minbase bookworm "$work/rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }
# debootstrap leaves the downloaded packages in apt's cache: over 100 MB of the image.
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
tar -C "$work/rootfs" -c . | docker import - "$tag-rootfs" >/dev/null

echo "local-base: Python from $prefix"
mkdir "$work/context"
# Without the test suite, IDLE and the static library, as the slim images.
tar -C "$prefix" --exclude='./lib/python3.10/site-packages/*' --exclude='__pycache__' \
  --exclude='./lib/python3.10/test' --exclude='./lib/python3.10/idlelib' \
  --exclude='./lib/python3.10/config-3.10-*/*.a' \
  -czf "$work/context/python.tar.gz" .
cat >"$work/context/Dockerfile" <<EOF
FROM $tag-rootfs
# What python:3.10-slim-bookworm carries: CA certificates and the libraries of CPython's
# extension modules (ssl, sqlite3, ctypes, bz2, lzma, zlib, readline, curses, dbm, uuid).
RUN apt-get update \\
    && apt-get install -y --no-install-recommends ca-certificates libssl3 libsqlite3-0 \\
       libffi8 libbz2-1.0 liblzma5 zlib1g libreadline8 libncursesw6 libgdbm6 libuuid1 netbase \\
       tzdata \\
    && apt-get clean && rm -rf /var/lib/apt/lists/*
ADD python.tar.gz /usr/local/
# The copied interpreter's run path names its old prefix; /usr/local/lib is on ld.so's path.
RUN ldconfig \\
    && ln -sf python3.10 /usr/local/bin/python && ln -sf python3.10 /usr/local/bin/python3 \\
    && python -c "import ssl, sqlite3, ctypes, bz2, lzma, zlib, readline, uuid, venv"
ENV LANG=C.UTF-8
CMD ["python3"]
EOF
docker build --network host -q -t "$tag" "$work/context" >/dev/null
docker image rm "$tag-rootfs" >/dev/null
echo "local-base: built $tag ($(docker image inspect -f '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}'))"
