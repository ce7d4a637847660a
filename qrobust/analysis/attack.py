"""The attack study's analysis (pure functions of its tables): damage curves with intervals, certified-accuracy
curves of the partition ensembles, and the quantities its verdicts read (``qrobust.analysis.claims.attack_claims``).

Damage: each replica's final validation accuracy; per model x corruption x alpha the mean over seeds and the 95%
percentile interval of the bootstrap over seeds (``intervals.Boot``); diverged replicas left out (NaN), so NaN
never enters a mean silently (a point whose every replica diverged stays NaN).

The plateau's fall under an attack (``plateau_falls``): val(0) - min over 0 < alpha < 0.5 of val_attack(alpha),
val(0) the clean replicas' accuracy (alpha 0 is the same replica for every corruption: no flips). The strongest
attack is read per resample: the largest fall over the adaptive and heuristic attacks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from qrobust.analysis.certify import certified_accuracy, dpa_certificate
from qrobust.analysis.intervals import Boot, percentiles
from qrobust.analysis.summary import final_epoch

PLATEAU_ALPHA = 0.5  # the plateau is read below it (the paper's; claims._plateau's)


def final_val(results: pd.DataFrame) -> pd.DataFrame:
    """Each replica's final row, val_acc NaN where the replica diverged."""
    final = final_epoch(results)
    if "diverged" in final:
        final = final.assign(val_acc=final.val_acc.where(~final.diverged.astype(bool)))
    return final


def curves(results: pd.DataFrame) -> tuple[pd.DataFrame, Boot]:
    """(resampled means of the final val_acc, index (model, corruption, alpha), one column per resample, the
    point value in column 0; the Boot of the seeds)."""
    final = final_val(results)
    boot = Boot(final.seed)
    return boot.means(final, ["model", "corruption", "alpha"], "val_acc"), boot


def damage(results: pd.DataFrame) -> pd.DataFrame:
    """attack.csv: per model, corruption, alpha: val_acc mean, its 95% interval (lo, hi), n_seeds, n_corrupted."""
    means, _ = curves(results)
    final = final_val(results)
    counts = final.groupby(["model", "corruption", "alpha"]).agg(n_seeds=("val_acc", "count"),
                                                                n_corrupted=("n_corrupted", "first"))
    rows = []
    for key, values in means.iterrows():
        v = values.to_numpy(float)
        lo, hi = percentiles(v[1:]) if len(v) > 1 else (np.nan, np.nan)
        rows.append(dict(zip(("model", "corruption", "alpha"), key), val_acc=v[0], val_acc_lo=lo, val_acc_hi=hi,
                         **counts.loc[key].to_dict()))
    return pd.DataFrame(rows)


def plateau_falls(means: pd.DataFrame, model: str, corruptions) -> np.ndarray:
    """(resamples, len(corruptions)) val(0) - min over 0 < alpha < 0.5 of the attack's val (module docstring);
    KeyError where the model or an attack was not run."""
    out = []
    for c in corruptions:
        curve = means.loc[(model, c)].sort_index()
        alpha = curve.index.to_numpy(float)
        v = curve.to_numpy(float)
        inside = (alpha > 0) & (alpha < PLATEAU_ALPHA)
        if not inside.any() or alpha[0] != 0:
            raise ValueError(f"{model} {c}: no alpha 0 or none in (0, {PLATEAU_ALPHA})")
        out.append(v[0] - np.min(v[inside], axis=0))
    return np.stack(out, axis=1)


def excess_damage(means: pd.DataFrame, model: str, attack: str, baseline: str = "flip") -> np.ndarray:
    """(resamples,) mean over 0 < alpha < 0.5 of val_baseline(alpha) - val_attack(alpha): how much more the attack
    takes than random flips at the same counts."""
    a, b = means.loc[(model, attack)].sort_index(), means.loc[(model, baseline)].sort_index()
    alpha = a.index.to_numpy(float)
    inside = (alpha > 0) & (alpha < PLATEAU_ALPHA)
    if not inside.any():
        raise ValueError(f"{model}: no alpha in (0, {PLATEAU_ALPHA})")
    return np.mean(b.to_numpy(float)[inside] - a.to_numpy(float)[inside], axis=0)


def certified_curves(votes: dict, y_val: np.ndarray, n_train: int) -> pd.DataFrame:
    """certified.csv: per model and seed, for r = 0 .. the largest certificate: the partition ensemble's certified
    accuracy at r flips (alpha = r / n_train), its clean accuracy, and the partitions. ``votes``: {"seeds": (S,),
    model: (S, k, M)} (``qrobust.experiments.attack.partition_votes``)."""
    rows = []
    for model, v in votes.items():
        if model == "seeds":
            continue
        for seed, per in zip(votes["seeds"], v):
            prediction, certified = dpa_certificate(per)
            clean = float(np.mean(prediction == np.asarray(y_val)))
            for r in range(int(max(certified.max(), 0)) + 1):
                rows.append(dict(model=model, seed=int(seed), partitions=per.shape[0], flips=r, alpha=r / n_train,
                                 certified_acc=float(certified_accuracy(prediction, certified, y_val, [r])[0]),
                                 ensemble_acc=clean))
    return pd.DataFrame(rows, columns=["model", "seed", "partitions", "flips", "alpha", "certified_acc",
                                       "ensemble_acc"])


