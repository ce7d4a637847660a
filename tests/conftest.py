import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import jax
import pytest


@pytest.fixture
def x64():
    """Run a test in JAX's 64-bit mode (complex128), restoring the default afterwards."""
    if hasattr(jax, "enable_x64"):
        context = jax.enable_x64(True)
    else:  # jax < 0.6 (the floor, 0.5.0)
        from jax.experimental import enable_x64 as context_of

        context = context_of(True)
    with context:
        yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Every test gets its own qrobust cache (qrobust.cache.cache_dir() is tmp_path / "cache"), so that no test
    reads or writes the user's, whichever of $QROBUST_CACHE, $QROBUST_CACHE_DIR, $XDG_CACHE_HOME the user set.

    The legacy $QROBUST_CACHE_DIR is removed ($QROBUST_CACHE takes precedence anyway). $XDG_CACHE_HOME is left
    alone (other libraries keep caches there; qrobust reads it last). Tests of the native kernel reset its
    per-process memo themselves (native._reset_for_tests).
    """
    monkeypatch.delenv("QROBUST_CACHE_DIR", raising=False)
    monkeypatch.setenv("QROBUST_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def native_kernel():
    """Skip the test, with the reason, where the native kernel cannot be built or loaded here (no C++ compiler,
    say); the kernel is built (once per process) inside the test's isolated cache."""
    from qrobust.models import native

    reason = native.unavailable_reason()
    if reason is not None:
        pytest.skip(f"the native simulator is unavailable: {reason}")


@pytest.fixture(autouse=True)
def _numerics_left_as_found():
    """No test leaves JAX's global settings that change numbers (``provenance.numerics``: 64-bit mode, PRNG,
    matmul precision) other than it found them: a later test in the same process would compute other numbers
    (found 2026-12-08: a run in one pytest worker was refused as "made under other numerics")."""
    from qrobust.provenance import numerics

    before = numerics()
    yield
    after = numerics()
    assert after == before, f"this test changed JAX's numerics: {before} -> {after}"
