"""Layer 2: corruption of training data, as the paper (Chen & Zhang, arXiv:2508.02422) defines it.

Pure functions ``(key, x, y, n_corrupt) -> Corrupted`` that JAX can vmap over a
replica axis (the count may differ per replica: it is data, not a shape). The
corrupted samples are drawn half from each class. For a fixed key the chosen
samples are nested: the set at a smaller count is a subset of the set at a
larger one, so a sweep over alpha with one seed corrupts growing sets.

Counts (host side, from alpha and the number of training samples N):
- label flipping: floor(alpha N) rounded down to even;
- feature randomisation: floor(alpha N) rounded up to even.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.errors import ConfigError

CORRUPTIONS = ("flip", "features")


class Corrupted(NamedTuple):
    """A corrupted training set.

    x: (N, D) inputs (noise in the rows that were randomised).
    y: (N,) labels trained on (flipped in the rows that were flipped).
    mask: (N,) bool, True where the sample was corrupted (the forget set).
    """

    x: jax.Array
    y: jax.Array
    mask: jax.Array


def check_alpha(alpha: float) -> float:
    """Return alpha as float, or raise ConfigError if it is not a number in [0, 1]."""
    try:
        value = float(alpha)
    except (TypeError, ValueError):
        raise ConfigError(f"alpha must be a number in [0, 1], got {alpha!r}") from None
    if not (0.0 <= value <= 1.0) or math.isnan(value):
        raise ConfigError(f"alpha must lie in [0, 1], got {alpha}")
    return value


def corruption_count(kind: str, alpha: float, n_samples: int) -> int:
    """How many of ``n_samples`` training samples ``kind`` corrupts at ratio ``alpha``."""
    alpha = check_alpha(alpha)
    base = math.floor(alpha * n_samples + 1e-9)  # 0.3 * 10 must give 3, not 2
    if kind == "flip":
        return base - base % 2
    if kind == "features":
        return min(base + base % 2, n_samples - n_samples % 2)
    raise ConfigError(f"unknown corruption {kind!r}; choose from {', '.join(CORRUPTIONS)}")


def check_feasible(kind: str, alpha: float, labels: np.ndarray) -> int:
    """The count for ``kind`` at ``alpha``, after checking each class can give half of it."""
    n = corruption_count(kind, alpha, len(labels))
    per_class = n // 2
    for cls in (0, 1):
        have = int((np.asarray(labels) == cls).sum())
        if per_class > have:
            raise ConfigError(
                f"{kind} at alpha={alpha} corrupts {n} samples, {per_class} per class, "
                f"but class {cls} has only {have} training samples"
            )
    return n


def balanced_selection(key: jax.Array, y: jax.Array, n_corrupt: jax.Array) -> jax.Array:
    """(N,) bool mask choosing n_corrupt // 2 random samples of each class (y in {0, 1})."""
    u = jax.random.uniform(key, y.shape)
    order = jnp.argsort(u + y.astype(u.dtype))  # all of class 0 (random order) then class 1
    rank = jnp.empty_like(order).at[order].set(jnp.arange(y.shape[0]))
    n_class0 = jnp.sum(y == 0)
    rank_in_class = rank - jnp.where(y == 1, n_class0, 0)
    return rank_in_class < n_corrupt // 2


def flip_labels(key: jax.Array, x: jax.Array, y: jax.Array, n_corrupt: jax.Array) -> Corrupted:
    """Invert the labels of n_corrupt samples, half from each class."""
    mask = balanced_selection(key, y, n_corrupt)
    return Corrupted(x=x, y=jnp.where(mask, 1 - y, y), mask=mask)


def randomize_features(key: jax.Array, x: jax.Array, y: jax.Array, n_corrupt: jax.Array) -> Corrupted:
    """Replace the inputs of n_corrupt samples (half per class) by unit-norm Gaussian noise.

    The noise is complex (independent real and imaginary parts) when x is complex.
    Labels are kept.
    """
    k_sel, k_re, k_im = jax.random.split(key, 3)
    mask = balanced_selection(k_sel, y, n_corrupt)
    real_dtype = jnp.real(x).dtype
    noise = jax.random.normal(k_re, x.shape, real_dtype)
    if jnp.iscomplexobj(x):
        noise = noise + 1j * jax.random.normal(k_im, x.shape, real_dtype)
    noise = noise / jnp.linalg.norm(noise, axis=-1, keepdims=True)
    return Corrupted(x=jnp.where(mask[:, None], noise.astype(x.dtype), x), y=y, mask=mask)


def corruption_fn(kind: str) -> Callable[..., Corrupted]:
    """The corruption function named ``kind`` ("flip" or "features")."""
    table = {"flip": flip_labels, "features": randomize_features}
    if kind not in table:
        raise ConfigError(f"unknown corruption {kind!r}; choose from {', '.join(CORRUPTIONS)}")
    return table[kind]


def _as_tuple(fn):
    return lambda key, x, y, n: tuple(fn(key, x, y, n))


# built once: a switch over freshly made closures would compile anew at every call
_BRANCHES = tuple(_as_tuple(corruption_fn(c)) for c in CORRUPTIONS)


def corrupt(kind_index: jax.Array, key: jax.Array, x: jax.Array, y: jax.Array, n_corrupt: jax.Array) -> Corrupted:
    """Apply corruption number ``kind_index`` (index into CORRUPTIONS); vmappable over all arguments."""
    return Corrupted(*jax.lax.switch(kind_index, _BRANCHES, key, x, y, n_corrupt))


@jax.jit
def corrupt_replicas(kind_index: jax.Array, key: jax.Array, x: jax.Array, y: jax.Array,
                     n_corrupt: jax.Array) -> Corrupted:
    """``corrupt`` for R replicas sharing one clean set: kind_index (R,), key (R, 2), n_corrupt (R,);
    x (N, D) and y (N,) shared. Returns a Corrupted of (R, N, ...) arrays."""
    return jax.vmap(corrupt, in_axes=(0, 0, None, None, 0))(kind_index, key, x, y, n_corrupt)
