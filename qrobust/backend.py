"""The one place where TensorCircuit's global backend and dtype are set.

TensorCircuit keeps its backend and dtype as module-level globals. qrobust never
changes them behind a user's back: circuits are built inside ``tc_context``, which
sets the JAX backend and the requested dtype for the duration of tracing and
restores the user's settings afterwards.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

import jax
import jax.numpy as jnp

from qrobust.errors import ConfigError

COMPLEX_DTYPES = ("complex64", "complex128")


def check_dtype(dtype: str) -> str:
    """Validate a complex dtype name; complex128 needs JAX's 64-bit mode."""
    if dtype not in COMPLEX_DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose from {', '.join(COMPLEX_DTYPES)}")
    if dtype == "complex128" and not jax.config.read("jax_enable_x64"):
        raise ConfigError(
            "dtype complex128 needs JAX's 64-bit mode: set JAX_ENABLE_X64=1 or call "
            "jax.config.update('jax_enable_x64', True) before using qrobust"
        )
    return dtype


def real_dtype(dtype: str):
    """The real dtype matching a complex dtype name."""
    return jnp.float64 if dtype == "complex128" else jnp.float32


@contextlib.contextmanager
def tc_context(dtype: str = "complex64", contractor: str | None = None) -> Iterator[object]:
    """Yield the tensorcircuit module with the JAX backend, ``dtype`` and (if given) the tensor-network
    ``contractor`` (e.g. "cotengra", as the paper's code uses) set, restoring all after.

    Importing TensorCircuit switches JAX's 64-bit mode off, and its ``set_dtype`` switches it (on for
    complex128, OFF for complex64) on entering and again on leaving. The user's mode is put back at once
    and after, so a process in 64-bit mode (``JAX_ENABLE_X64=1``) stays in it: otherwise later float64
    arrays silently become float32, and a gradient traced after the circuit mixes the two widths. Inside a
    ``with jax.enable_x64(True)`` block, the global mode is put back as it was, not set to the block's (which
    left a process in 64-bit mode after the block: found 2026-12-08).
    """
    x64 = jax.config.read("jax_enable_x64")  # before the import: importing tensorcircuit switches it off
    global_x64 = _global_x64()  # differs inside ``with jax.enable_x64(...)``: that block's value is not global
    try:
        import tensorcircuit as tc

        with tc.runtime_backend("jax"), tc.runtime_dtype(dtype):
            jax.config.update("jax_enable_x64", x64)
            if contractor is None:
                yield tc
            else:
                with tc.runtime_contractor(contractor):
                    yield tc
    finally:
        jax.config.update("jax_enable_x64", global_x64)


def _global_x64() -> bool:
    """JAX's global 64-bit mode, whatever a ``with jax.enable_x64(...)`` block around this call says (that
    block's value is the one in effect, and the one ``jax.config.read`` gives); the value in effect where this
    JAX does not tell them apart."""
    from jax._src import config

    state = getattr(config, "enable_x64", None)
    return bool(state.get_global()) if hasattr(state, "get_global") else bool(jax.config.read("jax_enable_x64"))
