"""Gate noise: the channels a device adds, as data (``Noise``), and the simulator that runs them exactly,
"heisenberg".

A ``Noise`` is a tuple of (channel, strength) pairs. Every gate of the circuit is followed, on each qubit it
touches, by each channel in turn ("gate" placement: the one placement every circuit, the library's and a
user's, defines; a device's error is per gate). The channels (Kraus operators; p, gamma in [0, 1]):

  depolarizing       sqrt(1-p) I, sqrt(p/3) X, sqrt(p/3) Y, sqrt(p/3) Z  (TensorCircuit's and Cirq's
                     convention: p is the probability of an error; ``tc.DMCircuit.depolarizing(q, p/3, p/3, p/3)``)
  dephasing          sqrt(1-p) I, sqrt(p) Z                                (a phase flip with probability p)
  amplitude_damping  [[1, 0], [0, sqrt(1-g)]], [[0, sqrt(g)], [0, 0]]      (decay |1> -> |0> with probability g)
  readout            the measured bit flipped with probability p: <Z> read as (1 - 2p) <Z>, an affine map of the
                     output (no gate; it acts once, at the measurement)

The input state is prepared exactly (the amplitude and angle encodings' states are the model's input, as the
paper's statevector model assumes); the noise acts on the ansatz's gates.

The simulator, "heisenberg": the inputs are pure states and the readout is one Pauli Z, so the observable is
propagated backwards through the noisy circuit once per parameter value: O = E_1^dag(U_1^dag ... E_G^dag(U_G^dag
Z U_G) ... U_1), a 2**n x 2**n operator (each channel's adjoint sum_k K_k^dag O K_k), after which every
example's output is the quadratic form <x|O|x>, for the whole batch at a cost that does not grow with it. O is
held as a state of 2n qubits (its row and column indices), on which a gate U acts as U^dag on the row qubits and
U^T on the column qubits and a one-qubit channel as a 4 x 4 matrix on (row q, column q); one-qubit gates and
the channels after them are multiplied into one such matrix per qubit, and the rest runs on the gate kernels of
"xla-gates" (``qrobust.models.circuits.apply_gates``: fused diagonals, permutations, Kronecker blocks). The
propagation is checkpointed in segments, so reverse mode keeps a few operators, not one per gate. Only gates in
the measured qubit's backward light cone enter (exact with channels too: the adjoint of a trace-preserving
channel maps the identity to itself). Measured against a batched density matrix and TensorCircuit's
trajectories in ``benchmarks/noise.py`` (docs/device.md).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.errors import ConfigError

CHANNELS = ("depolarizing", "dephasing", "amplitude_damping", "readout")
GATE_CHANNELS = CHANNELS[:3]  # those that follow every gate (readout acts at the measurement)
SEGMENT = 12  # operations per checkpointed segment of the propagation
MAX_QUBITS = 13  # the operator: 4**13 amplitudes, 512 MiB in complex64 (12 qubits, XXZ's: 128 MiB)


class Noise(NamedTuple):
    """Gate and readout noise: ``channels``, a tuple of (name, strength) in the order they follow each gate
    (``CHANNELS``); empty: exact. Hashable, so a circuit that carries it is a cache key."""

    channels: tuple[tuple[str, float], ...] = ()

    @property
    def exact(self) -> bool:
        return not self.channels

    @property
    def readout(self) -> float:
        """The readout flip probability (0: none)."""
        return sum(p for name, p in self.channels if name == "readout")

    @property
    def gate_channels(self) -> tuple[tuple[str, float], ...]:
        return tuple((name, p) for name, p in self.channels if name != "readout")

    @property
    def label(self) -> str:
        """"none", or "depolarizing:0.01+readout:0.02": how configs and results name it (``parse`` reads it)."""
        return "+".join(f"{name}:{p:g}" for name, p in self.channels) or "none"

    def check(self) -> "Noise":
        seen = set()
        for name, p in self.channels:
            if name not in CHANNELS:
                raise ConfigError(f"unknown noise channel {name!r}; choose from {', '.join(CHANNELS)}")
            if name in seen:
                raise ConfigError(f"the noise channel {name!r} is given twice in one noise model")
            seen.add(name)
            if not (isinstance(p, (int, float)) and math.isfinite(p) and 0 < p <= 1):
                raise ConfigError(f"the {name} strength must be a number in (0, 1], got {p!r} (0 or 'none': exact)")
            if name == "readout" and p >= 0.5:
                raise ConfigError(f"a readout flip probability of {p} >= 0.5 erases or inverts the output; give < 0.5")
        return self


def parse(text: "str | Noise | None") -> Noise:
    """A noise model from its label: "none" (or "0", "", None: exact), "depolarizing:0.01", or several channels
    joined by "+" ("depolarizing:0.001+readout:0.02"). A strength of 0 leaves its channel out."""
    if isinstance(text, Noise):
        return text.check()
    if text is None or str(text).strip().lower() in ("", "none", "0", "exact"):
        return Noise()
    channels = []
    for part in str(text).split("+"):
        name, sep, value = part.strip().partition(":")
        if not sep:
            raise ConfigError(f"noise {part!r}: give CHANNEL:STRENGTH, e.g. depolarizing:0.01 (channels: "
                              f"{', '.join(CHANNELS)}), or none")
        try:
            p = float(value)
        except ValueError:
            raise ConfigError(f"noise {part!r}: the strength {value!r} is not a number") from None
        if p != 0:
            channels.append((name.strip().lower(), p))
    return Noise(tuple(channels)).check()


def parse_axis(text: str) -> tuple[str, ...]:
    """The --noise option: comma-separated noise labels, where a bare strength takes the channel before it
    ("depolarizing:0.001,0.01" is depolarizing at 0.001 and at 0.01; "none,dephasing:0.01"). Each value's
    canonical label."""
    values, channel = [], None
    for item in (t.strip() for t in text.split(",")):
        if not item:
            raise ConfigError(f"--noise {text!r}: an empty value")
        if ":" not in item and item.lower() not in ("none", "exact", "0"):
            if channel is None:
                raise ConfigError(f"--noise {text!r}: {item!r} needs a channel, e.g. depolarizing:{item} (channels: "
                                  f"{', '.join(CHANNELS)})")
            item = f"{channel}:{item}"
        elif ":" in item:
            channel = item.split("+")[-1].partition(":")[0].strip()
        values.append(parse(item).label)
    return tuple(values)


# --- the channels as Kraus operators and superoperators ---------------------------------------------------------

_I = np.eye(2)
_X = np.array([[0, 1], [1, 0]])
_Y = np.array([[0, -1j], [1j, 0]])
_Z = np.diag([1.0, -1.0])


def kraus(name: str, p: float) -> list[np.ndarray]:
    """The Kraus operators of one-qubit channel ``name`` at strength ``p`` (module docstring)."""
    if name == "depolarizing":
        return [math.sqrt(1 - p) * _I] + [math.sqrt(p / 3) * P for P in (_X, _Y, _Z)]
    if name == "dephasing":
        return [math.sqrt(1 - p) * _I, math.sqrt(p) * _Z]
    if name == "amplitude_damping":
        return [np.array([[1, 0], [0, math.sqrt(1 - p)]]), np.array([[0, math.sqrt(p)], [0, 0]])]
    raise ValueError(f"{name!r} is not a gate channel")


def adjoint_superoperator(operators) -> np.ndarray:
    """The 4 x 4 matrix of O -> sum_k K_k^dag O K_k on (row qubit, column qubit) of an operator held as a state
    of its row and column indices."""
    return sum(np.kron(np.conj(K).T, K.T) for K in operators)


def gate_superoperator(u):
    """O -> U^dag O U of a one-qubit gate on (row qubit, column qubit)."""
    return jnp.kron(jnp.conj(u).T, u.T)


# --- the Heisenberg-picture operator ------------------------------------------------------------------------------

def heisenberg_operations(gates, noise: Noise, n: int, dtype) -> list:
    """The operations that carry Z_measured back to the start through ``gates`` (matrix, qubits, name), each
    followed by ``noise``'s gate channels on its qubits: (matrix, qubits, name) gates on the 2n-qubit state of the
    operator (row qubits 0..n-1, column qubits n..2n-1), in the order they apply to it (the circuit reversed)."""
    # the adjoints of the channels after a gate as one 4 x 4, C_1^dag(C_2^dag(...(O))): the last channel's first
    mats = [adjoint_superoperator(kraus(name, p)) for name, p in noise.gate_channels]
    channel = jnp.asarray(functools.reduce(np.matmul, mats), dtype) if mats else None
    ops, pending = [], {}  # pending: qubit -> the product of its one-qubit operations not yet emitted

    def flush(q):
        if q in pending:
            ops.append((pending.pop(q), (q, n + q), "superoperator"))

    for matrix, qubits, name in reversed(gates):
        matrix = matrix.astype(dtype)
        if len(qubits) == 1:
            q = qubits[0]
            s = gate_superoperator(matrix)
            s = s if channel is None else s @ channel
            pending[q] = s if q not in pending else s @ pending[q]
            continue
        if channel is not None:
            for q in qubits:
                pending[q] = channel if q not in pending else channel @ pending[q]
        for q in qubits:
            flush(q)
        ops.append((jnp.conj(matrix).T, tuple(qubits), name))
        ops.append((matrix.T, tuple(n + q for q in qubits), name))
    for q in sorted(pending):
        flush(q)
    return ops


def observable(gates, noise: Noise, n: int, measured: int, dtype) -> jax.Array:
    """(2**n, 2**n) the Heisenberg-picture operator O of Z_measured (module docstring), including the readout
    error's factor: <x|O|x> is the measured <Z> of input state x."""
    from qrobust.models.circuits import apply_gates

    signs = 1.0 - 2.0 * ((np.arange(2**n) >> (n - 1 - measured)) & 1)
    # a barrier: XLA would otherwise constant-fold the first operations on this constant (seconds of compile time)
    z = jax.lax.optimization_barrier(jnp.asarray(np.diag(signs * (1 - 2 * noise.readout)).reshape(-1), dtype))
    ops = heisenberg_operations(gates, noise, n, dtype)
    for start in range(0, len(ops), SEGMENT):
        segment = ops[start:start + SEGMENT]
        z = jax.checkpoint(lambda v, s=segment: _propagate(v, s, n))(z)
    return jnp.reshape(z, (2**n, 2**n))


