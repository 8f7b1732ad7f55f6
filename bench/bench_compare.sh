#!/usr/bin/env bash
# Issue 3's benchmark: four architectures on har15, the same split, the same time budget each.
#   bash bench/bench_compare.sh [MINUTES_EACH] [OUT]
# Needs /tmp/bench/split.json (see bench/README.md). From scratch: no pretrained weights offline.
set -euo pipefail
MINUTES=${1:-7}
OUT=${2:-/tmp/bench/compare}
exec .venv/bin/actiscope compare ../shared/data/har15 \
  --models simple-cnn,resnet18,mobilenet_v3_large,efficientnet_b0 \
  --split /tmp/bench/split.json --image-size 112 --batch-size 64 --epochs 100 --lr 2e-3 \
  --warmup-epochs 1 --label-smoothing 0.1 --time-limit "$MINUTES" --ensemble 2 --out "$OUT"
