"""How well a model forgot: membership inference, recovery, distance to retraining."""

from __future__ import annotations

import numpy as np
import pandas as pd

from qrobust.analysis.summary import diverged as loss_diverged

GRID = ("model", "method", "seed", "kl_w", "fo_w", "known_fraction")  # one unlearning student


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


def score_students(results: pd.DataFrame, final: pd.DataFrame, teachers: pd.DataFrame, params: dict,
                   seconds: dict, forget: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(results with a ``diverged`` column, the per-student table): ``final`` (each student's last epoch) with

    diverged          a non-finite objective, or a diverged loss (``summary.diverged``), at any epoch
                      (left out of averages)
    dist_to_retrain   L2 distance of the final parameters to the retrained student of the same model and seed
    param_norm        L2 norm of the final parameters
    clean_val_acc, teacher_val_acc   the clean (alpha = 0) and poisoned teachers' validation accuracy
    epochs_to_recover first epoch within 0.01 of the clean teacher's validation accuracy
    seconds           the student's share of its chunk's wall time
    forget_size, forget_precision, forget_recall   the forget set against the true poisoned set

    ``params``: GRID tuple -> final parameter vector; ``seconds``: GRID tuple -> seconds; ``forget``:
    (seed, known fraction) -> (size, precision, recall).
    """
    grid = list(GRID)
    keys = [tuple(r) for r in final[grid].itertuples(index=False)]
    retrained = {(k[0], k[2], k[5]): v for k, v in params.items() if k[1] == "retrain"}
    final = final.copy()
    final["dist_to_retrain"] = [float(np.linalg.norm(params[k] - retrained[(k[0], k[2], k[5])]))
                                if (k[0], k[2], k[5]) in retrained else np.nan for k in keys]
    final["param_norm"] = [float(np.linalg.norm(params[k])) for k in keys]
    by = results.groupby(grid)
    diverged = (by.objective.transform(lambda v: ~np.isfinite(v).all())
                | by.loss.transform(lambda v: bool(loss_diverged(v))))
    results = results.assign(diverged=diverged)
    final = final.merge(results[results.epoch == 1][grid + ["diverged"]], on=grid)
    clean = teachers[teachers.alpha == 0].set_index(["model", "seed"]).val_acc
    poisoned = teachers[teachers.alpha > 0].set_index(["model", "seed"]).val_acc
    final["clean_val_acc"] = [clean.loc[(m, s)] for m, s in zip(final.model, final.seed)]
    final["teacher_val_acc"] = [poisoned.loc[(m, s)] for m, s in zip(final.model, final.seed)]
    recover = {key: epochs_to_recover(g.sort_values("epoch").val_acc.to_numpy(), clean.loc[(key[0], key[2])])
               for key, g in by}
    keys = [tuple(r) for r in final[grid].itertuples(index=False)]
    final["epochs_to_recover"] = [recover[k] for k in keys]
    final["seconds"] = [seconds[k] for k in keys]
    for i, name in enumerate(("forget_size", "forget_precision", "forget_recall")):
        final[name] = [forget[(int(s), float(kf))][i] for s, kf in zip(final.seed, final.known_fraction)]
    return results, final


SCORECARD = ("model", "method", "kl_w", "fo_w", "val_acc", "recovered", "forget_acc_clean", "auc", "tpr_at_1pct_fpr",
             "tpr_at_01pct_fpr", "forgetting_quality", "epsilon_median", "kl_forget_mean", "kl_forget_std",
             "kl_val_mean", "js_forget_mean", "agree_forget_mean", "agree_val_mean", "seconds_per_replica",
             "shadow_seconds", "n_seeds", "n_shadows", "n_forget", "diverged",
             # the shadows' uncertainty (qrobust.analysis.ulira): intervals, the share of the teacher's own leak
             # removed, which variance the attack fitted, the epsilon score's ceiling
             "auc_lo", "auc_hi", "removed", "removed_lo", "removed_hi", "tpr_at_1pct_fpr_lo", "tpr_at_1pct_fpr_hi",
             "tpr_at_01pct_fpr_lo", "tpr_at_01pct_fpr_hi", "variance", "n_draws", "n_boot", "epsilon_cap",
             "epsilon_at_cap", "forgetting_quality_floor")


def scorecard(final: pd.DataFrame, shadows: pd.DataFrame) -> pd.DataFrame:
    """One row per model x method x weights: the study's students (mean over seeds, diverged left out):
    validation accuracy, ``recovered`` = (val - poisoned teacher's) / (clean model's - poisoned teacher's)
    validation accuracy, forget accuracy against the clean labels, wall seconds per replica; and the shadows'
    per-example scores (``qrobust.analysis.ulira.score_shadows``). The shadows' ``none`` row (no unlearning)
    has no study columns; a method the shadows diverged on has no shadow columns."""
    kept = final[~final.diverged].copy()
    kept["recovered"] = ((kept.val_acc - kept.teacher_val_acc)
                         / (kept.clean_val_acc - kept.teacher_val_acc).where(lambda d: d.abs() > 1e-9))
    keys = ["model", "method", "kl_w", "fo_w"]
    kept = kept[kept.known_fraction == kept.known_fraction.max()]  # the shadows forget the largest known part
    study = kept.groupby(keys, sort=False).agg(
        val_acc=("val_acc", "mean"), recovered=("recovered", "mean"), forget_acc_clean=("forget_acc_clean", "mean"),
        seconds_per_replica=("seconds", "mean"), n_seeds=("seed", "size")).reset_index()
    card = study.merge(shadows, on=keys, how="outer")
    card["diverged"] = card["diverged"].astype("boolean").fillna(False).astype(bool)
    order = {v: i for i, v in enumerate(dict.fromkeys(list(final.model) + list(final.method) + ["none"]))}
    card = card.sort_values(["model", "method"], key=lambda c: c.map(order), kind="stable")
    return card[[c for c in SCORECARD if c in card.columns]].reset_index(drop=True)
