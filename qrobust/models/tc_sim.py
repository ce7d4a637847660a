"""The TensorCircuit simulators "tc-fused" and "tc-gates": one example per call (vmapped for a batch).

"tc-fused": the fused blocks of single-qubit rotations (as in "blocks") as
``Circuit.any`` gates and the RZZ ring as one ``Circuit.diagonal``. "tc-gates":
gate by gate (35 small gates per layer on 10 qubits), as the paper's code builds
the circuit; with ``contractor="cotengra"`` as it contracts it. Both run every
ansatz and dtype on every platform, with forward mode; they are the reference
the fast simulators are checked against, and "tc-fused" is the fallback where
neither fast one can run. TensorCircuit's global backend and dtype are set only
inside ``qrobust.backend.tc_context`` and restored after.
"""

from __future__ import annotations

import jax.numpy as jnp

from qrobust.backend import COMPLEX_DTYPES, tc_context
from qrobust.models import hea
from qrobust.models.base import Capabilities, SimOptions

FUSED = Capabilities(hea.ANSATZE, COMPLEX_DTYPES, 2, 30, accelerators=True, forward_mode=True, whole_batch=False)
GATES = Capabilities(hea.ANSATZE, COMPLEX_DTYPES, 2, 30, accelerators=True, forward_mode=True, whole_batch=False)


def _entangle(c, plan: hea.Plan, p, layer: int) -> None:
    if plan.cnot_ring:
        for q in range(plan.n_qubits):
            c.cnot(q, (q + 1) % plan.n_qubits)
        return
    phases = hea.ring_phases(plan, p, layer)
    if phases is not None:
        c.diagonal(*range(plan.n_qubits), diag=phases)


def build_fused(plan: hea.Plan, options: SimOptions):
    """``apply(params, x) -> logit`` of one example, the fused circuit in TensorCircuit."""

    def apply(params, x):
        with tc_context(options.dtype, options.contractor) as tc:
            c = tc.Circuit(plan.n_qubits, inputs=x)
            for layer in range(plan.depth):
                p = params[layer]
                mats = hea.layer_matrices(plan, p)
                for block in hea.fused_blocks(plan.rotations[layer], options.block_size):
                    c.any(*block, unitary=hea.block_unitary(plan, mats, block, layer))
                _entangle(c, plan, p, layer)
            return plan.readout_scale * jnp.real(c.expectation_ps(z=[plan.measured]))

    return apply


def plan_gates(c, plan: hea.Plan, params) -> None:
    """The plan's circuit gate by gate on ``c``, as the paper's code writes it: per layer RX RY (RX) on every
    qubit, then the RZZ ring or the CNOT ring."""
    L = plan.n_qubits
    for layer in range(plan.depth):
        for q in range(L):
            c.rx(q, theta=params[layer, q, 0])
            c.ry(q, theta=params[layer, q, 1])
            if not plan.cnot_ring:
                c.rx(q, theta=params[layer, q, 2])
        for q in range(L):
            if plan.cnot_ring:
                c.cnot(q, (q + 1) % L)
            else:
                c.rzz(q, (q + 1) % L, theta=params[layer, q, 3])


def build_gates(plan: hea.Plan, options: SimOptions):
    """``apply(params, x) -> logit`` of one example, gate by gate in TensorCircuit (no light cone)."""

    def apply(params, x):
        with tc_context(options.dtype, options.contractor) as tc:
            c = tc.Circuit(plan.n_qubits, inputs=x)
            plan_gates(c, plan, params)
            return plan.readout_scale * jnp.real(c.expectation_ps(z=[plan.measured]))

    return apply
