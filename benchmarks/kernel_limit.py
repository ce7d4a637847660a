"""The native QNN kernel's training step against the gate-level limit of the machine, before and after, in one run.

  python benchmarks/kernel_limit.py                       # 10 qubits, depth 6, batch 256, the light cone on
  python benchmarks/kernel_limit.py --repeats 60 --threads 1
  python benchmarks/kernel_limit.py --before none         # only the kernel in this checkout

step      the value and gradient of sum_b w_b logit_b over a batch of --batch random complex64 states (random
          parameters, random weights w), jitted: what one training step of the engine asks of the kernel (the
          loss, the optimiser and the minibatch gather are left out; they are not the kernel's).
useful    the gate-level work of that step in real floating-point operations, counted from the circuit (the
          light cone's rotated qubits and RZZ pairs per layer) as one replica's simulation needs it, whatever a
          kernel does:
            forward, per state: 14 per amplitude per rotated qubit (RX RY RX fused into one 2x2 complex matrix:
              4 complex multiply-adds per pair of amplitudes = 28 per pair); 6 per amplitude per RZZ ring (one
              complex multiply by the ring's diagonal); 3 per amplitude for <Z_{L-1}> (|psi|^2 times a sign,
              summed). This is ``qrobust.models.qnn.forward_flops(simulator="native")``.
            backward (the adjoint method, from the final state), per state: 2 per amplitude for the costate
              lambda = w Z_{L-1} psi; per rotated qubit 40 per amplitude: G^dagger on psi and on lambda (2 x 14)
              and three overlaps Im <lambda|P|psi> (3 x 4: a complex conjugate product summed, per amplitude);
              per ring 15 per amplitude (the conjugate diagonal on psi and lambda, 2 x 6, and Im(conj(lambda)
              psi), 3) and 2 per amplitude per RZZ pair (its dot product with the pair's signs).
          Building the matrices and phases from the parameters (per call, not per state), loading and storing
          states, and thread start-up are not counted.
peak      the machine's FMA peak, measured: a C loop of independent vector FMAs (12 accumulators, the widest
          vectors -march=native gives, built with qrobust's compiler), on --threads threads at once, counted as
          2 flops per lane per FMA, each run about as long as the fastest variant's step. (The 207 GFLOP/s of the issue was measured the same way on 2 cores; this
          script never uses a figure it did not measure.)
limit     useful / peak: the step's time at the peak, if every cycle of every thread did a useful FMA.
before    the kernel of --before (default: the commit before this kernel was rewritten), its csrc/hea.cc and
          csrc/statevector.h taken from git, built into a temporary directory with qrobust's compiler command and
          registered under FFI targets of its own ("kernel_limit_before_*"); wrapped as that commit's
          native.hea_logits did (its backward pass redoes the forward pass from the input states).
after     the kernel of this checkout (``qrobust.models.native.hea_logits``, with the masks of the same plan).

The variants' steps and the peak loop are timed alternately, --repeats rounds, and each reports its best: on a
machine shared with other work, the best of many short runs is the measure least disturbed, and timings from one
run are compared only with each other. The script also prints the largest differences of the logits and
gradients between before, after and the "blocks" simulator (XLA's reverse mode) in complex64 and in complex128
("exact") on the same batch.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.models import batch_logits, hea, native, qnn
from qrobust.models.qnn import forward_flops

BEFORE = "65daea7"  # the last commit to change csrc/hea.cc and csrc/statevector.h before the kernel was rewritten
REPO = Path(__file__).resolve().parents[1]

PEAK_SOURCE = r"""
#include <chrono>
#include <thread>
#include <vector>
#ifdef __AVX512F__
constexpr int W = 16;
#elif defined(__AVX__)
constexpr int W = 8;
#else
constexpr int W = 4;
#endif
using vf = float __attribute__((vector_size(4 * W)));
constexpr int K = 12;  // independent chains: more than an FMA's latency times the FMAs a cycle

static float chains(long iters, float seed) {
  vf a[K];
  const vf m = vf{} + 0.9999999f, c = vf{} + 1e-7f;
  for (int k = 0; k < K; ++k) a[k] = vf{} + (seed + k);
  for (long i = 0; i < iters; ++i)
    for (int k = 0; k < K; ++k) a[k] = a[k] * m + c;  // one FMA each (-ffp-contract=fast)
  float s = 0;
  for (int k = 0; k < K; ++k) s += a[k][0];
  return s;
}

