"""The QNN against an independent plain-numpy statevector simulation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrobust.errors import ConfigError, DataError
from qrobust.models import light_cone, qnn

I2 = np.eye(2)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Y = np.array([[0, -1j], [1j, 0]])
Z = np.diag([1.0, -1.0]).astype(complex)


def _expm_pauli(theta, P):
    return np.cos(theta / 2) * np.eye(len(P)) - 1j * np.sin(theta / 2) * P


def _on(n, ops: dict):
    """Kronecker product placing ops[q] on qubit q (qubit 0 most significant)."""
    out = np.array([[1.0 + 0j]])
    for q in range(n):
        out = np.kron(out, ops.get(q, I2))
    return out


def numpy_qnn_expectation(params, state, n):
    """<Z_{n-1}> after the paper's ansatz, gate by gate, with dense 2**n matrices."""
    psi = state.astype(complex)
    for layer in params:
        for q in range(n):
            a, b, c, _ = layer[q]
            for theta, P in ((a, X), (b, Y), (c, X)):
                psi = _on(n, {q: _expm_pauli(theta, P)}) @ psi
        for q in range(n):
            zz = _on(n, {q: Z, (q + 1) % n: Z})
            psi = _expm_pauli(layer[q][3], zz) @ psi
    return float(np.real(np.conj(psi) @ _on(n, {n - 1: Z}) @ psi))


def _random_state(rng, n):
    v = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("n, depth, block", [(4, 3, 2), (5, 2, 5), (6, 4, 3), (3, 1, 1)])
@pytest.mark.parametrize("fused", [True, False])
def test_qnn_matches_numpy_statevector(x64, n, depth, block, fused):
    rng = np.random.default_rng(n * 10 + depth)
    model = qnn(n, depth, dtype="complex128", fused=fused, block_size=block)
    for _ in range(3):
        params = rng.uniform(-np.pi, np.pi, size=(depth, n, 4))
        state = _random_state(rng, n)
        expected = 5.0 * numpy_qnn_expectation(params, state, n)
        got = model.apply(jnp.asarray(params), model.prepare(state[None])[0])
        assert abs(float(got) - expected) < 1e-10


def numpy_rxry_cnot_expectation(params, state, n):
    """<Z_{n-1}> after RX, RY on every qubit then the CNOT ring, layer by layer, dense matrices."""
    P0, P1 = np.diag([1.0, 0.0]), np.diag([0.0, 1.0])
    psi = state.astype(complex)
    for layer in params:
        for q in range(n):
            psi = _on(n, {q: _expm_pauli(layer[q][0], X)}) @ psi
            psi = _on(n, {q: _expm_pauli(layer[q][1], Y)}) @ psi
        for q in range(n):
            t = (q + 1) % n
            psi = (_on(n, {q: P0}) + _on(n, {q: P1, t: X})) @ psi
    return float(np.real(np.conj(psi) @ _on(n, {n - 1: Z}) @ psi))


@pytest.mark.parametrize("fused", [True, False])
def test_rxry_cnot_variant_matches_numpy(x64, fused):
    rng = np.random.default_rng(5)
    n, depth = 5, 3
    model = qnn(n, depth, dtype="complex128", ansatz="rxry_cnot", fused=fused, block_size=3)
    params = rng.uniform(-np.pi, np.pi, size=(depth, n, 2))
    assert model.init(jax.random.PRNGKey(0)).shape == (depth, n, 2)
    for _ in range(3):
        state = _random_state(rng, n)
        got = model.apply(jnp.asarray(params), model.prepare(state[None])[0])
        assert abs(float(got) - 5.0 * numpy_rxry_cnot_expectation(params, state, n)) < 1e-10


def test_light_cone_pruning_is_exact_and_prunes(x64):
    rng = np.random.default_rng(0)
    n, depth = 6, 3
    full = qnn(n, depth, dtype="complex128", light_cone_pruning=False)
    pruned = qnn(n, depth, dtype="complex128", light_cone_pruning=True)
    params = jnp.asarray(rng.normal(size=(depth, n, 4)))
    state = pruned.prepare(_random_state(rng, n)[None])[0]
    assert abs(float(full.apply(params, state)) - float(pruned.apply(params, state))) < 1e-12
    rotations, pairs = light_cone(n, depth, n - 1)
    assert rotations[-1] == (n - 1,) and pairs[-1] == ()
    assert rotations[-2] == (0, n - 2, n - 1) and pairs[-2] == (n - 2, n - 1)
    # gradients of pruned gates are exactly zero in the full circuit too
    g = jax.grad(full.apply)(params, state)
    assert float(jnp.abs(g[-1, : n - 1]).max()) < 1e-12


def test_complex64_close_to_complex128():
    rng = np.random.default_rng(1)
    n, depth = 5, 3
    params = rng.normal(size=(depth, n, 4))
    state = _random_state(rng, n)
    model = qnn(n, depth)
    got = float(model.apply(jnp.asarray(params, jnp.float32), model.prepare(state[None])[0]))
    assert abs(got - 5.0 * numpy_qnn_expectation(params, state, n)) < 1e-5


def test_init_shape_and_scale():
    params = qnn(4, 3).init(jax.random.PRNGKey(0))
    assert params.shape == (3, 4, 4) and params.dtype == jnp.float32
    assert 0.003 < float(jnp.std(params)) < 0.03


def test_qnn_rejects_wrong_input_length():
    model = qnn(4, 2)
    with pytest.raises(DataError, match="power-of-two"):
        model.prepare(np.ones((3, 12)))
    with pytest.raises(ConfigError, match="length 16"):
        model.prepare(np.ones((3, 32)))


def test_complex128_without_x64_is_explained():
    if jax.config.read("jax_enable_x64"):
        pytest.skip("64-bit mode already on")
    with pytest.raises(ConfigError, match="JAX_ENABLE_X64"):
        qnn(4, 2, dtype="complex128")
