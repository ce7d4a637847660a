"""Quantum phase classification: ground states of spin chains on a parameter grid, as datasets.

A *phase* is a family of periodic spin-chain Hamiltonians H(g) with a transition
at g = g_c (``Phase``), exactly diagonalised (``ground_states``, cached on disk
like every recomputable thing: ``qrobust.cache``). The classification task is
the paper's (arXiv:2508.02422, its XXZ experiment) for every family: class 0 below
the transition, class 1 above it, a window around g_c left out, and within each
class, sorted by g, training and validation points alternating (interleaved).

Families (each with an order parameter that tells its phases apart):
  xxz      H = sum X X + Y Y + Delta Z Z; gapless XY (class 0) | Neel (class 1) at Delta = 1;
           order parameter: squared staggered magnetisation.     (``qrobust.data.xxz``)
  tfim     H = -sum Z Z - h sum X; ferromagnet (class 0) | paramagnet (class 1) at h = 1;
           order parameter: squared magnetisation.                (``qrobust.data.tfim``)
  cluster  H = -sum Z X Z - h sum X; cluster SPT (class 0) | trivial paramagnet (class 1) at h = 1;
           order parameter: the string order of the cluster state. (``qrobust.data.cluster``)

Grids (``Grid``; ``GRIDS`` names two):
  "paper"  the default: the grid of the paper's published code, as far as its index ranges tell
           (0.01-ish spacing, 41 training and 42 validation states per class, validation points at both
           ends of each class, about 0.09 left out around the transition). The published Delta values
           themselves are not available, so qrobust lays 174 points uniformly on [0.09, 1.91] (spacing
           0.0105) and leaves out |g - 1| <= 0.045 (8 points): class 0 on [0.09, 0.953], class 1 on
           [1.047, 1.91], 83 states each, which matches those counts and ranges to about 0.02.
  "wide"   qrobust's grid before: 201 points on [0, 2] (spacing 0.01), |g - 1| <= 0.2 left out,
           40 + 40 per class, training points first.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, replace
from importlib import import_module
from typing import NamedTuple

import numpy as np

import qrobust.cache
from qrobust.data.dataset import Dataset
from qrobust.data.gauge import DEFAULT_GAUGE, apply_gauge, check_gauge
from qrobust.errors import ConfigError

_CACHE_VERSION = 2


class Phase(NamedTuple):
    """A family of spin chains with a transition. ``module`` provides ``ground_state(n_spins, g) ->
    (energy, state)`` and ``order_parameter(state, n_spins) -> float``."""

    name: str
    module: str
    parameter: str  # the tuned coupling's name
    critical: float  # g_c
    classes: tuple[str, str]  # the phase below and above g_c (classes 0 and 1)
    order_name: str
    min_spins: int
    max_spins: int

    def _impl(self):
        return import_module(self.module)

    def ground_state(self, n_spins: int, g: float) -> tuple[float, np.ndarray]:
        return self._impl().ground_state(n_spins, g)

    def order_parameter(self, state: np.ndarray, n_spins: int) -> float:
        return float(self._impl().order_parameter(state, n_spins))

    def check_spins(self, n_spins: int) -> None:
        if int(n_spins) != n_spins or not self.min_spins <= n_spins <= self.max_spins or n_spins % 2:
            raise ConfigError(f"the {self.name} chain needs an even number of spins from {self.min_spins} to "
                              f"{self.max_spins} (exact diagonalisation of ~170 ground states of 2**L amplitudes "
                              f"each), got {n_spins}")


PHASES: dict[str, Phase] = {
    "xxz": Phase("xxz", "qrobust.data.xxz", "delta", 1.0, ("gapless XY", "Neel"),
                 "squared staggered magnetisation", 4, 20),
    "tfim": Phase("tfim", "qrobust.data.tfim", "h", 1.0, ("ferromagnet", "paramagnet"),
                  "squared magnetisation", 4, 16),
    "cluster": Phase("cluster", "qrobust.data.cluster", "h", 1.0, ("cluster SPT", "paramagnet"),
                     "string order", 4, 16),
}


def phase(name: str) -> Phase:
    if name not in PHASES:
        raise ConfigError(f"unknown quantum phase {name!r}; choose from {', '.join(PHASES)}")
    return PHASES[name]


MAX_POINTS = 2_000  # points of a coupling grid (the named grids: 174 and 201), one exact diagonalisation each
MAX_AMPLITUDES = 2**28  # amplitudes of a grid's ground states in all (4 GiB of complex128: 256 states of 20 spins)


@dataclass(frozen=True)
class Grid:
    """Points of the coupling: ``n_points`` uniform on [lo, hi]; those with |g - g_c| <= ``window`` are left
    out; within each class, sorted by g, positions 0, 2, 4, ... validate and 1, 3, ... train when
    ``val_first``, the other way round otherwise."""

    lo: float
    hi: float
    n_points: int
    window: float
    val_first: bool = True

    def check(self, critical: float, n_spins: int | None = None) -> "Grid":
        """The grid, checked before any point is made: finite, at most ``MAX_POINTS`` points (exact
        diagonalisation computes a ground state per point) and, for chains of ``n_spins``, at most
        ``MAX_AMPLITUDES`` amplitudes of states in all; both sides of the transition ``critical`` populated."""
        if not all(math.isfinite(v) for v in (self.lo, self.hi, self.window)):
            raise ConfigError(f"the grid's range and window must be finite, got {self}")
        if int(self.n_points) != self.n_points or self.n_points < 4:
            raise ConfigError(f"the grid needs at least 4 points, got {self.n_points}")
        if self.n_points > MAX_POINTS:
            raise ConfigError(f"--n-points {self.n_points:,} is more than {MAX_POINTS:,}, the most a grid takes: "
                              "exact diagonalisation computes one ground state per point")
        if n_spins is not None and self.n_points * 2**int(n_spins) > MAX_AMPLITUDES:
            raise ConfigError(f"--n-points {self.n_points:,} ground states of {n_spins} spins (2**{n_spins} "
                              f"amplitudes each) are more than {MAX_AMPLITUDES // 2**int(n_spins):,} states, "
                              f"{MAX_AMPLITUDES * 16 // 2**30} GiB of amplitudes: ask for fewer points or spins")
        if not self.lo < critical < self.hi:
            raise ConfigError(f"the grid's range [{self.lo}, {self.hi}] must straddle the transition at {critical}")
        if self.window < 0:
            raise ConfigError(f"the window left out around the transition must be >= 0, got {self.window}")
        values, labels = self.points(critical)
        for cls in (0, 1):
            if (labels == cls).sum() < 4:
                raise ConfigError(f"the grid {self.lo}..{self.hi} ({self.n_points} points, window {self.window}) "
                                  f"leaves {(labels == cls).sum()} points on side {cls} of the transition; "
                                  "at least 4 are needed (2 to train, 2 to validate)")
        return self

    def points(self, critical: float) -> tuple[np.ndarray, np.ndarray]:
        """The kept couplings (sorted) and their classes (1 above the transition)."""
        grid = np.linspace(self.lo, self.hi, int(self.n_points))
        grid = grid[np.abs(grid - critical) > self.window + 1e-9]
        return grid, (grid > critical).astype(np.int32)

    def split(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Training and validation indices into ``points``: alternate within each class."""
        train, val = [], []
        for cls in (0, 1):
            idx = np.flatnonzero(labels == cls)
            first, second = idx[0::2], idx[1::2]
            val.extend(first if self.val_first else second)
            train.extend(second if self.val_first else first)
        return np.array(train), np.array(val)


