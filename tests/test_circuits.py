"""Circuits from TensorCircuit: every library ansatz and random user circuits, on every simulator that accepts
them, against TensorCircuit's own simulation and an independent numpy statevector (outputs and gradients)."""

from functools import reduce

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrobust.errors import ConfigError
from qrobust.models import qnn
from qrobust.models.ansatze import LIBRARY, Ansatz

ANY_DTYPE = ["xla-gates", "tc-gates"]  # complex128 too (native-gates: complex64 only)

# --- an independent numpy statevector simulator (qubit 0 the most significant bit) ---------------------------

I2 = np.eye(2)
X = np.array([[0, 1], [1, 0]], complex)
Y = np.array([[0, -1j], [1j, 0]])
Z = np.diag([1.0, -1.0]).astype(complex)


def rot(pauli, t):
    return np.cos(t / 2) * I2 - 1j * np.sin(t / 2) * pauli


def on(n, ops: dict):
    return reduce(np.kron, [ops.get(q, I2) for q in range(n)])


def np_gate(n, name, qubits, t=None):
    if name in ("rx", "ry", "rz"):
        return on(n, {qubits[0]: rot({"rx": X, "ry": Y, "rz": Z}[name], t)})
    a, b = qubits
    if name in ("rzz", "rxx", "ryy"):
        p = {"rzz": Z, "rxx": X, "ryy": Y}[name]
        pp = on(n, {a: p, b: p})
        return np.cos(t / 2) * np.eye(2**n) - 1j * np.sin(t / 2) * pp
    if name == "cz":
        return np.diag([(-1.0) ** (((k >> (n - 1 - a)) & 1) * ((k >> (n - 1 - b)) & 1)) for k in range(2**n)])
    if name == "cnot":
        p0, p1 = np.diag([1, 0]), np.diag([0, 1])
        return on(n, {a: p0}) + on(n, {a: p1, b: X})
    raise ValueError(name)


def random_program(rng, n, n_layers=3):
    """A random circuit as a list of (gate, qubits, parameter index or None)."""
    prog, k = [], 0
    for _ in range(n_layers):
        for q in range(n):
            prog.append((str(rng.choice(["rx", "ry", "rz"])), (q,), k))
            k += 1
        for q in range(n - 1):
            name = str(rng.choice(["rzz", "rxx", "ryy", "cz", "cnot"]))
            a, b = (q, q + 1) if rng.random() < 0.5 else (q + 1, q)
            if name in ("cz", "cnot"):
                prog.append((name, (a, b), None))
            else:
                prog.append((name, (a, b), k))
                k += 1
    return prog, k


def as_tc(prog):
    def circuit(c, params, x):
        for name, qubits, k in prog:
            if k is None:
                getattr(c, name)(*qubits)
            else:
                getattr(c, name)(*qubits, theta=params[k])
    return circuit


def np_logit(prog, n, params, state, scale=5.0, measured=None):
    psi = np.asarray(state, complex)
    for name, qubits, k in prog:
        psi = np_gate(n, name, qubits, None if k is None else float(params[k])) @ psi
    m = n - 1 if measured is None else measured
    return scale * np.real(psi.conj() @ on(n, {m: Z}) @ psi)


def logits(model):
    """The model's logits over a batch, compiled as one program (as the engine runs it), not op by op."""
    return jax.jit(jax.vmap(model.apply, in_axes=(None, 0)))


def _states(rng, n, b):
    v = rng.normal(size=(b, 2**n)) + 1j * rng.normal(size=(b, 2**n))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --- tests ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("simulator", ANY_DTYPE)
