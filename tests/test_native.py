"""The native C++ simulator against exact statevectors and exact gradients (complex128, numpy and "blocks"),
and how it meets a machine where it cannot be built (no compiler, a read-only cache, a broken library).

Tests that need the kernel take the ``native_kernel`` fixture (conftest), which skips them, with the reason,
where it cannot be built here.
"""

import ctypes
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import qrobust.cache
from qrobust import sharding
from qrobust.errors import ConfigError
from qrobust.models import batch_logits, native, qnn
from qrobust.models.native import NativeUnavailable
from test_qnn import _random_state, numpy_final_state, numpy_qnn_expectation, numpy_rxry_cnot_expectation

FLOAT32_TOL = 2e-5  # logits are 5 <Z>; float32 rounding over ~40 gates on 2**n amplitudes


@pytest.mark.parametrize("n, depth, pruning", [(5, 2, True), (6, 4, True), (7, 3, False), (5, 1, False)])
def test_native_matches_numpy_statevector(n, depth, pruning, native_kernel):
    rng = np.random.default_rng(n * 10 + depth)
    model = qnn(n, depth, simulator="native", light_cone_pruning=pruning)
    params = rng.uniform(-np.pi, np.pi, size=(depth, n, 4))
    states = np.stack([_random_state(rng, n) for _ in range(5)])
    got = np.asarray(batch_logits(model)(jnp.asarray(params, jnp.float32), model.prepare(states)))
    expected = [5.0 * numpy_qnn_expectation(params, s, n) for s in states]
    assert np.max(np.abs(got - expected)) < FLOAT32_TOL
    one = model.apply(jnp.asarray(params, jnp.float32), model.prepare(states[:1])[0])
    assert abs(float(one) - expected[0]) < FLOAT32_TOL


@pytest.mark.parametrize("n, depth", [(5, 3), pytest.param(8, 4, marks=pytest.mark.slow)])
def test_native_gradient_equals_exact_gradient(x64, n, depth, native_kernel):
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


@pytest.mark.slow  # 17 to 24 s; the (5, 3) case of the test above stays in the default suite
def test_native_gradient_agrees_with_blocks_at_paper_size(x64, native_kernel):
    """10 qubits, depth 6, the light cone on (the paper's QNN): the kernel's logits and adjoint gradient (float32,
    from the final states its forward pass keeps) on a batch of random states, random parameters and random
    weights, against reverse mode through "blocks" in complex64 and in complex128.

    Tolerances, relative to max(1, the largest gradient entry): against complex128, 4e-6 (measured 7.4e-7 on this
    batch, at most 7e-7 on three others of 32 states: float32 rounding over 35 gates and 5 rings on 1024
    amplitudes); against complex64 "blocks", 2e-5 (measured 1.5e-6 here, up to 8e-6 on other batches, which is
    blocks's own float32 error: it is as far from complex128). Logits: 2e-6 absolute against complex128 (measured
    4.5e-7)."""
    n, depth, batch = 10, 6, 16
    rng = np.random.default_rng(2024)
    params = rng.uniform(-np.pi, np.pi, size=(depth, n, 4))
    states = np.stack([_random_state(rng, n) for _ in range(batch)])
    weights = rng.normal(size=batch)

    def run(simulator, dtype, real):
        model = qnn(n, depth, dtype=dtype, simulator=simulator)
        logits, x = batch_logits(model), model.prepare(states)
        p, w = jnp.asarray(params, real), jnp.asarray(weights, real)
        grad = jax.grad(lambda p: jnp.sum(logits(p, x) * w))(p)
        return np.asarray(logits(p, x), np.float64), np.asarray(grad, np.float64)

    exact_logits, exact = run("blocks", "complex128", jnp.float64)
    _, blocks32 = run("blocks", "complex64", jnp.float32)
    got_logits, got = run("native", "complex64", jnp.float32)
    scale = max(1.0, np.abs(exact).max())
    assert np.abs(exact).max() > 0.1  # a gradient worth comparing
    assert np.max(np.abs(got_logits - exact_logits)) < 2e-6
    assert np.max(np.abs(got - exact)) < 4e-6 * scale
    assert np.max(np.abs(got - blocks32)) < 2e-5 * scale


def test_the_forward_pass_of_a_gradient_keeps_the_final_states(native_kernel):
    """"qrobust_hea_forward_states" returns the logits of "qrobust_hea_forward" and each state at the end of the
    circuit (qubit 0 the most significant bit, as the input), which "qrobust_hea_backward" starts from: against
    numpy's dense statevector, to float32 rounding."""
    n, depth = 6, 3
    rng = np.random.default_rng(3)
    params = rng.uniform(-np.pi, np.pi, size=(depth, n, 4))
    states = np.stack([_random_state(rng, n) for _ in range(4)])
    masks = [jnp.ones((depth, n), _S32)] * 2
    operands = [jnp.asarray(params, _F32), jnp.asarray(states, _C64), *masks]
    logits, finals = jax.ffi.ffi_call("qrobust_hea_forward_states", (_out(4), _out(4, 2 ** n, dtype=_C64)))(
        *operands, **_HEA_ATTRS)
    plain = jax.ffi.ffi_call("qrobust_hea_forward", _out(4))(*operands, **_HEA_ATTRS)
    np.testing.assert_array_equal(np.asarray(logits), np.asarray(plain))
    expected = np.stack([numpy_final_state(params, s, n) for s in states])
    assert np.max(np.abs(np.asarray(finals) - expected)) < 2e-6
    z_last = 1 - 2 * (np.arange(2 ** n) & 1)
    np.testing.assert_allclose(np.asarray(logits), 5 * np.sum(np.abs(expected) ** 2 * z_last, axis=1), atol=1e-5)


