"""A QNN on a device, measured: training with gate noise ("heisenberg") against exact training, and the
Heisenberg-picture operator against TensorCircuit's Monte Carlo trajectories and its batched density matrix at
equal error. Ratios measured in one run are the result (docs/device.md).

1. Training, through the sweep engine's own program (``benchmarks/user_circuit.time_model``): R replicas for E
   epochs of MNIST (500 samples, batch 256, the paper's settings) at 10 qubits and depth d; seconds per replica
   per 100 epochs of the exact QNN (the registry's default simulator), of the noisy one (depolarizing p after
   every gate, "heisenberg"), of the noisy one with N shots (its "gaussian" and, with --shift, "shift"
   gradient), and of the noisy one with JAX's own reverse mode (``forward_mode=True``; the simulator before
   2026-12-07's written-out reverse mode).
2. The operator's propagation, in the Pauli basis (the simulator's: real transfer matrices, each multi-qubit gate
   fused with what acts on its qubits) against the computational basis (complex superoperators,
   ``qrobust.models.noise.observable``: the simulator before 2026-12-07): the operator alone, and one
   value-and-gradient of sum_b tanh(5 <Z>_b) over the training batch (256 real amplitude vectors), at 10 qubits
   and depth d.
3. The reverse mode (``reverse``): one value-and-gradient of sum_b tanh(<Z>_b) over B real amplitude vectors at
   n qubits and depth --depth-reverse, JAX's own reverse mode with the complex operator (before) against the
   written-out one with the real operator (now), and the step between; the values and gradients they differ by.
4. One value-and-gradient of sum_b <Z>_b over a batch of B examples, the same noisy circuit:
   - "heisenberg": exact (float32 rounding, about 1e-6 against tc.DMCircuit: tests/test_noise.py);
   - TensorCircuit trajectories (its ``noisy_qml`` way: ``tc.Circuit`` with ``depolarizing(..., status=u)``,
     vmapped over T trajectories and the batch): an estimate whose standard error is sigma / sqrt(T); sigma is
     measured from the trajectories, and the time at standard error eps is the measured time scaled to
     T = (sigma / eps)^2 trajectories (the cost is linear in T);
   - TensorCircuit's density matrix (``tc.DMCircuit``, vmapped over the batch): exact, 4**n per example.

5. Compilation (``compile``): seconds to compile one value-and-gradient of sum_b tanh(<Z>_b) over B real
   amplitude vectors at n qubits and depth d, the noisy paper's circuit ("heisenberg") and the exact
   "rxry_cnot" (the registry's simulator for it), with the record's parameters split into scalars (now) and
   whole (``record(..., split=False)``: before 2026-12-07's fourth change).
6. Placements and channels (``placements``): one value-and-gradient of sum_b tanh(<Z>_b) over B real amplitude
   vectors at n qubits and depth d, for each of depolarizing p after every gate (the reference), once per layer
   (``@layer``), on the pair of every two-qubit gate (``depolarizing2``), both of the last two, dephasing and
   amplitude damping after every gate, readout error alone (2p), and the exact circuit (the registry's simulator);
   each as a ratio to the reference.

  python benchmarks/noise.py [--qubits 10] [--depth 6] [--replicas 2] [--epochs 2] [--p 0.01] [--batch 32]
                             [--trajectories 16] [--shots 1000] [--shift] [--skip-training]
                             [--skip-comparison] [--skip-basis] [--skip-density] [--depth-reverse 6]
                             [--skip-reverse] [--skip-compile] [--skip-placements] [--out FILE.json]

Run it alone on the machine: nothing else heavy at the same time.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from user_circuit import time_model  # noqa: E402 (the training timer, shared)


def timed(fn, *args, repeat: int = 3) -> tuple[float, float]:
    """(compile seconds, seconds per call: the best of ``repeat``) of a jitted ``fn``."""
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return first - best, best


def _real_states(rng, batch: int, n: int):
    """(batch, 2**n) float32 unit vectors with Gaussian entries from ``rng``: real amplitude-encoded inputs."""
    x = rng.normal(size=(batch, 2**n))
    return jnp.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), jnp.float32)


def training(args, dataset) -> dict:
    from qrobust.models import qnn

    noise = f"depolarizing:{args.p}"
    models = {"exact": qnn(args.qubits, args.depth), "noisy": qnn(args.qubits, args.depth, noise=noise),
              f"noisy+{args.shots} shots (gaussian)": qnn(args.qubits, args.depth, noise=noise, shots=args.shots,
                                                          shot_gradient="gaussian")}
    models["noisy, JAX's reverse mode"] = qnn(args.qubits, args.depth, noise=noise, forward_mode=True)  # before
    if args.shift:
        models[f"noisy+{args.shots} shots (shift)"] = qnn(args.qubits, args.depth, noise=noise, shots=args.shots)
    out = {}
    for name, model in models.items():
        compile_s, per_100 = time_model(model, dataset, args.replicas, args.epochs)
        out[name] = dict(simulator=model.settings["simulator"], compile_s=round(compile_s, 1),
                         s_per_replica_per_100_epochs=round(per_100, 2))
        print(f"  {name:34s} {model.settings['simulator']:11s} compile {compile_s:6.1f} s   "
              f"{per_100:9.2f} s per replica per 100 epochs", flush=True)
    base = out["exact"]["s_per_replica_per_100_epochs"]
    for v in out.values():
        v["ratio_to_exact"] = round(v["s_per_replica_per_100_epochs"] / base, 2)
    return out


def bases(args) -> dict:
    """The operator and a training value-and-gradient, Pauli basis against computational basis (ratios)."""
    from qrobust.models import noise as noise_module, pauli
    from qrobust.models.ansatze import LIBRARY
    from qrobust.models.circuits import record

    n, depth = args.qubits, args.depth
    fn, noise = LIBRARY["hea"].circuit(n, depth), noise_module.parse(f"depolarizing:{args.p}")
    rng = np.random.default_rng(0)
    params = jnp.asarray(rng.normal(size=(depth, n, 4)), jnp.float32)
    xs = _real_states(rng, 256, n)
    out = {}
    for name, propagate in (("pauli", pauli.observable), ("computational", noise_module.observable)):
        def operator(q, propagate=propagate):
            gates, c = record(fn, n, "amplitude", q, None, "complex64")
            return propagate(gates, noise, n, n - 1, jnp.complex64, noise_module.layer_ends(c))

        loss = jax.value_and_grad(lambda q: jnp.sum(jnp.tanh(5 * noise_module.quadratic_forms(operator(q), xs))))
        out[name] = dict(zip(("operator_compile_s", "operator_s"), timed(jax.jit(operator), params)))
        out[name].update(zip(("step_compile_s", "step_s"), timed(jax.jit(loss), params)))
        print(f"  {name:15s} {out[name]}", flush=True)
    for key in ("operator_s", "step_s"):
        out[f"{key}_ratio"] = round(out["computational"][key] / out["pauli"][key], 2)
    print(f"  computational / pauli: operator {out['operator_s_ratio']}x, step {out['step_s_ratio']}x", flush=True)
    return out


def reverse(args) -> dict:
    """One value-and-gradient of sum_b tanh(<Z>_b) over a batch of real amplitude vectors, three ways (ratios in
    one run): JAX's own reverse mode through the Pauli-basis contractions and the complex operator (the simulator
    before 2026-12-07's third change: ``forward_mode=True``, states given as complex), the written-out reverse mode
    with the complex operator, and with the real one (the simulator now)."""
    from qrobust.models import qnn

    n, depth = args.qubits, args.depth_reverse
    rng = np.random.default_rng(0)
    params = jnp.asarray(rng.normal(scale=0.5, size=(depth, n, 4)), jnp.float32)
    real = _real_states(rng, args.batch, n)
    out, values = {}, {}
    for name, forward_mode, xs in (("jax_reverse_complex", True, real.astype(jnp.complex64)),
                                   ("written_reverse_complex", False, real.astype(jnp.complex64)),
                                   ("written_reverse_real", False, real)):
        model = qnn(n, depth, noise=f"depolarizing:{args.p}", forward_mode=forward_mode)
        step = jax.jit(jax.value_and_grad(lambda q, xs, m=model: jnp.sum(jnp.tanh(m.apply_batch(q, xs)))))
        out[name] = dict(zip(("compile_s", "s"), timed(step, params, xs, repeat=2)))
        values[name] = step(params, xs)
        print(f"  {name:24s} {out[name]}", flush=True)
    base = values["jax_reverse_complex"]
    for name, (value, grad) in values.items():
        out[name].update(ratio=round(out["jax_reverse_complex"]["s"] / out[name]["s"], 2),
                         value_difference=float(abs(value - base[0])),
                         gradient_difference=float(jnp.max(jnp.abs(grad - base[1]))))
    print(f"  before / now: {out['written_reverse_real']['ratio']}x", flush=True)
    return out


def compilation(args) -> dict:
    """Compile seconds of a training step, the record's parameters split (now) and whole (before)."""
    from qrobust.models import circuits, qnn

    n, depth = args.qubits, args.depth
    rng = np.random.default_rng(0)
    xs = _real_states(rng, args.batch, n)
    record, out = circuits.record, {}
    for name, kwargs in (("noisy_hea", dict(noise=f"depolarizing:{args.p}")), ("exact_rxry_cnot",
                                                                                dict(ansatz="rxry_cnot"))):
        for split in (True, False):
            circuits.record = functools.partial(record, split=split)  # read when a model is built
            try:
                model = qnn(n, depth, **kwargs)
                params = model.init(jax.random.PRNGKey(0))
                step = jax.jit(jax.value_and_grad(lambda q, m=model: jnp.sum(jnp.tanh(m.apply_batch(q, xs)))))
                start = time.perf_counter()
                step.lower(params).compile()
                key = f"{name}_{'split' if split else 'whole'}"
                out[key] = dict(simulator=model.settings["simulator"], compile_s=round(time.perf_counter() - start, 1))
            finally:
                circuits.record = record
            print(f"  {key:26s} {out[key]}", flush=True)
        out[f"{name}_ratio"] = round(out[f"{name}_whole"]["compile_s"] / out[f"{name}_split"]["compile_s"], 1)
        print(f"  {name}: whole / split {out[f'{name}_ratio']}x", flush=True)
    return out


