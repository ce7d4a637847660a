"""Statistics over seeds of a sweep's final epoch."""

from __future__ import annotations

import numpy as np
import pandas as pd

ARCH = ["arch", "n_params", "encoding", "ansatz", "depth", "hidden", "shots", "noise"]  # a model's architecture
# and the device it is read on (sweep axes)
GROUP = ["model", *ARCH, "corruption", "alpha", "learning_rate"]
_ARCH_DEFAULTS = dict(arch="-", n_params=-1, encoding="amplitude", ansatz="-", depth=0, hidden="-", shots=float("inf"),
                      noise="none")
LOSS_CEILING = 1e6  # a mean cross-entropy above this means logits of order 1e6: float32's sigmoid is saturated


def diverged(losses, axis: int = -1):
    """Whether a run diverged, from its cross-entropy losses over epochs (along ``axis``): a non-finite loss,
    or one above ``LOSS_CEILING``, at any epoch. Diverged runs are counted, and left out of every mean."""
    losses = np.asarray(losses, dtype=np.float64)
    return ~(np.isfinite(losses) & (losses <= LOSS_CEILING)).all(axis=axis)


def with_architecture(results: pd.DataFrame) -> pd.DataFrame:
    """``results`` with the architecture columns ``ARCH`` (a table written before architecture was an axis
    has none: one architecture per model, named "-", parameters unknown, -1)."""
    missing = {c: v for c, v in _ARCH_DEFAULTS.items() if c not in results}
    return results.assign(**missing) if missing else results


def final_epoch(results: pd.DataFrame) -> pd.DataFrame:
    """The last recorded epoch of every replica."""
    results = with_architecture(results)
    last = results.groupby(["model", "arch"])["epoch"].transform("max")
    return results[results.epoch == last]


def final_summary(results: pd.DataFrame,
                  metrics=("train_acc", "train_acc_clean", "val_acc", "memorization")) -> pd.DataFrame:
    """Mean and standard deviation over seeds of the final metrics, per model x architecture x corruption x
    alpha x learning rate.

    Diverged replicas are left out (and counted in ``n_diverged``); ``n_seeds`` is
    the number averaged. Memorisation is undefined (NaN) at alpha = 0 and stays NaN.
    """
    final = final_epoch(results)
    kept = final[~final.diverged]
    every = final.groupby(GROUP).size().index  # a group whose every replica diverged keeps its row (NaN means)
    stats = kept.groupby(GROUP)[list(metrics)].agg(["mean", "std"]).reindex(every)
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    stats["n_seeds"] = kept.groupby(GROUP).size().reindex(every, fill_value=0)
    stats["n_diverged"] = final.groupby(GROUP)["diverged"].sum()
    return stats.reset_index()


UNLEARN_GROUP = ["model", "method", "kl_w", "fo_w", "known_fraction"]


def recovery_summary(final: pd.DataFrame) -> pd.DataFrame:
    """Per model x method x weights, over seeds (diverged students left out):

    epochs to recover (mean, std, median over the seeds that recovered, and how
    many did), final validation / forget / retain accuracy, membership-inference
    accuracy, distance to the retrained student, wall seconds per replica.
    """
    if "known_fraction" not in final:  # a table written before the known fraction was an axis
        final = final.assign(known_fraction=1.0)
    kept = final[~final.diverged]
    g = kept.groupby(UNLEARN_GROUP)
    out = g.agg(n_seeds=("seed", "size"), n_recovered=("epochs_to_recover", "count"),
                epochs_to_recover_mean=("epochs_to_recover", "mean"),
                epochs_to_recover_std=("epochs_to_recover", "std"),
                epochs_to_recover_median=("epochs_to_recover", "median"),
                val_acc_mean=("val_acc", "mean"), val_acc_std=("val_acc", "std"),
                forget_acc_clean_mean=("forget_acc_clean", "mean"),
                forget_acc_poisoned_mean=("forget_acc_poisoned", "mean"),
                retain_acc_mean=("retain_acc", "mean"), mia_acc_mean=("mia_acc", "mean"),
                mia_acc_std=("mia_acc", "std"), dist_to_retrain_mean=("dist_to_retrain", "mean"),
                clean_val_acc_mean=("clean_val_acc", "mean"), teacher_val_acc_mean=("teacher_val_acc", "mean"),
                seconds_per_replica=("seconds", "mean"))
    every = final.groupby(UNLEARN_GROUP).size().index  # a group whose every student diverged keeps its row
    out = out.reindex(every)
    out[["n_seeds", "n_recovered"]] = out[["n_seeds", "n_recovered"]].fillna(0).astype(int)
    out["n_diverged"] = final.groupby(UNLEARN_GROUP).diverged.sum()
    return out.reset_index()
