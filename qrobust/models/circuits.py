"""A QNN from any circuit written with TensorCircuit: ``circuit_qnn(ansatz, n_qubits, n_params)``.

The user writes the circuit the way they write circuits already, a function that applies TensorCircuit
gates to a ``tc.Circuit``:

    def my_ansatz(c, params, x):            # params: (n_params,); x: the input's features, or None
        n = c._nqubits
        for q in range(n):
            c.ry(q, theta=params[q])
        for q in range(n - 1):
            c.cz(q, q + 1)

    model = circuit_qnn(my_ansatz, n_qubits=10, n_params=10)

The model's logit is ``readout_scale * <Z_measured>`` (the paper's readout: scale 5, the last qubit), its
parameters a flat vector drawn from N(0, init_std**2), and it is a ``Model`` like every other: every
study trains it on the replica engine.

Encodings (``encoding=``): "amplitude" (the input is the circuit's initial state, 2**n amplitudes; ``x`` is
None), "angle" (the input is a feature vector of at most n values, loaded by RY(x_q) on qubit q of |0...0>
before the ansatz; ``x`` is None), "reupload" (the input is a feature vector, the circuit starts in
|0...0>, and the ansatz loads the features itself wherever it likes: ``x`` is the vector).

Simulators (``simulator=``), chosen per circuit, the first of these that can run it (the choice and why the
faster ones could not are recorded in ``settings``: ``simulator``, ``simulator_reason``):
  "native-gates" the C++ kernel (``qrobust.models.native.gate_logits``, ``csrc/gates.cc``) with its adjoint
                gradient, on the operations the gates are ``fused`` into: consecutive single-qubit gates on a
                qubit as one 2x2 matrix, consecutive diagonal gates as one vector of 2**n phases, any other
                two-qubit gate (CNOT, RXX, ...) as a 4x4 matrix. JAX builds those matrices from the parameters
                (and differentiates that); the kernel runs them on one state at a time in cache. For circuits
                of one- and two-qubit gates whose input is the initial state ("amplitude", "angle"), in
                complex64, on 5 to 20 qubits, on CPU, where the kernel builds. On the paper's HEA it runs as
                fast as the built-in HEA kernel (``benchmarks/user_circuit.py``).
  "xla-gates"   the circuit's own gates, read from TensorCircuit's record of them (``Circuit._qir``: every
                gate's matrix and qubits), applied to the statevector by tensor contractions in XLA: any
                one- or two-qubit (or wider) gate TensorCircuit has, data-dependent rotations included,
                with forward and reverse mode, in complex64 or complex128, on any device. Gates outside the
                backward light cone of the measured qubit are left out (exact; "native-gates" too), the
                gates are ``fused`` as above (single-qubit matrices applied in Kronecker blocks), and gates that
                do not depend on the input are applied to the whole batch at once. Used where the record
                reproduces TensorCircuit's own state for a probe input (checked when the model is built).
  "tc-circuit"  TensorCircuit's own contraction of the circuit, per example: whatever the circuit does.
                The fallback, e.g. for a circuit whose record does not reproduce its state (noise
                channels, measurements, MPO gates).
The built-in ``qrobust.models.qnn`` keeps its own kernel for the paper's HEA (``simulator="native"``); the
library's "hea" entry is the same circuit (tested to 1e-10).
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.backend import check_dtype, real_dtype, tc_context
from qrobust.errors import ConfigError
from qrobust.models.base import Model

ENCODINGS = ("amplitude", "angle", "reupload")
CIRCUIT_SIMULATORS = ("native-gates", "xla-gates", "tc-circuit")


def _start(tc, n: int, encoding: str, x):
    """The circuit before the ansatz: the input state, |0...0> with RY(x_q), or |0...0>."""
    if encoding == "amplitude":
        return tc.Circuit(n, inputs=x)
    c = tc.Circuit(n)
    if encoding == "angle":
        for q in range(x.shape[-1]):
            c.ry(q, theta=x[q])
    return c


def record(ansatz: Callable, n: int, encoding: str, params, x, dtype: str = "complex64"):
    """The gates of the circuit for these ``params`` and input ``x``: a list of (matrix (2**k, 2**k), qubits),
    and the ``tc.Circuit`` they were recorded from. Raises ValueError naming a record entry that is not a
    plain gate."""
    # constant gates (a CNOT's matrix) stay concrete values under jit, so ``fused`` can see what they are
    with tc_context(dtype) as tc, jax.ensure_compile_time_eval():
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
    ops, perms, mats1, diags, mats2 = [], [], [], [], []
    for event in fused(gates, n, jnp.complex64):
        if event[0] == "permutation":
            ops.append((3, len(perms), 0, 0))
            perms.append(event[1])
            continue
        if event[0] == "singles":
            for q, matrix in event[1]:
                ops.append((0, len(mats1), q, 0))
                mats1.append(matrix)
        elif event[0] == "phases":
            ops.append((1, len(diags), 0, 0))
            diags.append(jnp.reshape(jnp.broadcast_to(event[1], (2,) * n), (2**n,)))
        elif len(event[2]) == 2:
            ops.append((2, len(mats2), *event[2]))
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


def build_native_gates(plan, options):
    """The registry's "native-gates" for the built-in ansatze (``qrobust.models.simulators``): the plan's
    gates, written gate by gate in TensorCircuit as "tc-gates" writes them, recorded once per batch and run by
    the C++ kernel (reverse mode only)."""
    from qrobust.models import tc_sim

    def gates_and_states(params, xs):
        gates, _ = record(lambda c, p, _x: tc_sim.plan_gates(c, plan, p), plan.n_qubits, "amplitude", params,
                          None, options.dtype)
        return light_cone(gates, plan.measured), xs

    return native_batch(gates_and_states, plan.n_qubits, plan.measured, plan.readout_scale)


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


def _why_not_gates(ansatz, n, encoding, probe_params, probe_x, dtype) -> str | None:
    """Why "xla-gates" cannot run this circuit (None: it can): the record is not plain gates, or applying it
    does not give TensorCircuit's own state for a probe input."""
    try:
        gates, c = record(ansatz, n, encoding, probe_params, probe_x, dtype)
    except ValueError as exc:
        return str(exc)
    start = _initial_state(n, encoding, probe_x, jnp.complex128 if dtype == "complex128" else jnp.complex64)
    ours = np.asarray(apply_gates(start, gates, n))
    with tc_context(dtype):
        theirs = np.asarray(c.state())
    tol = 1e-9 if dtype == "complex128" else 1e-4
    if not np.allclose(ours, theirs, atol=tol):
        return ("the circuit's recorded gates do not reproduce TensorCircuit's state (it uses something beyond "
                "gates: a channel, a measurement, an MPO)")
    return None


