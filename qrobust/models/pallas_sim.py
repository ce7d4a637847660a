"""The "pallas" QNN simulator: the paper's "hea" ansatz as one fused Pallas kernel per pass, for GPUs.

"blocks" (``qrobust.models.blocks``) runs a circuit as a sequence of whole-batch XLA operations, each a pass over
every state of the batch in the device's main memory, and its gradient is reverse mode through those passes
(every intermediate batch kept). This kernel instead holds each state on chip through a whole ansatz pass, as
the C++ kernel of ``qrobust.models.native`` holds it in a core's cache: main memory is read once per state
(and the logit written once) in the forward pass, and read once more in the backward pass.

Layout. A state of 2**L complex64 amplitudes is two float32 planes, real and imaginary (the kernel is real
arithmetic only; the planes are split off the complex input by XLA before the call). One program of the grid
takes a block of ``E`` examples, each plane an (E, 2**L) array, loads it once, and keeps it in registers (and,
where they spill, the core's L1) through every gate of the light cone: a rotation of qubit q is the plane viewed
as (E, 2**q, 2, 2**(L-1-q)), split into its two halves along the axis of size 2 (the pairs of amplitudes the
2 x 2 gate mixes), combined, and stacked back; the RZZ ring is one elementwise product with its diagonal of
phases; <Z_{L-1}> is a weighted sum of |psi|**2. The gates are unrolled in the kernel from the plan (the light
cone costs nothing: a gate outside it is not in the code). E is a power of two (``EXAMPLES_PER_PROGRAM``: by
default 2 at 10 qubits), the batch is padded with zero states to a multiple of it, and Triton runs a program with
``NUM_WARPS`` warps (by default 8 at 10 qubits). The grid is (B / E,) over the batch; under
``jax.vmap`` (the engine's "vmap" mode, replicas of parameters and of states) Pallas's batching rule of
``pallas_call`` prepends the vmapped axis to the grid, so a replica-step is ONE kernel launch over a
(R, B / E) grid, each program reading its replica's parameters; under ``jax.lax.map`` (the engine's "map" mode)
it is one launch per replica.

Parameters. The per-layer 2 x 2 matrices RX(c) RY(b) RX(a) of each qubit (d, L, 2, 2), as 8 real numbers each,
and the diagonals of the RZZ rings (d, 2**L) as two real planes, are computed in JAX from the parameters outside
the kernel (as the C++ kernel's Python side builds its operations for "native-gates") and passed in; the kernel
reads each matrix entry as a scalar and each ring's diagonal as one row.

Gradient. A ``jax.custom_vjp`` whose backward pass is a second kernel implementing the adjoint method (as
``qrobust.models.native`` describes it): it runs the forward pass on chip, sets the costate
lambda = g * readout_scale * Z_{L-1} psi (g the example's cotangent), then walks the gates backwards, undoing each
on the state and on the costate. For a rotation U it returns dlogit/dU = 2 sum conj(lambda_a) phi_b over the
pairs (phi the state before U, lambda the costate after it) as the gradient of the matrix's real and imaginary
parts; for the RZZ ring it returns the gradient of the ring's angles directly,
dlogit/de_i = sum_s z_i z_{i+1} Im(conj(lambda_s) psi_s) (a gate exp(-i t P / 2) contributes Im <lambda|P|psi>),
so that nothing of the size of a state leaves the chip. A rotation's eight sums are one reduction (of the eight
products stacked on three axes of size 2), a ring pair's one more. The gradients of a program's E examples are
summed in the program; the programs' partial sums (9 numbers per layer and qubit) are summed by XLA, and JAX's
reverse mode through the matrix construction carries them to the parameters. Only the parameters are
differentiable: differentiating with respect to the input states raises NotImplementedError. No forward mode
(``jax.jvp``).

Devices. On a GPU the kernel is compiled by Pallas's Triton backend (the operations it uses: loads and stores
of rows and scalars, reshapes, splits and stacks along an axis of size 2, transposes, elementwise arithmetic
and sums, all in Pallas's Triton lowering; tests/test_pallas.py lowers both kernels for a CUDA GPU without one
and verifies the Triton modules, but only a GPU compiles and runs them). On CPU devices (and wherever the
default backend is not a GPU) it runs in Pallas's interpret mode (``pallas_call(..., interpret=True)``): the same
kernel body evaluated by XLA program by program, exact but slow (each kernel also takes seconds to compile), for
tests and for developing without a GPU; use "native" or "blocks" on a CPU. TPUs are not supported (Mosaic TPU
needs another layout): ``unavailable()`` says so.

Limits: complex64 states, float32 parameters (other real dtypes are cast, and the gradient returned in theirs),
the "hea" ansatz, 2 to 14 qubits (``MAX_QUBITS``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.models import hea
from qrobust.models.base import Capabilities, SimOptions

MIN_QUBITS = 2
# A program keeps its states on one streaming multiprocessor (SM). One state of 2**14 complex64 amplitudes is
# 128 kB (two float32 planes of 64 kB); the backward pass holds two (the state and the costate), 256 kB, which is
# all of an H100 SM's register file (64k 32-bit registers, 256 kB) or of its unified L1 and shared memory
# (256 kB). From about 13 qubits the backward pass spills registers to local memory (cached in that L1); beyond
# 14 a state no longer fits an SM at all and would go to main memory at every gate, where "blocks"'s
# whole-batch matrix products do better.
MAX_QUBITS = 14
# Examples per program (E), a power of two: None, as many as make AMPLITUDES_PER_PROGRAM amplitudes (2 at 10
# qubits, 1 from 11 on, at most 8). Fewer keep more programs in flight; more share the matrices' scalar loads and
# the gradient's reductions (one per gate and program) among E states. Read when a model is built; a guess until
# measured on a GPU (benchmarks/pallas_kernel.py --examples times several).
EXAMPLES_PER_PROGRAM: int | None = None
AMPLITUDES_PER_PROGRAM = 2048
# Triton's warps (32 threads each) per program, GPU only: None, one warp per 256 amplitudes of the program's
# block, 4 to 16 (8 at 10 qubits and E = 2: each thread then holds 8 amplitudes of each of the backward pass's
# four planes in registers). A guess until measured (benchmarks/pallas_kernel.py --warps).
NUM_WARPS: int | None = None


def unavailable() -> str | None:
    """Why the Pallas kernel cannot run here, or None where it can (interpreted on CPU, compiled on a GPU)."""
    try:
        from jax.experimental import pallas  # noqa: F401
    except Exception as error:  # ImportError, or a jaxlib without what Pallas needs
        return f"Pallas (jax.experimental.pallas) cannot be imported: {type(error).__name__}: {error}"
    backend = jax.default_backend()
    if backend == "tpu":
        return "the Pallas kernel is written for GPUs (Triton) and, for tests, CPUs (interpret mode), not TPUs"
    if backend == "gpu":
        try:
            from jax.experimental.pallas import triton  # noqa: F401
        except Exception as error:
            return f"Pallas's Triton backend cannot be imported: {type(error).__name__}: {error}"
    return None


CAPABILITIES = Capabilities(("hea",), ("complex64",), MIN_QUBITS, MAX_QUBITS, accelerators=True,
                            forward_mode=False, whole_batch=True, unavailable=unavailable)


def interpret_default() -> bool:
    """Whether ``build`` interprets the kernel: everywhere but on a GPU."""
    return jax.default_backend() != "gpu"


# --- the kernel's gate arithmetic on (E, 2**L) real planes ---------------------------------------------------

def _halves(x, q: int, n_qubits: int):
    """The two halves of plane x (E, 2**L) by the bit of qubit q: each (E, 2**q, 2**(L-1-q))."""
    e, above, below = x.shape[0], 2**q, 2 ** (n_qubits - 1 - q)
    zero, one = jnp.split(x.reshape(e, above, 2, below), 2, axis=2)
    return zero.reshape(e, above, below), one.reshape(e, above, below)


def _join(zero, one):
    """Inverse of ``_halves``: (E, 2**q, 2**k) halves -> the (E, 2**(q+k+1)) plane (Triton stacks on the last
    axis only, hence the transpose)."""
    e, above, below = zero.shape
    both = jnp.stack([zero, one], axis=-1)  # (E, above, below, 2)
    return jnp.transpose(both, (0, 1, 3, 2)).reshape(e, 2 * above * below)


def _mix(u, a0r, a0i, a1r, a1i):
    """(b0, b1) = u (a0, a1) for a 2 x 2 complex u given as scalars ((u00r, u00i), (u01r, u01i), ...)."""
    (r00, i00), (r01, i01), (r10, i10), (r11, i11) = u
    b0r = r00 * a0r - i00 * a0i + r01 * a1r - i01 * a1i
    b0i = r00 * a0i + i00 * a0r + r01 * a1i + i01 * a1r
    b1r = r10 * a0r - i10 * a0i + r11 * a1r - i11 * a1i
    b1i = r10 * a0i + i10 * a0r + r11 * a1i + i11 * a1r
    return b0r, b0i, b1r, b1i


def _dagger(u):
    """The conjugate transpose of a 2 x 2 matrix in ``_mix``'s form."""
    (r00, i00), (r01, i01), (r10, i10), (r11, i11) = u
    return (r00, -i00), (r10, -i10), (r01, -i01), (r11, -i11)


