"""Corruption of training data: the paper's (Chen & Zhang, arXiv:2508.02422) and aimed poisoners.

Pure functions ``(key, x, y, n_corrupt, scores) -> Corrupted`` that JAX can vmap over
a replica axis (the count may differ per replica: it is data, not a shape).
For a fixed key the chosen samples are nested: the set at a smaller count is a
subset of the set at a larger one, so a sweep over alpha with one seed corrupts
growing sets. The mask of the corrupted samples is returned as data, so
detection, unlearning and the analyses work the same for every corruption.

Corruptions:
- "flip" (the paper's label flipping): random samples, half from each class, labels inverted;
- "features" (the paper's feature randomisation): random samples, half from each class, inputs
  replaced by unit-norm Gaussian noise;
- "class-targeted": labels inverted on random samples of class 0 only (MNIST: ones labelled nine);
- "boundary": labels inverted on the samples, half per class, a clean reference model of the same family
  is least sure about (its probability closest to 1/2; ``scores`` = -|p - 1/2|, computed by the study:
  ``qrobust.experiments.poisoners``);
- "quid": labels inverted on the samples, half per class, whose encoded states lie closest to the other
  class (``quid_scores``: the encoder-state similarity, ESS, of QUID, Kundu & Ghosh, arXiv:2411.14412: the
  fidelity of a sample's state to each class's mean density matrix). QUID gives a poisoned sample the
  label of the class farthest from it in that measure; with two classes and flips only, qrobust's binary
  form spends the budget on the samples nearest the other class, as the issue that asked for it defines.
- "gradient", "influence", "transfer" (the adaptive attacks of ``qrobust.attacks``): labels inverted on the
  samples, half per class, an attacker who knows the model ranks first: by the derivative of the clean
  validation loss through unrolled training, by greedy influence at the trained model, or by either computed
  on a surrogate model and applied to another (``scores`` computed by the attack study:
  ``qrobust.experiments.adversary``);
- "random-labels": the labels of random samples, half per class, replaced by fair coin flips (about half
  keep their label; the mask marks every replaced sample): at alpha = 1 the classic test of whether a
  model can memorise noise (Zhang et al., arXiv:1611.03530; for QNNs Gil-Fuster et al., arXiv:2306.13461).
The aimed flips rank by ``scores`` (highest first; ties broken by the key), so the random part is only the
tie-break.

Counts (host side, from alpha and the number of training samples N):
- every label flip, and random labels: floor(alpha N) rounded down to even (equal counts at equal alpha);
- feature randomisation: floor(alpha N) rounded up to even.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.errors import ConfigError

PAPER_CORRUPTIONS = ("flip", "features")  # the paper's two: a sweep's default


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
    if poisoner(kind).rounding == "down":
        return base - base % 2
    return min(base + base % 2, n_samples - n_samples % 2)


def check_feasible(kind: str, alpha: float, labels: np.ndarray) -> int:
    """The count for ``kind`` at ``alpha``, after checking each class can give half of it."""
    n = corruption_count(kind, alpha, len(labels))
    if poisoner(kind).classes == "class 0":
        have = int((np.asarray(labels) == 0).sum())
        if n > have:
            raise ConfigError(f"class-targeted flips at alpha={alpha} flip {n} samples of class 0, which has only "
                              f"{have} training samples")
        return n
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


def ranked_selection(key: jax.Array, y: jax.Array, n_corrupt: jax.Array, scores: jax.Array) -> jax.Array:
    """(N,) bool mask choosing, in each class, the n_corrupt // 2 samples of highest ``scores`` (ties random)."""
    u = jax.random.uniform(key, y.shape)
    order = jnp.lexsort((u, -scores, y))  # class 0 then class 1, each by decreasing score
    rank = jnp.empty_like(order).at[order].set(jnp.arange(y.shape[0]))
    rank_in_class = rank - jnp.where(y == 1, jnp.sum(y == 0), 0)
    return rank_in_class < n_corrupt // 2


def _flipped(x, y, mask) -> Corrupted:
    return Corrupted(x=x, y=jnp.where(mask, 1 - y, y), mask=mask)


def flip_labels(key: jax.Array, x: jax.Array, y: jax.Array, n_corrupt: jax.Array, scores=None) -> Corrupted:
    """Invert the labels of n_corrupt samples, half from each class (``scores`` unused)."""
    return _flipped(x, y, balanced_selection(key, y, n_corrupt))


def flip_class(key: jax.Array, x: jax.Array, y: jax.Array, n_corrupt: jax.Array, scores=None) -> Corrupted:
    """Invert the labels of n_corrupt random samples of class 0 (``scores`` unused)."""
    u = jnp.where(y == 0, jax.random.uniform(key, y.shape), 2.0)
    rank = jnp.empty(y.shape, jnp.int32).at[jnp.argsort(u)].set(jnp.arange(y.shape[0], dtype=jnp.int32))
    return _flipped(x, y, rank < n_corrupt)


