"""Three-valued judgement of a quantity against a threshold, from a bootstrap over seeds.

A quantity is computed on the data (the point value) and on ``N_BOOT`` resamples of its seeds (``Boot``: seeds
drawn with replacement, all of a seed's rows together, the draws from ``np.random.default_rng(RNG_SEED)``, so the
same table gives the same intervals). A ``Part`` compares it with a threshold: ``judge`` reads "holds" when the
whole percentile interval (at ``LEVEL``, widened to contain the point) is on the holding side, "departs" when it
is wholly on the other side, "indeterminate" when it straddles the threshold, "undefined" when the point is NaN.
``decide`` combines the parts of a rule that must all hold. The reading is ``qrobust.analysis.claims``'s (its
docstring gives the reasons); ``qrobust.analysis.controls`` resamples with the same ``Boot``.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import pandas as pd

N_BOOT = 1000      # bootstrap resamples of the seeds
LEVEL = 0.95       # the interval's coverage
RNG_SEED = 0       # the resamples' generator: the same table gives the same intervals
DEFINED = 0.9      # an interval needs the quantity defined in at least this fraction of the resamples
ONE_RUN = "- (no interval: 1 run)"


class Boot:
    """The bootstrap of a table's seeds: ``idx`` (1 + N_BOOT, n_seeds) seed positions, the first row the data
    itself (the point value), the others drawn with replacement (only the first row with a single seed)."""

    def __init__(self, seeds):
        self.seeds = np.sort(pd.unique(np.asarray(seeds)))
        n = len(self.seeds)
        self.runs = n
        rows = [np.arange(n)[None, :]]
        if n > 1:
            rows.append(np.random.default_rng(RNG_SEED).integers(0, n, size=(N_BOOT, n)))
        self.idx = np.vstack(rows)

    @property
    def size(self) -> int:
        return self.idx.shape[0]

    def means(self, frame: pd.DataFrame, keys: list[str], column: str, seed: str = "seed") -> pd.DataFrame:
        """Index ``keys``, one column per row of ``idx``: the mean of ``column`` over the seeds of each resample
        (a seed's rows first averaged over any other axis; NaN values, e.g. diverged replicas, left out)."""
        per_seed = frame.groupby(keys + [seed])[column].mean().unstack(seed).reindex(columns=self.seeds)
        values = per_seed.to_numpy(float)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a cell no resampled seed has: NaN
            means = np.nanmean(values[:, self.idx], axis=2) if values.size else np.empty((0, self.size))
        return pd.DataFrame(means, index=per_seed.index)

    def constant(self, value: float) -> np.ndarray:
        return np.full(self.size, float(value))


class Part(NamedTuple):
    """One comparison of a rule: ``label``'s point value and interval against ``threshold`` by ``op`` ("<=",
    "<", ">=", ">"; "within": inside the closed range ``threshold``). ``lo``/``hi`` None: no interval (``why``)."""
    label: str
    point: float
    lo: float | None
    hi: float | None
    op: str
    threshold: float | tuple[float, float]
    why: str = ""


def percentiles(samples: np.ndarray) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if len(finite) < DEFINED * len(samples):
        return float("nan"), float("nan")
    q = 100 * (1 - LEVEL) / 2
    return float(np.percentile(finite, q)), float(np.percentile(finite, 100 - q))


def widened(values: np.ndarray, point: float) -> tuple[float, float]:
    """The percentile interval of the resamples (``values[1:]``, ``Boot``'s rows after the point), widened to
    contain ``point``; NaN where there are none or too few are defined."""
    lo, hi = percentiles(np.asarray(values[1:], float)) if len(values) > 1 else (np.nan, np.nan)
    return (min(lo, point), max(hi, point)) if np.isfinite([lo, hi]).all() else (np.nan, np.nan)


def part(label: str, values, op: str, threshold) -> Part:
    """A part from its values over the resamples (``Boot``'s rows: the point first)."""
    values = np.atleast_1d(np.asarray(values, float))
    if len(values) < 2:
        return Part(label, float(values[0]), None, None, op, threshold, "1 run")
    lo, hi = percentiles(values[1:])
    return Part(label, float(values[0]), lo, hi, op, threshold)


def side(value: float, op: str, threshold) -> bool:
    """Whether ``value`` is on the holding side of the threshold."""
    if op == "within":
        return threshold[0] <= value <= threshold[1]
    return {"<=": value <= threshold, "<": value < threshold, ">=": value >= threshold,
            ">": value > threshold}[op]


def judge(p: Part) -> str:
    if not np.isfinite(p.point):
        return "undefined"
    if p.lo is None:  # no interval: the point value decides (marked in the interval string)
        return "holds" if side(p.point, p.op, p.threshold) else "departs"
    if not np.isfinite([p.lo, p.hi]).all():
        return "indeterminate"  # the quantity is undefined in too many resamples to bound it
    lo, hi = min(p.lo, p.point), max(p.hi, p.point)
    if p.op == "within":
        a, b = p.threshold
        return "holds" if a <= lo and hi <= b else "departs" if hi < a or lo > b else "indeterminate"
    holds_lo, holds_hi = side(lo, p.op, p.threshold), side(hi, p.op, p.threshold)
    return "holds" if holds_lo and holds_hi else "departs" if not (holds_lo or holds_hi) else "indeterminate"


def interval_text(parts: list[Part]) -> str:
    if parts and all(p.lo is None and p.why == "1 run" for p in parts):
        return ONE_RUN
    out = []
    for p in parts:
        if p.lo is None:
            out.append(f"{p.label} - (no interval: {p.why})")
        elif not np.isfinite([p.lo, p.hi]).all():
            out.append(f"{p.label} [undefined in over {1 - DEFINED:.0%} of the resamples]")
        else:
            out.append(f"{p.label} {bounds(min(p.lo, p.point), max(p.hi, p.point))}")
    return "; ".join(dict.fromkeys(out))


def bounds(lo: float, hi: float) -> str:
    """"[lo, hi]"; where every run gave the same value (the resamples cannot spread), "VALUE (every run equal)"
    instead of a zero-width interval that would read as certainty."""
    return f"[{lo:.3f}, {hi:.3f}]" if f"{lo:.3f}" != f"{hi:.3f}" else f"{lo:.3f} (every run equal)"


def decide(parts: list[Part]) -> tuple[str, str]:
    """(verdict, interval) of a rule whose parts must all hold (module docstring)."""
    verdicts = [judge(p) for p in parts]
    interval = interval_text(parts)
    if "departs" in verdicts:
        return "departs", interval
    if "undefined" in verdicts:
        return "undefined", interval if any(np.isfinite(p.point) for p in parts) else "-"
    return ("indeterminate" if "indeterminate" in verdicts else "holds"), interval
