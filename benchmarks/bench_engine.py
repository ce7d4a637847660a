"""Time per replica training: one vmapped program over R replicas vs a Python loop over them.

MNIST paper settings (QNN: 10 qubits, depth 6; MLP: 64-16; batch 256, 500 samples,
lr 0.005), label flipping at alpha = 0.3 with distinct seeds. Both variants run
the same engine: "vmapped" trains all R replicas in one compiled call; "loop"
calls the R = 1 compiled program once per replica. Compile time is measured
separately (first call of a fresh function minus a warm call) and excluded from
per-replica times. Per-epoch evaluation is included, as in a sweep.

  python benchmarks/bench_engine.py                      # 10 epochs, projected to 100
  python benchmarks/bench_engine.py --epochs 100         # the full runs (slow: ~1 h on 2 cores)
  python benchmarks/bench_engine.py --models qnn --replicas 1 10 --json out.json

Time per replica grows linearly with epochs (the run is a scan over epochs), so
the "per 100 epochs" column is the measured time scaled by 100 / epochs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from qrobust.corruption import CORRUPTIONS
from qrobust.engine import EvalData, make_train_fn
from qrobust.experiments.settings import build_model, load_dataset, model_settings
from qrobust.experiments.sweep import make_chunk_inputs


def _inputs(model, dataset, n_replicas, seed0=0):
    seeds = np.arange(seed0, seed0 + n_replicas)
    return make_chunk_inputs(model, dataset)(seeds, np.full(n_replicas, CORRUPTIONS.index("flip"), np.int32),
                                             np.full(n_replicas, 150, np.int32))


def _block(tree):
    jax.block_until_ready(tree)
    return tree


def bench_model(name, dataset, replicas, epochs):
    s = model_settings("mnist", name, epochs=epochs)
    model = build_model(name, dataset, s)
    val = EvalData(model.prepare(dataset.x_val), jnp.asarray(dataset.y_val, jnp.float32))
    rows = []
    for R in replicas:
        params, keys, data = _inputs(model, dataset, R)
        lr = jnp.full(R, s.learning_rate, jnp.float32)
        train = make_train_fn(model, epochs=epochs, batch_size=s.batch_size, n_samples=len(dataset.y_train))
        t0 = time.perf_counter()
        _block(train(params, lr, keys, data, val))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, metrics = _block(train(params, lr, keys, data, val))
        vmapped = time.perf_counter() - t0

        one = make_train_fn(model, epochs=epochs, batch_size=s.batch_size, n_samples=len(dataset.y_train))
        pick = lambda r: jax.tree_util.tree_map(lambda a: a[r:r + 1], (params, lr, keys, data))  # noqa: E731
        _block(one(*pick(0), val))  # compile outside the timing
        t0 = time.perf_counter()
        for r in range(R):
            _block(one(*pick(r), val))
        loop = time.perf_counter() - t0
        rows.append(dict(model=name, replicas=R, epochs=epochs, compile_s=first - vmapped,
                         vmapped_per_replica_s=vmapped / R, loop_per_replica_s=loop / R,
                         speedup=loop / vmapped,
                         vmapped_per_replica_100ep_s=vmapped / R * 100 / epochs,
                         final_val_acc_mean=float(np.mean(np.asarray(metrics["val_acc"])[:, -1]))))
        print(pd.DataFrame(rows[-1:]).to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["qnn", "mlp"])
    ap.add_argument("--replicas", nargs="+", type=int, default=[1, 10, 50])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--json", help="also write the table here")
    args = ap.parse_args()
    dataset = load_dataset("mnist")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"devices {[str(d) for d in jax.devices()]}, jax {jax.__version__}")
    rows = [r for m in args.models for r in bench_model(m, dataset, args.replicas, args.epochs)]
    table = pd.DataFrame(rows)
    print("\nsummary (seconds; speedup = loop time / vmapped time, same run):")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(dict(rows=rows, devices=[str(d) for d in jax.devices()], jax=jax.__version__), fh, indent=2)


if __name__ == "__main__":
    main()
