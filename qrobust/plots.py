"""Figures. Thin: the numbers come from qrobust.analysis."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from qrobust.analysis.summary import final_summary
from qrobust.files import atomic_write


def _subplots(*args, **kwargs):
    """``pyplot.subplots`` without pyplot: a Figure of its own canvas (Agg when saved), so drawing never
    touches the user's matplotlib backend or pyplot's figure list (a notebook's inline plots stay theirs)."""
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(*args, **kwargs)

CORRUPTION_TITLES = {"flip": "label flipping", "features": "feature randomization"}


def _ordered(values, preferred) -> list:
    """Distinct values, those in ``preferred`` first and in its order."""
    present = list(dict.fromkeys(values))
    return [v for v in preferred if v in present] + [v for v in present if v not in preferred]


def plot_noise_response(results, path: str | Path, *, title: str = "", critical=None) -> Path:
    """The paper's Fig. 2: final training and validation accuracy against alpha.

    One panel per model x corruption; mean +- std over seeds (diverged replicas
    left out); the dashed line is 1 - alpha, the training accuracy of a model
    that refuses every corrupted label. With ``critical`` (the table of
    ``qrobust.analysis.critical_points``) each panel shows alpha_c from
    memorisation with its confidence interval, or "no transition".
    """
    summary = final_summary(results)
    models = _ordered(summary.model, ("qnn", "mlp"))
    corruptions = _ordered(summary.corruption, ("flip", "features"))
    fig, axes = _subplots(len(models), len(corruptions), figsize=(4.2 * len(corruptions), 3.4 * len(models)),
                             squeeze=False, sharex=True, sharey=True)
    for i, model in enumerate(models):
        for j, corruption in enumerate(corruptions):
            ax = axes[i][j]
            part = summary[(summary.model == model) & (summary.corruption == corruption)]
            for (arch, lr), sub in part.groupby(["arch", "learning_rate"], sort=False):
                tags = ([arch] if part.arch.nunique() > 1 else []) + ([f"lr {lr:g}"] if part.learning_rate.nunique() > 1
                                                                       else [])
                tag = f" ({', '.join(tags)})" if tags else ""
                for metric, label, marker in (("train_acc", "train", "o"), ("val_acc", "validation", "s")):
                    ax.errorbar(sub.alpha, sub[f"{metric}_mean"], yerr=sub[f"{metric}_std"].fillna(0),
                                marker=marker, ms=4, capsize=2, label=label + tag)
            ax.plot([0, 1], [1, 0], ls="--", c="grey", lw=0.8, label=r"$1-\alpha$")
            if critical is not None and part.arch.nunique() == 1:  # several architectures: see plot_capacity
                _mark_critical(ax, critical[(critical.model == model) & (critical.corruption == corruption)])
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
    return _save(fig, path)


def plot_capacity(results, path: str | Path, *, critical=None, corruption: str | None = None) -> Path:
    """Capacity as an axis: per model family, final training (dashed) and validation (solid) accuracy against
    alpha for each architecture; with ``critical`` (``qrobust.analysis.critical_points``), a last panel of
    alpha_c (from memorisation, with its interval) against the number of parameters, "no transition" drawn
    as an open marker at the top."""
    summary = final_summary(results)
    corruption = corruption or _ordered(summary.corruption, ("flip", "random-labels"))[0]
    summary = summary[summary.corruption == corruption]
    models = _ordered(summary.model, ("qnn", "mlp"))
    n_panels = len(models) + (critical is not None)
    fig, axes = _subplots(1, n_panels, figsize=(4.4 * n_panels, 3.6), squeeze=False)
    axes = axes[0]
    for ax, model in zip(axes, models):
        part = summary[summary.model == model].sort_values(["n_params", "alpha"])
        for k, (arch, sub) in enumerate(part.groupby("arch", sort=False)):
            color = f"C{k % 10}"
            ax.plot(sub.alpha, sub.val_acc_mean, marker="s", ms=3, c=color,
                    label=f"{arch} ({int(sub.n_params.iloc[0]):,} params)")
            ax.plot(sub.alpha, sub.train_acc_mean, ls="--", lw=0.9, c=color)
        ax.plot([0, 1], [1, 0], ls=":", c="grey", lw=0.8)
        ax.set_title(f"{model.upper()}: validation (solid), training (dashed)", fontsize=9)
        ax.set_xlabel(r"corruption ratio $\alpha$")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel(f"final accuracy ({CORRUPTION_TITLES.get(corruption, corruption)})")
    if critical is not None:
        ax = axes[-1]
        crit = critical[critical.corruption == corruption]
        for k, model in enumerate(models):
            rows = crit[crit.model == model].sort_values("n_params")
            found = rows[rows.transition.astype(bool)]
            ax.errorbar(found.n_params, found.alpha_c_memorization,
                        yerr=[found.alpha_c_memorization - found.alpha_c_memorization_lo,
                              found.alpha_c_memorization_hi - found.alpha_c_memorization],
                        marker="o", c=f"C{k}", capsize=3, ls="-", label=f"{model.upper()} $\\alpha_c$")
            none = rows[~rows.transition.astype(bool)]
            ax.scatter(none.n_params, np.ones(len(none)), marker="o", facecolors="none", edgecolors=f"C{k}",
                       label=f"{model.upper()}: no transition" if len(none) else None)
        ax.set_xscale("log")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("parameters")
        ax.set_ylabel(r"$\alpha_c$ (memorisation crosses 1/2)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_device(table, path: str | Path, *, title: str = "") -> Path:
    """The device study (``qrobust.analysis.device.device_table``): per quantity (clean validation accuracy,
    memorisation at alpha 0.3, the plateau's fall, alpha_c) the QNN against shots (log axis; exact drawn at the
    right, as infinitely many shots), one line per gate-noise setting, each point with its 95% interval; the exact
    MLP as a horizontal band."""
    qnn, mlp = table[table.model == "qnn"], table[table.model == "mlp"]
    finite = qnn.shots[np.isfinite(qnn.shots.astype(float))].astype(float)
    if not len(finite) and qnn.noise.nunique() > 1:  # a gate-noise study at exact shots: noise on the x axis
        return _plot_device_noise(qnn, mlp, path, title)
    top = 10 * finite.max() if len(finite) else 10.0  # where "exact" is drawn
    fig, axes = _subplots(1, len(DEVICE_PANELS), figsize=(3.6 * len(DEVICE_PANELS), 3.3), squeeze=False)
    for ax, (name, text) in zip(axes[0], DEVICE_PANELS):
        for k, (noise, rows) in enumerate(qnn.groupby("noise", sort=False)):
            rows = rows.assign(x=[s if np.isfinite(s) else top for s in rows.shots.astype(float)]).sort_values("x")
            lo, hi = (rows[name] - rows[f"{name}_lo"]).clip(lower=0), (rows[f"{name}_hi"] - rows[name]).clip(lower=0)
            ax.errorbar(rows.x, rows[name], yerr=[lo.fillna(0), hi.fillna(0)], marker="o", c=f"C{k}", capsize=3,
                        label=f"QNN, {'exact gates' if noise == 'none' else noise}")
        _mlp_band(ax, mlp, name)
        ticks = sorted(set(finite)) + [top]
        ax.set_xscale("log")
        ax.set_xlim(ticks[0] / 2, top * 2)  # set, not found: a panel whose every value is NaN has no data to scale
        ax.set_xticks(ticks, [f"{int(t):,}" for t in ticks[:-1]] + ["exact"], fontsize=7)
        ax.set_xlabel("shots per output and per shift term")
        ax.set_title(text, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize=7, loc="center right")  # memorisation: the QNN low, the MLP high, room between
    fig.suptitle(f"{title.upper()}: the QNN on a device (label flipping)", fontsize=10)
    return _save(fig, path)


DEVICE_PANELS = (("clean_val", "clean val acc"), ("memorization", "memorisation at 0.3"), ("plateau", "plateau fall"),
                 ("alpha_c", r"$\alpha_c$"))


def _mlp_band(ax, mlp, name: str) -> None:
    """The exact MLP's value of ``name`` as a dashed line, its 95% interval as a grey band."""
    for _, m in mlp.iterrows():
        ax.axhline(m[name], c="grey", ls="--", lw=1, label="MLP (exact)")
        if np.isfinite([m[f"{name}_lo"], m[f"{name}_hi"]]).all():
            ax.axhspan(m[f"{name}_lo"], m[f"{name}_hi"], color="grey", alpha=0.15)


def _plot_device_noise(qnn, mlp, path: str | Path, title: str) -> Path:
    """``plot_device`` for a study at exact shots: the QNN against its gate-noise settings (in the table's order,
    exact gates first), each point with its 95% interval; the exact MLP as a band."""
    settings = list(dict.fromkeys(qnn.noise))
    x = np.arange(len(settings))
    fig, axes = _subplots(1, len(DEVICE_PANELS), figsize=(3.6 * len(DEVICE_PANELS), 3.3), squeeze=False)
    for ax, (name, text) in zip(axes[0], DEVICE_PANELS):
        rows = qnn.set_index("noise").loc[settings]
        lo, hi = (rows[name] - rows[f"{name}_lo"]).clip(lower=0), (rows[f"{name}_hi"] - rows[name]).clip(lower=0)
        ax.errorbar(x, rows[name], yerr=[lo.fillna(0), hi.fillna(0)], marker="o", c="C0", capsize=3, ls="-",
                    label="QNN")
        _mlp_band(ax, mlp, name)
        ax.set_xlim(-0.5, len(settings) - 0.5)
        ax.set_xticks(x, ["exact gates" if s == "none" else s.replace(":", "\n") for s in settings], fontsize=7)
        ax.set_xlabel("gate noise (exact shots)")
        ax.set_title(text, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize=7, loc="center right")
    fig.suptitle(f"{title.upper()}: the QNN under gate noise (label flipping)", fontsize=10)
    return _save(fig, path)


def _mark_critical(ax, rows) -> None:
    for _, row in rows.iterrows():
        if row.transition:
            ax.axvline(row.alpha_c_memorization, c="crimson", lw=1)
            ax.axvspan(row.alpha_c_memorization_lo, row.alpha_c_memorization_hi, color="crimson", alpha=0.15)
            text = (rf"$\alpha_c$ = {row.alpha_c_memorization:.3f}" "\n"
                    f"[{row.alpha_c_memorization_lo:.3f}, {row.alpha_c_memorization_hi:.3f}]")
        else:
            text = "no transition"
        ax.text(0.98, 0.97, text, transform=ax.transAxes, ha="right", va="top", fontsize=8, color="crimson")


def _save(fig, path) -> Path:
    """Write the figure atomically (a temporary file renamed into place): never a partial image."""
    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120))
    return path