def test_native_under_vmap_equals_one_replica_at_a_time(native_kernel):
    model = qnn(6, 2, simulator="native")
    params = jax.vmap(model.init)(jax.random.split(jax.random.PRNGKey(0), 3)) * 50
    states = model.prepare(np.stack([_random_state(np.random.default_rng(i), 6) for i in range(4)]))
    logits = batch_logits(model)
    together = jax.vmap(logits, in_axes=(0, None))(params, states)
    one_by_one = jnp.stack([logits(p, states) for p in params])
    assert np.array_equal(np.asarray(together), np.asarray(one_by_one))


def test_native_refuses_what_it_cannot_do(native_kernel):
    with pytest.raises(ConfigError, match="5 to 20 qubits"):
        qnn(4, 2, simulator="native")
    with pytest.raises(ConfigError, match="'hea' ansatz only"):
        qnn(6, 2, simulator="native", ansatz="rxry_cnot")
    model = qnn(5, 2, simulator="native")
    params = model.init(jax.random.PRNGKey(0))
    x = model.prepare(np.ones((2, 32)) / np.sqrt(32))
    with pytest.raises(NotImplementedError, match="parameters only"):
        jax.grad(lambda s: jnp.sum(batch_logits(model)(params, s)).real)(x)


def default_simulator(n_qubits, dtype, ansatz, *, forward_mode=False) -> str:
    """The simulator the registry chooses for the library's ``ansatz`` at depth 2 (no model is built)."""
    from qrobust.models.ansatze import ansatz as library_ansatz
    from qrobust.models.circuit import Circuit
    from qrobust.models.qnn import choose_simulator

    return choose_simulator(Circuit(library_ansatz(ansatz), n_qubits, 2), dtype, forward_mode=forward_mode)[0]


def test_native_refuses_complex128(x64):
    with pytest.raises(ConfigError, match="complex64 only"):
        qnn(6, 2, dtype="complex128", simulator="native")
    assert default_simulator(6, "complex128", "hea") == "blocks"


def test_default_simulator_is_native_on_cpu(native_kernel):
    assert default_simulator(10, "complex64", "hea") == "native"
    assert default_simulator(4, "complex64", "hea") == "blocks"
    assert default_simulator(10, "complex64", "rxry_cnot") == "native-gates"
    assert default_simulator(10, "complex64", "rxry_cnot", forward_mode=True) == "tc-fused"


@pytest.mark.parametrize("ansatz", ["rxry_cnot", pytest.param("hea", marks=pytest.mark.slow)])
def test_native_gates_runs_the_built_in_ansatze_exactly(native_kernel, ansatz):
    """The registry's "native-gates" (the circuit recorded gate by gate, run by the C++ kernel) against numpy's
    dense statevector, and its gradient against TensorCircuit gate by gate."""
    rng = np.random.default_rng(11)
    n, depth = 6, 3
    model = qnn(n, depth, ansatz=ansatz, simulator="native-gates")
    reference = qnn(n, depth, ansatz=ansatz, simulator="tc-gates")
    assert model.settings["simulator"] == "native-gates"
    params = jnp.asarray(rng.uniform(-np.pi, np.pi, size=model.init(jax.random.PRNGKey(0)).shape), jnp.float32)
    states = np.stack([_random_state(rng, n) for _ in range(3)])
    expect = numpy_rxry_cnot_expectation if ansatz == "rxry_cnot" else numpy_qnn_expectation
    got = batch_logits(model)(params, model.prepare(states))
    for g, state in zip(np.asarray(got), states):
        assert abs(g - 5.0 * expect(np.asarray(params, np.float64), state, n)) < 2e-5
    xs = model.prepare(states)
    g_native = jax.grad(lambda p: jnp.sum(batch_logits(model)(p, xs)))(params)
    g_ref = jax.grad(lambda p: jnp.sum(jax.vmap(reference.apply, in_axes=(None, 0))(p, xs)))(params)
    np.testing.assert_allclose(g_native, g_ref, atol=2e-5)


def test_on_an_accelerator_the_default_is_blocks_and_native_is_refused(monkeypatch):
    """The kernel is registered for the CPU platform only (no GPU in CI: the device check is patched)."""
    monkeypatch.setattr(sharding, "cpu_only", lambda: False)
    assert default_simulator(10, "complex64", "hea") == "blocks"
    with pytest.raises(ConfigError, match="runs on CPU devices"):
        qnn(10, 2, simulator="native")


# -- the kernels' contract: operation kinds, checks of their buffers, errors instead of crashes -------------


