"""Critical-point fits on synthetic noise responses with a known alpha_c."""

import numpy as np
import pandas as pd
import pytest

from qrobust.analysis.critical import critical_points, crossing, logistic_step
from qrobust.cli import main

ALPHAS = np.round(np.arange(0, 1.0, 0.1), 1)


def _sweep(memorization, validation, seeds=5, noise=0.02, seed=0):
    """A sweep-like table whose final memorisation and validation follow the given curves (plus noise)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(seeds):
        for a in ALPHAS:
            rows.append(dict(model="m", corruption="flip", learning_rate=0.01, alpha=a, seed=s, epoch=3,
                             memorization=np.clip(memorization(a) + noise * rng.normal(), 0, 1) if a > 0 else np.nan,
                             val_acc=np.clip(validation(a) + noise * rng.normal(), 0, 1), diverged=False))
    frame = pd.DataFrame(rows)
    frame["train_acc"] = 1 - frame.alpha
    frame["train_acc_clean"] = frame.val_acc
    return frame


def test_crossing_by_hand():
    # lo + (hi - lo) / (1 + exp(-(a - a0)/w)) = 1/2 with lo = 0, hi = 1 -> a = a0
    assert crossing(np.array([0.0, 1.0, 0.4, 0.05])) == pytest.approx(0.4)
    # lo = 0.2, hi = 1: (0.5 - 0.2) / 0.8 = 1 / (1 + e^-z) -> z = ln(0.375 / 0.625)
    assert crossing(np.array([0.2, 1.0, 0.4, 0.1])) == pytest.approx(0.4 + 0.1 * np.log(0.375 / 0.625))
    assert np.isnan(crossing(np.array([0.6, 1.0, 0.4, 0.1])))


def test_recovers_a_known_critical_point():
    truth = 0.42
    frame = _sweep(lambda a: logistic_step(a, 0.03, 0.97, truth, 0.04),
                   lambda a: logistic_step(a, 0.97, 0.03, truth + 0.02, 0.05))
    row = critical_points(frame, n_boot=100).iloc[0]
    assert row.transition
    assert abs(row.alpha_c_memorization - truth) < 0.02
    assert row.alpha_c_memorization_lo <= truth <= row.alpha_c_memorization_hi
    assert abs(row.alpha_c_validation - (truth + 0.02)) < 0.03
    assert row.alpha_c_memorization_hi - row.alpha_c_memorization_lo < 0.08


@pytest.mark.parametrize("memorization, reason", [
    (lambda a: 0.97, "does not cross"),          # memorises at every alpha (the MLP)
    (lambda a: a, "not sharp"),                  # a straight line crossing 1/2: no step
])
def test_no_transition_is_flagged(memorization, reason):
    frame = _sweep(memorization, lambda a: 1 - a)
    row = critical_points(frame, n_boot=50).iloc[0]
    assert not row.transition and reason in row.reason


def test_diverged_replicas_are_left_out():
    frame = _sweep(lambda a: logistic_step(a, 0.0, 1.0, 0.5, 0.03), lambda a: 1 - a)
    poisoned = frame.copy()
    poisoned.loc[poisoned.seed == 0, ["memorization", "val_acc"]] = 0.0
    poisoned.loc[poisoned.seed == 0, "diverged"] = True
    a = critical_points(frame[frame.seed != 0], n_boot=20).iloc[0]
    b = critical_points(poisoned, n_boot=20).iloc[0]
    assert a.alpha_c_memorization == pytest.approx(b.alpha_c_memorization) and b.n_seeds == 4


def test_analyze_command(tmp_path, capsys):
    frame = _sweep(lambda a: logistic_step(a, 0.0, 1.0, 0.5, 0.03), lambda a: 1 - a)
    frame.to_csv(tmp_path / "results.csv", index=False)
    assert main(["analyze", str(tmp_path), "--bootstrap", "20"]) == 0
    assert (tmp_path / "critical_points.csv").exists() and (tmp_path / "noise_response.png").exists()
    assert main(["analyze", str(tmp_path / "nowhere")]) == 2
    assert "holds no results.csv" in capsys.readouterr().err


def test_finite_size_table_from_several_runs(tmp_path, capsys):
    import json

    for n_train, a_c in ((40, 0.44), (160, 0.48)):
        run = tmp_path / f"n{n_train}"
        run.mkdir()
        _sweep(lambda a, a_c=a_c: logistic_step(a, 0.0, 1.0, a_c, 0.03), lambda a: 1 - a).to_csv(
            run / "results.csv", index=False)
        (run / "config.json").write_text(json.dumps({"settings": {"dataset": "xxz", "n_train": n_train,
                                                                   "n_qubits_data": 8}}))
    runs = [str(tmp_path / "n40"), str(tmp_path / "n160")]
    assert main(["analyze", *runs, "--bootstrap", "20"]) == 2
    assert "--finite-size-out" in capsys.readouterr().err
    assert main(["analyze", *runs, "--bootstrap", "20", "--finite-size-out", str(tmp_path / "fs")]) == 0
    table = pd.read_csv(tmp_path / "fs" / "finite_size.csv")
    assert list(table.n_train) == [40, 160] and (table.n_qubits == 8).all()
    assert abs(table.alpha_c_memorization.iloc[0] - 0.44) < 0.02
    assert abs(table.alpha_c_memorization.iloc[1] - 0.48) < 0.02
    assert np.allclose(table.width_10_90, 2 * np.log(9) * table.width_memorization)
    assert (tmp_path / "fs" / "finite_size.png").exists()