def _propagate(z, ops, n: int):
    """``ops`` applied in turn to the operator ``z`` (4**n,): runs of gates on the gate kernels, each one-qubit
    superoperator as one product on a five-axis view of the operator (row bits above q, row bit q, the rest of
    the row and the column bits above q, column bit q, column bits below q): a transpose of a few large axes, not
    of 2n axes of size 2."""
    from qrobust.models.circuits import apply_gates

    run = []
    for op in ops + [None]:
        if op is not None and op[2] != "superoperator":
            run.append(op)
            continue
        if run:
            z = apply_gates(z, run, 2 * n)
            run = []
        if op is not None:
            q = op[1][0]
            view = jnp.reshape(z, (2**q, 2, 2 ** (n - 1), 2, 2 ** (n - 1 - q)))
            z = jnp.reshape(jnp.einsum("ijkl,akmlc->aimjc", jnp.reshape(op[0], (2, 2, 2, 2)), view), z.shape)
    return z


def quadratic_forms(o: jax.Array, states: jax.Array) -> jax.Array:
    """(B,) Re <x_b|O|x_b> of states (B, 2**n)."""
    return jnp.real(jnp.einsum("bi,ij,bj->b", jnp.conj(states), o, states.astype(o.dtype)))


def build_heisenberg(circuit, options):
    """"heisenberg": (apply, apply_batch) of a noisy ``circuit`` whose inputs are its initial states ("amplitude",
    "angle"): one operator per parameter value, then the batch's quadratic forms."""
    from qrobust.models.circuits import _ansatz_and_states, _complex

    n, cdtype = circuit.n_qubits, _complex(options.dtype)
    gates_and_states = _ansatz_and_states(circuit, options.dtype)

    def apply_batch(params, xs):
        gates, states = gates_and_states(params, xs)  # the light cone's gates, the batch's initial states
        o = observable(gates, circuit.noise, n, circuit.readout, cdtype)
        return circuit.readout_scale * quadratic_forms(o, states)

    return (lambda params, x: apply_batch(params, x[None])[0]), apply_batch
