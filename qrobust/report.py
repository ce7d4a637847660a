"""The reporting layer: a run directory's figures and the table a command prints, for the command line and
notebooks alike.

Studies (``qrobust.experiments``) compute, and store their tables in their run directory; they draw nothing.
This layer reads a run directory back (``qrobust.results.load_results``) and draws its figures with
matplotlib's object API (``qrobust.plots``: it never switches the user's backend or touches pyplot's
figures). Each study's entry of ``qrobust.experiments.registry`` names its functions here: ``*_figures(run)``
draws, ``*_summary(run)`` is the table ``qrobust COMMAND`` prints. ``draw(path)`` dispatches by study.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qrobust.results import RunResults, load_results


def draw(path: str | Path, **options) -> list[Path]:
    """Draw the figures of the run in ``path`` into it (its study's ``figures``); returns their paths. For a
    sweep, ``critical=`` (``qrobust.analysis.critical.critical_points``; by default the stored
    critical_points.csv, if any) marks the critical points."""
    from qrobust.experiments.registry import study

    run = load_results(path)
    figures = study(run.study).get("figures")
    return figures(run, **options) if figures is not None else []


def summary(run: RunResults) -> pd.DataFrame | None:
    """The table ``qrobust COMMAND`` prints after the study of ``run`` (its study's ``summary``)."""
    from qrobust.experiments.registry import study

    table = study(run.study).get("summary")
    return table(run) if table is not None else None


def sweep_figures(run: RunResults, *, critical: pd.DataFrame | None = None) -> list[Path]:
    from qrobust import plots

    s, out = run.settings, run.path
    critical = run.tables.get("critical_points") if critical is None else critical
    figures = [plots.plot_noise_response(run["results"], out / "noise_response.png",
                                         title=str(s.get("dataset", out.name)), critical=critical)]
    if "arch" in run["results"] and run["results"].groupby("model").arch.nunique().max() > 1:
        figures.append(plots.plot_capacity(run["results"], out / "capacity.png", critical=critical))
    return figures


def gauge_figures(run: RunResults) -> list[Path]:
    """The gauge plots (one per corruption), then each gauge's sweep figures drawn in its directory; the paper's
    gauge's are returned with the gauge plots."""
    from qrobust import plots
    from qrobust.data.gauge import DEFAULT_GAUGE

    summary = run["gauge"]
    figures = [plots.plot_gauge(summary, run.path / f"gauge{'' if c == 'flip' else '_' + c}.png", corruption=c)
               for c in dict.fromkeys(summary.corruption)]
    for g, sweep in run.runs.items():
        drawn = sweep_figures(sweep)
        figures += drawn if g == DEFAULT_GAUGE else []
    return figures


def unlearning_figures(run: RunResults) -> list[Path]:
    from qrobust import plots

    s, out = run.settings, run.path
    figures = [plots.plot_unlearning(run["results"], run["final"], out / "unlearning.png",
                                     title=f"{s.get('dataset')}, alpha={s.get('alpha')}")]
    if len(s.get("kl_ws", ())) > 1 or len(s.get("fo_ws", ())) > 1:
        figures.append(plots.plot_weight_heatmaps(run["final"], out / "weights_heatmap.png"))
    if "known_fraction" in run["final"] and run["final"].known_fraction.nunique() > 1:
        figures.append(plots.plot_corrective(run["final"], out / "corrective.png",
                                             title=f"{s.get('dataset')}, alpha={s.get('alpha')}"))
    if "scorecard" in run.tables:
        figures.append(plots.plot_scorecard(run["scorecard"], out / "scorecard.png",
                                            title=f"{s.get('dataset')}, alpha={s.get('alpha')}, "
                                                  f"{s.get('shadows')} shadows"))
    return figures


def landscape_figures(run: RunResults) -> list[Path]:
    from qrobust import plots

    return [plots.plot_landscape(run["landscape"], run.path / "landscape.png")]


def detection_figures(run: RunResults) -> list[Path]:
    from qrobust import plots

    return [plots.plot_detection(run["detection"], run.path / "detection.png")]


def sweep_summary(run: RunResults) -> pd.DataFrame:
    cols = ["model", "arch", "corruption", "alpha", "train_acc_mean", "val_acc_mean", "n_seeds"]
    table = run["summary"]
    several = "arch" in table and table.groupby("model").arch.nunique().max() > 1
    return table[[c for c in cols if c in table and (c != "arch" or several)]]


def _with_interval(value: float, lo: float, hi: float) -> str:
    from qrobust.analysis.intervals import bounds

    if pd.isna(value):
        return "-"
    if pd.notna(lo) and pd.notna(hi) and f"{lo:.3f}" == f"{hi:.3f}":
        return bounds(lo, hi)
    return f"{value:.3f} " + (bounds(lo, hi) if pd.notna(lo) and pd.notna(hi) else "(no interval)")


def controls_summary(run: RunResults) -> pd.DataFrame:
    """The controls study's table, one row per model: each quantity with its 95% interval
    (``qrobust.analysis.controls``)."""
    table = run["controls"]
    return _quantities_shown(table, {"model": table.model, "seeds": table.n_seeds})


def _quantities_shown(table: pd.DataFrame, first: dict) -> pd.DataFrame:
    """The columns ``first``, then each quantity of an "Is it quantum?" table (``qrobust.analysis.controls.
    quantities``) with its 95% interval, as text."""
    out = pd.DataFrame(first)
    at = f"{table.memorization_alpha.iloc[0]:g}" if len(table) else "0.3"
    for name, title in (("clean_val", "clean val acc"), ("memorization", f"memorisation at {at}"),
                        ("plateau", "plateau fall"), ("alpha_c", "alpha_c")):
        out[title] = [_with_interval(*r) for r in table[[name, f"{name}_lo", f"{name}_hi"]].itertuples(index=False)]
    return out


def controls_tables(run: RunResults) -> list[tuple[str, pd.DataFrame]]:
    """What the reproduction's report shows of a controls run besides its verdicts: the per-model table and,
    per claim, whether it is QNN-specific."""
    quantum = run["quantum"][["claim", "margin", "verdict", "controls"]]
    return [("Is it quantum? Each model's quantities (95% intervals, bootstrap over seeds)", controls_summary(run)),
            ("Is it quantum? Each claim: QNN-specific only if the QNN differs from every control by the margin",
             quantum)]


def device_summary(run: RunResults) -> pd.DataFrame:
    """The device study's table, one row per QNN setting and one for the exact MLP: each quantity with its 95%
    interval (``qrobust.analysis.device``)."""
    table = run["device"]
    return _quantities_shown(table, {"model": table.model, "setting": table.setting, "seeds": table.n_seeds})


def device_tables(run: RunResults) -> list[tuple[str, pd.DataFrame]]:
    """What the reproduction's report shows of a device run besides its verdicts: the per-setting table."""
    shown = [("A device: the QNN's quantities at each setting (95% intervals, bootstrap over seeds)",
              device_summary(run))]
    if "device_exact" in run.tables:
        exact = run["device_exact"]
        shown.append(("A device: the same QNNs read exactly (each trained at its setting, its outputs then taken "
                      "without shots or gate noise)",
                      _quantities_shown(exact, {"model": exact.model, "trained at": exact.setting,
                                                "seeds": exact.n_seeds})))
    if "gradient_variance" in run.tables and len(run["gradient_variance"]):
        shown.append(("A device: the variance of its parameter-shift gradient over the 'gaussian' bound's (95% "
                      "intervals, bootstrap over seeds)", gradient_variance_shown(run["gradient_variance"])))
    return shown


def gradient_variance_shown(rows: pd.DataFrame) -> pd.DataFrame:
    """``qrobust.analysis.device.variance_table`` as text: per finite-shots setting, the variance ratio of the
    device's gradient ("shift") to its bound ("gaussian") at the start and the end of training, and the device
    shots the bound at the setting's shots stands for."""
    from qrobust.analysis.device import variance_table

    table = variance_table(rows)
    out = pd.DataFrame({"setting": table.setting, "seeds": table.n_seeds})
    for name, title, digits in (("variance_ratio_init", "ratio at initialisation", 4),
                                ("variance_ratio", "ratio trained", 4),
                                ("device_shots", "device shots it stands for", 1)):
        out[title] = [f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if pd.notna(lo) else f"{v:.{digits}f}"
                      for v, lo, hi in table[[name, f"{name}_lo", f"{name}_hi"]].itertuples(index=False)]
    out["least ratio of a parameter"] = table.variance_ratio_min.round(3)
    return out


def device_figures(run: RunResults) -> list[Path]:
    from qrobust import plots

    return [plots.plot_device(run["device"], run.path / "device.png", title=str(run.settings.get("dataset", "")))]


def unlearning_tables(run: RunResults) -> list[tuple[str, pd.DataFrame]]:
    """What the reproduction's report shows of an unlearning run besides its verdicts: where its shadows covered
    classical controls, the forgetting per example of every model (U-LiRA after fine-tuning, the teacher's own
    leak, the share removed) and, per claim, whether it is QNN-specific (``qrobust.analysis.controls``)."""
    from qrobust.analysis.controls import ULIRA_METHOD, unlearning_specificity, unlearning_table

    if "scorecard" not in run.tables:
        return []
    table = unlearning_table(run["scorecard"], run["teachers"] if "teachers" in run.tables else None)
    if not len(table) or not table.control.any():
        return []
    shown = pd.DataFrame({"model": table.model, "shadows": table.n_shadows})
    for name, title in (("auc", f"U-LiRA AUC after {ULIRA_METHOD}"), ("auc_none", "teacher's AUC (none)"),
                        ("removed", "share removed")):
        shown[title] = [_with_interval(*r) for r in table[[name, f"{name}_lo", f"{name}_hi"]].itertuples(index=False)]
    shown["clean teacher's val acc"] = table.clean_val.round(3)
    shown["diverged"] = table.diverged
    return [("Is it quantum? Forgetting per example of each model (95% intervals, bootstrap over shadows)", shown),
            ("Is it quantum? Unlearning: QNN-specific only if the QNN differs from every control by the margin",
             unlearning_specificity(table)[["claim", "margin", "verdict", "controls"]])]


def attack_summary(run: RunResults) -> pd.DataFrame:
    """The attack study's damage curves: per model, attack and alpha, the validation accuracy with its interval."""
    table = run["attack"]
    out = table[["model", "corruption", "alpha", "n_corrupted", "n_seeds"]].copy()
    values = table[["val_acc", "val_acc_lo", "val_acc_hi"]].itertuples(index=False)
    out["val acc"] = [_with_interval(*r) for r in values]
    return out


def attack_tables(run: RunResults) -> list[tuple[str, pd.DataFrame]]:
    """What the reproduction's report shows of an attack run: the damage curves, the certified accuracy of the
    partition ensembles (trained on clean labels, and on each attack's flips where the run trained them) and of
    randomized smoothing, and each attack's measured cost."""
    from qrobust.analysis.attack import certified_summary

    certified = certified_summary(run["certified"])
    certified["certified acc"] = [_with_interval(*r) for r in
                                  certified[["certified_acc", "lo", "hi"]].itertuples(index=False)]
    under_attack = [("Deep partition aggregation under each attack: the ensemble trained on the attacked labels "
                     "beside the clean ensemble's certified accuracy at the attack's flips, and the full model",
                     attacked_table(run))] if "dpa_attacked" in run.tables and len(run["dpa_attacked"]) else []
    return [("Against the strongest attacker: validation accuracy per attack (95% intervals over seeds)",
             attack_summary(run)),
            ("Deep partition aggregation: certified accuracy against label flips",
             certified[["model", "flips", "alpha", "certified acc", "n_seeds"]]), *under_attack,
            ("Randomized smoothing over labels (least-squares classifiers only)", run["smoothing"]),
            ("Cost of each attack and certificate (wall seconds, measured)", run["cost"])]


def attacked_table(run: RunResults) -> pd.DataFrame:
    """The partition ensembles under attack (``analysis.attack.attacked_summary`` of dpa_attacked.csv), with the
    full model's validation accuracy under the same attack (attack.csv) beside."""
    from qrobust.analysis.attack import attacked_summary

    table = attacked_summary(run["dpa_attacked"])
    full = run["attack"][["model", "corruption", "alpha", "val_acc"]].rename(columns={"val_acc": "full model acc"})
    table = table.merge(full, on=["model", "corruption", "alpha"], how="left")
    table["ensemble acc under attack"] = [_with_interval(*r) for r in
                                          table[["attacked_acc", "lo", "hi"]].itertuples(index=False)]
    return table[["model", "corruption", "alpha", "flips", "ensemble acc under attack", "certified_acc", "clean_acc",
                  "full model acc", "changed_certified", "n_seeds"]].rename(
        columns={"certified_acc": "certified acc at flips", "clean_acc": "ensemble acc (clean)",
                 "changed_certified": "certified points changed"})


def attack_figures(run: RunResults) -> list[Path]:
    from qrobust import plots
    from qrobust.analysis.attack import certified_summary

    return [plots.plot_attacks(run["attack"], certified_summary(run["certified"]), run.path / "attacks.png",
                               title=str(run.settings.get("dataset", run.path.name)))]


def gauge_summary(run: RunResults) -> pd.DataFrame:
    return run["gauge"][["gauge", "model", "corruption", "alpha", "train_acc_mean", "val_acc_mean", "n_seeds"]]


def unlearning_summary(run: RunResults) -> pd.DataFrame:
    if "scorecard" in run.tables:
        cols = ["model", "method", "val_acc", "forget_acc_clean", "auc", "tpr_at_1pct_fpr", "forgetting_quality",
                "kl_forget_mean"]
        return run["scorecard"][[c for c in cols if c in run["scorecard"]]]
    cols = ["model", "method", "kl_w", "fo_w", "val_acc_mean", "forget_acc_clean_mean", "n_seeds"]
    return run["recovery"][[c for c in cols if c in run["recovery"]]]


def landscape_summary(run: RunResults) -> pd.DataFrame:
    table = run["landscape"]
    return table[table.alpha > 0].groupby(["model", "alpha"]).ratio.agg(["mean", "std"]).reset_index()


def detection_summary(run: RunResults) -> pd.DataFrame:
    cols = ["auroc", "auprc", "precision_at_k", "precision", "recall"]
    return run["detection"].groupby(["detector", "alpha"])[cols].mean().reset_index()
