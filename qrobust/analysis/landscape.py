"""Curvature of the loss at trained parameters, without forming the Hessian.

Every measure is built on Hessian-vector products (forward-over-reverse,
``jax.jvp`` of ``jax.grad``), so memory stays that of a gradient:

- ``hessian_trace``: the exact trace, sum_i e_i^T H e_i over all P parameters
  (P products, evaluated ``batch`` at a time);
- ``hutchinson_trace``: the unbiased estimate mean_k v_k^T H v_k with Rademacher
  v_k, and its standard error std / sqrt(K), for models too large for P products;
- ``lanczos_eigenvalues``: the largest eigenvalues from ``n_iter`` Lanczos steps
  with full reorthogonalisation (Ritz values of the tridiagonal matrix).

``loss`` is a function of the parameter pytree alone (data closed over). Called
with concrete arrays, each measure runs as one compiled program (``jax.jit`` of
its whole body), not op by op; called inside a caller's transformation (the
landscape study's ``jit``) it traces its body into that program as it is.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree


_FULL = jax.lax.Precision.HIGHEST  # full-precision products on a GPU too (its default is TensorFloat-32)

def _compiled(body: Callable, *args):
    """``body(*args)``: jitted as one program for concrete arguments, traced as it is inside a transformation."""
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(args)):
        return body(*args)
    return jax.jit(body)(*args)


def _flat_hvp(loss: Callable, params):
    flat, unravel = ravel_pytree(params)
    grad = jax.grad(lambda f: loss(unravel(f)))

    def hvp(v):
        return jax.jvp(grad, (flat,), (v.astype(flat.dtype),))[1]

    return flat, hvp


def hessian_trace(loss: Callable, params, *, batch: int = 64) -> jax.Array:
    """Exact trace of the Hessian of ``loss`` at ``params`` from P Hessian-vector products."""
    return _compiled(lambda p: _hessian_trace(loss, p, batch), params)


def _hessian_trace(loss: Callable, params, batch: int) -> jax.Array:
    flat, hvp = _flat_hvp(loss, params)
    n = flat.shape[0]
    eye_rows = jnp.arange(n)

    def diag_entry(i):
        return hvp(jax.nn.one_hot(i, n, dtype=flat.dtype))[i]

    return jnp.sum(jax.lax.map(diag_entry, eye_rows, batch_size=min(batch, n)))


def hutchinson_trace(loss: Callable, params, *, key: jax.Array, n_samples: int = 100,
                     batch: int = 32) -> tuple[jax.Array, jax.Array]:
    """(estimate, standard error) of the Hessian trace from ``n_samples`` Rademacher probes."""
    return _compiled(lambda p, k: _hutchinson_trace(loss, p, k, n_samples, batch), params, key)


def _hutchinson_trace(loss: Callable, params, key: jax.Array, n_samples: int, batch: int):
    flat, hvp = _flat_hvp(loss, params)
    probes = jax.random.rademacher(key, (n_samples, flat.shape[0]), dtype=flat.dtype)
    values = jax.lax.map(lambda v: jnp.dot(v, hvp(v), precision=_FULL), probes, batch_size=min(batch, n_samples))
    return jnp.mean(values), jnp.std(values, ddof=1) / jnp.sqrt(n_samples)


def lanczos_eigenvalues(loss: Callable, params, *, key: jax.Array, k: int = 5, n_iter: int = 30) -> jax.Array:
    """The ``k`` largest Hessian eigenvalues (descending) from ``n_iter`` Lanczos steps.

    On breakdown (the Krylov space is invariant, e.g. a low-rank Hessian) the
    iteration restarts from a random vector orthogonal to the basis with a zero
    off-diagonal, so the tridiagonal matrix stays a compression of H.
    """
    return _compiled(lambda p, key: _lanczos(loss, p, key, k, n_iter), params, key)


def _lanczos(loss: Callable, params, key: jax.Array, k: int, n_iter: int) -> jax.Array:
    flat, hvp = _flat_hvp(loss, params)
    n = flat.shape[0]
    m = min(n_iter, n)
    keys = jax.random.split(key, m + 1)
    v0 = jax.random.normal(keys[0], (n,), flat.dtype)
    basis = jnp.zeros((m + 1, n), flat.dtype).at[0].set(v0 / jnp.linalg.norm(v0))

    def orthogonalise(w, basis, j):
        mask = (jnp.arange(m + 1) <= j).astype(flat.dtype)[:, None]
        for _ in range(2):  # twice, for stability
            w = w - jnp.matmul((mask * basis).T, jnp.matmul(mask * basis, w, precision=_FULL), precision=_FULL)
        return w

    def step(carry, j):
        basis, alphas, betas, scale = carry
        w = hvp(basis[j])
        alpha = jnp.dot(w, basis[j], precision=_FULL)
        scale = jnp.maximum(scale, jnp.abs(alpha))
        w = orthogonalise(w, basis, j)
        beta = jnp.linalg.norm(w)
        broke = beta <= 1e-5 * jnp.maximum(scale, jnp.finfo(flat.dtype).tiny)
        fresh = orthogonalise(jax.random.normal(keys[j + 1], (n,), flat.dtype), basis, j)
        nxt = jnp.where(broke, fresh / jnp.linalg.norm(fresh), w / jnp.where(broke, 1.0, beta))
        basis = basis.at[j + 1].set(nxt)
        return (basis, alphas.at[j].set(alpha), betas.at[j].set(jnp.where(broke, 0.0, beta)), scale), None

    init = (basis, jnp.zeros(m, flat.dtype), jnp.zeros(m, flat.dtype), jnp.zeros((), flat.dtype))
    (basis, alphas, betas, _), _ = jax.lax.scan(step, init, jnp.arange(m))
    tri = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    ritz = jnp.linalg.eigvalsh(tri)
    return ritz[::-1][:k]


def full_hessian_trace_and_spectrum(loss: Callable, params) -> tuple[float, np.ndarray]:
    """Reference for small models: trace and eigenvalues (descending) of the dense Hessian."""
    flat, unravel = ravel_pytree(params)
    h = np.asarray(jax.jit(jax.hessian(lambda f: loss(unravel(f))))(flat))
    return float(np.trace(h)), np.sort(np.linalg.eigvalsh((h + h.T) / 2))[::-1]
