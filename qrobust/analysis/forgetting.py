"""Layer 6: how well a model forgot: membership inference, recovery, distance to retraining."""

from __future__ import annotations

import numpy as np


def loss_mia_accuracy(forget_losses: np.ndarray, test_losses: np.ndarray, *, n_splits: int = 5,
                      seed: int = 0) -> float:
    """Cross-validated accuracy of a loss-based membership-inference attack.

    As in the NeurIPS 2023 machine-unlearning challenge's starting kit: a logistic
    regression on the per-sample loss tells forget-set samples (label 1) from
    held-out samples (label 0); the two sets are balanced by subsampling the larger
    one (fixed ``seed``). For a clean forget set, 0.5 means it looks like unseen
    data (perfect forgetting) and near 1 that the attack recognises it. For a
    poisoned forget set scored with its poisoned labels, a model that refuses the
    poison also has high loss there, so the reference is the retrained model's
    score, not 0.5. NaN if a loss is not finite or a set has fewer than 2 samples.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    f, t = np.asarray(forget_losses, float).ravel(), np.asarray(test_losses, float).ravel()
    if not (np.isfinite(f).all() and np.isfinite(t).all()) or min(len(f), len(t)) < 2:
        return float("nan")
    rng = np.random.default_rng(seed)
    n = min(len(f), len(t))
    f, t = rng.choice(f, n, replace=False), rng.choice(t, n, replace=False)
    x = np.concatenate([f, t])[:, None]
    y = np.concatenate([np.ones(n), np.zeros(n)])
    cv = StratifiedKFold(n_splits=min(n_splits, n), shuffle=True, random_state=seed)
    return float(cross_val_score(LogisticRegression(), x, y, cv=cv, scoring="accuracy").mean())


def epochs_to_recover(val_acc: np.ndarray, target: float, tolerance: float = 0.01) -> float:
    """First epoch (1-based) whose validation accuracy is within ``tolerance`` of ``target``; NaN if none."""
    hits = np.flatnonzero(np.asarray(val_acc) >= target - tolerance - 1e-9)
    return float(hits[0] + 1) if len(hits) else float("nan")
