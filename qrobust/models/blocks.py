"""The "blocks" QNN simulator: a batched statevector kernel that applies a circuit as small matrix products.

The states of a batch are held as one array of shape (2**hA, B, 2**hB): the
first hA = L // 2 qubits index the leading axis, the batch sits in the middle,
the other hB = L - hA qubits index the trailing axis (qubit 0 is the most
significant bit, as everywhere in qrobust). In this layout

- a unitary on the leading qubits of the first half is ONE matrix product
  ``u @ psi.reshape(2**k, -1)``, and a unitary on the trailing qubits of the
  second half is ONE matrix product ``psi.reshape(-1, 2**k) @ u.T``: no
  transposes, long contiguous operands, the whole batch at once;
- a unitary on bits in the middle of a half is a product with a short leading
  batch axis (``einsum('ij,ajc->aic')``);
- a diagonal gate on all L qubits is one elementwise product with a
  (2**hA, 1, 2**hB) phase array;
- <Z_q> is a weighted sum of |psi|**2.

Under ``jax.vmap`` over replicas the products become batched matrix products
with the replica axis leading.

Matrix-product precision (``precision``): "highest" (default) asks for full
float32 (or float64) products everywhere. On a GPU, XLA's default precision for
float32 and complex64 products is TensorFloat-32 (inputs rounded to a 10-bit
mantissa, about 1e-3 relative error per product) where the hardware has it;
"tf32" allows that, for speed. On CPU both give full precision. Gradients are JAX's reverse mode through these
products (each costs about two more products of the same size).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.backend import COMPLEX_DTYPES
from qrobust.models import hea
from qrobust.models.base import Capabilities, SimOptions

PRECISIONS = {"highest": jax.lax.Precision.HIGHEST, "tf32": jax.lax.Precision.DEFAULT}


class Layout:
    """Where each qubit of an L-qubit register lives in the (2**hA, B, 2**hB) batch layout."""

    def __init__(self, n_qubits: int, precision: str = "highest"):
        if precision not in PRECISIONS:
            raise ValueError(f"unknown matmul precision {precision!r}; choose from {', '.join(PRECISIONS)}")
        self.n_qubits = n_qubits
        self.precision = PRECISIONS[precision]
        self.h_a = n_qubits // 2
        self.h_b = n_qubits - self.h_a

    @property
    def shape_a(self) -> int:
        return 2**self.h_a

    @property
    def shape_b(self) -> int:
        return 2**self.h_b

    def to_blocks(self, states: jax.Array) -> jax.Array:
        """(B, 2**L) amplitude vectors -> (2**hA, B, 2**hB)."""
        b = states.shape[0]
        return jnp.transpose(states.reshape(b, self.shape_a, self.shape_b), (1, 0, 2))

    def half_windows(self, qubits, block_size: int) -> list[tuple[int, int]]:
        """Cover ``qubits`` by (first, last) spans inside aligned windows that never cross the halves."""
        spans = []
        for lo, hi in ((0, self.h_a), (self.h_a, self.n_qubits)):
            for start in range(lo, hi, block_size):
                inside = [q for q in qubits if start <= q < min(start + block_size, hi)]
                if inside:
                    spans.append((inside[0], inside[-1]))
        return spans

    def apply(self, psi: jax.Array, unitary: jax.Array, first: int, last: int) -> jax.Array:
        """Apply a (2**k, 2**k) unitary on qubits first..last (k = last - first + 1) of psi."""
        k = last - first + 1
        dim = 2**k
        shape = psi.shape
        if last < self.h_a:  # inside the first half: bits above (a), the block, everything after (c)
            above = 2**first
            if above == 1:
                return jnp.matmul(unitary, psi.reshape(dim, -1), precision=self.precision).reshape(shape)
            return jnp.einsum("ij,ajc->aic", unitary, psi.reshape(above, dim, -1),
                              precision=self.precision).reshape(shape)
        if first < self.h_a:
            raise ValueError(f"a block may not cross the halves: qubits {first}..{last}, half {self.h_a}")
        below = 2 ** (self.n_qubits - 1 - last)
        if below == 1:
            return jnp.matmul(psi.reshape(-1, dim), unitary.T, precision=self.precision).reshape(shape)
        return jnp.einsum("ij,ajc->aic", unitary, psi.reshape(-1, dim, below),
                          precision=self.precision).reshape(shape)

    def diagonal(self, psi: jax.Array, phases: jax.Array) -> jax.Array:
        """Multiply by a diagonal (2**L,) operator.

        The (2**hA, 2**hB) table of phases is first multiplied by the identity matrix. That product
        is exact (at full precision, asked for explicitly: on a GPU the default would round the
        phases to TensorFloat-32), and XLA's CPU compiler does not fuse a matrix product into the elementwise loop
        that follows it, so the table is computed once. Without it, the compiler fuses the
        computation of the phases (cos and sin of the ring angles) into the loop over the batch
        of a forward pass and recomputes it for every state. In a profile of the MNIST training
        program (10 qubits; per epoch two steps on batches of 256 and an evaluation of 1,000
        states), the ring passes then took 250 ms of 680 ms of kernel time, almost all of it in
        the evaluation; with the identity product, 67 ms of 390 ms.
        """
        table = jnp.matmul(jnp.eye(self.shape_a, dtype=phases.dtype), phases.reshape(self.shape_a, self.shape_b),
                           precision=jax.lax.Precision.HIGHEST)  # exact only at full precision
        return psi * table[:, None, :]

    def z_signs(self, qubit: int) -> jax.Array:
        """(2**hA, 1, 2**hB) array of z = +-1 of ``qubit`` per basis state."""
        s = np.arange(2**self.n_qubits)
        z = 1 - 2 * ((s >> (self.n_qubits - 1 - qubit)) & 1)
        return z.reshape(self.shape_a, 1, self.shape_b)

    def expectation_z(self, psi: jax.Array, qubit: int) -> jax.Array:
        """(B,) <Z_qubit> of every state of the batch."""
        prob = jnp.real(psi) ** 2 + jnp.imag(psi) ** 2
        z = jnp.asarray(self.z_signs(qubit), prob.dtype)
        return jnp.sum(prob * z, axis=(0, 2))


CAPABILITIES = Capabilities(("hea",), COMPLEX_DTYPES, 2, 30, accelerators=True, forward_mode=True, whole_batch=True)


def build(plan: hea.Plan, options: SimOptions):
    """``logits(params, xs) -> (B,)`` of the "hea" plan, the whole batch as matrix products in this layout."""
    layout = Layout(plan.n_qubits, options.matmul_precision)

    def logits(params, xs):
        psi = layout.to_blocks(xs)
        for layer in range(plan.depth):
            p = params[layer]
            mats = hea.layer_matrices(plan, p)
            for first, last in layout.half_windows(plan.rotations[layer], options.block_size):
                unitary = hea.block_unitary(plan, mats, range(first, last + 1), layer)
                psi = layout.apply(psi, unitary.astype(psi.dtype), first, last)
            phases = hea.ring_phases(plan, p, layer)
            if phases is not None:
                psi = layout.diagonal(psi, phases.astype(psi.dtype))
        return plan.readout_scale * layout.expectation_z(psi, plan.measured)

    return logits