def test_op_kinds_are_the_same_in_python_and_cpp():
    """native.OpKind mirrors the C++ enum OpKind of csrc/gates.cc (kTwoQubit <-> TWO_QUBIT), value for value."""
    source = re.sub(r"//[^\n]*|/\*.*?\*/", "", (native.CSRC / "gates.cc").read_text(), flags=re.S)
    found = re.findall(r"\benum\s+(?:class\s+)?OpKind\s*:\s*int32_t\s*\{([^}]*)\}", source)
    assert len(found) == 1, "csrc/gates.cc should define one `enum OpKind : int32_t { ... }`"
    cpp = {}
    for entry in filter(None, (e.strip() for e in found[0].split(","))):
        name_value = re.fullmatch(r"k([A-Z][A-Za-z0-9]*)\s*=\s*(\d+)", entry)
        assert name_value, f"every enumerator of OpKind has the form kName = value, not {entry!r}"
        cpp[re.sub(r"(?<!^)(?=[A-Z])", "_", name_value[1]).upper()] = int(name_value[2])
    assert cpp == {kind.name: kind.value for kind in native.OpKind}


_F32, _C64, _S32 = jnp.float32, jnp.complex64, jnp.int32
_HEA_ATTRS = dict(scale=np.float32(5), threads=np.int64(2))
_GATE_ATTRS = dict(scale=np.float32(5), measured=np.int64(0), threads=np.int64(2))


def _out(*shape, dtype=_F32):
    return jax.ShapeDtypeStruct(shape, dtype)


def _hea_args(params=(1, 5, 4), states=(3, 32), rot=(1, 5), pair=(1, 5)):
    return [jnp.zeros(params, _F32), jnp.full(states, 1 / np.sqrt(32), _C64), jnp.ones(rot, _S32), jnp.ones(pair, _S32)]


def _gate_args(ops=((native.OpKind.SINGLE, 0, 1, 0),), perms=(1, 32), mats1=(1, 2, 2), diags=(1, 32),
               mats2=(1, 4, 4), states=(3, 32), perm_entries=0):
    return [jnp.asarray(ops, _S32), jnp.full(perms, perm_entries, _S32), jnp.ones(mats1, _C64),
            jnp.ones(diags, _C64), jnp.ones(mats2, _C64), jnp.full(states, 1 / np.sqrt(32), _C64)]


# (target, results, operands, attributes, the error's message): each input shaped, or valued, as the kernel must
# refuse. Several were read before they were checked (params of rank 1, states of 2**L amplitudes for a huge L),
# and results too small were written past their end.
_BAD_CALLS = {
    "hea params of rank 1": ("qrobust_hea_forward", _out(3), _hea_args(params=(4,)), _HEA_ATTRS,
                             r"hea kernel: params must be \(d, L, 4\) with 5 <= L <= 20, got \(4,\)"),
    "hea 64 qubits": ("qrobust_hea_forward", _out(3), _hea_args(params=(1, 64, 4)), _HEA_ATTRS,
                      r"hea kernel: params must be \(d, L, 4\)"),
    "hea states of another L": ("qrobust_hea_forward", _out(3), _hea_args(states=(3, 64)), _HEA_ATTRS,
                                r"hea kernel: states must be \(B, 2\*\*L\) = \(B, 32\), got \(3, 64\)"),
    "hea mask of rank 1": ("qrobust_hea_forward", _out(3), _hea_args(rot=(5,)), _HEA_ATTRS,
                           r"hea kernel: the masks rot and pair must be \(d, L\) = \(1, 5\), got \(5,\)"),
    "hea logits too few": ("qrobust_hea_forward", _out(1), _hea_args(), _HEA_ATTRS,
                           r"hea kernel: the logits must be \(B,\) = \(3,\), got \(1,\)"),
    "hea final states of another shape": ("qrobust_hea_forward_states", (_out(3), _out(3, 64, dtype=_C64)),
                                          _hea_args(), _HEA_ATTRS, r"hea kernel: the final states must be shaped "
                                          r"as the states \(3, 32\), got \(3, 64\)"),
    "hea cotangent too short": ("qrobust_hea_backward", _out(1, 5, 4), [*_hea_args(), jnp.ones(2, _F32)],
                                _HEA_ATTRS, r"hea kernel: the cotangent must be \(B,\) = \(3,\), got \(2,\)"),
    "hea gradient of another shape": ("qrobust_hea_backward", _out(2, 5, 4), [*_hea_args(), jnp.ones(3, _F32)],
                                      _HEA_ATTRS, r"hea kernel: the gradient must be shaped as params"),
    "gates ops of rank 1": ("qrobust_gates_forward", _out(3), _gate_args(ops=(0, 0, 1, 0)), _GATE_ATTRS,
                            r"gates kernel: ops, perms, mats1, diags, mats2, states must have ranks"),
    "gates states of 48": ("qrobust_gates_forward", _out(3), _gate_args(states=(3, 48)), _GATE_ATTRS,
                           r"gates kernel: states must be \(B, 2\*\*L\) with 5 <= L <= 20, got \(3, 48\)"),
    "gates states of 2**40": ("qrobust_gates_forward", _out(1), _gate_args(states=(0, 2 ** 40)), _GATE_ATTRS,
                              r"gates kernel: states must be \(B, 2\*\*L\)"),
    "gates diagonals too short": ("qrobust_gates_forward", _out(3), _gate_args(diags=(1, 16)), _GATE_ATTRS,
                                  r"gates kernel: ops must be \(G, 4\), perms \(NP, 32\)"),
    "gates unknown kind": ("qrobust_gates_forward", _out(3), _gate_args(ops=((7, 0, 1, 0),)), _GATE_ATTRS,
                           r"gates kernel: operation 0 has kind 7, not one of 0 to 3"),
    "gates index out of range": ("qrobust_gates_forward", _out(3), _gate_args(ops=((0, 0, 1, 0), (0, 1, 1, 0))),
                                 _GATE_ATTRS, r"gates kernel: operation 1 .* out of range"),
    "gates two qubits the same": ("qrobust_gates_forward", _out(3), _gate_args(ops=((2, 0, 3, 3),)), _GATE_ATTRS,
                                  r"gates kernel: operation 0 .* out of range"),
    "gates permutation out of range": ("qrobust_gates_forward", _out(3), _gate_args(perm_entries=32), _GATE_ATTRS,
                                       r"gates kernel: permutation 0 has index 32, out of range \[0, 32\)"),
    "gates measured qubit": ("qrobust_gates_forward", _out(3), _gate_args(),
                             dict(_GATE_ATTRS, measured=np.int64(5)),
                             r"gates kernel: the measured qubit must be in \[0, 5\), got 5"),
    "gates logits too many": ("qrobust_gates_forward", _out(5), _gate_args(), _GATE_ATTRS,
                              r"gates kernel: the logits must be \(B,\) = \(3,\), got \(5,\)"),
    "gates cotangent of rank 2": ("qrobust_gates_backward", (_out(1, 2, 2, dtype=_C64), _out(1, 32, dtype=_C64),
                                                             _out(1, 4, 4, dtype=_C64)),
                                  [*_gate_args(), jnp.ones((3, 1), _F32)], _GATE_ATTRS,
                                  r"gates kernel: .* must have ranks 2, 2, 3, 2, 3, 2, 1"),
    "gates cotangents of other shapes": ("qrobust_gates_backward", (_out(1, 2, 2, dtype=_C64),
                                                                    _out(2, 32, dtype=_C64),
                                                                    _out(1, 4, 4, dtype=_C64)),
                                         [*_gate_args(), jnp.ones(3, _F32)], _GATE_ATTRS,
                                         r"gates kernel: the cotangents must be shaped as mats1, diags, mats2"),
}