def plot_unlearning(results, final, path: str | Path, *, title: str = "") -> Path:
    """The paper's Fig. 3: validation accuracy against unlearning epoch, one curve per method.

    Models side by side; mean +- std over seeds (diverged students left out); for
    methods with a weight grid, the cell with the smallest weights is drawn. The
    dashed line is the clean model's validation accuracy (mean over seeds), the
    dotted one the poisoned teacher's.
    """
    if "known_fraction" in final:  # a corrective study: the curves of the largest known part
        final = final[final.known_fraction == final.known_fraction.max()]
        results = results[results.known_fraction == results.known_fraction.max()]
    ok = final[~final.diverged]
    models = _ordered(results.model, ("qnn", "mlp"))
    fig, axes = _subplots(1, len(models), figsize=(5.2 * len(models), 3.8), squeeze=False)
    for ax, model in zip(axes[0], models):
        part = results[(results.model == model) & ~results.diverged]
        for method, sub in part.groupby("method", sort=False):
            cell = sub[["kl_w", "fo_w"]].drop_duplicates().sort_values(["fo_w", "kl_w"]).iloc[0]
            sub = sub[(sub.kl_w == cell.kl_w) & (sub.fo_w == cell.fo_w)]
            curve = sub.groupby("epoch").val_acc.agg(["mean", "std"])
            label = method + (f" (kl_w {cell.kl_w:g}, fo_w {cell.fo_w:g})" if method in ("scrub", "ga", "neggrad")
                              else "")
            ax.plot(curve.index, curve["mean"], label=label)
            ax.fill_between(curve.index, curve["mean"] - curve["std"].fillna(0),
                            curve["mean"] + curve["std"].fillna(0), alpha=0.2)
        m_final = ok[ok.model == model]
        ax.axhline(m_final.clean_val_acc.mean(), ls="--", c="k", lw=0.8, label="clean model")
        ax.axhline(m_final.teacher_val_acc.mean(), ls=":", c="k", lw=0.8, label="poisoned teacher")
        ax.set_title(model.upper())
        ax.set_xlabel("unlearning epoch")
        ax.set_ylabel("validation accuracy")
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(f"Unlearning: {title}", fontsize=11)
    return _save(fig, path)


