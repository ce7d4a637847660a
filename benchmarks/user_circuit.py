"""A user's TensorCircuit circuit against the built-in HEA: training time per replica, same qubits, depth and
gates, measured in one run (ratios, not absolute times, are the result).

The user circuit is the paper's HEA written as a ten-line TensorCircuit function (RX RY RX on every qubit,
RZZ on the ring, per layer): the same gates, so the same work, as ``qrobust.models.qnn``. Each model trains R
replicas for E epochs of MNIST (500 samples, batch 256, the paper's settings) through the sweep engine's own
training program (``qrobust.engine.make_train_fn``), compiled first and then timed; reported: seconds per
replica per 100 epochs and the ratio to the built-in default.

  python benchmarks/user_circuit.py [--qubits 10] [--depth 6] [--replicas 10] [--epochs 5] [--out FILE.json]

Run it alone on the machine: nothing else heavy at the same time.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np


def user_hea(n: int, depth: int):
    """The paper's HEA written in TensorCircuit, as a user would (the library's entry; trained here as a user's
    circuit, through ``qnn(ansatz=fn, n_params=...)``)."""
    from qrobust.models.ansatze import LIBRARY

    return LIBRARY["hea"].circuit(n, depth)


def time_model(model, dataset, replicas: int, epochs: int) -> tuple[float, float]:
    """(compile seconds, seconds per replica per 100 epochs) of training ``model``."""
    from qrobust.engine import EvalData, make_train_fn
    from qrobust.experiments.inputs import make_chunk_inputs

    train = make_train_fn(model, epochs=epochs, batch_size=256, n_samples=len(dataset.y_train), eval_every=epochs)
    inputs = make_chunk_inputs(model, dataset)
    seeds = np.arange(replicas)
    zeros = np.zeros(replicas, np.int32)
    params, keys, data = inputs(seeds, zeros, zeros)
    val = EvalData(model.prepare(dataset.x_val), jnp.asarray(dataset.y_val, jnp.float32))
    lrs = jnp.full(replicas, 0.005, jnp.float32)
    start = time.perf_counter()
    jax.block_until_ready(train(params, lrs, keys, data, val))  # compile (and one run)
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(train(params, lrs, keys, data, val))
    run = time.perf_counter() - start
    return compile_s - run, run / replicas * 100 / epochs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qubits", type=int, default=10)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--replicas", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--out")
    args = ap.parse_args()

    from qrobust.data import mnist_embedded
    from qrobust.models import qnn

    dataset = mnist_embedded()
    n, d = args.qubits, args.depth
    cases = {"built-in HEA, default simulator": qnn(n, d),
             "built-in HEA, blocks": qnn(n, d, simulator="blocks"),
             "user circuit, native-gates": qnn(n, ansatz=user_hea(n, d), n_params=4 * n * d, simulator="native-gates"),
             "user circuit, xla-gates": qnn(n, ansatz=user_hea(n, d), n_params=4 * n * d, simulator="xla-gates"),
             "user circuit, tc-gates": qnn(n, ansatz=user_hea(n, d), n_params=4 * n * d, simulator="tc-gates")}
    rows = {}
    for name, model in cases.items():
        compile_s, per = time_model(model, dataset, args.replicas, args.epochs)
        rows[name] = dict(simulator=model.settings["simulator"], compile_s=round(compile_s, 2),
                          s_per_replica_per_100_epochs=round(per, 3))
    base = rows["built-in HEA, default simulator"]["s_per_replica_per_100_epochs"]
    for name, row in rows.items():
        row["ratio_to_built_in_default"] = round(row["s_per_replica_per_100_epochs"] / base, 2)
        print(f"{name:34s} {row['simulator']:12s} compile {row['compile_s']:6.1f} s   "
              f"{row['s_per_replica_per_100_epochs']:7.2f} s/replica/100 epochs   x{row['ratio_to_built_in_default']}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(dict(settings=vars(args), devices=[str(d) for d in jax.devices()], results=rows), fh, indent=1)


if __name__ == "__main__":
    main()
