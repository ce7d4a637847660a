"""The native C++ simulator against exact statevectors and exact gradients (complex128, numpy and "blocks")."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrobust import sharding
from qrobust.errors import ConfigError
from qrobust.models import batch_logits, qnn
from qrobust.models.qnn import default_simulator
from test_qnn import _random_state, numpy_qnn_expectation

FLOAT32_TOL = 2e-5  # logits are 5 <Z>; float32 rounding over ~40 gates on 2**n amplitudes


@pytest.mark.parametrize("n, depth, pruning", [(5, 2, True), (6, 4, True), (7, 3, False), (5, 1, False)])
def test_native_matches_numpy_statevector(n, depth, pruning):
    rng = np.random.default_rng(n * 10 + depth)
    model = qnn(n, depth, simulator="native", light_cone_pruning=pruning)
    params = rng.uniform(-np.pi, np.pi, size=(depth, n, 4))
    states = np.stack([_random_state(rng, n) for _ in range(5)])
    got = np.asarray(batch_logits(model)(jnp.asarray(params, jnp.float32), model.prepare(states)))
    expected = [5.0 * numpy_qnn_expectation(params, s, n) for s in states]
    assert np.max(np.abs(got - expected)) < FLOAT32_TOL
    one = model.apply(jnp.asarray(params, jnp.float32), model.prepare(states[:1])[0])
    assert abs(float(one) - expected[0]) < FLOAT32_TOL


@pytest.mark.parametrize("n, depth", [(5, 3), (8, 4)])
def test_native_gradient_equals_exact_gradient(x64, n, depth):
    """Adjoint gradient (float32) against reverse mode through the complex128 "blocks" kernel; the
    weights include zeros (skipped states) and negative values."""
    rng = np.random.default_rng(7)
    params = rng.uniform(-np.pi, np.pi, size=(depth, n, 4))
    states = np.stack([_random_state(rng, n) for _ in range(6)])
    weights = np.array([0.3, -1.2, 0.0, 2.0, 0.7, -0.1])

    def grad_for(simulator, dtype, real):
        model = qnn(n, depth, dtype=dtype, simulator=simulator)
        logits = batch_logits(model)
        x = model.prepare(states)
        return np.asarray(jax.grad(lambda p: jnp.sum(jnp.tanh(logits(p, x)) * weights))(jnp.asarray(params, real)))

    exact = grad_for("blocks", "complex128", jnp.float64)
    native = grad_for("native", "complex64", jnp.float32)
    assert np.abs(exact).max() > 0.1  # a gradient worth comparing
    assert np.max(np.abs(native - exact)) < 1e-4 * max(1.0, np.abs(exact).max())


def test_native_under_vmap_equals_one_replica_at_a_time():
    model = qnn(6, 2, simulator="native")
    params = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(0), 3)) * 50
    states = model.prepare(np.stack([_random_state(np.random.default_rng(i), 6) for i in range(4)]))
    logits = batch_logits(model)
    together = jax.vmap(logits, in_axes=(0, None))(params, states)
    one_by_one = jnp.stack([logits(p, states) for p in params])
    assert np.array_equal(np.asarray(together), np.asarray(one_by_one))


def test_native_refuses_what_it_cannot_do():
    with pytest.raises(ConfigError, match="5 to 20 qubits"):
        qnn(4, 2, simulator="native")
    with pytest.raises(ConfigError, match="'hea' ansatz only"):
        qnn(6, 2, simulator="native", ansatz="rxry_cnot")
    model = qnn(5, 2, simulator="native")
    params = model.init(jax.random.PRNGKey(0))
    x = model.prepare(np.ones((2, 32)) / np.sqrt(32))
    with pytest.raises(NotImplementedError, match="parameters only"):
        jax.grad(lambda s: jnp.sum(batch_logits(model)(params, s)).real)(x)


def test_native_refuses_complex128(x64):
    with pytest.raises(ConfigError, match="complex64 only"):
        qnn(6, 2, dtype="complex128", simulator="native")
    assert default_simulator(6, "complex128", "hea") == "blocks"


def test_default_simulator_is_native_on_cpu():
    assert default_simulator(10, "complex64", "hea") == "native"
    assert default_simulator(4, "complex64", "hea") == "blocks"
    assert default_simulator(10, "complex64", "rxry_cnot") == "tc-fused"


def test_on_an_accelerator_the_default_is_blocks_and_native_is_refused(monkeypatch):
    """The kernel is registered for the CPU platform only (no GPU in CI: the device check is patched)."""
    monkeypatch.setattr(sharding, "cpu_only", lambda: False)
    assert default_simulator(10, "complex64", "hea") == "blocks"
    with pytest.raises(ConfigError, match="runs on CPU devices"):
        qnn(10, 2, simulator="native")
