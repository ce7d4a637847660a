"""Scoring detectors of corrupted labels against the true corruption mask."""

from __future__ import annotations

import numpy as np


def margin_scores(margins: np.ndarray) -> dict[str, np.ndarray]:
    """Suspicion scores (higher = more likely corrupted) from per-epoch margins (epochs, N).

    margin = (2 y - 1) * logit against the label trained on. ``margin``: minus the
    final margin; ``aum``: minus the area under the margin (its mean over epochs,
    Pleiss et al. 2020).
    """
    margins = np.asarray(margins, float)
    return {"margin": -margins[-1], "aum": -margins.mean(axis=0)}


def detection_metrics(scores: np.ndarray, corrupted: np.ndarray, flagged: np.ndarray | None = None) -> dict:
    """How well ``scores`` (higher = suspect) find the ``corrupted`` samples.

    auroc, auprc (average precision), precision_at_k with k = number corrupted;
    with ``flagged`` (a boolean decision), its precision and recall. NaN where
    undefined (no corrupted or no clean sample, nothing flagged).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    scores, corrupted = np.asarray(scores, float), np.asarray(corrupted, bool)
    n_bad = int(corrupted.sum())
    out = dict(n_corrupted=n_bad, auroc=np.nan, auprc=np.nan, precision_at_k=np.nan, precision=np.nan, recall=np.nan)
    if 0 < n_bad < len(corrupted) and np.isfinite(scores).all():
        out["auroc"] = float(roc_auc_score(corrupted, scores))
        out["auprc"] = float(average_precision_score(corrupted, scores))
        top = np.argsort(-scores, kind="stable")[:n_bad]
        out["precision_at_k"] = float(corrupted[top].mean())
    if flagged is not None:
        flagged = np.asarray(flagged, bool)
        if flagged.any():
            out["precision"] = float(corrupted[flagged].mean())
        if n_bad:
            out["recall"] = float(flagged[corrupted].mean())
    return out
