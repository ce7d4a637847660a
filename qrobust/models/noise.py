"""Gate noise: the channels a device adds, as data (``Noise``), and the simulator that runs them exactly,
"heisenberg" (built in ``qrobust.models.pauli``; its computational-basis form, the reference, is here).

A ``Noise`` is a tuple of (channel, strength) pairs, each channel named ``NAME`` or ``NAME@PLACEMENT``. The
channels (Kraus operators; p, gamma in [0, 1]):

  depolarizing       sqrt(1-p) I, sqrt(p/3) X, sqrt(p/3) Y, sqrt(p/3) Z  (TensorCircuit's and Cirq's
                     convention: p is the probability of an error; ``tc.DMCircuit.depolarizing(q, p/3, p/3, p/3)``)
  dephasing          sqrt(1-p) I, sqrt(p) Z                                (a phase flip with probability p)
  amplitude_damping  [[1, 0], [0, sqrt(1-g)]], [[0, sqrt(g)], [0, 0]]      (decay |1> -> |0> with probability g)
  depolarizing2      the two-qubit depolarizing channel on the pair of a two-qubit gate: sqrt(1-p) I x I and
                     sqrt(p/15) P x Q for the 15 other Pauli pairs (Cirq's ``depolarize(p, n_qubits=2)``,
                     TensorCircuit's ``generaldepolarizingchannel(p/15, 2)``: p is the probability of an error)
  readout            the measured bit flipped with probability p: <Z> read as (1 - 2p) <Z>, an affine map of the
                     output (no gate; it acts once, at the measurement)

Placements (``PLACEMENTS``; the part after "@", "gate" when none is given):

  gate   (the default) after every gate, on each qubit it touches: the one-qubit channels on each of its qubits
         (a two-qubit gate gets them on both), depolarizing2 on the pair of every gate on exactly two qubits.
         Defined for every circuit, the library's and a user's; a device's error budget is quoted per gate.
  layer  once per layer, on every qubit of the circuit (idle ones too): the one-qubit channels only. A layer ends
         at each ``c.barrier_instruction()`` of the circuit (TensorCircuit's marker, no effect on the state; each
         library ansatz ends every layer with one) and at the circuit's end; a layer without gates gets no
         channels. A circuit that marks no layer is refused (ConfigError), not read as one layer.

After a gate, its gate channels act in the order given; at a layer's end, the last gate's channels come first,
then the layer's. ``parse`` reads "depolarizing@layer:0.01+readout:0.02"; "depolarizing@gate:0.01" is
"depolarizing:0.01" (the label, and so every recorded setting, names a placement only where it is not "gate").

The input state is prepared exactly (the amplitude and angle encodings' states are the model's input, as the
paper's statevector model assumes); the noise acts on the ansatz's gates.

The simulator, "heisenberg": the inputs are pure states and the readout is one Pauli Z, so the observable is
propagated backwards through the noisy circuit once per parameter value: O = E_1^dag(U_1^dag ... E_G^dag(U_G^dag
Z U_G) ... U_1), a 2**n x 2**n operator (each channel's adjoint sum_k K_k^dag O K_k), after which every
example's output is the quadratic form <x|O|x>, for the whole batch at a cost that does not grow with it. It
carries O in the Pauli basis, real coefficients and real transfer matrices (``qrobust.models.pauli``), which
``observable`` here does in the computational basis, kept as the cross-check and the benchmark's "before": O
held as a state of 2n qubits (its row and column indices), on which a gate U acts as U^dag on the row qubits and
U^T on the column qubits, a one-qubit channel as a 4 x 4 matrix on (row q, column q) and a two-qubit channel as a
16 x 16 matrix on (row a, row b, column a, column b); one-qubit gates and the channels after them are multiplied
into one such matrix per qubit, and the rest runs on the gate kernels of "xla-gates"
(``qrobust.models.circuits.apply_gates``: fused diagonals, permutations, Kronecker blocks). In both bases the
propagation is checkpointed in segments, so reverse mode keeps a few operators, not one per gate. Only gates in
the measured qubit's backward light cone enter, and only channels on qubits where O is not yet the identity
(exact: the adjoint of a trace-preserving channel maps the identity to itself).
Measured against a batched density matrix and TensorCircuit's trajectories, and the two bases against each
other, in ``benchmarks/noise.py`` (docs/device.md).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.errors import ConfigError

CHANNELS = ("depolarizing", "dephasing", "amplitude_damping", "depolarizing2", "readout")
ONE_QUBIT = CHANNELS[:3]  # the one-qubit channels (after gates, or at layers' ends)
PLACEMENTS = ("gate", "layer")
PLACED = {name: PLACEMENTS for name in ONE_QUBIT} | {"depolarizing2": ("gate",), "readout": ()}  # where each acts
SEGMENT = 12  # operations per checkpointed segment of the propagation
MAX_QUBITS = 13  # the operator: 4**13 amplitudes, 512 MiB in complex64 (12 qubits, XXZ's: 128 MiB)


def split(channel: str) -> tuple[str, str | None]:
    """(name, placement) of a channel key: "depolarizing@layer" -> ("depolarizing", "layer"); no "@": the
    channel's default, "gate" (None for readout, which acts at the measurement)."""
    name, _, placement = channel.partition("@")
    return name, placement or ("gate" if PLACED.get(name) else None)


