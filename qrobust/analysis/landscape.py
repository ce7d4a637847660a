"""Curvature of the loss at trained parameters.

Every measure is built on Hessian-vector products (forward-over-reverse,
``jax.jvp`` of ``jax.grad``); the first three keep memory that of a gradient:

- ``hessian_trace``: the exact trace, sum_i e_i^T H e_i over all P parameters
  (P products, evaluated ``batch`` at a time);
- ``hutchinson_trace``: the unbiased estimate mean_k v_k^T H v_k with Rademacher
  v_k, and its standard error std / sqrt(K), for models too large for P products;
- ``lanczos_eigenvalues``: the largest eigenvalues from ``n_iter`` Lanczos steps
  with full reorthogonalisation (Ritz values of the tridiagonal matrix);
- ``curvature``: all three from the dense Hessian (P products, as the exact trace takes, kept as columns), for
  models small enough to hold it: one program with one product in it, where the three separate measures
  compile three, and Hutchinson's and Lanczos's products become matrix products (the same estimates up to
  rounding).

Each algorithm runs on a matrix-vector product ``matvec`` (``_hutchinson_of``, ``_lanczos_of``), so the
Hessian-vector and the dense routes share it.

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


def _map_padded(f: Callable, xs: jax.Array, batch: int, fill) -> jax.Array:
    """``lax.map(f, xs, batch_size=batch)`` with ``xs`` padded by ``fill`` rows to a multiple of ``batch`` (the
    padding's results cut): lax.map runs a remainder as a second copy of ``f``, which XLA compiles again (a
    Hessian-vector product's copy doubled the program's compile time)."""
    n = xs.shape[0]
    batch = min(batch, n)
    padded = jnp.concatenate([xs, jnp.full((-n % batch,) + xs.shape[1:], fill, xs.dtype)])
    return jax.lax.map(f, padded, batch_size=batch)[:n]


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

    def diag_entry(i):  # i = n (padding): a zero vector
        return hvp(jax.nn.one_hot(i, n, dtype=flat.dtype))[jnp.minimum(i, n - 1)]

    return jnp.sum(_map_padded(diag_entry, jnp.arange(n), batch, n))


def dense_hessian(loss: Callable, params, *, batch: int = 64) -> jax.Array:
    """The (P, P) Hessian of ``loss`` at ``params`` (flattened), from P Hessian-vector products ``batch`` at a
    time, symmetrised ((H + H^T) / 2: the products' rounding makes the columns slightly unsymmetric)."""
    return _compiled(lambda p: _dense_hessian(loss, p, batch), params)


def _dense_hessian(loss: Callable, params, batch: int) -> jax.Array:
    flat, hvp = _flat_hvp(loss, params)
    n = flat.shape[0]
    columns = _map_padded(lambda i: hvp(jax.nn.one_hot(i, n, dtype=flat.dtype)), jnp.arange(n), batch, n)
    return (columns + columns.T) / 2


def curvature(loss: Callable, params, *, key_hutchinson: jax.Array, key_lanczos: jax.Array,
              n_samples: int = 100, k: int = 5, n_iter: int = 30, batch: int = 64):
    """(exact trace, Hutchinson mean, its standard error, the ``k`` top eigenvalues) from the dense Hessian
    (``dense_hessian``): the same measures as ``hessian_trace``, ``hutchinson_trace`` (the same probes for the
    same key) and ``lanczos_eigenvalues`` (the same start), in one program with one Hessian-vector product."""
    def body(p, k_h, k_l):
        flat = ravel_pytree(p)[0]
        h = _dense_hessian(loss, p, batch)
        matvec = lambda v: jnp.matmul(h, v, precision=_FULL)  # noqa: E731
        mean, se = _hutchinson_of(matvec, flat, k_h, n_samples, batch)
        return jnp.trace(h), mean, se, _lanczos_of(matvec, flat, k_l, k, n_iter)

    return _compiled(body, params, key_hutchinson, key_lanczos)


def hutchinson_trace(loss: Callable, params, *, key: jax.Array, n_samples: int = 100,
                     batch: int = 32) -> tuple[jax.Array, jax.Array]:
    """(estimate, standard error) of the Hessian trace from ``n_samples`` Rademacher probes."""
    return _compiled(lambda p, k: _hutchinson_trace(loss, p, k, n_samples, batch), params, key)


def _hutchinson_trace(loss: Callable, params, key: jax.Array, n_samples: int, batch: int):
    flat, hvp = _flat_hvp(loss, params)
    return _hutchinson_of(hvp, flat, key, n_samples, batch)


def _hutchinson_of(matvec: Callable, flat, key: jax.Array, n_samples: int, batch: int):
    """(mean, standard error) of v^T ``matvec``(v) over Rademacher v of ``flat``'s size and dtype."""
    probes = jax.random.rademacher(key, (n_samples, flat.shape[0]), dtype=flat.dtype)
    values = _map_padded(lambda v: jnp.dot(v, matvec(v), precision=_FULL), probes, batch, 0)
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
    return _lanczos_of(hvp, flat, key, k, n_iter)


def _lanczos_of(hvp: Callable, flat, key: jax.Array, k: int, n_iter: int) -> jax.Array:
    """The ``k`` largest Ritz values of the symmetric operator ``hvp`` on vectors like ``flat``."""
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