ATTACKED_COLUMNS = ("model", "corruption", "alpha", "seed", "partitions", "flips", "certified_acc", "attacked_acc",
                    "clean_acc", "certified", "changed", "changed_certified")


def attacked_certificates(votes: dict, attacked: dict, counts: dict, y_val: np.ndarray) -> pd.DataFrame:
    """dpa_attacked.csv: per model, (corruption, alpha) of ``attacked`` and seed, the partition ensemble trained on
    that attack's flipped labels beside the certificate of the one trained on clean labels, at the attack's flip
    count (``counts[(corruption, alpha)]``): certified_acc (clean ensemble right and certified for >= flips),
    attacked_acc (the attacked ensemble's accuracy), clean_acc, certified (the share of points certified for >=
    flips), changed (the share whose prediction the attack changed) and changed_certified (how many certified
    points changed: 0 wherever the certificate holds). ``votes``: ``certified_curves``'; ``attacked``: {model:
    {(corruption, alpha): (S, k, M)}} (``qrobust.experiments.attack.partition_votes``)."""
    y_val, rows = np.asarray(y_val), []
    for model, cells in attacked.items():
        for (corruption, alpha), v in cells.items():
            flips = int(counts[(corruption, alpha)])
            for seed, clean_votes, attacked_votes in zip(votes["seeds"], votes[model], v):
                clean, certified = dpa_certificate(clean_votes)
                under, _ = dpa_certificate(attacked_votes)
                covered, changed = certified >= flips, under != clean
                rows.append(dict(model=model, corruption=corruption, alpha=float(alpha), seed=int(seed),
                                 partitions=clean_votes.shape[0], flips=flips,
                                 certified_acc=float(certified_accuracy(clean, certified, y_val, [flips])[0]),
                                 attacked_acc=float(np.mean(under == y_val)), clean_acc=float(np.mean(clean == y_val)),
                                 certified=float(np.mean(covered)), changed=float(np.mean(changed)),
                                 changed_certified=int(np.sum(changed & covered))))
    return pd.DataFrame(rows, columns=list(ATTACKED_COLUMNS))


def attacked_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per model, corruption and alpha of dpa_attacked.csv: the means over seeds of the attacked ensemble's
    accuracy (with its 95% bootstrap interval), its certified and clean accuracy, and the certified points whose
    prediction changed (summed over seeds)."""
    columns = ["model", "corruption", "alpha", "flips", "attacked_acc", "lo", "hi", "certified_acc", "clean_acc",
               "changed_certified", "n_seeds"]
    if table.empty:
        return pd.DataFrame(columns=columns)
    keys = ["model", "corruption", "alpha"]
    boot = Boot(table.seed)
    means = boot.means(table, keys, "attacked_acc")
    grouped = table.groupby(keys).agg(flips=("flips", "first"), certified_acc=("certified_acc", "mean"),
                                      clean_acc=("clean_acc", "mean"), changed_certified=("changed_certified", "sum"),
                                      n_seeds=("seed", "nunique"))
    rows = []
    for key, values in means.iterrows():
        v = values.to_numpy(float)
        lo, hi = percentiles(v[1:]) if len(v) > 1 else (np.nan, np.nan)
        rows.append(dict(zip(keys, key), attacked_acc=v[0], lo=lo, hi=hi, **grouped.loc[key].to_dict()))
    counts = ["flips", "changed_certified", "n_seeds"]
    return pd.DataFrame(rows)[columns].astype(dict.fromkeys(counts, int))


def certified_summary(certified: pd.DataFrame) -> pd.DataFrame:
    """Per model and flips: the certified accuracy's mean over seeds and its 95% bootstrap interval (a seed
    whose certificates end before r counts 0 there)."""
    if certified.empty:
        return pd.DataFrame(columns=["model", "flips", "alpha", "certified_acc", "lo", "hi", "n_seeds"])
    full = certified.pivot_table(index=["model", "flips"], columns="seed", values="certified_acc").fillna(0.0)
    boot = Boot(certified.seed)
    values = full.reindex(columns=boot.seeds).to_numpy(float)[:, boot.idx].mean(axis=2)
    rows = []
    for (model, flips), v in zip(full.index, values):
        lo, hi = percentiles(v[1:]) if len(v) > 1 else (np.nan, np.nan)
        alpha = certified.loc[certified.flips == flips, "alpha"].iloc[0]
        rows.append(dict(model=model, flips=flips, alpha=alpha, certified_acc=v[0], lo=lo, hi=hi,
                         n_seeds=full.shape[1]))
    return pd.DataFrame(rows)