class Noise(NamedTuple):
    """Gate and readout noise: ``channels``, a tuple of (channel, strength), the channel ``NAME`` or
    ``NAME@PLACEMENT`` (module docstring), in the order they act; empty: exact. Hashable, so a circuit that
    carries it is a cache key."""

    channels: tuple[tuple[str, float], ...] = ()

    @property
    def exact(self) -> bool:
        return not self.channels

    @property
    def names(self) -> tuple[str, ...]:
        """The channels' names, without placements."""
        return tuple(split(key)[0] for key, _ in self.channels)

    @property
    def placements(self) -> tuple[str, ...]:
        """The placements used, in order (readout's none left out)."""
        return tuple(dict.fromkeys(pl for pl in (split(key)[1] for key, _ in self.channels) if pl))

    @property
    def readout(self) -> float:
        """The readout flip probability (0: none)."""
        return sum(p for key, p in self.channels if key == "readout")

    def placed(self, placement: str) -> tuple[tuple[str, float], ...]:
        """(name, strength) of the channels at ``placement``, in order."""
        return tuple((split(key)[0], p) for key, p in self.channels if split(key)[1] == placement)

    @property
    def gate_channels(self) -> tuple[tuple[str, float], ...]:
        """The one-qubit channels after every gate, in order."""
        return tuple((name, p) for name, p in self.placed("gate") if name in ONE_QUBIT)

    @property
    def layer_channels(self) -> tuple[tuple[str, float], ...]:
        """The one-qubit channels at every layer's end, on every qubit, in order."""
        return self.placed("layer")

    @property
    def label(self) -> str:
        """"none", or "depolarizing@layer:0.01+readout:0.02": how configs and results name it (``parse`` reads
        it; the default placement, "gate", is not written)."""
        return "+".join(f"{key}:{p:g}" for key, p in self.channels) or "none"

    def check(self) -> "Noise":
        seen = set()
        for key, p in self.channels:
            name, placement = split(key)
            if name not in CHANNELS:
                raise ConfigError(f"unknown noise channel {name!r}; choose from {', '.join(CHANNELS)}")
            if placement not in PLACED[name] and not (placement is None and not PLACED[name]):
                where = ("it acts once, at the measurement, and takes no @placement" if not PLACED[name] else
                         f"its placements: {', '.join(PLACED[name])}")
                raise ConfigError(f"noise {key!r}: {name} cannot be placed {placement!r} ({where})")
            if key in seen:
                raise ConfigError(f"the noise channel {key!r} is given twice in one noise model")
            seen.add(key)
            if not (isinstance(p, (int, float)) and math.isfinite(p) and 0 < p <= 1):
                raise ConfigError(f"the {name} strength must be a number in (0, 1], got {p!r} (0 or 'none': exact)")
            if name == "readout" and p >= 0.5:
                raise ConfigError(f"a readout flip probability of {p} >= 0.5 erases or inverts the output; give < 0.5")
        return self


def _key(name: str) -> str:
    """A channel key as written, canonical: lower case, no spaces, the default placement left out."""
    base, sep, placement = (s.strip() for s in name.lower().partition("@"))
    return base if not sep or (placement == "gate" and PLACED.get(base)) else f"{base}@{placement}"


