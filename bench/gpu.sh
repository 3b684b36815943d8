#!/usr/bin/env bash
# GPU benchmarks on a fresh CUDA machine with the repo checked out (run from the repo root):
#   bash bench/gpu.sh [OUT_DIR]
# Installs dnahnet and mamba-ssm's Triton kernels (no CUDA extension build), checks the
# pure-PyTorch Mamba-2 and dechunk EMA against them (bf16), runs `dnahnet bench inference`
# and `dnahnet bench train` on the GPU, and appends the figures, with the device named,
# to bench/RESULTS.md.
set -euo pipefail
OUT=${1:-runs/bench-gpu}
PY=${PYTHON:-python3}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then
  echo "bench/gpu.sh: no GPU visible (nvidia-smi failed); nothing to do" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
PY=.venv/bin/python
"$PY" -m pip install -q -e . 2>&1 | tail -2
"$PY" -m pip install -q packaging ninja einops triton 2>&1 | tail -2
MAMBA_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE "$PY" -m pip install -q --no-build-isolation mamba-ssm 2>&1 | tail -2
mkdir -p "$OUT"
DEVICE=$(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)
"$PY" -m bench.kernel_check | tee "$OUT/kernel_check.txt"
.venv/bin/dnahnet bench inference --device cuda \
  --configs bench-transformer,bench-mamba2,bench-hnet-1stage,bench-hnet-2stage \
  --lengths 1024,4096,16384,65536,131072,262144,1048576 --window 16384 --out "$OUT/inference"
.venv/bin/dnahnet bench train --device cuda \
  --configs cpu-transformer,cpu-mamba2,cpu-hnet-transformer,cpu-hnet-mamba2 --seq-len 4096 --batch 16 \
  --out "$OUT/train"
{
  echo
  echo "## GPU benchmarks: $DEVICE, $(date -u +%Y-%m-%d)"
  echo
  echo "Command: \`bash bench/gpu.sh $OUT\` (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo
  echo '```'; cat "$OUT/kernel_check.txt"; echo '```'
  echo
  sed -e 's/^# /### /' "$OUT/inference/report.md" | grep -v '^!\['
  echo
  sed -e 's/^# /### /' "$OUT/train/report.md"
} >> bench/RESULTS.md
echo "figures appended to bench/RESULTS.md; plots in $OUT"
