"""Adaptive label-flip attacks: which training labels an attacker who knows the model (or a surrogate) flips.

Each attack returns *priorities*, a score per training sample (higher: flipped first), which the ranked poisoner
(``qrobust.corruption.flip_ranked``) turns into a mask at any count: the n // 2 highest of each class. So an
adaptive attack has the mask contract of every poisoner, at the count random flips have at the same alpha
(floor(alpha N) rounded down to even, half per class), and its sets are nested across alpha.

The attacker's objective is the clean validation loss (mean binary cross-entropy of the clean validation set,
``val_loss``) of the model trained on the flipped labels. Labels are relaxed to y(w) = y + w (1 - 2 y), w in
[0, 1] per sample (w = 1: flipped); BCE is linear in the label, so the relaxation is exact at w in {0, 1}.

- ``unrolled_scores`` (gradient-based): d val_loss / d w at w = 0, differentiated through ``steps`` full-batch
  optimiser steps from the replica's initial parameters (the attacker's short surrogate training, unrolled by
  ``lax.scan``; reverse mode through the optimiser, as MetaPoison does with K unrolled steps).
- ``influence_scores`` (Koh & Liang 2017): the same derivative by implicit differentiation at trained parameters
  theta: d val_loss / d w_i = (1 - 2 y_i) g_val^T H^{-1} J_i / N, J_i the gradient of sample i's logit, H the
  training loss's Gauss-Newton matrix J^T diag(p (1 - p)) J / N plus ``damping`` I (the exact Hessian for a
  model linear in its parameters, e.g. logistic regression; positive definite for every model, where the
  Hessian of a network need not be).
- ``greedy_priorities``: the influence attack made greedy: ``rounds`` rounds, each retraining the model on the
  flips chosen so far (``retrain``) and adding the next best 1 / rounds of the budget per class.
- transfer: any of these computed on a surrogate model (the study's ``--surrogate``) and applied to another.

Everything here is a pure function of one replica (vmap adds the replica axis); second derivatives go through
the model, so a QNN is built with a simulator that has forward mode (``BuildOptions(forward_mode=True)``).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from qrobust.engine import EvalData
from qrobust.models.base import Model, batch_logits
from qrobust.optimizers import Optimizer

ADAM_EPS_ROOT = 1e-8  # ``fit``'s Adam: a finite derivative through sqrt(v) where v = 0
DIRECT_SOLVE_MAX = 4096  # parameters up to which H is formed and solved directly (else conjugate gradients)


def relaxed_labels(y: jax.Array, w: jax.Array) -> jax.Array:
    """y + w (1 - 2 y): the label y (0/1) moved towards its flip by w in [0, 1]."""
    y = _float(y)
    return y + w * (1 - 2 * y)


def _float(y) -> jax.Array:
    """Labels as floats (float32 unless already floating, e.g. float64 in the exact tests)."""
    y = jnp.asarray(y)
    return y if jnp.issubdtype(y.dtype, jnp.floating) else y.astype(jnp.float32)


def train_loss(model: Model, params, x, y, l2: float = 0.0) -> jax.Array:
    """Mean BCE of ``params`` on (x, y) (y may be relaxed) plus l2 / 2 ||params||^2."""
    logits = batch_logits(model)(params, x)
    flat, _ = ravel_pytree(params)
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y)) + 0.5 * l2 * jnp.sum(jnp.real(flat) ** 2)


def val_loss(model: Model, params, val: EvalData) -> jax.Array:
    """The attacker's objective: mean BCE on the clean validation set."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(batch_logits(model)(params, val.x), val.y))


def fit(model: Model, params, x, y, *, steps: int, learning_rate: float, optimizer: Optimizer | None = None,
        l2: float = 0.0):
    """``params`` after ``steps`` full-batch steps of ``optimizer`` on ``train_loss``; differentiable in ``y``
    (``lax.scan``; each step rematerialised in the backward pass). Default: Adam with ``eps_root`` = 1e-8
    (``ADAM_EPS_ROOT``), optax's setting for differentiating through Adam: without it the derivative of
    sqrt(v) at a zero second moment (a weight whose gradient is exactly 0, a dead ReLU's) is infinite and the
    derivative NaN; with it Adam's steps are the paper's Adam's to about 1e-8 / |g|^2 relative."""
    tx = optimizer.make(learning_rate) if optimizer is not None else optax.adam(learning_rate,
                                                                                eps_root=ADAM_EPS_ROOT)

    @jax.checkpoint
    def step(carry, _):
        p, state = carry
        grads = jax.grad(train_loss, argnums=1)(model, p, x, y, l2)
        updates, state = tx.update(grads, state, p)
        return (optax.apply_updates(p, updates), state), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return params