def parse(text: "str | Noise | None") -> Noise:
    """A noise model from its label: "none" (or "0", "", None: exact), "depolarizing:0.01",
    "depolarizing@layer:0.01" (a placement, module docstring), or several channels joined by "+"
    ("depolarizing:0.001+depolarizing2:0.01+readout:0.02"). A strength of 0 leaves its channel out."""
    if isinstance(text, Noise):
        return text.check()
    if text is None or str(text).strip().lower() in ("", "none", "0", "exact"):
        return Noise()
    channels = []
    for part in str(text).split("+"):
        name, sep, value = part.strip().partition(":")
        if not sep:
            raise ConfigError(f"noise {part!r}: give CHANNEL:STRENGTH or CHANNEL@PLACEMENT:STRENGTH, e.g. "
                              f"depolarizing:0.01 or depolarizing@layer:0.01 (channels: {', '.join(CHANNELS)}; "
                              f"placements: {', '.join(PLACEMENTS)}), or none")
        try:
            p = float(value)
        except ValueError:
            raise ConfigError(f"noise {part!r}: the strength {value!r} is not a number") from None
        if p != 0:
            channels.append((_key(name), p))
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
    """The Kraus operators of channel ``name`` at strength ``p`` (module docstring): 2 x 2, or 4 x 4 on a pair
    (depolarizing2, the first qubit of the pair the most significant)."""
    if name == "depolarizing":
        return [math.sqrt(1 - p) * _I] + [math.sqrt(p / 3) * P for P in (_X, _Y, _Z)]
    if name == "dephasing":
        return [math.sqrt(1 - p) * _I, math.sqrt(p) * _Z]
    if name == "amplitude_damping":
        return [np.array([[1, 0], [0, math.sqrt(1 - p)]]), np.array([[0, math.sqrt(p)], [0, 0]])]
    if name == "depolarizing2":
        paulis = [np.kron(P, Q) for P in (_I, _X, _Y, _Z) for Q in (_I, _X, _Y, _Z)]
        return [math.sqrt(1 - p) * paulis[0]] + [math.sqrt(p / 15) * P for P in paulis[1:]]
    raise ValueError(f"{name!r} is not a gate channel")


def adjoint_superoperator(operators) -> np.ndarray:
    """The matrix of O -> sum_k K_k^dag O K_k on (row qubits, column qubits) of an operator held as a state of
    its row and column indices: 4 x 4 for one-qubit K, 16 x 16 on (row a, row b, column a, column b) for a pair."""
    return sum(np.kron(np.conj(K).T, K.T) for K in operators)


def gate_superoperator(u):
    """O -> U^dag O U of a one-qubit gate on (row qubit, column qubit)."""
    return jnp.kron(jnp.conj(u).T, u.T)


# --- the Heisenberg-picture operator ------------------------------------------------------------------------------

def _superoperators(channels, dtype) -> list:
    """(name, adjoint superoperator) of each channel, in order."""
    return [(name, jnp.asarray(adjoint_superoperator(kraus(name, p)), dtype)) for name, p in channels]


def _product(mats):
    """C_1 C_2 ... of the adjoints after one gate, so that C_1^dag(C_2^dag(...(O))): the last channel's first."""
    return functools.reduce(jnp.matmul, mats) if mats else None


def light_cone(gates, measured: int, ends=()):
    """The circuit reversed, as the operator meets it: (matrix, qubits, name, ended) for each gate of ``gates``
    (matrix, qubits, name) in the measured qubit's backward light cone (one that touches a qubit where O is not
    yet the identity), ``ended`` the qubits (sorted) where O is not the identity at a layer's end just after
    that gate in the circuit (``ends``: the gate counts after which a layer ends; the circuit's end is one), else
    (); a layer's end after a gate outside the light cone comes as (None, None, None, ended)."""
    active, ends = {measured}, set(ends) | {len(gates)}
    for i in range(len(gates) - 1, -1, -1):
        ended = tuple(sorted(active)) if i + 1 in ends else ()
        matrix, qubits, name = gates[i]
        if not active & set(qubits):
            if ended:
                yield None, None, None, ended
            continue
        active |= set(qubits)
        yield matrix, qubits, name, ended