def placements(args) -> dict:
    """Seconds of one value-and-gradient per noise model (module docstring, section 6), and its ratio to
    depolarizing after every gate."""
    from qrobust.models import qnn

    n, depth, p = args.qubits, args.depth, args.p
    rng = np.random.default_rng(0)
    xs = _real_states(rng, args.batch, n)
    noises = {"depolarizing after every gate": f"depolarizing:{p}", "depolarizing per layer": f"depolarizing@layer:{p}",
              "depolarizing2 on two-qubit gates": f"depolarizing2:{p}",
              "depolarizing per layer + depolarizing2": f"depolarizing@layer:{p}+depolarizing2:{p}",
              "dephasing after every gate": f"dephasing:{p}", "amplitude damping after every gate":
              f"amplitude_damping:{p}", "readout error alone": f"readout:{2 * p}", "exact": None}
    out = {}
    for name, noise in noises.items():
        model = qnn(n, depth, noise=noise)
        params = model.init(jax.random.PRNGKey(0))
        step = jax.jit(jax.value_and_grad(lambda q, m=model: jnp.sum(jnp.tanh(m.apply_batch(q, xs)))))
        compile_s, seconds = timed(step, params, repeat=3)
        out[name] = dict(noise=noise or "none", simulator=model.settings["simulator"], compile_s=round(compile_s, 1),
                         s=seconds)
        print(f"  {name:40s} {out[name]}", flush=True)
    base = out["depolarizing after every gate"]["s"]
    for v in out.values():
        v["ratio_to_after_every_gate"] = round(v["s"] / base, 3)
    return out


