"""Detection metrics on hand-made masks."""

import numpy as np
import pytest

from qrobust.analysis.detection import detection_metrics, margin_scores


def test_perfect_and_inverted_rankings():
    mask = np.array([True, False, True, False, False])
    perfect = detection_metrics(np.array([0.9, 0.1, 0.8, 0.2, 0.3]), mask)
    assert perfect["auroc"] == 1.0 and perfect["auprc"] == 1.0 and perfect["precision_at_k"] == 1.0
    worst = detection_metrics(-np.array([0.9, 0.1, 0.8, 0.2, 0.3]), mask)
    assert worst["auroc"] == 0.0 and worst["precision_at_k"] == 0.0


def test_hand_computed_case():
    mask = np.array([True, False, True, False])
    scores = np.array([0.9, 0.8, 0.1, 0.2])  # ranking: bad, good, good, bad
    m = detection_metrics(scores, mask, flagged=np.array([True, True, False, False]))
    # pairs (bad, good): (0.9 > 0.8) (0.9 > 0.2) (0.1 < 0.8) (0.1 < 0.2) -> AUROC 2/4
    assert m["auroc"] == pytest.approx(0.5)
    # average precision: hits at ranks 1 and 4 -> (1/1 + 2/4) / 2
    assert m["auprc"] == pytest.approx(0.75)
    assert m["precision_at_k"] == pytest.approx(0.5)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(0.5)


def test_undefined_cases_are_nan():
    m = detection_metrics(np.array([0.1, 0.2]), np.array([False, False]), flagged=np.array([False, False]))
    assert np.isnan(m["auroc"]) and np.isnan(m["precision"]) and np.isnan(m["recall"]) and m["n_corrupted"] == 0


def test_margin_scores():
    margins = np.array([[1.0, -2.0, 0.5], [3.0, -1.0, -0.5]])  # (epochs, samples)
    s = margin_scores(margins)
    np.testing.assert_allclose(s["margin"], [-3.0, 1.0, 0.5])
    np.testing.assert_allclose(s["aum"], [-2.0, 1.5, 0.0])


@pytest.mark.slow  # kept out of the default suite (10 minutes on 2 cores); CI runs it
def test_detect_command_end_to_end(tmp_path, capsys):
    import pandas as pd

    from qrobust.cli import main

    out = tmp_path / "d"
    args = ["detect", "--dataset", "xxz", "--qubits", "4", "--n-train", "12", "--alphas", "0.25,0.5", "--seeds", "2",
            "--epochs", "4", "--folds", "3", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    table = pd.read_csv(out / "detection.csv")
    detectors = {"qnn_margin", "qnn_aum", "mlp_margin", "mlp_aum", "cleanlab_logreg", "cleanlab_mlp"}
    assert set(table.detector) == detectors and len(table) == len(detectors) * 2 * 2
    assert (table.n_corrupted == (table.alpha * 24).astype(int) // 2 * 2).all()
    assert table[["auroc", "auprc", "precision_at_k"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (out / "detection.png").exists()
    # chunk sizes from memory (one replica's program measured per program), recorded for a resume
    import json
    assert set(json.loads((out / "chunk_sizes.json").read_text())) == {"qnn", "mlp", "mlp_cv"}
    assert main(["detect", "--alphas", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "nothing to detect" in capsys.readouterr().err
