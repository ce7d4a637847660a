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
  The means are per example; the variances per example only where an example is held by at least
  ``GLOBAL_VARIANCE_BELOW`` = 32 shadows (32 unlearned and 32 retrained outputs, 64 models), else one
  variance per side pooled over all examples (``global_variance_below``; below).
- **The NeurIPS 2023 unlearning challenge's epsilon** (Triantafillou et al., arXiv:2406.09073): per
  example, attacks that tell the unlearned from the retrained outputs give false positive and false
  negative rates, each turned into an (epsilon, delta) lower bound; the example's epsilon is the largest.
  The forgetting quality is the mean over examples of 2 / 2^n, n the 0.5-wide bin of epsilon.
- **Output-space distances** to retraining: KL and JS divergence of the predicted Bernoulli distributions,
  and the agreement of the predicted labels.

The logit-scaled confidence of a binary model is exact and needs no clipping: with p = sigmoid(z) the
probability of the label y in {0, 1} the model was trained on, log(p / (1 - p)) = (2 y - 1) z.

**Uncertainty** (``score_draws``; the defaults are module constants):

- *Poisoning draws.* The shadows of one draw share one poisoned pool and forget set; several draws (each
  keyed by its own seed, ``qrobust.experiments.shadows``) are scored per draw and pooled (every target,
  example and shadow of every draw together).
- *Intervals.* 95 % intervals (``*_lo``, ``*_hi``) from ``N_BOOT`` = 1000 bootstrap resamples, rng seeded
  with ``BOOT_SEED`` = 0: the draws are resampled with replacement, then within each the shadows. U-LiRA
  (``auc``, the TPRs, ``removed``) is refitted on every resample: each resampled shadow counted as often as
  drawn, all copies of a target's shadow left out of its fits (a copy is the same model). A resample holds
  fewer distinct shadows, so its fits are noisier and its AUC lower (by 0.005 to 0.04 in the simulations
  below); the percentile interval is therefore moved to centre on the estimate (``centred_interval``). The
  same resamples serve every method of a study, so ``removed`` (method against teacher) is paired. The
  challenge's epsilon is fitted per example from all its shadows by cross-validation, which a resample with
  repeated shadows would leak, so its aggregates (``forgetting_quality``, ``epsilon_median``) resample the
  draws, then the *examples* within each (percentile intervals). The output distances resample shadows.
  Coverage, measured on synthetic Gaussian shadows (examples of their own level and spread, a per-shadow
  offset; 300 studies of 500 resamples each, 24 forget examples): the interval of one study covers the mean
  U-LiRA AUC over all studies in 95 % of them at 64 shadows (AUC 0.69), 94 % at 64 (AUC 0.95), 96 % at 32
  (AUC 0.54), 96 % at 16 and 97 % at 8 (AUC 0.66, 0.63; global variance below 64). That mean lies below the
  AUC of the true Gaussians (0.70, 0.95, 0.58, 0.70, 0.70): finite shadows blur the fits, and the intervals
  cover that ideal in 86 %, 91 %, 79 %, 75 % and 65 % of studies. With 150 forget examples at 64 shadows
  the interval covers the mean (0.608, sd 0.007) in 97 % of studies, the ideal (0.630) in 14 %. So a U-LiRA
  AUC is a conservative measure of what leaks, the more so with fewer shadows, and its interval states the
  uncertainty of the measure at this number of shadows, not of that ideal.
- *TPR at a low FPR* is reported only where the negatives resolve it: ``n_neg * FPR >=
  MIN_FALSE_POSITIVES`` = 10 false positives at the threshold (the usual n p >= 10 for a binomial count
  to be more than a handful; at 768 negatives, 0.1 % FPR is 0.8 of one negative); NaN otherwise.
- *Removal normalised by the teacher's own leak*: ``removed = (auc_none - auc) / (auc_none - 0.5)``, the
  share of the un-unlearned teacher's (method ``none``) U-LiRA advantage over chance that the method
  took away: 1 indistinguishable from retraining, 0 no change, negative more recognisable than the
  teacher. NaN where the teacher barely leaks, ``auc_none - 0.5 < LEAK_MARGIN`` = 0.05 (there a U-LiRA
  AUC's own sampling error, a standard deviation of 0.014 at 64 shadows and 24 forget examples and 0.033 at
  16 in the simulations above, is over a quarter of the denominator).
- *The epsilon estimate's ceiling.* An attack rate measured as 0 on n held-out outputs counts as
  1 / (2 n) (``attack_rates``), so an example's epsilon is at most ``epsilon_cap`` = log((1 - delta - r) /
  r), r = 1 / (2 n): about 2.7 at 64 shadows (32 per example, 8 held out per side), and the forgetting
  quality is at least ``forgetting_quality_floor`` (2 / 2^6 = 0.031 at 64 shadows). At 8 shadows (4 per
  example, one output held out per side) the cap is 0: epsilon is 0 and the forgetting quality 1 whatever
  the method, so there they say nothing (``epsilon_at_cap`` 1, ``forgetting_quality_floor`` 1). The
  ceiling is kept and stated, not lifted: any finite count of outputs bounds what a rate can resolve (a
  Clopper-Pearson bound on the rates would lower it further, not raise it); it rises only with more
  shadows, as log n.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import special

