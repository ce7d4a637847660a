"""The Heisenberg-picture operator in the Pauli basis: real coefficients, real transfer matrices.

"heisenberg" (``qrobust.models.noise``) carries Z_measured backwards through the noisy circuit. Held in the
computational basis, the operator O is 4**n complex numbers and a one-qubit gate with its channels is a complex
4 x 4 matrix on (row q, column q). Every map here (a unitary's U^dag . U, a channel's adjoint) preserves
Hermiticity, so in the Pauli basis, O = sum_P c_P P, the coefficients c are real and each map is a real matrix,
its Pauli transfer matrix (PTM): R[Q, P] = Tr(Q A(P)) / 2**k on k qubits. That halves the memory of every pass
and quarters the arithmetic of a one-qubit map.

Layout: c has 2n binary axes. Qubit q's Pauli X^a Z^b i^(ab) (I, Z, X, Y for (a, b) = 00, 01, 10, 11) is indexed
by a on axis q and b on axis n + q: the axes where the computational-basis operator holds its row and column
bits, so that one pass of per-qubit maps (``to_operator``) turns c into O in the layout of ``noise.observable``.

The operations (``operations``), in the order they act on c (the circuit reversed, with the light cone, merging
and order of ``noise.heisenberg_operations``): one ("dense", R, qubits) per gate on k >= 2 qubits, its
4**k x 4**k PTM contracted on its 2k axes, with everything that acts on its qubits just before it (one-qubit
gates, their channels, layer channels, a two-qubit channel) multiplied in; what is left on each qubit at the
circuit's start goes into ``to_operator``'s pass. So every pass over c is one multi-qubit gate: 60 for the
paper's circuit at 10 qubits and depth 6 (the computational basis: 250). A rotation about a Pauli string (RZZ)
mixes each string with one partner only, two elementwise products and an axis flip instead of a contraction;
but XLA fuses a chain of such flips into one loop that recomputes each step twice per following step
(measured: 6 in a row 80 ms, as contractions 5 ms), so it is contracted like any gate.

Reverse mode (``apply_reverse``, the simulator's unless forward mode is asked for): each gate's backward step
written out, the transposed PTM on the cotangent and the PTM's own cotangent as one matrix product: a
value-and-gradient 1.7x quicker than JAX's transposed contractions at 12 qubits, 1.3x at 10. The operator in the computational basis
(``to_operator``) is real where the states are (the amplitude encoding's data, the angle encoding's product
states): a Y string's factor i drops out of real quadratic forms where its Y's are odd and is a sign where even,
so the last n passes and the quadratic forms run in real arithmetic.

Exactness: a change of basis, no approximation; float32 coefficients for complex64, within the 1e-5 that
tests/test_noise.py asks of outputs and gradients against TensorCircuit's density matrices in complex128.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.models.noise import ONE_QUBIT, SEGMENT, adjoint_superoperator, gate_superoperator, kraus, layer_ends, \
    light_cone, quadratic_forms


def _basis() -> np.ndarray:
    """t[(r, c), (a, b)] = <r| X^a Z^b i^(ab) |c>: the Pauli basis of one qubit, as the map from its coefficients
    to the operator's (row, column) entries."""
    x, z = np.array([[0, 1], [1, 0]]), np.diag([1, -1])
    paulis = [np.linalg.matrix_power(x, a) @ np.linalg.matrix_power(z, b) * 1j ** (a * b)
              for a in (0, 1) for b in (0, 1)]
    return np.stack([p.reshape(-1) for p in paulis], axis=1)


T1 = _basis()


def grouped(mats):
    """The tensor product of one 4 x 4 matrix per qubit, each on its qubit's (row, column) or (a, b) pair, as a
    4**k x 4**k matrix in the grouped order: the first of each pair for qubits 1..k, then the second (numpy
    where every factor is)."""
    k = len(mats)
    letters = "abcdefghijklmnopqrstuvwxyz"
    out1, out2, in1, in2 = (letters[i * k:(i + 1) * k] for i in range(4))
    spec = ",".join(f"{out1[j]}{out2[j]}{in1[j]}{in2[j]}" for j in range(k)) + f"->{out1}{out2}{in1}{in2}"
    xp = np if all(isinstance(m, np.ndarray) for m in mats) else jnp
    return xp.einsum(spec, *(xp.reshape(m, (2, 2, 2, 2)) for m in mats)).reshape(4**k, 4**k)


