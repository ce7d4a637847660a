"""The store of trained replicas keyed by content (qrobust.replicas): a study that needs replicas another study
trained reads them back, and its tables and weights are those of the same study run alone, bit for bit."""

import json
import logging

import jax
import numpy as np
import pytest

from qrobust import cache, load_results, replicas
from qrobust.experiments.sweep import SweepConfig, run_sweep

TINY = dict(dataset="xxz", n_qubits=4, n_train_per_class=8, corruptions=("flip",), epochs=3, batch_size=4)


def _counts(run) -> dict:
    """{program: (replicas reused, trained)} of a run's replicas.json, after checking its replica-epochs: each
    replica counts its program's epochs (programs.json)."""
    recorded = json.loads((run / "replicas.json").read_text())
    epochs = {p: d["settings"]["epochs"] for p, d in json.loads((run / "programs.json").read_text()).items()}
    for program, e in recorded.items():
        assert (e["reused_epochs"], e["trained_epochs"]) == (e["reused"] * epochs[program],
                                                            e["trained"] * epochs[program])
    return {program: (e["reused"], e["trained"]) for program, e in recorded.items()}


def _entries():
    return sorted((cache.cache_dir() / "replicas").rglob("*.npz"))


def _same_run(a, b):
    """Two run directories hold the same tables (bytes) and the same trained weights (bits)."""
    for table in ("results.csv", "summary.csv"):
        assert (a / table).read_bytes() == (b / table).read_bytes(), table
    wa, wb = load_results(a).weights(), load_results(b).weights()
    assert set(wa) == set(wb)
    for program in wa:
        leaves_a, leaves_b = (jax.tree_util.tree_leaves(w[program].params) for w in (wa, wb))
        assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(leaves_a, leaves_b))


def test_a_study_after_another_reads_its_replicas_and_equals_the_study_run_alone(tmp_path, monkeypatch):
    later = SweepConfig(**TINY, models=("qnn",), alphas=(0.5,), seeds=(1, 2))
    run_sweep(later, tmp_path / "alone", progress=False)  # trained here, in a cache of its own
    monkeypatch.setenv("QROBUST_CACHE", str(tmp_path / "second-cache"))
    assert not _entries()
    run_sweep(SweepConfig(**TINY, models=("qnn",), alphas=(0.0, 0.5), seeds=(0, 1, 2)), tmp_path / "first",
              progress=False)
    assert len(_entries()) == 2 * 3  # one entry per replica: alpha x seed
    run_sweep(later, tmp_path / "after", progress=False)
    assert _counts(tmp_path / "after") == {"qnn": (2, 0)}
    assert _counts(tmp_path / "first")["qnn"] == (0, 6)
    _same_run(tmp_path / "alone", tmp_path / "after")


@pytest.mark.slow  # 14 to 32 s each on 2 busy cores (2026-12-06)
@pytest.mark.parametrize("change", [dict(learning_rates=(0.02,)), dict(epochs=4), dict(n_train_per_class=7),
                                    dict(gauge="sign"), dict(corruptions=("features",))])
def test_a_replica_differing_in_any_determinant_is_trained(tmp_path, change):
    base = dict(TINY, models=("qnn",), alphas=(0.5,), seeds=(0,))
    run_sweep(SweepConfig(**base), tmp_path / "a", progress=False)
    run_sweep(SweepConfig(**{**base, **change}), tmp_path / "b", progress=False)
    assert _counts(tmp_path / "b")["qnn"] == (0, 1)
    run_sweep(SweepConfig(**{**base, **change}), tmp_path / "c", progress=False)  # the same again: read back
    assert _counts(tmp_path / "c")["qnn"] == (1, 0)


def test_a_study_evaluating_fewer_epochs_reads_the_metrics_it_needs(tmp_path, monkeypatch):
    """The evaluation schedule does not change training: a study evaluating a subset of the epochs another
    evaluated reuses its replicas, and equals the same study run alone; one needing more epochs trains."""
    base = dict(TINY, models=("mlp",), alphas=(0.5,), seeds=(0,), epochs=4)
    run_sweep(SweepConfig(**base, eval_every=2), tmp_path / "alone", progress=False)
    monkeypatch.setenv("QROBUST_CACHE", str(tmp_path / "second-cache"))
    run_sweep(SweepConfig(**base), tmp_path / "every", progress=False)
    run_sweep(SweepConfig(**base, eval_every=2), tmp_path / "after", progress=False)
    assert _counts(tmp_path / "after")["mlp"] == (1, 0)
    _same_run(tmp_path / "alone", tmp_path / "after")
    monkeypatch.setenv("QROBUST_CACHE", str(tmp_path / "third-cache"))
    run_sweep(SweepConfig(**base, eval_every=2), tmp_path / "sparse", progress=False)
    run_sweep(SweepConfig(**base), tmp_path / "dense", progress=False)
    assert _counts(tmp_path / "dense")["mlp"] == (0, 1)


def test_a_damaged_entry_is_not_read_and_the_replica_trains_again(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(logging.getLogger("qrobust"), "propagate", True)  # the CLI's tests turn it off
    caplog.set_level(logging.WARNING, logger="qrobust")
    config = SweepConfig(**TINY, models=("mlp",), alphas=(0.5,), seeds=(0,))
    run_sweep(config, tmp_path / "a", progress=False)
    (entry,) = _entries()
    with np.load(entry) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["params"] = arrays["params"] + 1.0  # rewritten: its digest no longer matches
    np.savez(entry, **arrays)
    run_sweep(config, tmp_path / "b", progress=False)
    assert _counts(tmp_path / "b")["mlp"] == (0, 1)
    assert "digest" in caplog.text
    _same_run(tmp_path / "a", tmp_path / "b")


def test_a_users_model_is_never_reused_and_the_store_can_be_turned_off(tmp_path, monkeypatch):
    import flax.linen as nn

    from qrobust.models import flax_model

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(1)(x)[..., 0]

    net = flax_model(Net(), name="replicas-net", epochs=3, batch_size=4, learning_rate=0.01)
    run_sweep(SweepConfig(**TINY, models=(net,), alphas=(0.5,), seeds=(0,)), tmp_path / "a", progress=False)
    assert not _entries()
    recorded = json.loads((tmp_path / "a" / "replicas.json").read_text())["replicas-net"]
    assert recorded["trained"] == 1 and "a user's model" in recorded["not reusable"]
    monkeypatch.setenv(replicas.VARIABLE, "0")
    run_sweep(SweepConfig(**TINY, models=("mlp",), alphas=(0.5,), seeds=(0,)), tmp_path / "b", progress=False)
    assert not _entries()
