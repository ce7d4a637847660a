"""The benchmark suite: training throughput of the one engine, against replicas, qubits and depth.

One command prints the tables and writes ``suite.json`` and ``scaling.png`` to --out:

  python benchmarks/suite.py --out runs/bench             # the standard suite (~4 min on 2 CPU cores)
  python benchmarks/suite.py --quick --out runs/bench-q   # a smoke run (~1 min)

Every figure is measured in this run, on this machine:

ceiling    float32 matrix multiply at full precision (n x n, n = 2048; best of 5), in GFLOP/s: the
           machine's practical arithmetic peak that throughput is compared with.
replicas   QNN and MLP at the MNIST paper settings (500 samples, batch 256, the
           embedded set's 500 validation states; QNN 10 qubits, depth 6) for R = 1, 10, 50, 200
           replicas trained as ONE program: compile time (first call of
           a fresh program, XLA's ahead-of-time compile), time per replica
           projected to 100 epochs from --epochs timed epochs (a run is a scan
           over epochs, so time is linear in epochs), sample-steps per second
           (training-sample gradients per second, all replicas), achieved GFLOP/s
           (QNN: the simulator's arithmetic counted from the circuit,
           ``qrobust.models.qnn.forward_flops`` and ``training_flops``)
           and its fraction of the ceiling, and the program's memory (XLA's
           analysis: arguments + outputs + scratch).
variants   in the same run: the XLA "blocks" simulator at R = 50 (the default on one
           CPU is "native", the C++ kernel); at R = --loop-replicas: the same work as a Python loop
           over runs (the R = 1 program called R times), with the replicas'
           steps vmapped (the default on CPU runs them one after another inside
           the program, ``replica_mode``), with TensorCircuit's
           fused gates (``simulator="tc-fused"``), and the way the paper's code
           drives it: TensorCircuit gate by gate, per-sample vmap, cotengra
           contractor (``simulator="tc-gates", contractor="cotengra"``), at R = 1;
           and the training alone (the end-of-epoch evaluation only at the last
           of --train-only-epochs epochs, as ``--eval-every``), at R = 50;
           as ratios of time per replica to the default program
           at the same R (above 1: slower than the default).
qubits     the QNN at 6 to 14 qubits (depth 6) and depth 2 to 10 (10 qubits) on
           random real states of the same sizes, R = --scan-replicas.

Run it on a quiet machine: other processes change every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from qrobust.corruption import CORRUPTIONS
from qrobust.data import Dataset
from qrobust.engine import EvalData, epoch_plan, evaluated_epochs, make_train_fn
from qrobust.experiments.settings import build_model, load_dataset, model_settings
from qrobust.experiments.inputs import make_chunk_inputs
from qrobust.models import qnn
from qrobust.models.qnn import forward_flops, training_flops

FLOAT = lambda v: f"{v:.3g}"  # noqa: E731


def matmul_ceiling(n: int = 2048, repeats: int = 5) -> float:
    """Best float32 n x n matrix-multiply rate in GFLOP/s, at full precision (the simulators' own: on a GPU
    the default precision would be TensorFloat-32, a different and faster unit)."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    mm = jax.jit(lambda x, y: jnp.matmul(x, y, precision=jax.lax.Precision.HIGHEST))
    jax.block_until_ready(mm(a, a))
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(mm(a, a))
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _block(tree):
    jax.block_until_ready(tree)
    return tree


def _mlp_flops(model_settings_hidden, n_in):
    """Forward flops of the MLP per sample (multiply-adds of its dense layers, x2)."""
    sizes = (n_in, *model_settings_hidden, 1)
    return sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))


def epoch_flops(model, n_train: int, n_val: int, batch_size: int, evaluations: float = 1.0) -> float:
    """Counted arithmetic of one replica-epoch: training steps (per padded sample, the simulator's own
    count: ``qrobust.models.qnn.training_flops``; 3 forward passes for the MLP) plus ``evaluations``
    end-of-epoch evaluations (one forward pass per training and validation sample)."""
    s = model.settings
    if s["kind"] == "qnn":
        kw = dict(block_size=s["block_size"], light_cone_pruning=s["light_cone_pruning"], simulator=s["simulator"])
        fwd = forward_flops(s["n_qubits"], s["depth"], **kw)
        step = training_flops(s["n_qubits"], s["depth"], **kw)
    else:
        fwd = _mlp_flops(s["hidden"], model.input_shape[0])
        step = 3 * fwd
    _, padded = epoch_plan(n_train, batch_size)
    return step * padded + fwd * evaluations * (n_train + n_val)