@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])  # the second seed: CI
def test_random_user_circuits_match_numpy_outputs_and_gradients(x64, simulator, seed):
    rng = np.random.default_rng(seed)
    n = 4
    prog, n_params = random_program(rng, n)
    model = qnn(n, ansatz=as_tc(prog), n_params=n_params, dtype="complex128", simulator=simulator)
    assert model.settings["simulator"] == simulator
    params = jnp.asarray(rng.normal(size=n_params))
    states = _states(rng, n, 3)
    xs = model.prepare(states)
    got = logits(model)(params, xs)
    want = [np_logit(prog, n, np.asarray(params), s) for s in states]
    np.testing.assert_allclose(got, want, atol=1e-10)
    # gradient of one logit against central differences of the numpy simulator
    grad = jax.jit(jax.grad(model.apply))(params, xs[0])
    eps = 1e-6
    for k in range(0, n_params, 3):
        e = np.zeros(n_params)
        e[k] = eps
        fd = (np_logit(prog, n, np.asarray(params) + e, states[0]) - np_logit(prog, n, np.asarray(params) - e,
                                                                                 states[0])) / (2 * eps)
        assert abs(float(grad[k]) - fd) < 1e-6


@pytest.mark.parametrize("simulator", [pytest.param("xla-gates", marks=pytest.mark.slow), "tc-gates"])
def test_the_librarys_hea_is_the_built_in_qnn(x64, simulator):
    """The same circuit written in TensorCircuit and built in: logits and gradients to 1e-10."""
    n, d = 5, 3
    ours = qnn(n, d, ansatz="hea", dtype="complex128", simulator=simulator)
    built_in = qnn(n, d, dtype="complex128", simulator="blocks")
    key = jax.random.PRNGKey(3)
    p = jax.random.normal(key, (d, n, 4), jnp.float64)
    xs = built_in.prepare(_states(np.random.default_rng(2), n, 4))
    a = jax.vmap(ours.apply, in_axes=(None, 0))(p.reshape(-1), xs)  # op by op: TensorCircuit's contraction
    b = jax.vmap(built_in.apply, in_axes=(None, 0))(p, xs)  # compiles slower than it runs eagerly here
    np.testing.assert_allclose(a, b, atol=1e-10)
    ga = jax.grad(lambda q: ours.apply(q, xs[0]))(p.reshape(-1))
    gb = jax.grad(lambda q: built_in.apply(q, xs[0]))(p)
    np.testing.assert_allclose(ga, gb.reshape(-1), atol=1e-10)
    assert ours.settings["n_params"] == 4 * n * d


@pytest.mark.parametrize("name", ["rxry_cnot", "hea_cz"])
def test_library_ansatzes_match_tensorcircuit_and_numpy(x64, name):
    n, d = 4, 2
    rng = np.random.default_rng(5)
    fast = qnn(n, d, ansatz=name, dtype="complex128", simulator="xla-gates")
    ref = qnn(n, d, ansatz=name, dtype="complex128", simulator="tc-gates")
    params = jnp.asarray(rng.normal(size=LIBRARY[name].n_params(n, d)))
    xs = fast.prepare(_states(rng, n, 3))
    np.testing.assert_allclose(logits(fast)(params, xs),
                               logits(ref)(params, xs), atol=1e-10)
    if name == "rxry_cnot":  # the built-in variant
        built_in = qnn(n, d, ansatz="rxry_cnot", dtype="complex128", simulator="tc-fused")
        np.testing.assert_allclose(logits(fast)(params, xs),
                                   logits(built_in)(params.reshape(d, n, 2), xs),
                                   atol=1e-10)
    else:  # by hand in numpy
        p = np.asarray(params).reshape(d, n, 2)
        prog = [g for layer in range(d) for g in
                [(gate, (q,), None) for q in range(n) for gate in ("ry", "rz")] + [("cz", (q, q + 1), None)
                                                                                   for q in range(n - 1)]]
        values = iter(p.reshape(-1))
        prog = [(g, qs, next(values) if g in ("ry", "rz") else None) for g, qs, _ in prog]
        for x, s in zip(xs, np.asarray(xs)):
            psi = s
            for g, qs, t in prog:
                psi = np_gate(n, g, qs, t) @ psi
            assert abs(5 * np.real(psi.conj() @ on(n, {n - 1: Z}) @ psi) - float(fast.apply(params, x))) < 1e-10


