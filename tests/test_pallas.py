"""The "pallas" simulator (``qrobust.models.pallas_sim``) in Pallas's interpret mode (no GPU needed), against the
"blocks" simulator's reverse mode and the native C++ kernel, under vmap over replicas, in the engine, and
lowered (not compiled) for a GPU to check that Pallas's Triton backend takes every operation of the kernels.

Interpret mode compiles each kernel as an XLA program on CPU (a few seconds each), so the results of each circuit
are computed once (``_pallas``) and shared by the tests that compare them.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrobust.errors import ConfigError
from qrobust.models import hea, pallas_sim, qnn

FLOAT32_TOL = 2e-5  # logits are 5 <Z>; float32 rounding over the circuit's gates
GRAD_TOL = 1e-4  # relative to the gradient's largest entry
CIRCUITS = [(5, 2, True), pytest.param(6, 3, False, marks=pytest.mark.slow)]  # (qubits, depth, light_cone_pruning)


def _inputs(n, depth, batch=5, seed=0):
    """float32 parameters uniform in (-pi, pi) (a non-trivial circuit), normalised complex states, and weights of
    the logits (zero and negative ones included)."""
    rng = np.random.default_rng(seed + 10 * n + depth)
    params = jnp.asarray(rng.uniform(-np.pi, np.pi, size=(depth, n, 4)), jnp.float32)
    states = rng.normal(size=(batch, 2**n)) + 1j * rng.normal(size=(batch, 2**n))
    states /= np.linalg.norm(states, axis=1, keepdims=True)
    weights = jnp.asarray(np.array([0.3, -1.2, 0.0, 2.0, 0.7, -0.1, 1.1, 0.4][:batch]), jnp.float32)
    return params, states, weights


def _logits_and_gradient(simulator, n, depth, pruning, params, states, weights):
    """(logits, gradient of sum weights * logits) of ``qnn(..., simulator=...)``'s whole-batch logits."""
    model = qnn(n, depth, simulator=simulator, light_cone_pruning=pruning)
    assert model.settings["simulator"] == simulator
    x = model.prepare(states)

    @jax.jit
    def run(p):
        logits, vjp = jax.vjp(lambda q: model.apply_batch(q, x), p)
        return logits, vjp(weights)[0]

    return tuple(np.asarray(a) for a in run(params))


@functools.cache
def _pallas(n, depth, pruning):
    return _logits_and_gradient("pallas", n, depth, pruning, *_inputs(n, depth))


def _assert_close(got, expected):
    logits, grad = got
    ref_logits, ref_grad = expected
    assert np.max(np.abs(logits - ref_logits)) < FLOAT32_TOL
    scale = np.abs(ref_grad).max()
    assert scale > 0.1  # a gradient worth comparing
    assert np.max(np.abs(grad - ref_grad)) < GRAD_TOL * max(1.0, scale)


@pytest.mark.parametrize("n, depth, pruning", CIRCUITS)
def test_logits_and_gradient_equal_blocks(n, depth, pruning):
    """The forward kernel's logits and the adjoint kernel's gradient against "blocks"'s reverse mode (its zero
    gradient of the gates outside the light cone too); a batch of 5 pads the kernel's blocks of examples."""
    expected = _logits_and_gradient("blocks", n, depth, pruning, *_inputs(n, depth))
    _assert_close(_pallas(n, depth, pruning), expected)


@pytest.mark.parametrize("n, depth, pruning", CIRCUITS)
def test_logits_and_gradient_equal_native(n, depth, pruning, native_kernel):
    expected = _logits_and_gradient("native", n, depth, pruning, *_inputs(n, depth))
    _assert_close(_pallas(n, depth, pruning), expected)


def test_under_vmap_over_replicas_equals_blocks():
    """Replicas of parameters and of states (the engine's "vmap" mode): Pallas's batching rule puts the replica
    axis on the kernels' grid."""
    n, depth = 5, 2
    params = jnp.stack([_inputs(n, depth, seed=s)[0] for s in (1, 2)])
    states = np.stack([_inputs(n, depth, batch=3, seed=s)[1] for s in (3, 4)])
    labels = jnp.asarray([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])

    def step(simulator):
        model = qnn(n, depth, simulator=simulator)

        def loss(p, x, y):
            z = model.apply_batch(p, x)
            return jnp.mean(jnp.logaddexp(0.0, z) - y * z)

        return jax.jit(jax.vmap(jax.value_and_grad(loss)))(params, model.prepare(states), labels)

    (value, grad), (ref_value, ref_grad) = step("pallas"), step("blocks")
    assert grad.shape == params.shape
    np.testing.assert_allclose(np.asarray(value), np.asarray(ref_value), atol=FLOAT32_TOL)
    scale = float(jnp.abs(ref_grad).max())
    assert float(jnp.abs(grad - ref_grad).max()) < GRAD_TOL * max(1.0, scale)

    def shared(simulator):  # replicas of parameters on one set of states (an evaluation)
        model = qnn(n, depth, simulator=simulator)
        return jax.jit(jax.vmap(model.apply_batch, in_axes=(0, None)))(params, model.prepare(states[0]))

    np.testing.assert_allclose(np.asarray(shared("pallas")), np.asarray(shared("blocks")), atol=FLOAT32_TOL)


