"""Finite shots: a QNN's outputs and gradients as a device estimates them.

A device reads <Z> of the measured qubit from N shots: the count k of outcome 0 is Binomial(N, (1 + <Z>)/2)
and the estimate is 2k/N - 1 (readout error, ``qrobust.models.noise``, is already in <Z>). ``sampled`` turns
a model's exact batch logits (logit = readout_scale * <Z>) into:

- forward: each logit from its own N shots (``estimate``), for training's loss and for every recorded metric
  (each prediction from N shots);
- reverse mode: the gradient a device would take with the parameter-shift rule at N shots per term,
  d<Z>/dtheta_j = (<Z>(theta + pi/2 e_j) - <Z>(theta - pi/2 e_j)) / 2 for a parameter that enters one Pauli
  rotation exp(-i theta P / 2) (every parameter of the library's circuits; a user's circuit is checked at
  build, ``shift_problem``), chained with the loss's derivative at the shot-estimated logits:
    "shift" (default): exact sampling, what a device does: both shifted circuits of every parameter and
      example are evaluated exactly (2P batch evaluations per step) and each term is estimated from its own
      N shots;
    "gaussian": the exact gradient (reverse mode, the parameter-shift rule's mean) plus Gaussian noise of the
      variance the estimate has when the shifted expectations vanish, scale^2 / (2N) per example and
      parameter: an upper bound of the true variance (2 - <Z>_+^2 - <Z>_-^2) scale^2 / (4N), at the cost of one
      gradient instead of 2P evaluations (for circuits where "shift" is unaffordable; docs/device.md).

How far "gaussian" is from "shift" at given parameters is ``variance_ratio``: per parameter, the device's
variance over the bound's (free of N), from the 2P shifted evaluations of one batch.

Every draw is keyed: the engine passes a key per step and per evaluation, derived from the replica's seed
(``qrobust.keys.SHOTS``). The classical models (the MLP, the controls) are read exactly: a classical computer
reads its output without shot noise (``CLASSICAL_SHOTS``).
"""

from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from qrobust.errors import ConfigError

SHOT_GRADIENTS = ("shift", "gaussian")
CLASSICAL_SHOTS = ("exact",)  # how the classical models are read with --shots: exactly (the only choice so far)
MAX_SHOTS = 10**9


def check_shots(shots) -> int | None:
    """None (exact) or a positive integer count of shots."""
    if shots is None:
        return None
    if isinstance(shots, bool) or int(shots) != shots or not 1 <= shots <= MAX_SHOTS:
        raise ConfigError(f"shots must be a positive integer up to {MAX_SHOTS:,} (or none: exact), got {shots!r}")
    return int(shots)


def parse_axis(text: str) -> tuple[int | None, ...]:
    """The --shots option: comma-separated counts, "inf", "none", "exact" or 0 being exact (100,1000,inf)."""
    values = []
    for item in (t.strip().lower() for t in text.split(",")):
        if item in ("inf", "none", "exact", "0"):
            values.append(None)
            continue
        try:
            value = float(item)
        except ValueError:
            raise ConfigError(f"--shots {text!r}: {item!r} is not a count of shots (or inf / none: exact)") from None
        if not math.isfinite(value) or value != int(value) or value < 0:
            raise ConfigError(f"--shots {text!r}: {item!r} is not a whole number of shots")
        values.append(check_shots(int(value)) if value else None)
    return tuple(values)


def estimate(key, expectation, shots: int):
    """The N-shot estimate 2k/N - 1 of each <Z> in ``expectation`` (k ~ Binomial(N, (1 + <Z>)/2))."""
    p = jnp.clip((1 + expectation) / 2, 0.0, 1.0)
    k = jax.random.binomial(key, shots, p.astype(jnp.float32))
    return (2 * k / shots - 1).astype(expectation.dtype)