@pytest.mark.parametrize("simulator", ANY_DTYPE)
def test_reupload_and_angle_encodings_load_the_features(x64, simulator):
    n, d = 3, 2
    rng = np.random.default_rng(7)
    feats = rng.uniform(0, np.pi, size=(2, n))
    model = qnn(n, d, ansatz="reupload", encoding="reupload", dtype="complex128", simulator=simulator)
    params = jnp.asarray(rng.normal(size=2 * n * d))
    p = np.asarray(params).reshape(d, n, 2)
    for f, x in zip(feats, model.prepare(feats)):
        psi = np.zeros(2**n, complex)
        psi[0] = 1
        for layer in range(d):
            for q in range(n):
                psi = np_gate(n, "rx", (q,), f[q]) @ psi
            for q in range(n):
                psi = np_gate(n, "rz", (q,), p[layer, q, 1]) @ np_gate(n, "ry", (q,), p[layer, q, 0]) @ psi
            for q in range(n - 1):
                psi = np_gate(n, "cz", (q, q + 1)) @ psi
        assert abs(5 * np.real(psi.conj() @ on(n, {n - 1: Z}) @ psi) - float(model.apply(params, x))) < 1e-10
    angle = qnn(n, d, ansatz="hea_cz", encoding="angle", n_features=2, dtype="complex128", simulator=simulator)
    psi0 = np.zeros(2**n, complex)
    psi0[0] = 1
    f = feats[0, :2]
    psi = np_gate(n, "ry", (1,), f[1]) @ np_gate(n, "ry", (0,), f[0]) @ psi0
    p = np.asarray(params).reshape(d, n, 2)
    for layer in range(d):
        for q in range(n):
            psi = np_gate(n, "rz", (q,), p[layer, q, 1]) @ np_gate(n, "ry", (q,), p[layer, q, 0]) @ psi
        for q in range(n - 1):
            psi = np_gate(n, "cz", (q, q + 1)) @ psi
    got = float(angle.apply(params, angle.prepare(f[None])[0]))
    assert abs(5 * np.real(psi.conj() @ on(n, {n - 1: Z}) @ psi) - got) < 1e-10


def test_complex64_circuits_agree_to_float32_rounding():
    rng = np.random.default_rng(11)
    prog, n_params = random_program(rng, 5)
    model = qnn(5, ansatz=as_tc(prog), n_params=n_params)
    params = jnp.asarray(rng.normal(size=n_params), jnp.float32)
    states = _states(rng, 5, 2)
    got = logits(model)(params, model.prepare(states))
    want = [np_logit(prog, 5, np.asarray(params, float), s) for s in states]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_a_circuit_beyond_gates_falls_back_to_tensorcircuit_and_says_why():
    def post_selected(c, params, x):
        c.ry(0, theta=params[0])
        c.h(1)
        c.post_select(1, keep=0)  # a projection: not a gate

    model = qnn(2, ansatz=post_selected, n_params=1)
    assert model.settings["simulator"] == "tc-gates"
    assert "do not reproduce TensorCircuit's state" in model.settings["simulator_reason"]
    with pytest.raises(ConfigError, match="xla-gates.*cannot run this QNN: the circuit.s recorded gates"):
        qnn(2, ansatz=post_selected, n_params=1, simulator="xla-gates")


