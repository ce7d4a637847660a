"""Ground states of the periodic XXZ chain by exact diagonalisation, cached on disk.

H = sum_i (X_i X_{i+1} + Y_i Y_{i+1} + Delta Z_i Z_{i+1}), i + 1 taken mod L
(Pauli units, periodic boundary). For even L and Delta > -1 the ground state lies
in the zero-magnetisation sector, which is diagonalised on its own
(C(L, L/2) states; 924 for L = 12) and embedded into the 2**L basis.
Qubit 0 is the most significant bit of a basis index (TensorCircuit's order).

The classification task (grid, split, gauge) is ``qrobust.data.phases``'s, shared by every
quantum phase.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from qrobust.data.dataset import Dataset
from qrobust.data.gauge import DEFAULT_GAUGE
from qrobust.errors import ConfigError

_DENSE_LIMIT = 3000  # sector dimension up to which dense eigh is used


def _sector_basis(n_spins: int) -> np.ndarray:
    """Basis indices (sorted) with exactly n_spins/2 bits set."""
    half = n_spins // 2
    states = [sum(1 << (n_spins - 1 - q) for q in ones) for ones in combinations(range(n_spins), half)]
    return np.array(sorted(states), dtype=np.int64)


def sector_hamiltonian(n_spins: int, delta: float) -> scipy.sparse.csr_matrix:
    """The XXZ Hamiltonian restricted to zero magnetisation, as a sparse matrix in ``_sector_basis`` order."""
    basis = _sector_basis(n_spins)
    position = {int(s): i for i, s in enumerate(basis)}
    rows, cols, vals = [], [], []
    for i, s in enumerate(basis):
        diag = 0.0
        for q in range(n_spins):
            p = (q + 1) % n_spins
            bq = (s >> (n_spins - 1 - q)) & 1
            bp = (s >> (n_spins - 1 - p)) & 1
            if bq == bp:
                diag += delta
            else:
                diag -= delta
                # X X + Y Y = 2 (S+ S- + S- S+): flips an antiparallel pair with amplitude 2
                flipped = int(s ^ ((1 << (n_spins - 1 - q)) | (1 << (n_spins - 1 - p))))
                rows.append(position[flipped])
                cols.append(i)
                vals.append(2.0)
        rows.append(i)
        cols.append(i)
        vals.append(diag)
    n = len(basis)
    return scipy.sparse.csr_matrix((vals, (rows, cols)), shape=(n, n))


def _fix_sign(v: np.ndarray) -> np.ndarray:
    """Fix the arbitrary sign of a real eigenvector: its largest-magnitude amplitude is positive."""
    k = int(np.argmax(np.abs(v)))
    return v if v[k] >= 0 else -v


def ground_state(n_spins: int, delta: float) -> tuple[float, np.ndarray]:
    """Ground energy and ground state (2**n_spins complex128, unit norm) of the XXZ ring."""
    if n_spins < 2 or n_spins % 2:
        raise ConfigError(f"the XXZ chain needs an even number of spins >= 2, got {n_spins}")
    if delta <= -1:
        raise ConfigError(f"Delta must exceed -1 (the ground state leaves the zero-magnetisation sector), got {delta}")
    h = sector_hamiltonian(n_spins, delta)
    if h.shape[0] <= _DENSE_LIMIT:
        evals, evecs = scipy.linalg.eigh(h.toarray(), subset_by_index=[0, 0])
        energy, vec = float(evals[0]), evecs[:, 0]
    else:
        evals, evecs = scipy.sparse.linalg.eigsh(h, k=1, which="SA", tol=1e-12)
        energy, vec = float(evals[0]), evecs[:, 0]
    full = np.zeros(2**n_spins, dtype=np.complex128)
    full[_sector_basis(n_spins)] = _fix_sign(vec / np.linalg.norm(vec))
    return energy, full


def order_parameter(state: np.ndarray, n_spins: int) -> float:
    """Squared staggered magnetisation <(sum_i (-1)^i Z_i / L)^2>: 1 in the Neel limit, small on the XY side."""
    bits = (np.arange(2**n_spins)[:, None] >> (n_spins - 1 - np.arange(n_spins))) & 1
    staggered = ((1 - 2 * bits) * (-1) ** np.arange(n_spins)).sum(axis=1) / n_spins
    return float(np.sum(np.abs(state) ** 2 * staggered**2))


def ground_states(n_spins: int, deltas, *, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Ground energies (K,) and states (K, 2**n_spins) for every Delta, cached on disk
    (``qrobust.data.phases.ground_states``)."""
    from qrobust.data.phases import ground_states as cached

    return cached("xxz", n_spins, deltas, use_cache=use_cache)


def xxz_dataset(n_spins: int = 12, grid=None, *, gauge: str = DEFAULT_GAUGE, gauge_seed: int = 0,
                use_cache: bool = True) -> Dataset:
    """The XXZ phase-classification dataset on ``grid`` (``qrobust.data.phases``: "paper", the default, or
    "wide", or a Grid), its states in ``gauge`` (``qrobust.data.gauge``)."""
    from qrobust.data.phases import phase_dataset

    return phase_dataset("xxz", n_spins, grid, gauge=gauge, gauge_seed=gauge_seed, use_cache=use_cache)
