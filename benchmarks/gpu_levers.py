"""Levers for the QNN's training program on an accelerator, measured in one run.

  python benchmarks/gpu_levers.py --out runs/levers.json            # R = 1000, 5 timed epochs
  python benchmarks/gpu_levers.py --replicas 20 --epochs 2 --quick  # a smoke run (on CPU too)

ceilings   matrix-multiply rates of this device: float32 and complex64 products
           (n x n) at full precision and at XLA's default precision (on a GPU
           with tensor cores: TensorFloat-32), best of 5, in GFLOP/s.
parts      one replica-batch's forward pass, forward + gradient, and evaluation
           forward pass of the MNIST QNN (10 qubits, depth 6, "blocks") vmapped over
           R replicas, timed alone: where an epoch's time goes.
variants   the whole training program (``make_train_fn``, MNIST paper settings,
           labels flipped at alpha = 0.3) for R replicas and --epochs timed epochs
           under each lever: the default; TensorFloat-32 products
           (``matmul_precision="tf32"``); other fused block sizes; the training
           alone (evaluated at the last epoch only); the replicas walked with
           ``lax.map`` (the CPU mode, at a smaller R). Seconds per replica per
           100 epochs, GFLOP/s by the circuit's own count, its fraction of the
           complex64 full-precision ceiling, the mean final validation accuracy.

Every number is from this run; compare within it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from suite import throughput_row, time_training, training_inputs  # benchmarks/ is on the path as a script

from qrobust.experiments.settings import load_dataset, model_settings
from qrobust.models import qnn
from qrobust.models.base import batch_logits


def _best(fn, *args, repeats: int = 5) -> float:
    jax.block_until_ready(fn(*args))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - t0)
    return best


def ceilings(n: int) -> dict:
    out = {}
    key = jax.random.PRNGKey(0)
    for dtype, flops_per_fma in (("float32", 2), ("complex64", 8)):
        a = jax.random.normal(key, (n, n), jnp.float32).astype(dtype)
        for label, precision in (("highest", jax.lax.Precision.HIGHEST), ("default", None)):
            mm = jax.jit(lambda x, y, p=precision: jnp.matmul(x, y, precision=p))
            out[f"{dtype}_{label}"] = flops_per_fma * n**3 / _best(mm, a, a) / 1e9
    return out


def parts(model, data, val, params, R: int, batch: int) -> dict:
    logits_of = batch_logits(model)
    xb = data.x[:, :batch]
    yb = data.y[:, :batch]

    def loss(p, x, y):
        z = logits_of(p, x)
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

    fwd = jax.jit(jax.vmap(logits_of))
    grad = jax.jit(jax.vmap(jax.value_and_grad(loss)))
    evaluate = jax.jit(jax.vmap(logits_of, in_axes=(0, None)))
    return dict(forward_batch_s=_best(fwd, params, xb), grad_batch_s=_best(grad, params, xb, yb),
                eval_val_s=_best(evaluate, params, val.x), eval_train_s=_best(fwd, params, data.x),
                replicas=R, batch=batch)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/levers.json")
    ap.add_argument("--replicas", type=int, default=1000)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--ceiling-n", type=int, default=8192)
    ap.add_argument("--quick", action="store_true", help="fewer variants and a small ceiling")
    args = ap.parse_args()
    if args.quick:
        args.ceiling_n = 1024
    result = dict(devices=[f"{d.platform}:{d.device_kind}" for d in jax.devices()], jax=jax.__version__,
                  date=time.strftime("%Y-%m-%d"), replicas=args.replicas, epochs=args.epochs)
    print(result, flush=True)
    result["ceilings"] = ceilings(args.ceiling_n)
    print("ceilings GFLOP/s:", {k: round(v) for k, v in result["ceilings"].items()}, flush=True)
    ceiling = result["ceilings"]["complex64_highest"]

    mnist = load_dataset("mnist")
    s = model_settings("mnist", "qnn")
    model = qnn(10, s.depth, simulator="blocks")
    params, _, _, data, val = training_inputs(model, mnist, args.replicas, s.learning_rate)
    result["parts"] = parts(model, data, val, params, args.replicas, s.batch_size)
    print("parts:", result["parts"], flush=True)
    del params, data, val

    R, E = args.replicas, args.epochs
    variants = [("default (blocks, full precision, vmap)", dict(simulator="blocks"), R, "auto", 1),
                ("tf32 products", dict(simulator="blocks", matmul_precision="tf32"), R, "auto", 1),
                ("training only (evaluated at the last epoch)", dict(simulator="blocks"), R, "auto", E)]
    if not args.quick:
        variants += [("block_size 3", dict(simulator="blocks", block_size=3), R, "auto", 1),
                     ("block_size 4", dict(simulator="blocks", block_size=4), R, "auto", 1),
                     ("replicas by lax.map", dict(simulator="blocks"), max(1, R // 10), "map", 1)]
    result["variants"] = []
    for label, kwargs, n_rep, mode, eval_every in variants:
        m = qnn(10, s.depth, **kwargs)
        t0 = time.perf_counter()
        t = time_training(m, mnist, n_rep, epochs=E, batch_size=s.batch_size, lr=s.learning_rate,
                          replica_mode=mode, eval_every=eval_every)
        row = dict(variant=label, wall_s=time.perf_counter() - t0,
                   **throughput_row(m, mnist, t, ceiling, s.batch_size))
        result["variants"].append(row)
        print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
