"""Shadow replicas of an unlearning setting (qrobust.experiments.shadows): the split, and the evaluation end to end."""

import numpy as np
import pandas as pd
import pytest

from qrobust.cli import main
from qrobust.experiments.shadows import shadow_split
from qrobust.experiments.unlearning import UnlearnConfig, evaluate_unlearning


def test_the_split_puts_each_example_in_half_the_shadows_keyed_by_the_seed():
    member = shadow_split(3, 16, 200)
    assert member.shape == (16, 200) and (member.sum(0) == 8).all()
    assert 80 < member.sum(1).min() and member.sum(1).max() < 120  # each shadow about half the pool
    assert np.array_equal(member, shadow_split(3, 16, 200))  # reproducible
    assert not np.array_equal(member, shadow_split(4, 16, 200))  # keyed by the seed
    # no two shadows share a half, and pairs of examples are not locked together
    assert len({m.tobytes() for m in member}) == 16
    co = (member[:, :, None] == member[:, None, :]).mean(0)[np.triu_indices(200, 1)]
    assert 0.4 < co.mean() < 0.6


@pytest.mark.slow  # 48 s; CI runs it (the analysis tests and the split keep the default suite's coverage)
def test_shadow_evaluation_end_to_end(tmp_path):
    """MLP on a small XXZ pool, 8 shadows. The budget-limited retrain is given the reference's very recipe
    (same epochs, batch and rate, the same keys), so it must be indistinguishable from it: AUC 0.5 exactly,
    zero KL, forgetting quality 1. The run resumes from its chunks to the same numbers."""
    config = UnlearnConfig(dataset="xxz", n_qubits=4, n_train_per_class=10, models=("mlp",), seeds=(0,),
                           methods=("retrain", "finetune"), epochs=4, teacher_epochs=4, batch_size=32,
                           learning_rate=0.01, shadows=8)
    out = evaluate_unlearning(config, tmp_path / "u", progress=False)
    card = out.scorecard.set_index("method")
    assert list(card.index) == ["retrain", "finetune", "none"]
    assert card.loc["retrain", "auc"] == 0.5 and card.loc["retrain", "kl_forget_mean"] == pytest.approx(0, abs=1e-12)
    assert card.loc["retrain", "forgetting_quality"] == 1.0
    assert card.loc["retrain", "agree_val_mean"] == 1.0
    # the teacher (none) and finetune were trained on the forget set: they are not the reference
    assert card.loc["none", "kl_forget_mean"] > 1e-4
    assert np.isnan(card.loc["none", "val_acc"]) and card.loc["none", "n_shadows"] == 8
    ex = out.examples
    n_forget = int(card.loc["retrain", "n_forget"])
    assert len(ex) == 3 * n_forget and (ex.n_shadows == 4).all()
    # retrain_full, the reference, trains with the teacher's whole recipe in the study too
    results = pd.read_csv(tmp_path / "u" / "results.csv")
    assert set(results.method) == {"retrain", "finetune"}
    for name in ("scorecard.csv", "shadows.csv", "examples.csv"):
        assert (tmp_path / "u" / name).is_file()
    from qrobust import report

    assert tmp_path / "u" / "scorecard.png" in report.draw(tmp_path / "u")  # the library draws nothing itself
    again = evaluate_unlearning(config, tmp_path / "u", progress=False)  # every chunk read back
    pd.testing.assert_frame_equal(again.scorecard, out.scorecard)


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_retrain_full_runs_the_teachers_recipe(tmp_path):
    config = UnlearnConfig(dataset="xxz", n_qubits=4, n_train_per_class=10, models=("mlp",), seeds=(0,),
                           methods=("retrain", "retrain_full"), epochs=2, teacher_epochs=5)
    out = evaluate_unlearning(config, None, progress=False)
    assert out.results.groupby("method").epoch.max().to_dict() == {"retrain": 2, "retrain_full": 5}
    assert out.scorecard is None
    assert set(out.final.method) == {"retrain", "retrain_full"}


@pytest.mark.slow  # two studies of the toy above, one with two poisoning draws
def test_two_poisoning_draws_each_keyed_by_its_seed(tmp_path):
    """Draw 0 is the single-draw evaluation of before (its chunks, its numbers); draw 1 is the pool of the second
    seed, its own chunks; the scorecard pools both, the draws' table holds each."""
    config = UnlearnConfig(dataset="xxz", n_qubits=4, n_train_per_class=10, models=("mlp",), seeds=(0, 1),
                           methods=("finetune",), epochs=4, teacher_epochs=4, batch_size=32, learning_rate=0.01,
                           shadows=8, shadow_draws=2)
    evaluate_unlearning(config, tmp_path / "two", progress=False)
    evaluate_unlearning(UnlearnConfig(**{**config.__dict__, "shadow_draws": 1}), tmp_path / "one", progress=False)
    names = {p.name.split(".")[0] for p in (tmp_path / "two").rglob("shadow-*")}
    assert any(n.startswith("shadow-teacher-") for n in names) and any(n.startswith("shadow-seed1-") for n in names)
    pooled, per_draw = pd.read_csv(tmp_path / "two" / "shadows.csv"), pd.read_csv(tmp_path / "two" / "shadow_draws.csv")
    single = pd.read_csv(tmp_path / "one" / "shadows.csv")
    assert (pooled.n_draws == 2).all() and (single.n_draws == 1).all()
    assert not (tmp_path / "one" / "shadow_draws.csv").exists()
    first = per_draw[per_draw.draw == 0].reset_index(drop=True)
    assert list(per_draw.seed.unique()) == [0, 1]
    timing = ["shadow_seconds"]
    pd.testing.assert_frame_equal(first.drop(columns=["draw", "seed"] + timing), single.drop(columns=timing))
    assert (pooled.n_neg == per_draw.groupby("method", sort=False).n_neg.sum().to_numpy()).all()


def test_shadow_draws_are_recorded_only_when_asked_and_bounded_by_the_seeds():
    from qrobust.errors import ConfigError

    base = dict(dataset="xxz", n_qubits=4, n_train_per_class=10, models=("mlp",), seeds=(0, 1), shadows=8)
    assert "shadow_draws" not in UnlearnConfig(**base).validate().resolved()  # a run stored before: unchanged
    assert UnlearnConfig(**base, shadow_draws=2).validate().resolved()["shadow_draws"] == 2
    for bad in (dict(shadow_draws=3), dict(shadow_draws=0), dict(shadow_draws=2, shadows=0)):
        with pytest.raises(ConfigError, match="shadow-draws"):
            UnlearnConfig(**{**base, **bad}).validate()


@pytest.mark.parametrize("extra, message", [
    (["--shadows", "3"], "at least 8"),
    (["--shadow-draws", "2"], "with --shadows"),
    (["--shadows", "8", "--seeds", "2", "--shadow-draws", "3"], "use 1 to 2"),
    (["--salun-fraction", "0"], "SalUn"),
    (["--l1-w", "-1"], "l1 weight"),
])
def test_bad_shadow_options_are_refused_before_any_work(tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    assert main(["unlearn", "--dataset", "xxz", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
