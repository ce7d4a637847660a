"""Layer 7: figures. Thin: the numbers come from qrobust.analysis."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from qrobust.analysis.summary import final_summary  # noqa: E402

CORRUPTION_TITLES = {"flip": "label flipping", "features": "feature randomization"}


def plot_noise_response(results, path: str | Path, *, title: str = "") -> Path:
    """The paper's Fig. 2: final training and validation accuracy against alpha.

    One panel per model x corruption; mean +- std over seeds (diverged replicas
    left out); the dashed line is 1 - alpha, the training accuracy of a model
    that refuses every corrupted label.
    """
    summary = final_summary(results)
    models = list(dict.fromkeys(summary.model))
    corruptions = list(dict.fromkeys(summary.corruption))
    fig, axes = plt.subplots(len(models), len(corruptions), figsize=(4.2 * len(corruptions), 3.4 * len(models)),
                             squeeze=False, sharex=True, sharey=True)
    for i, model in enumerate(models):
        for j, corruption in enumerate(corruptions):
            ax = axes[i][j]
            part = summary[(summary.model == model) & (summary.corruption == corruption)]
            for lr, sub in part.groupby("learning_rate"):
                tag = f" (lr {lr:g})" if part.learning_rate.nunique() > 1 else ""
                for metric, label, marker in (("train_acc", "train", "o"), ("val_acc", "validation", "s")):
                    ax.errorbar(sub.alpha, sub[f"{metric}_mean"], yerr=sub[f"{metric}_std"].fillna(0),
                                marker=marker, ms=4, capsize=2, label=label + tag)
            ax.plot([0, 1], [1, 0], ls="--", c="grey", lw=0.8, label=r"$1-\alpha$")
            ax.set_title(f"{model.upper()}, {CORRUPTION_TITLES.get(corruption, corruption)}", fontsize=10)
            ax.set_ylim(-0.03, 1.03)
            ax.grid(alpha=0.3)
            if i == len(models) - 1:
                ax.set_xlabel(r"corruption ratio $\alpha$")
            if j == 0:
                ax.set_ylabel("final accuracy")
    axes[0][0].legend(fontsize=8, loc="lower left")
    if title:
        fig.suptitle(f"Noise response: {title}", fontsize=11)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