def flip_ranked(key: jax.Array, x: jax.Array, y: jax.Array, n_corrupt: jax.Array, scores: jax.Array) -> Corrupted:
    """Invert the labels of the n_corrupt // 2 samples of each class with the highest ``scores`` (N,)."""
    return _flipped(x, y, ranked_selection(key, y, n_corrupt, scores))


def quid_scores(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) how much nearer each encoded state |x_i> lies to the other class than to its own: the mean fidelity
    <x_i| rho_other |x_i> minus <x_i| rho_own |x_i>, rho_c the mean density matrix of class c's training states
    (the sample itself left out of its own). Pure states: fidelities are |<x_i|x_j>|^2. Host side, once per
    dataset (the labels are the clean ones)."""
    x = np.asarray(x)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    y = np.asarray(y)
    overlap = np.abs(x.conj() @ x.T) ** 2
    np.fill_diagonal(overlap, 0.0)
    ones = np.stack([y == 0, y == 1]).astype(np.float64)  # (2, N)
    sums = overlap @ ones.T  # (N, 2): summed fidelity to each class
    sizes = ones.sum(axis=1)
    own = sums[np.arange(len(y)), y] / (sizes[y] - 1)
    other = sums[np.arange(len(y)), 1 - y] / sizes[1 - y]
    return other - own


def random_labels(key: jax.Array, x: jax.Array, y: jax.Array, n_corrupt: jax.Array, scores=None) -> Corrupted:
    """Replace the labels of n_corrupt samples (half per class) by fair coin flips; the mask marks them all."""
    k_sel, k_coin = jax.random.split(key)
    mask = balanced_selection(k_sel, y, n_corrupt)
    coins = jax.random.bernoulli(k_coin, 0.5, y.shape).astype(y.dtype)
    return Corrupted(x=x, y=jnp.where(mask, coins, y), mask=mask)


def randomize_features(key: jax.Array, x: jax.Array, y: jax.Array, n_corrupt: jax.Array, scores=None) -> Corrupted:
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


class Poisoner(NamedTuple):
    """An entry of the poisoner registry ``POISONERS``: its name, its function ``(key, x, y, n_corrupt, scores)
    -> Corrupted``, whether it flips labels (detection and the ascent methods need that), how its count rounds
    ("down" to even: label changes; "up" to even: feature randomisation), which samples it draws from ("balanced":
    half per class; "class 0"), and the scores it ranks by: None, "data" (``data_scores(x, y)`` of the clean
    training set) or "reference" (a clean reference model's, computed by the study:
    ``qrobust.experiments.poisoners``) or "attack" (an adaptive attack's priorities, computed by the attack
    study: ``qrobust.experiments.adversary``). A new poisoner is its function and one entry here."""

    name: str
    fn: Callable[..., Corrupted]
    label_flip: bool
    rounding: str = "down"
    classes: str = "balanced"
    scores: str | None = None
    data_scores: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


POISONERS: dict[str, Poisoner] = {p.name: p for p in (
    Poisoner("flip", flip_labels, True),
    Poisoner("features", randomize_features, False, rounding="up"),
    Poisoner("class-targeted", flip_class, True, classes="class 0"),
    Poisoner("boundary", flip_ranked, True, scores="reference"),
    Poisoner("quid", flip_ranked, True, scores="data", data_scores=quid_scores),
    Poisoner("random-labels", random_labels, False),
    Poisoner("gradient", flip_ranked, True, scores="attack"),
    Poisoner("influence", flip_ranked, True, scores="attack"),
    Poisoner("transfer", flip_ranked, True, scores="attack"),
)}
CORRUPTIONS = tuple(POISONERS)
LABEL_FLIPS = tuple(p.name for p in POISONERS.values() if p.label_flip)


def poisoner(kind: str) -> Poisoner:
    if kind not in POISONERS:
        raise ConfigError(f"unknown corruption {kind!r}; choose from {', '.join(POISONERS)}")
    return POISONERS[kind]


def _as_tuple(fn):
    return lambda key, x, y, n, scores: tuple(fn(key, x, y, n, scores))


# built once (a switch over freshly made closures would compile anew at every call); one branch per distinct
# function, and the index of each corruption's branch
_DISTINCT = tuple(dict.fromkeys(p.fn for p in POISONERS.values()))
_BRANCHES = tuple(_as_tuple(fn) for fn in _DISTINCT)
_BRANCH_OF = np.array([_DISTINCT.index(POISONERS[c].fn) for c in CORRUPTIONS], np.int32)


def corrupt(kind_index: jax.Array, key: jax.Array, x: jax.Array, y: jax.Array, n_corrupt: jax.Array,
            scores: jax.Array | None = None) -> Corrupted:
    """Apply corruption number ``kind_index`` (index into CORRUPTIONS); vmappable over all arguments.
    ``scores`` (N,): the ranked flips' priorities (None: zeros, which makes a ranked flip a random one)."""
    if scores is None:
        scores = jnp.zeros(y.shape, jnp.float32)
    branch = jnp.asarray(_BRANCH_OF)[kind_index]
    return Corrupted(*jax.lax.switch(branch, _BRANCHES, key, x, y, n_corrupt, scores))