def test_the_engine_trains_a_replica_as_with_blocks():
    """One epoch of ``make_train_fn`` (two steps of Adam, the end-of-epoch evaluation) gives the parameters and
    the loss of "blocks" to float32 rounding."""
    from qrobust.engine import EvalData, make_train_fn, plain_data

    n, depth, samples = 5, 2, 6
    _, states, _ = _inputs(n, depth, batch=samples, seed=5)
    y = jnp.asarray([[1.0, 0.0, 0.0, 1.0, 1.0, 0.0]])
    out, key = {}, jax.random.PRNGKey(3)
    for simulator in ("pallas", "blocks"):
        model = qnn(n, depth, simulator=simulator, init_std=1.0)
        params = model.init(key)[None]
        x = model.prepare(states)
        data = plain_data(x[None], y, y, jnp.zeros((1, samples), bool))
        train = make_train_fn(model, epochs=1, batch_size=4, n_samples=samples)
        out[simulator] = train(params, jnp.array([0.05]), key[None], data, EvalData(x, y[0]))
    (p, metrics), (p_ref, metrics_ref) = out["pallas"], out["blocks"]
    assert float(jnp.abs(p_ref - params).max()) > 1e-3  # it moved
    np.testing.assert_allclose(np.asarray(p), np.asarray(p_ref), atol=1e-5)
    np.testing.assert_allclose(np.asarray(metrics["loss"]), np.asarray(metrics_ref["loss"]), atol=1e-5)


def test_what_the_kernel_refuses():
    """No forward mode (an explicit choice that needs it is refused), no gradient with respect to the input
    states, complex64 and 2 to 14 qubits only; never the default simulator."""
    from qrobust.models import simulators
    from qrobust.models.ansatze import ansatz
    from qrobust.models.circuit import Circuit

    with pytest.raises(ConfigError, match="no forward mode"):
        qnn(5, 2, simulator="pallas", forward_mode=True)
    hea5 = Circuit(ansatz("hea"), 5, 2)
    assert "complex64 only" in simulators.why_not("pallas", hea5, dtype="complex128", on_accelerator=False)
    assert "2 to 14 qubits" in simulators.why_not("pallas", Circuit(ansatz("hea"), 15, 2), dtype="complex64",
                                                  on_accelerator=True)
    assert simulators.why_not("pallas", hea5, dtype="complex64", on_accelerator=True) is None
    assert simulators.SIMULATORS[-1] == "pallas"
    for on_accelerator in (False, True):
        name, _ = simulators.choose(Circuit(ansatz("hea"), 10, 2), dtype="complex64", on_accelerator=on_accelerator)
        assert name != "pallas"
    model = qnn(5, 2, simulator="pallas")
    params, states, _ = _inputs(5, 2, batch=2)
    x = model.prepare(states)
    with pytest.raises(NotImplementedError, match="parameters only"):
        jax.grad(lambda t: jnp.sum(model.apply_batch(params, x * t)))(jnp.float32(1.0))
    with pytest.raises(ValueError, match="power of two"):
        pallas_sim.examples_per_program(5, 3)


def test_the_kernels_lower_to_triton():
    """Lowered for a CUDA GPU (without one: Pallas lowers for compute capability 9.0), the forward and adjoint
    kernels of a vmapped training step are Triton modules that pass MLIR's verifier: every operation of the kernels
    has a lowering in Pallas's Triton backend. (Triton's own compiler runs on a GPU only.)"""
    try:
        from jax._src.pallas.triton import lowering, pallas_call_registration
    except Exception as error:  # a jaxlib without the Triton dialect
        pytest.skip(f"Pallas's Triton backend is not importable here: {error}")
    modules = []
    lower = lowering.lower_jaxpr_to_triton_module

    def verified(*args, **kwargs):
        result = lower(*args, **kwargs)
        modules.append((result.module.operation.verify(), result.module.operation.get_asm()))
        return result

    n, depth = 5, 2
    logits = pallas_sim.hea_logits(hea.plan("hea", n, depth, readout_scale=5.0, light_cone_pruning=True),
                                   interpret=False)
    step = jax.jit(jax.vmap(jax.value_and_grad(lambda p, x: jnp.sum(logits(p, x)))))
    params = jnp.zeros((2, depth, n, 4), jnp.float32)
    states = jnp.zeros((2, 4, 2**n), jnp.complex64)
    original = pallas_call_registration.lowering.lower_jaxpr_to_triton_module
    pallas_call_registration.lowering.lower_jaxpr_to_triton_module = verified
    try:
        text = step.trace(params, states).lower(lowering_platforms=("cuda",)).as_text()
    finally:
        pallas_call_registration.lowering.lower_jaxpr_to_triton_module = original
    names = sorted(asm.split("{")[0].split("@")[1].strip() for _, asm in modules)
    assert names == ["qrobust_hea_backward", "qrobust_hea_forward"]
    assert all(ok for ok, _ in modules)
    assert text.count("triton") >= 2