def _why_not_native(ansatz, n, encoding, dtype, probe_params) -> str | None:
    """Why "native-gates" cannot run this circuit here (None: it can): the encoding, dtype, size, device, a
    gate on more than two qubits, or the kernel itself (built on the first call)."""
    from qrobust import sharding
    from qrobust.models import native

    if encoding not in ("amplitude", "angle"):
        return f"the {encoding} encoding loads the input inside the circuit (the native kernel applies one circuit " \
               "to the whole batch)"
    if dtype != "complex64":
        return f"the native kernel runs in complex64 only, not {dtype}"
    if not native.MIN_QUBITS <= n <= native.MAX_QUBITS:
        return f"the native kernel needs {native.MIN_QUBITS} to {native.MAX_QUBITS} qubits, not {n}"
    if not sharding.cpu_only():
        return "the native kernel runs on CPU devices only"
    try:
        gates, _ = record(ansatz, n, "amplitude", probe_params, None, dtype)
        native_operations(gates, n)
    except ValueError as exc:
        return str(exc)
    return native.unavailable_reason()


def circuit_qnn(ansatz: Callable, n_qubits: int, n_params: int, *, encoding: str = "amplitude",
                n_features: int | None = None, readout_scale: float = 5.0, measured: int | None = None,
                init_std: float = 0.01, dtype: str = "complex64", simulator: str | None = None,
                name: str | None = None, settings: dict | None = None) -> Model:
    """A QNN Model from ``ansatz(c, params, x)`` (module docstring). ``n_features``: the length of a feature
    input ("angle", "reupload"; default ``n_qubits``). ``measured``: the qubit read out (default the last).
    ``simulator``: "native-gates", "xla-gates" or "tc-circuit" (None: the first that can run the circuit
    here, module docstring; the choice and the reasons the faster ones could not are in ``settings``).
    ``settings``: extra entries recorded."""
    if int(n_qubits) != n_qubits or not 1 <= n_qubits <= 24:
        raise ConfigError(f"a circuit QNN needs 1 to 24 qubits, got {n_qubits}")
    if int(n_params) != n_params or n_params < 1:
        raise ConfigError(f"a circuit QNN needs a positive number of parameters, got {n_params}")
    if encoding not in ENCODINGS:
        raise ConfigError(f"unknown encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")
    check_dtype(dtype)
    n, measured = int(n_qubits), n_qubits - 1 if measured is None else measured
    if not 0 <= measured < n:
        raise ConfigError(f"the measured qubit must be one of 0..{n - 1}, got {measured}")
    n_features = n if n_features is None else n_features
    if encoding == "angle" and not 1 <= n_features <= n:
        raise ConfigError(f"angle encoding loads one feature per qubit: {n_features} features do not fit {n} "
                          "qubits")
    if simulator is not None and simulator not in CIRCUIT_SIMULATORS:
        raise ConfigError(f"unknown circuit simulator {simulator!r}; choose from {', '.join(CIRCUIT_SIMULATORS)}")
    cdtype = jnp.complex128 if dtype == "complex128" else jnp.complex64
    rdt = real_dtype(dtype)
    rng = np.random.default_rng(0)
    probe_params = jnp.asarray(rng.normal(size=n_params), rdt)
    if encoding == "amplitude":
        v = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
        probe_x = jnp.asarray(v / np.linalg.norm(v), cdtype)
    else:
        probe_x = jnp.asarray(rng.uniform(0, math.pi, size=n_features), rdt)
    try:
        why_not = _why_not_gates(ansatz, n, encoding, probe_params, probe_x, dtype)
    except ConfigError:
        raise
    except Exception as exc:  # the user's function failed on a probe input: say so, with its own message
        raise ConfigError(f"the circuit function {getattr(ansatz, '__name__', ansatz)!r} failed on a probe input "
                          f"({n} qubits, {n_params} parameters, encoding {encoding!r}): "
                          f"{type(exc).__name__}: {exc}") from None
    why_not_native = why_not or _why_not_native(ansatz, n, encoding, dtype, probe_params)
    if simulator is None:
        simulator = "native-gates" if why_not_native is None else "xla-gates" if why_not is None else "tc-circuit"
    elif simulator == "xla-gates" and why_not is not None:
        raise ConfigError(f"simulator 'xla-gates' cannot run this circuit: {why_not}")
    elif simulator == "native-gates" and why_not_native is not None:
        raise ConfigError(f"simulator 'native-gates' cannot run this circuit: {why_not_native}")

    def apply_gates_sim(params, x):
        gates, _ = record(ansatz, n, encoding, params, x, dtype)
        start = _initial_state(n, encoding, x, cdtype)
        return readout_scale * z_expectation(apply_gates(start, light_cone(gates, measured), n), n, measured)

    def apply_tc(params, x):
        with tc_context(dtype) as tc:
            c = _start(tc, n, encoding, x)
            ansatz(c, params, x if encoding == "reupload" else None)
            return readout_scale * jnp.real(c.expectation_ps(z=[measured]))

    apply = apply_gates_sim if simulator == "xla-gates" else apply_tc
    apply_batch = None

    def ansatz_and_states(params, xs):
        """For a circuit whose input is its initial state ("amplitude", "angle"): the ansatz's gates in the
        measured qubit's light cone, recorded once for the whole batch, and the batch's initial states (angle
        encoding's RY(x_q)|0> is a product state, made directly)."""
        gates, _ = record(ansatz, n, "amplitude", params, None, dtype)
        return light_cone(gates, measured), xs if encoding == "amplitude" else angle_states(xs, n, cdtype)

    if simulator == "native-gates":
        apply_batch = native_batch(ansatz_and_states, n, measured, readout_scale)

        def apply(params, x):
            return apply_batch(params, x[None])[0]

    if simulator == "xla-gates" and encoding in ("amplitude", "angle"):
        # the ansatz's gates do not depend on the input: applied to the whole batch (matrix products, no vmap)
        def apply_batch(params, xs):
            gates, states = ansatz_and_states(params, xs)
            return readout_scale * z_expectation(apply_gates(states, gates, n), n, measured)

    def init(key):
        return init_std * jax.random.normal(key, (n_params,), rdt)

    width = 2**n if encoding == "amplitude" else n_features

    def prepare(inputs):
        inputs = jnp.asarray(inputs)
        if inputs.shape[-1:] != (width,):
            raise ConfigError(f"this circuit QNN ({encoding} encoding) takes inputs of length {width}, got shape "
                              f"{inputs.shape}")
        return inputs.astype(cdtype if encoding == "amplitude" else rdt)

    recorded = dict(kind="qnn", circuit=name or getattr(ansatz, "__name__", "circuit"), n_qubits=n,
                    n_params=int(n_params), encoding=encoding, n_features=n_features if encoding != "amplitude"
                    else None, readout_scale=readout_scale, measured=measured, init_std=init_std, dtype=dtype,
                    simulator=simulator, simulator_reason=None if simulator == "native-gates" else why_not_native,
                    **(settings or {}))
    return Model(name="qnn", init=init, apply=apply, prepare=prepare, input_shape=(width,), settings=recorded,
                 apply_batch=apply_batch)

