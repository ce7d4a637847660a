"""The global phase of quantum data: a choice physics leaves free, made an explicit, recorded option.

A ground state is defined up to a global phase e^{i phi}: no observable, and so
nothing a QNN computes from the state, depends on it. An eigensolver returns
each state with an arbitrary one. A classical model fed the amplitudes (the
MLP gets their real and imaginary parts) does see it: with one canonical
phase per state, neighbouring ground states are nearly parallel vectors; with
arbitrary phases they are not, and whether the MLP memorises flipped labels
depends on that choice (measured in the README's "Gauge" section).

Gauges (applied to every state of a dataset, training and validation alike, before the split):
  "fixed"  canonical: the largest-magnitude amplitude real and positive (the states as computed).
  "sign"   a random sign +-1 per state.
  "phase"  a random global phase e^{i phi}, phi uniform in [0, 2 pi), per state: what an eigensolver of
           a complex Hamiltonian hands its user, and the paper's data ("4,096 complex amplitudes").
The draw is keyed by ``gauge_seed`` (numpy's Generator seeded by [gauge_seed, GAUGE_STREAM]) and the
state's index on the dataset's grid, so it does not depend on the split, and it is recorded in
config.json. One draw per dataset: every replica of a run sees the same states, as with the paper's
one dataset; another ``gauge_seed`` is another draw.
"""

from __future__ import annotations

import numpy as np

from qrobust.errors import ConfigError

GAUGES = ("fixed", "sign", "phase")
DEFAULT_GAUGE = "phase"  # the paper's data (complex amplitudes from an eigensolver); see the module docstring
GAUGE_STREAM = 0x9A06E  # a fixed second entropy word: the gauge's draws are their own stream


def check_gauge(gauge: str, gauge_seed: int) -> None:
    if gauge not in GAUGES:
        raise ConfigError(f"unknown gauge {gauge!r}; choose from {', '.join(GAUGES)}")
    if int(gauge_seed) != gauge_seed or gauge_seed < 0:
        raise ConfigError(f"the gauge seed must be a non-negative integer, got {gauge_seed}")


def gauge_factors(n_states: int, gauge: str, gauge_seed: int) -> np.ndarray:
    """(n_states,) unit complex factors e^{i phi_k} of ``gauge`` (ones for "fixed")."""
    check_gauge(gauge, gauge_seed)
    if gauge == "fixed":
        return np.ones(n_states, np.complex128)
    rng = np.random.default_rng([int(gauge_seed), GAUGE_STREAM])
    if gauge == "sign":
        return rng.choice([-1.0, 1.0], size=n_states).astype(np.complex128)
    return np.exp(1j * rng.uniform(0.0, 2 * np.pi, size=n_states))


def apply_gauge(states: np.ndarray, gauge: str, gauge_seed: int) -> np.ndarray:
    """``states`` (K, D), each multiplied by its factor (complex128)."""
    return states * gauge_factors(len(states), gauge, gauge_seed)[:, None]