@pytest.mark.parametrize("case", list(_BAD_CALLS))
def test_the_kernels_refuse_bad_buffers_before_reading_them(case, native_kernel):
    """Called straight through the FFI with buffers that native.py never makes, each handler returns
    INVALID_ARGUMENT, naming the buffer and its shape, which JAX raises (as JaxRuntimeError or ValueError,
    depending on its dispatch path); the process goes on, and the kernel with it."""
    target, results, operands, attributes, message = _BAD_CALLS[case]
    with pytest.raises(Exception, match="INVALID_ARGUMENT: " + message):
        jax.block_until_ready(jax.ffi.ffi_call(target, results)(*operands, **attributes))
    # the kernel still answers: the uniform state, an all-ones matrix on qubit 1, <Z_0> = 0
    good = jax.ffi.ffi_call("qrobust_gates_forward", _out(3))(*_gate_args(), **_GATE_ATTRS)
    np.testing.assert_allclose(np.asarray(good), 0.0, atol=1e-6)


_FAULTY: dict[str, str] = {}  # target -> the same handler of the faulty build, registered once per process
_FAULTY_LIBRARY: list[ctypes.CDLL] = []  # kept loaded: XLA holds pointers into it


def _register_faulty_kernels(directory: Path) -> dict[str, str]:
    """Build the kernels from a copy of csrc/ into which faults are injected (not in qrobust's sources): with
    $QROBUST_TEST_THROW set, every chunk of a batch but the first throws std::bad_alloc (the first runs on the
    calling thread, the others on threads of their own); with $QROBUST_TEST_NO_THREADS set, starting a thread
    throws std::system_error. Register its handlers under targets of their own, once per process."""
    if _FAULTY:
        return _FAULTY
    copy = directory / "csrc"
    shutil.copytree(native.CSRC, copy)
    header = (copy / "statevector.h").read_text()
    run_chunk = "      body(k, batch * k / t, batch * (k + 1) / t);\n"
    start_thread = "    for (; k < t; ++k) pool.emplace_back(chunk, k);\n"
    assert run_chunk in header and start_thread in header, "parallel() of csrc/statevector.h changed: update the test"
    header = header.replace("#pragma once\n", "#pragma once\n#include <cerrno>\n#include <cstdlib>\n", 1)
    throw_in_chunk = '      if (k > 0 && std::getenv("QROBUST_TEST_THROW")) throw std::bad_alloc();\n'
    refuse_thread = ('      if (std::getenv("QROBUST_TEST_NO_THREADS"))\n'
                     "        throw std::system_error(EAGAIN, std::generic_category());\n")
    header = header.replace(run_chunk, throw_in_chunk + run_chunk)
    header = header.replace(start_thread, "    for (; k < t; ++k) {\n" + refuse_thread
                            + "      pool.emplace_back(chunk, k);\n    }\n")
    (copy / "statevector.h").write_text(header)
    command, _, _ = native._compiler()
    library = directory / "faulty.so"
    argv = [*command, *native.FLAGS, f"-I{jax.ffi.include_dir()}", str(copy / "hea.cc"), str(copy / "gates.cc"),
            "-o", str(library)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=native.COMPILE_TIMEOUT_S)
    assert done.returncode == 0, done.stderr
    loaded = ctypes.cdll.LoadLibrary(str(library))
    for target, symbol in native.TARGETS.items():
        jax.ffi.register_ffi_target(f"{target}_faulty", jax.ffi.pycapsule(getattr(loaded, symbol)), platform="cpu")
        _FAULTY[target] = f"{target}_faulty"
    _FAULTY_LIBRARY.append(loaded)
    return _FAULTY


