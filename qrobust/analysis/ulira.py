"""Forgetting measured per example, from shadow models (pure functions of their outputs).

Every function here reads the outputs of K shadow models on F forget examples, as (K, F) arrays, and a
(K, F) ``member`` mask: example f was in shadow k's training half, so in its forget set. Shadow k is the
same random half trained twice: unlearned (trained with its forget set, then a method removes it) and
retrained (trained without it). The unlearned and retrained outputs of a member pair are what an attacker
must tell apart; a method has forgotten example f when they cannot be told apart.

- **U-LiRA** (Hayes et al., "Inexact unlearning needs more careful evaluations", arXiv:2403.01218): per
  example, Gaussians fitted to the logit-scaled confidence of the unlearned and of the retrained shadows;
  a target's score is the log likelihood ratio. Every shadow is a target in turn (leave-one-out: its own
  outputs never enter the fits that score it), unlearned targets the positives, retrained the negatives.
- **The NeurIPS 2023 unlearning challenge's epsilon** (Triantafillou et al., arXiv:2406.09073): per
  example, attacks that tell the unlearned from the retrained outputs give false positive and false
  negative rates, each turned into an (epsilon, delta) lower bound; the example's epsilon is the largest.
  The forgetting quality is the mean over examples of 2 / 2^n, n the 0.5-wide bin of epsilon.
- **Output-space distances** to retraining: KL and JS divergence of the predicted Bernoulli distributions,
  and the agreement of the predicted labels.

The logit-scaled confidence of a binary model is exact and needs no clipping: with p = sigmoid(z) the
probability of the label y in {0, 1} the model was trained on, log(p / (1 - p)) = (2 y - 1) z.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special

DELTA = 0.01  # the challenge's delta
BIN_WIDTH, N_BINS = 0.5, 13  # the challenge's epsilon bins (the last is open: epsilon >= 6)
SD_FLOOR = 1e-4  # a Gaussian's standard deviation is at least this (shadows that all agree exactly)


def confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The logit-scaled confidence log(p / (1 - p)) of the label: (2 y - 1) * logit (module docstring)."""
    return (2 * np.asarray(labels, float) - 1) * np.asarray(logits, float)


def _check(unlearned, retrained, member):
    u, r, m = np.asarray(unlearned, float), np.asarray(retrained, float), np.asarray(member, bool)
    if u.shape != r.shape or u.shape != m.shape or u.ndim != 2:
        raise ValueError(f"unlearned, retrained and member must be (K, F) arrays of one shape, got "
                         f"{u.shape}, {r.shape}, {m.shape}")
    if not (np.isfinite(u[m]).all() and np.isfinite(r[m]).all()):
        raise ValueError("a shadow's output is not finite: leave diverged shadows out before scoring")
    return u, r, m


