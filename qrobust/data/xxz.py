"""Ground states of the periodic XXZ chain by exact diagonalisation, cached on disk.

H = sum_i (X_i X_{i+1} + Y_i Y_{i+1} + Delta Z_i Z_{i+1}), i + 1 taken mod L
(Pauli units, periodic boundary). For even L and Delta > -1 the ground state lies
in the zero-magnetisation sector, which is diagonalised on its own
(C(L, L/2) states; 924 for L = 12) and embedded into the 2**L basis.
Qubit 0 is the most significant bit of a basis index (TensorCircuit's order).

The classification task (the paper, arXiv:2508.02422): class 0 on the gapless side (Delta < 1),
class 1 on the Neel side (Delta > 1); grid points with |Delta - 1| <= gap are
left out; within each class, sorted by Delta, even positions train and odd
positions validate (interleaved). Defaults: Delta in linspace(0, 2, 201), gap
0.2, which gives 80 states per class, 40 training + 40 validation. The global
phase of each state is the dataset's ``gauge`` (``qrobust.data.gauge``; default
"phase", a random phase per state, as an eigensolver hands them out).
"""

from __future__ import annotations

import hashlib
import json
import os
from itertools import combinations
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

import qrobust.cache
from qrobust.data.dataset import Dataset
from qrobust.data.gauge import DEFAULT_GAUGE, apply_gauge, check_gauge
from qrobust.errors import ConfigError

_CACHE_VERSION = 1
_DENSE_LIMIT = 3000  # sector dimension up to which dense eigh is used


MIN_SPINS, MAX_SPINS = 4, 20


def cache_dir() -> Path:
    """Where cached ground states live: ``qrobust.cache.cache_dir()`` ($QROBUST_CACHE; see there)."""
    return qrobust.cache.cache_dir()


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


def ground_states(n_spins: int, deltas, *, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Ground energies (K,) and states (K, 2**n_spins) for every Delta, cached on disk.

    The cache key hashes every parameter (number of spins, the exact Delta values,
    the cache format version); files are written atomically.
    """
    deltas = np.asarray(deltas, dtype=np.float64)
    key = hashlib.sha256(
        json.dumps({"v": _CACHE_VERSION, "L": n_spins}).encode() + deltas.tobytes()
    ).hexdigest()[:20]
    path = cache_dir() / "xxz" / f"L{n_spins}-{key}.npz"
    if use_cache and path.exists() and qrobust.cache.untrusted(path) is None:  # else another user could have made it
        try:
            with np.load(path) as z:
                return z["energies"], z["states"]
        except Exception:
            pass  # a damaged cache file is recomputed
    results = [ground_state(n_spins, float(d)) for d in deltas]
    energies = np.array([e for e, _ in results])
    states = np.stack([s for _, s in results])
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}.npz")
        np.savez(tmp, energies=energies, states=states, deltas=deltas)
        os.replace(tmp, path)
    return energies, states


def xxz_dataset(
    n_spins: int = 12,
    delta_min: float = 0.0,
    delta_max: float = 2.0,
    n_points: int = 201,
    gap: float = 0.2,
    *,
    gauge: str = DEFAULT_GAUGE,
    gauge_seed: int = 0,
    use_cache: bool = True,
) -> Dataset:
    """The XXZ phase-classification dataset (see module docstring for the grid and split), its states in
    ``gauge`` (``qrobust.data.gauge``: "fixed", "sign" or "phase", drawn with ``gauge_seed`` over the whole
    grid before the split)."""
    check_gauge(gauge, gauge_seed)
    if not MIN_SPINS <= n_spins <= MAX_SPINS or n_spins % 2:
        raise ConfigError(f"the XXZ chain needs an even number of spins from {MIN_SPINS} to {MAX_SPINS} (exact "
                          f"diagonalisation of ~200 ground states; 2**L amplitudes per state), got {n_spins}")
    if n_points < 4 or not delta_min < 1.0 < delta_max:
        raise ConfigError(f"the Delta grid must straddle 1 with at least 4 points, got "
                          f"[{delta_min}, {delta_max}] with {n_points} points")
    grid = np.linspace(delta_min, delta_max, n_points)
    keep = np.abs(grid - 1.0) > gap + 1e-9
    grid = grid[keep]
    labels = (grid > 1.0).astype(np.int32)
    if labels.sum() < 2 or (1 - labels).sum() < 2:
        raise ConfigError("the Delta grid leaves fewer than 2 points on a side of the transition")
    _, states = ground_states(n_spins, grid, use_cache=use_cache)
    states = apply_gauge(states, gauge, gauge_seed)
    train_idx, val_idx = [], []
    for cls in (0, 1):
        idx = np.flatnonzero(labels == cls)  # grid is sorted, so idx is sorted by Delta
        train_idx.extend(idx[0::2])
        val_idx.extend(idx[1::2])
    train_idx, val_idx = np.array(train_idx), np.array(val_idx)
    return Dataset(
        name="xxz",
        x_train=states[train_idx],
        y_train=labels[train_idx],
        x_val=states[val_idx],
        y_val=labels[val_idx],
        n_qubits=n_spins,
        meta=dict(source="exact diagonalisation", n_spins=n_spins, delta_min=delta_min,
                  delta_max=delta_max, n_points=n_points, gap=gap, gauge=gauge, gauge_seed=gauge_seed,
                  deltas_train=grid[train_idx].round(6).tolist(), deltas_val=grid[val_idx].round(6).tolist()),
    )