def test_bad_circuits_and_settings_are_refused_by_name():
    def broken(c, params, x):
        c.rx(7, theta=params[0])

    with pytest.raises(ConfigError, match="failed on a probe input"):
        qnn(3, ansatz=broken, n_params=1)
    with pytest.raises(ConfigError, match="unknown encoding"):
        qnn(3, ansatz=broken, n_params=1, encoding="basis")
    with pytest.raises(ConfigError, match="loads the features itself"):
        qnn(3, 1, ansatz="reupload")
    with pytest.raises(ConfigError, match="unknown ansatz"):
        qnn(3, 1, ansatz="qcnn")
    with pytest.raises(ConfigError, match="4 features do not fit 3 qubits"):
        qnn(3, 1, ansatz="hea_cz", encoding="angle", n_features=4)


def _pads(fn, params) -> int:
    return sum(e.primitive.name == "pad" for e in jax.make_jaxpr(jax.grad(fn))(params).jaxpr.eqns)


def test_split_parameters_record_the_same_gates_and_a_gradient_without_a_padded_copy_per_read(x64):
    """``record``'s split: the same gates, values and gradients as on the whole array (to 1e-12), and a gradient
    whose program sums no zero-padded copy of the parameters per read (the whole array's: one per rotation),
    the graph XLA:CPU compiled for 67 s at 10 qubits and depth 6 (docs/device.md)."""
    from qrobust.models.circuits import record

    n, depth = 3, 2
    fn = LIBRARY["hea"].circuit(n, depth)
    params = jnp.asarray(np.random.default_rng(0).normal(size=(depth, n, 4)))
    weights = np.random.default_rng(1).normal(size=(8, 4, 4))

    def weighted(split):
        def f(q):
            gates, _ = record(fn, n, "amplitude", q, None, "complex128", split=split)
            return sum(jnp.sum(jnp.real(m * weights[i % 8][:len(m), :len(m)])) for i, (m, _, _) in enumerate(gates))
        return f

    for (a, qa, na), (b, qb, nb) in zip(*(record(fn, n, "amplitude", params, None, "complex128", split=s)[0]
                                          for s in (True, False))):
        assert (qa, na) == (qb, nb) and np.allclose(a, b, atol=1e-12)
    (va, ga), (vb, gb) = (jax.jit(jax.value_and_grad(weighted(s)))(params) for s in (True, False))
    assert abs(va - vb) < 1e-12 and np.allclose(ga, gb, atol=1e-12) and np.abs(ga).min() > 0
    assert _pads(weighted(False), params) == depth * n * 4 and _pads(weighted(True), params) == 0


def test_an_ansatz_that_cannot_take_split_parameters_is_recorded_whole_or_refused_by_name():
    """An ansatz calling jax on a slice of its parameters fails on the split array and is recorded on the whole;
    one that records other gates on the split array (it reads their type) is refused, with the reason."""
    from qrobust.models.circuits import record

    def sliced(c, params, x):
        for q, t in enumerate(jnp.sin(params[:2])):
            c.ry(q, theta=t)
        c.cnot(0, 1)

    def by_type(c, params, x):
        c.ry(0, theta=params[0] * (2.0 if isinstance(params, np.ndarray) else 1.0))
        c.cnot(0, 1)

    params = jnp.asarray([0.3, -0.7])
    gates, _ = record(sliced, 2, "amplitude", params, None)
    assert np.allclose(gates[0][0], np.cos(np.sin(0.3) / 2) * I2 - 1j * np.sin(np.sin(0.3) / 2) * Y, atol=1e-6)
    assert qnn(2, ansatz=sliced, n_params=2).settings["simulator"] == "xla-gates"
    model = qnn(2, ansatz=by_type, n_params=2)
    assert model.settings["simulator"] == "tc-gates"
    assert "records other gates when its parameters are given as an array of their entries" in \
        model.settings["simulator_reason"]