def _matrix(m_ref, layer: int, q: int):
    """The 2 x 2 matrix of qubit q in layer ``layer`` as scalars, from the (d, L, 8) ref [re 00 01 10 11, im ...]."""
    return tuple((m_ref[layer, q, j], m_ref[layer, q, 4 + j]) for j in range(4))


def _rotate(re, im, u, q: int, n_qubits: int):
    """Apply u to qubit q of the state (re, im)."""
    a0r, a1r = _halves(re, q, n_qubits)
    a0i, a1i = _halves(im, q, n_qubits)
    b0r, b0i, b1r, b1i = _mix(u, a0r, a0i, a1r, a1i)
    return _join(b0r, b1r), _join(b0i, b1i)


def _phase(re, im, pr, pi):
    """Multiply the state by the diagonal (pr + i pi), rows broadcast over the block's examples."""
    return re * pr - im * pi, re * pi + im * pr


def _run_forward(plan: hea.Plan, m_ref, phr_ref, phi_ref, re, im):
    """The state after the circuit (every gate of the plan, in order)."""
    n = plan.n_qubits
    for layer in range(plan.depth):
        for q in plan.rotations[layer]:
            re, im = _rotate(re, im, _matrix(m_ref, layer, q), q, n)
        if plan.pairs[layer]:
            re, im = _phase(re, im, phr_ref[layer, :][None, :], phi_ref[layer, :][None, :])
    return re, im


