#!/usr/bin/env bash
# The GPU check (issue "On a GPU"), run from the repository root on a machine with an NVIDIA GPU and
# JAX's CUDA build already installed (the device machine has no network: qrobust's pure-Python
# dependencies that its image lacks travel as wheels in .whl/). Writes under $OUT (default runs/gpu):
# log.txt (everything printed), summary.csv, final.csv and config.json of the 1,000-replica sweep,
# levers.json, pallas.json (the fused Pallas kernel against blocks), suite.json and scaling.png.
# Stages: T_TESTS, T_PALLAS, T_SWEEP, T_LEVERS, T_SUITE, T_PROFILE seconds each (0 skips).
set -uo pipefail
OUT=${OUT:-runs/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LOG="$OUT/log.txt"
say() { echo "== $(date +%T) $*" | tee -a "$LOG"; }
if compgen -G ".whl/*.whl" >/dev/null; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | tail -3 | tee -a "$LOG"
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
say "machine"
{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv; nproc;
  $PY -c "import jax, jaxlib, numpy, flax, optax; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'numpy', numpy.__version__, 'flax', flax.__version__, 'optax', optax.__version__); print(jax.devices())"; } 2>&1 | tee -a "$LOG"

say "GPU-relevant tests"
timeout "${T_TESTS:-90}" $PY -m pytest -q -p no:cacheprovider --no-header -rfE tests/test_qnn.py tests/test_engine.py \
  -k "(statevector and blocks) or complex64 or (float32_tolerance and blocks) or gradients or precision_it_names \
  or replicas_are_independent or map_and_vmap or engine_equals" tests/test_pallas.py 2>&1 | tail -30 | tee -a "$LOG"

say "the Pallas kernel against blocks (R = 100, then 1,000; compile timed apart)"
[ "${T_PALLAS:-180}" -gt 0 ] && timeout "${T_PALLAS:-180}" $PY benchmarks/pallas_kernel.py --replicas 100 1000 \
  --out "$OUT/pallas.json" 2>&1 | tail -30 | tee -a "$LOG"

say "1,000-replica MNIST sweep (100 epochs)"
rm -rf /tmp/mnist-1000
TIME=$(command -v /usr/bin/time >/dev/null && echo "/usr/bin/time -v" || echo "")
timeout "${T_SWEEP:-200}" $TIME $PY -m qrobust.cli sweep --dataset mnist --model qnn --corruption flip \
  --alphas 0:0.9:0.1 --seeds 100 --out /tmp/mnist-1000 2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | tail -45 | tee -a "$LOG"
cp /tmp/mnist-1000/summary.csv /tmp/mnist-1000/config.json "$OUT/" 2>/dev/null
$PY - <<'PY' 2>&1 | tee -a "$LOG"
import os, pandas as pd
r = pd.read_csv("/tmp/mnist-1000/results.csv")
last = r[r.epoch == r.epoch.max()]
last.to_csv(os.path.join(os.environ.get("OUT", "runs/gpu"), "final.csv"), index=False)
print(len(last), "final rows; mean val_acc by alpha:", last.groupby("alpha").val_acc.mean().round(4).to_dict())
PY

say "levers"
[ "${T_LEVERS:-150}" -gt 0 ] && timeout "${T_LEVERS:-150}" $PY benchmarks/gpu_levers.py --out "$OUT/levers.json" 2>&1 | tee -a "$LOG"

say "benchmark suite"
[ "${T_SUITE:-150}" -gt 0 ] && timeout "${T_SUITE:-150}" $PY benchmarks/suite.py --replicas 1 10 100 1000 --no-paper-way --loop-replicas 10 \
  --qubits 8 10 12 14 --depths 2 6 10 --scan-replicas 100 --out "$OUT" 2>&1 | tee -a "$LOG"
say "profile of the 1,000-replica training program"
[ "${T_PROFILE:-50}" -gt 0 ] && timeout "${T_PROFILE:-50}" $PY benchmarks/profile_training.py --replicas 1000 --epochs 2 \
  --top 15 2>&1 | tail -45 | tee -a "$LOG"
say "done"
