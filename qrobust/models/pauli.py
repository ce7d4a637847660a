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
    they apply, and what is left on each qubit at the circuit's start: (ops, {qubit: PTM}). The light cone and
    the order of ``noise.heisenberg_operations``; each gate on k >= 2 qubits is one ("dense", PTM, qubits) with
    everything that acts on its qubits just before it multiplied in (module docstring)."""
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


def apply(c, op, n: int):
    """c (4**n,) after one ("dense", PTM, qubits): the PTM contracted on the qubits' axes of a view of c."""
    _, r, qubits = op
    axes = _axes(qubits, n)
    shape, where = _view(2 * n, axes)
    dims = list(range(len(shape)))
    out_dims = list(range(len(shape), len(shape) + len(axes)))
    result = dims.copy()
    for j, ax in enumerate(axes):
        result[where[ax]] = out_dims[j]
    tensor = jnp.reshape(r.astype(c.dtype), (2,) * (2 * len(axes)))
    out = jnp.einsum(tensor, out_dims + [where[ax] for ax in axes], jnp.reshape(c, shape), dims, result)
    return jnp.reshape(out, c.shape)


def to_operator(c, n: int, dtype, first=None):
    """(2**n, 2**n) O = sum_P c_P P in the computational basis (rows, columns; qubit 0 the most significant),
    after ``first`` ({qubit: PTM}, what acts on each qubit at the circuit's start): one pass per qubit."""
    first = first or {}
    o = c.astype(dtype)
    for q in range(n):
        t = jnp.asarray(T1, dtype)
        if q in first:
            t = t @ jnp.asarray(first[q]).astype(dtype)
        view = jnp.reshape(o, (2**q, 2, 2 ** (n - 1), 2, 2 ** (n - 1 - q)))
        o = jnp.reshape(jnp.einsum("ijkl,akmlc->aimjc", jnp.reshape(t, (2, 2, 2, 2)), view), o.shape)
    return jnp.reshape(o, (2**n, 2**n))


def observable(gates, noise, n: int, measured: int, dtype, ends=()) -> jax.Array:
    """(2**n, 2**n) the Heisenberg-picture operator of Z_measured with the readout's factor, as
    ``noise.observable`` computes it, propagated in the Pauli basis (real, ``dtype``'s real part)."""
    real = jnp.zeros((), dtype).real.dtype
    c = np.zeros(4**n)
    c[1 << (n - 1 - measured)] = 1 - 2 * noise.readout  # Z on the measured qubit: a = 0, b = 1 (axis n + q)
    c = jax.lax.optimization_barrier(jnp.asarray(c, real))
    ops, first = operations(gates, noise, n, measured, ends)
    for start in range(0, len(ops), SEGMENT):
        segment = ops[start:start + SEGMENT]
        c = jax.checkpoint(lambda v, s=segment: functools.reduce(lambda z, op: apply(z, op, n), s, v))(c)
    return to_operator(c, n, dtype, first)


def build_heisenberg(circuit, options):
    """"heisenberg": (apply, apply_batch) of a noisy ``circuit`` whose inputs are its initial states ("amplitude",
    "angle"): one operator per parameter value, then the batch's quadratic forms."""
    from qrobust.models.circuits import _complex, angle_states, record

    n, cdtype, fn = circuit.n_qubits, _complex(options.dtype), circuit.function()

    def apply_batch(params, xs):
        gates, c = record(fn, n, "amplitude", params, None, options.dtype)  # once for the whole batch
        states = xs if circuit.encoding == "amplitude" else angle_states(xs, n, cdtype)
        o = observable(gates, circuit.noise, n, circuit.readout, cdtype, layer_ends(c))
        return circuit.readout_scale * quadratic_forms(o, states)

    return (lambda params, x: apply_batch(params, x[None])[0]), apply_batch