extern "C" int peak_lanes() { return W; }
extern "C" int peak_chains() { return K; }
// Seconds for `threads` threads to run `iters` rounds of K vector FMAs each.
extern "C" double peak_seconds(long iters, int threads) {
  std::vector<float> sink(threads);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back([&, t] { sink[t] = chains(iters, t); });
  sink[0] = chains(iters, 0);
  for (auto& th : pool) th.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  volatile float keep = sink[0];
  (void)keep;
  return seconds;
}
"""


def useful_flops(plan: hea.Plan) -> tuple[int, int]:
    """(forward, backward) useful flops of one state (module docstring)."""
    dim = 2**plan.n_qubits
    forward = forward_flops(plan.n_qubits, plan.depth, light_cone_pruning=True, simulator="native")
    backward = 2 * dim
    for layer in range(plan.depth):
        backward += 40 * len(plan.rotations[layer]) * dim
        if plan.pairs[layer]:
            backward += (15 + 2 * len(plan.pairs[layer])) * dim
    return forward, backward


def compile_library(source_files: list[Path], target: Path, extra: tuple[str, ...] = ()) -> None:
    command, _, _ = native._compiler()
    argv = [*command, *native.FLAGS, *extra, f"-I{jax.ffi.include_dir()}", *map(str, source_files), "-o", str(target)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=native.COMPILE_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed:\n{done.stderr[-2000:]}")


def peak_library(directory: Path) -> ctypes.CDLL:
    (directory / "peak.cc").write_text(PEAK_SOURCE)
    compile_library([directory / "peak.cc"], directory / "peak.so", ("-ffp-contract=fast",))
    library = ctypes.cdll.LoadLibrary(str(directory / "peak.so"))
    library.peak_seconds.restype = ctypes.c_double
    library.peak_seconds.argtypes = [ctypes.c_long, ctypes.c_int]
    return library


def before_logits(directory: Path, revision: str, plan: hea.Plan, threads: int):
    """logits(params, states) of the kernel at ``revision``, its gradient as that revision computed it."""
    for name in ("hea.cc", "statevector.h"):
        text = subprocess.run(["git", "-C", str(REPO), "show", f"{revision}:qrobust/models/csrc/{name}"],
                              capture_output=True, text=True, check=True).stdout
        (directory / name).write_text(text)
    compile_library([directory / "hea.cc"], directory / "before.so")
    library = ctypes.cdll.LoadLibrary(str(directory / "before.so"))
    targets = {"kernel_limit_before_forward": "QrobustHeaForward", "kernel_limit_before_backward": "QrobustHeaBackward"}
    for target, symbol in targets.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
    rot, pair = masks(plan)
    attributes = dict(scale=np.float32(plan.readout_scale), threads=np.int64(threads))

    def forward(params, states):
        return jax.ffi.ffi_call("kernel_limit_before_forward", jax.ShapeDtypeStruct(states.shape[:1], jnp.float32))(
            params, states, rot, pair, **attributes)

    @jax.custom_vjp
    def kernel(params, states):
        return forward(params, states)

    def kernel_fwd(params, states):
        return forward(params, states), (params, states)

    def kernel_bwd(residuals, cotangent):
        params, states = residuals
        grad = jax.ffi.ffi_call("kernel_limit_before_backward", jax.ShapeDtypeStruct(params.shape, jnp.float32))(
            params, states, rot, pair, cotangent, **attributes)
        return grad, None

    kernel.defvjp(kernel_fwd, kernel_bwd)
    return kernel, library


def x64_mode(on: bool):
    """JAX's 64-bit mode (for the complex128 reference) inside a with block, where ``on``."""
    if not on:
        return contextlib.nullcontext()
    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # jax < 0.6

    return enable_x64(True)