def _stack(a, b):
    """a and b stacked on a new last axis (the one stacking Triton has)."""
    return jnp.stack([a, b], axis=-1)


def _matrix_gradient(costate, state):
    """(8,) gradient of the logits with respect to a gate's matrix [re 00 01 10 11, im 00 01 10 11], from the
    halves ((re, im) of half 0, of half 1) of the costate after the gate and the state before it.

    dlogit/dU_ab = 2 sum conj(lambda_a) phi_b: of the real part of U_ab 2 Re, of the imaginary part -2 Im. The
    eight sums are ONE reduction of the eight products stacked on three trailing axes of size 2 (b innermost,
    then a, then re/im): a reduction per gate, not eight.
    """
    terms = {}
    for a in range(2):
        for b in range(2):
            (cr, ci), (sr, si) = costate[a], state[b]
            terms[0, a, b] = cr * sr + ci * si
            terms[1, a, b] = ci * sr - cr * si
    by_b = {(part, a): _stack(terms[part, a, 0], terms[part, a, 1]) for part in range(2) for a in range(2)}
    by_a = [_stack(by_b[part, 0], by_b[part, 1]) for part in range(2)]
    summed = jnp.sum(_stack(*by_a), axis=(0, 1, 2))  # (b, a, part)
    return 2 * jnp.transpose(summed, (2, 1, 0)).reshape(8)


