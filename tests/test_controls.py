"""The classical controls of the QNN (qrobust.models.controls) against independent truths: a QNN's own unitary
(TensorCircuit), numpy's eigenvalues, explicit sums and partial traces, optax's arithmetic; and a tiny sweep
that trains them beside the QNN."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrobust.data import Dataset
from qrobust.errors import ConfigError
from qrobust.models import controls, registry
from qrobust.models.base import batch_logits, count_params
from qrobust.models.registry import BuildOptions, ModelSettings

SETTINGS = ModelSettings(epochs=1, batch_size=4, learning_rate=0.01)


def _states(n, dim, *, complex_=True, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)) + (1j * rng.normal(size=(n, dim)) if complex_ else 0)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _dataset(n_qubits=3, *, complex_=True, n=8, meta=None):
    x = _states(2 * n, 2**n_qubits, complex_=complex_, seed=n_qubits)
    y = np.arange(2 * n) % 2
    return Dataset("toy", x[:n], y[:n], x[n:], y[n:], n_qubits, dict(meta or {}))


def _logits(model, params, states):
    return np.asarray(batch_logits(model)(params, model.prepare(states)))


def _qnn_observable(n_qubits, depth, params):
    """M = U^dagger Z_{L-1} U of the "hea" circuit at ``params``, U from TensorCircuit's own matrix of the circuit
    (qubit 0 the most significant bit: Z_{L-1} is the sign of the last bit)."""
    from qrobust.backend import tc_context
    from qrobust.models.ansatze import ansatz

    with tc_context("complex64") as tc, tc.runtime_backend("numpy"):  # numpy: no JAX dispatch per gate
        c = tc.Circuit(n_qubits)
        ansatz("hea").circuit(n_qubits, depth)(c, np.asarray(params), None)
        u = np.asarray(c.matrix(), np.complex128)
    z = np.diag(1.0 - 2.0 * (np.arange(2**n_qubits) & 1))
    return u.conj().T @ z @ u


def test_the_quadratic_control_reproduces_a_qnn_from_its_unitary():
    """With Q the eigenvectors of U^dagger Z U and tanh(s) its eigenvalues (+-1: s = +-20, tanh exactly +-1 in
    float32), the quadratic control is that QNN: the same logits on random complex states; on real states,
    with Re(M) (what x^T M x reads), the real control is too."""
    from qrobust.models.qnn import qnn

    n, depth = 4, 2
    theta = np.random.default_rng(1).normal(size=(depth, n, 4)).astype(np.float32)
    m = _qnn_observable(n, depth, theta)
    net = qnn(n, depth, simulator="blocks")  # XLA's statevector (the native kernel would be compiled first)
    lam, v = np.linalg.eigh(m)
    np.testing.assert_allclose(np.abs(lam), 1, atol=1e-5)  # the QNN's spectrum

    quad = controls.quadratic_model(16, complex_input=True, rank=None)
    params = {"a": jnp.asarray(v.real, jnp.float32), "a_imag": jnp.asarray(v.imag, jnp.float32),
              "s": jnp.asarray(20 * np.sign(lam), jnp.float32)}
    x = _states(32, 16)
    want = _logits(net, jnp.asarray(theta), x)
    np.testing.assert_allclose(_logits(quad, params, x), want, atol=2e-4)
    np.testing.assert_allclose(want, 5 * np.einsum("bi,ij,bj->b", x.conj(), m, x).real, atol=2e-4)

    lam_r, v_r = np.linalg.eigh(m.real)
    real = controls.quadratic_model(16, complex_input=False, rank=None)
    params = {"a": jnp.asarray(v_r, jnp.float32),
              "s": jnp.asarray(np.arctanh(np.clip(lam_r, -1 + 1e-12, 1 - 1e-12)), jnp.float32)}
    xr = _states(32, 16, complex_=False, seed=3)
    np.testing.assert_allclose(_logits(real, params, xr), _logits(net, jnp.asarray(theta), xr), atol=2e-4)


@pytest.mark.parametrize("complex_", [False, True])
@pytest.mark.parametrize("rank", [3, None])
def test_the_quadratic_controls_norm_is_at_most_one_for_any_parameters(complex_, rank):
    model = controls.quadratic_model(16, complex_input=complex_, rank=rank)
    draws = [model.init(jax.random.PRNGKey(k)) for k in range(3)]
    p = draws[0]
    for scale_a, s in ((1e20, 1e6), (1e-20, -1e6), (1.0, 30.0), (1e3, 1e30)):
        draws.append({**jax.tree_util.tree_map(lambda a: a * scale_a, {k: v for k, v in p.items() if k != "s"}),
                      "s": jnp.full_like(p["s"], s).at[0].set(-s)})
    for params in draws:
        m = np.asarray(controls.quadratic_matrix(params), np.complex128)
        np.testing.assert_allclose(m, m.conj().T, atol=1e-6)
        lam = np.linalg.eigvalsh(m)
        assert np.abs(lam).max() <= 1 + 1e-5, np.abs(lam).max()
        assert np.sum(np.abs(lam) > 1e-4) <= (16 if rank is None else rank)
        x = _states(4, 16, complex_=complex_)
        np.testing.assert_allclose(_logits(model, params, x), 5 * np.einsum("bi,ij,bj->b", x.conj(), m, x).real,
                                   atol=1e-4)


@pytest.mark.parametrize("complex_", [False, True])
def test_quadratic_pm1_has_the_qnns_exact_spectrum_and_refuses_large_sizes(complex_):
    model = controls.quadratic_pm1_model(16, complex_input=complex_)
    for key in range(2):
        params = model.init(jax.random.PRNGKey(key))
        m = np.asarray(controls.pm1_matrix(params), np.complex128)
        lam = np.linalg.eigvalsh(m)
        np.testing.assert_allclose(lam, [-1.0] * 8 + [1.0] * 8, atol=1e-5)
        x = _states(4, 16, complex_=complex_)
        np.testing.assert_allclose(_logits(model, params, x), 5 * np.einsum("bi,ij,bj->b", x.conj(), m, x).real,
                                   atol=1e-4)
    with pytest.raises(ConfigError, match=r"quadratic_pm1 control at 11 qubits \(d = 2048\) is refused"):
        registry.build("quadratic_pm1", _dataset(11, complex_=complex_, n=2), SETTINGS)
    assert controls.quadratic_pm1(max_qubits=11).build(_dataset(11, n=2), SETTINGS, BuildOptions()).input_shape \
        == (2048,)


def test_the_fidelity_kernel_is_the_explicit_sum_over_the_clean_training_states():
    ds = _dataset(3)
    model = registry.build("fidelity_kernel", ds, SETTINGS)
    rng = np.random.default_rng(5)
    params = {"a": jnp.asarray(rng.normal(size=8), jnp.float32), "b": jnp.asarray(0.3, jnp.float32)}
    x = _states(5, 8, seed=9)
    want = [sum(params["a"][i] * abs(np.vdot(ds.x_train[i], xj)) ** 2 for i in range(8)) + 0.3 for xj in x]
    np.testing.assert_allclose(_logits(model, params, x), want, rtol=1e-5, atol=1e-5)
    assert count_params(model.init(jax.random.PRNGKey(0))) == 9 and model.settings["n_basis"] == 8
    assert np.all(_logits(model, model.init(jax.random.PRNGKey(0)), x) == 0)  # from zeros


def _partial_trace(state, q, n):
    """rho_q by the full density matrix, traced over every other qubit (numpy, qubit 0 most significant)."""
    rho = np.outer(state, state.conj()).reshape([2] * (2 * n))
    keep = list(range(n))
    for k in reversed([k for k in keep if k != q]):
        rho = np.trace(rho, axis1=k, axis2=k + rho.ndim // 2)
    return rho


def test_the_projected_kernels_marginals_are_partial_traces():
    from qrobust.backend import tc_context

    n = 3
    x = _states(4, 8, seed=2)
    rdms = np.asarray(controls.one_qubit_rdms(jnp.asarray(x, jnp.complex64)))
    assert rdms.shape == (4, n, 2, 2)
    with tc_context("complex64") as tc:
        for b in range(4):
            for q in range(n):
                np.testing.assert_allclose(rdms[b, q], _partial_trace(x[b], q, n), atol=1e-6)
                theirs = tc.quantum.reduced_density_matrix(jnp.asarray(x[b], jnp.complex64),
                                                           cut=[k for k in range(n) if k != q])
                np.testing.assert_allclose(rdms[b, q], np.asarray(theirs), atol=1e-6)

    ds = _dataset(n)
    model = controls.projected_kernel(gamma=0.7).build(ds, SETTINGS, BuildOptions())
    k = np.asarray(model.prepare(x))
    want = [[np.exp(-0.7 * sum(np.linalg.norm(_partial_trace(xb, q, n) - _partial_trace(xi, q, n)) ** 2
                               for q in range(n))) for xi in ds.x_train] for xb in x]
    np.testing.assert_allclose(k, want, rtol=1e-5, atol=1e-6)
    assert model.settings["gamma"] == 0.7


def test_mlp_invariant_ignores_a_global_phase_but_not_a_relative_one():
    ds = _dataset(3)
    model = registry.build("mlp_invariant", ds, SETTINGS)
    params = model.init(jax.random.PRNGKey(0))
    x = _states(6, 8, seed=4)
    base = _logits(model, params, x)
    np.testing.assert_allclose(_logits(model, params, x * np.exp(1.3j)), base, atol=1e-5)
    np.testing.assert_allclose(_logits(model, params, -x), base, atol=1e-5)
    relative = x * np.exp(1j * np.array([0, 0, 0, 0, 1.0, 1.0, 1.0, 1.0]))
    assert np.abs(_logits(model, params, relative) - base).min() > 1e-4
    mlp = registry.build("mlp", ds, ModelSettings(epochs=1, batch_size=4, learning_rate=0.01))
    assert not np.allclose(_logits(mlp, params, x * np.exp(1.3j)), _logits(mlp, params, x), atol=1e-3)


def test_logistic_counts_and_mlp_wd_decays_its_weights():
    assert count_params(registry.build("logistic", _dataset(3), SETTINGS).init(jax.random.PRNGKey(0))) == 2 * 8 + 1
    assert count_params(registry.build("logistic", _dataset(3, complex_=False), SETTINGS)
                        .init(jax.random.PRNGKey(0))) == 8 + 1
    assert registry.spec("logistic").family == "qnn" and registry.spec("mlp_wd").family == "mlp"

    from qrobust.experiments.settings import model_settings
    from qrobust.optimizers import get

    s = model_settings("mnist", "mlp_wd")
    assert s.optimizer == "adamw_wd0.01" and s.hidden == (64, 16)
    optimizer = get(s.optimizer)
    model = registry.build("mlp_wd", _dataset(3, complex_=False), s)
    assert model.settings["weight_decay"] == 0.01 and model.name == "mlp_wd"
    params = model.init(jax.random.PRNGKey(0))
    lr = 0.05
    tx = optimizer.transform()(lr)  # as the engine makes it: the rate in the optimiser's state
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    for p, u in zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(updates)):
        np.testing.assert_allclose(np.asarray(u), -lr * 0.01 * np.asarray(p), rtol=1e-6, atol=1e-12)
    assert controls.mlp_wd(0.1, name="mlp_wd01").training["optimizer"] == "adamw_wd0.1"


def test_mlp_pca_reads_the_angle_encodings_features():
    from qrobust.data.features import feature_dataset

    ds = _dataset(4, n=24)
    model = registry.build("mlp_pca", ds, SETTINGS)
    features = feature_dataset(ds, 10)
    np.testing.assert_allclose(np.asarray(model.prepare(ds.x_train)), features.x_train, atol=1e-5)
    np.testing.assert_allclose(np.asarray(model.prepare(ds.x_val)), features.x_val, atol=1e-5)
    assert model.input_shape == (10,) and model.settings["n_components"] == 10
    assert controls.mlp_pca(3).build(ds, SETTINGS, BuildOptions()).input_shape == (3,)


def test_inputs_that_do_not_fit_are_refused_by_name():
    from qrobust.data.features import feature_dataset

    angle = feature_dataset(_dataset(3), 3)
    for name in controls.CONTROLS:
        with pytest.raises(ConfigError, match=f"the {name} control reads amplitude-encoded states"):
            registry.build(name, angle, SETTINGS)
    real = registry.build("quadratic", _dataset(3, complex_=False), SETTINGS)
    with pytest.raises(ConfigError, match="quadratic control reads real states of length 8"):
        real.prepare(_states(2, 8))
    with pytest.raises(ConfigError, match="reads real states of length 8"):
        real.prepare(_states(2, 16, complex_=False))
    placeholder = Dataset("shape", np.zeros((1, 8)), np.zeros(1, int), np.zeros((1, 8)), np.zeros(1, int), 3)
    with pytest.raises(ConfigError, match="built from the training states"):
        registry.build("fidelity_kernel", placeholder, SETTINGS)
    with pytest.raises(ConfigError, match="rank must be a positive integer"):
        controls.quadratic(rank=0)
    with pytest.raises(ConfigError, match="taken by a built-in model"):
        registry.register(controls.quadratic(rank=4))
    assert registry.build("quadratic", _dataset(3), SETTINGS).settings["rank"] == 8  # capped at d


def test_a_tiny_sweep_trains_the_controls_beside_the_qnn(tmp_path):
    import qrobust as qr

    models = ("qnn", "quadratic", "logistic", "fidelity_kernel")
    config = qr.SweepConfig(dataset="xxz", n_qubits=4, gauge="fixed", models=models, corruptions=("flip",),
                            alphas=(0.0, 0.5), seeds=1, epochs=2, batch_size=8, depth=1,
                            simulator="blocks")
    results = qr.run_sweep(config, tmp_path / "run", progress=False)
    assert set(results.model) == set(models)
    assert len(results) == len(models) * 2 * 2  # models x alphas x epochs
    assert np.isfinite(results.loss).all() and not results.diverged.any()
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]["models"]
    assert set(recorded) == set(models)
    assert recorded["quadratic"]["rank"] == 32 and recorded["quadratic"]["epochs"] == 2
    assert recorded["logistic"]["learning_rate"] == recorded["qnn"]["learning_rate"]  # trained as the QNN
    n_params = results.groupby("model").n_params.first()
    assert n_params["logistic"] == 2 * 16 + 1 and n_params["quadratic"] == 2 * 16 * 16 + 16  # rank 32 capped at 16
    run = qr.load_results(tmp_path / "run")
    assert run.predict("quadratic", np.eye(16, dtype=complex)[:3]).shape == (2, 3)  # 2 replicas, 3 states
    with pytest.raises(ConfigError, match="built from the training states"):  # its basis is not in programs.json
        run.predict("fidelity_kernel", np.eye(16, dtype=complex)[:3])