def test_an_exception_in_a_kernel_thread_is_an_error_not_a_crash(tmp_path, monkeypatch, native_kernel):
    """A C++ exception in any thread of a batch (here injected into a copy of the kernels: std::bad_alloc) is
    caught there; once every thread is joined the handler returns RESOURCE_EXHAUSTED, which JAX raises, and the
    process goes on. A thread the system refuses to start has its share run on the calling thread: the same
    results, bit for bit."""
    faulty = _register_faulty_kernels(tmp_path)
    rng = np.random.default_rng(2)
    n, batch = 10, 128  # 2**17 amplitudes: two threads
    states = jnp.asarray(rng.normal(size=(batch, 2 ** n)) + 1j * rng.normal(size=(batch, 2 ** n)), _C64)
    cotangent = jnp.asarray(rng.normal(size=batch), _F32)
    params = jnp.asarray(rng.uniform(-np.pi, np.pi, size=(2, n, 4)), _F32)
    masks = [jnp.ones((2, n), _S32)] * 2
    ops = [(native.OpKind.SINGLE, 0, 3, 0), (native.OpKind.TWO_QUBIT, 0, 1, 7), (native.OpKind.DIAGONAL, 0, 0, 0),
           (native.OpKind.PERMUTATION, 0, 0, 0)]
    gates = [jnp.asarray(ops, _S32), jnp.asarray(rng.permutation(2 ** n)[None], _S32),
             jnp.asarray(rng.normal(size=(1, 2, 2)), _C64),
             jnp.asarray(np.exp(1j * rng.normal(size=(1, 2 ** n))), _C64),
             jnp.asarray(rng.normal(size=(1, 4, 4)), _C64), states]
    calls = {
        "qrobust_hea_forward": (_out(batch), [params, states, *masks], _HEA_ATTRS),
        "qrobust_hea_forward_states": ((_out(batch), _out(batch, 2 ** n, dtype=_C64)), [params, states, *masks],
                                       _HEA_ATTRS),
        "qrobust_hea_backward": (_out(2, n, 4), [params, states, *masks, cotangent], _HEA_ATTRS),
        "qrobust_gates_forward": (_out(batch), gates, dict(_GATE_ATTRS, measured=np.int64(4))),
        "qrobust_gates_backward": ((_out(1, 2, 2, dtype=_C64), _out(1, 2 ** n, dtype=_C64),
                                    _out(1, 4, 4, dtype=_C64)), [*gates, cotangent],
                                   dict(_GATE_ATTRS, measured=np.int64(4))),
    }

    def run(target, kind=""):
        results, operands, attributes = calls[target]
        return jax.tree.map(np.asarray, jax.ffi.ffi_call(target + kind, results)(*operands, **attributes))

    for target in calls:
        expected = run(target)
        monkeypatch.setenv("QROBUST_TEST_NO_THREADS", "1")
        for got, want in zip(jax.tree.leaves(run(target, "_faulty")), jax.tree.leaves(expected)):
            np.testing.assert_array_equal(got, want)
        for no_threads in (True, False):  # the chunk that throws runs on the calling thread, then on its own
            if not no_threads:
                monkeypatch.delenv("QROBUST_TEST_NO_THREADS")
            monkeypatch.setenv("QROBUST_TEST_THROW", "1")
            kernel = target.split("_")[1]
            with pytest.raises(Exception, match=f"RESOURCE_EXHAUSTED: {kernel} kernel: out of memory"):
                run(target, "_faulty")
            monkeypatch.delenv("QROBUST_TEST_THROW")
        for got, want in zip(jax.tree.leaves(run(target, "_faulty")), jax.tree.leaves(expected)):
            np.testing.assert_array_equal(got, want)


# -- the environment: cache, compiler, threads, dtypes ------------------------------------------------------


@pytest.fixture
def fresh_native():
    """Forget what this process remembers about the kernel before and after the test (which changes the
    environment the kernel is built in)."""
    native._reset_for_tests()
    yield
    native._reset_for_tests()


