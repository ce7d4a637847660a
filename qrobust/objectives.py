"""Training objectives: what a step minimises, as pure functions of logits.

An objective is a NamedTuple of pure functions (optax style), so that training,
fine-tuning and every unlearning method run through the one engine loop:

  loss(batch, forget, coef) -> scalar to minimise at each step
  max_loss(forget, coef) -> scalar, or None: an extra ascent step on the forget
      set taken before the descent step in the first ``max_epochs`` epochs
      (SCRUB as Kurmanji et al. define it)
  param_loss(params, coef, progress) -> scalar, or None: a penalty on the
      parameters themselves added at every step; ``progress`` = epoch / epochs,
      in [0, 1) (l1-sparse's decaying weight)

``batch`` holds the student's logits on a minibatch of the retain stream (the
training set, or the retain set when unlearning) with labels, weights (1 real,
0 padding) and the teacher's logits; ``forget`` the same for the whole forget
set (weights 0 for padding). ``coef`` is a per-replica vector of loss weights,
so a grid over weights is a replica axis, not a recompile.

Unlearning objectives (one parametric family; the paper, arXiv:2508.02422, and standard baselines):

  J = c_ce * CE(retain) + c_kl * KL_T(teacher || student on retain)
      - c_klf * KL_T(teacher || student on forget)
      - c_cef * CE(forget, poisoned labels) + c_rl * CE(forget, random labels)
      + c_l1 * (1 - epoch / epochs) * ||theta||_1

  retrain, finetune: c_ce = 1 (retrain starts from a fresh initialisation;
                     retrain_full also with the teacher's epochs, batch and rate)
  scrub (paper):     c_ce = 1, c_kl = kl_w, c_klf = fo_w, T = 1
  ga (paper):        c_ce = 1, c_cef = fo_w
  neggrad+:          c_ce = 1 - fo_w, c_cef = fo_w (convex combination)
  relabel:           c_ce = 1, c_rl = 1 (forget set relabelled at random, fixed)
  salun:             relabel's weights, with only the salient half of the weights
                     updated (Fan et al. 2024, arXiv:2310.12508: the mask keeps
                     the weights whose forget-loss gradient at the teacher is
                     largest; the engine's ``TrainData.grad_mask``)
  l1_sparse:         c_ce = 1, c_l1 = l1_w (Jia et al. 2023, arXiv:2304.04934:
                     fine-tuning with an l1 penalty whose weight decays linearly
                     to 0 over the epochs)

KL is that of the full Bernoulli output distribution (both classes).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax


class Batch(NamedTuple):
    """Logits and targets of a set of samples: all arrays (B,)."""

    logits: jax.Array
    labels: jax.Array
    weights: jax.Array
    teacher: jax.Array
    random_labels: jax.Array


class Objective(NamedTuple):
    name: str
    loss: Callable[[Batch, Optional[Batch], jax.Array], jax.Array]
    max_loss: Optional[Callable[[Batch, jax.Array], jax.Array]] = None
    max_epochs: int = 0
    uses_forget: bool = False
    param_loss: Optional[Callable[[object, jax.Array, jax.Array], jax.Array]] = None
    reads_forget: Optional[Callable[[jax.Array], jax.Array]] = None  # coef -> whether loss reads the forget set


def weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
    """Mean of values over entries with weight 1 (0 when all weights are 0)."""
    return jnp.sum(weights * values) / jnp.maximum(jnp.sum(weights), 1.0)


def bernoulli_kl(teacher_logits: jax.Array, student_logits: jax.Array, temperature: float = 1.0) -> jax.Array:
    """KL(teacher || student) between Bernoulli distributions given by logits / T, per sample.

    sum over both classes of p_t log(p_t / p_s), computed from log-sigmoids (stable).
    """
    t = teacher_logits / temperature
    s = student_logits / temperature
    p_t = jax.nn.sigmoid(t)
    return (p_t * (jax.nn.log_sigmoid(t) - jax.nn.log_sigmoid(s))
            + (1 - p_t) * (jax.nn.log_sigmoid(-t) - jax.nn.log_sigmoid(-s)))


def cross_entropy(batch: Batch, labels: jax.Array | None = None) -> jax.Array:
    labels = batch.labels if labels is None else labels
    return weighted_mean(optax.sigmoid_binary_cross_entropy(batch.logits, labels), batch.weights)


def supervised() -> Objective:
    """Binary cross-entropy on the minibatch (plain training)."""
    return Objective("bce", lambda batch, forget, coef: cross_entropy(batch))


# coefficient vector layout of the unlearning family
COEFS = ("ce", "kl", "klf", "cef", "rl", "l1")


def unlearning_family(temperature: float = 1.0) -> Objective:
    """The parametric unlearning objective J (module docstring); coef has the COEFS layout."""

    def loss(batch: Batch, forget: Batch, coef: jax.Array) -> jax.Array:
        c_ce, c_kl, c_klf, c_cef, c_rl = (coef[i] for i in range(len(COEFS) - 1))
        kl_r = weighted_mean(bernoulli_kl(batch.teacher, batch.logits, temperature), batch.weights)
        kl_f = weighted_mean(bernoulli_kl(forget.teacher, forget.logits, temperature), forget.weights)
        return (c_ce * cross_entropy(batch) + c_kl * kl_r - c_klf * kl_f
                - c_cef * cross_entropy(forget) + c_rl * cross_entropy(forget, forget.random_labels))

    def l1(params, coef, progress):
        norm = sum(jnp.sum(jnp.abs(leaf)) for leaf in jax.tree_util.tree_leaves(params))
        return coef[COEFS.index("l1")] * (1 - progress) * norm

    def reads_forget(coef):
        return jnp.any(coef[jnp.array([COEFS.index(c) for c in ("klf", "cef", "rl")])] != 0)

    return Objective("unlearning", loss, uses_forget=True, param_loss=l1,
                     reads_forget=reads_forget)


def scrub_kurmanji(*, temperature: float = 4.0, ce_weight: float = 0.99, kl_weight: float = 0.001,
                   max_epochs: int = 2) -> Objective:
    """SCRUB as Kurmanji et al. (2023, "Towards Unbounded Machine Unlearning") define it.

    Min-step on each retain minibatch: ce_weight * CE + kl_weight * T^2 KL_T(teacher || student);
    in the first ``max_epochs`` epochs each step is preceded by a max-step on the
    forget set, maximising T^2 KL_T(teacher || student). Defaults follow that
    paper's code (T = 4, gamma = 0.99, alpha = 0.001, msteps = 2). ``coef`` is unused.
    """

    def loss(batch: Batch, forget, coef) -> jax.Array:
        kl = weighted_mean(bernoulli_kl(batch.teacher, batch.logits, temperature), batch.weights)
        return ce_weight * cross_entropy(batch) + kl_weight * temperature**2 * kl

    def max_loss(forget: Batch, coef) -> jax.Array:
        return -temperature**2 * weighted_mean(bernoulli_kl(forget.teacher, forget.logits, temperature),
                                               forget.weights)

    return Objective("scrub_kurmanji", loss, max_loss=max_loss, max_epochs=max_epochs, uses_forget=True)


# The unlearning methods as weights of the family (COEFS order) and which grid weights they use.
UNLEARNING_METHODS = ("retrain", "finetune", "scrub", "ga", "neggrad", "relabel", "scrub_kurmanji", "salun",
                      "l1_sparse", "retrain_full")
L1_WEIGHT = 5e-4  # l1-sparse's penalty weight: Jia et al.'s default


def method_coefs(method: str, kl_w: float, fo_w: float, l1_w: float = L1_WEIGHT) -> tuple[float, ...]:
    """The unlearning family's loss weights (COEFS order) of ``method`` (scrub_kurmanji: its own objective,
    ``scrub_kurmanji()``, all zero here). retrain, retrain_full and finetune share the weights and differ in
    their start (a fresh initialisation, the teacher) and recipe; salun shares relabel's and adds its mask."""
    table = {
        "retrain": (1, 0, 0, 0, 0, 0), "retrain_full": (1, 0, 0, 0, 0, 0), "finetune": (1, 0, 0, 0, 0, 0),
        "relabel": (1, 0, 0, 0, 1, 0), "salun": (1, 0, 0, 0, 1, 0), "l1_sparse": (1, 0, 0, 0, 0, l1_w),
        "scrub": (1, kl_w, fo_w, 0, 0, 0), "ga": (1, 0, 0, fo_w, 0, 0), "neggrad": (1 - fo_w, 0, 0, fo_w, 0, 0),
        "scrub_kurmanji": (0, 0, 0, 0, 0, 0),
    }
    return tuple(float(c) for c in table[method])


def weights_used(method: str) -> tuple[bool, bool]:
    """Whether (kl_w, fo_w) enter ``method``'s objective."""
    return method == "scrub", method in ("scrub", "ga", "neggrad")