DELTA = 0.01  # the challenge's delta
BIN_WIDTH, N_BINS = 0.5, 13  # the challenge's epsilon bins (the last is open: epsilon >= 6)
SD_FLOOR = 1e-4  # a Gaussian's standard deviation is at least this (shadows that all agree exactly)
# LiRA's global variance (Carlini et al., "Membership inference attacks from first principles",
# arXiv:2112.03570, the "fixed variance" variant; their reference code's fix_variance: the spread of the outputs
# about each example's own mean, pooled over examples) for small shadow counts: they advise it below 64 shadow
# models, i.e. about 32 IN and 32 OUT outputs per example. Here an example held by fewer than this many shadows
# (each giving one unlearned and one retrained output) gets the pooled variance of its side.
GLOBAL_VARIANCE_BELOW = 32
MIN_FALSE_POSITIVES = 10  # TPR at FPR f only where n_neg * f >= this many false positives (module docstring)
N_BOOT, BOOT_SEED, CONFIDENCE = 1000, 0, 0.95  # the bootstrap's resamples, its rng seed, the intervals' level
LEAK_MARGIN = 0.05  # ``removed`` is NaN where the teacher's AUC is below 0.5 + this
FPR_LEVELS = {"tpr_at_1pct_fpr": 0.01, "tpr_at_01pct_fpr": 0.001}
DIVERGENCES = ("kl", "js", "agree")


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


def _global_sd(x: np.ndarray, member: np.ndarray, counts: np.ndarray | None = None):
    """LiRA's global standard deviation, leaving each shadow out: (K,) over shadows k, the spread of x[j, f]
    about example f's mean, pooled over every example f and member j != k (shadow k's outputs on every example
    left out), and () the same over all members. An example with n members contributes n - 1 degrees of
    freedom (n - 2 without shadow k). ``counts`` (B, K): how often each shadow is in each of B bootstrap
    resamples (default once each, B = 1, and the (K,) and () results); all copies of shadow k are left out
    together. Returns (B, K) and (B,) then."""
    c = np.ones((1, len(x))) if counts is None else np.asarray(counts, float)
    cm = np.where(member, c[:, :, None], 0.0)  # (B, K, F)
    n = cm.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (cm * np.where(member, x, 0.0)).sum(1, keepdims=True) / n
        dev = np.where(member & (n > 0), x - mean, 0.0)
        ss = (cm * dev**2).sum(1, keepdims=True)
        # removing the c copies of a member from an example of n lowers its sum of squares by c n / (n - c)
        # (x - mean)^2 (Welford), its degrees of freedom by c; an example left with none contributes nothing
        rest = n - cm
        ss_k = np.where(rest > 0, ss - cm * n / np.where(rest > 0, rest, 1.0) * dev**2, 0.0)
        var_k = ss_k.sum(2) / np.maximum(rest - 1, 0).sum(2)
        var = ss.sum((1, 2)) / np.maximum(n - 1, 0).sum((1, 2))
    sd_k = np.sqrt(np.maximum(np.nan_to_num(var_k, nan=0.0), SD_FLOOR**2))
    sd = np.sqrt(np.maximum(np.nan_to_num(var, nan=0.0), SD_FLOOR**2))
    return (sd_k[0], float(sd[0])) if counts is None else (sd_k, sd)


def _weighted_loo(x: np.ndarray, member: np.ndarray, counts: np.ndarray):
    """``_loo_gaussian`` on B bootstrap resamples, (B, K, F): shadow j counted ``counts[b, j]`` times, all copies
    of the target's shadow left out of its fit (a copy is the same model). NaN mean where no other member is in
    the resample."""
    cm = np.where(member, np.asarray(counts, float)[:, :, None], 0.0)
    xm = np.where(member, x, 0.0)
    n = cm.sum(1, keepdims=True) - cm
    s1 = (cm * xm).sum(1, keepdims=True) - cm * xm
    s2 = (cm * xm * xm).sum(1, keepdims=True) - cm * xm * xm
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        var = (s2 - n * mean**2) / (n - 1)
    return mean, np.sqrt(np.maximum(np.nan_to_num(var, nan=0.0), SD_FLOOR**2))


def _resample_scores(part: dict, counts: np.ndarray):
    """U-LiRA's target scores of a draw on B bootstrap resamples of its shadows (``counts`` (B, K)): the fits
    redone on each resample, each example keeping its variance rule. Returns (positives, negatives, weights),
    (B, T) each over the T usable targets of the full fit, a target weighted by its shadow's count (0 where its
    shadow is not in the resample or no other member is, its score then set to 0)."""
    u, r, usable, pooled = part["u"], part["r"], part["usable"], part["pooled"]
    mu_u, sd_u = _weighted_loo(u, usable, counts)
    mu_r, sd_r = _weighted_loo(r, usable, counts)
    if pooled.any():
        sd_u = np.where(pooled, _global_sd(u, usable, counts)[0][:, :, None], sd_u)
        sd_r = np.where(pooled, _global_sd(r, usable, counts)[0][:, :, None], sd_r)
    kk, ff = np.nonzero(usable)
    sel = lambda a: a[:, kk, ff]  # noqa: E731
    mu_u, sd_u, mu_r, sd_r = sel(mu_u), sel(sd_u), sel(mu_r), sel(sd_r)
    score_u = _log_normal(u[kk, ff], mu_u, sd_u) - _log_normal(u[kk, ff], mu_r, sd_r)
    score_r = _log_normal(r[kk, ff], mu_u, sd_u) - _log_normal(r[kk, ff], mu_r, sd_r)
    ok = np.isfinite(score_u) & np.isfinite(score_r)
    weights = np.where(ok, np.asarray(counts, float)[:, kk], 0.0)
    return np.where(ok, score_u, 0.0), np.where(ok, score_r, 0.0), weights