def timed(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def masks(plan: hea.Plan) -> tuple[jax.Array, jax.Array]:
    applied = np.zeros((2, plan.depth, plan.n_qubits), np.int32)
    for layer in range(plan.depth):
        applied[0, layer, list(plan.rotations[layer])] = 1
        applied[1, layer, list(plan.pairs[layer])] = 1
    return jnp.asarray(applied[0]), jnp.asarray(applied[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--qubits", type=int, default=10)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=40, help="rounds of the alternation; each variant reports its best")
    ap.add_argument("--threads", type=int, default=0, help="the kernel's and the peak loop's threads (0: "
                    "qrobust.models.native.thread_count())")
    ap.add_argument("--before", default=BEFORE, help="git revision of the kernel to compare with ('none': skip)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    threads = args.threads or native.thread_count()
    L, d, B = args.qubits, args.depth, args.batch
    plan = hea.plan("hea", L, d, readout_scale=5.0, light_cone_pruning=True)

    rng = np.random.default_rng(args.seed)
    states = rng.normal(size=(B, 2**L)) + 1j * rng.normal(size=(B, 2**L))
    states = jnp.asarray(states / np.linalg.norm(states, axis=1, keepdims=True), jnp.complex64)
    params = jnp.asarray(rng.uniform(-np.pi, np.pi, size=(d, L, 4)), jnp.float32)
    weights = jnp.asarray(rng.normal(size=B), jnp.float32)

    work = Path(tempfile.mkdtemp(prefix="kernel-limit-"))
    peak = peak_library(work)
    variants = {}
    if args.before != "none":
        variants["before"], _library = before_logits(work, args.before, plan, threads)  # kept loaded
    rot, pair = masks(plan)
    os.environ[native.THREADS_VARIABLE] = str(threads)  # read once, by hea_logits
    variants["after"] = native.hea_logits(np.asarray(rot), np.asarray(pair), plan.readout_scale)

    steps = {name: jax.jit(jax.value_and_grad(lambda p, x, f=f: jnp.sum(f(p, x) * weights))) for name, f in
             variants.items()}
    results = {name: jax.block_until_ready(step(params, states)) for name, step in steps.items()}

    # agreement: the variants and "blocks" (XLA reverse mode) in complex64, and in complex128 as the exact reference
    logits = {name: np.asarray(jax.jit(f)(params, states), np.float64) for name, f in variants.items()}
    grads = {name: np.asarray(r[1], np.float64) for name, r in results.items()}
    for name, dtype, real in (("blocks", "complex64", jnp.float32), ("exact", "complex128", jnp.float64)):
        with x64_mode(dtype == "complex128"):
            blocks = qnn(L, d, simulator="blocks", dtype=dtype)
            blocks_logits, x_blocks = batch_logits(blocks), blocks.prepare(np.asarray(states))
            p, w = jnp.asarray(np.asarray(params), real), jnp.asarray(np.asarray(weights), real)
            logits[name] = np.asarray(jax.jit(blocks_logits)(p, x_blocks), np.float64)
            grads[name] = np.asarray(jax.jit(jax.grad(lambda p: jnp.sum(blocks_logits(p, x_blocks) * w)))(p),
                                     np.float64)
    scale_g = np.abs(grads["exact"]).max()
    print(f"agreement on this batch (logits up to {np.abs(logits['exact']).max():.2f}, gradient entries up to "
          f"{scale_g:.3g}; blocks: XLA reverse mode in complex64, exact: the same in complex128):")
    names = list(logits)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            dl = np.abs(logits[a] - logits[b]).max()
            dg = np.abs(grads[a] - grads[b]).max()
            print(f"  {a:>6} vs {b:<6} max |d logit| {dl:.2e}   max |d grad| {dg:.2e} ({dg / scale_g:.1e} of the "
                  f"largest entry)")

    forward, backward = useful_flops(plan)
    useful = B * (forward + backward)
    lanes = peak.peak_lanes()
    # the peak loop runs about as long as the fastest step, so that both see the machine alike
    fastest = min(min(timed(lambda: jax.block_until_ready(step(params, states))) for _ in range(3))
                  for step in steps.values())
    calibration = min(timed(lambda: peak.peak_seconds(100_000, threads)) for _ in range(3))
    iters = max(10_000, int(100_000 * fastest / calibration))
    peak_flops = iters * peak.peak_chains() * lanes * 2 * threads
    best = {name: np.inf for name in steps} | {"peak": np.inf}
    for _ in range(args.repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            jax.block_until_ready(step(params, states))
            best[name] = min(best[name], time.perf_counter() - start)
        best["peak"] = min(best["peak"], peak.peak_seconds(iters, threads))
    peak_rate = peak_flops / best["peak"]
    limit = useful / peak_rate

    print(f"\n{L} qubits, depth {d}, light cone on, batch {B}, {threads} thread(s); best of {args.repeats} "
          "rounds, alternated")
    print(f"useful work per step: {useful / 1e9:.3f} GFLOP ({forward / 1e6:.3f} MFLOP forward + "
          f"{backward / 1e6:.3f} MFLOP backward per state)")
    print(f"FMA peak (measured, {lanes}-lane FMAs on {threads} thread(s)): {peak_rate / 1e9:.1f} GFLOP/s -> "
          f"limit {limit * 1e3:.3f} ms per step")
    for name in steps:
        t = best[name]
        print(f"  {name:>6}: {t * 1e3:7.3f} ms per step, {useful / t / 1e9:6.1f} useful GFLOP/s, "
              f"{limit / t:6.1%} of the limit ({t / limit:.2f}x above it)")
    if "before" in steps:
        print(f"  after / before: {best['before'] / best['after']:.2f}x faster")


if __name__ == "__main__":
    main()
