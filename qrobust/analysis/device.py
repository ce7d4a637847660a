"""Does resilience survive a device? The QNN's quantities at each device setting (issue 34).

A device study is a sweep whose QNN is trained and read at several (shots, noise) settings (``--shots``,
``--noise``: each pair its own program, ``qrobust.experiments.sweep_grid``), the MLP beside it exact. Each setting
is read as if it were the only QNN of the sweep:

- ``device_table``: per setting, the quantities of the "Is it quantum?" table (``qrobust.analysis.controls.
  quantities``: clean validation accuracy, memorisation at alpha 0.3, the plateau's fall, the critical point), each
  with its 95% interval (bootstrap over seeds; the critical point's own interval), and the exact MLP's row;
- ``setting_results``: the results of one setting with its QNN as "qnn", which the paper's QNN rules
  (``qrobust.analysis.claims.device_claims``) then judge unchanged, so that "does the claim survive N shots?" is
  answered by the very rule that judged it exactly;
- ``variance_table``: per finite-shots setting, how much noisier the "gaussian" shot gradient a study trained
  with is than the device's own ("shift"), from ``qrobust.experiments.device.gradient_variance``'s rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def settings(results: pd.DataFrame) -> list[tuple[float, str]]:
    """The QNN's (shots, noise) settings in ``results`` (shots inf where exact), exact first, then by shots
    falling and noise."""
    if "model" not in results or not (results.model == "qnn").any():
        return []
    qnn = results[results.model == "qnn"]
    shots = qnn.shots.astype(float) if "shots" in qnn else pd.Series(np.inf, index=qnn.index)
    noise = qnn.noise.astype(str) if "noise" in qnn else pd.Series("none", index=qnn.index)
    pairs = set(zip(shots, noise))
    return sorted(pairs, key=lambda p: (p[1] != "none", -p[0], p[1]))


def label(shots: float, noise: str) -> str:
    """A setting as a person reads it: "exact", "1000 shots", "depolarizing:0.01", "1000 shots, depolarizing:0.01"."""
    parts = ([] if not np.isfinite(shots) else [f"{int(shots)} shots"]) + ([] if noise == "none" else [noise])
    return ", ".join(parts) or "exact"


def _is(frame: pd.DataFrame, shots: float, noise: str) -> pd.Series:
    s = frame.shots.astype(float) if "shots" in frame else pd.Series(np.inf, index=frame.index)
    n = frame.noise.astype(str) if "noise" in frame else pd.Series("none", index=frame.index)
    return (frame.model == "qnn") & (s == shots) & (n == noise)


def setting_results(results: pd.DataFrame, shots: float, noise: str) -> pd.DataFrame:
    """The rows of one setting's QNN and of every other model: a sweep in which that setting is the QNN."""
    keep = _is(results, shots, noise) | (results.model != "qnn")
    return results[keep]


def setting_critical(critical: pd.DataFrame | None, shots: float, noise: str) -> pd.DataFrame | None:
    """The critical points of one setting's QNN and of every other model (None stays None)."""
    if critical is None or not len(critical):
        return critical
    return critical[_is(critical, shots, noise) | (critical.model != "qnn")]


def device_table(results: pd.DataFrame, critical: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per QNN setting (and the other models once, exact): model, shots, noise, setting (its label), n_seeds,
    memorization_alpha, clean_val, memorization, plateau, alpha_c, each with _lo and _hi, transition, reason.
    ``critical``: the sweep's critical points (computed if None)."""
    from qrobust.analysis.controls import quantities
    from qrobust.analysis.critical import critical_points

    flip = results[results.corruption == "flip"]
    if critical is None:
        critical = critical_points(flip)
    rows, others = [], None
    for shots, noise in settings(flip):
        table = quantities(setting_results(flip, shots, noise), setting_critical(critical, shots, noise))
        table.attrs = {}  # its paired resamples: per setting, not one table's
        rows.append(table[table.model == "qnn"].assign(shots=shots, noise=noise, setting=label(shots, noise)))
        others = table[table.model != "qnn"] if others is None else others
    if others is not None and len(others):
        rows.append(others.assign(shots=np.inf, noise="none", setting="exact"))
    if not rows:
        return pd.DataFrame(columns=["model", "shots", "noise", "setting"])
    out = pd.concat(rows, ignore_index=True)
    first = ["model", "shots", "noise", "setting"]
    return out[first + [c for c in out.columns if c not in first]]


def variance_table(rows: pd.DataFrame) -> pd.DataFrame:
    """Per (shots, noise) setting of ``gradient_variance``'s rows: setting, n_seeds, the variance ratio of the
    device's gradient to the "gaussian" one at the initial and the trained parameters and the device shots the
    "gaussian" gradient stands for, each the mean over the setting's replicas (all alphas) with its 95% interval
    (bootstrap over seeds, ``qrobust.analysis.intervals.Boot``), and the least ratio of any parameter of any
    trained replica."""
    from qrobust.analysis.intervals import Boot, widened

    out = []
    for (shots, noise), frame in rows.groupby(["shots", "noise"], sort=False) if len(rows) else ():
        boot = Boot(frame.seed)
        row = dict(shots=shots, noise=noise, setting=label(float(shots), noise), n_seeds=boot.runs)
        for name in ("variance_ratio_init", "variance_ratio", "device_shots"):
            values = boot.means(frame.assign(all=0), ["all"], name).to_numpy()[0]
            row[name], (row[f"{name}_lo"], row[f"{name}_hi"]) = values[0], widened(values, values[0])
        out.append(dict(row, variance_ratio_min=frame.variance_ratio_min.min()))
    return pd.DataFrame(out).sort_values("shots", ascending=False, ignore_index=True) if out else pd.DataFrame()
