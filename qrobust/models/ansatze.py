"""The QNN's circuits: each written once, with TensorCircuit's gates, as an ``Ansatz``.

Every entry is an ``Ansatz``: its circuit for n qubits and depth d, written with TensorCircuit's gates
(a function ``(c, params, x)`` of a ``tc.Circuit``), the shape of its parameters, and whether it loads the
input's features itself (data re-uploading). A user's own circuit is one more ``Ansatz``
(``Ansatz.from_function``, or simply the function given to ``qnn``), usable wherever a library name is.
Every simulator reads the circuit from here (``qrobust.models.circuit``): the gate-level ones record its
gates; the fast kernels for the paper's two circuits ("hea", "rxry_cnot") read their structure
(``qrobust.models.hea``), which a test holds against the recorded gates. Each library circuit ends every layer
with ``c.barrier_instruction()`` (no effect on the state): where noise placed per layer acts
(``qrobust.models.noise``); a user's circuit marks its layers the same way.

  hea        the paper's: per layer RX(a) RY(b) RX(c) on every qubit, then RZZ(e) on every ring pair
             (i, i+1 mod n); parameters (d, n, 4) = [a, b, c, e] per layer and qubit.
  rxry_cnot  the paper's Hessian-study variant: RX(a) RY(b) on every qubit, then CNOT(i, i+1 mod n) for
             i = 0 .. n-1 in order; parameters (d, n, 2).
  hea_cz     hardware-efficient with CZ entanglers: RY(a) RZ(b) on every qubit, then CZ(i, i+1) on the open
             chain; parameters (d, n, 2).
  reupload   data re-uploading (Perez-Salinas et al., Quantum 4, 226 (2020)): per layer RX(x_q) loads
             feature q on qubit q, then RY(a) RZ(b) on every qubit and CZ(i, i+1) on the open chain;
             parameters (d, n, 2); needs the "reupload" encoding (it loads the features itself).
"""

from __future__ import annotations

import inspect
from typing import Callable, NamedTuple

from qrobust.errors import ConfigError


class Ansatz(NamedTuple):
    """name; circuit(n_qubits, depth) -> fn(c, params, x); shape(n_qubits, depth) -> the parameters' shape;
    loads_data: the circuit reads the features ``x`` itself (the "reupload" encoding); structured: the
    paper's circuits, which the fast kernels ("native", "blocks", "tc-fused") run from their structure."""

    name: str
    circuit: Callable[[int, int], Callable]
    shape: Callable[[int, int], tuple[int, ...]]
    loads_data: bool = False
    structured: bool = False

    def n_params(self, n_qubits: int, depth: int) -> int:
        size = 1
        for s in self.shape(n_qubits, depth):
            size *= s
        return size

    @staticmethod
    def from_function(name: str, fn: Callable, n_params: int | Callable[[int, int], int], *,
                      loads_data: bool = False) -> "Ansatz":
        """A user's circuit ``fn(c, params, x)`` (the same for every depth, or ``fn(c, params, x, depth)``
        where it takes a fourth argument) as an Ansatz with a flat parameter vector; ``n_params``: a number,
        or a function of (qubits, depth)."""
        if not isinstance(name, str) or not name:
            raise ConfigError("an ansatz needs a name (it is recorded with the results)")
        if not callable(fn):
            raise ConfigError(f"an ansatz is a function (c, params, x) of a TensorCircuit circuit, got "
                              f"{type(fn).__name__}")
        takes_depth = len(inspect.signature(fn).parameters) >= 4
        count = n_params if callable(n_params) else (lambda n, d: int(n_params))
        circuit = (lambda n, d: (lambda c, p, x: fn(c, p, x, d))) if takes_depth else (lambda n, d: fn)
        return Ansatz(name, circuit, lambda n, d: (int(count(n, d)),), loads_data)


def _hea(n: int, depth: int):
    def circuit(c, params, x):
        p = params.reshape(depth, n, 4)
        for layer in range(depth):
            for q in range(n):
                c.rx(q, theta=p[layer, q, 0])
                c.ry(q, theta=p[layer, q, 1])
                c.rx(q, theta=p[layer, q, 2])
            for q in range(n):
                c.rzz(q, (q + 1) % n, theta=p[layer, q, 3])
            c.barrier_instruction()  # the layer's end (noise placed per layer: qrobust.models.noise)
    return circuit


def _rxry_cnot(n: int, depth: int):
    def circuit(c, params, x):
        p = params.reshape(depth, n, 2)
        for layer in range(depth):
            for q in range(n):
                c.rx(q, theta=p[layer, q, 0])
                c.ry(q, theta=p[layer, q, 1])
            for q in range(n):
                c.cnot(q, (q + 1) % n)
            c.barrier_instruction()
    return circuit


def _hea_cz(n: int, depth: int):
    def circuit(c, params, x):
        p = params.reshape(depth, n, 2)
        for layer in range(depth):
            for q in range(n):
                c.ry(q, theta=p[layer, q, 0])
                c.rz(q, theta=p[layer, q, 1])
            for q in range(n - 1):
                c.cz(q, q + 1)
            c.barrier_instruction()
    return circuit


def _reupload(n: int, depth: int):
    def circuit(c, params, x):
        p = params.reshape(depth, n, 2)
        for layer in range(depth):
            for q in range(x.shape[-1]):
                c.rx(q, theta=x[q])
            for q in range(n):
                c.ry(q, theta=p[layer, q, 0])
                c.rz(q, theta=p[layer, q, 1])
            for q in range(n - 1):
                c.cz(q, q + 1)
            c.barrier_instruction()
    return circuit


def _per_qubit(k: int):
    return lambda n, d: (d, n, k)


LIBRARY: dict[str, Ansatz] = {
    "hea": Ansatz("hea", _hea, _per_qubit(4), structured=True),
    "rxry_cnot": Ansatz("rxry_cnot", _rxry_cnot, _per_qubit(2), structured=True),
    "hea_cz": Ansatz("hea_cz", _hea_cz, _per_qubit(2)),
    "reupload": Ansatz("reupload", _reupload, _per_qubit(2), loads_data=True),
}
_BUILT_IN = frozenset(LIBRARY)


def register(a: str | Ansatz) -> str:
    """The name of ``a``; a user's Ansatz is added to ``LIBRARY`` under its name (for this process), so it is
    named like every entry (config.json records the name). A name already used by another circuit is
    refused."""
    if isinstance(a, str):
        ansatz(a)
        return a
    if not isinstance(a, Ansatz):
        raise ConfigError(f"an ansatz is a name ({', '.join(LIBRARY)}) or an Ansatz, got {type(a).__name__}")
    if a.name in LIBRARY and LIBRARY[a.name] is not a:
        owner = "the library" if a.name in _BUILT_IN else "another circuit of this process"
        raise ConfigError(f"the ansatz name {a.name!r} is taken (by {owner}); give the Ansatz another name")
    LIBRARY[a.name] = a
    return a.name


def ansatz(name_or_ansatz: str | Ansatz) -> Ansatz:
    """A library entry by name, or a user's Ansatz as it is."""
    if isinstance(name_or_ansatz, Ansatz):
        return name_or_ansatz
    if name_or_ansatz not in LIBRARY:
        raise ConfigError(f"unknown ansatz {name_or_ansatz!r}; choose from {', '.join(LIBRARY)}, or pass an "
                          "Ansatz (qrobust.models.ansatze.Ansatz.from_function)")
    return LIBRARY[name_or_ansatz]