def _forward_kernel(plan: hea.Plan):
    """Kernel body: (matrices, ring planes, signs, state planes) -> logits of the block's examples."""
    n = plan.n_qubits

    def kernel(m_ref, phr_ref, phi_ref, signs_ref, xr_ref, xi_ref, out_ref):
        re, im = _run_forward(plan, m_ref, phr_ref, phi_ref, xr_ref[...], xi_ref[...])
        z = signs_ref[n, :][None, :]  # z of the measured qubit per basis state
        out_ref[...] = plan.readout_scale * jnp.sum((re * re + im * im) * z, axis=1)

    return kernel


def _backward_kernel(plan: hea.Plan):
    """Kernel body of the adjoint gradient: (..., cotangents) -> the block's summed gradients of the matrices
    (d, L, 8) and of the ring angles (d, L)."""
    n = plan.n_qubits
    rotated = {(layer, q) for layer in range(plan.depth) for q in plan.rotations[layer]}
    paired = {(layer, i) for layer in range(plan.depth) for i in plan.pairs[layer]}

    def kernel(m_ref, phr_ref, phi_ref, signs_ref, xr_ref, xi_ref, g_ref, gm_ref, ge_ref):
        re, im = _run_forward(plan, m_ref, phr_ref, phi_ref, xr_ref[...], xi_ref[...])
        weight = plan.readout_scale * g_ref[...][:, None] * signs_ref[n, :][None, :]
        lr, li = weight * re, weight * im  # the costate at the end of the circuit
        for layer in reversed(range(plan.depth)):
            if plan.pairs[layer]:
                cross = lr * im - li * re  # Im(conj(lambda) psi), the same before and after the ring
                for i in plan.pairs[layer]:
                    ge_ref[layer, i] = jnp.sum(cross * signs_ref[i, :][None, :])
                pr, pi = phr_ref[layer, :][None, :], phi_ref[layer, :][None, :]
                re, im = _phase(re, im, pr, -pi)
                lr, li = _phase(lr, li, pr, -pi)
            for q in reversed(plan.rotations[layer]):
                inverse = _dagger(_matrix(m_ref, layer, q))
                s0r, s1r = _halves(re, q, n)
                s0i, s1i = _halves(im, q, n)
                s0r, s0i, s1r, s1i = _mix(inverse, s0r, s0i, s1r, s1i)  # the state before the gate
                l0r, l1r = _halves(lr, q, n)
                l0i, l1i = _halves(li, q, n)
                gm_ref[layer, q, :] = _matrix_gradient(((l0r, l0i), (l1r, l1i)), ((s0r, s0i), (s1r, s1i)))
                l0r, l0i, l1r, l1i = _mix(inverse, l0r, l0i, l1r, l1i)
                re, im = _join(s0r, s1r), _join(s0i, s1i)
                lr, li = _join(l0r, l1r), _join(l0i, l1i)
        zero = jnp.zeros((), jnp.float32)
        for layer in range(plan.depth):  # gates outside the light cone: no gradient
            for q in range(n):
                if (layer, q) not in rotated:
                    gm_ref[layer, q, :] = jnp.zeros((8,), jnp.float32)
                if (layer, q) not in paired:
                    ge_ref[layer, q] = zero

    return kernel


# --- the calls ------------------------------------------------------------------------------------------------

def examples_per_program(n_qubits: int, requested: int | None = None) -> int:
    """E: the requested number of examples per program (default ``EXAMPLES_PER_PROGRAM``, else from
    ``AMPLITUDES_PER_PROGRAM``), a power of two (Triton's blocks are). The grid's size needs no limit: Pallas's
    Triton lowering folds axes beyond CUDA's 65535 programs into the first."""
    e = requested or EXAMPLES_PER_PROGRAM or min(8, max(1, AMPLITUDES_PER_PROGRAM >> n_qubits))
    e = int(e)
    if e < 1 or e & (e - 1):
        raise ValueError(f"examples per program must be a power of two, got {e}")
    return e


