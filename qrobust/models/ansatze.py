"""A small library of ansatzes, each written as a TensorCircuit circuit (``qrobust.models.circuits``).

Every entry is an ``Ansatz``: its circuit for n qubits and depth d, written with TensorCircuit's gates,
its parameter count, and whether it loads the input's features itself (data re-uploading). A user's own
circuit is one more ``Ansatz`` (``Ansatz.from_function``), usable wherever a library name is.

  hea        the paper's: per layer RX(a) RY(b) RX(c) on every qubit, then RZZ(e) on every ring pair
             (i, i+1 mod n); 4 n d parameters. The same circuit as the built-in ``qrobust.models.qnn``
             (tested to 1e-10), which the studies keep using for it: its simulators are faster.
  rxry_cnot  the paper's Hessian-study variant: RX(a) RY(b) on every qubit, then CNOT(i, i+1 mod n) for
             i = 0 .. n-1 in order; 2 n d parameters.
  hea_cz     hardware-efficient with CZ entanglers: RY(a) RZ(b) on every qubit, then CZ(i, i+1) on the open
             chain; 2 n d parameters.
  reupload   data re-uploading (Perez-Salinas et al., Quantum 4, 226 (2020)): per layer RX(x_q) loads
             feature q on qubit q, then RY(a) RZ(b) on every qubit and CZ(i, i+1) on the open chain;
             2 n d parameters; needs the "reupload" encoding (it loads the features itself).
Parameters are a flat vector, read in (layer, qubit, gate) order.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from qrobust.errors import ConfigError


class Ansatz(NamedTuple):
    """name; circuit(n_qubits, depth) -> fn(c, params, x); n_params(n_qubits, depth); loads_data: the
    circuit reads the features ``x`` itself (then the encoding is "reupload")."""

    name: str
    circuit: Callable[[int, int], Callable]
    n_params: Callable[[int, int], int]
    loads_data: bool = False

    @staticmethod
    def from_function(name: str, fn: Callable, n_params: int | Callable[[int, int], int], *,
                      loads_data: bool = False) -> "Ansatz":
        """A user's circuit ``fn(c, params, x)`` (the same for every depth, or ``fn(c, params, x, depth)``
        where it takes a fourth argument) as an Ansatz; ``n_params``: a number, or a function of (qubits,
        depth)."""
        import inspect

        takes_depth = len(inspect.signature(fn).parameters) >= 4
        count = n_params if callable(n_params) else (lambda n, d: int(n_params))
        return Ansatz(name, (lambda n, d: (lambda c, p, x: fn(c, p, x, d))) if takes_depth else (lambda n, d: fn),
                      count, loads_data)


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
    return circuit


LIBRARY: dict[str, Ansatz] = {
    "hea": Ansatz("hea", _hea, lambda n, d: 4 * n * d),
    "rxry_cnot": Ansatz("rxry_cnot", _rxry_cnot, lambda n, d: 2 * n * d),
    "hea_cz": Ansatz("hea_cz", _hea_cz, lambda n, d: 2 * n * d),
    "reupload": Ansatz("reupload", _reupload, lambda n, d: 2 * n * d, loads_data=True),
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


def library_qnn(name_or_ansatz: str | Ansatz, n_qubits: int, depth: int, *, encoding: str = "amplitude",
                n_features: int | None = None, **kwargs):
    """The QNN of a library (or user) ansatz at ``depth`` on ``n_qubits`` (``circuits.circuit_qnn``)."""
    from qrobust.models.circuits import circuit_qnn

    a = ansatz(name_or_ansatz)
    if a.loads_data and encoding != "reupload":
        raise ConfigError(f"the {a.name!r} ansatz loads the features itself: it needs --encoding reupload")
    if encoding == "reupload" and not a.loads_data:
        raise ConfigError(f"--encoding reupload needs an ansatz that loads the features (reupload), not {a.name!r}")
    if int(depth) != depth or depth < 1:
        raise ConfigError(f"the QNN needs depth >= 1, got {depth}")
    return circuit_qnn(a.circuit(n_qubits, depth), n_qubits, a.n_params(n_qubits, depth), encoding=encoding,
                       n_features=n_features, name=a.name, settings=dict(ansatz=a.name, depth=depth), **kwargs)