def heisenberg_operations(gates, noise: Noise, n: int, dtype, measured: int, ends=()) -> list:
    """The operations that carry Z_measured back to the start through ``gates`` (matrix, qubits, name) with
    ``noise``'s channels at their placements (``ends``: the gate counts after which a layer ends): (matrix,
    qubits, name) on the 2n-qubit state of the operator (row qubits 0..n-1, column qubits n..2n-1), in the order
    they apply to it (the circuit reversed). Only the measured qubit's backward light cone enters: gates touching
    a qubit where O is not the identity, channels on those qubits."""
    after = _superoperators(noise.placed("gate"), dtype)
    single = _product([s for name, s in after if name in ONE_QUBIT])  # the channels after a one-qubit gate
    layer = _product([s for _, s in _superoperators(noise.layer_channels, dtype)])
    ops, pending = [], {}  # pending: qubit -> its one-qubit operations not yet emitted

    def then(q, s):  # s applied to O after what is pending on q
        pending[q] = s if q not in pending else s @ pending[q]

    def flush(q):
        if q in pending:
            ops.append((pending.pop(q), (q, n + q), "superoperator"))

    for matrix, qubits, name, ended in light_cone(gates, measured, ends):
        for q in ended if layer is not None else ():
            then(q, layer)
        if matrix is None:
            continue
        matrix = matrix.astype(dtype)
        if len(qubits) == 1:
            s = gate_superoperator(matrix)
            then(qubits[0], s if single is None else s @ single)
            continue
        _two_or_more(ops, after, qubits, n, then, flush)
        ops.append((jnp.conj(matrix).T, tuple(qubits), name))
        ops.append((matrix.T, tuple(n + q for q in qubits), name))
    for q in sorted(pending):
        flush(q)
    return ops


def _two_or_more(ops, after, qubits, n, then, flush):
    """The adjoints of the channels after a gate on ``qubits`` (two or more), the last channel's first: the
    one-qubit ones merged into each qubit's pending product, depolarizing2 (on exactly two qubits) emitted on the
    pair; then every pending product on those qubits, for the gate."""
    for name, s in reversed(after):
        if name in ONE_QUBIT:
            for q in qubits:
                then(q, s)
        elif len(qubits) == 2:
            for q in qubits:
                flush(q)
            ops.append((s, (qubits[0], qubits[1], n + qubits[0], n + qubits[1]), "channel2"))
    for q in qubits:
        flush(q)


def observable(gates, noise: Noise, n: int, measured: int, dtype, ends=()) -> jax.Array:
    """(2**n, 2**n) the Heisenberg-picture operator O of Z_measured (module docstring), including the readout
    error's factor: <x|O|x> is the measured <Z> of input state x. ``gates``: the whole circuit (the light cone is
    taken here); ``ends``: the gate counts after which a layer ends."""
    signs = 1.0 - 2.0 * ((np.arange(2**n) >> (n - 1 - measured)) & 1)
    # a barrier: XLA would otherwise constant-fold the first operations on this constant (seconds of compile time)
    z = jax.lax.optimization_barrier(jnp.asarray(np.diag(signs * (1 - 2 * noise.readout)).reshape(-1), dtype))
    ops = heisenberg_operations(gates, noise, n, dtype, measured, ends)
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
    """(B,) Re <x_b|O|x_b> of states (B, 2**n); for real states x^T Re(O) x (O is Hermitian: its imaginary part
    is antisymmetric and drops out), in real arithmetic."""
    if not jnp.iscomplexobj(states):
        return jnp.einsum("bi,ij,bj->b", states, jnp.real(o).astype(states.dtype), states)
    return jnp.real(jnp.einsum("bi,ij,bj->b", jnp.conj(states), o, states.astype(o.dtype)))


def layer_ends(c) -> tuple[int, ...]:
    """The gate counts after which the layers of a recorded ``tc.Circuit`` end: its barriers'
    (``c.barrier_instruction()``) positions."""
    return tuple(sorted({int(d["pos"]) for d in c._extra_qir if d.get("name") == "barrier"}))


def layer_problem(circuit, dtype: str) -> str | None:
    """Why ``circuit`` cannot take its noise's per-layer channels (None: it can, or has none): it marks no layer."""
    from qrobust.models.circuits import record

    if not circuit.noise.layer_channels:
        return None
    params, _ = circuit.probe(dtype)
    _, c = record(circuit.function(), circuit.n_qubits, "amplitude", params, None, dtype)
    if not layer_ends(c):
        return (f"noise placed per layer needs the circuit to mark its layers, and the {circuit.ansatz.name!r} "
                "circuit marks none: end each layer with c.barrier_instruction() (the library's circuits do), or "
                "place the noise after each gate (no @layer)")
    return None