def _log_normal(x, mean, sd):
    return -0.5 * ((x - mean) / sd) ** 2 - np.log(sd)


def _resolved(n_neg: int, level: float, min_false_positives: float | None) -> bool:
    m = MIN_FALSE_POSITIVES if min_false_positives is None else min_false_positives
    return n_neg * level >= m


def roc_summary(positives: np.ndarray, negatives: np.ndarray, *, min_false_positives: float | None = None) -> dict:
    """AUC and the true-positive rates at 1 % and 0.1 % false positives of a score (higher: positive). A TPR at
    FPR f is NaN unless the negatives resolve it: n_neg * f >= ``min_false_positives`` (default
    ``MIN_FALSE_POSITIVES``; 0 reports every level, as before this rule)."""
    from sklearn.metrics import roc_auc_score, roc_curve

    y = np.r_[np.ones(len(positives)), np.zeros(len(negatives))]
    s = np.r_[positives, negatives]
    if len(positives) == 0 or len(negatives) == 0:
        return dict(auc=np.nan, tpr_at_1pct_fpr=np.nan, tpr_at_01pct_fpr=np.nan, n_pos=len(positives),
                    n_neg=len(negatives))
    fpr, tpr, _ = roc_curve(y, s)

    def at(level):  # fpr[0] = 0, so never empty
        return float(tpr[fpr <= level].max()) if _resolved(len(negatives), level, min_false_positives) else np.nan

    return dict(auc=float(roc_auc_score(y, s)), tpr_at_1pct_fpr=at(0.01), tpr_at_01pct_fpr=at(0.001),
                n_pos=len(positives), n_neg=len(negatives))


def _targets(u, r, m, *, min_shadows: int, global_variance_below: int | None):
    """U-LiRA's leave-one-out target scores: (score_u, score_r, usable, per-example fits)."""
    below = GLOBAL_VARIANCE_BELOW if global_variance_below is None else global_variance_below
    usable = m & (m.sum(0) >= max(min_shadows, 3))[None]
    n = usable.sum(0)
    mu_u, sd_u = _loo_gaussian(u, usable)
    mu_r, sd_r = _loo_gaussian(r, usable)
    pooled = (n < below) & (n > 0)  # these examples take the global variance
    full_sd = {}
    if pooled.any():
        (gu, full_sd["u"]), (gr, full_sd["r"]) = _global_sd(u, usable), _global_sd(r, usable)
        sd_u = np.where(pooled[None], gu[:, None], sd_u)
        sd_r = np.where(pooled[None], gr[:, None], sd_r)
    score_u = _log_normal(u, mu_u, sd_u) - _log_normal(u, mu_r, sd_r)  # target unlearned: a positive
    score_r = _log_normal(r, mu_u, sd_u) - _log_normal(r, mu_r, sd_r)  # target retrained: a negative
    with np.errstate(invalid="ignore", divide="ignore"):
        full = lambda x: (np.where(usable, x, 0).sum(0) / n,  # noqa: E731
                          np.sqrt(np.where(usable, x**2, 0).sum(0) / n - (np.where(usable, x, 0).sum(0) / n) ** 2))
        per_example = dict(n_shadows=n)
        (per_example["mu_unlearned"], per_example["sd_unlearned"]) = full(u)
        (per_example["mu_retrained"], per_example["sd_retrained"]) = full(r)
        if pooled.any():
            per_example["sd_unlearned"] = np.where(pooled, full_sd["u"], per_example["sd_unlearned"])
            per_example["sd_retrained"] = np.where(pooled, full_sd["r"], per_example["sd_retrained"])
        per_example["score_unlearned"] = np.where(usable, score_u, 0).sum(0) / n
        per_example["score_retrained"] = np.where(usable, score_r, 0).sum(0) / n
    per_example["auc"] = np.array([roc_summary(score_u[usable[:, f], f], score_r[usable[:, f], f])["auc"]
                                   if n[f] else np.nan for f in range(u.shape[1])])
    per_example["global_variance"] = pooled
    return score_u, score_r, usable, per_example