def plot_corrective(final, path: str | Path, *, title: str = "") -> Path:
    """Corrective unlearning (Goel et al., arXiv:2402.14015): after unlearning, validation accuracy and the
    forget set's accuracy against its clean labels, against the fraction of the poisoned set the forget set
    holds; one curve per method (its smallest weights), models side by side; mean +- std over seeds."""
    ok = final[~final.diverged]
    models = _ordered(ok.model, ("qnn", "mlp"))
    fig, axes = _subplots(2, len(models), figsize=(5.2 * len(models), 6.6), squeeze=False, sharex=True)
    for col, model in enumerate(models):
        part = ok[ok.model == model]
        for method, sub in part.groupby("method", sort=False):
            cell = sub[["kl_w", "fo_w"]].drop_duplicates().sort_values(["fo_w", "kl_w"]).iloc[0]
            sub = sub[(sub.kl_w == cell.kl_w) & (sub.fo_w == cell.fo_w)]
            for row, column in enumerate(("val_acc", "forget_acc_clean")):
                curve = sub.groupby("known_fraction")[column].agg(["mean", "std"])
                axes[row, col].errorbar(curve.index, curve["mean"], yerr=curve["std"].fillna(0), marker="o", ms=3,
                                        capsize=2, label=method)
        axes[0, col].axhline(part.clean_val_acc.mean(), ls="--", c="k", lw=0.8, label="clean model")
        axes[0, col].axhline(part.teacher_val_acc.mean(), ls=":", c="k", lw=0.8, label="poisoned teacher")
        axes[0, col].set_title(model.upper())
        axes[0, col].set_ylabel("validation accuracy")
        axes[1, col].set_ylabel("forget-set accuracy (clean labels)")
        axes[1, col].set_xlabel("known fraction of the poisoned set")
        for ax in axes[:, col]:
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
        axes[0, col].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(f"Corrective unlearning: {title}", fontsize=11)
    return _save(fig, path)