@jax.jit
def corrupt_replicas(kind_index: jax.Array, key: jax.Array, x: jax.Array, y: jax.Array,
                     n_corrupt: jax.Array, scores: jax.Array) -> Corrupted:
    """``corrupt`` for R replicas sharing one clean set: kind_index (R,), key (R, 2), n_corrupt (R,),
    scores (R, N); x (N, D) and y (N,) shared. Returns a Corrupted of (R, N, ...) arrays."""
    return jax.vmap(corrupt, in_axes=(0, 0, None, None, 0, 0))(kind_index, key, x, y, n_corrupt, scores)


def refined_alphas(n_per_class: int, lo: float = 0.0, hi: float = 0.9, around: float = 0.5,
                   halfwidth: float = 0.05, step: float = 0.1, kind: str = "flip") -> tuple[float, ...]:
    """Corruption ratios for a sweep whose critical point is to be located: the coarse grid lo, lo + step, ...,
    hi, refined within ``halfwidth`` of ``around`` to every count ``kind`` can take there.

    With N = 2 ``n_per_class`` training samples (balanced classes) and the count rule of ``corruption_count``,
    the balanced label flips (and "boundary", "quid", "random-labels") corrupt floor(alpha N) rounded down to
    even samples, half per class, so the refined points step by one corrupted sample per class: realised
    fractions m / n_per_class, m = 0, 1, ... ("features" rounds up: the same steps, offset; "class-targeted"
    flips class 0 only and steps by two). Every returned alpha maps to a different count: where two give the
    same, the coarse one (or the smaller) is kept. A refined alpha is the middle of the range of alpha that gives
    its count, rounded to the fewest decimals (at most 6) that keep the count, so it survives printing and
    parsing (``--alphas``). Sorted; only alphas in [lo, hi]. The realised fraction of each is
    ``corruption_count(kind, alpha, N) / N``, what ``qrobust.analysis.critical`` fits on.

    Example: refined_alphas(41) (N = 82) is 0.0, 0.1, ..., 0.4, 0.46, 0.48, 0.5, 0.52, 0.55, 0.6, ..., 0.9: between
    the coarse 0.4 (32 flips, 16 per class) and 0.6 (48) the counts 36, 38, 40 (0.5's), 42, 44, i.e. 18 to 22 flips
    per class, realised fractions 36/82 = 0.439 to 44/82 = 0.537."""
    if int(n_per_class) != n_per_class or n_per_class < 1:
        raise ConfigError(f"n_per_class must be a positive integer, got {n_per_class!r}")
    lo, hi, around = check_alpha(lo), check_alpha(hi), check_alpha(around)
    if not lo <= hi:
        raise ConfigError(f"the grid's lo ({lo}) must not exceed its hi ({hi})")
    if not (step > 0 and halfwidth >= 0):
        raise ConfigError(f"step must be > 0 and halfwidth >= 0, got step={step}, halfwidth={halfwidth}")
    poisoner(kind)
    n = 2 * int(n_per_class)
    chosen: dict[int, float] = {}
    for i in range(math.floor((hi - lo) / step + 1e-9) + 1):
        alpha = round(lo + i * step, 10)
        chosen.setdefault(corruption_count(kind, alpha, n), alpha)
    # floor(alpha N) = b for alpha in [b / N, (b + 1) / N): the b's in the window, grouped by the count they give
    first = max(math.ceil(max(lo, around - halfwidth) * n - 1e-9), 0)
    last = min(math.floor(min(hi, around + halfwidth) * n + 1e-9), n)
    ranges: dict[int, list[int]] = {}
    for b in range(first, last + 1):
        ranges.setdefault(corruption_count(kind, b / n, n), []).append(b)
    for count, bs in ranges.items():
        if count in chosen:
            continue
        start, stop = max(bs[0] / n, lo), min((bs[-1] + 1) / n, hi, 1.0)
        middle = (start + stop) / 2
        for decimals in range(1, 7):
            alpha = round(middle, decimals)
            if lo <= alpha <= hi and corruption_count(kind, alpha, n) == count:
                break
        else:
            alpha = next(a for a in (middle, start) if corruption_count(kind, a, n) == count)
        chosen[count] = alpha
    return tuple(sorted(chosen.values()))