@pytest.fixture
def compiler():
    """Skip where there is no C++ compiler to build the kernel with."""
    spec = os.environ.get("CXX") or "g++"
    if shutil.which(shlex.split(spec)[0]) is None:
        pytest.skip(f"no C++ compiler: {spec!r} not found")


def _qrobust_warnings(caplog):
    return [r for r in caplog.records if r.name == "qrobust" and r.levelno >= logging.WARNING]


def _assert_native_agrees_with_blocks():
    rng = np.random.default_rng(3)
    native_model, blocks_model = qnn(6, 3, simulator="native"), qnn(6, 3, simulator="blocks")
    params = jnp.asarray(rng.uniform(-np.pi, np.pi, size=(3, 6, 4)), jnp.float32)
    x = native_model.prepare(np.stack([_random_state(rng, 6) for _ in range(4)]))
    got, expected = batch_logits(native_model)(params, x), batch_logits(blocks_model)(params, x)
    assert np.max(np.abs(np.asarray(got) - np.asarray(expected))) < FLOAT32_TOL


def test_one_cache_directory_for_everything(tmp_path, monkeypatch):
    monkeypatch.delenv("QROBUST_CACHE", raising=False)  # set by conftest
    monkeypatch.delenv("QROBUST_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert qrobust.cache.cache_dir() == tmp_path / "xdg" / "qrobust"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert qrobust.cache.cache_dir() == qrobust.cache.Path.home() / ".cache" / "qrobust"
    monkeypatch.setenv("QROBUST_CACHE_DIR", str(tmp_path / "old"))  # the old name, read while the new is unset
    assert qrobust.cache.cache_dir() == tmp_path / "old"
    monkeypatch.setenv("QROBUST_CACHE", str(tmp_path / "new"))
    assert qrobust.cache.cache_dir() == tmp_path / "new"


def test_cache_key_follows_the_build_not_the_host(monkeypatch):
    def name():
        return native._library_name(["g++"], "/usr/bin/g++", "g++ 12.2.0")

    first = name()
    monkeypatch.setattr(native.platform, "node", lambda: "another-node")
    assert name() == first  # the nodes of a cluster share one build
    assert native._library_name(["g++"], "/usr/bin/g++", "g++ 13.1.0") != first
    assert native._library_name(["clang++"], "/usr/bin/clang++", "g++ 12.2.0") != first
    monkeypatch.setattr(native, "_cpu_features", lambda: "avx2 fma sse4_2")  # -march=native depends on them
    assert name() != first


def test_without_a_compiler_the_default_falls_back_with_one_warning(monkeypatch, caplog, fresh_native):
    if not os.path.exists("/bin/false"):
        pytest.skip("no /bin/false to stand in for a broken compiler")
    monkeypatch.setenv("CXX", "/bin/false")
    caplog.set_level(logging.WARNING, logger="qrobust")
    assert qnn(10, 6).settings["simulator"] == "blocks"
    assert qnn(10, 6).settings["simulator"] == "blocks"
    assert not native.available()
    warnings = _qrobust_warnings(caplog)
    assert len(warnings) == 1, [w.getMessage() for w in warnings]
    assert "'blocks'" in warnings[0].getMessage() and "compiler" in warnings[0].getMessage()
    assert "compiler" in native.unavailable_reason()
    with pytest.raises(NativeUnavailable, match="compiler"):
        qnn(10, 6, simulator="native")


def test_a_missing_compiler_is_named(monkeypatch, fresh_native):
    monkeypatch.setenv("CXX", "no-such-compiler-qrobust")
    assert not native.available()
    assert "no-such-compiler-qrobust" in native.unavailable_reason()
    with pytest.raises(NativeUnavailable, match="C\\+\\+ compiler"):
        qnn(6, 2, simulator="native")


def _failing_compiler(directory):
    """A "compiler" that answers --version and fails every compile, as a broken toolchain would."""
    script = directory / "broken-cxx"
    script.write_text(textwrap.dedent("""\
        #!/bin/sh
        if [ "$1" = --version ]; then echo "broken-cxx 1.0"; exit 0; fi
        echo "broken-cxx: internal compiler error" >&2; exit 1
        """))
    script.chmod(0o755)
    return script


def test_a_failed_build_is_remembered_for_the_process(tmp_path, monkeypatch, caplog, fresh_native):
    if not os.path.exists("/bin/sh"):
        pytest.skip("no /bin/sh for the stand-in compiler")
    monkeypatch.setenv("CXX", str(_failing_compiler(tmp_path)))
    real_run, commands = subprocess.run, []
    monkeypatch.setattr(subprocess, "run", lambda argv, **kw: commands.append(argv) or real_run(argv, **kw))
    assert not native.available()
    assert "internal compiler error" in native.unavailable_reason()
    built = len(commands)
    assert built == 2  # --version, then one compile
    for _ in range(3):
        assert not native.available()
        assert qnn(10, 6).settings["simulator"] == "blocks"
    with pytest.raises(NativeUnavailable, match="internal compiler error"):
        qnn(10, 6, simulator="native")
    assert len(commands) == built
    assert len(_qrobust_warnings(caplog)) == 1
    assert not list((qrobust.cache.cache_dir() / "native").iterdir())  # no half-built library left behind


@pytest.fixture
def read_only_dir(tmp_path):
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o500)
    if os.access(path, os.W_OK):
        path.chmod(0o700)
        pytest.skip("a 0o500 directory is writable here (running as root)")
    yield path
    path.chmod(0o700)