@functools.lru_cache(maxsize=None)
def basis(k: int) -> np.ndarray:
    """(4**k, 4**k) the Pauli basis of k qubits: rows (r_1..r_k, c_1..c_k), columns (a_1..a_k, b_1..b_k)."""
    return grouped([T1] * k)


def ptm(superoperator, k: int):
    """The real PTM of a map given as its matrix on (row qubits, column qubits) of a k-qubit operator
    (``noise.adjoint_superoperator``, ``noise.gate_superoperator``): numpy in, numpy out; jax in, jax out."""
    t = basis(k)
    if isinstance(superoperator, np.ndarray):
        return np.real(t.conj().T @ superoperator @ t) / 2**k
    t = jnp.asarray(t, superoperator.dtype)
    return jnp.real(jnp.conj(t).T @ superoperator @ t) / 2**k


def gate_ptm(matrix):
    """The PTM of U^dag . U for a k-qubit gate U (traced or not)."""
    return ptm(gate_superoperator(matrix), int(round(np.log2(matrix.shape[0]))))


def channel_ptm(name: str, p: float) -> np.ndarray:
    """The PTM of a channel's adjoint (numpy: known when the program is built)."""
    return ptm(adjoint_superoperator(kraus(name, p)), 2 if name == "depolarizing2" else 1)


def _then(first, second):
    """The PTM of ``first`` then ``second`` (numpy where both are)."""
    if isinstance(first, np.ndarray) and isinstance(second, np.ndarray):
        return second @ first
    return jnp.matmul(second, first)


def operations(gates, noise, n: int, measured: int, ends=()) -> tuple[list, dict]:
    """The Pauli-basis operations that carry Z_measured back through ``gates`` (matrix, qubits, name) with
    ``noise``'s channels at their placements (``ends``: the gate counts after which a layer ends), in the order
    they apply, and what is left at the circuit's start on qubits that no such gate touches: (ops, {qubit: PTM}).
    The light cone and the order of ``noise.heisenberg_operations``; each gate on k >= 2 qubits is one ("dense",
    PTM, qubits) with everything that acts on its qubits just before it multiplied in, and the last one on each
    qubit with what acts there at the circuit's start (module docstring)."""
    after = [(name, channel_ptm(name, p)) for name, p in noise.placed("gate")]
    singles = [r for name, r in reversed(after) if name in ONE_QUBIT]
    single = functools.reduce(_then, singles) if singles else None
    layers = [channel_ptm(name, p) for name, p in noise.layer_channels]
    layer = functools.reduce(_then, reversed(layers)) if layers else None
    ops, pending = [], {}

    def then(q, r):  # r applied to c after what is pending on q
        pending[q] = r if q not in pending else _then(pending[q], r)

    def take(qubits, m):  # m (or nothing), then what is pending on qubits, as one PTM on them
        if not any(q in pending for q in qubits):
            return m
        first = grouped([pending.pop(q, np.eye(4)) for q in qubits])
        return first if m is None else _then(m, first)

    for matrix, qubits, _, ended in light_cone(gates, measured, ends):
        for q in ended if layer is not None else ():
            then(q, layer)
        if matrix is None:
            continue
        if len(qubits) == 1:
            r = gate_ptm(matrix)
            then(qubits[0], r if single is None else _then(single, r))
            continue
        m = None
        for cname, r in reversed(after):  # the channels after the gate, the last one's adjoint first
            if cname in ONE_QUBIT:
                for q in qubits:
                    then(q, r)
            elif len(qubits) == 2:
                first = take(qubits, m)
                m = r if first is None else _then(first, r)
        m = take(qubits, m)
        ops.append(("dense", gate_ptm(matrix) if m is None else _then(m, gate_ptm(matrix)), tuple(qubits)))
    for i in reversed(range(len(ops))):  # what acts at the start goes into the last gate on its qubit, if any
        if any(q in pending for q in ops[i][2]):
            ops[i] = ("dense", take(ops[i][2], ops[i][1]), ops[i][2])
    return ops, pending


