#!/bin/sh
# bench/train: full fine-tuning sentences/s of runner vs PyTorch (batch 32,
# 2 threads), alternating, medians. Options: `bench/train.sh --help`.
cd "$(dirname "$0")/.." && exec /usr/bin/python3 bench/harness.py train "$@"