def _noisy(c, fn, params, channel) -> None:
    """``fn``'s gates on ``c``, each followed by ``channel(q, k)`` on each qubit q it touches (k counts them)."""
    count = [0]

    class Noisy:
        def __getattr__(self, gate):
            def call(*qubits, **kw):
                getattr(c, gate)(*qubits, **kw)
                for q in qubits:
                    channel(q, count[0])
                    count[0] += 1
            return call

    fn(Noisy(), params, None)


def comparison(args) -> dict:
    from qrobust.backend import tc_context
    from qrobust.models import qnn
    from qrobust.models.ansatze import LIBRARY

    n, depth, p, batch = args.qubits, args.depth_compare, args.p, args.batch
    fn = LIBRARY["hea"].circuit(n, depth)
    rng = np.random.default_rng(0)
    params = jnp.asarray(rng.normal(scale=0.5, size=(depth, n, 4)), jnp.float32)
    v = rng.normal(size=(batch, 2**n)) + 1j * rng.normal(size=(batch, 2**n))
    xs = jnp.asarray(v / np.linalg.norm(v, axis=1, keepdims=True), jnp.complex64)
    model = qnn(n, depth, noise=f"depolarizing:{p}")
    heis = jax.jit(jax.value_and_grad(lambda q: jnp.sum(model.apply_batch(q, xs)) / 5))
    out = {"heisenberg": dict(zip(("compile_s", "s"), timed(heis, params)))}
    value = float(heis(params)[0])
    print(f"  {'heisenberg':15s} {out['heisenberg']}", flush=True)
    channels = 5 * n * depth  # per layer: 3 rotations on each qubit, and the RZZ ring's two qubits per pair

    def trajectory(q, x, status):
        with tc_context("complex64") as tc:
            c = tc.Circuit(n, inputs=x)
            _noisy(c, fn, q, lambda qubit, k: c.depolarizing(qubit, px=p / 3, py=p / 3, pz=p / 3, status=status[k]))
            return jnp.real(c.expectation_ps(z=[n - 1]))

    t = args.trajectories
    status = jax.random.uniform(jax.random.PRNGKey(1), (t, batch, channels))
    runs = jax.vmap(jax.vmap(trajectory, in_axes=(None, 0, 0)), in_axes=(None, None, 0))  # (T, B)
    traj = jax.jit(jax.value_and_grad(lambda q: jnp.sum(jnp.mean(runs(q, xs, status), 0))))
    compile_s, seconds = timed(traj, params)
    samples = np.asarray(jax.jit(runs)(params, xs, status))  # (T, B)
    sigma = float(np.std(samples.sum(1), ddof=1))  # of one trajectory's estimate of sum_b <Z>_b
    out["trajectories"] = dict(compile_s=compile_s, s=seconds, trajectories=t, sigma=sigma,
                               mean=float(samples.sum(1).mean()), exact=value)
    for eps in (1e-2, 1e-3):
        need = (sigma / eps) ** 2
        out["trajectories"][f"s_at_error_{eps:g}"] = seconds * need / t
        out["trajectories"][f"trajectories_at_error_{eps:g}"] = need
    print(f"  {'trajectories':15s} {out['trajectories']}", flush=True)
    if args.skip_density:
        return out
    dm_batch = min(batch, args.dm_batch)

    def density(q, x):
        with tc_context("complex64") as tc:
            c = tc.DMCircuit(n, inputs=x)
            _noisy(c, fn, q, lambda qubit, k: c.depolarizing(qubit, px=p / 3, py=p / 3, pz=p / 3))
            return jnp.real(c.expectation_ps(z=[n - 1]))

    dm = jax.jit(jax.value_and_grad(lambda q: jnp.sum(jax.vmap(density, in_axes=(None, 0))(q, xs[:dm_batch]))))
    try:
        compile_s, seconds = timed(dm, params, repeat=1)
        out["density_matrix"] = dict(compile_s=compile_s, s=seconds * batch / dm_batch, measured_batch=dm_batch)
    except jax.errors.JaxRuntimeError as exc:  # at 10 qubits its reverse mode asks for tens of GB
        out["density_matrix"] = dict(failed=str(exc).splitlines()[0][:200], measured_batch=dm_batch)
    print(f"  {'density_matrix':15s} {out['density_matrix']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qubits", type=int, default=10)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--depth-compare", type=int, default=2, help="depth of the value-and-gradient comparison")
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--p", type=float, default=0.01)
    ap.add_argument("--shots", type=int, default=1000)
    ap.add_argument("--shift", action="store_true", help="also time the 'shift' gradient (2P circuits per step)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--dm-batch", type=int, default=4, help="examples the density matrix is timed on (scaled)")
    ap.add_argument("--trajectories", type=int, default=16)
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--skip-comparison", action="store_true", help="leave out the trajectories and density matrix")
    ap.add_argument("--skip-basis", action="store_true", help="leave out the Pauli against computational basis")
    ap.add_argument("--depth-reverse", type=int, default=6, help="depth of the reverse-mode comparison")
    ap.add_argument("--skip-reverse", action="store_true", help="leave out the reverse-mode comparison")
    ap.add_argument("--skip-compile", action="store_true", help="leave out the compile times")
    ap.add_argument("--skip-placements", action="store_true", help="leave out the placements and channels")
    ap.add_argument("--skip-density", action="store_true",
                    help="leave out the density matrix (at 10 qubits its reverse mode asks for tens of GB)")
    ap.add_argument("--out")
    args = ap.parse_args()
    from qrobust.experiments.settings import load_dataset

    result = dict(args=vars(args), devices=[str(d) for d in jax.devices()])
    if not args.skip_training:
        print(f"training, {args.qubits} qubits, depth {args.depth}, MNIST (500 samples, batch 256):", flush=True)
        result["training"] = training(args, load_dataset("mnist"))
    if not args.skip_basis:
        print(f"the operator's propagation, {args.qubits} qubits, depth {args.depth}, depolarizing {args.p} after "
              "every gate, Pauli basis against computational basis:", flush=True)
        result["bases"] = bases(args)
    if not args.skip_reverse:
        print(f"one value-and-gradient over {args.batch} real states, {args.qubits} qubits, depth "
              f"{args.depth_reverse}, depolarizing {args.p} after every gate, the reverse mode:", flush=True)
        result["reverse"] = reverse(args)
    if not args.skip_compile:
        print(f"compiling one value-and-gradient over {args.batch} real states, {args.qubits} qubits, depth "
              f"{args.depth}, the record's parameters split against whole:", flush=True)
        result["compile"] = compilation(args)
    if not args.skip_placements:
        print(f"one value-and-gradient over {args.batch} real states, {args.qubits} qubits, depth {args.depth}, "
              f"per noise model (strength {args.p}):", flush=True)
        result["placements"] = placements(args)
    if not args.skip_comparison:
        print(f"one value-and-gradient over {args.batch} examples, depth {args.depth_compare}, depolarizing "
              f"{args.p} after every gate:", flush=True)
        result["comparison"] = c = comparison(args)
        h = c["heisenberg"]["s"]
        for eps in (1e-2, 1e-3):
            print(f"  trajectories at standard error {eps:g} / heisenberg (exact): "
                  f"{c['trajectories'][f's_at_error_{eps:g}'] / h:.1f}x")
        if "s" in c.get("density_matrix", {}):
            print(f"  density matrix / heisenberg: {c['density_matrix']['s'] / h:.1f}x")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