def unrolled_scores(model: Model, params0, x, y, val: EvalData, *, steps: int, learning_rate: float,
                    optimizer: Optimizer | None = None, l2: float = 0.0) -> jax.Array:
    """(N,) d val_loss / d w_i at w = 0 through ``steps`` unrolled steps of ``fit`` from ``params0``."""
    def objective(w):
        trained = fit(model, params0, x, relaxed_labels(y, w), steps=steps, learning_rate=learning_rate,
                      optimizer=optimizer, l2=l2)
        return val_loss(model, trained, val)

    return jax.grad(objective)(jnp.zeros_like(_float(y)))


def logit_jacobian(model: Model, params, x) -> jax.Array:
    """(N, P) gradient of each sample's logit with respect to the flat parameters (real part: complex
    parameters are not used by the registry's models)."""
    flat, unravel = ravel_pytree(params)
    return jax.jacrev(lambda f: batch_logits(model)(unravel(f), x))(flat)


def _solve(jac, curvature, rhs, damping: float, cg_iterations: int) -> jax.Array:
    """(J^T diag(curvature) J / N + damping I)^{-1} rhs, formed and solved where P <= ``DIRECT_SOLVE_MAX``,
    else by conjugate gradients of at most ``cg_iterations``."""
    n, p = jac.shape
    if p <= DIRECT_SOLVE_MAX:
        h = (jac.T * curvature) @ jac / n + damping * jnp.eye(p, dtype=jac.dtype)
        return jnp.linalg.solve(h, rhs)
    matvec = lambda v: jac.T @ (curvature * (jac @ v)) / n + damping * v  # noqa: E731
    return jax.scipy.sparse.linalg.cg(matvec, rhs, maxiter=cg_iterations)[0]


def influence_scores(model: Model, params, x, y, val: EvalData, *, damping: float = 1e-3, l2: float = 0.0,
                     cg_iterations: int = 200) -> jax.Array:
    """(N,) Koh & Liang's influence of flipping each label on ``val_loss`` at the trained ``params`` (module
    docstring): (1 - 2 y_i) J_i . s / N, s = (H + (damping + l2) I)^{-1} grad val_loss."""
    flat, unravel = ravel_pytree(params)
    jac = logit_jacobian(model, params, x)
    p = jax.nn.sigmoid(batch_logits(model)(params, x))
    g_val = jax.grad(lambda f: val_loss(model, unravel(f), val))(flat)
    s = _solve(jac, p * (1 - p), g_val, damping + l2, cg_iterations)
    y = _float(y)
    return (1 - 2 * y) * (jac @ s) / y.shape[0]


def top_per_class(scores: np.ndarray, y: np.ndarray, per_class: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """(N,) bool: the ``per_class`` highest ``scores`` of each class (y the clean labels), ``exclude`` left out;
    ties by index (``np.argsort`` is stable)."""
    scores = np.where(exclude, -np.inf, scores) if exclude is not None else np.asarray(scores, float)
    chosen = np.zeros(len(y), bool)
    for c in (0, 1):
        idx = np.flatnonzero(y == c)
        if exclude is not None:
            idx = idx[~exclude[idx]]
        chosen[idx[np.argsort(-scores[idx], kind="stable")[:per_class]]] = True
    return chosen


def greedy_priorities(scores_of: Callable[[np.ndarray], np.ndarray], y: np.ndarray, per_class: int,
                      rounds: int) -> np.ndarray:
    """Priorities of the greedy attack, for one replica (y (N,)) or several (y (R, N), every row its own):
    round r (of ``rounds``) takes the next share of ``per_class`` flips per class by ``scores_of(flipped)``,
    the scores (same shape as y) of a model retrained with the labels of ``flipped`` (bool) inverted. Earlier
    rounds rank above later ones, within a round by score; the samples never chosen rank below, by the last
    round's scores. ``scores_of`` is called ``rounds`` times (on every replica at once)."""
    y = np.asarray(y)
    rows = np.atleast_2d(y)
    n = rows.shape[1]
    flipped = np.zeros(rows.shape, bool)
    priority = np.full(rows.shape, -np.inf)
    cuts = [round(per_class * (r + 1) / rounds) for r in range(rounds)]
    taken, scores = 0, None
    for r, cut in enumerate(cuts):
        scores = np.atleast_2d(np.asarray(scores_of(flipped.reshape(y.shape)), float))
        for i in range(len(rows)):
            new = top_per_class(scores[i], rows[i], cut - taken, exclude=flipped[i])
            order = np.argsort(np.argsort(scores[i][new]))  # 0 = lowest of the new ones
            priority[i, np.flatnonzero(new)] = 2.0 * (rounds - r) * n + order
            flipped[i] |= new
        taken = cut
    for i in range(len(rows)):
        rest = ~flipped[i]
        priority[i, rest] = np.argsort(np.argsort(scores[i][rest])) - n
    return priority.reshape(y.shape).astype(np.float32)
