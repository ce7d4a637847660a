"""The "pallas" kernel (``qrobust.models.pallas_sim``) against "blocks" on the engine's training step, in one run.

  python benchmarks/pallas_kernel.py --out runs/pallas.json                      # on a GPU: R = 100 and 1000
  python benchmarks/pallas_kernel.py --examples 1 2 4 --warps 4 8 --out ...      # also sweep the kernel's blocks
  python benchmarks/pallas_kernel.py --allow-interpret --replicas 2 --batch 4 --qubits 5 --depth 2 --repeats 1 \\
      --out /tmp/pallas-smoke.json                                               # a smoke run on CPU

step       the training step of the engine's "vmap" mode (what it runs on an accelerator): the value and the
           gradient of the mean binary cross-entropy of a batch of --batch states (random complex64 states,
           random labels), vmapped over R replicas of the parameters and of the batches; the MNIST settings by
           default (10 qubits, depth 6, batch 256, the light cone pruned).
blocks     the XLA simulator "blocks" (reverse mode through its matrix products), full float32 precision.
pallas     the fused kernels, forward and adjoint gradient, at each --examples (E, states per program; 0: the
           module's default) and --warps (Triton's warps per program; 0: the default).
check      at the first R, the largest difference of the pallas step's values and gradients from blocks's (the
           first run of the compiled Triton kernels: they must agree to float32 rounding).

Per variant and R: compile time (XLA's ahead-of-time compile of the jitted step, Triton's included), the best of
--repeats calls, seconds per replica-step (that time / R) and the ratio blocks / variant (above 1: faster than
blocks). A variant that fails (out of memory, a Triton error) is recorded with its error and the run goes on. The
JSON is rewritten after every row, so a run cut short keeps what it measured.

Pallas's interpret mode (the kernels evaluated by XLA, which is what a CPU runs) is for tests: its times say
nothing about the GPU kernel, so on CPU the script refuses unless --allow-interpret, and then only tiny sizes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.models import hea, pallas_sim, qnn

INTERPRET_LIMIT = 2**14  # amplitudes of all the replicas' batches together, for a smoke run in interpret mode


def _step(logits_of):
    """The engine's training step for R replicas: (params (R, d, L, 4), x (R, B, 2**L), y (R, B)) ->
    (loss (R,), gradient (R, d, L, 4))."""

    def loss(p, x, y):
        z = logits_of(p, x)
        return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

    return jax.jit(jax.vmap(jax.value_and_grad(loss)))


def _inputs(n_replicas: int, batch: int, n_qubits: int, depth: int, seed: int = 0):
    """Parameters uniform in (-pi, pi) (a circuit far from the identity), normalised complex64 states and 0/1
    labels, made on the device."""

    @jax.jit
    def make(key):
        kp, kr, ki, ky = jax.random.split(key, 4)
        params = jax.random.uniform(kp, (n_replicas, depth, n_qubits, 4), jnp.float32, -np.pi, np.pi)
        shape = (n_replicas, batch, 2**n_qubits)
        states = jax.lax.complex(jax.random.normal(kr, shape), jax.random.normal(ki, shape))
        states = states / jnp.linalg.norm(states, axis=-1, keepdims=True)
        labels = jax.random.bernoulli(ky, 0.5, shape[:2]).astype(jnp.float32)
        return params, states, labels

    return jax.block_until_ready(make(jax.random.PRNGKey(seed)))


def _time(step, args, repeats: int) -> dict:
    """Compile time and the best of ``repeats`` calls, and the last result."""
    t0 = time.perf_counter()
    compiled = step.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    out = jax.block_until_ready(compiled(*args))  # a first call: transfers, autotuning
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - t0)
    row = dict(compile_s=compile_s, step_s=best)
    try:
        memory = compiled.memory_analysis()
        row["temp_bytes"] = int(memory.temp_size_in_bytes)
    except Exception:  # not every backend reports it
        pass
    return row, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/pallas_kernel.json")
    ap.add_argument("--replicas", type=int, nargs="+", default=[100, 1000])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--qubits", type=int, default=10)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--examples", type=int, nargs="+", default=[0], help="states per program (0: the default)")
    ap.add_argument("--warps", type=int, nargs="+", default=[0], help="Triton warps per program (0: the default)")
    ap.add_argument("--allow-interpret", action="store_true",
                    help="off a GPU, time Pallas's interpret mode anyway (tiny sizes only: a smoke run)")
    args = ap.parse_args(argv)

    backend = jax.default_backend()
    interpret = pallas_sim.interpret_default()
    if interpret:
        if not args.allow_interpret:
            print(f"this benchmark needs a GPU: on {backend} devices the Pallas kernel runs in interpret mode, "
                  "which is for tests and says nothing about the GPU kernel (--allow-interpret for a smoke run "
                  "at tiny sizes)")
            return 2
        size = max(args.replicas) * args.batch * 2**args.qubits
        if size > INTERPRET_LIMIT:
            print(f"--allow-interpret is for tiny sizes: R x batch x 2**qubits = {size} amplitudes, at most "
                  f"{INTERPRET_LIMIT} (e.g. --replicas 2 --batch 4 --qubits 5 --depth 2)")
            return 2

    plan = hea.plan("hea", args.qubits, args.depth, readout_scale=5.0, light_cone_pruning=True)
    variants = [("blocks", qnn(args.qubits, args.depth, simulator="blocks").apply_batch, {})]
    for e in args.examples:
        for w in args.warps:
            e_used = pallas_sim.examples_per_program(args.qubits, e or None)
            w_used = pallas_sim.warps_per_program(args.qubits, e_used, w or None)
            label = f"pallas E={e_used} warps={w_used}"
            variants.append((label, pallas_sim.hea_logits(plan, examples=e_used, num_warps=w_used),
                             dict(examples=e_used, warps=w_used)))

    result = dict(devices=[f"{d.platform}:{d.device_kind}" for d in jax.devices()], jax=jax.__version__,
                  date=time.strftime("%Y-%m-%d %H:%M"), interpret=interpret, qubits=args.qubits, depth=args.depth,
                  batch=args.batch, replicas=args.replicas, repeats=args.repeats, rows=[], check=None)
    print({k: v for k, v in result.items() if k != "rows"}, flush=True)
    out_path = Path(args.out)

    def save():
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(result, indent=2, default=float) + "\n")

    for r_index, n_replicas in enumerate(args.replicas):
        inputs = _inputs(n_replicas, args.batch, args.qubits, args.depth)
        reference = None
        for label, logits_of, extra in variants:
            row = dict(variant=label, replicas=n_replicas, **extra)
            try:
                timing, out = _time(_step(logits_of), inputs, args.repeats)
                row.update(timing, s_per_replica_step=timing["step_s"] / n_replicas)
                if label == "blocks":
                    reference = (row["step_s"], out)
                elif reference is not None:
                    row["ratio_blocks_over_this"] = reference[0] / row["step_s"]
                    if r_index == 0:
                        (value, grad), (ref_value, ref_grad) = out, reference[1]
                        scale = float(jnp.abs(ref_grad).max())
                        check = dict(variant=label, replicas=n_replicas,
                                     max_loss_diff=float(jnp.abs(value - ref_value).max()),
                                     max_grad_diff_relative=float(jnp.abs(grad - ref_grad).max()) / max(scale, 1.0),
                                     grad_scale=scale)
                        result["check"] = result["check"] or []
                        result["check"].append(check)
                        print("check:", check, flush=True)
                del out
            except Exception as error:  # out of memory, a Triton error: record it and go on
                row["error"] = f"{type(error).__name__}: {str(error)[:2000]}"
            result["rows"].append(row)
            print({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
            save()
        del inputs, reference

    print(f"\n{'variant':32s} {'R':>6s} {'s/replica-step':>15s} {'blocks/this':>12s} {'compile s':>10s}")
    for row in result["rows"]:
        if "error" in row:
            print(f"{row['variant']:32s} {row['replicas']:6d} failed: {row['error'][:80]}")
            continue
        ratio = row.get("ratio_blocks_over_this")
        print(f"{row['variant']:32s} {row['replicas']:6d} {row['s_per_replica_step']:15.3e} "
              f"{'' if ratio is None else f'{ratio:12.2f}':>12s} {row['compile_s']:10.1f}")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
