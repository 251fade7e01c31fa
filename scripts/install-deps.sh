#!/bin/sh
# install-deps.sh — installs the Debian packages runner needs. Idempotent:
# installs only what is missing. Run as root (or with sudo available).
#   scripts/install-deps.sh          build, test and plot dependencies (the tests
#                                    use Python's csv/json, and PyTorch as the
#                                    reference for the Hugging Face round trip;
#                                    clang, its libFuzzer runtime and libomp: make fuzz)
#   scripts/install-deps.sh --build  only what building needs (Dockerfile's build stage)
#   scripts/install-deps.sh --bench  also ONNX (python3-onnx writes the int8 peer's model)
#                                    and Node.js for bench/; npm only when no npm is on
#                                    PATH (an npm outside Debian's conflicts with it)
set -eu

# oneDNN (libdnnl-dev) runs the GEMMs; OpenBLAS only for bench/gemm's comparison
BUILD="build-essential pkg-config perl libconfig-dev libjansson-dev libutf8proc-dev libgsl-dev
zlib1g-dev libdnnl-dev libopenblas-openmp-dev libopenmpi-dev"
PKGS="$BUILD openmpi-bin gnuplot-nox valgrind curl ca-certificates git python3 python3-numpy python3-torch
clang libclang-rt-14-dev libomp-14-dev"
case "${1:-}" in
--build) PKGS="$BUILD" ;;
--bench)
    PKGS="$PKGS python3-onnx nodejs"
    command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
    ;;
esac

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