def _loo_gaussian(x: np.ndarray, member: np.ndarray):
    """Leave-one-out fits: for every (k, f), mean and standard deviation of x[j, f] over members j != k."""
    n = member.sum(0, keepdims=True) - member  # members other than k
    s1 = np.where(member, x, 0).sum(0, keepdims=True) - np.where(member, x, 0)
    s2 = np.where(member, x * x, 0).sum(0, keepdims=True) - np.where(member, x * x, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = (s2 - n * mean**2) / (n - 1)
    return mean, np.sqrt(np.maximum(var, SD_FLOOR**2))


def _log_normal(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd)


def roc_summary(positives: np.ndarray, negatives: np.ndarray) -> dict:
    """AUC and the true-positive rates at 1 % and 0.1 % false positives of a score (higher: positive)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    s = np.r_[positives, negatives]
    if len(positives) == 0 or len(negatives) == 0:
        return dict(auc=np.nan, tpr_at_1pct_fpr=np.nan, tpr_at_01pct_fpr=np.nan, n_pos=len(positives),
                    n_neg=len(negatives))
    fpr, tpr, _ = roc_curve(y, s)
    at = lambda level: float(tpr[fpr <= level].max())  # noqa: E731 (fpr[0] = 0, so never empty)
    return dict(auc=float(roc_auc_score(y, s)), tpr_at_1pct_fpr=at(0.01), tpr_at_01pct_fpr=at(0.001),
                n_pos=len(positives), n_neg=len(negatives))


def ulira(unlearned: np.ndarray, retrained: np.ndarray, member: np.ndarray, *, min_shadows: int = 4):
    """U-LiRA with leave-one-out targets. ``unlearned``, ``retrained``: (K, F) logit-scaled confidences of
    the shadows; ``member``: (K, F) example f in shadow k's forget set.

    Returns (summary dict: ``roc_summary`` of every target pair, positives the unlearned targets, negatives
    the retrained ones; per-example dict of (F,) arrays: ``n_shadows``, the Gaussians fitted to all
    members ``mu_unlearned``, ``sd_unlearned``, ``mu_retrained``, ``sd_retrained``, the mean score of the
    unlearned and of the retrained targets, and the per-example AUC of the two). An example needs
    ``min_shadows`` members (so each leave-one-out fit has ``min_shadows - 1`` outputs); those with fewer
    are left out, with NaN rows.
    """
    u, r, m = _check(unlearned, retrained, member)
    usable = m & (m.sum(0) >= max(min_shadows, 3))[None]
    mu_u, sd_u = _loo_gaussian(u, usable)
    mu_r, sd_r = _loo_gaussian(r, usable)
    score_u = _log_normal(u, mu_u, sd_u) - _log_normal(u, mu_r, sd_r)  # target unlearned: a positive
    score_r = _log_normal(r, mu_u, sd_u) - _log_normal(r, mu_r, sd_r)  # target retrained: a negative
    summary = roc_summary(score_u[usable], score_r[usable])
    n = usable.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        full = lambda x: (np.where(usable, x, 0).sum(0) / n,  # noqa: E731
                          np.sqrt(np.where(usable, x**2, 0).sum(0) / n - (np.where(usable, x, 0).sum(0) / n) ** 2))
        per_example = dict(n_shadows=n)
        (per_example["mu_unlearned"], per_example["sd_unlearned"]) = full(u)
        (per_example["mu_retrained"], per_example["sd_retrained"]) = full(r)
        per_example["score_unlearned"] = np.where(usable, score_u, 0).sum(0) / n
        per_example["score_retrained"] = np.where(usable, score_r, 0).sum(0) / n
    per_example["auc"] = np.array([roc_summary(score_u[usable[:, f], f], score_r[usable[:, f], f])["auc"]
                                   if n[f] else np.nan for f in range(u.shape[1])])
    return summary, per_example


def epsilon_from_rates(fpr, fnr, delta: float = DELTA) -> float:
    """The largest (epsilon, delta) lower bound over attacks with these false positive and negative rates:
    per attack max(log((1 - delta - FPR) / FNR), log((1 - delta - FNR) / FPR)); an attack with one rate 0
    gives no finite bound and is left out, one with both 0 (a perfect attack) gives infinity; 0 if none."""
    best = 0.0
    for a, b in zip(np.atleast_1d(fpr), np.atleast_1d(fnr)):
        if a == 0 and b == 0:
            return float("inf")
        if a == 0 or b == 0:
            continue
        with np.errstate(invalid="ignore", divide="ignore"):
            bounds = [np.log(1 - delta - a) - np.log(b), np.log(1 - delta - b) - np.log(a)]
        best = max(best, *(v for v in bounds if np.isfinite(v)), 0.0)
    return float(best)


def attack_rates(unlearned: np.ndarray, retrained: np.ndarray, *, n_splits: int = 3, seed: int = 0):
    """The challenge's attack on one example: a logistic regression on the 1-D output tells unlearned
    (positive) from retrained (negative) outputs; (FPR, FNR) on held-out outputs, averaged over
    ``n_splits`` stratified shuffle splits (fixed ``seed``, so reproducible).

    A rate measured as 0 on n held-out outputs is counted as half an error, 1 / (2 n): with tens of shadows
    a held-out side holds about 8 outputs, and 0 of 8 means "under one in 8", not 0. The challenge's 512
    models made exact zeros rare; here, its rule (an attack with one zero rate gives no bound and is left
    out) would score the strongest attacks as epsilon 0. So epsilon is finite, at most
    log((1 - delta - r) / r) with r = 1 / (2 n): about 2.7 at 64 shadows, the resolution of the estimate."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedShuffleSplit

    x = np.r_[retrained, unlearned].reshape(-1, 1)
    y = np.r_[np.zeros(len(retrained)), np.ones(len(unlearned))]
    fprs, fnrs = [], []
    for train, test in StratifiedShuffleSplit(n_splits=n_splits, test_size=0.25, random_state=seed).split(x, y):
        if np.ptp(x[train]) == 0:  # identical outputs: nothing to learn, the attack guesses one class
            pred = np.zeros(len(test))
        else:
            pred = LogisticRegression().fit(x[train], y[train]).predict(x[test])
        yt = y[test]
        floor = lambda side: 0.5 / max(side.size, 1)  # noqa: E731 (half an error: see the docstring)
        fprs.append(max(np.mean(pred[yt == 0] == 1), floor(yt[yt == 0])))
        fnrs.append(max(np.mean(pred[yt == 1] == 0), floor(yt[yt == 1])))
    return float(np.mean(fprs)), float(np.mean(fnrs))


def example_epsilons(unlearned: np.ndarray, retrained: np.ndarray, member: np.ndarray, *,
                     delta: float = DELTA, min_shadows: int = 4) -> np.ndarray:
    """(F,) per-example epsilon from the unlearned and retrained outputs of the shadows holding each
    example (NaN for an example held by fewer than ``min_shadows``)."""
    u, r, m = _check(unlearned, retrained, member)
    out = np.full(u.shape[1], np.nan)
    for f in range(u.shape[1]):
        k = m[:, f]
        if k.sum() >= min_shadows:
            out[f] = epsilon_from_rates(*attack_rates(u[k, f], r[k, f]), delta=delta)
    return out


def forgetting_quality(epsilons: np.ndarray) -> float:
    """The challenge's aggregate: mean over examples of 2 / 2^n, n the index of epsilon's bin (bins of width
    0.5 from 0; the 13th is open). 1 when every epsilon is below 0.5; NaN epsilons are left out."""
    e = np.asarray(epsilons, float)
    e = e[~np.isnan(e)]
    if e.size == 0:
        return float("nan")
    n = np.digitize(e, np.arange(N_BINS) * BIN_WIDTH)
    return float(np.mean(2.0 / 2.0**n))


def bernoulli_divergences(logits_a: np.ndarray, logits_b: np.ndarray) -> dict:
    """Per sample, between the Bernoulli outputs of two models given by logits (same shape):
    ``kl`` KL(a || b), ``js`` the Jensen-Shannon divergence (natural log, at most log 2), ``agree`` whether
    the predicted labels agree."""
    a, b = np.asarray(logits_a, float), np.asarray(logits_b, float)
    pa, pb = special.expit(a), special.expit(b)
    log = lambda z: (special.log_expit(z), special.log_expit(-z))  # noqa: E731 (log p, log (1 - p))
    (la1, la0), (lb1, lb0) = log(a), log(b)
    kl = pa * (la1 - lb1) + (1 - pa) * (la0 - lb0)
    m1 = 0.5 * (pa + pb)
    lm1, lm0 = np.log(np.maximum(m1, 1e-300)), np.log(np.maximum(1 - m1, 1e-300))
    js = 0.5 * (pa * (la1 - lm1) + (1 - pa) * (la0 - lm0)) + 0.5 * (pb * (lb1 - lm1) + (1 - pb) * (lb0 - lm0))
    return dict(kl=kl, js=np.maximum(js, 0.0), agree=(a > 0) == (b > 0))


def score_shadows(outputs: dict, member: np.ndarray, forget: np.ndarray, labels: np.ndarray, val_labels: np.ndarray,
                  *, reference: str = "retrain_full", diverged=None,
                  seconds=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, per-example) DataFrames from the shadows' outputs (the study:
    ``qrobust.experiments.shadows``).

    ``outputs``: (model, method, kl_w, fo_w) -> (logits (K, N) on the pool, val_logits (K, M)), shadows in
    order; the reference method's (``reference``, weights 0, 0) must be there for every model. ``member``
    (K, N) the split, ``forget`` (N,) the forget set, ``labels`` (N,) the labels trained on, ``val_labels``
    (M,).

    Summary, per model x method x weights: U-LiRA's ``auc``, ``tpr_at_1pct_fpr``, ``tpr_at_01pct_fpr``
    (targets pooled); the challenge's ``forgetting_quality`` and median per-example ``epsilon``; per shadow,
    the mean over its forget set and over validation of KL(method || reference) and JS, and the agreement of
    predicted labels, given as mean and std over shadows; ``n_shadows``; ``shadow_val_acc``. A method whose
    shadows diverged is marked and scored no further. Per example (forget set only): U-LiRA's fits, scores
    and AUC, and epsilon.
    """
    f = np.flatnonzero(forget)
    mem = member[:, f]
    rows, examples = [], []
    for (model, method, kl_w, fo_w), (logits, val_logits) in outputs.items():
        if method == reference:
            continue
        ref_logits, ref_val = outputs[(model, reference, 0.0, 0.0)]
        u, r = confidence(logits[:, f], labels[f]), confidence(ref_logits[:, f], labels[f])
        row = dict(model=model, method=method, kl_w=kl_w, fo_w=fo_w, n_shadows=len(logits), n_forget=len(f))
        bad = not (np.isfinite(u[mem]).all() and np.isfinite(val_logits).all())
        row["diverged"] = bool(bad or (diverged is not None and diverged.get((model, method, kl_w, fo_w), False)))
        if row["diverged"]:  # scored no further: NaN never enters an average
            rows.append(row)
            continue
        summary, per = ulira(u, r, mem)
        eps = example_epsilons(u, r, mem)
        row.update(summary, forgetting_quality=forgetting_quality(eps), epsilon_median=float(np.nanmedian(eps)))
        on_forget = bernoulli_divergences(logits[:, f], ref_logits[:, f])
        on_val = bernoulli_divergences(val_logits, ref_val)
        for name in ("kl", "js", "agree"):
            per_shadow_f = np.where(mem, on_forget[name], 0).sum(1) / np.maximum(mem.sum(1), 1)
            per_shadow_v = on_val[name].mean(1)
            row[f"{name}_forget_mean"], row[f"{name}_forget_std"] = per_shadow_f.mean(), per_shadow_f.std(ddof=1)
            row[f"{name}_val_mean"], row[f"{name}_val_std"] = per_shadow_v.mean(), per_shadow_v.std(ddof=1)
        row["shadow_val_acc"] = float(np.mean((val_logits > 0) == (val_labels[None] > 0.5)))
        if seconds is not None:
            row["shadow_seconds"] = float(seconds.get((model, method, kl_w, fo_w), np.nan))
        rows.append(row)
        examples.append(pd.DataFrame(dict(model=model, method=method, kl_w=kl_w, fo_w=fo_w, index=f, **per,
                                          epsilon=eps)))
    per_example = pd.concat(examples, ignore_index=True) if examples else pd.DataFrame()
    return pd.DataFrame(rows), per_example
