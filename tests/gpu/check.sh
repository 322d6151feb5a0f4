#!/usr/bin/env bash
# GPU check of issue 15 (about 8 minutes or less on one GPU): every method a few steps in bf16 and fp16 on its
# paper encoder at a small crop, a 1-process NCCL run through the real DDP path, and gradient accumulation;
# one line per row with step time and peak memory, also written to $OUT/gpu_check.tsv when OUT is set.
#   tests/gpu/check.sh                      # on CUDA
#   tests/gpu/check.sh --device cpu         # the tiny CPU mode (the test suite runs one row of it)
#   tests/gpu/check.sh --rows 'ddp/*'       # a subset; more options: --steps, --crop, --batch
#   tests/gpu/check.sh --rows resume/2rank  # exact resume of 2 ranks sharing the GPU (gloo), SIGKILL + relaunch
set -euo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -u tests/gpu/check.py "$@"
