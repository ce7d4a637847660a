"""Ground states of the periodic cluster-Ising chain by exact diagonalisation.

H = -sum_i Z_{i-1} X_i Z_{i+1} - h sum_i X_i, indices taken mod L (Pauli units, periodic boundary,
even L). For h < 1 the ground state is in the cluster phase, a Z2 x Z2 symmetry-protected topological
phase (at h = 0 it is the cluster state, the unique common +1 eigenstate of the stabilisers
S_i = Z_{i-1} X_i Z_{i+1}); for h > 1 it is a trivial paramagnet. The layer of CZ gates on all
neighbouring pairs maps X_i <-> S_i, so the spectrum is self-dual, E0(h) = h E0(1/h), with the
transition at h = 1. Qubit 0 is the most significant bit of a basis index (TensorCircuit's order).

Symmetry: H commutes with P_even = prod_{i even} X_i and P_odd = prod_{i odd} X_i. The ground state
is computed in the sector P_even = P_odd = +1, spanned by (1/2) sum_g |g(s)> over the four flips
g in {1, flip even sites, flip odd sites, flip all}; the representative s has qubits 0 and 1 clear,
so the sector has dimension 2**(L-2) and the representative is its own index. In that sector the
operators {S_i (i odd), X_j (j even)} and {S_i (i even), X_j (j odd)} form two commuting copies of
the periodic transverse-field Ising ring of L/2 spins in its P = +1 sector (S_i plays Z Z, X_j plays
X), so E0(L, h) = 2 E0_TFIM(L/2, h) exactly. Exact diagonalisation of the whole 2**L space confirms
that this sector holds the ground state of the ring, non-degenerate, for L = 4 .. 12 on a grid of h
from 0 to 4 (smallest gap 0.53, at L = 12, h = 1); the other sectors pair an Ising ring with a twisted
bond with one of odd parity, and lie higher.

The global phase is fixed canonically: the largest-magnitude amplitude is real and positive (ties,
up to rounding: the first such amplitude).

``order_parameter`` is the string order parameter <S_1 S_2 ... S_{L/2}> (equal to
(-1)^{L/2} <Z_0 Y_1 X_2 ... X_{L/2-1} Y_{L/2} Z_{L/2+1}>): 1 in the cluster state, decaying to ~0
in the paramagnet.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from qrobust.data.tfim import (_bit, canonical_phase, check_field, check_spins, check_state,
                               lowest_eigenpair)

MIN_SPINS, MAX_SPINS = 4, 20
_MODEL = "cluster-Ising chain"


def _sublattice_masks(n_spins: int) -> tuple[int, int]:
    """Bit masks flipping every even site and every odd site."""
    even = sum(1 << (n_spins - 1 - q) for q in range(0, n_spins, 2))
    odd = sum(1 << (n_spins - 1 - q) for q in range(1, n_spins, 2))
    return even, odd


def sector_hamiltonian(n_spins: int, h: float) -> scipy.sparse.csr_matrix:
    """H restricted to P_even = P_odd = +1, as a sparse real matrix on the representatives 0 .. 2**(L-2) - 1.

    Both -S_i and -h X_i flip qubit i and map the orbit of r to the orbit of r ^ (bit i) with the
    coefficient -(z_{i-1} z_{i+1} + h), where z = +-1 are read off r (the product is the same on the
    whole orbit, sites i - 1 and i + 1 being on one sublattice). There are no diagonal entries.
    """
    n_spins = check_spins(n_spins, _MODEL, MIN_SPINS, MAX_SPINS, even=True)
    h = check_field(h, _MODEL)
    dim = 2 ** (n_spins - 2)
    even_mask, odd_mask = _sublattice_masks(n_spins)
    reps = np.arange(dim, dtype=np.int64)
    rows, cols, vals = [], [], []
    for i in range(n_spins):
        z_left = 1 - 2 * _bit(reps, (i - 1) % n_spins, n_spins)
        z_right = 1 - 2 * _bit(reps, (i + 1) % n_spins, n_spins)
        flipped = reps ^ (1 << (n_spins - 1 - i))
        # back to the representative: clear qubit 0 (even sublattice) and qubit 1 (odd sublattice)
        flipped = np.where(_bit(flipped, 0, n_spins) == 1, flipped ^ even_mask, flipped)
        flipped = np.where(_bit(flipped, 1, n_spins) == 1, flipped ^ odd_mask, flipped)
        rows.append(flipped)
        cols.append(reps)
        vals.append(-(z_left * z_right + h).astype(np.float64))
    return scipy.sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(dim, dim)
    ).tocsr()


def ground_state(n_spins: int, h: float) -> tuple[float, np.ndarray]:
    """Ground energy and ground state (2**n_spins complex128, unit norm, canonical phase) of the ring.

    ``n_spins`` even, from 4 to 20; ``h`` finite and >= 0. See the module docstring for the sector and phase.
    """
    n_spins = check_spins(n_spins, _MODEL, MIN_SPINS, MAX_SPINS, even=True)
    h = check_field(h, _MODEL)
    matrix = sector_hamiltonian(n_spins, h)
    dim = matrix.shape[0]
    start = np.random.default_rng(0).standard_normal(dim)  # fixed, so that runs are reproducible
    energy, vec = lowest_eigenpair(matrix, v0=start)
    even_mask, odd_mask = _sublattice_masks(n_spins)
    reps = np.arange(dim, dtype=np.int64)
    full = np.zeros(2**n_spins, dtype=np.complex128)
    for flip in (0, even_mask, odd_mask, even_mask | odd_mask):
        full[reps ^ flip] = vec / 2.0
    return energy, canonical_phase(full)


def _apply_stabiliser(psi: np.ndarray, i: int, n_spins: int, basis: np.ndarray) -> np.ndarray:
    """S_i psi for S_i = Z_{i-1} X_i Z_{i+1}: (S_i psi)[t] = z_{i-1}(t) z_{i+1}(t) psi[t ^ bit i]."""
    signs = (1 - 2 * _bit(basis, (i - 1) % n_spins, n_spins)) * (1 - 2 * _bit(basis, (i + 1) % n_spins, n_spins))
    return signs * psi[basis ^ (1 << (n_spins - 1 - i))]


def order_parameter(state, n_spins: int) -> float:
    """The string order parameter <S_1 S_2 ... S_{L/2}>, S_i = Z_{i-1} X_i Z_{i+1}: 1 in the cluster state."""
    n_spins = check_spins(n_spins, _MODEL, MIN_SPINS, MAX_SPINS, even=True)
    psi = check_state(state, n_spins)
    basis = np.arange(2**n_spins, dtype=np.int64)
    phi = psi
    for i in range(1, n_spins // 2 + 1):
        phi = _apply_stabiliser(phi, i, n_spins, basis)
    return float(np.real(np.vdot(psi, phi)))