def test_a_user_ansatz_from_a_function_counts_its_parameters():
    def mine(c, params, x, depth):
        for layer in range(depth):
            for q in range(3):
                c.ry(q, theta=params[layer * 3 + q])
            c.cnot(0, 1)

    a = Ansatz.from_function("mine", mine, lambda n, d: n * d)
    model = qnn(3, 2, ansatz=a)
    assert model.settings["n_params"] == 6 and model.settings["ansatz"] == "mine"
    assert model.settings["simulator"] == "xla-gates"


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_the_whole_batch_path_equals_one_example_at_a_time(x64):
    from qrobust.models import batch_logits

    rng = np.random.default_rng(13)
    prog, n_params = random_program(rng, 5)
    model = qnn(5, ansatz=as_tc(prog), n_params=n_params, dtype="complex128")
    assert model.apply_batch is not None
    params = jnp.asarray(rng.normal(size=n_params))
    xs = model.prepare(_states(rng, 5, 6))
    np.testing.assert_allclose(batch_logits(model)(params, xs), logits(model)(params, xs),
                               atol=1e-12)
    g1 = jax.grad(lambda p: batch_logits(model)(p, xs).sum())(params)
    g2 = jax.grad(lambda p: logits(model)(p, xs).sum())(params)
    np.testing.assert_allclose(g1, g2, atol=1e-10)


def test_angle_encoding_batch_path_equals_the_recorded_ry_gates(x64):
    from qrobust.models import batch_logits

    rng = np.random.default_rng(17)
    model = qnn(4, 2, ansatz="hea_cz", encoding="angle", n_features=3, dtype="complex128")
    assert model.apply_batch is not None
    params = jnp.asarray(rng.normal(size=16))
    xs = model.prepare(rng.uniform(0, np.pi, size=(5, 3)))
    np.testing.assert_allclose(batch_logits(model)(params, xs), logits(model)(params, xs),
                               atol=1e-12)


@pytest.mark.slow  # 14 to 29 s on 2 AVX2 cores (2026-12-01): kept out of the default suite; CI runs it
def test_the_readmes_user_circuit_trains_through_the_sweep(tmp_path):
    """The README's example, on a small problem: a user's TensorCircuit function through run_sweep."""
    from qrobust.experiments.sweep import SweepConfig, run_sweep
    from qrobust.models.ansatze import Ansatz

    def ry_cz(c, params, x, depth):
        n = c._nqubits
        for layer in range(depth):
            for q in range(n):
                c.ry(q, theta=params[layer * n + q])
            for q in range(n - 1):
                c.cz(q, q + 1)

    mine = Ansatz.from_function("ry_cz_test", ry_cz, n_params=lambda n, d: n * d)
    results = run_sweep(SweepConfig(dataset="xxz", n_qubits=4, models=("qnn",), ansatz=mine, depth=(1, 2),
                                    seeds=(0,), corruptions=("flip",), alphas=(0.0,), epochs=2, batch_size=16,
                                    gauge="fixed"), tmp_path / "run", progress=False)
    assert set(results.ansatz) == {"ry_cz_test"} and set(results.n_params) == {4, 8}
    assert set(results.arch) == {"ry_cz_test-d1", "ry_cz_test-d2"} and results.val_acc.notna().all()
    import json

    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]
    assert recorded["ansatz"] == "ry_cz_test" and set(recorded["simulators"].values()) == {"xla-gates"}


