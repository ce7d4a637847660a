"""The "native" QNN simulator: a C++ statevector kernel called from JAX through the XLA FFI (CPU).

XLA runs the "blocks" simulator as a sequence of whole-batch operations, each a
pass over all the states in memory; its gradient is reverse mode through those
passes (about three times the work of a forward pass, with every intermediate
batch kept). The kernel in ``csrc/hea.cc`` instead simulates one state at a time
in two real planes of 2**L floats, which stay in the core's cache through all the
gates, applies each rotation as its own 2 x 2 gate (no dense blocks, so the light
cone costs nothing extra), and computes the parameter gradient by the adjoint
method (undo each gate on the state and on the costate; a gate exp(-i t P / 2)
contributes Im <lambda|P|psi>). The states of a batch are split over the cores.

The kernel is compiled on first use with the system's C++ compiler (``$CXX``,
else ``g++``) against the FFI headers that jaxlib ships, and cached under
``$QROBUST_CACHE`` (default ``~/.cache/qrobust``), keyed by the source, the
compiler flags, jaxlib's version and the machine. ``available()`` says whether
that works here; where it does not, the error says why.

Limits: complex64 states, float32 parameters, the "hea" ansatz, the CPU. Only
the parameters are differentiable (differentiating with respect to the input
states raises), and only in reverse mode: forward mode (``jax.jvp``, Hessians)
needs the "blocks" simulator.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qrobust import sharding
from qrobust.errors import ConfigError

SOURCE = Path(__file__).with_name("csrc") / "hea.cc"
FLAGS = ("-O3", "-march=native", "-std=c++17", "-shared", "-fPIC", "-pthread")
MIN_QUBITS, MAX_QUBITS = 5, 20  # the kernel works on 32 amplitudes at a time
TARGETS = {"qrobust_hea_forward": "QrobustHeaForward", "qrobust_hea_backward": "QrobustHeaBackward"}


class NativeUnavailable(ConfigError):
    """The native kernel cannot be built or loaded on this machine."""


def _cache_dir() -> Path:
    return Path(os.environ.get("QROBUST_CACHE", Path.home() / ".cache" / "qrobust"))


def _library_path(compiler: str) -> Path:
    import jaxlib

    key = hashlib.sha256()
    for part in (SOURCE.read_bytes(), " ".join(FLAGS).encode(), compiler.encode(), jaxlib.__version__.encode(),
                 platform.machine().encode(), platform.processor().encode(), platform.node().encode()):
        key.update(part)
    return _cache_dir() / f"hea-{key.hexdigest()[:16]}.so"


@functools.cache
def _build() -> Path:
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise NativeUnavailable(f"the native simulator needs a C++ compiler; {compiler!r} was not found "
                                "(set CXX, or use simulator='blocks')")
    path = _library_path(compiler)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        target = Path(tmp) / path.name
        command = [compiler, *FLAGS, f"-I{jax.ffi.include_dir()}", str(SOURCE), "-o", str(target)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise NativeUnavailable(f"building the native simulator failed ({' '.join(command)}):\n{done.stderr[-2000:]}")
        os.replace(target, path)  # atomic: concurrent builders leave one whole library
    return path


@functools.cache
def _register() -> None:
    library = ctypes.cdll.LoadLibrary(str(_build()))
    for target, symbol in TARGETS.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")


def check(n_qubits: int, dtype: str) -> None:
    """Raise ConfigError unless the native kernel can run an ``n_qubits`` QNN in ``dtype`` here."""
    if dtype != "complex64":
        raise ConfigError(f"the native simulator runs in complex64 only, not {dtype}; use simulator='blocks'")
    if not MIN_QUBITS <= n_qubits <= MAX_QUBITS:
        raise ConfigError(f"the native simulator needs {MIN_QUBITS} to {MAX_QUBITS} qubits, got {n_qubits}")
    if not sharding.cpu_only():
        raise ConfigError(f"the native simulator runs on CPU devices, and this process's are "
                          f"{jax.local_devices()[0].platform}; use simulator='blocks'")
    _register()


def available() -> bool:
    """Whether the native kernel builds and loads here (builds it on the first call)."""
    try:
        _register()
    except NativeUnavailable:
        return False
    return True


def hea_logits(rotations: np.ndarray, pairs: np.ndarray, readout_scale: float):
    """``logits(params, states) -> (B,)`` of the hardware-efficient ansatz, run by the native kernel.

    rotations, pairs: (d, L) masks of the rotations and the RZZ pairs (i, i+1 mod L) that are applied
    (the light cone). params: (d, L, 4) float32; states: (B, 2**L) complex64. Differentiable (reverse
    mode) in params only.
    """
    _register()
    rot = jnp.asarray(rotations, jnp.int32)
    pair = jnp.asarray(pairs, jnp.int32)
    scale = np.float32(readout_scale)

    def forward(params, states):
        out = jax.ShapeDtypeStruct(states.shape[:1], jnp.float32)
        return jax.ffi.ffi_call("qrobust_hea_forward", out, vmap_method="sequential")(
            params, states, rot, pair, scale=scale)

    def backward(params, states, cotangent):
        out = jax.ShapeDtypeStruct(params.shape, jnp.float32)
        return jax.ffi.ffi_call("qrobust_hea_backward", out, vmap_method="sequential")(
            params, states, rot, pair, cotangent, scale=scale)

    @jax.custom_vjp
    def logits(params, states):
        return forward(params, states)

    def logits_fwd(params, states):
        if states.perturbed:
            raise NotImplementedError("the native simulator differentiates the parameters only, not the input "
                                      "states; use simulator='blocks'")
        return forward(params.value, states.value), (params.value, states.value)

    def logits_bwd(residuals, cotangent):
        params, states = residuals
        return backward(params, states, cotangent.astype(jnp.float32)), None

    logits.defvjp(logits_fwd, logits_bwd, symbolic_zeros=True)
    return logits
