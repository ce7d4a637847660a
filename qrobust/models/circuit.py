"""One QNN's circuit, as every simulator reads it: ``Circuit``.

A circuit is an ``Ansatz`` (``qrobust.models.ansatze``: written once, with TensorCircuit's gates) at a size
and depth, with an encoding of the input and a readout. Simulators (``qrobust.models.simulators``) read it
in one of two ways:

- its recorded gates (``gates``): what TensorCircuit records when the ansatz runs on a ``tc.Circuit``, every
  gate's matrix and qubits (``qrobust.models.circuits.record``): "native-gates", "xla-gates", "tc-gates";
- its structure (``plan``), for the paper's two circuits only (``Ansatz.structured``) on amplitude-encoded
  states read out on the last qubit: the layers and light cone of ``qrobust.models.hea``, which "native",
  "blocks" and "tc-fused" run with fused gates.

What a simulator needs of a circuit beyond its capabilities (plain gates only; gates of at most two qubits or
permutations) is found by ``gate_problem`` and ``native_problem`` on a probe input, once per circuit.

Encodings: "amplitude" (the input is the circuit's initial state, 2**n amplitudes), "angle" (a feature
vector of at most n values, loaded by RY(x_q) on qubit q of |0...0> before the ansatz), "reupload" (a feature
vector; the circuit starts in |0...0> and the ansatz loads the features itself).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np

from qrobust.backend import real_dtype
from qrobust.errors import ConfigError
from qrobust.models import hea
from qrobust.models.ansatze import Ansatz
from qrobust.models.noise import Noise

ENCODINGS = ("amplitude", "angle", "reupload")


class Circuit(NamedTuple):
    """ansatz at ``n_qubits`` and ``depth``; ``encoding`` of inputs with ``n_features`` features ("angle",
    "reupload"); logit = ``readout_scale`` * <Z_measured>; ``light_cone_pruning``: the structured kernels leave
    out gates outside the measured qubit's backward light cone (exact), as the gate-level ones always do;
    ``noise``: the gate and readout channels of a device (``qrobust.models.noise``; empty: exact)."""

    ansatz: Ansatz
    n_qubits: int
    depth: int
    encoding: str = "amplitude"
    n_features: int | None = None
    measured: int | None = None
    readout_scale: float = 5.0
    light_cone_pruning: bool = True
    noise: Noise = Noise()

    @property
    def readout(self) -> int:
        """The measured qubit (default the last)."""
        return self.n_qubits - 1 if self.measured is None else self.measured

    @property
    def param_shape(self) -> tuple[int, ...]:
        return tuple(self.ansatz.shape(self.n_qubits, self.depth))

    @property
    def input_width(self) -> int:
        return 2**self.n_qubits if self.encoding == "amplitude" else self.features

    @property
    def features(self) -> int:
        return self.n_qubits if self.n_features is None else self.n_features

    def function(self):
        """The ansatz's ``fn(c, params, x)`` at this size and depth."""
        return self.ansatz.circuit(self.n_qubits, self.depth)

    @property
    def structure(self) -> str | None:
        """The name of the structured circuit the fast kernels run (None: a circuit of recorded gates only)."""
        if self.ansatz.structured and self.encoding == "amplitude" and self.readout == self.n_qubits - 1:
            return self.ansatz.name
        return None

    def plan(self) -> hea.Plan:
        """The structure of a structured circuit (``hea.Plan``; the light cone applies to "hea")."""
        if self.structure is None:
            raise ValueError(f"the {self.ansatz.name!r} circuit here has no structure the fast kernels run")
        return hea.plan(self.structure, self.n_qubits, self.depth, readout_scale=self.readout_scale,
                        light_cone_pruning=self.light_cone_pruning)

    def check(self) -> "Circuit":
        """Refuse, by name, a circuit that cannot be built (sizes, encoding against the ansatz)."""
        n = self.n_qubits
        if int(n) != n or not 1 <= n <= 30:
            raise ConfigError(f"a QNN needs 1 to 30 qubits, got {n}")
        if int(self.depth) != self.depth or self.depth < 1:
            raise ConfigError(f"the QNN needs depth >= 1, got {self.depth}")
        if self.encoding not in ENCODINGS:
            raise ConfigError(f"unknown encoding {self.encoding!r}; choose from {', '.join(ENCODINGS)}")
        if self.ansatz.loads_data and self.encoding != "reupload":
            raise ConfigError(f"the {self.ansatz.name!r} ansatz loads the features itself: it needs --encoding "
                              "reupload")
        if self.encoding == "reupload" and not self.ansatz.loads_data:
            raise ConfigError(f"--encoding reupload needs an ansatz that loads the features (reupload), not "
                              f"{self.ansatz.name!r}")
        if not 0 <= self.readout < n:
            raise ConfigError(f"the measured qubit must be one of 0..{n - 1}, got {self.measured}")
        if self.encoding == "angle" and not 1 <= self.features <= n:
            raise ConfigError(f"angle encoding loads one feature per qubit: {self.features} features do not fit "
                              f"{n} qubits")
        if self.ansatz.structured and n < 2:
            raise ConfigError(f"the QNN needs at least 2 qubits, got {n}")
        if self.n_params() < 1:
            raise ConfigError(f"a circuit QNN needs a positive number of parameters, got {self.n_params()}")
        return self

    def n_params(self) -> int:
        return self.ansatz.n_params(self.n_qubits, self.depth)

    def probe(self, dtype: str):
        """(params, x): a fixed random input of this circuit (the gate checks' probe)."""
        rng = np.random.default_rng(0)
        params = jnp.asarray(rng.normal(size=self.param_shape), real_dtype(dtype))
        if self.encoding == "amplitude":
            v = rng.normal(size=2**self.n_qubits) + 1j * rng.normal(size=2**self.n_qubits)
            return params, jnp.asarray(v / np.linalg.norm(v), jnp.complex128 if dtype == "complex128"
                                       else jnp.complex64)
        return params, jnp.asarray(rng.uniform(0, math.pi, size=self.features), real_dtype(dtype))


@functools.lru_cache(maxsize=256)
def gate_problem(circuit: Circuit, dtype: str) -> str | None:
    """Why the circuit's recorded gates cannot stand for it (None: they can): the record holds something that is
    not a plain gate, or applying it does not give TensorCircuit's own state for the probe input."""
    from qrobust.models import circuits

    params, x = circuit.probe(dtype)
    try:
        return circuits.record_problem(circuit.function(), circuit.n_qubits, circuit.encoding, params, x, dtype)
    except ConfigError:
        raise
    except Exception as exc:  # the user's function failed on a probe input: say so, with its own message
        raise ConfigError(f"the circuit function {circuit.ansatz.name!r} failed on a probe input "
                          f"({circuit.n_qubits} qubits, parameters {circuit.param_shape}, encoding "
                          f"{circuit.encoding!r}): {type(exc).__name__}: {exc}") from None


@functools.lru_cache(maxsize=256)
def native_problem(circuit: Circuit) -> str | None:
    """Why the native gate kernel cannot take the circuit's gates (None: it can): a gate on more than two qubits
    that is not a permutation of basis states, or an input the ansatz reads itself."""
    from qrobust.models import circuits

    if circuit.encoding == "reupload":
        return "the reupload encoding loads the input inside the circuit (the native kernel applies one circuit " \
               "to the whole batch)"
    params, _ = circuit.probe("complex64")
    try:
        gates, _ = circuits.record(circuit.function(), circuit.n_qubits, "amplitude", params, None, "complex64")
        circuits.native_operations(gates, circuit.n_qubits)
    except ValueError as exc:
        return str(exc)
    return None
