"""The built-in ansatze on each QNN simulator that runs them: the time of one gradient of the summed logits
over a batch (jit-compiled first, then the median of repeats), as ratios to the registry's default choice in
one run. This is the measurement behind ``qrobust.models.simulators.PREFERENCE``.

  python benchmarks/builtin_simulators.py [--qubits 10] [--batch 32 --batch 256] [--repeats 20]

Run it alone on the machine: nothing else heavy at the same time.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

DEPTHS = {"hea": 6, "rxry_cnot": 5}  # the noise study's and the Hessian study's
CANDIDATES = ("native", "native-gates", "blocks", "tc-fused")


def gradient_ms(model, batch: int, repeats: int) -> float:
    from qrobust.models import batch_logits

    rng = np.random.default_rng(0)
    n = model.input_shape[-1]
    states = rng.normal(size=(batch, n)) + 1j * rng.normal(size=(batch, n))
    xs = model.prepare(states / np.linalg.norm(states, axis=1, keepdims=True))
    params = model.init(jax.random.PRNGKey(0))
    step = jax.jit(jax.grad(lambda p: jnp.sum(batch_logits(model)(p, xs))))
    jax.block_until_ready(step(params))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(step(params))
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main(argv=None) -> int:
    from qrobust.models import qnn, simulators

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--qubits", type=int, default=10)
    parser.add_argument("--batch", type=int, action="append")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args(argv)
    batches = args.batch or [32, 256]
    for ansatz, depth in DEPTHS.items():
        default = qnn(args.qubits, depth, ansatz=ansatz).settings["simulator"]
        for batch in batches:
            times = {}
            for name in CANDIDATES:
                reason = simulators.why_not(name, n_qubits=args.qubits, dtype="complex64", ansatz=ansatz,
                                            on_accelerator=False)
                if reason is None:
                    times[name] = gradient_ms(qnn(args.qubits, depth, ansatz=ansatz, simulator=name), batch,
                                              args.repeats)
            row = ", ".join(f"{k} {v:.1f} ms (x{v / times[default]:.2f})" for k, v in times.items())
            print(f"{ansatz} d={depth} batch {batch}: default {default}; {row}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
