"""The paper's circuits as a plan that every simulator reads: gates, light cone and per-layer matrices.

Ansatz "hea" (hardware-efficient, L qubits, depth d; the paper's main model):
every layer applies RX(a) RY(b) RX(c) to each qubit, then RZZ(e) on every ring
pair (i, i+1 mod L). Parameters (d, L, 4) hold [a, b, c, e] per layer and qubit;
RZZ(e) of entry (l, i) acts on the pair (i, i+1 mod L). RX(t) = exp(-i t X / 2),
likewise RY and RZZ(t) = exp(-i t Z Z / 2). Ansatz "rxry_cnot" (the paper's
Hessian-study variant): per layer RX(a) RY(b) on every qubit, then CNOT(i, i+1
mod L) for i = 0, ..., L-1 in that order; parameters (d, L, 2).

The input state is the amplitude vector (qubit 0 = most significant bit); the
output logit is readout_scale * <Z_{L-1}>.

Light cone: gates outside the backward light cone of the measured qubit are left
out (exact: they commute with the observable): the last layer's RZZ ring and all
its rotations but the measured qubit's, then one more neighbour on each side per
layer going back. A ``Plan`` holds the light cone; the simulators
(``qrobust.models.simulators``) each turn a plan into logits their own way.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

ANSATZE = ("hea", "rxry_cnot")


class Plan(NamedTuple):
    """One QNN's circuit, as every simulator needs it.

    rotations[l]: the qubits whose rotations in layer l are applied (the light cone, or all);
    pairs[l]: the i whose entangler on (i, i+1 mod L) in layer l is applied (all for "rxry_cnot").
    """

    ansatz: str
    n_qubits: int
    depth: int
    readout_scale: float
    rotations: tuple[tuple[int, ...], ...]
    pairs: tuple[tuple[int, ...], ...]

    @property
    def measured(self) -> int:
        return self.n_qubits - 1

    @property
    def cnot_ring(self) -> bool:
        return self.ansatz == "rxry_cnot"


def plan(ansatz: str, n_qubits: int, depth: int, *, readout_scale: float, light_cone_pruning: bool) -> Plan:
    """The circuit of ``ansatz`` (the light cone applies to "hea"; the CNOT ring of "rxry_cnot" is whole)."""
    rotations, pairs = cones(n_qubits, depth, light_cone_pruning and ansatz == "hea")
    return Plan(ansatz, n_qubits, depth, float(readout_scale), tuple(rotations), tuple(pairs))


def rotation_matrix(a, b, c):
    """RX(c) @ RY(b) @ RX(a) as a (2, 2) complex matrix (RX(a) acts first)."""
    def rx(t):
        co, si = jnp.cos(t / 2), jnp.sin(t / 2)
        return jnp.array([[co, -1j * si], [-1j * si, co]])

    def ry(t):
        co, si = jnp.cos(t / 2), jnp.sin(t / 2)
        return jnp.array([[co, -si], [si, co]]).astype(rx(t).dtype)

    full = jax.lax.Precision.HIGHEST  # a GPU's default would round the angles' cos and sin to TensorFloat-32
    return jnp.matmul(rx(c), jnp.matmul(ry(b), rx(a), precision=full), precision=full)


@functools.lru_cache(maxsize=None)
def ring_zz_signs(n_qubits: int) -> np.ndarray:
    """(L, 2**L) array: entry (i, s) = z_i z_{i+1 mod L} of basis state s, z = +-1 (read-only)."""
    s = np.arange(2**n_qubits)
    z = 1 - 2 * ((s[None, :] >> (n_qubits - 1 - np.arange(n_qubits))[:, None]) & 1)
    out = (z * np.roll(z, -1, axis=0)).astype(np.int8)
    out.flags.writeable = False
    return out


def light_cone(n_qubits: int, depth: int, measured: int):
    """Per layer, which rotations and which RZZ pairs can affect <Z_measured>.

    Returns (rotations, pairs): rotations[l] a sorted tuple of qubits whose
    rotations in layer l matter; pairs[l] a sorted tuple of i such that the RZZ
    on (i, i+1 mod L) in layer l matters.
    """
    support = {measured}
    diagonal_observable = True
    rotations, pairs = [None] * depth, [None] * depth
    for layer in reversed(range(depth)):
        # RZZ gates come last in a layer, so they are met first going backwards.
        if diagonal_observable:
            needed = ()  # diagonal gates commute with a diagonal observable
        else:
            needed = tuple(i for i in range(n_qubits) if {i, (i + 1) % n_qubits} & support)
            for i in needed:
                support |= {i, (i + 1) % n_qubits}
        pairs[layer] = needed
        rotations[layer] = tuple(sorted(support))
        diagonal_observable = False
    return rotations, pairs


def cones(n_qubits: int, depth: int, light_cone_pruning: bool):
    """(rotations, pairs) per layer: the light cone of the last qubit, or every gate."""
    if light_cone_pruning:
        return light_cone(n_qubits, depth, n_qubits - 1)
    return [tuple(range(n_qubits))] * depth, [tuple(range(n_qubits))] * depth


def layer_matrices(plan: Plan, p: jax.Array) -> jax.Array:
    """(L, 2, 2) single-qubit unitaries of one layer's parameters p (L, params per qubit)."""
    third = jnp.zeros_like(p[:, 0]) if plan.cnot_ring else p[:, 2]
    return jax.vmap(rotation_matrix)(p[:, 0], p[:, 1], third)


def block_unitary(plan: Plan, mats: jax.Array, qubits, layer: int) -> jax.Array:
    """Kronecker product of the layer's matrices on ``qubits`` (identity where outside the light cone)."""
    needed = set(plan.rotations[layer])
    unitary = None
    for q in qubits:
        m = mats[q] if q in needed else jnp.eye(2, dtype=mats.dtype)
        unitary = m if unitary is None else jnp.kron(unitary, m)
    return unitary


def ring_phases(plan: Plan, p: jax.Array, layer: int) -> jax.Array | None:
    """(2**L,) diagonal of the layer's RZZ ring (the pairs in the light cone), or None if there are none."""
    ring = plan.pairs[layer]
    if not ring or plan.cnot_ring:
        return None
    idx = np.array(ring)
    zz = jnp.asarray(ring_zz_signs(plan.n_qubits)[idx], p.dtype)
    angles = jnp.matmul(p[idx, 3], zz, precision=jax.lax.Precision.HIGHEST)
    return jnp.exp(-0.5j * angles)  # full precision: a GPU's default (TensorFloat-32) would round the angles


def fused_blocks(qubits: tuple[int, ...], block_size: int) -> list[tuple[int, ...]]:
    """Partition qubits 0..L-1 into aligned windows of block_size; keep each window's needed span."""
    out = []
    if not qubits:
        return out
    for start in range(0, max(qubits) + 1, block_size):
        inside = [q for q in qubits if start <= q < start + block_size]
        if inside:
            out.append(tuple(range(inside[0], inside[-1] + 1)))
    return out