def ulira(unlearned: np.ndarray, retrained: np.ndarray, member: np.ndarray, *, min_shadows: int = 4,
          global_variance_below: int | None = None, min_false_positives: float | None = None):
    """U-LiRA with leave-one-out targets. ``unlearned``, ``retrained``: (K, F) logit-scaled confidences of
    the shadows; ``member``: (K, F) example f in shadow k's forget set.

    Returns (summary dict: ``roc_summary`` of every target pair, positives the unlearned targets, negatives
    the retrained ones; per-example dict of (F,) arrays: ``n_shadows``, the Gaussians fitted to all
    members ``mu_unlearned``, ``sd_unlearned``, ``mu_retrained``, ``sd_retrained``, the mean score of the
    unlearned and of the retrained targets, the per-example AUC of the two, and ``global_variance``). An
    example needs ``min_shadows`` members (so each leave-one-out fit has ``min_shadows - 1`` outputs); those
    with fewer are left out, with NaN rows.

    The variance: an example held by at least ``global_variance_below`` shadows (default
    ``GLOBAL_VARIANCE_BELOW``, 32) has its own per side, from its members but the target; one held by fewer
    has the side's global variance (LiRA's for few shadows, ``_global_sd``): the spread of every usable
    example's members about that example's own mean, pooled over examples, leaving the target's shadow out
    of all of them (and reported as ``sd_*`` without leaving out). 0 fits every variance per example (as
    before the rule); the means are always per example, leave-one-out.
    """
    u, r, m = _check(unlearned, retrained, member)
    score_u, score_r, usable, per_example = _targets(u, r, m, min_shadows=min_shadows,
                                                     global_variance_below=global_variance_below)
    return roc_summary(score_u[usable], score_r[usable], min_false_positives=min_false_positives), per_example


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


def _quality_terms(epsilons: np.ndarray) -> np.ndarray:
    """Each epsilon's term of the forgetting quality, 2 / 2^n, n the index of its bin (NaN stays NaN)."""
    e = np.asarray(epsilons, float)
    n = np.digitize(np.nan_to_num(e, nan=0.0), np.arange(N_BINS) * BIN_WIDTH)
    return np.where(np.isnan(e), np.nan, 2.0 / 2.0**n)


def forgetting_quality(epsilons: np.ndarray) -> float:
    """The challenge's aggregate: mean over examples of 2 / 2^n, n the index of epsilon's bin (bins of width
    0.5 from 0; the 13th is open). 1 when every epsilon is below 0.5; NaN epsilons are left out."""
    e = np.asarray(epsilons, float)
    e = e[~np.isnan(e)]
    if e.size == 0:
        return float("nan")
    n = np.digitize(e, np.arange(N_BINS) * BIN_WIDTH)
    return float(np.mean(2.0 / 2.0**n))


@functools.lru_cache(maxsize=None)
def epsilon_cap(n_shadows: int, delta: float = DELTA) -> float:
    """The largest epsilon ``example_epsilons`` can give an example held by ``n_shadows`` shadows: every attack
    rate at its floor 1 / (2 n), n its held-out side (``attack_rates``): the estimate on perfectly separated
    outputs, so exactly the estimator's own splits. About 2.7 at 32 per example (64 shadows); NaN below 2."""
    if n_shadows < 2:
        return float("nan")
    step = np.arange(n_shadows) * 1e-3
    return epsilon_from_rates(*attack_rates(10.0 + step, -10.0 - step), delta=delta)


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


def bootstrap_weights(sizes, n_boot: int | None = None, seed: int | None = None) -> list[np.ndarray]:
    """Integer weights of a two-level bootstrap. Per resample the D = len(sizes) draws are resampled with
    replacement, then within each draw its ``sizes[d]`` units (shadows, or examples): a draw chosen c times
    contributes c * sizes[d] units drawn with replacement. Returns D arrays (n_boot, sizes[d]): how often each
    unit is in each resample. Deterministic in ``seed`` (default ``BOOT_SEED``); the draws' counts are drawn
    first, so calls with one seed and one D resample the same draws, whatever the units."""
    n_boot = N_BOOT if n_boot is None else int(n_boot)
    rng = np.random.default_rng(BOOT_SEED if seed is None else seed)
    d = len(sizes)
    counts = rng.multinomial(d, np.full(d, 1.0 / d), size=n_boot)
    return [rng.multinomial(counts[:, i] * k, np.full(k, 1.0 / k)).astype(float) if k else np.zeros((n_boot, 0))
            for i, k in enumerate(sizes)]