# --- the native kernel for circuits ("native-gates": complex64, 5 to 20 qubits, one- and two-qubit gates) ---


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)])
def test_native_gates_match_numpy_and_the_xla_gradient(native_kernel, seed):
    """Random circuits of every gate kind (fused 2x2s, diagonals, 4x4s such as CNOT and RXX in both qubit
    orders), any measured qubit: outputs against the numpy statevector, parameter gradients of a weighted sum
    against the XLA simulator's reverse mode, in complex64."""
    from qrobust.models import batch_logits

    rng = np.random.default_rng(seed)
    n, measured = 5 + seed, [4, 0, 3][seed]
    prog, n_params = random_program(rng, n, n_layers=2)
    model = qnn(n, ansatz=as_tc(prog), n_params=n_params, measured=measured)
    assert model.settings["simulator"] == "native-gates"
    assert model.settings["simulator_reason"].startswith("native: it runs the 'hea' ansatz only")
    xla = qnn(n, ansatz=as_tc(prog), n_params=n_params, measured=measured, simulator="xla-gates")
    params = jnp.asarray(rng.normal(size=n_params), jnp.float32)
    states = _states(rng, n, 7)
    xs = model.prepare(states)
    want = [np_logit(prog, n, np.asarray(params, float), s, measured=measured) for s in states]
    np.testing.assert_allclose(batch_logits(model)(params, xs), want, atol=1e-5)
    np.testing.assert_allclose(logits(model)(params, xs), want, atol=1e-5)
    w = jnp.asarray(rng.normal(size=7), jnp.float32)
    got = jax.jit(jax.grad(lambda p: batch_logits(model)(p, xs) @ w))(params)
    ref = jax.jit(jax.grad(lambda p: batch_logits(xla)(p, xs) @ w))(params)
    assert float(jnp.abs(ref).max()) > 0.1
    np.testing.assert_allclose(got, ref, atol=2e-5 * float(jnp.abs(ref).max()))


@pytest.mark.slow  # 14 to 29 s on 2 AVX2 cores (2026-12-01): kept out of the default suite; CI runs it
def test_native_gates_run_the_librarys_hea_as_the_built_in_kernel(native_kernel):
    """The paper's HEA written in TensorCircuit, on the circuit kernel, against the built-in HEA kernel: logits
    and gradients."""
    from qrobust.models import batch_logits

    n, d = 6, 3
    assert qnn(n, d, ansatz="hea").settings["simulator"] == "native"  # one door: the library's hea is the built-in
    ours = qnn(n, d, ansatz="hea", simulator="native-gates")
    built_in = qnn(n, d, simulator="native")
    p = 0.7 * jax.random.normal(jax.random.PRNGKey(4), (d, n, 4), jnp.float32)
    xs = built_in.prepare(_states(np.random.default_rng(6), n, 5))
    np.testing.assert_allclose(batch_logits(ours)(p.reshape(-1), xs), batch_logits(built_in)(p, xs), atol=1e-5)
    ga = jax.grad(lambda q: batch_logits(ours)(q, xs).sum())(p.reshape(-1))
    gb = jax.grad(lambda q: batch_logits(built_in)(q, xs).sum())(p)
    np.testing.assert_allclose(ga, gb.reshape(-1), atol=1e-4)


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_native_gates_load_angle_features_as_the_recorded_ry_gates(native_kernel):
    from qrobust.models import batch_logits

    n = 6
    angle = qnn(n, 2, ansatz="hea_cz", encoding="angle", n_features=4)
    slow = qnn(n, 2, ansatz="hea_cz", encoding="angle", n_features=4, simulator="xla-gates")
    assert angle.settings["simulator"] == "native-gates"
    q = jnp.asarray(np.random.default_rng(8).normal(size=4 * n), jnp.float32)
    feats = angle.prepare(np.random.default_rng(9).uniform(0, np.pi, size=(3, 4)))
    np.testing.assert_allclose(batch_logits(angle)(q, feats), batch_logits(slow)(q, feats), atol=1e-5)