def test_a_read_only_cache_builds_privately(read_only_dir, monkeypatch, caplog, compiler, fresh_native):
    monkeypatch.setenv("QROBUST_CACHE", str(read_only_dir))
    caplog.set_level(logging.WARNING, logger="qrobust")
    assert native.available(), native.unavailable_reason()
    assert any("cannot be written" in w.getMessage() for w in _qrobust_warnings(caplog))
    assert not any(read_only_dir.iterdir())
    _assert_native_agrees_with_blocks()


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_a_cache_that_is_a_file_builds_privately(tmp_path, monkeypatch, caplog, compiler, fresh_native):
    """The same as a read-only cache, where root can write anywhere: the cache path is taken by a file."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv("QROBUST_CACHE", str(blocker))
    caplog.set_level(logging.WARNING, logger="qrobust")
    assert native.available(), native.unavailable_reason()
    warnings = _qrobust_warnings(caplog)
    assert len(warnings) == 1 and "cannot be written" in warnings[0].getMessage()
    _assert_native_agrees_with_blocks()


def _cached_library(cache) -> Path:
    """Where qrobust looks for its built kernel in the cache ``cache`` (its directory made)."""
    command, path, version = native._compiler()
    (cache / "native").mkdir(parents=True)
    return cache / "native" / native._library_name(command, path, version)


def _qnn_in_a_fresh_process(cache, program: str = "") -> subprocess.CompletedProcess:
    """Build a QNN in a fresh process using the cache ``cache`` (this process's kernel stays registered);
    its stdout starts with whether the kernel is available and the simulator the QNN got."""
    program = ("from qrobust.models import native, qnn\n"
               "print(native.available(), qnn(10, 6).settings['simulator'])\n" + program)
    env = dict(os.environ, QROBUST_CACHE=str(cache))
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    return done


def test_a_library_that_does_not_load_is_a_clean_fallback(tmp_path, compiler):
    """A damaged library in the cache, in a fresh process (this one's kernel stays registered)."""
    cache = tmp_path / "cache-with-damage"
    library = _cached_library(cache)
    library.write_bytes(b"not a shared library")
    native._digest_path(library).write_text(native._sha256(library))  # as built, yet it does not load
    done = _qnn_in_a_fresh_process(cache, "print(native.unavailable_reason())\n")
    assert done.stdout.startswith("False blocks") and "does not load" in done.stdout
    assert "Traceback" not in done.stderr and done.stderr.count("native simulator is unavailable") == 1


@pytest.mark.parametrize("value", ["abc", "0", "-2", "1.5"])
def test_a_bad_thread_count_is_refused(monkeypatch, value):
    monkeypatch.setenv("QROBUST_THREADS", value)
    with pytest.raises(ConfigError, match="QROBUST_THREADS must be a positive integer"):
        native.thread_count()


def test_thread_count_follows_the_affinity_mask(monkeypatch):
    monkeypatch.delenv("QROBUST_THREADS", raising=False)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert 1 <= native.thread_count() <= cpus
    monkeypatch.setenv("QROBUST_THREADS", "3")
    assert native.thread_count() == 3


@pytest.mark.slow  # 13 s; kept out of the default suite's 10 minutes, CI runs it
def test_threads_give_the_same_logits_and_gradients(monkeypatch, native_kernel):
    """160 states of 10 qubits: enough amplitudes (2**17) for two threads."""
    rng = np.random.default_rng(11)
    params = jnp.asarray(rng.uniform(-np.pi, np.pi, size=(3, 10, 4)), jnp.float32)
    states = np.stack([_random_state(rng, 10) for _ in range(160)])
    weights = jnp.asarray(rng.normal(size=160), jnp.float32)
    results = {}
    for threads in ("1", "2"):
        monkeypatch.setenv("QROBUST_THREADS", threads)
        model = qnn(10, 3, simulator="native")
        logits, x = batch_logits(model), model.prepare(states)
        assert f"threads = {threads} : i64" in jax.jit(logits).lower(params, x).as_text()  # reaches the kernel
        results[threads] = (np.asarray(logits(params, x)),
                            np.asarray(jax.grad(lambda p: jnp.sum(logits(p, x) * weights))(params)))
    assert np.max(np.abs(results["1"][0] - results["2"][0])) < 1e-6
    assert np.max(np.abs(results["1"][1] - results["2"][1])) < 1e-6 * max(1.0, np.abs(results["1"][1]).max())
    monkeypatch.setenv("QROBUST_THREADS", "abc")
    with pytest.raises(ConfigError, match="QROBUST_THREADS"):
        qnn(10, 3, simulator="native")


def test_float64_parameters_are_computed_in_float32(x64, native_kernel):
    """The kernel is float32; float64 parameters are cast, and their gradient comes back in float64."""
    rng = np.random.default_rng(5)
    model = qnn(6, 3, simulator="native")
    logits = batch_logits(model)
    x = model.prepare(np.stack([_random_state(rng, 6) for _ in range(3)]))
    p64 = jnp.asarray(rng.uniform(-np.pi, np.pi, size=(3, 6, 4)), jnp.float64)
    p32 = p64.astype(jnp.float32)
    np.testing.assert_array_equal(np.asarray(logits(p64, x)), np.asarray(logits(p32, x)))
    g64 = jax.grad(lambda p: jnp.sum(logits(p, x)))(p64)
    g32 = jax.grad(lambda p: jnp.sum(logits(p, x)))(p32)
    assert g64.dtype == jnp.float64 and g32.dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(g64), np.asarray(g32, np.float64))


def test_the_registry_says_why_a_simulator_cannot_run_a_qnn():
    """Each simulator's declared capabilities, and the reason a call site gets instead of a hard-coded choice
    (the Hessian study asks for forward mode, and gets a simulator that has it)."""
    from qrobust.models import simulators

    from qrobust.models.ansatze import ansatz
    from qrobust.models.circuit import Circuit

    here = dict(on_accelerator=False)
    hea10, hea4 = Circuit(ansatz("hea"), 10, 2), Circuit(ansatz("hea"), 4, 2)
    assert simulators.why_not("blocks", hea10, dtype="complex128", **here) is None
    assert "'hea' ansatz only" in simulators.why_not("blocks", Circuit(ansatz("rxry_cnot"), 4, 2),
                                                                      dtype="complex64", **here)
    assert "complex64 only" in simulators.why_not("native", hea10, dtype="complex128", **here)
    assert "5 to 20 qubits" in simulators.why_not("native", hea4, dtype="complex64", **here)
    assert "CPU devices only" in simulators.why_not("native", hea10, dtype="complex64", on_accelerator=True)
    assert "forward mode" in simulators.why_not("native", hea10, dtype="complex64", forward_mode=True, **here)
    name, passed = simulators.choose(hea10, dtype="complex64", forward_mode=True, **here)
    assert name == "blocks" and "forward mode" in passed["native"]
    name, passed = simulators.choose(Circuit(ansatz("rxry_cnot"), 6, 2), dtype="complex64", forward_mode=True, **here)
    assert name == "tc-fused" and set(passed) == {"native", "native-gates", "blocks"}
    assert "forward mode" in passed["native-gates"] and "'hea' ansatz" in passed["blocks"]
    assert qnn(10, 6, forward_mode=True).settings["simulator"] == "blocks"
    with pytest.raises(ConfigError, match="no forward mode"):
        qnn(10, 6, simulator="native", forward_mode=True)


@pytest.mark.parametrize("name", ["native", "native-gates", "blocks", "tc-fused", "tc-gates"])
def test_each_simulator_declares_forward_mode_truthfully(name):
    """A simulator's declared forward mode is what jax.jvp finds (native: declared without, and jvp fails)."""
    from qrobust.models import simulators

    if name.startswith("native") and simulators.capabilities(name).unavailable() is not None:
        pytest.skip(simulators.capabilities(name).unavailable())
    model = qnn(5, 2, simulator=name)
    params = model.init(jax.random.PRNGKey(0))
    x = model.prepare(np.eye(32)[3])

    def jvp():
        return jax.jvp(lambda p: model.apply(p, x), (params,), (jnp.ones_like(params),))[1]

    if simulators.capabilities(name).forward_mode:
        ref = jax.jvp(lambda p: qnn(5, 2, simulator="tc-gates").apply(p, x), (params,), (jnp.ones_like(params),))[1]
        np.testing.assert_allclose(jvp(), ref, atol=1e-5)
    else:
        with pytest.raises(Exception):
            jvp()


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_a_cached_library_others_can_write_is_never_loaded(tmp_path, compiler):
    """A file planted at the library's predictable name, writable by others: were it loaded, its
    constructor would run in this process (here it would not even load). It is left alone, and the kernel
    is built privately instead, with a warning naming why."""
    cache = tmp_path / "shared-cache"
    planted = _cached_library(cache)
    planted.write_bytes(b"not a shared library")
    os.chmod(planted, 0o666)
    done = _qnn_in_a_fresh_process(cache)
    assert done.stdout.startswith("True native"), (done.stdout, done.stderr)
    assert "is not loaded" in done.stderr and "can be written by other users" in done.stderr
    assert planted.read_bytes() == b"not a shared library"


@pytest.mark.slow  # builds the kernel in a fresh process
def test_a_cached_library_whose_content_is_not_what_was_built_is_built_again(tmp_path, compiler):
    """The library is loaded only when its content hash is the one recorded when it was built: changed
    afterwards (or with no record), it is built again in the cache, with a warning saying why."""
    cache = tmp_path / "cache"
    library = _cached_library(cache)
    library.write_bytes(b"a library as built")
    native._digest_path(library).write_text(native._sha256(library))
    library.write_bytes(b"the library changed since")
    done = _qnn_in_a_fresh_process(cache)
    assert done.stdout.startswith("True native"), (done.stdout, done.stderr)
    assert "its content is not what was built" in done.stderr
    assert native._digest_path(library).read_text().strip() == native._sha256(library)  # rebuilt, recorded