GRIDS = {"paper": Grid(0.09, 1.91, 174, 0.045, val_first=True),
         "wide": Grid(0.0, 2.0, 201, 0.2, val_first=False)}
DEFAULT_GRID = "paper"


def resolve_grid(grid: Grid | str | dict | None) -> Grid:
    """A Grid from a name in ``GRIDS`` (None: the default), a Grid, or a Grid's fields (config.json)."""
    if grid is None:
        grid = DEFAULT_GRID
    if isinstance(grid, str):
        if grid not in GRIDS:
            raise ConfigError(f"unknown grid {grid!r}; choose from {', '.join(GRIDS)}")
        return GRIDS[grid]
    if isinstance(grid, dict):
        return Grid(**grid)
    return grid


PLACEMENTS = ("first", "second")  # validation takes the first / the second state of each alternating pair


def with_overrides(grid: Grid | str | None, *, value_range=None, n_points=None, window=None,
                   placement=None) -> Grid:
    """``grid`` with any of its range (lo, hi), number of points, window and validation placement replaced
    (``placement``: "first", validation takes the first state of each alternating pair of a class sorted by the
    coupling, so both ends of a class of odd size, as on the paper's grid; "second", as on the wide grid)."""
    base = resolve_grid(grid)
    changes = {}
    if value_range is not None:
        if len(value_range) != 2:
            raise ConfigError(f"a grid range is two numbers LO,HI, got {value_range}")
        changes.update(lo=float(value_range[0]), hi=float(value_range[1]))
    if n_points is not None:
        changes["n_points"] = n_points
    if window is not None:
        changes["window"] = float(window)
    if placement is not None:
        if placement not in PLACEMENTS:
            raise ConfigError(f"--val-placement takes {' or '.join(PLACEMENTS)}, got {placement!r}")
        changes["val_first"] = placement == "first"
    return replace(base, **changes)