def test_the_default_simulator_says_why_it_is_not_native(native_kernel, x64):
    from scipy.linalg import expm

    h = np.random.default_rng(0).normal(size=(8, 8))
    three = expm(1j * (h + h.T))  # a constant 3-qubit unitary that is no permutation

    def with_gate(gate):
        def circuit(c, params, x):
            for q in range(c._nqubits):
                c.ry(q, theta=params[q])
            gate(c)
        return circuit

    model = qnn(5, ansatz=with_gate(lambda c: c.any(0, 1, 2, unitary=three)), n_params=5)
    assert model.settings["simulator"] == "xla-gates"
    assert "3-qubit gate" in model.settings["simulator_reason"]
    # a Toffoli permutes basis states: the kernel runs it as an index gather, as XLA does
    toffoli = qnn(5, ansatz=with_gate(lambda c: c.toffoli(0, 1, 4)), n_params=5, measured=4)
    assert toffoli.settings["simulator"] == "native-gates"
    xla = qnn(5, ansatz=with_gate(lambda c: c.toffoli(0, 1, 4)), n_params=5, measured=4, simulator="xla-gates")
    params = jnp.asarray(np.random.default_rng(1).uniform(0, np.pi, 5), jnp.float32)
    xs = toffoli.prepare(np.eye(32)[[0, 5, 31]])
    np.testing.assert_allclose(logits(toffoli)(params, xs),
                               logits(xla)(params, xs), atol=1e-5)
    small = qnn(4, 1, ansatz="hea")  # too small for the kernels: the structured XLA simulator runs the paper's HEA
    assert small.settings["simulator"] == "blocks" and "5 to 20 qubits" in small.settings["simulator_reason"]
    reupload = qnn(5, 1, ansatz="reupload", encoding="reupload")
    assert reupload.settings["simulator"] == "xla-gates" and "reupload" in reupload.settings["simulator_reason"]
    with pytest.raises(ConfigError, match="native-gates.*complex64 only"):
        qnn(5, 1, ansatz="hea", dtype="complex128", simulator="native-gates")


def test_constant_permutation_gates_become_one_gather_checked_against_dense_matrices():
    """A CNOT, a SWAP and a Toffoli (constant 0/1 matrices) as index arrays: state[gather] equals the dense
    matrix times the state, for qubits in either order; consecutive ones fuse into one gather (the CNOT ring of
    a layer is one), a matrix traced from parameters or with a phase is never taken for one."""
    from qrobust.models.circuits import fused, permutation_gather

    n = 5
    rng = np.random.default_rng(3)
    psi = rng.normal(size=2**n) + 1j * rng.normal(size=2**n)
    swap = np.eye(4)[[0, 2, 1, 3]]
    toffoli = np.eye(8)[[0, 1, 2, 3, 4, 5, 7, 6]]
    p0, p1 = np.diag([1, 0]), np.diag([0, 1])
    cases = [(np_gate(2, "cnot", (0, 1)), (3, 1), np_gate(n, "cnot", (3, 1))),
             (swap, (4, 0), on(n, {4: p0, 0: p0}) + on(n, {4: p1, 0: p1}) + on(n, {4: p0 @ X, 0: p1 @ X})
              + on(n, {4: p1 @ X, 0: p0 @ X})),
             (toffoli, (2, 0, 4), np.eye(2**n) - on(n, {2: p1, 0: p1}) + on(n, {2: p1, 0: p1, 4: X}))]
    for matrix, qubits, dense in cases:
        np.testing.assert_allclose(psi[permutation_gather(matrix, qubits, n)], dense @ psi, atol=1e-12)
    assert permutation_gather(np.diag([1, 1, 1, -1]), (0, 1), n) is None  # a phase: CZ is a diagonal instead
    assert permutation_gather(np.eye(4) * 1j, (0, 1), n) is None
    traced = jax.jit(lambda t: jnp.asarray(permutation_gather(t * np.eye(4), (0, 1), n) is None))(1.0)
    assert bool(traced)
    cnot = jnp.asarray(np_gate(2, "cnot", (0, 1)), jnp.complex64)
    ring = [(cnot, (q, (q + 1) % n), "cnot") for q in range(n)]
    events = fused(ring + ring, n, jnp.complex64)
    assert [e[0] for e in events] == ["permutation"]
    dense = reduce(lambda acc, g: np_gate(n, "cnot", g[1]) @ acc, ring + ring, np.eye(2**n))
    np.testing.assert_allclose(psi[events[0][1]], dense @ psi, atol=1e-12)
