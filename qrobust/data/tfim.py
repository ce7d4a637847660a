"""Ground states of the periodic transverse-field Ising chain by exact diagonalisation.

H = -sum_i Z_i Z_{i+1} - h sum_i X_i, i + 1 taken mod L (Pauli units, periodic boundary, J = 1).
The chain orders ferromagnetically for h < 1 and is a paramagnet for h > 1, with the quantum critical
point at h = 1. Qubit 0 is the most significant bit of a basis index (TensorCircuit's order).

H commutes with the spin-flip parity P = prod_i X_i. For h < 1 the two lowest levels (one with P = +1,
one with P = -1) are split only by an amount exponentially small in L, so an eigensolver on the full
space would return an arbitrary, ill-conditioned mixture of the pair. The ground state is therefore
computed inside the P = +1 sector, spanned by (|s> + |s-bar>)/sqrt2 with s-bar = s with every bit
flipped (the representative s has qubit 0 equal to 0; dimension 2**(L-1)), and embedded into the
2**L basis. For every h > 0 this is the ground state of the whole chain (the Hamiltonian is
stoquastic and irreducible, so its ground state is unique with positive amplitudes, hence P = +1);
at h = 0 it is the GHZ+ state (|0...0> + |1...1>)/sqrt2.

The global phase is fixed canonically: the largest-magnitude amplitude is real and positive (ties,
up to rounding: the first such amplitude).

``free_fermion_energy`` gives the exact P = +1 ground energy from the Jordan-Wigner solution,
which maps that sector to free fermions with antiperiodic boundary conditions:

    E0 = -sum_{n=0}^{L-1} sqrt(1 + h**2 - 2 h cos k_n),  k_n = 2 pi (n + 1/2) / L.

It was checked against exact diagonalisation (the whole 2**L space, dense, for L <= 10; the P = +1
sector for L <= 16) for every L from 2 to 16, odd L included, and h from 0 to 4, to 1e-13. No sector
subtlety arises: for odd L the single unpaired mode k = pi enters with its lower energy, 1 + h, and
for L = 2 the two bonds Z_0 Z_1 and Z_1 Z_0 both count, as in H.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from qrobust.errors import ConfigError

MIN_SPINS, MAX_SPINS = 2, 20
_DENSE_LIMIT = 256  # sector dimension up to which dense eigh is used (sparse Lanczos beyond: ms per state)
_TIE_RTOL = 1e-9  # amplitudes this close (relative) to the largest count as tied for the phase convention


def check_spins(n_spins, model: str, min_spins: int, max_spins: int, *, even: bool = False) -> int:
    """``n_spins`` as an int, or ConfigError if it is not an integer in [min_spins, max_spins] (even if asked)."""
    if isinstance(n_spins, bool) or not isinstance(n_spins, (int, np.integer)):
        raise ConfigError(f"the number of spins of the {model} must be an integer, got {n_spins!r}")
    n = int(n_spins)
    parity = "an even" if even else "a"
    if not min_spins <= n <= max_spins or (even and n % 2):
        raise ConfigError(f"the {model} needs {parity} number of spins from {min_spins} to {max_spins} "
                          f"(exact diagonalisation; 2**L amplitudes per state), got {n}")
    return n


def check_field(h, model: str) -> float:
    """``h`` as a float, or ConfigError if it is not a finite number >= 0."""
    try:
        value = float(h)
    except (TypeError, ValueError):
        raise ConfigError(f"the transverse field h of the {model} must be a number, got {h!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"the transverse field h of the {model} must be finite and >= 0, got {h!r}")
    return value


def check_state(state, n_spins: int) -> np.ndarray:
    """``state`` as a 1-D complex128 array, or ConfigError if its length is not 2**n_spins."""
    psi = np.asarray(state, dtype=np.complex128)
    if psi.shape != (2**n_spins,):
        raise ConfigError(f"a state of {n_spins} spins needs shape ({2**n_spins},), got {psi.shape}")
    return psi


def canonical_phase(psi: np.ndarray) -> np.ndarray:
    """``psi`` times the global phase that makes its largest-magnitude amplitude real and positive.

    Of amplitudes tied for the largest magnitude (within a relative 1e-9, i.e. up to rounding), the
    first one, in basis-index order, is made positive.
    """
    magnitude = np.abs(psi)
    k = int(np.argmax(magnitude >= magnitude.max() * (1 - _TIE_RTOL)))
    return psi * (np.conj(psi[k]) / magnitude[k])


def lowest_eigenpair(matrix: scipy.sparse.spmatrix, v0: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """The lowest eigenvalue of a real symmetric sparse matrix and a unit eigenvector.

    Dense ``scipy.linalg.eigh`` up to dimension 3000, Lanczos (``eigsh``, tol 1e-12, starting from ``v0``)
    above that.
    """
    if matrix.shape[0] <= _DENSE_LIMIT:
        evals, evecs = scipy.linalg.eigh(matrix.toarray(), subset_by_index=[0, 0])
    else:
        evals, evecs = scipy.sparse.linalg.eigsh(matrix, k=1, which="SA", tol=1e-12, v0=v0)
    vec = evecs[:, 0]
    return float(evals[0]), vec / np.linalg.norm(vec)


def _bit(states: np.ndarray, qubit: int, n_spins: int) -> np.ndarray:
    """The bit of ``qubit`` (qubit 0 = most significant) in every basis index of ``states``."""
    return (states >> (n_spins - 1 - qubit)) & 1


def sector_hamiltonian(n_spins: int, h: float) -> scipy.sparse.csr_matrix:
    """H restricted to P = +1, as a sparse real matrix on the representatives 0 .. 2**(L-1) - 1.

    Representative r (qubit 0 clear) stands for (|r> + |r-bar>)/sqrt2; its index is r itself.
    """
    n_spins = check_spins(n_spins, "transverse-field Ising chain", MIN_SPINS, MAX_SPINS)
    h = check_field(h, "transverse-field Ising chain")
    dim = 2 ** (n_spins - 1)
    all_ones = 2**n_spins - 1
    reps = np.arange(dim, dtype=np.int64)
    # -Z_i Z_{i+1} is diagonal and the same on r and r-bar: -1 for aligned neighbours, +1 for a domain wall.
    diag = np.zeros(dim)
    for i in range(n_spins):
        wall = _bit(reps, i, n_spins) ^ _bit(reps, (i + 1) % n_spins, n_spins)
        diag += 2.0 * wall - 1.0
    rows, cols, vals = [reps], [reps], [diag]
    # -h X_q maps the pair of r to the pair of r ^ (bit q), whose representative clears qubit 0 if set.
    if h != 0:
        for q in range(n_spins):
            flipped = reps ^ (1 << (n_spins - 1 - q))
            target = np.where(_bit(flipped, 0, n_spins) == 1, flipped ^ all_ones, flipped)
            rows.append(target)
            cols.append(reps)
            vals.append(np.full(dim, -h))
    return scipy.sparse.coo_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(dim, dim)
    ).tocsr()  # duplicate entries (L = 2: both bonds, both flips reach the same pair) are summed


def ground_state(n_spins: int, h: float) -> tuple[float, np.ndarray]:
    """Ground energy and P = +1 ground state (2**n_spins complex128, unit norm, canonical phase) of the ring.

    ``n_spins`` from 2 to 20; ``h`` finite and >= 0. See the module docstring for the sector and phase.
    """
    n_spins = check_spins(n_spins, "transverse-field Ising chain", MIN_SPINS, MAX_SPINS)
    h = check_field(h, "transverse-field Ising chain")
    matrix = sector_hamiltonian(n_spins, h)
    # The sector ground state has positive amplitudes (Perron-Frobenius), so a flat start overlaps it well.
    energy, vec = lowest_eigenpair(matrix, v0=np.ones(matrix.shape[0]))
    dim = matrix.shape[0]
    full = np.zeros(2**n_spins, dtype=np.complex128)
    full[:dim] = vec / math.sqrt(2)  # representatives r (qubit 0 clear) ...
    full[dim:] = full[:dim][::-1]  # ... and their complements r-bar = 2**L - 1 - r
    return energy, canonical_phase(full)


def order_parameter(state, n_spins: int) -> float:
    """The squared magnetisation <(sum_i Z_i / L)**2>: 1 at h = 0, tending to 1/L as h -> infinity."""
    n_spins = check_spins(n_spins, "transverse-field Ising chain", MIN_SPINS, MAX_SPINS)
    psi = check_state(state, n_spins)
    basis = np.arange(2**n_spins, dtype=np.int64)
    magnetisation = np.zeros(2**n_spins)
    for q in range(n_spins):
        magnetisation += 1.0 - 2.0 * _bit(basis, q, n_spins)
    return float(np.sum(np.abs(psi) ** 2 * (magnetisation / n_spins) ** 2))


def free_fermion_energy(n_spins: int, h: float) -> float:
    """Exact ground energy of the P = +1 sector from the Jordan-Wigner free-fermion solution.

    -sum_{n=0}^{L-1} sqrt(1 + h**2 - 2 h cos k_n), k_n = 2 pi (n + 1/2) / L (antiperiodic fermions);
    valid for every L >= 2, odd or even (checked against exact diagonalisation). Any ``n_spins`` >= 2.
    """
    n_spins = check_spins(n_spins, "transverse-field Ising chain", MIN_SPINS, 10**9)
    h = check_field(h, "transverse-field Ising chain")
    k = 2.0 * np.pi * (np.arange(n_spins) + 0.5) / n_spins
    return float(-np.sum(np.sqrt(1.0 + h * h - 2.0 * h * np.cos(k))))
