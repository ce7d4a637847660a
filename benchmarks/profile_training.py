"""Where the time of one training program goes, XLA kernel by kernel.

Compiles the training program of a model at the MNIST paper settings (the sweep's
program: R replicas, per-epoch evaluation unless --eval-every), runs it once to
warm up, once timed, and once under ``jax.profiler`` with a Perfetto trace, then
prints the kernel time summed by kind (``dot_general``, ``multiply_bitcast_fusion``,
...) and the slowest kernels with their output and operand shapes, read from the
compiled HLO:

  python benchmarks/profile_training.py                     # QNN, R = 4, 3 epochs
  python benchmarks/profile_training.py --model mlp --replicas 10

This is how the ring-phase recomputation (``qrobust.models.blocks.Layout.diagonal``)
was found. Kernel times are the XLA runtime's own trace events; on CPU the two
threads' events are summed, and their sum can differ from the wall time (work
between kernels and inside the thread pool is not attributed), so read them as
shares, not as a breakdown of the wall time.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.corruption import CORRUPTIONS
from qrobust.engine import EvalData, make_train_fn
from qrobust.experiments.settings import build_model, load_dataset, model_settings
from qrobust.experiments.inputs import make_chunk_inputs

NOT_KERNELS = ("$", "ThunkExecutor", "PjitFunction", "ThreadpoolListener", "end: ")


def kernel_times(trace_dir: Path) -> tuple[collections.Counter, collections.Counter]:
    """(microseconds, calls) per kernel name, from the Perfetto trace jax.profiler wrote under trace_dir."""
    path = sorted(trace_dir.glob("**/*.trace.json.gz"))[-1]
    events = [e for e in json.load(gzip.open(path))["traceEvents"] if e.get("ph") == "X"]
    micros, calls = collections.Counter(), collections.Counter()
    for e in events:
        if not e["name"].startswith(NOT_KERNELS):
            micros[e["name"]] += e["dur"]
            calls[e["name"]] += 1
    return micros, calls


def kernel_shapes(hlo: str) -> dict[str, str]:
    """Kernel name -> 'output <- operands' shapes, from the optimised HLO text."""
    shape_of = {m.group(1): m.group(2) for m in re.finditer(r"^\s*%(\S+) = (\S+) ", hlo, re.M)}
    described = {}
    for m in re.finditer(r"^\s*%(\S+) = (\S+) (?:dot|fusion)\(([^)]*)\)", hlo, re.M):
        operands = [shape_of.get(a.strip().lstrip("%"), "?") for a in m.group(3).split(",")]
        described[m.group(1)] = f"{m.group(2)} <- {' '.join(operands)}"
    return described


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("qnn", "mlp"), default="qnn")
    ap.add_argument("--replicas", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=1)
    ap.add_argument("--top", type=int, default=20, help="slowest kernels to list")
    args = ap.parse_args()

    dataset = load_dataset("mnist")
    settings = model_settings("mnist", args.model)
    model = build_model(args.model, dataset, settings)
    R = args.replicas
    seeds = np.arange(R)
    kinds = np.full(R, CORRUPTIONS.index("flip"), np.int32)
    counts = np.full(R, int(0.3 * len(dataset.y_train)) // 2 * 2, np.int32)
    params, keys, data = make_chunk_inputs(model, dataset)(seeds, kinds, counts)
    rates = jnp.full(R, settings.learning_rate, jnp.float32)
    val = EvalData(model.prepare(dataset.x_val), jnp.asarray(dataset.y_val, jnp.float32))
    train = make_train_fn(model, epochs=args.epochs, batch_size=settings.batch_size,
                          n_samples=len(dataset.y_train), eval_every=args.eval_every)
    compiled = train.lower(params, rates, keys, data, val).compile()
    inputs = (params, rates, keys, data, val)
    jax.block_until_ready(compiled(*inputs))
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*inputs))
    wall = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        jax.profiler.start_trace(tmp, create_perfetto_trace=True)
        jax.block_until_ready(compiled(*inputs))
        jax.profiler.stop_trace()
        micros, calls = kernel_times(Path(tmp))

    replica_epochs = R * args.epochs
    print(f"{args.model}, R = {R}, {args.epochs} epochs, eval every {args.eval_every}: "
          f"{wall:.3f} s wall, {wall / replica_epochs * 1e3:.1f} ms per replica-epoch; "
          f"kernel time (both threads) {sum(micros.values()) / 1e3:.1f} ms")
    by_kind = collections.Counter()
    for name, us in micros.items():
        by_kind[re.sub(r"\.\d+$", "", name)] += us
    print("\nkernel time by kind")
    for kind, us in by_kind.most_common(12):
        print(f"{us / 1e3:9.1f} ms  {kind}")
    shapes = kernel_shapes(compiled.as_text())
    print(f"\nslowest {args.top} kernels (ms total, calls per replica-epoch, shapes)")
    for name, us in micros.most_common(args.top):
        print(f"{us / 1e3:9.1f} ms {calls[name] / replica_epochs:6.1f}  {name:32s} {shapes.get(name, '')[:110]}")


if __name__ == "__main__":
    main()
