#!/bin/sh
# bench/encode: sentences/s of runner vs PyTorch vs ONNX Runtime on the SST-2 dev
# sentences (batch 32, 2 threads), alternating, medians. Options: see
# `bench/encode.sh --help` (--rounds R, --warmup W, --threads N, --model DIR ...).
cd "$(dirname "$0")/.." && exec /usr/bin/python3 bench/harness.py encode "$@"