def interval(replicates, level: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of bootstrap replicates (NaN ones left out; NaN if none is left)."""
    r = np.asarray(replicates, float)
    r = r[~np.isnan(r)]
    if r.size == 0:
        return float("nan"), float("nan")
    q = 100 * (1 - level) / 2
    lo, hi = np.percentile(r, [q, 100 - q])
    return float(lo), float(hi)


def weighted_roc(positives, negatives, pos_unit, neg_unit, weights, levels=(), *, block: int = 128):
    """AUC (ties count one half) and TPR at each FPR of ``levels`` (the largest TPR of the ROC points whose FPR
    is at most the level) of a score, each target weighted by its unit's weight: ``weights`` (B, U), one row per
    bootstrap resample, ``pos_unit``/``neg_unit`` the unit (a shadow) of each positive/negative target. Returns
    (auc (B,), tpr (B, len(levels))). With unit weights 1 it is the plain AUC and ROC."""
    weights = np.atleast_2d(np.asarray(weights, float))
    b, n_levels = len(weights), len(levels)
    if len(positives) == 0 or len(negatives) == 0:
        return np.full(b, np.nan), np.full((b, n_levels), np.nan)
    s = np.r_[np.asarray(positives, float), np.asarray(negatives, float)]
    positive = np.r_[np.ones(len(positives), bool), np.zeros(len(negatives), bool)]
    unit = np.r_[np.asarray(pos_unit, int), np.asarray(neg_unit, int)]
    order = np.argsort(s, kind="mergesort")
    s, positive, unit = s[order], positive[order], unit[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # groups of tied scores, ascending
    auc, tpr = np.empty(b), np.empty((b, n_levels))
    for lo in range(0, b, block):
        w = weights[lo:lo + block][:, unit]
        wp = np.where(positive, w, 0.0)
        gp, gn = np.add.reduceat(wp, starts, axis=1), np.add.reduceat(w - wp, starts, axis=1)
        below_n = np.cumsum(gn, 1) - gn  # negatives scoring below each group
        tot_p, tot_n = gp.sum(1), gn.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            auc[lo:lo + block] = (gp * (below_n + 0.5 * gn)).sum(1) / (tot_p * tot_n)
            fpr = (tot_n[:, None] - below_n) / tot_n[:, None]  # a threshold at each group: scores >= it
            tp = tot_p[:, None] - (np.cumsum(gp, 1) - gp)
            for j, level in enumerate(levels):
                tpr[lo:lo + block, j] = np.where(fpr <= level, tp, 0.0).max(1) / tot_p
    return auc, tpr


def centred_interval(estimate: float, replicates, level: float = CONFIDENCE, bounds=(-np.inf, np.inf)):
    """The bootstrap percentile interval moved to centre on ``estimate``: estimate + (quantile - mean of the
    replicates), clipped to ``bounds``; NaN where the estimate or every replicate is. U-LiRA's resamples refit
    its Gaussians on fewer distinct shadows (a resample repeats some), so their AUCs sit below the estimate by
    that extra fitting noise (module docstring); their spread is kept, their offset removed."""
    r = np.asarray(replicates, float)
    r = r[~np.isnan(r)]
    if r.size == 0 or np.isnan(estimate):
        return float("nan"), float("nan")
    lo, hi = interval(r, level)
    shift = estimate - r.mean()
    return float(np.clip(lo + shift, *bounds)), float(np.clip(hi + shift, *bounds))


def _refit_replicates(parts: list, w_shadows: list, *, cells: int = 2_000_000) -> tuple[np.ndarray, np.ndarray]:
    """U-LiRA's pooled AUC and TPRs at ``FPR_LEVELS`` on every bootstrap resample of the shadows (``w_shadows``:
    per draw, (B, K) counts): the Gaussians refitted on the resample, all copies of a target's shadow left out of
    its fits, each target counted as often as its shadow. (auc (B,), tpr (B, levels)); resamples in blocks of
    about ``cells`` (resample, shadow, example) cells."""
    n_boot, levels = len(w_shadows[0]), tuple(FPR_LEVELS.values())
    auc, tpr = np.empty(n_boot), np.empty((n_boot, len(levels)))
    size = sum(p["u"].size for p in parts)
    block = max(1, cells // max(size, 1))
    for lo in range(0, n_boot, block):
        hi = min(lo + block, n_boot)
        pos, neg, wts = zip(*(_resample_scores(p, w[lo:hi]) for p, w in zip(parts, w_shadows)))
        wts = np.concatenate(wts, 1)
        n_pos = wts.shape[1]
        scores = np.concatenate([np.concatenate(pos, 1), np.concatenate(neg, 1)], 1)
        positive = np.r_[np.ones(n_pos, bool), np.zeros(n_pos, bool)]
        auc[lo:hi], tpr[lo:hi] = _roc_rows(scores, positive, np.concatenate([wts, wts], 1), levels)
    return auc, tpr


def _roc_rows(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray, levels=()):
    """``weighted_roc`` with scores of their own per row: ``scores``, ``weights`` (B, N), ``positive`` (N,)."""
    b, n = scores.shape
    order = np.argsort(scores, axis=1, kind="stable")
    s = np.take_along_axis(scores, order, 1)
    w = np.take_along_axis(weights, order, 1)
    p = positive[order]
    group = np.cumsum(np.c_[np.zeros((b, 1), bool), s[:, 1:] != s[:, :-1]], 1)  # tied scores share a group
    index = (group + n * np.arange(b)[:, None]).ravel()
    gp = np.bincount(index, np.where(p, w, 0.0).ravel(), b * n).reshape(b, n)
    gn = np.bincount(index, np.where(p, 0.0, w).ravel(), b * n).reshape(b, n)
    below_n = np.cumsum(gn, 1) - gn
    tot_p, tot_n = gp.sum(1), gn.sum(1)
    tpr = np.empty((b, len(levels)))
    with np.errstate(invalid="ignore", divide="ignore"):
        auc = (gp * (below_n + 0.5 * gn)).sum(1) / (tot_p * tot_n)
        fpr = (tot_n[:, None] - below_n) / tot_n[:, None]
        tp = tot_p[:, None] - (np.cumsum(gp, 1) - gp)
        for j, level in enumerate(levels):
            tpr[:, j] = np.where(fpr <= level, tp, 0.0).max(1) / tot_p
    return auc, tpr


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B,) the median of ``values`` (n,) counted with integer ``weights`` (B, n) (two middle values averaged)."""
    order = np.argsort(values, kind="mergesort")
    v, cum = values[order], np.cumsum(weights[:, order], 1)
    if v.size == 0:
        return np.full(len(weights), np.nan)
    total = cum[:, -1]
    lo, hi = np.floor((total - 1) / 2), np.ceil((total - 1) / 2)
    i_lo = np.minimum((cum <= lo[:, None]).sum(1), v.size - 1)
    i_hi = np.minimum((cum <= hi[:, None]).sum(1), v.size - 1)
    return np.where(total > 0, 0.5 * (v[i_lo] + v[i_hi]), np.nan)


