#!/usr/bin/env bash
# Finding (b), one factor at a time: the XXZ QNN under label flips on the paper's grid (P), on P with one of its
# four differences from the wide grid (W) changed alone, and on W. --n-points is chosen so that every grid but
# count40 keeps P's 41 training states per class (so the grid spacing differs a little between grids).
# Usage: bash docs/findings/grid_factors/run.sh OUT   (then: python docs/findings/grid_factors/analyze.py OUT)
set -euo pipefail
OUT=${1:?an output directory}
Q=${QROBUST:-qrobust}
COMMON=(--dataset xxz --model qnn --corruption flip --seeds 10 --alphas 0,0.1,0.2,0.3,0.4,0.45,0.5,0.55,0.6,0.7,0.8,0.9)
declare -A GRID=(
  [P]="--grid paper"
  [count40]="--grid paper --n-points 170"
  [window]="--grid paper --window 0.2 --n-points 212"
  [placement]="--grid paper --val-placement second --n-points 173"
  [range]="--grid paper --param-range 0,2 --n-points 173"
  [W]="--grid wide"
)
for name in P W count40 window placement range; do
  # shellcheck disable=SC2086
  "$Q" sweep "${COMMON[@]}" ${GRID[$name]} --out "$OUT/$name"
done
