#!/usr/bin/env bash
# GPU checks and benchmarks on a CUDA machine with the repo checked out (run from the repo root):
#   bash bench/gpu.sh [OUT_DIR]
#
# 1. bench/kernel_check.py: the pure-PyTorch Mamba-2 (forward and gradients) and dechunk EMA against
#    mamba_ssm's Triton kernels, float32 and bf16, each against a float64 reference.
# 2. bench/gpu_speed.py: the card's ceilings, one Mamba-2 layer and training steps with the Triton scan
#    and with the pure one, interleaved; then training steps of the paper-width presets.
# 3. bench/inference_pairs.py --device cuda: batch-1 forward passes of isotropic Mamba-2 and the H-Nets whose
#    main network is Mamba-2 or windowed attention, interleaved, paired ratios with intervals, up to 2^20 bases.
#    Then the streaming segment on the GPU: bench-mamba2 and the m1 H-Net at 2^20 streamed in segments of 131,072
#    (the CUDA default), 16,384 (the CPU's) and run whole, interleaved; and (`compiled`) both eager and with the
#    backbone compiled at 1,024 and 16,384, where an eager batch-1 pass is bound by kernel launches.
# 4. `dnahnet bench inference --device cuda`: batch-1 forward throughput and memory up to 2^20 bases of the
#    Transformer and the full-attention H-Nets (a length that runs out of memory is reported as not fitting).
# OUT_DIR/report.md gathers them; APPEND_RESULTS=1 appends it to bench/RESULTS.md.
# STAGES (default check,speed,paper,pairs,segments,compiled,inference) picks stages, run in that order.
#
# Set-up: with internet, a .venv with dnahnet and mamba-ssm's Triton kernels (no CUDA extension build).
# On a machine with no package registry (PyTorch and Triton already there), put in .whl/ the wheels of
# dnahnet's missing dependencies and mamba-ssm's source archive, e.g. here:
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --platform manylinux_2_28_x86_64 -d .whl pysam biopython pyBigWig
#   MAMBA_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE pip download --no-deps --no-binary=:all: --no-build-isolation -d .whl mamba-ssm
# then the script installs them into a scratch folder and runs dnahnet from the checkout, without a build.
# STAGE_BUDGET_S (default: none) stops the whole run after that many seconds; a stage cut short keeps
# what it had written. On a fresh H200 (2026-12-04) kernel_check took over 4 minutes, most of it Triton
# compiling and autotuning mamba_ssm's kernels for float32 and bf16; gpu_speed took 3.6 minutes. On the second
# lease, STAGES=pairs,paper,inference ran in 431 s (paper's training part 175 s), on a fresh machine.
set -uo pipefail
OUT=${1:-runs/bench-gpu}
PY=${PYTHON:-python3}
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then
  echo "bench/gpu.sh: no GPU visible (nvidia-smi failed); nothing to do" >&2
  exit 2
fi
mkdir -p "$OUT"
END=$((SECONDS + ${STAGE_BUDGET_S:-1000000}))
left() { local s=$((END - SECONDS)); echo $((s > 1 ? s : 1)); }