def removed_share(auc_none, auc, margin: float = LEAK_MARGIN):
    """The share of the un-unlearned teacher's U-LiRA leak that a method removed, (auc_none - auc) /
    (auc_none - 0.5): 1 at chance (as the retrained model), 0 no change, negative more recognisable than the
    teacher; NaN where the teacher's leak auc_none - 0.5 is below ``margin`` (a ratio of noise). Elementwise."""
    auc_none, auc = np.asarray(auc_none, float), np.asarray(auc, float)
    leak = auc_none - 0.5
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(leak >= margin, (auc_none - auc) / np.where(leak == 0, np.nan, leak), np.nan)
    return float(out) if out.ndim == 0 else out


class Draw(NamedTuple):
    """One poisoning draw's shadows (``score_draws``). ``outputs``: (model, method, kl_w, fo_w) -> (logits (K, N)
    on the pool, val_logits (K, M)), shadows in order, the reference method's (weights 0, 0) there for every
    model; ``member`` (K, N) the split, ``forget`` (N,) the forget set, ``labels`` (N,) the labels trained on;
    ``diverged``, ``seconds``: key -> whether a shadow diverged, seconds per shadow student (or None); ``seed``
    the draw's seed."""

    outputs: dict
    member: np.ndarray
    forget: np.ndarray
    labels: np.ndarray
    diverged: object = None
    seconds: object = None
    seed: int = 0


class Scores(NamedTuple):
    """``score_draws``'s tables: ``summary`` (one row per model x method x weights, the draws pooled), ``examples``
    (per draw, method and forget example), ``draws`` (``summary``'s columns per draw, with ``draw`` and ``seed``)."""

    summary: pd.DataFrame
    examples: pd.DataFrame
    draws: pd.DataFrame


def _part(draw: Draw, key, val_labels, reference: str, *, min_shadows: int, global_variance_below) -> dict:
    """One draw's scores of one model x method x weights (a dict; ``diverged`` and nothing more if it diverged)."""
    model = key[0]
    logits, val_logits = draw.outputs[key]
    f = np.flatnonzero(draw.forget)
    mem = np.asarray(draw.member, bool)[:, f]
    ref_logits, ref_val = draw.outputs[(model, reference, 0.0, 0.0)]
    labels = np.asarray(draw.labels)
    u, r = confidence(logits[:, f], labels[f]), confidence(ref_logits[:, f], labels[f])
    bad = not (np.isfinite(u[mem]).all() and np.isfinite(val_logits).all())
    flagged = draw.diverged is not None and draw.diverged.get(key, False)
    part = dict(k=len(logits), f=f, seed=draw.seed, diverged=bool(bad or flagged),
                seconds=None if draw.seconds is None else float(draw.seconds.get(key, np.nan)))
    if part["diverged"]:  # scored no further: NaN never enters an average
        return part
    score_u, score_r, usable, per = _targets(u, r, mem, min_shadows=min_shadows,
                                             global_variance_below=global_variance_below)
    eps = example_epsilons(u, r, mem)
    held = mem.sum(0)
    caps = np.array([epsilon_cap(int(n)) if n >= 4 else np.nan for n in held])
    on_forget = bernoulli_divergences(logits[:, f], ref_logits[:, f])
    on_val = bernoulli_divergences(val_logits, ref_val)
    per_shadow = {}
    for name in DIVERGENCES:
        per_shadow[f"{name}_forget"] = np.where(mem, on_forget[name], 0).sum(1) / np.maximum(mem.sum(1), 1)
        per_shadow[f"{name}_val"] = on_val[name].mean(1)
    part.update(u=u, r=r, pooled=per["global_variance"], score_u=score_u, score_r=score_r, usable=usable,
                per_example=per, eps=eps, caps=caps,
                per_shadow=per_shadow, val_agree=(val_logits > 0) == (np.asarray(val_labels)[None] > 0.5))
    return part


