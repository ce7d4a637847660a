"""The QNN's simulators behind one registry: each declares what it can run, and ``qnn`` asks.

Every simulator runs a ``Circuit`` (``qrobust.models.circuit``: an ansatz written once in TensorCircuit, at a
size, with an encoding and a readout). Each declares its ``Capabilities`` (``qrobust.models.base``) in its own
module, and a ``build(circuit, options) -> (apply, apply_batch)``:

  "native"        ``qrobust.models.native``: the C++ kernel for the paper's "hea" (CPU), whole batch.
  "native-gates"  ``qrobust.models.circuits``: the C++ kernel on any circuit's recorded gates (CPU).
  "blocks"        ``qrobust.models.blocks``: "hea" as batched matrix products in XLA (the default on a GPU).
  "tc-fused"      ``qrobust.models.tc_sim``: the paper's two circuits fused, in TensorCircuit, one example.
  "xla-gates"     ``qrobust.models.circuits``: any circuit's recorded gates as XLA tensor contractions.
  "tc-gates"      ``qrobust.models.circuits``: TensorCircuit's own contraction of any circuit, one example.
  "pallas"        ``qrobust.models.pallas_sim``: "hea" as fused Pallas kernels that keep each state on chip (GPU;
                  interpreted on CPU, for tests only); never the default until measured on a GPU.
  "heisenberg"    ``qrobust.models.noise``: any circuit's recorded gates with gate noise and readout error, exactly
                  (the observable carried back through the noisy circuit, then one quadratic form per example),
                  the noise after each gate or once per layer;
                  the only one that runs channels; after "tc-gates", so an exact circuit never lands on it.

Readout error alone is no channel a simulator needs: the measured bit flipped with probability p reads <Z> as
(1 - 2p) <Z>, an affine map of the output. Every simulator runs it (``why_not`` does not ask for it), folded into
the readout's scale by ``build`` where the simulator does not run it itself, so a circuit with readout error and
no gate noise runs on the exact kernels ("native" for the paper's circuit), not on "heisenberg".

``why_not`` names the first reason a simulator cannot run a circuit here (None: it can); ``choose`` picks the
first of ``PREFERENCE`` that can, and says why each one before it was passed over. A call site states what it
needs (``forward_mode=True`` for the Hessian study) instead of naming a simulator; an explicit choice that
cannot run is refused with its reason (``check``), never replaced. A new simulator is a module with its
capabilities and build, and one line in ``_registry``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from qrobust.models.base import Capabilities, SimOptions
from qrobust.models.circuit import Circuit, gate_problem, native_problem


class Simulator(NamedTuple):
    capabilities: Capabilities
    build: Callable  # build(circuit, options) -> (apply(params, x), apply_batch(params, xs) or None)


def _structured(build_plan: Callable, whole_batch: bool) -> Callable:
    """A build of a structured kernel (it reads the circuit's ``hea.Plan``) as (apply, apply_batch)."""

    def build(circuit: Circuit, options: SimOptions):
        built = build_plan(circuit.plan(), options)
        if whole_batch:
            return (lambda params, x: built(params, x[None])[0]), built
        return built, None

    return build


def _registry() -> dict[str, Simulator]:
    from qrobust.backend import COMPLEX_DTYPES
    from qrobust.models import blocks, circuits, native, noise, pallas_sim, pauli, tc_sim

    gates = Capabilities(None, COMPLEX_DTYPES, 1, 30, accelerators=True, forward_mode=True, whole_batch=False,
                         encodings=("amplitude", "angle", "reupload"))
    return {
        "native": Simulator(native.CAPABILITIES, _structured(native.build, True)),
        "native-gates": Simulator(native.CAPABILITIES._replace(ansatze=None, encodings=("amplitude", "angle"),
                                                               gates_only=True, native_gates=True),
                                  circuits.build_native_gates),
        "blocks": Simulator(blocks.CAPABILITIES, _structured(blocks.build, True)),
        "tc-fused": Simulator(tc_sim.CAPABILITIES, _structured(tc_sim.build_fused, False)),
        "xla-gates": Simulator(gates._replace(gates_only=True), circuits.build_xla_gates),
        "tc-gates": Simulator(gates, circuits.build_tc_gates),
        "heisenberg": Simulator(gates._replace(gates_only=True, whole_batch=True, max_qubits=noise.MAX_QUBITS,
                                               encodings=("amplitude", "angle"), channels=noise.CHANNELS,
                                               placements=noise.PLACEMENTS),
                                pauli.build_heisenberg),
        "pallas": Simulator(pallas_sim.CAPABILITIES, _structured(pallas_sim.build, True)),
    }


SIMULATORS = ("native", "native-gates", "blocks", "tc-fused", "xla-gates", "tc-gates", "heisenberg", "pallas")
# Fastest first where each can run (benchmarks/suite.py, benchmarks/builtin_simulators.py, benchmarks/
# user_circuit.py); "tc-gates" runs everything and is the cross-check. For "hea", "native" is 1.03-1.15x faster
# than "native-gates"; for "rxry_cnot", "native-gates" (its CNOT ring one permutation per layer) is 3.4x / 5.5x
# faster than "tc-fused" (the gradient on 32 / 256 examples, 10 qubits, 2026-12-01, 2 cores).
PREFERENCE = SIMULATORS


def capabilities(name: str) -> Capabilities:
    return _registry()[name].capabilities


def why_not(name: str, circuit: Circuit, *, dtype: str, on_accelerator: bool, forward_mode: bool = False) -> str | None:
    """Why simulator ``name`` cannot run ``circuit`` here (the first reason found), or None if it can."""
    c = capabilities(name)
    missing = [channel for channel in circuit.noise.names if channel not in c.channels and channel != "readout"]
    if missing:
        return (f"it runs exact circuits only, not the {', '.join(missing)} channel" if not c.channels else
                f"it runs the {', '.join(c.channels)} channels only, not {', '.join(missing)}")
    unplaced = [p for p in circuit.noise.placements if p not in c.placements]
    if unplaced:
        return f"it places noise {' or '.join(c.placements)} only, not per {', '.join(unplaced)}"
    if c.ansatze is not None and circuit.structure not in c.ansatze:
        what = (f"the {circuit.ansatz.name!r} ansatz" if circuit.structure is not None or not circuit.ansatz.structured
                else f"the {circuit.ansatz.name!r} ansatz with {circuit.encoding} encoding read on qubit "
                     f"{circuit.readout}")
        return f"it runs the {' and '.join(repr(a) for a in c.ansatze)} ansatz only (on amplitude-encoded states, " \
               f"read on the last qubit), not {what}"
    if circuit.encoding not in c.encodings:
        return f"it takes {' or '.join(c.encodings)} encoded inputs only, not {circuit.encoding}"
    if dtype not in c.dtypes:
        return f"it runs in {', '.join(c.dtypes)} only, not {dtype}"
    if not c.min_qubits <= circuit.n_qubits <= c.max_qubits:
        return f"it needs {c.min_qubits} to {c.max_qubits} qubits, got {circuit.n_qubits}"
    if on_accelerator and not c.accelerators:
        return "it runs on CPU devices only, and this process's devices are accelerators"
    if forward_mode and not c.forward_mode:
        return "it has no forward mode (jax.jvp), which Hessian-vector products need"
    reason = gate_problem(circuit, dtype) if c.gates_only else None
    if reason is None and c.native_gates:
        reason = native_problem(circuit)
    return reason or c.unavailable()


def choose(circuit: Circuit, *, dtype: str, on_accelerator: bool,
           forward_mode: bool = False) -> tuple[str, dict[str, str]]:
    """The first simulator of ``PREFERENCE`` that can run ``circuit``, and {name: why not} for those before it."""
    passed_over = {}
    for name in PREFERENCE:
        reason = why_not(name, circuit, dtype=dtype, on_accelerator=on_accelerator, forward_mode=forward_mode)
        if reason is None:
            return name, passed_over
        passed_over[name] = reason
    if not circuit.noise.exact:  # only those that run channels have a reason worth naming
        from qrobust.errors import ConfigError

        reasons = "; ".join(f"{k}: {v}" for k, v in passed_over.items() if capabilities(k).channels)
        raise ConfigError(f"no simulator runs this noisy QNN ({reasons})")
    raise ValueError(f"no simulator runs this QNN: {passed_over}")  # tc-gates runs every exact circuit


def build(name: str, circuit: Circuit, options: SimOptions):
    """(apply, apply_batch) of ``circuit`` on simulator ``name``: the per-example logit, and the whole-batch
    logits where the simulator has them (else None: a batch is the vmapped ``apply``). Readout error, where the
    simulator does not run it, is folded into the readout's scale (``read_through``)."""
    simulator = _registry()[name]
    return simulator.build(read_through(circuit, simulator.capabilities), options)


def read_through(circuit: Circuit, capabilities: Capabilities) -> Circuit:
    """``circuit`` as a simulator of ``capabilities`` runs it: where it does not run readout error itself, the
    flip probability p goes from the noise into the readout's scale, times (1 - 2p) (module docstring)."""
    p = circuit.noise.readout
    if not p or "readout" in capabilities.channels:
        return circuit
    rest = type(circuit.noise)(tuple((key, q) for key, q in circuit.noise.channels if key != "readout"))
    return circuit._replace(noise=rest, readout_scale=circuit.readout_scale * (1 - 2 * p))
