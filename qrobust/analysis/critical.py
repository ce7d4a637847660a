"""The critical point of the noise response, with a bootstrap over seeds.

Order parameter: memorisation M(alpha), the fraction of corrupted samples whose
(poisoned) training label the model reproduces; and validation accuracy V(alpha).
Each is fitted by least squares with a logistic step

    f(alpha) = lo + (hi - lo) / (1 + exp(-(alpha - alpha_0) / width))

(M rising, lo <= hi; V falling, lo >= hi, parameters bounded to [0, 1], width in
[0.005, 1]). The critical point from M is where the fitted M crosses 1/2; from V
it is alpha_0, where V falls fastest. Confidence intervals: percentiles of the
same estimate over bootstrap resamples of the seeds (seeds drawn with
replacement, all alphas of a seed kept together, since one seed's runs share
their initialisation and batch order).

No transition is flagged when, in the point fit, M does not cross 1/2 inside
the measured alpha range (e.g. a model that memorises at every alpha), or the
step is not sharp: its 10-90 % width (2 ln 9 width = 4.39 width) exceeds half
the measured alpha range.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

from qrobust.analysis.summary import ARCH, final_epoch


def logistic_step(alpha, lo, hi, alpha_0, width):
    return lo + (hi - lo) / (1.0 + np.exp(-(np.asarray(alpha) - alpha_0) / width))


def fit_step(alpha: np.ndarray, value: np.ndarray, *, rising: bool) -> np.ndarray:
    """Least-squares (lo, hi, alpha_0, width) of ``logistic_step``; NaNs if the fit fails."""
    alpha, value = np.asarray(alpha, float), np.asarray(value, float)
    ok = np.isfinite(value)
    alpha, value = alpha[ok], value[ok]
    if len(np.unique(alpha)) < 4:
        return np.full(4, np.nan)
    lo0, hi0 = (value.min(), value.max()) if rising else (value.max(), value.min())
    mid = alpha[np.argmin(np.abs(value - (lo0 + hi0) / 2))]
    bounds = ([0, 0, alpha.min() - 0.5, 0.005], [1, 1, alpha.max() + 0.5, 1.0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, _ = curve_fit(logistic_step, alpha, value, p0=[lo0, hi0, mid, 0.05], bounds=bounds, maxfev=20000)
    except (RuntimeError, ValueError):
        return np.full(4, np.nan)
    return p


def crossing(params: np.ndarray, level: float = 0.5) -> float:
    """alpha where the fitted step crosses ``level``; NaN if it never does."""
    lo, hi, a0, w = params
    if not np.all(np.isfinite(params)) or not (min(lo, hi) < level < max(lo, hi)):
        return float("nan")
    return float(a0 - w * np.log((hi - lo) / (level - lo) - 1.0))


def _estimates(frame: pd.DataFrame) -> dict:
    m = fit_step(frame.alpha, frame.memorization, rising=True)
    v = fit_step(frame.alpha, frame.val_acc, rising=False)
    return dict(alpha_c_memorization=crossing(m), alpha_c_validation=float(v[2]),
                width_memorization=float(m[3]), width_validation=float(v[3]),
                m_lo=float(m[0]), m_hi=float(m[1]), v_lo=float(v[0]), v_hi=float(v[1]))


def critical_points(results: pd.DataFrame, *, n_boot: int = 200, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Per model x architecture x corruption (x learning rate): alpha_c from M and from V, CIs, and the
    no-transition flag.

    ``results`` is a sweep's table; its final epoch is used, diverged replicas left out.
    """
    final = final_epoch(results)
    final = final[~final.diverged]
    rng = np.random.default_rng(seed)
    rows = []
    keys = ["model", *ARCH, "corruption", "learning_rate"]
    for key, part in final.groupby(keys, sort=False):
        point = _estimates(part)
        seeds = part.seed.unique()
        by_seed = {s: part[part.seed == s] for s in seeds}
        boots = [_estimates(pd.concat([by_seed[s] for s in rng.choice(seeds, len(seeds))])) for _ in range(n_boot)]
        span = part.alpha.max() - part.alpha.min()
        lo_q, hi_q = 100 * (1 - level) / 2, 100 * (1 + level) / 2
        row = dict(zip(keys, key), n_seeds=len(seeds), **point)
        for key in ("alpha_c_memorization", "alpha_c_validation"):
            values = np.array([b[key] for b in boots], float)
            finite = values[np.isfinite(values)]
            row[f"{key}_lo"] = float(np.percentile(finite, lo_q)) if len(finite) else np.nan
            row[f"{key}_hi"] = float(np.percentile(finite, hi_q)) if len(finite) else np.nan
            row[f"{key}_boot_defined"] = len(finite) / n_boot
        ac = point["alpha_c_memorization"]
        sharp = np.isfinite(point["width_memorization"]) and 4.39 * point["width_memorization"] <= span / 2
        inside = np.isfinite(ac) and part.alpha.min() <= ac <= part.alpha.max()
        row["transition"] = bool(inside and sharp)
        row["reason"] = ("" if row["transition"] else
                         "M does not cross 1/2 in the measured range" if not inside else "the step is not sharp")
        rows.append(row)
    return pd.DataFrame(rows)