if [ -d .whl ]; then
  SITE=$(mktemp -d)
  shopt -s nullglob
  wheels=(.whl/*.whl)
  [ ${#wheels[@]} -gt 0 ] && "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "${wheels[@]}"
  for archive in .whl/mamba_ssm-*.tar.gz; do
    tar xzf "$archive" -C "$SITE" --strip-components=1 --wildcards '*/mamba_ssm/*'
  done
  # the checkout's folders under the names the wheel gives them (pyproject.toml's package-dir)
  ln -s "$PWD/cli" "$SITE/dnahnet_cli"
  ln -s "$PWD/pipelines" "$SITE/dnahnet_pipelines"
  ln -s "$PWD/data_manifests" "$SITE/dnahnet_manifests"
  export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
  DNAHNET=("$PY" -m dnahnet_cli)
else
  if [ ! -x .venv/bin/python ]; then "$PY" -m venv .venv; fi
  .venv/bin/python -m pip install -q -e . 2>&1 | tail -2
  .venv/bin/python -m pip install -q packaging ninja einops triton 2>&1 | tail -2
  MAMBA_FORCE_BUILD=TRUE MAMBA_SKIP_CUDA_BUILD=TRUE .venv/bin/python -m pip install -q --no-build-isolation mamba-ssm 2>&1 | tail -2
  PY=.venv/bin/python
  DNAHNET=(.venv/bin/dnahnet)
fi
export PYTHONUNBUFFERED=1
DEVICE=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)
echo "bench/gpu.sh on $DEVICE; $("$PY" -c 'import torch, triton; print("torch", torch.__version__, "triton", triton.__version__)' 2>&1)"

STAGES=",${STAGES:-check,speed,paper,pairs,segments,compiled,inference},"
stage() { [[ $STAGES == *",$1,"* ]]; }
# a stage's budget: STAGE_S_<name> seconds (default: what is left of STAGE_BUDGET_S), never past the whole budget
cap() { local name="STAGE_S_$1" l; l=$(left); echo $(( ${!name:-$l} < l ? ${!name:-$l} : l )); }
declare -A rc=()
# run_stage NAME CMD...: CMD under NAME's time cap when NAME is among STAGES; rc[NAME] is its exit code, "-" if not run
run_stage() {
  local name=$1; shift
  rc[$name]=-
  stage "$name" || return 0
  timeout "$(cap "$name")" "$@"
  rc[$name]=$?
}
run_stage check "$PY" -m bench.kernel_check --json "$OUT/kernel_check.json" > >(tee "$OUT/kernel_check.txt")
wait $!  # tee has written all of it
# speed, then the same at the H-Net paper's width (d_model 512, d_state 128), where a step is less bound by kernel launches
run_stage speed "$PY" -m bench.gpu_speed --out "$OUT/speed"
run_stage paper "$PY" -m bench.gpu_speed --out "$OUT/speed_paper" --parts ceilings,train --seq-len 8192 --batch-size 8 \
  --configs paper-dna-transformer,paper-dna-mamba2,paper-dna-mamba2:pure-scan,paper-dna-hnet-transformer,paper-dna-hnet-mamba2
PAIRS=("$PY" bench/inference_pairs.py --device cuda --min-seconds 0 --threads 8)
run_stage pairs "${PAIRS[@]}" --segment 0 --repeats 12 --lengths 1024,16384,131072,1048576 \
  --configs bench-mamba2,bench-hnet-1stage-mamba2-m1,bench-hnet-1stage-mamba2,bench-hnet-1stage-swa --out "$OUT/pairs"
run_stage segments "${PAIRS[@]}" --segment 131072,16384,0 --repeats 10 --lengths 1048576 \
  --configs bench-mamba2,bench-hnet-1stage-mamba2-m1 --out "$OUT/segments"
run_stage compiled "${PAIRS[@]}" --segment 0 --compile --repeats 10 --lengths 1024,16384 \
  --configs bench-mamba2,bench-hnet-1stage-mamba2-m1 --out "$OUT/compiled"
run_stage inference "${DNAHNET[@]}" bench inference --device cuda --modes forward --repeats 2 \
  --configs bench-transformer,bench-mamba2,bench-hnet-1stage,bench-hnet-2stage \
  --lengths 1024,16384,131072,1048576 --out "$OUT/inference"
rm -f "$OUT/inference/results.tsv"  # results.json holds the same rows

{
  echo "## GPU checks and benchmarks: $DEVICE, $(date -u +%Y-%m-%d)"
  echo
  echo "Command: \`bash bench/gpu.sh $OUT\` (commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown));" \
       "stages ${STAGES:1:-1}; exit codes: kernel_check ${rc[check]}, gpu_speed ${rc[speed]} and ${rc[paper]} (paper width)," \
       "inference_pairs ${rc[pairs]}, ${rc[segments]} (segments) and ${rc[compiled]} (compiled), inference ${rc[inference]}" \
       "(124: cut at the time budget; -: not run)"
  echo
  [ -s "$OUT/kernel_check.txt" ] && { echo '```'; cat "$OUT/kernel_check.txt"; echo '```'; }
  echo
  [ -f "$OUT/speed/report.md" ] && sed -e 's/^# /### /' -e 's/^## /#### /' "$OUT/speed/report.md"
  echo
  [ -f "$OUT/speed_paper/report.md" ] && sed -e 's/^# .*/### At the paper'"'"'s width/' -e 's/^## /#### /' "$OUT/speed_paper/report.md"
  echo
  for part in pairs segments compiled; do
    [ -f "$OUT/$part/report.md" ] && sed -e 's/^# /### /' -e 's/^## /#### /' "$OUT/$part/report.md" && echo
  done
  [ -f "$OUT/inference/report.md" ] && sed -e 's/^# /### /' -e 's/^## /#### /' "$OUT/inference/report.md" | grep -v '^!\['
} > "$OUT/report.md"
rm -f "$OUT/kernel_check.txt"  # in report.md
if [ "${APPEND_RESULTS:-0}" = 1 ]; then
  { echo; cat "$OUT/report.md"; } >> bench/RESULTS.md
  echo "figures appended to bench/RESULTS.md"
fi
echo "report: $OUT/report.md"
for code in "${rc[@]}"; do [ "$code" = 0 ] || [ "$code" = - ] || exit 1; done
