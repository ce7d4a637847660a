"""Circuits as recorded gates, and the three simulators that run them: "native-gates", "xla-gates", "tc-gates".

A circuit (``qrobust.models.circuit.Circuit``) is written with TensorCircuit's gates; ``record`` runs it on a
``tc.Circuit`` and reads back TensorCircuit's record of every gate (matrix and qubits). Gates outside the
backward light cone of the measured qubit are left out (``light_cone``: exact), consecutive gates are
``fused`` (single-qubit gates on a qubit into one 2x2 matrix, diagonal gates into one vector of phases,
constant 0/1 matrices into one index gather), and the result runs on one of:

  "native-gates" the C++ kernel (``qrobust.models.native.gate_logits``, ``csrc/gates.cc``) with its adjoint
                gradient: JAX builds the fused matrices from the parameters (and differentiates that), the
                kernel runs them on one state at a time in cache. One- and two-qubit gates and permutations;
                inputs that are the initial state ("amplitude", "angle"); complex64; CPU.
  "xla-gates"   the fused gates as tensor contractions in XLA (single-qubit matrices in Kronecker blocks),
                forward and reverse mode, any dtype and device; gates that do not depend on the input act on
                the whole batch at once. Where the record reproduces TensorCircuit's own state for a probe input.
  "tc-gates"    TensorCircuit's own contraction of the circuit, per example: whatever the circuit does (noise
                channels, measurements, MPO gates), with ``contractor="cotengra"`` as the paper's code does.
What each runs is declared with its capabilities in ``qrobust.models.simulators``.
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.backend import tc_context



def _start(tc, n: int, encoding: str, x):
    """The circuit before the ansatz: the input state, |0...0> with RY(x_q), or |0...0>."""
    if encoding == "amplitude":
        return tc.Circuit(n, inputs=x)
    c = tc.Circuit(n)
    if encoding == "angle":
        for q in range(x.shape[-1]):
            c.ry(q, theta=x[q])
    return c


def _scalars(params):
    """``params`` (a jax or numpy array) as a numpy array of objects holding its entries, split off in one
    operation; None for anything else. An ansatz reads its parameters one at a time (``p[layer, q, 0]``): on a
    jax array each read is a slice, whose reverse mode is a zero-padded copy of the whole array, and XLA:CPU
    is slow to compile a few hundred of them summed (the paper's circuit at 10 qubits and depth 6: the
    recorded gates' gradient 67 s); split once, the reverse mode is one concatenation (docs/device.md)."""
    if not isinstance(params, (jax.Array, np.ndarray)) or params.ndim == 0 or params.dtype == object:
        return None
    cells = np.empty(params.size, dtype=object)
    for i, entry in enumerate(jnp.unstack(jnp.reshape(params, (-1,)))):
        cells[i] = entry
    return cells.reshape(params.shape)


def record(ansatz: Callable, n: int, encoding: str, params, x, dtype: str = "complex64", *, split: bool = True):
    """The gates of the circuit for these ``params`` and input ``x``: a list of (matrix (2**k, 2**k), qubits),
    and the ``tc.Circuit`` they were recorded from. Raises ValueError naming a record entry that is not a
    plain gate.

    ``split``: the ansatz is first given ``params`` as an array of its entries (``_scalars``), which records the
    same gates with a gradient far quicker to compile; where it fails on that (an ansatz that calls jax on a
    slice of its parameters), it is run on ``params`` itself. ``record_problem`` checks both records agree."""
    # constant gates (a CNOT's matrix) stay concrete values under jit, so ``fused`` can see what they are
    with tc_context(dtype) as tc, jax.ensure_compile_time_eval():
        c = _start(tc, n, encoding, x)
        cells = _scalars(params) if split else None
        try:
            ansatz(c, params if cells is None else cells, x if encoding == "reupload" else None)
        except Exception:
            if cells is None:
                raise
            c = _start(tc, n, encoding, x)
            ansatz(c, params, x if encoding == "reupload" else None)
        gates = []
        for entry in c._qir:
            qubits = tuple(int(q) for q in entry["index"])
            tensor = getattr(entry.get("gate"), "tensor", None)
            k = len(qubits)
            if entry.get("mpo") or tensor is None or tuple(tensor.shape) != (2,) * (2 * k):
                raise ValueError(f"the circuit's {entry.get('name', 'gate')!r} on qubits {qubits} is not a plain "
                                 f"{k}-qubit gate")
            name = str(entry.get("name", "")).lower()
            matrix = _rotation(name, entry.get("parameters"), tensor.dtype)
            gates.append((jnp.reshape(tensor, (2**k, 2**k)) if matrix is None else matrix, qubits, name))
    return gates, c


_PAULI = {"x": np.array([[0, 1], [1, 0]]), "y": np.array([[0, -1j], [1j, 0]]), "z": np.diag([1, -1])}
ROTATIONS = {"rx": "x", "ry": "y", "rz": "z", "rxx": "xx", "ryy": "yy", "rzz": "zz"}  # exp(-i theta P / 2)


def _rotation(name: str, parameters, dtype):
    """A rotation gate's matrix cos(theta/2) I - i sin(theta/2) P from its recorded real angle, or None for
    any other gate. The same matrix as TensorCircuit's own (the record is checked against TensorCircuit's
    state when a model is built), in a few operations instead of the dozens TensorCircuit's construction
    takes, which makes a user circuit's training program several times quicker to compile."""
    parameters = parameters or {}
    theta = parameters.get("theta")
    if name not in ROTATIONS or set(parameters) != {"theta"} or theta is None or jnp.iscomplexobj(theta):
        return None
    pauli = functools.reduce(np.kron, [_PAULI[p] for p in ROTATIONS[name]])
    half = jnp.asarray(theta) / 2
    return (jnp.cos(half) * np.eye(len(pauli)) - 1j * jnp.sin(half) * pauli).astype(dtype)


DIAGONAL = frozenset({"rz", "z", "s", "t", "sd", "td", "phase", "cz", "rzz"})  # TensorCircuit's diagonal gates


def light_cone(gates, measured: int) -> list:
    """The gates that can change <Z_measured>: walking back from the measurement, those touching a qubit that
    a kept later gate touches (the backward light cone; exact: the others commute with the observable)."""
    active, kept = {measured}, []
    for gate in reversed(gates):
        if active & set(gate[1]):
            kept.append(gate)
            active |= set(gate[1])
    return kept[::-1]


def _apply(psi, matrix, qubits, n):
    """One gate on the state tensor psi (..., 2,...,2) (n qubit axes last): a tensor contraction."""
    k, lead = len(qubits), psi.ndim - n
    axes = [lead + q for q in qubits]
    u = jnp.reshape(matrix.astype(psi.dtype), (2,) * (2 * k))
    psi = jnp.tensordot(u, psi, axes=(list(range(k, 2 * k)), axes))
    return jnp.moveaxis(psi, list(range(k)), axes)


def _apply_block(psi, matrices: list, lo: int, n: int):
    """Single-qubit matrices on the consecutive qubits lo, lo+1, ... as ONE Kronecker product, applied as a
    matrix product on the state viewed as (2**lo, 2**k, rest)."""
    k = len(matrices)
    block = functools.reduce(jnp.kron, matrices)
    view = jnp.reshape(psi, (-1, 2**k, 2 ** (n - lo - k)))  # leading batch axes fold into the first
    return jnp.reshape(jnp.einsum("ij,ajb->aib", block, view), psi.shape)


BLOCK = 5  # qubits per Kronecker block of fused single-qubit gates (2**5 x 2**5 matrices)


def _diagonal_factor(matrix, qubits, n, dtype):
    """A diagonal gate's phases as a (2,)*n-broadcastable tensor."""
    k = len(qubits)
    d = jnp.reshape(jnp.diagonal(matrix).astype(dtype), (2,) * k)
    order = sorted(range(k), key=lambda i: qubits[i])
    d = jnp.transpose(d, order)
    shape = [2 if q in qubits else 1 for q in range(n)]
    return jnp.reshape(d, shape)  # broadcasts against leading batch axes too


def permutation_gather(matrix, qubits, n: int) -> np.ndarray | None:
    """For a gate whose matrix is a constant permutation of basis states (0/1 entries, one 1 per row and
    column), the index array ``gather`` (2**n,) with state_after = state_before[gather]; else None (a matrix
    that depends on parameters, a traced value, is never one)."""
    if isinstance(matrix, jax.core.Tracer):
        return None
    m = np.asarray(matrix)
    if not (np.all((m == 0) | (m == 1)) and np.all(m.sum(0) == 1) and np.all(m.sum(1) == 1)):
        return None
    source = np.argmax(m, axis=1)  # row a of the gate takes its amplitude from column source[a]
    index = np.arange(2**n)
    shifts = [n - 1 - q for q in qubits]  # qubit 0 is the most significant bit
    sub = sum(((index >> s) & 1) << (len(qubits) - 1 - i) for i, s in enumerate(shifts))
    cleared = index & ~sum(1 << s for s in shifts)
    new = source[sub]
    return cleared | sum(((new >> (len(qubits) - 1 - i)) & 1) << s for i, s in enumerate(shifts))


def fused(gates, n: int, dtype) -> list:
    """``gates`` (matrix, qubits, name) as the operations that apply them, in order: ("singles", [(q, 2x2),
    ...]) single-qubit gates, consecutive ones on a qubit multiplied into one; ("phases", tensor) consecutive
    diagonal gates (``DIAGONAL``) as one phase tensor broadcastable to (2,)*n; ("permutation", gather)
    consecutive gates that only permute basis states (a constant 0/1 matrix: CNOT, SWAP, X, Toffoli, ...) as
    one numpy index array, the state after them being ``state[..., gather]``; ("gate", matrix, qubits) any
    other. A pending product is emitted only when a gate that does not commute with it comes, so the order of
    every non-commuting pair is kept. Matrices in ``dtype``; qubit 0 is the most significant bit."""
    events: list = []
    single: dict[int, jax.Array] = {}  # qubit -> the product of its pending single-qubit gates
    phases, support = None, set()  # the pending diagonal gates and the qubits they touch

    def flush_single(q):
        """Emit every pending single-qubit gate (all commute with what is pending) once one is on qubit q."""
        if q in single:
            events.append(("singles", sorted(single.items())))
            single.clear()

    def flush_phases():
        nonlocal phases, support
        if phases is not None:
            events.append(("phases", phases))
            phases, support = None, set()

    for matrix, qubits, name in gates:
        matrix = matrix.astype(dtype)
        if len(qubits) == 1 and name not in DIAGONAL:
            q = qubits[0]
            if q in support:  # it does not commute with the pending phases on its qubit
                flush_phases()
            single[q] = matrix @ single[q] if q in single else matrix
        elif name in DIAGONAL:
            for q in qubits:
                flush_single(q)
            factor = _diagonal_factor(matrix, qubits, n, dtype)
            phases = factor if phases is None else phases * factor
            support |= set(qubits)
        else:
            for q in qubits:
                flush_single(q)
            if support & set(qubits):
                flush_phases()
            gather = permutation_gather(matrix, qubits, n)
            if gather is None:
                events.append(("gate", matrix, qubits))
            elif events and events[-1][0] == "permutation":  # nothing came between: one permutation
                events[-1] = ("permutation", events[-1][1][gather])
            else:
                events.append(("permutation", gather))
    flush_phases()
    if single:
        events.append(("singles", sorted(single.items())))
    return events


def apply_gates(state: jax.Array, gates, n: int) -> jax.Array:
    """``state`` (..., 2**n) after each (matrix, qubits, name) of ``gates`` in turn (the same gates on every
    state of a leading batch), as XLA tensor operations; qubit 0 is the most significant bit. The gates are
    ``fused`` first; single-qubit gates on consecutive qubits are applied as Kronecker blocks."""
    lead = state.shape[:-1]
    psi = jnp.reshape(state, lead + (2,) * n)
    for event in fused(gates, n, psi.dtype):
        if event[0] == "singles":
            pending = dict(event[1])  # qubit -> 2x2, in qubit order
            qubits = list(pending)
            run = [qubits[0]]
            for a in qubits[1:] + [None]:
                if a is not None and a == run[-1] + 1 and len(run) < BLOCK:
                    run.append(a)
                    continue
                psi = _apply_block(psi, [pending[b] for b in run], run[0], n)
                run = [a]
        elif event[0] == "phases":
            psi = psi * event[1]
        elif event[0] == "permutation":
            psi = jnp.reshape(jnp.reshape(psi, lead + (2**n,))[..., event[1]], psi.shape)
        else:
            psi = _apply(psi, event[1], event[2], n)
    return jnp.reshape(psi, lead + (2**n,))


def native_operations(gates, n: int):
    """``gates`` as the native kernel's operations (``qrobust.models.native.gate_logits``): (ops (G, 4) int32,
    perms (NP, 2**n) int32, both numpy: the circuit's structure; mats1 (N1, 2, 2), diags (ND, 2**n), mats2
    (N2, 4, 4) complex64), each array at least one entry (unused padding where a kind is absent). ValueError
    for a gate on more than two qubits that is not a permutation."""
    from qrobust.models.native import OpKind

    ops, perms, mats1, diags, mats2 = [], [], [], [], []
    for event in fused(gates, n, jnp.complex64):
        if event[0] == "permutation":
            ops.append((OpKind.PERMUTATION, len(perms), 0, 0))
            perms.append(event[1])
            continue
        if event[0] == "singles":
            for q, matrix in event[1]:
                ops.append((OpKind.SINGLE, len(mats1), q, 0))
                mats1.append(matrix)
        elif event[0] == "phases":
            ops.append((OpKind.DIAGONAL, len(diags), 0, 0))
            diags.append(jnp.reshape(jnp.broadcast_to(event[1], (2,) * n), (2**n,)))
        elif len(event[2]) == 2:
            ops.append((OpKind.TWO_QUBIT, len(mats2), *event[2]))
            mats2.append(event[1])
        else:
            raise ValueError(f"a {len(event[2])}-qubit gate on qubits {event[2]} (the native kernel takes one- and "
                             "two-qubit gates)")
    pad = [(mats1, jnp.eye(2, dtype=jnp.complex64)), (diags, jnp.ones(2**n, jnp.complex64)),
           (mats2, jnp.eye(4, dtype=jnp.complex64))]
    arrays = tuple(jnp.stack(items) if items else filler[None] for items, filler in pad)
    perms = np.asarray(perms if perms else [np.arange(2**n)], np.int32)
    return (np.asarray(ops, np.int32).reshape(-1, 4), perms, *arrays)


def native_batch(gates_and_states: Callable, n: int, measured: int, readout_scale: float) -> Callable:
    """``logits(params, xs) -> (B,)`` on the C++ kernel ("native-gates") of a circuit whose gates do not depend
    on the input: ``gates_and_states(params, xs)`` gives the recorded gates (one- and two-qubit) and the batch's
    initial states. One kernel per operation table (fixed by the circuit's structure, so built once)."""
    from qrobust.models import native

    kernels: dict = {}

    def logits(params, xs):
        gates, states = gates_and_states(params, xs)
        ops, perms, *arrays = native_operations(gates, n)
        key = ops.tobytes() + perms.tobytes()
        if key not in kernels:
            kernels[key] = native.gate_logits(ops, perms, measured, readout_scale)
        return kernels[key](*arrays, states)

    return logits


def z_expectation(state: jax.Array, n: int, qubit: int) -> jax.Array:
    """<Z_qubit> of statevectors (..., 2**n)."""
    lead = state.shape[:-1]
    probs = jnp.abs(jnp.reshape(state, lead + (2**qubit, 2, 2 ** (n - qubit - 1)))) ** 2
    marginal = jnp.sum(probs, axis=(-3, -1))
    return marginal[..., 0] - marginal[..., 1]


def angle_states(xs: jax.Array, n: int, dtype) -> jax.Array:
    """(B, 2**n) the product states RY(x_q)|0> on qubits q < F, |0> on the rest, for features xs (B, F)."""
    factors = [jnp.stack([jnp.cos(xs[:, q] / 2), jnp.sin(xs[:, q] / 2)], axis=-1) for q in range(xs.shape[-1])]
    zero = jnp.zeros((xs.shape[0], 2), xs.dtype).at[:, 0].set(1.0)
    state = jnp.ones((xs.shape[0], 1), xs.dtype)
    for f in factors + [zero] * (n - xs.shape[-1]):
        state = (state[:, :, None] * f[:, None, :]).reshape(xs.shape[0], -1)
    return state.astype(dtype)


def _initial_state(n: int, encoding: str, x, dtype) -> jax.Array:
    """What the recorded gates act on: the input state (amplitude encoding), else |0...0> (the angle
    encoding's RY gates are part of the record)."""
    if encoding == "amplitude":
        return jnp.asarray(x, dtype)
    return jnp.zeros(2**n, dtype).at[0].set(1.0)


def record_problem(ansatz, n: int, encoding: str, params, x, dtype: str) -> str | None:
    """Why the recorded gates of ``ansatz`` cannot stand for it (None: they can): the record is not plain gates,
    or applying it does not give TensorCircuit's own state for the input ``x``, or it records other gates
    when given its parameters split (``record``'s ``split``)."""
    try:
        gates, c = record(ansatz, n, encoding, params, x, dtype)
    except ValueError as exc:
        return str(exc)
    plain, _ = record(ansatz, n, encoding, params, x, dtype, split=False)
    if len(plain) != len(gates) or any(g[1:] != h[1:] or not np.allclose(g[0], h[0], atol=1e-6)
                                       for g, h in zip(gates, plain)):
        return ("the circuit records other gates when its parameters are given as an array of their entries "
                "than as one array (it reads their type or dtype?)")
    start = _initial_state(n, encoding, x, jnp.complex128 if dtype == "complex128" else jnp.complex64)
    ours = np.asarray(apply_gates(start, gates, n))
    with tc_context(dtype):
        theirs = np.asarray(c.state())
    tol = 1e-9 if dtype == "complex128" else 1e-4
    if not np.allclose(ours, theirs, atol=tol):
        return ("the circuit's recorded gates do not reproduce TensorCircuit's state (it uses something beyond "
                "gates: a channel, a measurement, an MPO)")
    return None


def _ansatz_and_states(circuit, dtype: str):
    """For a circuit whose input is its initial state ("amplitude", "angle"): ``(params, xs) -> (gates, states)``,
    the ansatz's gates in the measured qubit's light cone, recorded once for the whole batch, and the batch's
    initial states (the angle encoding's RY(x_q)|0> is a product state, made directly)."""
    fn, n, cdtype = circuit.function(), circuit.n_qubits, _complex(dtype)

    def gates_and_states(params, xs):
        gates, _ = record(fn, n, "amplitude", params, None, dtype)
        states = xs if circuit.encoding == "amplitude" else angle_states(xs, n, cdtype)
        return light_cone(gates, circuit.readout), states

    return gates_and_states


def _complex(dtype: str):
    return jnp.complex128 if dtype == "complex128" else jnp.complex64


def build_native_gates(circuit, options):
    """"native-gates": (apply, apply_batch) of ``circuit`` on the C++ kernel (reverse mode only)."""
    batch = native_batch(_ansatz_and_states(circuit, options.dtype), circuit.n_qubits, circuit.readout,
                         circuit.readout_scale)
    return (lambda params, x: batch(params, x[None])[0]), batch


def build_xla_gates(circuit, options):
    """"xla-gates": (apply, apply_batch) of ``circuit`` as XLA tensor contractions; the whole batch at once where
    the gates do not depend on the input, else one example at a time (apply_batch None)."""
    fn, n, encoding, cdtype = circuit.function(), circuit.n_qubits, circuit.encoding, _complex(options.dtype)
    measured, scale = circuit.readout, circuit.readout_scale

    def apply(params, x):
        gates, _ = record(fn, n, encoding, params, x, options.dtype)
        start = _initial_state(n, encoding, x, cdtype)
        return scale * z_expectation(apply_gates(start, light_cone(gates, measured), n), n, measured)

    if encoding == "reupload":
        return apply, None
    gates_and_states = _ansatz_and_states(circuit, options.dtype)

    def apply_batch(params, xs):
        gates, states = gates_and_states(params, xs)
        return scale * z_expectation(apply_gates(states, gates, n), n, measured)

    return apply, apply_batch


def build_tc_gates(circuit, options):
    """"tc-gates": (apply, None) of ``circuit`` contracted by TensorCircuit itself, one example per call."""
    fn, n, encoding = circuit.function(), circuit.n_qubits, circuit.encoding

    def apply(params, x):
        with tc_context(options.dtype, options.contractor) as tc:
            c = _start(tc, n, encoding, x)
            fn(c, params, x if encoding == "reupload" else None)
            return circuit.readout_scale * jnp.real(c.expectation_ps(z=[circuit.readout]))

    return apply, None