def ground_states(name: str, n_spins: int, values, *, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Ground energies (K,) and states (K, 2**n_spins) of phase ``name`` at every coupling in ``values``,
    cached in ``qrobust.cache.cache_dir()/phases/NAME`` under a key that hashes every parameter (family,
    number of spins, the exact values, the cache format), with the digest of its content
    (``qrobust.cache.store_arrays``); read only if this user made it, and its content is what was written
    (``qrobust.cache.load_arrays``): else recomputed, with one warning where it was damaged or rewritten."""
    family = phase(name)
    values = np.asarray(values, dtype=np.float64)
    key = hashlib.sha256(json.dumps({"v": _CACHE_VERSION, "phase": name, "L": n_spins}).encode()
                         + values.tobytes()).hexdigest()[:20]
    path = qrobust.cache.cache_dir() / "phases" / name / f"L{n_spins}-{key}.npz"
    what = f"{name} ground states of {n_spins} spins"
    if use_cache:
        cached = qrobust.cache.load_arrays(path, ("energies", "states", "values"), what=what)
        if (cached is not None and cached["states"].shape == (len(values), 2**n_spins)
                and np.array_equal(cached["values"], values)):
            return cached["energies"], cached["states"]
    results = [family.ground_state(n_spins, float(g)) for g in values]
    energies = np.array([e for e, _ in results])
    states = np.stack([s for _, s in results]) if results else np.zeros((0, 2**n_spins), np.complex128)
    if use_cache:  # with its digest; an unwritable cache only costs the diagonalisation next time (one warning)
        qrobust.cache.store_arrays(path, dict(energies=energies, states=states, values=values), what=what)
    return energies, states


def phase_dataset(name: str = "xxz", n_spins: int = 12, grid: Grid | str | None = None, *,
                  gauge: str = DEFAULT_GAUGE, gauge_seed: int = 0, use_cache: bool = True) -> Dataset:
    """The phase-classification dataset of ``name`` on ``grid`` (see the module docstring), its states in
    ``gauge`` (``qrobust.data.gauge``: drawn with ``gauge_seed`` over the whole grid before the split).

    ``meta`` records the family, the grid, the gauge, and per state (under "per_state", left out of
    config.json) the couplings, energies and order parameters of the training and validation points."""
    family = phase(name)
    family.check_spins(n_spins)
    check_gauge(gauge, gauge_seed)
    grid = resolve_grid(grid).check(family.critical)
    values, labels = grid.points(family.critical)
    energies, states = ground_states(name, n_spins, values, use_cache=use_cache)
    order = np.array([family.order_parameter(s, n_spins) for s in states])
    states = apply_gauge(states, gauge, gauge_seed)
    train, val = grid.split(labels)
    per_state = {f"{what}_{part}": arr[idx].round(8).tolist()
                 for part, idx in (("train", train), ("val", val))
                 for what, arr in ((family.parameter, values), ("energy", energies), ("order", order))}
    return Dataset(
        name=name, x_train=states[train], y_train=labels[train], x_val=states[val], y_val=labels[val],
        n_qubits=n_spins,
        meta=dict(source="exact diagonalisation", phase=name, parameter=family.parameter,
                  critical=family.critical, classes=list(family.classes), order_parameter=family.order_name,
                  n_spins=n_spins, grid=asdict(grid), gauge=gauge, gauge_seed=gauge_seed, per_state=per_state),
    )

