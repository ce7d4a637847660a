"""Layer 6: statistics over seeds of a sweep's final epoch."""

from __future__ import annotations

import pandas as pd

GROUP = ["model", "corruption", "alpha", "learning_rate"]


def final_epoch(results: pd.DataFrame) -> pd.DataFrame:
    """The last recorded epoch of every replica."""
    last = results.groupby(["model"])["epoch"].transform("max")
    return results[results.epoch == last]


def final_summary(results: pd.DataFrame, metrics=("train_acc", "train_acc_clean", "val_acc", "memorization")) -> pd.DataFrame:
    """Mean and standard deviation over seeds of the final metrics, per model x corruption x alpha.

    Diverged replicas are left out (and counted in ``n_diverged``); ``n_seeds`` is
    the number averaged. Memorisation is undefined (NaN) at alpha = 0 and stays NaN.
    """
    final = final_epoch(results)
    kept = final[~final.diverged]
    stats = kept.groupby(GROUP)[list(metrics)].agg(["mean", "std"])
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    stats["n_seeds"] = kept.groupby(GROUP).size()
    stats["n_diverged"] = final.groupby(GROUP)["diverged"].sum()
    return stats.reset_index()
