"""The QNN's simulators behind one registry: each declares what it can run, and ``qnn`` asks.

Each simulator lives in its own module, which declares its ``Capabilities``
(``qrobust.models.base``: which ansatzes, dtypes and qubit counts it runs,
whether it runs on accelerators, whether it has forward mode (``jax.jvp``,
which Hessians need), and whether it can be used on this machine at all: the
native kernel must build) and a ``build(plan, options)`` that turns a circuit
(``qrobust.models.hea.Plan``) into logits:

  "native"    ``qrobust.models.native``: the C++ kernel (CPU), whole batch, the paper's "hea" ansatz.
  "native-gates"  ``qrobust.models.circuits.build_native_gates``: the C++ kernel's gate list (CPU), whole
              batch, every built-in ansatz (the circuit recorded gate by gate in TensorCircuit).
  "blocks"    ``qrobust.models.blocks``: batched matrix products in XLA, whole batch.
  "tc-fused"  ``qrobust.models.tc_sim``: TensorCircuit, fused gates, one example.
  "tc-gates"  ``qrobust.models.tc_sim``: TensorCircuit, gate by gate, one example.

``why_not`` names the first reason a simulator cannot run a given QNN (None: it
can); ``choose`` picks the first of ``PREFERENCE`` that can, and says why each
one before it was passed over. So a call site states what it needs
(``forward_mode=True`` for the Hessian study) instead of naming a simulator, and
a fallback is explained, never silent. A new simulator is a module with these
two names and one line in ``_registry``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from qrobust.models.base import Capabilities, SimOptions


class Simulator(NamedTuple):
    capabilities: Capabilities
    build: Callable  # build(plan, options) -> logits(params, xs) (whole_batch) or apply(params, x)


def _registry() -> dict[str, Simulator]:
    from qrobust.models import blocks, circuits, hea, native, tc_sim

    return {
        "native": Simulator(native.CAPABILITIES, native.build),
        "native-gates": Simulator(native.CAPABILITIES._replace(ansatze=hea.ANSATZE), circuits.build_native_gates),
        "blocks": Simulator(blocks.CAPABILITIES, blocks.build),
        "tc-fused": Simulator(tc_sim.FUSED, tc_sim.build_fused),
        "tc-gates": Simulator(tc_sim.GATES, tc_sim.build_gates),
    }


SIMULATORS = ("native", "native-gates", "blocks", "tc-fused", "tc-gates")
# Fastest first where each can run (benchmarks/suite.py, benchmarks/builtin_simulators.py); tc-gates is for
# cross-checks. For "hea", "native" is 1.03-1.15x faster than "native-gates"; for "rxry_cnot", "native-gates"
# (its CNOT ring one permutation per layer) is 3.4x / 5.5x faster than "tc-fused" (the gradient on 32 / 256
# examples, 10 qubits, 2026-12-01, 2 cores).
PREFERENCE = ("native", "native-gates", "blocks", "tc-fused")


def capabilities(name: str) -> Capabilities:
    return _registry()[name].capabilities


def build(name: str, plan, options: SimOptions):
    """(apply, apply_batch) of ``plan`` on simulator ``name``: the per-example logit, and the whole-batch
    logits where the simulator has them (else None: a batch is the vmapped ``apply``)."""
    simulator = _registry()[name]
    built = simulator.build(plan, options)
    if simulator.capabilities.whole_batch:
        return (lambda params, x: built(params, x[None])[0]), built
    return built, None


def why_not(name: str, *, n_qubits: int, dtype: str, ansatz: str, on_accelerator: bool,
            forward_mode: bool = False) -> str | None:
    """Why simulator ``name`` cannot run this QNN here (the first reason found), or None if it can."""
    c = capabilities(name)
    if ansatz not in c.ansatze:
        return f"it supports the {' and '.join(repr(a) for a in c.ansatze)} ansatz only, not {ansatz!r}"
    if dtype not in c.dtypes:
        return f"it runs in {', '.join(c.dtypes)} only, not {dtype}"
    if not c.min_qubits <= n_qubits <= c.max_qubits:
        return f"it needs {c.min_qubits} to {c.max_qubits} qubits, got {n_qubits}"
    if on_accelerator and not c.accelerators:
        return "it runs on CPU devices only, and this process's devices are accelerators"
    if forward_mode and not c.forward_mode:
        return "it has no forward mode (jax.jvp), which Hessian-vector products need"
    return c.unavailable()


def choose(*, n_qubits: int, dtype: str, ansatz: str, on_accelerator: bool,
           forward_mode: bool = False) -> tuple[str, dict[str, str]]:
    """The first simulator of ``PREFERENCE`` that can run this QNN, and {name: why not} for those before it."""
    passed_over = {}
    for name in PREFERENCE:
        reason = why_not(name, n_qubits=n_qubits, dtype=dtype, ansatz=ansatz, on_accelerator=on_accelerator,
                         forward_mode=forward_mode)
        if reason is None:
            return name, passed_over
        passed_over[name] = reason
    raise ValueError(f"no simulator runs this QNN: {passed_over}")  # tc-fused runs every ansatz and dtype
