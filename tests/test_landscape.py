"""Hessian measures against the dense Hessian of small models."""

import json

import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qrobust.analysis.landscape import (curvature, dense_hessian, full_hessian_trace_and_spectrum, hessian_trace,
                                        hutchinson_trace, lanczos_eigenvalues)
from qrobust.models import mlp, qnn


def _mlp_loss():
    rng = np.random.default_rng(0)
    model = mlp(8, (5, 3))
    x = jnp.asarray(rng.normal(size=(20, 8)))
    y = jnp.asarray((rng.random(20) > 0.5).astype(float))
    params = jax.tree_util.tree_map(lambda a: a * 3.0, model.init(jax.random.PRNGKey(1)))

    def loss(p):
        logits = jax.vmap(model.apply, in_axes=(None, 0))(p, x)
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))

    return loss, params


def _qnn_loss():
    rng = np.random.default_rng(1)
    model = qnn(4, 2, dtype="complex128", ansatz="rxry_cnot")
    states = rng.normal(size=(12, 16)) + 1j * rng.normal(size=(12, 16))
    x = model.prepare(states / np.linalg.norm(states, axis=1, keepdims=True))
    y = jnp.asarray((rng.random(12) > 0.5).astype(float))
    params = jnp.asarray(rng.uniform(-1, 1, size=(2, 4, 2)))

    def loss(p):
        logits = jax.vmap(model.apply, in_axes=(None, 0))(p, x)
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, y))

    return loss, params


@pytest.mark.parametrize("make", [pytest.param(_mlp_loss, marks=pytest.mark.slow),
                                  pytest.param(_qnn_loss, marks=pytest.mark.slow)])  # 10 s, 34 s on busy cores
def test_exact_trace_matches_the_dense_hessian(x64, make):
    loss, params = make()
    exact, _ = full_hessian_trace_and_spectrum(loss, params)
    got = float(hessian_trace(loss, params, batch=7))
    assert abs(got - exact) <= 1e-6 * abs(exact)


@pytest.mark.slow  # about 15 s on 2 busy cores (2026-12-02): kept out of the default suite; CI runs it
def test_hutchinson_error_bar_covers_the_exact_trace(x64):
    loss, params = _mlp_loss()
    exact, _ = full_hessian_trace_and_spectrum(loss, params)
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(10))
    means, ses = jax.vmap(lambda k: hutchinson_trace(loss, params, key=k, n_samples=200))(keys)  # one program
    assert np.all(np.asarray(ses) > 0)
    covered = np.sum(np.abs(np.asarray(means) - exact) <= 2 * np.asarray(ses))
    assert covered >= 8  # a 2-sigma interval covers ~95 % of the time


@pytest.mark.parametrize("make", [_mlp_loss, pytest.param(_qnn_loss, marks=pytest.mark.slow)])
def test_lanczos_top_eigenvalues(x64, make):
    loss, params = make()
    _, spectrum = full_hessian_trace_and_spectrum(loss, params)
    top = np.asarray(lanczos_eigenvalues(loss, params, key=jax.random.PRNGKey(0), k=3, n_iter=min(40, spectrum.size)))
    np.testing.assert_allclose(top, spectrum[:3], rtol=1e-6, atol=1e-8)


def test_the_dense_route_gives_the_products_measures(x64):
    """``curvature`` (every measure from the dense Hessian, one program) against the dense Hessian of
    ``jax.hessian`` and against the Hessian-vector-product measures with the same keys."""
    loss, params = _mlp_loss()
    flat, unravel = jax.flatten_util.ravel_pytree(params)
    reference = np.asarray(jax.hessian(lambda f: loss(unravel(f)))(flat))
    exact, spectrum = np.trace(reference), np.sort(np.linalg.eigvalsh((reference + reference.T) / 2))[::-1]
    np.testing.assert_allclose(np.asarray(dense_hessian(loss, params, batch=7)), (reference + reference.T) / 2,
                               rtol=1e-9, atol=1e-12)
    k_h, k_l = jax.random.PRNGKey(3), jax.random.PRNGKey(4)
    trace, mean, se, top = curvature(loss, params, key_hutchinson=k_h, key_lanczos=k_l, n_samples=50, k=3,
                                     n_iter=min(40, spectrum.size), batch=7)
    assert abs(float(trace) - exact) <= 1e-9 * abs(exact)
    by_products = hutchinson_trace(loss, params, key=k_h, n_samples=50, batch=7)
    np.testing.assert_allclose([mean, se], by_products, rtol=1e-6)  # the same probes; float32 weights
    np.testing.assert_allclose(np.asarray(top), spectrum[:3], rtol=1e-6, atol=1e-8)


def test_lanczos_survives_breakdown_on_a_rank_one_hessian():
    """loss = (a . p)^2 / 2 has H = a a^T: one eigenvalue |a|^2, the rest 0; Lanczos breaks down at step 2."""
    a = jnp.asarray(np.linspace(-1.0, 2.0, 12), jnp.float32)
    top = np.asarray(lanczos_eigenvalues(lambda p: 0.5 * jnp.dot(a, p) ** 2, jnp.ones(12, jnp.float32),
                                         key=jax.random.PRNGKey(0), k=3, n_iter=8))
    np.testing.assert_allclose(top, [float(jnp.dot(a, a)), 0.0, 0.0], atol=1e-4)


@pytest.mark.slow  # kept out of the default suite (10 minutes on 2 cores); CI runs it
def test_landscape_command_end_to_end(tmp_path, capsys):
    import pandas as pd

    from qrobust.cli import main

    out = tmp_path / "l"
    args = ["landscape", "--dataset", "xxz", "--qubits", "4", "--alphas", "0,0.3", "--seeds", "2", "--epochs", "3",
            "--hutchinson", "30", "--n-eval", "20", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    table = pd.read_csv(out / "landscape.csv")
    assert len(table) == 2 * 2 * 2 and (out / "landscape.png").exists()
    # the Hessian's simulator has forward mode, and is recorded beside the training's
    recorded = json.loads((out / "config.json").read_text())["settings"]
    assert recorded["hessian_simulators"]["qnn"] in ("blocks", "tc-fused", "tc-gates")
    assert np.allclose(table[table.alpha == 0].ratio, 1.0)
    # Hutchinson agrees with the exact trace within a few standard errors (plus float32 slack)
    gap = (table.trace_hutchinson - table.trace_exact).abs()
    assert (gap <= 4 * table.trace_hutchinson_se + 1e-3 * table.trace_exact.abs()).all()
    assert (table.eig_1 >= table.eig_2 - 1e-6).all()
    capsys.readouterr()
    assert main(["landscape", "--alphas", "0.2,0.3", "--out", str(tmp_path / "bad")]) == 2
    assert "include alpha 0" in capsys.readouterr().err and not (tmp_path / "bad").exists()
