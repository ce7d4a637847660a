"""The TensorCircuit simulator "tc-fused" of the paper's structured circuits: one example per call (vmapped for a
batch).

The fused blocks of single-qubit rotations (as in "blocks") as ``Circuit.any`` gates and the RZZ ring as one
``Circuit.diagonal`` (or the CNOT ring gate by gate), on every platform and dtype, with forward mode: the
fallback for the structured circuits where neither fast kernel runs. Gate by gate, as the paper's code builds
the circuit, is "tc-gates" (``qrobust.models.circuits``), which runs any circuit. TensorCircuit's global backend
and dtype are set only inside ``qrobust.backend.tc_context`` and restored after.
"""

from __future__ import annotations

import jax.numpy as jnp

from qrobust.backend import COMPLEX_DTYPES, tc_context
from qrobust.models import hea
from qrobust.models.base import Capabilities, SimOptions

CAPABILITIES = Capabilities(hea.ANSATZE, COMPLEX_DTYPES, 2, 30, accelerators=True, forward_mode=True,
                            whole_batch=False)


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