SCORECARD_PANELS = (("val_acc", "validation accuracy", (0, 1)), ("forget_acc_clean", "forget accuracy (clean labels)",
                                                                 (0, 1)),
                    ("auc", "U-LiRA AUC (0.5: forgotten)", (0.4, 1)), ("tpr_at_1pct_fpr", "U-LiRA TPR at 1% FPR",
                                                                      (0, 1)),
                    ("forgetting_quality", "forgetting quality F (challenge; 1 best)", (0, 1)),
                    ("kl_forget_mean", "KL(method || retrain) on the forget set", None))


def plot_scorecard(card, path: str | Path, *, title: str = "") -> Path:
    """The unlearning scorecard: per method (bars grouped by model), the study's validation and forget
    accuracy and the shadows' U-LiRA AUC, TPR at 1 % FPR, the challenge's forgetting quality and the output
    KL to the retrained shadows; error bars the std over shadows for KL. ``none`` is the un-unlearned teacher."""
    card = card[~card.diverged] if "diverged" in card else card
    models = _ordered(card.model, ("qnn", "mlp"))
    methods = list(dict.fromkeys(card.method))
    fig, axes = _subplots(2, 3, figsize=(15, 7.5), squeeze=False)
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(methods))
    for ax, (column, label, limits) in zip(axes.ravel(), SCORECARD_PANELS):
        for i, model in enumerate(models):
            part = card[card.model == model].groupby("method", sort=False).first().reindex(methods)
            err = part.get("kl_forget_std") if column == "kl_forget_mean" else None
            ax.bar(x + (i - (len(models) - 1) / 2) * width, part[column].to_numpy(dtype=float), width,
                   yerr=None if err is None else err.to_numpy(dtype=float), label=model.upper(), capsize=2)
        if column == "auc":
            ax.axhline(0.5, color="k", ls="--", lw=0.8)
        ax.set_xticks(x, methods, rotation=35, ha="right", fontsize=8)
        ax.set_title(label, fontsize=9)
        if limits is not None:
            ax.set_ylim(*limits)
        ax.grid(axis="y", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def plot_weight_heatmaps(final, path: str | Path) -> Path:
    """Final validation accuracy (mean over seeds) over the (kl_w, fo_w) grid, per model x method."""
    ok = final[~final.diverged]
    pairs = [(m, meth) for (m, meth), g in ok.groupby(["model", "method"], sort=False)
             if g.kl_w.nunique() > 1 or g.fo_w.nunique() > 1]
    if not pairs:
        pairs = list(ok.groupby(["model", "method"], sort=False).groups)
    fig, axes = _subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.8), squeeze=False)
    for ax, (model, method) in zip(axes[0], pairs):
        grid = ok[(ok.model == model) & (ok.method == method)].pivot_table(
            index="kl_w", columns="fo_w", values="val_acc", aggfunc="mean")
        im = ax.imshow(grid.to_numpy(), origin="lower", aspect="auto", vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(grid.shape[1]), [f"{v:g}" for v in grid.columns], fontsize=7)
        ax.set_yticks(range(grid.shape[0]), [f"{v:g}" for v in grid.index], fontsize=7)
        ax.set_xlabel("fo_w")
        ax.set_ylabel("kl_w")
        ax.set_title(f"{model.upper()} {method}: final val. acc.", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    return _save(fig, path)


def plot_landscape(result, path: str | Path) -> Path:
    """Bar chart (log scale) of the roughening ratio trace(alpha) / trace(0), mean +- std over seeds."""
    noisy = result[result.alpha > 0]
    stats = noisy.groupby(["alpha", "model"]).ratio.agg(["mean", "std"]).reset_index()
    alphas = sorted(stats.alpha.unique())
    models = _ordered(stats.model, ("qnn", "mlp"))
    fig, ax = _subplots(figsize=(5.5, 3.8))
    width = 0.8 / len(models)
    for i, model in enumerate(models):
        part = stats[stats.model == model].set_index("alpha").reindex(alphas)
        pos = np.arange(len(alphas)) + (i - (len(models) - 1) / 2) * width
        ax.bar(pos, part["mean"], width, yerr=part["std"].fillna(0), capsize=3, label=model.upper())
    ax.axhline(1.0, c="k", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(np.arange(len(alphas)), [f"{a:g}" for a in alphas])
    ax.set_xlabel(r"label-flipping ratio $\alpha$")
    ax.set_ylabel(r"Hessian trace ratio  Tr $H_\alpha$ / Tr $H_0$")
    ax.legend()
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)


def plot_detection(result, path: str | Path) -> Path:
    """AUROC and precision at k against alpha, one line per detector, mean +- std over seeds."""
    stats = result.groupby(["detector", "alpha"])[["auroc", "precision_at_k"]].agg(["mean", "std"]).reset_index()
    fig, axes = _subplots(1, 2, figsize=(10, 3.8))
    for ax, metric, label in ((axes[0], "auroc", "AUROC"), (axes[1], "precision_at_k", "precision at k")):
        for det, part in stats.groupby("detector"):
            ax.errorbar(part.alpha, part[(metric, "mean")], yerr=part[(metric, "std")].fillna(0), marker="o", ms=3,
                        capsize=2, label=det)
        ax.set_xlabel(r"label-flipping ratio $\alpha$")
        ax.set_ylabel(label)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0].axhline(0.5, c="grey", lw=0.8, ls="--")
    axes[1].legend(fontsize=7)
    return _save(fig, path)