def _row(parts: list, w_shadows: list, w_examples: list, *, min_false_positives) -> tuple[dict, dict, dict]:
    """The scores of ``parts`` (one per draw, none diverged) pooled: (the point estimates, the added columns with
    the bootstrap intervals, the replicates)."""
    pos = np.concatenate([p["score_u"][p["usable"]] for p in parts])
    neg = np.concatenate([p["score_r"][p["usable"]] for p in parts])
    row = roc_summary(pos, neg, min_false_positives=min_false_positives)
    eps = np.concatenate([p["eps"] for p in parts])
    row.update(forgetting_quality=forgetting_quality(eps), epsilon_median=float(np.nanmedian(eps)))
    shadow_values = {}
    for name in DIVERGENCES:
        for where in ("forget", "val"):
            v = shadow_values[f"{name}_{where}_mean"] = np.concatenate([p["per_shadow"][f"{name}_{where}"]
                                                                       for p in parts])
            row[f"{name}_{where}_mean"], row[f"{name}_{where}_std"] = v.mean(), v.std(ddof=1)
    row["shadow_val_acc"] = float(np.mean(np.concatenate([p["val_agree"] for p in parts])))
    extra = dict(n_draws=len(parts))
    pooled = np.concatenate([p["per_example"]["global_variance"][p["per_example"]["n_shadows"] > 0] for p in parts])
    extra["variance"] = ("global" if pooled.all() else "per-example" if not pooled.any() else "mixed") \
        if pooled.size else None
    # the bootstrap: shadows (U-LiRA refitted, the output distances), examples (the epsilon's aggregates)
    ws = np.hstack(w_shadows)
    extra["n_boot"] = len(ws)
    auc_b, tpr_b = _refit_replicates(parts, w_shadows)
    extra["auc_lo"], extra["auc_hi"] = centred_interval(row["auc"], auc_b, bounds=(0.0, 1.0))
    for j, name in enumerate(FPR_LEVELS):
        extra[f"{name}_lo"], extra[f"{name}_hi"] = centred_interval(row[name], tpr_b[:, j], bounds=(0.0, 1.0))
    we = np.hstack(w_examples).copy()
    ok = ~np.isnan(eps)
    we[:, ~ok] = 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        quality_b = we @ np.nan_to_num(_quality_terms(eps)) / we.sum(1)
    extra["forgetting_quality_lo"], extra["forgetting_quality_hi"] = interval(quality_b)
    extra["epsilon_median_lo"], extra["epsilon_median_hi"] = interval(_weighted_median(eps[ok], we[:, ok]))
    for name, v in shadow_values.items():
        extra[f"{name}_lo"], extra[f"{name}_hi"] = interval(ws @ v / ws.sum(1))
    caps = np.concatenate([p["caps"] for p in parts])
    extra["epsilon_cap"] = float(np.nanmax(caps)) if ok.any() else np.nan
    extra["epsilon_at_cap"] = float(np.mean(eps[ok] >= caps[ok] - 1e-9)) if ok.any() else np.nan
    extra["forgetting_quality_floor"] = float(np.mean(_quality_terms(caps[ok]))) if ok.any() else np.nan
    return row, extra, dict(auc=auc_b)


def _table(keys, parts: dict, w_shadows, w_examples, *, min_false_positives) -> pd.DataFrame:
    rows, reps = [], {}
    for key in keys:
        ps = parts[key]
        row = dict(model=key[0], method=key[1], kl_w=key[2], fo_w=key[3], n_shadows=ps[0]["k"],
                   n_forget=sum(len(p["f"]) for p in ps), diverged=any(p["diverged"] for p in ps))
        if not row["diverged"]:
            scores, extra, reps[key] = _row(ps, w_shadows, w_examples, min_false_positives=min_false_positives)
            seconds = [p["seconds"] for p in ps if p["seconds"] is not None]
            row.update(scores)
            if seconds:
                row["shadow_seconds"] = float(np.mean(seconds))
            row.update(extra)
        rows.append(row)
    for row in rows:  # the share of the teacher's own leak removed, paired resamples
        none = (row["model"], "none", 0.0, 0.0)
        if row["diverged"] or none not in reps:
            continue
        none_auc = next(r["auc"] for r in rows if (r["model"], r["method"], r["kl_w"], r["fo_w"]) == none)
        row["removed"] = removed_share(none_auc, row["auc"])
        b = removed_share(reps[none]["auc"], reps[(row["model"], row["method"], row["kl_w"], row["fo_w"])]["auc"])
        # resamples whose teacher falls within the margin have no ratio: past the interval's tail share of them,
        # the interval is not resolved
        resolved = np.isnan(b).mean() <= (1 - CONFIDENCE) / 2
        row["removed_lo"], row["removed_hi"] = centred_interval(row["removed"], b) if resolved else (np.nan,) * 2
    return pd.DataFrame(rows)


