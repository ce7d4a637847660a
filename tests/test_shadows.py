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


@pytest.mark.parametrize("extra, message", [
    (["--shadows", "3"], "at least 8"),
    (["--salun-fraction", "0"], "SalUn"),
    (["--l1-w", "-1"], "l1 weight"),
])
def test_bad_shadow_options_are_refused_before_any_work(tmp_path, capsys, extra, message):
    out = tmp_path / "never"
    assert main(["unlearn", "--dataset", "xxz", "--out", str(out), *extra]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