def training_inputs(model, dataset: Dataset, n_replicas: int, lr: float, seed0: int = 0) -> tuple:
    """The arguments ``(params, rates, keys, data, val)`` of a training program for ``n_replicas`` replicas:
    seeds seed0, seed0 + 1, ...; labels flipped at alpha = 0.3; learning rate ``lr``."""
    seeds = np.arange(seed0, seed0 + n_replicas)
    kinds = np.full(n_replicas, CORRUPTIONS.index("flip"), np.int32)
    counts = np.full(n_replicas, int(0.3 * len(dataset.y_train)) // 2 * 2, np.int32)
    params, keys, data = make_chunk_inputs(model, dataset)(seeds, kinds, counts)
    val = EvalData(model.prepare(dataset.x_val), jnp.asarray(dataset.y_val, jnp.float32))
    return params, jnp.full(n_replicas, lr, jnp.float32), keys, data, val


def time_training(model, dataset: Dataset, n_replicas: int, *, epochs: int, batch_size: int, lr: float,
                  seed0: int = 0, loop: bool = False, replica_mode: str = "auto", eval_every: int = 1) -> dict:
    """Compile and run ``n_replicas`` trainings as one program (on one device); with ``loop``, also as R calls
    of R = 1.

    ``eval_every`` as in ``make_train_fn``: the end-of-epoch evaluation runs every K epochs and at the last.
    """
    params, rates, keys, data, val = training_inputs(model, dataset, n_replicas, lr, seed0)
    train = make_train_fn(model, epochs=epochs, batch_size=batch_size, n_samples=len(dataset.y_train),
                          replica_mode=replica_mode, eval_every=eval_every)
    t0 = time.perf_counter()
    compiled = train.lower(params, rates, keys, data, val).compile()
    compile_s = time.perf_counter() - t0
    memory = compiled.memory_analysis()
    _block(compiled(params, rates, keys, data, val))  # warm-up (allocations)
    t0 = time.perf_counter()
    _, metrics = _block(compiled(params, rates, keys, data, val))
    seconds = time.perf_counter() - t0
    out = dict(replicas=n_replicas, epochs=epochs, evaluations=len(evaluated_epochs(epochs, eval_every)),
               compile_s=compile_s, seconds=seconds,
               memory_mb=(memory.argument_size_in_bytes + memory.output_size_in_bytes
                          + memory.temp_size_in_bytes) / 1e6 if memory is not None else float("nan"),
               final_val_acc=float(np.nanmean(np.asarray(metrics["val_acc"])[:, -1])))
    if loop:
        pick = lambda r: jax.tree_util.tree_map(lambda a: a[r:r + 1], (params, rates, keys, data))  # noqa: E731
        one = train.lower(*pick(0), val).compile()
        _block(one(*pick(0), val))
        t0 = time.perf_counter()
        for r in range(n_replicas):
            _block(one(*pick(r), val))
        out["loop_seconds"] = time.perf_counter() - t0
    return out


def throughput_row(model, dataset, timing: dict, ceiling: float, batch_size: int) -> dict:
    n_train, n_val = len(dataset.y_train), len(dataset.y_val)
    replica_epochs = timing["replicas"] * timing["epochs"]
    per_replica_epoch = epoch_flops(model, n_train, n_val, batch_size, timing["evaluations"] / timing["epochs"])
    gflops = per_replica_epoch * replica_epochs / timing["seconds"] / 1e9
    row = dict(timing, per_replica_100ep_s=timing["seconds"] / replica_epochs * 100,
               sample_steps_per_s=n_train * replica_epochs / timing["seconds"],
               gflop_per_s=gflops, ceiling_fraction=gflops / ceiling,
               gflop_per_run_100ep=per_replica_epoch * 100 / 1e9)
    if "loop_seconds" in timing:
        row["loop_ratio"] = timing["loop_seconds"] / timing["seconds"]
    return row


def random_dataset(n_qubits: int, n_train: int = 500, n_val: int = 1000, seed: int = 0) -> Dataset:
    """Random real unit states (MNIST-like sizes) with random labels, for the scaling scans."""
    rng = np.random.default_rng(seed)

    def states(n):
        v = rng.normal(size=(n, 2**n_qubits))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    y = np.arange(n_train) % 2
    return Dataset(name=f"random-{n_qubits}", x_train=states(n_train), y_train=y, x_val=states(n_val),
                   y_val=np.arange(n_val) % 2, n_qubits=n_qubits, meta={})


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench", help="directory for suite.json and scaling.png")
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs per measurement (projected to 100)")
    ap.add_argument("--replicas", nargs="+", type=int, default=[1, 10, 50, 200])
    ap.add_argument("--loop-replicas", type=int, default=10)
    ap.add_argument("--scan-replicas", type=int, default=4)
    ap.add_argument("--qubits", nargs="+", type=int, default=[6, 8, 10, 12, 14])
    ap.add_argument("--depths", nargs="+", type=int, default=[2, 4, 6, 8, 10])
    ap.add_argument("--train-only-epochs", type=int, default=10,
                    help="timed epochs of the training-only variant (evaluated at the last one only)")
    ap.add_argument("--no-paper-way", action="store_true", help="skip TensorCircuit gate-by-gate + cotengra")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 1 epoch, R up to 10, few sizes")
    args = ap.parse_args()
    if args.quick:
        args.epochs, args.replicas, args.loop_replicas, args.train_only_epochs = 1, [1, 10], 4, 2
        args.qubits, args.depths, args.scan_replicas = [6, 10], [2, 6], 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    machine = dict(processor=platform.processor() or platform.machine(), cpu_count=os.cpu_count(),
                   devices=[f"{d.platform}:{d.device_kind}" for d in jax.devices()], jax=jax.__version__,
                   date=time.strftime("%Y-%m-%d"))
    print(f"machine: {machine}", flush=True)
    ceiling = matmul_ceiling()
    print(f"ceiling: float32 2048^3 matmul {ceiling:.1f} GFLOP/s", flush=True)

    mnist = load_dataset("mnist")
    result = dict(machine=machine, ceiling_gflop_per_s=ceiling, replicas=[], variants=[], qubits=[], depth=[])

    # -- replicas: the MNIST paper settings
    for name in ("qnn", "mlp"):
        s = model_settings("mnist", name)
        model = build_model(name, mnist, s)
        for R in args.replicas:
            t = time_training(model, mnist, R, epochs=args.epochs, batch_size=s.batch_size, lr=s.learning_rate,
                              loop=R == args.loop_replicas)
            row = dict(model=name, simulator=model.settings.get("simulator", "-"),
                       **throughput_row(model, mnist, t, ceiling, s.batch_size))
            result["replicas"].append(row)
            print(pd.DataFrame([row]).to_string(index=False, float_format=FLOAT), flush=True)

    # -- variants of the QNN, same work, ratios to the default simulator
    s = model_settings("mnist", "qnn")
    base = {r["replicas"]: r for r in result["replicas"] if r["model"] == "qnn"}
    # (label, QNN options, R, replica_mode, timed epochs, eval_every)
    variants = [("blocks (XLA batched products)", dict(simulator="blocks"), 50 if 50 in base else args.loop_replicas,
                 "auto", args.epochs, 1),
                ("replicas vmapped (replica_mode='vmap')", dict(), args.loop_replicas, "vmap", args.epochs, 1),
                ("tc-fused", dict(simulator="tc-fused"), args.loop_replicas, "auto", 1, 1)]
    if not args.no_paper_way:
        variants.append(("paper: tc-gates + cotengra", dict(simulator="tc-gates", contractor="cotengra"), 1, "auto",
                         1, 1))
    # training alone: evaluated at the last timed epoch only (the projection to 100 epochs keeps that one
    # evaluation per E timed epochs, so it slightly overstates the time of a 100-epoch run evaluated once)
    r_train = max([r for r in args.replicas if r <= 50] or [min(args.replicas)])
    variants.append((f"training only: evaluated at the last of {args.train_only_epochs} epochs", dict(), r_train,
                     "auto", args.train_only_epochs, args.train_only_epochs))
    for label, kwargs, R, mode, epochs, eval_every in variants:
        model = qnn(10, s.depth, **kwargs)
        t = time_training(model, mnist, R, epochs=epochs, batch_size=s.batch_size,
                          lr=s.learning_rate, replica_mode=mode, eval_every=eval_every)
        row = dict(variant=label, **throughput_row(model, mnist, t, ceiling, s.batch_size))
        ref = base.get(R)
        row["time_vs_default"] = row["per_replica_100ep_s"] / ref["per_replica_100ep_s"] if ref else np.nan
        result["variants"].append(row)
        print(pd.DataFrame([row]).to_string(index=False, float_format=FLOAT), flush=True)
    for r in result["replicas"]:
        if "loop_ratio" in r:
            result["variants"].append(dict(variant=f"python loop over runs ({r['model']})", replicas=r["replicas"],
                                           time_vs_default=r["loop_ratio"]))

    # -- qubits and depth
    for axis, sizes in (("qubits", args.qubits), ("depth", args.depths)):
        for size in sizes:
            n_qubits, depth = (size, 6) if axis == "qubits" else (10, size)
            data = random_dataset(n_qubits)
            model = qnn(n_qubits, depth)
            t = time_training(model, data, args.scan_replicas, epochs=1, batch_size=256, lr=0.005)
            row = dict(n_qubits=n_qubits, depth=depth, **throughput_row(model, data, t, ceiling, 256))
            result[axis].append(row)
            print(pd.DataFrame([row]).to_string(index=False, float_format=FLOAT), flush=True)

    cols = ["model", "replicas", "compile_s", "per_replica_100ep_s", "sample_steps_per_s", "gflop_per_s",
            "ceiling_fraction", "memory_mb", "loop_ratio"]
    print(f"\n== replicas (MNIST paper settings; per replica = seconds per 100 epochs; ceiling {ceiling:.0f} GFLOP/s)")
    print(pd.DataFrame(result["replicas"]).reindex(columns=cols).to_string(index=False, float_format=FLOAT))
    default_simulator = next(r["simulator"] for r in result["replicas"] if r["model"] == "qnn")
    print(f"\n== variants (time per replica relative to the default simulator {default_simulator!r}, same R)")
    print(pd.DataFrame(result["variants"]).reindex(
        columns=["variant", "replicas", "compile_s", "per_replica_100ep_s", "gflop_per_s", "time_vs_default"]
    ).to_string(index=False, float_format=FLOAT))
    for axis in ("qubits", "depth"):
        print(f"\n== {axis} (QNN, R = {args.scan_replicas}, 500 training + 1,000 validation states)")
        print(pd.DataFrame(result[axis]).reindex(columns=["n_qubits", "depth", "compile_s", "per_replica_100ep_s",
                                                          "gflop_per_s", "ceiling_fraction", "memory_mb"]
                                                 ).to_string(index=False, float_format=FLOAT))
    (out / "suite.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    plot_scaling(result, out / "scaling.png")
    print(f"\nwrote {out / 'suite.json'} and {out / 'scaling.png'}")


def plot_scaling(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    reps = pd.DataFrame(result["replicas"])
    for name, g in reps.groupby("model"):
        axes[0].plot(g.replicas, g.per_replica_100ep_s, "o-", label=name)
    axes[0].set(xscale="log", yscale="log", xlabel="replicas R in one program",
                ylabel="seconds per replica (100 epochs)", title="MNIST paper settings")
    axes[0].legend()
    for ax, axis, key in ((axes[1], "qubits", "n_qubits"), (axes[2], "depth", "depth")):
        g = pd.DataFrame(result[axis])
        if len(g):
            ax.plot(g[key], g.per_replica_100ep_s, "o-", label="time")
            ax.set(yscale="log", xlabel=key.replace("n_", "").replace("_", " "),
                   ylabel="seconds per replica (100 epochs)", title=f"QNN vs {axis}")
            twin = ax.twinx()
            twin.plot(g[key], g.ceiling_fraction, "s--", color="gray", label="fraction of ceiling")
            twin.set_ylabel("fraction of matmul ceiling")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
