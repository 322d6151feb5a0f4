#!/usr/bin/env bash
# GPU speed comparison of issue 16 (about 9 minutes on one H200): bench_step.py --compare, the official setting
# against the speed options, interleaved in one process per row. The two acceptance rows (UniMatch V1 R-101 crop
# 321 8+8, UniMatch V2 DINOv2-B crop 518 8+8) run 200 steps for the loss curves; the other methods at their
# paper crops 30. Each row's output goes straight to $OUT/<row>.txt (default ./speed_out), last line JSON.
#   tests/gpu/speed.sh              # every row
#   tests/gpu/speed.sh v1 v2        # the named rows only
set -uo pipefail
cd "$(dirname "$0")/../.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
out="${OUT:-speed_out}"
mkdir -p "$out"
bench() {  # row name, then bench_step.py arguments
  local row=$1; shift
  echo "== $row: $*"
  "${PYTHON:-python3}" tests/benchmarks/bench_step.py --compare --device cuda "$@" >"$out/$row.txt" 2>&1
  echo "   exit $?: $(grep -E 'official:|speed:|ratio' "$out/$row.txt" | tr -s ' ' | paste -sd ';')"
}
declare -A rows=(
  [v1]="--method unimatch --backbone resnet101 --crop 321 --batch 8 --steps 200 --warmup 3"
  [v2]="--method unimatch_v2 --backbone dinov2_base --crop 518 --batch 8 --steps 200 --warmup 3"
  [fixmatch]="--method fixmatch --backbone resnet101 --crop 321 --batch 8 --steps 30"
  [prevmatch]="--method prevmatch --backbone resnet101 --crop 321 --batch 8 --steps 30"
  [corrmatch]="--method corrmatch --backbone resnet101 --crop 321 --batch 8 --steps 30"
  [supervised]="--method supervised --backbone resnet101 --crop 321 --batch 16 --steps 30"
)
selected=("$@")
[ ${#selected[@]} -eq 0 ] && selected=(v1 v2 fixmatch prevmatch corrmatch supervised)
for row in "${selected[@]}"; do
  [ -n "${rows[$row]:-}" ] || { echo "unknown row $row; valid: ${!rows[*]}" >&2; exit 2; }
  # shellcheck disable=SC2086
  bench "$row" ${rows[$row]}
done
