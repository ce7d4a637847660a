"""64-bit mode set globally, as qrobust's own message advises (JAX_ENABLE_X64=1), survives TensorCircuit.

TensorCircuit's set_dtype switches JAX's 64-bit mode; conftest's ``x64`` fixture uses the
``jax.enable_x64`` context manager, which hides that, so this runs in a fresh process with the flag set
in the environment, as a user would."""

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent("""
    import jax, jax.numpy as jnp, numpy as np
    from qrobust.models import qnn, batch_logits
    assert jax.config.read("jax_enable_x64")
    rng = np.random.default_rng(0)
    states = rng.normal(size=(3, 16)) + 1j * rng.normal(size=(3, 16))
    states /= np.linalg.norm(states, axis=1, keepdims=True)
    grads = {}
    for sim in ("blocks", "tc-fused"):  # tc-gates goes through the same tc_context
        model = qnn(4, 2, dtype="complex128", simulator=sim)
        params = jnp.asarray(rng.normal(size=(2, 4, 4)) if not grads else params0)
        params0 = params
        loss = lambda p: jnp.sum(batch_logits(model)(p, model.prepare(states)) ** 2)
        g = jax.grad(loss)(params)
        assert g.dtype == jnp.float64, (sim, g.dtype)
        assert jax.config.read("jax_enable_x64"), f"64-bit mode switched off by {sim}"
        assert jnp.ones(2, jnp.float64).dtype == jnp.float64
        grads[sim] = np.asarray(g)
    for sim, g in grads.items():
        assert np.max(np.abs(g - grads["blocks"])) < 1e-10, sim
    # a complex64 circuit on TensorCircuit leaves the user's 64-bit mode on too
    model = qnn(4, 2, simulator="tc-fused")
    jax.grad(lambda p: jnp.sum(batch_logits(model)(p, model.prepare(states))))(model.init(jax.random.PRNGKey(0)))
    assert jax.config.read("jax_enable_x64")
    print("ok")
""")


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_complex128_gradients_with_global_x64_and_the_mode_stays_on():
    env = dict(os.environ, JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    run = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]


BLOCK = textwrap.dedent("""
    import jax, jax.numpy as jnp
    from qrobust.models import qnn, batch_logits
    assert not jax.config.read("jax_enable_x64")
    with jax.enable_x64(True):  # TensorCircuit first imported in here, as by conftest's x64 fixture
        model = qnn(3, 1, dtype="complex128", simulator="tc-fused")
        states = jnp.ones((2, 8), jnp.complex128) / jnp.sqrt(8.0)
        assert batch_logits(model)(model.init(jax.random.PRNGKey(0)), model.prepare(states)).dtype == jnp.float64
    assert not jax.config.read("jax_enable_x64"), "64-bit mode left on after the block"
    assert jnp.ones(2).dtype == jnp.float32
    print("ok")
""")


def test_a_with_enable_x64_block_leaves_the_global_mode_as_it_found_it():
    """TensorCircuit's import switches the global mode; qrobust put the block's value there (2026-12-08)."""
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    run = subprocess.run([sys.executable, "-c", BLOCK], env=dict(env, JAX_PLATFORMS="cpu"), capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-2000:]