def transition_width(width: float) -> float:
    """10-90 % width in alpha of a fitted logistic step with scale ``width``."""
    return 2 * np.log(9) * width


def _n_train(settings: dict, dataset: str | None):
    """Training-set size of a sweep; older configs lack ``n_train``: then from its per-class setting or the
    dataset's default split (MNIST 250, XXZ 40 per class)."""
    if settings.get("n_train"):
        return settings["n_train"]
    per_class = settings.get("n_train_per_class") or settings.get("dataset_meta", {}).get("n_train_per_class") \
        or {"mnist": 250, "xxz": 40}.get(dataset)
    return 2 * per_class if per_class else None


def analyze_sweeps(runs, *, n_boot: int = 200) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """The critical points of each sweep (``runs``: ``qrobust.results.RunResults`` of sweeps, every one read
    before any work: ``qrobust.results.load_sweeps``), and the finite-size table: all of them with each run's
    dataset, training-set size and qubits, and the 10-90% transition width of the memorisation step."""
    from qrobust.errors import ConfigError

    for run in runs:
        if run.study != "sweep" or "results" not in run.tables:
            raise ConfigError(f"{run.path} is not a sweep's directory (no results.csv of a sweep)")
        missing = {"model", "corruption", "alpha", "seed", "epoch", "memorization", "train_acc",
                   "train_acc_clean", "val_acc", "diverged"} - set(run["results"])
        if missing:
            raise ConfigError(f"{run.path / 'results.csv'} is not a sweep's table: it lacks {sorted(missing)}")
        if run["results"].empty:
            raise ConfigError(f"{run.path / 'results.csv'} holds no rows")
        for column in ("alpha", "seed", "epoch", "memorization", "train_acc", "train_acc_clean", "val_acc"):
            values = run["results"][column]
            numbers = pd.to_numeric(values, errors="coerce")
            bad = numbers.isna() & values.notna()
            if bad.any():
                raise ConfigError(f"{run.path / 'results.csv'}: column {column} holds {values[bad].iloc[0]!r}, not a "
                                  "number: the table is damaged")
        finite = run["results"].loc[~run["results"].diverged.astype(bool)]
        if finite.empty:
            raise ConfigError(f"every replica in {run.path / 'results.csv'} diverged: there is no curve to "
                              "find a critical point on")
    critical, rows = [], []
    for run in runs:
        table = critical_points(run["results"], n_boot=n_boot)
        critical.append(table)
        s = run.settings
        meta = s.get("dataset_meta", {})
        rows.append(table.assign(run=str(run.path), dataset=s.get("dataset"), n_train=_n_train(s, s.get("dataset")),
                                 n_qubits=s.get("n_qubits_data", meta.get("n_spins")),
                                 width_10_90=transition_width(table.width_memorization)))
    return critical, pd.concat(rows, ignore_index=True)