def sampled(logits_of: Callable, shots: int, scale: float, gradient: str = "shift") -> Callable:
    """``logits(params, xs, key) -> (B,)``: ``logits_of``'s logits (scale * <Z>) estimated from ``shots`` shots,
    with the parameter-shift gradient estimate of ``gradient`` in reverse mode (module docstring)."""
    if gradient not in SHOT_GRADIENTS:
        raise ConfigError(f"unknown shot gradient {gradient!r}; choose from {', '.join(SHOT_GRADIENTS)}")

    @jax.custom_vjp
    def logits(params, xs, key):
        return scale * estimate(jax.random.fold_in(key, 0), logits_of(params, xs) / scale, shots)

    def forward(params, xs, key):
        return logits(params, xs, key), (params, xs, key)

    def backward(residual, g):
        params, xs, key = residual
        key = jax.random.fold_in(key, 1)
        if gradient == "shift":
            grads = _shift_gradient(logits_of, params, xs, key, g, shots, scale)
        else:
            grads = _gaussian_gradient(logits_of, params, xs, key, g, shots, scale)
        return grads, jnp.zeros_like(xs), None

    logits.defvjp(forward, backward)
    return logits


def shifted(logits_of: Callable, params, xs):
    """(P, 2, B) the exact logits with each parameter shifted by +pi/2 and -pi/2 (P flat parameters)."""
    flat, unravel = ravel_pytree(params)
    shifts = jnp.array([np.pi / 2, -np.pi / 2], flat.dtype)

    def one(j):
        return jax.vmap(lambda s: logits_of(unravel(flat.at[j].add(s)), xs))(shifts)

    return jax.lax.map(one, jnp.arange(flat.shape[0]))


def _shift_gradient(logits_of, params, xs, key, g, shots, scale):
    """Sum_b g_b times the N-shot parameter-shift estimate of d logit_b / d theta_j: exact sampling."""
    _, unravel = ravel_pytree(params)
    terms = estimate(key, shifted(logits_of, params, xs) / scale, shots)  # (P, 2, B)
    derivative = scale * (terms[:, 0] - terms[:, 1]) / 2  # (P, B)
    return unravel(derivative @ g.astype(derivative.dtype))


def _gaussian_gradient(logits_of, params, xs, key, g, shots, scale):
    """The exact vector-Jacobian product plus Gaussian noise of variance sum_b g_b^2 scale^2 / (2N) per
    parameter (the per-term bound; module docstring)."""
    _, vjp = jax.vjp(lambda p: logits_of(p, xs), params)
    (exact,) = vjp(g)
    flat, unravel = ravel_pytree(exact)
    sd = scale * jnp.sqrt(jnp.sum(g.astype(flat.dtype) ** 2) / (2 * shots))
    return unravel(flat + sd * jax.random.normal(key, flat.shape, flat.dtype))


def variance_ratio(logits_of: Callable, params, xs, g, scale: float):
    """(P,) per flat parameter j, the variance of the device's estimate ("shift", N shots per term) of the
    gradient of sum_b g_b logit_b over that of "gaussian" at the same N:
    sum_b g_b^2 (2 - m_+^2 - m_-^2) / (2 sum_b g_b^2), m_+- = parameter j's shifted expectations <Z> on example b
    (logits / ``scale``). Free of N; at most 1, equal to 1 where the shifted expectations vanish. Each term is
    drawn on its own in both estimates, so their covariances are diagonal and the mean over j is the ratio of
    their total variances: "gaussian" at N shots draws the gradient noise "shift" draws at N times that mean."""
    m = shifted(logits_of, params, xs) / scale  # (P, 2, B)
    w = jnp.asarray(g, m.dtype) ** 2
    return (w * (1 - (m[:, 0] ** 2 + m[:, 1] ** 2) / 2)).sum(-1) / w.sum()


def shift_problem(logits_of: Callable, params, xs) -> str | None:
    """Why the parameter-shift rule does not give this circuit's gradient (None: it does), checked on a probe
    input: each parameter must enter one Pauli rotation exp(-i theta P / 2)."""
    _, unravel = ravel_pytree(params)
    s = shifted(logits_of, params, xs)
    rule = np.asarray((s[:, 0] - s[:, 1]) / 2)  # (P, B)
    out, vjp = jax.vjp(lambda p: logits_of(p, xs), params)
    eye = jnp.eye(xs.shape[0], dtype=out.dtype)
    exact = np.stack([np.asarray(ravel_pytree(vjp(eye[b]))[0]) for b in range(xs.shape[0])], 1)
    scale = max(1.0, float(np.max(np.abs(exact))))
    if not np.allclose(rule, exact, atol=1e-3 * scale):
        return ("the parameter-shift rule does not give this circuit's gradient (a parameter enters more than one "
                "Pauli rotation, or not as exp(-i theta P / 2)): use shot_gradient='gaussian'")
    return None