def score_draws(draws, val_labels: np.ndarray, *, reference: str = "retrain_full", min_shadows: int = 4,
                global_variance_below: int | None = None, min_false_positives: float | None = None,
                n_boot: int | None = None, boot_seed: int | None = None) -> Scores:
    """The shadows' scores (the study: ``qrobust.experiments.shadows``) of one or more poisoning draws
    (``Draw``s, each its own K shadows of its own pool and forget set, the same models, methods and weights):
    ``Scores`` (summary with the draws pooled, per-example, per draw).

    Summary, per model x method x weights (the reference method's rows left out; ``none``, the shadow teacher,
    included): U-LiRA's ``auc``, ``tpr_at_1pct_fpr``, ``tpr_at_01pct_fpr`` (targets of every draw pooled; a TPR
    NaN where ``n_neg`` * its FPR < ``min_false_positives``, default ``MIN_FALSE_POSITIVES``), ``n_pos``,
    ``n_neg``; the challenge's ``forgetting_quality`` and median per-example ``epsilon_median``; per shadow, the
    mean over its forget set and over validation of KL(method || reference) and JS, and the agreement of
    predicted labels, given as mean and std over shadows (``kl_forget_mean``, ``kl_forget_std``, ...);
    ``n_shadows`` (K, per draw); ``n_forget`` (forget examples, summed over draws); ``shadow_val_acc``;
    ``shadow_seconds`` (per shadow student, mean over draws); ``diverged`` (in any draw: a method whose
    shadows diverged is marked and scored no further). Added for uncertainty (module docstring):

    n_draws               poisoning draws pooled
    variance              U-LiRA's variances: "per-example", "global" (fewer than ``global_variance_below``
                          shadows per example, default ``GLOBAL_VARIANCE_BELOW``) or "mixed"
    n_boot                bootstrap resamples (default ``N_BOOT``, rng ``boot_seed``, default ``BOOT_SEED``)
    X_lo, X_hi            the 95 % interval of X, for auc, both TPRs (NaN where the TPR is), forgetting_quality,
                          epsilon_median, removed and every ``*_mean`` output distance
    removed               (auc_none - auc) / (auc_none - 0.5), auc_none the same model's ``none`` row: the
                          share of the un-unlearned teacher's leak the method removed (``removed_share``); NaN
                          where auc_none - 0.5 < ``LEAK_MARGIN`` or there is no ``none`` row (its interval also
                          where more than 2.5 % of the resamples put the teacher within the margin)
    epsilon_cap           the largest epsilon the estimate can give at this many shadows per example
                          (``epsilon_cap``: about 2.7 at 64 shadows)
    epsilon_at_cap        the share of examples whose epsilon is at that cap (the attack beat every held-out
                          output: their true epsilon may be larger)
    forgetting_quality_floor  the forgetting quality if every example sat at the cap (its least possible value)

    Per example (forget set only, every draw): U-LiRA's fits, scores and AUC, ``epsilon``, and ``draw``,
    ``seed``, ``global_variance``, ``epsilon_cap``. The draws' table: the summary's columns for each draw alone
    (its own shadow resamples), with ``draw`` and ``seed``. One draw reproduces the single-draw scoring of
    before (the point estimates, bit for bit, with ``global_variance_below=0`` and ``min_false_positives=0``,
    or at 64 shadows and enough negatives, where those rules change nothing).
    """
    draws = list(draws)
    if not draws:
        raise ValueError("score_draws needs at least one draw")
    keys = [k for k in draws[0].outputs if k[1] != reference]
    for d in draws[1:]:
        if set(k for k in d.outputs if k[1] != reference) != set(keys):
            raise ValueError("every draw must hold the same models, methods and weights")
    opts = dict(min_shadows=min_shadows, global_variance_below=global_variance_below)
    parts = {key: [_part(d, key, val_labels, reference, **opts) for d in draws] for key in keys}
    k_sizes, f_sizes = [len(d.member) for d in draws], [int(np.sum(d.forget)) for d in draws]
    summary = _table(keys, parts, bootstrap_weights(k_sizes, n_boot, boot_seed),
                     bootstrap_weights(f_sizes, n_boot, boot_seed), min_false_positives=min_false_positives)
    if len(draws) == 1:
        per_draw = [summary]
    else:
        per_draw = [_table(keys, {key: [parts[key][i]] for key in keys},
                           bootstrap_weights([k_sizes[i]], n_boot, boot_seed),
                           bootstrap_weights([f_sizes[i]], n_boot, boot_seed), min_false_positives=min_false_positives)
                    for i in range(len(draws))]
    by_draw = pd.concat([t.assign(draw=i, seed=d.seed) for i, (t, d) in enumerate(zip(per_draw, draws))],
                        ignore_index=True)
    examples = []
    for key in keys:
        for i, p in enumerate(parts[key]):
            if p["diverged"]:
                continue
            per = {k: v for k, v in p["per_example"].items() if k != "global_variance"}
            examples.append(pd.DataFrame(dict(model=key[0], method=key[1], kl_w=key[2], fo_w=key[3], index=p["f"],
                                              **per, epsilon=p["eps"], draw=i, seed=p["seed"],
                                              global_variance=p["per_example"]["global_variance"],
                                              epsilon_cap=p["caps"])))
    per_example = pd.concat(examples, ignore_index=True) if examples else pd.DataFrame()
    return Scores(summary, per_example, by_draw)


def score_shadows(outputs: dict, member: np.ndarray, forget: np.ndarray, labels: np.ndarray, val_labels: np.ndarray,
                  *, reference: str = "retrain_full", diverged=None, seconds=None,
                  **options) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, per-example) DataFrames of one draw's shadows: ``score_draws`` of ``Draw(outputs, member,
    forget, labels, diverged, seconds)``, whose docstring lists the columns; ``options`` are its keywords."""
    scores = score_draws([Draw(outputs, member, forget, labels, diverged, seconds)], val_labels, reference=reference,
                         **options)
    return scores.summary, scores.examples
