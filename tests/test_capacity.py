"""Capacity as a grid axis (several depths, several hidden sizes in one sweep) and the random-label control."""

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from qrobust.cli import main
from qrobust.corruption import CORRUPTIONS, corrupt_replicas, corruption_count
from qrobust.experiments.sweep import SweepConfig, run_sweep

TINY = dict(dataset="xxz", n_qubits=4, corruptions=("flip",), alphas=(0.0, 0.5), seeds=(0, 1), epochs=3,
            batch_size=16, n_train_per_class=12, gauge="fixed")


@pytest.mark.slow  # (a sweep or two; CI runs the slow tests)
def test_each_architecture_is_its_own_program_and_gives_the_numbers_it_gives_alone(tmp_path):
    both = run_sweep(SweepConfig(**TINY, depth=(1, 2), hidden=((4,), (8, 2))), tmp_path / "both", progress=False)
    assert set(zip(both.model, both.arch)) == {("qnn", "d1"), ("qnn", "d2"), ("mlp", "h4"), ("mlp", "h8x2")}
    params = both.groupby(["model", "arch"]).n_params.first()
    # 4 rotation angles per qubit per layer (qrobust.models.hea); an MLP's weights and biases by formula
    d = 2 * 2**4  # complex states: real and imaginary parts
    assert params["qnn", "d1"] == 16 and params["qnn", "d2"] == 32
    assert params["mlp", "h4"] == d * 4 + 4 + 4 + 1 and params["mlp", "h8x2"] == d * 8 + 8 + 8 * 2 + 2 + 2 + 1
    chunks = sorted(p.name for p in (tmp_path / "both" / "chunks").glob("*.csv"))
    assert chunks == ["mlp_h4-0000.csv", "mlp_h8x2-0000.csv", "qnn_d1-0000.csv", "qnn_d2-0000.csv"]
    alone = run_sweep(SweepConfig(**TINY, depth=2, hidden=(8, 2)), tmp_path / "alone", progress=False)
    assert set(alone.arch) == {"d2", "h8x2"}
    for model, arch in (("qnn", "d2"), ("mlp", "h8x2")):
        a = both[(both.model == model) & (both.arch == arch)].reset_index(drop=True)
        b = alone[alone.model == model].reset_index(drop=True)
        pd.testing.assert_frame_equal(a, b, check_dtype=False)  # (a text column read back may be str or object)
    summary = pd.read_csv(tmp_path / "both" / "summary.csv")
    assert len(summary) == 4 * 2 and {"arch", "n_params"} <= set(summary.columns)


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_the_capacity_command_draws_its_figure_and_refuses_a_depth_given_twice(tmp_path, capsys):
    args = ["sweep", "--dataset", "xxz", "--qubits", "4", "--gauge", "fixed", "--corruption", "random-labels",
            "--alphas", "0,1", "--seeds", "1", "--epochs", "2", "--n-train", "8", "--no-progress"]
    out = tmp_path / "cap"
    assert main([*args, "--model", "qnn", "--depth", "1", "--depth", "3", "--out", str(out)]) == 0
    assert (out / "capacity.png").stat().st_size > 10_000 and (out / "noise_response.png").exists()
    assert main(["analyze", str(out)]) == 0
    critical = pd.read_csv(out / "critical_points.csv")
    assert set(critical.arch) == {"d1", "d3"} and (critical.n_params == [16, 48]).all()
    capsys.readouterr()
    bad = tmp_path / "bad"
    assert main([*args, "--depth", "2", "--depth", "2", "--out", str(bad)]) == 2
    assert "depth 2 is given twice" in capsys.readouterr().err and not bad.exists()


def test_random_labels_replace_the_chosen_labels_by_coin_flips():
    n = 400
    y = jnp.asarray(np.arange(n) % 2)
    count = corruption_count("random-labels", 0.5, n)
    assert count == 200 and corruption_count("random-labels", 1.0, n) == n
    r = 50
    keys = jax.vmap(jax.random.PRNGKey)(jnp.arange(r))
    c = corrupt_replicas(jnp.full(r, CORRUPTIONS.index("random-labels")), keys, jnp.eye(n, 4), y,
                         jnp.full(r, count, jnp.int32), jnp.zeros((r, n)))
    mask, labels = np.asarray(c.mask), np.asarray(c.y)
    assert (mask.sum(1) == count).all() and (mask[:, ::2].sum(1) == count // 2).all()  # half per class
    assert np.array_equal(labels[~mask], np.broadcast_to(np.asarray(y), mask.shape)[~mask])
    changed = (labels != np.asarray(y))[mask].mean()
    assert 0.45 < changed < 0.55  # fair coins: about half the replaced labels change
    ones = labels[mask].mean()
    assert 0.45 < ones < 0.55


@pytest.mark.parametrize("depth", [(1, 2)])
def test_capacity_axis_records_its_architectures(depth):
    config = SweepConfig(**TINY, depth=depth).validate()
    resolved = config.resolved()
    assert resolved["models"]["qnn"]["architectures"] == ["d1", "d2"]
    assert "architectures" not in SweepConfig(**TINY, depth=3).validate().resolved()["models"]["qnn"]


def test_angle_features_are_principal_components_of_the_training_set_scaled_to_angles():
    from sklearn.decomposition import PCA

    from qrobust.data.features import encode
    from qrobust.experiments.settings import load_dataset

    ds = load_dataset("mnist", n_train_per_class=30)
    enc = encode(ds, "angle", 4)
    pca = PCA(4, svd_solver="full").fit(ds.x_train)  # the training set only
    raw = pca.transform(ds.x_train)
    lo, hi = raw.min(0), raw.max(0)
    np.testing.assert_allclose(enc.x_train, np.pi * (raw - lo) / (hi - lo), atol=1e-9)
    np.testing.assert_allclose(enc.x_val, np.pi * np.clip((pca.transform(ds.x_val) - lo) / (hi - lo), 0, 1),
                               atol=1e-9)
    assert enc.n_qubits == 4 and enc.meta["encoding"] == "angle" and enc.x_train.min() >= 0
    assert enc.x_train.max() <= np.pi + 1e-12 and len(enc.meta["explained_variance"]) == 4


@pytest.mark.slow  # (a sweep or two; CI runs the slow tests)
def test_an_encoding_axis_gives_both_models_the_same_features(tmp_path):
    config = SweepConfig(**dict(TINY, dataset="mnist", gauge=None, n_qubits=None), encoding=("amplitude", "angle"),
                         n_features=3, depth=1, hidden=(4,))
    results = run_sweep(config, tmp_path / "enc", progress=False)
    params = results.groupby(["model", "encoding"]).n_params.first()
    assert params["mlp", "angle"] == 3 * 4 + 4 + 4 + 1  # the MLP reads the 3 features
    assert params["mlp", "amplitude"] == 1024 * 4 + 4 + 4 + 1
    assert params["qnn", "angle"] == 4 * 3 * 1 and params["qnn", "amplitude"] == 4 * 10 * 1
    assert set(results.arch) == {"amplitude-d1", "angle-d1", "amplitude-h4", "angle-h4"}
    with pytest.raises(Exception, match="--features applies"):
        SweepConfig(**TINY, n_features=3).validate()