def _axes(qubits, n: int) -> tuple[int, ...]:
    """The axes of c that ``qubits``' Paulis occupy, in the PTM's order: (a of each, then b of each)."""
    return tuple(qubits) + tuple(n + q for q in qubits)


# --- applying them ------------------------------------------------------------------------------------------------

def _view(n2: int, axes) -> tuple[list[int], dict[int, int]]:
    """A view of the 2n binary axes that keeps ``axes`` as their own dimensions and merges the runs between:
    (shape, {axis: its dimension in the view})."""
    shape, where, prev = [], {}, 0
    for ax in sorted(axes):
        if ax > prev:
            shape.append(2 ** (ax - prev))
        where[ax] = len(shape)
        shape.append(2)
        prev = ax + 1
    if prev < n2:
        shape.append(2 ** (n2 - prev))
    return shape, where


def _contraction(qubits, n: int) -> tuple[list[int], list[int]]:
    """(the shape of the view of c for ``qubits``, the view's dimensions of their axes in the PTM's order)."""
    axes = _axes(qubits, n)
    shape, where = _view(2 * n, axes)
    return shape, [where[ax] for ax in axes]


def apply(c, op, n: int):
    """c (4**n,) after one ("dense", PTM, qubits): the PTM contracted on the qubits' axes of a view of c."""
    _, r, qubits = op
    shape, mine = _contraction(qubits, n)
    dims = list(range(len(shape)))
    out_dims = list(range(len(shape), len(shape) + len(mine)))
    result = dims.copy()
    for j, d in enumerate(mine):
        result[d] = out_dims[j]
    tensor = jnp.reshape(r.astype(c.dtype), (2,) * (2 * len(mine)))
    return jnp.reshape(jnp.einsum(tensor, out_dims + mine, jnp.reshape(c, shape), dims, result), c.shape)


