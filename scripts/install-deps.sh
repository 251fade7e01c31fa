#!/bin/sh
# install-deps.sh — installs the Debian packages runner needs. Idempotent:
# installs only what is missing. Run as root (or with sudo available).
#   scripts/install-deps.sh          build, test and plot dependencies
#   scripts/install-deps.sh --bench  also PyTorch and Node.js for bench/
set -eu

PKGS="build-essential pkg-config perl libconfig-dev libjansson-dev libutf8proc-dev libgsl-dev
zlib1g-dev libopenblas-openmp-dev libopenmpi-dev openmpi-bin gnuplot-nox valgrind curl ca-certificates git"
if [ "${1:-}" = "--bench" ]; then
    PKGS="$PKGS python3 python3-torch python3-numpy nodejs npm"
fi

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    echo "install-deps: all packages present"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
        echo "install-deps: need root to install:$missing" >&2
        exit 1
    fi
fi
echo "install-deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
