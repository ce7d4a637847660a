"""The critical point of the noise response: where memorisation crosses 1/2, in the realised corrupted
fraction, with an interval that is honest about the grid and the seeds.

Data. Per replica (seed) and corruption ratio, at the final epoch, diverged replicas left out: the realised
fraction x = n_corrupted / n_train (not the nominal alpha: 40 of 82 samples at alpha = 0.5 is x = 0.488), and
the memorised count k = memorization * n_corrupted of the n_corrupted corrupted samples. n_train: the argument,
else the table's ``n_train`` column, else inferred (``infer_n_train``: the N for which ``corruption_count`` gives
every row's n_corrupted, and train_acc * N is an integer). Replicas with no corrupted samples (alpha = 0) or a
non-finite value are left out: a NaN is never read as a number.

Estimand. alpha_c = the realised fraction at which the expected memorisation, averaged over seeds (the
training randomness), crosses 1/2.

Model. Each corrupted sample is memorised with probability
    M(x) = lo + (hi - lo) sigmoid((x - theta) / w + kappa),   kappa = logit((1/2 - lo) / (hi - lo)),
so M(theta) = 1/2 (rising, 0 <= lo < 1/2 < hi <= 1, w > 0 down to 1e-4 of the smallest gap between measured
fractions: a step harder than the grid resolves). The pooled likelihood is binomial: k ~ Binomial(n, M(x)) for
every replica, summed over seeds (a working-independence likelihood; the seeds' correlation is handled by the
interval's second part).

Estimate and interval (level 95 % by default):
  (a) the profile likelihood interval of theta: {theta : D(theta) - D_min <= chi2_1(level)}, D(theta) the
      binomial deviance minimised over w with lo, hi at their maximum-likelihood values, on a grid in theta
      dense in every gap between measured fractions. A step harder than the grid leaves its position anywhere
      in its gap equally likely: the profile is flat there and (a) covers the whole gap (a hard step between
      0.390 and 0.488 gives about [0.390, 0.488], never a point).
  alpha_c_memorization = the middle of (a).
  (b) seeds: the leave-one-seed-out jackknife of that estimate, se = sqrt((S-1)/S sum_s (est_-s - mean)^2),
      and alpha_c +- t_{S-1}(level) se (S seeds). This carries the seed-to-seed variation, which the pooled
      binomial likelihood does not see.
  (c) the shape-free bracket [A, B]: B the smallest measured fraction at which the seed-mean memorisation is
      significantly above 1/2, A the largest below B at which it is significantly below (one-sided tests at
      (1 - level) / 2 each, t on S - 1 degrees of freedom with the standard error over seeds, floored at the
      binomial one at 1/2). Any monotone curve crosses in (A, B): this part assumes no logistic, and so never
      places the crossing inside a gap between measured fractions more precisely than the gap itself.
  The interval [alpha_c_memorization_lo, _hi] is the hull of (a), (b) and (c). It is never a point for finite
  data (at least one gap between measured fractions wide). Its coverage is checked by simulation
  (tests/test_critical.py: steps at known positions, from harder than the grid to soft, per-sample binomial
  memorisation with seed effects on the step's position and on its logit, 3 to 8 seeds, the 0.1 grid refined
  around 0.5): conservative, 99.7 % of 2000 simulated data sets covered (98 % of those whose step lies in the
  refined part); (a) and (b) alone, the logistic's own interval, 96.5 %. Each part is
  in the table (_profile_lo/_hi, _se_seeds, _bracket_lo/_hi): the logistic's placement inside a gap is there, an
  assumption, not the interval. To narrow the interval, refine the grid (``qrobust.corruption.refined_alphas``:
  one flipped sample per class per step near 0.5, the finest the data allow).

Undefined (alpha_c, its lo and hi NaN; ``transition`` False; ``reason`` says why):
  - too few seeds: fewer than ``MIN_SEEDS`` = 3 seeds with finite memorisation (the seed spread in (b) needs 2
    degrees of freedom), or fewer than 4 measured fractions;
  - no transition: the pooled memorisation does not cross 1/2 in the measured range (above 1/2 at every measured
    fraction, as a model that memorises everything, or below at every one); or the crossing is not located
    inside the measured range (the interval reaches past it, or no measured fraction is significantly above,
    or none under that significantly below 1/2); or M crosses 1/2 more than once (significantly below again
    after above); or the step is not sharp: its 10-90 % width 2 ln 9 w exceeds half the measured range (a
    straight line through 1/2 is no step);
  - not robust over seeds: leaving out one seed, the remaining seeds' memorisation no longer crosses 1/2 in
    the range.
The width (``width_memorization``, w) and the plateaus (m_lo, m_hi) are reported where a fit exists.

Validation accuracy. alpha_c_validation is the midpoint theta of a falling least-squares step
V(x) = v_lo + (v_hi - v_lo) sigmoid((x - theta) / w) in the same realised fraction (where V falls fastest), its
interval the hull of the profile F(1, n - 4) interval (residual variance floored at the values' quantisation)
and the same seed jackknife (no bracket: a midpoint has no shape-free meaning); NaN under the same rules
(``reason_validation``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import curve_fit

from qrobust.analysis import stepfit
from qrobust.analysis.summary import ARCH, final_epoch
from qrobust.errors import ConfigError

MIN_SEEDS = stepfit.MIN_SEEDS


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


def _realised(final: pd.DataFrame, n_train: int | None) -> tuple[pd.DataFrame | None, str]:
    """``final`` with x, the realised corrupted fraction, and the count n (n_corrupted, or from the count rule
    where the table has none); None and why where the fraction cannot be known."""
    from qrobust.corruption import POISONERS, corruption_count

    if "n_corrupted" in final:
        counts = pd.to_numeric(final.n_corrupted, errors="coerce")
    elif n_train is not None:
        counts = pd.Series([corruption_count(c, a, n_train) if np.isfinite(a) and c in POISONERS else np.nan
                            for c, a in zip(final.corruption, pd.to_numeric(final.alpha, errors="coerce"))],
                           index=final.index, dtype=float)
    else:
        return None, "the realised fraction is unknown (too few columns: no n_corrupted, and n_train not known)"
    if n_train is None:
        return None, ("the realised fraction is unknown (too few columns: n_train not given, and no training-set "
                      "size gives the table's n_corrupted)")
    if (counts > n_train).any():
        raise ConfigError(f"n_train = {n_train} is smaller than the table's n_corrupted (up to {int(counts.max())})")
    return final.assign(n=counts, x=counts / n_train), ""


def infer_n_train(results: pd.DataFrame) -> tuple[int | None, str]:
    """The training-set size of a sweep's table, and how it was found: its ``n_train`` column; else the N for
    which ``corruption_count(corruption, alpha, N)`` is every row's n_corrupted, narrowed (where several fit) to
    those N for which every train_acc (then every train_acc_clean) is a whole number of samples out of N, where
    some N makes it so (an ambiguity that remains: the middle candidate, said so). None where nothing fits."""
    from qrobust.corruption import POISONERS, corruption_count

    if "n_train" in results:
        values = pd.to_numeric(results.n_train, errors="coerce").dropna().unique()
        if len(values) == 1 and values[0] > 0 and float(values[0]).is_integer():
            return int(values[0]), "the table's n_train column"
    if "n_corrupted" not in results:
        return None, "not known (no n_corrupted column)"
    rows = results[["corruption", "alpha", "n_corrupted"]].copy()
    rows["alpha"] = pd.to_numeric(rows.alpha, errors="coerce")
    rows["n_corrupted"] = pd.to_numeric(rows.n_corrupted, errors="coerce")
    rows = rows[rows.corruption.isin(list(POISONERS)) & rows.alpha.between(0, 1) & rows.n_corrupted.notna()]
    rows = rows.drop_duplicates()
    informative = rows[rows.alpha > 0]
    if informative.empty:
        return None, "not known (no corrupted replicas to infer it from)"
    low, high = 1, None
    for a, c in zip(informative.alpha, informative.n_corrupted):
        low = max(low, int(c), math.floor((c - 1) / a) - 1)
        high = math.ceil((c + 2) / a) + 1 if high is None else min(high, math.ceil((c + 2) / a) + 1)
    candidates = [n for n in range(low, (high or low) + 1)
                  if all(corruption_count(k, a, n) == c for k, a, c in rows.itertuples(index=False))]
    for column in ("train_acc", "train_acc_clean"):  # a column no candidate makes whole is not evidence
        values = pd.to_numeric(results[column], errors="coerce") if column in results else pd.Series(dtype=float)
        values = np.unique(values[np.isfinite(values)].to_numpy(float))
        whole = [n for n in candidates if np.all(np.abs(values * n - np.round(values * n)) < 1e-3)]
        if len(values) and whole:
            candidates = whole
    if not candidates:
        return None, "not known (no training-set size gives the table's n_corrupted)"
    if len(candidates) == 1:
        return candidates[0], "inferred from n_corrupted and train_acc"
    return candidates[len(candidates) // 2], f"inferred, ambiguous: any of {candidates} fits; took the middle"


_FIELDS = {"value": "", "lo": "_lo", "hi": "_hi", "lr_lo": "_profile_lo", "lr_hi": "_profile_hi",
           "se_seeds": "_se_seeds", "bracket_lo": "_bracket_lo", "bracket_hi": "_bracket_hi"}


def _columns(result: dict, name: str, curve: str, plateaus: tuple[str, str]) -> dict:
    """One curve's result (``stepfit.critical_point``) as the table's columns."""
    out = {f"alpha_c_{name}{suffix}": result[field] for field, suffix in _FIELDS.items()
           if not (curve == "V" and field.startswith("bracket"))}
    out.update({f"width_{name}": result["width"], plateaus[0]: result["plateau_lo"],
                plateaus[1]: result["plateau_hi"]})
    return out


METHOD = ("binomial logistic step in the realised fraction; interval: hull of its profile-likelihood interval, "
          "+- t(S-1) leave-one-seed-out jackknife, and the shape-free bracket (seed-level tests at the measured "
          "fractions)")


def _gap(xs: np.ndarray, value: float) -> tuple[float, float]:
    """The measured fractions on either side of ``value`` (NaN past the ends)."""
    below, above = xs[xs <= value], xs[xs > value]
    return (float(below.max()) if len(below) else np.nan, float(above.min()) if len(above) else np.nan)


def undecided(reason: str) -> bool:
    """Whether ``reason`` (a row's ``reason``) leaves the critical point undefined for the data's size (too few
    seeds, a crossing one seed decides), not for the curve's shape (no crossing, not sharp)."""
    reason = str(reason).lower()
    return "seed" in reason or "too few" in reason


def critical_points(results: pd.DataFrame, *, n_train: int | None = None, level: float = 0.95) -> pd.DataFrame:
    """Per model x architecture x corruption x learning rate: alpha_c from memorisation (M) and from validation
    accuracy (V), in the realised corrupted fraction, with intervals and the no-transition flag (the module
    docstring defines them).

    ``results`` is a sweep's table; its final epoch is used, diverged replicas left out. ``n_train``: the
    training-set size (default: the table's n_train column, else inferred from n_corrupted and train_acc:
    ``infer_n_train``). The interval is deterministic (no resampling).

    Columns: the group's keys; n_seeds (seeds with finite memorisation); n_train and n_train_source; n_fractions
    and alpha_realised (the measured realised fractions of M, ";"-joined); method; alpha_c_memorization with
    _lo, _hi (the interval), _profile_lo, _profile_hi (its likelihood part), _se_seeds (its jackknife part),
    _bracket_lo, _bracket_hi (its shape-free part); gap_lo, gap_hi (the measured fractions either side of
    alpha_c); width_memorization (the logistic scale w), m_lo, m_hi (the plateaus); transition, reason; the
    same for V (alpha_c_validation, _lo, _hi, _profile_lo, _profile_hi, _se_seeds, width_validation, v_lo, v_hi,
    reason_validation).
    """
    final = final_epoch(results)
    final = final[~final.diverged.astype(bool)]
    source = "argument"
    if n_train is None:
        n_train, source = infer_n_train(results)
    frame, unknown = _realised(final, n_train)
    rows = []
    keys = ["model", *ARCH, "corruption", "learning_rate"]
    for key, part in final.groupby(keys, sort=False):
        row = dict(zip(keys, key))
        row.update(n_train=n_train, n_train_source=source, method=METHOD)
        if frame is None:
            m = stepfit.undefined(unknown)
            row.update(n_seeds=int(part.seed.nunique()), n_fractions=0, alpha_realised="",
                       **_columns(m, "memorization", "M", ("m_lo", "m_hi")),
                       **_columns(m, "validation", "V", ("v_lo", "v_hi")), gap_lo=np.nan, gap_hi=np.nan,
                       transition=False, reason=unknown, reason_validation=unknown)
            rows.append(row)
            continue
        part = frame.loc[part.index]
        memo = pd.to_numeric(part.memorization, errors="coerce")
        has_m = part[(part.n > 0) & np.isfinite(memo) & np.isfinite(part.x)]
        xs = np.unique(has_m.x.to_numpy(float))
        m = stepfit.critical_point(has_m.x, has_m.seed, k=memo[has_m.index] * has_m.n, n=has_m.n, level=level)
        val = pd.to_numeric(part.val_acc, errors="coerce")
        v = stepfit.critical_point(part.x, part.seed, value=val, level=level, name="V")
        row.update(n_seeds=int(has_m.seed.nunique()), n_fractions=len(xs),
                   alpha_realised=";".join(f"{x:.4f}" for x in xs))
        row.update(_columns(m, "memorization", "M", ("m_lo", "m_hi")))
        row["gap_lo"], row["gap_hi"] = _gap(xs, m["value"]) if m["found"] else (np.nan, np.nan)
        row.update(transition=bool(m["found"]), reason=m["reason"])
        row.update(_columns(v, "validation", "V", ("v_lo", "v_hi")))
        row["reason_validation"] = v["reason"]
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


def analyze_sweeps(runs) -> tuple[list[pd.DataFrame], pd.DataFrame]:
    """The critical points of each sweep (``runs``: ``qrobust.results.RunResults`` of sweeps, every one read
    before any work: ``qrobust.results.load_sweeps``), each on its training-set size from config.json (else
    inferred from its table), and the finite-size table: all of them with each run's dataset, training-set size
    (``n_train``, the one used) and qubits, and the 10-90% transition width of the memorisation step."""
    for run in runs:
        if run.study not in ("sweep", "controls") or "results" not in run.tables:
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
        s = run.settings
        n_train, source = _n_train(s, None), "config.json"  # the run's own record first, then its table
        if n_train is None and infer_n_train(run["results"])[0] is None:
            n_train, source = _n_train(s, s.get("dataset")), "the dataset's default split"
        table = critical_points(run["results"], n_train=n_train)
        if n_train is not None:
            table["n_train_source"] = source
        critical.append(table)
        meta = s.get("dataset_meta", {})
        rows.append(table.assign(run=str(run.path), dataset=s.get("dataset"),
                                 n_qubits=s.get("n_qubits_data", meta.get("n_spins")),
                                 width_10_90=transition_width(table.width_memorization)))
    return critical, pd.concat(rows, ignore_index=True)
