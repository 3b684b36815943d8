#!/usr/bin/env bash
# The paper-scale DNA data-efficiency comparison on hg38 (see README.md in this folder).
#   pipelines/paper_dna/run.sh [GENOMES_DIR] [OUT_DIR] [extra options for dnahnet_pipelines.paper_dna_recipe ...]
# Resumable: rerun the same command after an interruption.
set -euo pipefail
GENOMES=${1:-genomes}
OUT=${2:-runs/paper_dna}
shift $(( $# < 2 ? $# : 2 ))

# 1. hg38 (UCSC, bgzip + index) and the Basenji/Enformer train/valid/test BED that HyenaDNA uses.
dnahnet data fetch hg38 --dest "$GENOMES"

# 2. Budget (FLOPs, GPU-hours at an assumed throughput) into $OUT/budget.md, then the five runs x 3 seeds
#    and the report ($OUT/report.md). Several GPUs: start one process per GPU with --shard K/N
#    (CUDA_VISIBLE_DEVICES=K ... --shard K/N), then rerun once without --shard for the report.
python -m dnahnet_pipelines.paper_dna_recipe \
    --genome "$GENOMES/hg38.fa.gz" --split-bed "$GENOMES/human-sequences.bed" \
    --out "$OUT" --device cuda "$@"