def ptm_cotangent(g, c, qubits, n: int):
    """(4**k, 4**k) the cotangent of the PTM in ``apply(c, ("dense", PTM, qubits), n)`` given its output's, g:
    sum over every other axis of g[.., out, ..] c[.., in, ..], as one matrix product of the two with the qubits'
    axes moved last. JAX's own reverse mode contracts the two views in place, about twice the time at 12 qubits
    (``benchmarks/noise.py``)."""
    shape, mine = _contraction(qubits, n)
    order = [d for d in range(len(shape)) if d not in mine] + mine
    width = 4 ** len(qubits)

    def moved(v):
        return jnp.reshape(jnp.transpose(jnp.reshape(v, shape), order), (-1, width))

    return moved(g).T @ moved(c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _dense(c, r, qubits, n: int):
    return apply(c, ("dense", r, qubits), n)


def _dense_forward(c, r, qubits, n: int):
    return apply(c, ("dense", r, qubits), n), (c, r)


def _dense_backward(qubits, n: int, saved, g):
    c, r = saved
    return apply(g, ("dense", r.T, qubits), n), ptm_cotangent(g, c, qubits, n).astype(r.dtype)


_dense.defvjp(_dense_forward, _dense_backward)


def apply_reverse(c, op, n: int):
    """``apply`` with its reverse mode written out (the PTM's transpose on the cotangent, ``ptm_cotangent``):
    the same values and gradients, in reverse mode only (``jax.jvp`` through it raises)."""
    _, r, qubits = op
    return _dense(c, jnp.asarray(r).astype(c.dtype), tuple(qubits), n)


def _real_basis() -> np.ndarray:
    """t[(r, c), (a, b)] = <r| X^a Z^b |c>: ``T1`` without its factor i^(ab), real (Y = i XZ)."""
    return np.real(T1 * np.array([1, 1, 1, -1j]))


T1_REAL = _real_basis()


def _even_y_signs(n: int, dtype):
    """(4**n,) over the coefficients' index: (-1)**(y/2) where the string has an even number y of Y's, 0 where
    odd; from the index's bits (a_q on bit 2n-1-q, b_q on bit n-1-q: a Y is a = b = 1), in one fused pass."""
    index = jax.lax.iota(jnp.int32, 4**n)  # 4**13 < 2**31
    ys = jax.lax.population_count((index >> n) & index & (2**n - 1))
    return jnp.where(ys % 2 == 1, 0, 1 - 2 * ((ys >> 1) & 1)).astype(dtype)


def to_operator(c, n: int, dtype, first=None, real: bool = False):
    """(2**n, 2**n) O = sum_P c_P P in the computational basis (rows, columns; qubit 0 the most significant),
    after ``first`` ({qubit: PTM}, what acts on each qubit at the circuit's start): one pass per qubit.

    ``real``: instead the real matrix A with x^T A x = Re <x|O|x> for every real x, in real arithmetic: P is
    i^y times the real product R_P of I, Z, X and XZ, where y counts its Y's, and R_P is antisymmetric where y
    is odd (XZ is), so A = sum over even y of (-1)^(y/2) c_P R_P (symmetric), half the memory of O."""
    first = first or {}
    if real:
        for q, r in first.items():
            c = apply(c, ("dense", r, (q,)), n)
        o, first, basis_1 = c.astype(dtype) * _even_y_signs(n, dtype), {}, T1_REAL
    else:
        o, basis_1 = c.astype(dtype), T1
    for q in range(n):
        t = jnp.asarray(basis_1, dtype)
        if q in first:
            t = t @ jnp.asarray(first[q]).astype(dtype)
        view = jnp.reshape(o, (2**q, 2, 2 ** (n - 1), 2, 2 ** (n - 1 - q)))
        o = jnp.reshape(jnp.einsum("ijkl,akmlc->aimjc", jnp.reshape(t, (2, 2, 2, 2)), view), o.shape)
    return jnp.reshape(o, (2**n, 2**n))


def observable(gates, noise, n: int, measured: int, dtype, ends=(), *, real: bool = False,
               forward_mode: bool = True) -> jax.Array:
    """(2**n, 2**n) the Heisenberg-picture operator of Z_measured with the readout's factor, as
    ``noise.observable`` computes it, propagated in the Pauli basis (real, ``dtype``'s real part). ``real``: the
    real matrix whose quadratic forms on real states are its (``to_operator``), in ``dtype``'s real part.
    ``forward_mode``: differentiable in both modes (``apply``); False: in reverse mode only, 1.3x (10 qubits) to
    1.7x (12) quicker there (``apply_reverse``; docs/device.md)."""
    real_dtype = jnp.zeros((), dtype).real.dtype
    c = np.zeros(4**n)
    c[1 << (n - 1 - measured)] = 1 - 2 * noise.readout  # Z on the measured qubit: a = 0, b = 1 (axis n + q)
    c = jax.lax.optimization_barrier(jnp.asarray(c, real_dtype))
    ops, first = operations(gates, noise, n, measured, ends)
    step = apply if forward_mode else apply_reverse
    for start in range(0, len(ops), SEGMENT):
        segment = ops[start:start + SEGMENT]
        c = jax.checkpoint(lambda v, s=segment: functools.reduce(lambda z, op: step(z, op, n), s, v))(c)
    return to_operator(c, n, real_dtype if real else dtype, first, real=real)


def build_heisenberg(circuit, options):
    """"heisenberg": (apply, apply_batch) of a noisy ``circuit`` whose inputs are its initial states ("amplitude",
    "angle"): one operator per parameter value, then the batch's quadratic forms, in real arithmetic where the
    states are real (the angle encoding's always are; amplitude vectors where given real). Reverse mode uses
    ``apply_reverse`` unless ``options.forward_mode`` asks for forward mode too."""
    from qrobust.backend import real_dtype
    from qrobust.models.circuits import _complex, angle_states, record

    n, cdtype, fn = circuit.n_qubits, _complex(options.dtype), circuit.function()

    def apply_batch(params, xs):
        gates, c = record(fn, n, "amplitude", params, None, options.dtype)  # once for the whole batch
        states = xs if circuit.encoding == "amplitude" else angle_states(xs, n, real_dtype(options.dtype))
        o = observable(gates, circuit.noise, n, circuit.readout, cdtype, layer_ends(c),
                       real=not jnp.iscomplexobj(states), forward_mode=options.forward_mode)
        return circuit.readout_scale * quadratic_forms(o, states)

    return (lambda params, x: apply_batch(params, x[None])[0]), apply_batch