@functools.lru_cache(maxsize=None)
def _signs(n_qubits: int) -> np.ndarray:
    """(L + 1, 2**L) float32: rows i < L the ring's z_i z_{i+1}, row L the measured qubit's z."""
    s = np.arange(2**n_qubits)
    measured = 1 - 2 * (s & 1)
    return np.concatenate([hea.ring_zz_signs(n_qubits), measured[None]]).astype(np.float32)


def warps_per_program(n_qubits: int, examples: int, requested: int | None = None) -> int:
    """Triton's warps per program: the requested number (default ``NUM_WARPS``), else one per 256 amplitudes of
    the program's block, 4 to 16."""
    return int(requested or NUM_WARPS or min(16, max(4, (examples << n_qubits) // 256)))


class Kernels:
    """The forward and backward pallas_calls of one plan: ``examples`` (E) per program; ``interpret``: Pallas's
    interpret mode, else compiled for a GPU by Triton with ``num_warps`` warps per program."""

    def __init__(self, plan: hea.Plan, *, interpret: bool, examples: int, num_warps: int):
        from jax.experimental import pallas as pl

        self.plan, self.interpret, self.examples, self.num_warps = plan, interpret, examples, num_warps
        self.pl = pl
        self.signs = _signs(plan.n_qubits)

    def _params(self):
        if self.interpret:
            return {}
        from jax.experimental.pallas import triton as pltriton

        return dict(compiler_params=pltriton.CompilerParams(num_warps=self.num_warps, num_stages=1))

    def _specs(self, e: int):
        pl, d, n = self.pl, self.plan.depth, self.plan.n_qubits
        dim = 2**n
        whole = lambda shape: pl.BlockSpec(shape, lambda i: (0,) * len(shape))  # noqa: E731
        return [whole((d, n, 8)), whole((d, dim)), whole((d, dim)), whole((n + 1, dim)),
                pl.BlockSpec((e, dim), lambda i: (i, 0)), pl.BlockSpec((e, dim), lambda i: (i, 0))]

    def forward(self, mats, phr, phi, xr, xi):
        """(B,) logits; mats (d, L, 8), phr/phi (d, 2**L), xr/xi (B, 2**L) float32, B a multiple of E."""
        e, pl = self.examples, self.pl
        return pl.pallas_call(
            _forward_kernel(self.plan), grid=(xr.shape[0] // e,), in_specs=self._specs(e),
            out_specs=pl.BlockSpec((e,), lambda i: (i,)),
            out_shape=jax.ShapeDtypeStruct(xr.shape[:1], jnp.float32), interpret=self.interpret,
            name="qrobust_hea_forward", **self._params(),
        )(mats, phr, phi, jnp.asarray(self.signs), xr, xi)

    def backward(self, mats, phr, phi, xr, xi, g):
        """(gradient of the matrices (d, L, 8), of the ring angles (d, L)) of sum g * logits."""
        e, pl, d, n = self.examples, self.pl, self.plan.depth, self.plan.n_qubits
        programs = xr.shape[0] // e
        gm, ge = pl.pallas_call(
            _backward_kernel(self.plan), grid=(programs,),
            in_specs=self._specs(e) + [pl.BlockSpec((e,), lambda i: (i,))],
            out_specs=[pl.BlockSpec((None, d, n, 8), lambda i: (i, 0, 0, 0)),
                       pl.BlockSpec((None, d, n), lambda i: (i, 0, 0))],
            out_shape=[jax.ShapeDtypeStruct((programs, d, n, 8), jnp.float32),
                       jax.ShapeDtypeStruct((programs, d, n), jnp.float32)],
            interpret=self.interpret, name="qrobust_hea_backward", **self._params(),
        )(mats, phr, phi, jnp.asarray(self.signs), xr, xi, g)
        return gm.sum(axis=0), ge.sum(axis=0)


def ring_planes(plan: hea.Plan, angles: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(d, 2**L) real and imaginary planes of each layer's RZZ ring diagonal from angles (d, L) (ones for a layer
    without pairs: the kernel does not read them)."""
    zz = jnp.asarray(hea.ring_zz_signs(plan.n_qubits), jnp.float32)
    phase = jnp.matmul(angles, zz, precision=jax.lax.Precision.HIGHEST)  # full precision (hea.ring_phases)
    return jnp.cos(0.5 * phase), -jnp.sin(0.5 * phase)


def hea_logits(plan: hea.Plan, *, interpret: bool | None = None, examples: int | None = None,
               num_warps: int | None = None):
    """``logits(params, states) -> (B,)`` float32 of the "hea" plan, run by the Pallas kernels.

    params (d, L, 4) computed in float32 (other real dtypes are cast; the gradient comes back in theirs), states
    (B, 2**L) computed in complex64 (any B: the batch is padded to a multiple of E with zero states, which add
    nothing to the gradient). Differentiable (reverse mode) in params only. ``interpret`` (default
    ``interpret_default()``), ``examples`` (E, default ``examples_per_program``), ``num_warps`` (default
    ``warps_per_program``): the module's constants.
    """
    e = examples_per_program(plan.n_qubits, examples)
    kernels = Kernels(plan, interpret=interpret_default() if interpret is None else interpret, examples=e,
                      num_warps=warps_per_program(plan.n_qubits, e, num_warps))
    pair_mask = np.zeros((plan.depth, plan.n_qubits), np.float32)
    for layer in range(plan.depth):
        pair_mask[layer, list(plan.pairs[layer])] = 1

    def padded(xs, g=None):
        extra = -xs.shape[0] % e
        xr, xi = jnp.real(xs), jnp.imag(xs)
        if extra:
            xr, xi = (jnp.pad(a, ((0, extra), (0, 0))) for a in (xr, xi))
            g = None if g is None else jnp.pad(g, (0, extra))  # zero states and cotangents: no gradient
        return xr, xi, g

    def forward(mats, angles, states):
        phr, phi = ring_planes(plan, angles)
        xr, xi, _ = padded(states)
        return kernels.forward(mats, phr, phi, xr, xi)[:states.shape[0]]

    @jax.custom_vjp
    def kernel(mats, angles, states):
        return forward(mats, angles, states)

    def kernel_fwd(mats, angles, states):
        if states.perturbed:
            raise NotImplementedError("the pallas simulator differentiates the parameters only, not the input "
                                      "states; use simulator='blocks'")
        return forward(mats.value, angles.value, states.value), (mats.value, angles.value, states.value)

    def kernel_bwd(residuals, cotangent):
        mats, angles, states = residuals
        phr, phi = ring_planes(plan, angles)
        xr, xi, g = padded(states, cotangent.astype(jnp.float32))
        gm, ge = kernels.backward(mats, phr, phi, xr, xi, g)
        return gm, ge, None

    kernel.defvjp(kernel_fwd, kernel_bwd, symbolic_zeros=True)

    def logits(params, states):
        p = jnp.asarray(params).astype(jnp.float32)
        u = jax.vmap(hea.layer_matrices, in_axes=(None, 0))(plan, p).reshape(plan.depth, plan.n_qubits, 4)
        mats = jnp.concatenate([jnp.real(u), jnp.imag(u)], axis=-1).astype(jnp.float32)  # (d, L, 8)
        angles = p[:, :, 3] * pair_mask
        return kernel(mats, angles, jnp.asarray(states).astype(jnp.complex64))

    return logits


def build(plan: hea.Plan, options: SimOptions):
    """``logits(params, xs) -> (B,)`` of the "hea" plan, run by the Pallas kernels (interpreted off a GPU)."""
    del options  # complex64 only (the registry checks the dtype); no options apply
    return hea_logits(plan)
