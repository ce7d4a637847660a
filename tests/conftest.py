import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=1")

import jax
import pytest


@pytest.fixture
def x64():
    """Run a test in JAX's 64-bit mode (complex128), restoring the default afterwards."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QROBUST_CACHE_DIR", str(tmp_path / "cache"))