def plot_finite_size(table, path: str | Path) -> Path:
    """alpha_c (from memorisation, with its CI) and the transition's 10-90 % width against training-set size,
    one line per model x corruption x number of qubits; runs without a transition are left out."""
    ok = table[table.transition]
    fig, axes = _subplots(1, 2, figsize=(10, 3.8))
    for (model, corruption, qubits), part in ok.groupby(["model", "corruption", "n_qubits"], dropna=False):
        part = part.sort_values("n_train")
        label = f"{model.upper()} {corruption}, {qubits} qubits"
        err = [part.alpha_c_memorization - part.alpha_c_memorization_lo,
               part.alpha_c_memorization_hi - part.alpha_c_memorization]
        axes[0].errorbar(part.n_train, part.alpha_c_memorization, yerr=err, marker="o", capsize=3, label=label)
        axes[1].plot(part.n_train, part.width_10_90, marker="o", label=label)
    axes[0].set_ylabel(r"$\alpha_c$ (memorisation crosses 1/2)")
    axes[1].set_ylabel("10-90 % width of the transition")
    for ax in axes:
        ax.set_xlabel("training samples")
        ax.set_xscale("log")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _save(fig, path)


def plot_gauge(summary, path: str | Path, *, corruption: str = "flip") -> Path:
    """The gauge study: final training (open markers, dashed) and validation (filled, solid) accuracy against
    alpha under each gauge, one panel per model (``summary``: ``qrobust.experiments.gauge`` with a ``gauge``
    column; mean +- std over seeds). The QNN's curves coincide by construction; the MLP's need not."""
    part = summary[summary.corruption == corruption]
    models = _ordered(part.model, ("qnn", "mlp"))
    fig, axes = _subplots(1, len(models), figsize=(4.6 * len(models), 3.6), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        for k, (gauge, sub) in enumerate(part[part.model == model].groupby("gauge", sort=False)):
            color = f"C{k}"
            ax.errorbar(sub.alpha, sub.train_acc_mean, yerr=sub.train_acc_std.fillna(0), color=color, ls="--",
                        marker="o", mfc="none", ms=4, capsize=2, label=f"{gauge}: train")
            ax.errorbar(sub.alpha, sub.val_acc_mean, yerr=sub.val_acc_std.fillna(0), color=color, marker="s",
                        ms=4, capsize=2, label=f"{gauge}: validation")
        ax.plot([0, 1], [1, 0], ls=":", c="grey", lw=0.8)
        ax.set_title(f"{model.upper()}, {CORRUPTION_TITLES.get(corruption, corruption)}", fontsize=10)
        ax.set_xlabel(r"corruption ratio $\alpha$")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("final accuracy")
    axes[0][-1].legend(fontsize=7, loc="lower left")
    fig.suptitle("The global phase of the states (gauge) against memorisation", fontsize=11)
    return _save(fig, path)


def plot_attacks(damage, certified, path: str | Path, *, title: str = "") -> Path:
    """One panel per model: validation accuracy against flip fraction under each attack (mean over seeds, 95%
    band), and the partition ensemble's certified accuracy against the flipped fraction (dashed, black)."""
    models = _ordered(damage.model.unique(), ("qnn", "mlp"))
    fig, axes = _subplots(1, len(models), figsize=(3.6 * len(models), 3.2), squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        rows = damage[damage.model == model]
        for attack in _ordered(rows.corruption.unique(), ("flip", "boundary")):
            r = rows[rows.corruption == attack].sort_values("alpha")
            line, = ax.plot(r.alpha, r.val_acc, marker="o", ms=3, label=attack)
            ax.fill_between(r.alpha, r.val_acc_lo, r.val_acc_hi, color=line.get_color(), alpha=0.15, lw=0)
        c = certified[certified.model == model] if len(certified) else certified
        if len(c):
            ax.plot(c.alpha, c.certified_acc, "k--", lw=1.2, label="certified (DPA)")
        ax.set_title(model)
        ax.set_xlabel("flipped fraction alpha")
        ax.set_ylim(0, 1.02)
    axes[0][0].set_ylabel("validation accuracy")
    axes[0][-1].legend(fontsize=7)
    if title:
        fig.suptitle(f"{title}: against the strongest attacker")
    return _save(fig, path)
