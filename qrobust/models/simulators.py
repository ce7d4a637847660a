"""The QNN's simulators behind one registry: each declares what it can run, and ``qnn`` asks.

A simulator's ``Capabilities`` say which ansatzes, dtypes and qubit counts it
runs, whether it runs on accelerators, whether it has forward mode (``jax.jvp``,
which Hessians need), and whether it can be used on this machine at all (the
native kernel must build). ``why_not`` names the first reason a simulator cannot
run a given QNN (None: it can); ``choose`` picks the first of ``PREFERENCE`` that
can, and says why each one before it was passed over. So a call site states what
it needs (``forward_mode=True`` for the Hessian study) instead of naming a
simulator, and a fallback is explained, never silent.

The simulators themselves: "native" (``qrobust.models.native``, the C++ kernel),
"blocks" (``qrobust.models.blocks``, batched matrix products in XLA), "tc-fused"
and "tc-gates" (TensorCircuit, ``qrobust.backend.tc_context``).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

from qrobust.backend import COMPLEX_DTYPES


class Capabilities(NamedTuple):
    """What a simulator runs. ``unavailable()`` returns why it cannot be used on this machine, or None."""

    ansatze: tuple[str, ...]
    dtypes: tuple[str, ...]
    min_qubits: int
    max_qubits: int
    accelerators: bool  # runs on GPU/TPU devices (else CPU devices only)
    forward_mode: bool  # jax.jvp through it (Hessian-vector products by forward-over-reverse)
    whole_batch: bool  # simulates a batch at once (else one example, vmapped)
    unavailable: Callable[[], str | None] = lambda: None


def _native_unavailable() -> str | None:
    from qrobust.models import native

    return native.unavailable_reason()


def _registry() -> dict[str, Capabilities]:
    from qrobust.models import native

    every = ("hea", "rxry_cnot")
    return {
        "native": Capabilities(("hea",), ("complex64",), native.MIN_QUBITS, native.MAX_QUBITS, accelerators=False,
                               forward_mode=False, whole_batch=True, unavailable=_native_unavailable),
        "blocks": Capabilities(("hea",), COMPLEX_DTYPES, 2, 30, accelerators=True, forward_mode=True,
                               whole_batch=True),
        "tc-fused": Capabilities(every, COMPLEX_DTYPES, 2, 30, accelerators=True, forward_mode=True,
                                 whole_batch=False),
        "tc-gates": Capabilities(every, COMPLEX_DTYPES, 2, 30, accelerators=True, forward_mode=True,
                                 whole_batch=False),
    }


SIMULATORS = ("native", "blocks", "tc-fused", "tc-gates")
PREFERENCE = ("native", "blocks", "tc-fused")  # fastest first (benchmarks/suite.py); tc-gates is for cross-checks


def capabilities(name: str) -> Capabilities:
    return _registry()[name]


def why_not(name: str, *, n_qubits: int, dtype: str, ansatz: str, on_accelerator: bool,
            forward_mode: bool = False) -> str | None:
    """Why simulator ``name`` cannot run this QNN here (the first reason found), or None if it can."""
    c = capabilities(name)
    if ansatz not in c.ansatze:
        return f"it supports the {' and '.join(repr(a) for a in c.ansatze)} ansatz only, not {ansatz!r}"
    if dtype not in c.dtypes:
        return f"it runs in {', '.join(c.dtypes)} only, not {dtype}"
    if not c.min_qubits <= n_qubits <= c.max_qubits:
        return f"it needs {c.min_qubits} to {c.max_qubits} qubits, got {n_qubits}"
    if on_accelerator and not c.accelerators:
        return "it runs on CPU devices only, and this process's devices are accelerators"
    if forward_mode and not c.forward_mode:
        return "it has no forward mode (jax.jvp), which Hessian-vector products need"
    return c.unavailable()


def choose(*, n_qubits: int, dtype: str, ansatz: str, on_accelerator: bool,
           forward_mode: bool = False) -> tuple[str, dict[str, str]]:
    """The first simulator of ``PREFERENCE`` that can run this QNN, and {name: why not} for those before it."""
    passed_over = {}
    for name in PREFERENCE:
        reason = why_not(name, n_qubits=n_qubits, dtype=dtype, ansatz=ansatz, on_accelerator=on_accelerator,
                         forward_mode=forward_mode)
        if reason is None:
            return name, passed_over
        passed_over[name] = reason
    raise ValueError(f"no simulator runs this QNN: {passed_over}")  # tc-fused runs every ansatz and dtype
