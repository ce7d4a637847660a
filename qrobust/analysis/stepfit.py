"""The step fit behind a critical point (``qrobust.analysis.critical`` states the estimator; this module
computes it).

``critical_point(x, seed, k=..., n=...)``: memorisation, k of n corrupted samples memorised per replica
(binomial); ``critical_point(x, seed, value=...)``: validation accuracy (least squares). ``x`` is the realised
corrupted fraction of each replica, ``seed`` its seed. Every definition (the curve, the profile, the bracket,
the interval, the rules that leave it NaN) is in ``qrobust.analysis.critical``'s docstring; the constants are
here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import optimize, special, stats

MIN_SEEDS = 3  # fewer seeds: no critical point (the seed-level spread would have < 2 degrees of freedom)
N_SUB = 24  # profile-grid points per gap between neighbouring measured fractions
N_W = 30  # widths on the profile grid, log-spaced from W_MIN_GAP of the smallest gap to the measured range
W_MIN_GAP = 1e-4
SHARP = 0.5  # a step is sharp when its 10-90 % width (2 ln 9 w) is at most SHARP times the measured range
_EPS = 1e-6


class Profile(NamedTuple):
    """One pooled fit: the profile of the fit criterion over the step position theta, and what it gives."""

    point: float  # the middle of the profile interval
    lr: tuple[float, float]  # the profile (likelihood-ratio, or F) interval
    width: float  # the logistic scale w of the best fit
    plateaus: tuple[float, float]  # the curve's value far below and far above the step
    beyond: bool  # the profile interval reaches past the measured range
    resolution: float  # the profile grid's spacing at the point


def step_curve(x, lo, hi, theta, w, level: float | None = 0.5):
    """lo + (hi - lo) sigmoid((x - theta) / w + kappa): kappa such that the curve passes ``level`` at theta
    (``level`` None: kappa = 0, theta is the midpoint, where the curve is steepest)."""
    kappa = 0.0 if level is None else special.logit((level - lo) / (hi - lo))
    return lo + (hi - lo) * special.expit((np.asarray(x, float) - theta) / w + kappa)


def _grids(xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The profile grid in theta and the widths. In each gap between neighbouring measured fractions N_SUB
    points, denser towards both ends (Chebyshev spacing, and points a thousandth of the gap from each end, so
    that a hard step is allowed anywhere in its gap); past each end of the range, N_SUB evenly spaced points
    over a quarter of the range. Widths log-spaced from W_MIN_GAP times the smallest gap to the range."""
    span = xs[-1] - xs[0]
    margin = 0.25 * span
    chebyshev = (1 - np.cos(np.pi * np.linspace(0, 1, N_SUB, endpoint=False))) / 2
    u = np.unique(np.concatenate([chebyshev, [1e-3, 1 - 1e-3]]))
    pieces = [a + (b - a) * u for a, b in zip(xs[:-1], xs[1:])]
    pieces = [np.linspace(xs[0] - margin, xs[0], N_SUB, endpoint=False), *pieces,
              np.linspace(xs[-1], xs[-1] + margin, N_SUB + 1)]
    gap = np.diff(xs).min()
    return np.concatenate(pieces), np.geomspace(W_MIN_GAP * gap, span, N_W)


def _interval(theta: np.ndarray, excess: np.ndarray, threshold: float) -> tuple[float, float, bool]:
    """The hull of {theta: excess <= threshold} on the grid, its ends interpolated linearly in ``excess``
    between the last grid point outside and the first inside; whether it reaches either end of the grid."""
    inside = np.flatnonzero(excess <= threshold)
    i0, i1 = inside[0], inside[-1]
    beyond = i0 == 0 or i1 == len(theta) - 1

    def cut(i_in, i_out):
        e_in, e_out = excess[i_in], excess[i_out]
        f = (threshold - e_in) / (e_out - e_in) if np.isfinite(e_out) and e_out > e_in else 0.0
        return theta[i_in] + f * (theta[i_out] - theta[i_in])

    lo = theta[0] if i0 == 0 else cut(i0, i0 - 1)
    hi = theta[-1] if i1 == len(theta) - 1 else cut(i1, i1 + 1)
    return float(lo), float(hi), bool(beyond)


def _deviance(K, N, p):
    """Binomial deviance of counts K of N (last axis) at probabilities p (broadcast)."""
    F = N - K
    saturated = np.sum(special.xlogy(K, K / N) + special.xlogy(F, F / N))
    p = np.clip(p, 1e-15, 1 - 1e-15)
    return 2 * (saturated - np.sum(K * np.log(p) + F * np.log1p(-p), axis=-1))


def _profile(theta, excess, threshold, w_best, plateaus, xs) -> Profile:
    """``excess``: the profile criterion over its minimum, in units of the dispersion."""
    lo, hi, beyond = _interval(theta, excess, threshold)
    point = 0.5 * (lo + hi)
    i = min(np.searchsorted(theta, point), len(theta) - 1)
    resolution = float(theta[i] - theta[i - 1]) if i > 0 else float(theta[1] - theta[0])
    beyond = beyond or lo < xs[0] or hi > xs[-1]
    return Profile(point, (lo, hi), float(w_best), plateaus, beyond, resolution)


def binomial_profile(x, k, n, level: float = 0.95) -> Profile | str:
    """The pooled binomial fit of a rising step crossing 1/2 (all replicas' counts summed per fraction), and its
    profile likelihood in the crossing theta with the plateaus at their maximum-likelihood values; a string
    (the reason) where the pooled memorisation does not cross 1/2."""
    xs, inv = np.unique(np.asarray(x, float), return_inverse=True)
    K = np.bincount(inv, weights=k).astype(float)
    N = np.bincount(inv, weights=n).astype(float)
    share = K / N
    if not (share > 0.5).any():
        return "M does not cross 1/2 in the measured range (it stays below 1/2 at every measured fraction)"
    if not (share < 0.5).any():
        return "M does not cross 1/2 in the measured range (it stays above 1/2 at every measured fraction)"
    theta, widths = _grids(xs)
    lo0, hi0 = float(np.clip(share[0], _EPS, 0.5 - 1e-3)), float(np.clip(share[-1], 0.5 + 1e-3, 1 - _EPS))

    def grid(lo, hi, theta, widths):
        p = step_curve(xs, lo, hi, theta[:, None, None], widths[None, :, None])
        return _deviance(K, N, p)  # (theta, width)

    coarse = grid(lo0, hi0, theta[::3], widths[::2])
    i, j = np.unravel_index(np.argmin(coarse), coarse.shape)
    start = [lo0, hi0, theta[::3][i], np.log(widths[::2][j])]
    bounds = [(_EPS, 0.5 - _EPS), (0.5 + _EPS, 1 - _EPS), (theta[0], theta[-1]),
              (np.log(widths[0]), np.log(widths[-1]))]

    F = N - K
    saturated = np.sum(special.xlogy(K, K / N) + special.xlogy(F, F / N))

    def criterion(q):  # _deviance(K, N, step_curve(xs, *q[:3], exp(q[3]))), lean: it is called hundreds of times
        lo, hi = q[0], q[1]
        p = lo + (hi - lo) * special.expit((xs - q[2]) / np.exp(q[3]) + np.log((0.5 - lo) / (hi - 0.5)))
        p = np.minimum(np.maximum(p, 1e-15), 1 - 1e-15)
        return 2 * (saturated - K @ np.log(p) - F @ np.log1p(-p))

    # Nelder-Mead: no BLAS underneath, so no thread contention on a shared machine
    fit = optimize.minimize(criterion, start, method="Nelder-Mead", bounds=bounds,
                            options=dict(xatol=1e-5, fatol=1e-3, maxfev=2000))
    if fit.fun <= coarse[i, j]:  # the optimum joins the grid, so that the profile reaches it
        lo, hi, w_best = fit.x[0], fit.x[1], float(np.exp(fit.x[3]))
        theta, widths = np.union1d(theta, [fit.x[2]]), np.union1d(widths, [w_best])
    else:
        lo, hi, w_best = lo0, hi0, float(widths[j])
    profile = _refined_min(grid(lo, hi, theta, widths), np.log(widths))
    return _profile(theta, profile - profile.min(), stats.chi2.ppf(level, 1), w_best, (float(lo), float(hi)), xs)


def _refined_min(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Per row of ``values`` (rows: theta, columns: the grid ``coords``), the minimum, refined where it lies
    inside the grid by the vertex of the parabola through it and its two neighbours (kept between the grid
    minimum and that minimum less the rise to its higher neighbour)."""
    j = np.argmin(values, axis=1)
    best = values.min(axis=1)
    inner = (j > 0) & (j < values.shape[1] - 1)
    j = np.clip(j, 1, values.shape[1] - 2)
    rows = np.arange(values.shape[0])
    f0, f1, f2 = values[rows, j - 1], values[rows, j], values[rows, j + 1]
    x0, x1, x2 = coords[j - 1], coords[j], coords[j + 1]
    with np.errstate(all="ignore"):
        d1, d2 = (f1 - f0) / (x1 - x0), (f2 - f1) / (x2 - x1)
        curvature = (d2 - d1) / (x2 - x0)
        slope = (d1 * (x2 - x1) + d2 * (x1 - x0)) / (x2 - x0)
        vertex = f1 - slope ** 2 / (4 * curvature)
    ok = inner & np.isfinite(vertex) & (curvature > 0)
    return np.where(ok, np.clip(vertex, best - (np.maximum(f0, f2) - f1), best), best)


def gaussian_profile(x, value, level: float = 0.95) -> Profile | str:
    """The least-squares fit of a falling step (midpoint theta, where it falls fastest), profiled over theta
    with the plateaus in closed form; the interval from F(1, n - 4) with the residual variance, which is floored
    at the quantisation of the values (the smallest gap between distinct values, squared, over 12). A string
    (the reason) where the data cannot show a fall."""
    x, value = np.asarray(x, float), np.asarray(value, float)
    xs, inv = np.unique(x, return_inverse=True)
    if len(x) <= 5:
        return "too few observations for a step"
    cnt = np.bincount(inv).astype(float)
    s1 = np.bincount(inv, weights=value)
    s2 = float(np.sum(value ** 2))
    theta, widths = _grids(xs)
    s = special.expit((xs - theta[:, None, None]) / widths[None, :, None])  # (theta, width, x)
    u = 1 - s
    a11, a12, a22 = (cnt * u * u).sum(-1), (cnt * u * s).sum(-1), (cnt * s * s).sum(-1)
    r1, r2 = (s1 * u).sum(-1), (s1 * s).sum(-1)
    det = a11 * a22 - a12 ** 2
    ok = det > 1e-9 * np.maximum(a11 * a22, 1e-300)
    safe = np.where(ok, det, 1.0)
    a = np.where(ok, (a22 * r1 - a12 * r2) / safe, s1.sum() / cnt.sum())
    b = np.where(ok, (a11 * r2 - a12 * r1) / safe, s1.sum() / cnt.sum())
    rss = np.maximum(s2 - (a * r1 + b * r2), 0.0)
    rss = np.where(ok, rss, s2 - s1.sum() ** 2 / cnt.sum())
    i, j = np.unravel_index(np.argmin(rss), rss.shape)
    if not a[i, j] > b[i, j]:
        return "V does not fall in the measured range"
    distinct = np.unique(value)
    quantum = np.diff(distinct).min() if len(distinct) > 1 else 1e-3
    df = len(x) - 4
    sigma2 = max(float(rss[i, j]) / df, quantum ** 2 / 12)
    profile = rss.min(axis=1)
    return _profile(theta, (profile - profile.min()) / sigma2, stats.f.ppf(level, 1, df), widths[j],
                    (float(a[i, j]), float(b[i, j])), xs)


def bracket(x, k, n, seed, level: float = 0.95) -> tuple[float, float] | str:
    """The shape-free bracket of the crossing of 1/2: (A, B), B the smallest measured fraction at which the
    seed-mean memorisation is significantly above 1/2, A the largest below B at which it is significantly below
    (each a one-sided test at (1 - level) / 2: t = (mean - 1/2) / se on S_x - 1 degrees of freedom, se the larger
    of the seeds' standard error and the binomial one at 1/2, sqrt(1 / (4 sum n))). A monotone curve crosses 1/2
    in (A, B), whatever its shape. A string (the reason) where there is no such bracket."""
    x, k, n, seed = (np.asarray(v) for v in (x, k, n, seed))
    xs = np.unique(x)
    below, above = np.zeros(len(xs), bool), np.zeros(len(xs), bool)
    for i, at in enumerate(xs):
        share = k[x == at] / n[x == at]
        spread = share.std(ddof=1) / np.sqrt(len(share)) if len(share) > 1 else 0.0
        se = max(spread, np.sqrt(0.25 / n[x == at].sum()))
        margin = stats.t.ppf(0.5 + level / 2, max(len(share) - 1, 1)) * se
        below[i], above[i] = share.mean() + margin < 0.5, share.mean() - margin > 0.5
    if not above.any():
        return "M's crossing of 1/2 is not located inside the measured range: it is significantly above 1/2 nowhere"
    b = np.flatnonzero(above)[0]
    if not below[:b].any():
        return ("M's crossing of 1/2 is not located inside the measured range: it is significantly below 1/2 at no "
                f"fraction under {xs[b]:.3f}, the first where it is above")
    if below[b:].any():
        return (f"M crosses 1/2 more than once: significantly above at {xs[b]:.3f}, below again at "
                f"{xs[b:][below[b:]][0]:.3f}")
    return float(xs[:b][below[:b]][-1]), float(xs[b])


def undefined(reason: str, **known) -> dict:
    """A result of ``critical_point`` with no critical point: NaN everywhere but ``known``, and the reason."""
    out = dict(value=np.nan, lo=np.nan, hi=np.nan, lr_lo=np.nan, lr_hi=np.nan, bracket_lo=np.nan, bracket_hi=np.nan,
               se_seeds=np.nan, width=np.nan, plateau_lo=np.nan, plateau_hi=np.nan, found=False, reason=reason)
    out.update(known)
    return out


def critical_point(x, seed, *, k=None, n=None, value=None, level: float = 0.95, min_seeds: int = MIN_SEEDS,
                   name: str = "M") -> dict:
    """The critical point of one curve (``qrobust.analysis.critical``): with ``k`` and ``n`` the crossing of 1/2
    by a rising binomial step (memorisation), with ``value`` the midpoint of a falling least-squares step
    (validation accuracy). Non-finite observations are left out. Returns value, lo, hi (the interval), lr_lo,
    lr_hi (the pooled profile interval), se_seeds (the leave-one-seed-out jackknife standard error), bracket_lo,
    bracket_hi (the shape-free bracket, ``bracket``; memorisation only), width, plateau_lo, plateau_hi, found,
    reason; value, lo, hi NaN unless found."""
    binomial = value is None
    x = np.asarray(x, float)
    seed = np.asarray(seed)
    if binomial:
        k, n = np.asarray(k, float), np.asarray(n, float)
        keep = np.isfinite(x) & np.isfinite(k) & np.isfinite(n) & (n > 0)
        k, n = np.clip(np.round(k[keep]), 0, n[keep]), n[keep]
    else:
        value = np.asarray(value, float)
        keep = np.isfinite(x) & np.isfinite(value)
        value = value[keep]
    x, seed = x[keep], seed[keep]
    seeds = np.unique(seed)
    if len(seeds) < min_seeds:
        return undefined(f"too few seeds: {len(seeds)} with finite data, at least {min_seeds} needed (the spread "
                         "over seeds needs 2 degrees of freedom)")
    if len(np.unique(x)) < 4:
        return undefined(f"too few measured fractions for {name}: {len(np.unique(x))}, at least 4 needed")
    what = f"{name}'s crossing of 1/2" if binomial else f"{name}'s step"

    def fit(mask):
        return (binomial_profile(x[mask], k[mask], n[mask], level) if binomial
                else gaussian_profile(x[mask], value[mask], level))

    full = fit(np.ones(len(x), bool))
    if isinstance(full, str):
        return undefined(full)
    known = dict(width=full.width, plateau_lo=full.plateaus[0], plateau_hi=full.plateaus[1])
    span = x.max() - x.min()
    if 2 * np.log(9) * full.width > SHARP * span:  # (least squares' plateaus of no step are no plateaus)
        return undefined(f"the step is not sharp: its 10-90 % width {2 * np.log(9) * full.width:.3f} exceeds "
                         f"half the measured range {span:.3f}", width=full.width,
                         **(dict(plateau_lo=full.plateaus[0], plateau_hi=full.plateaus[1]) if binomial else {}))
    if full.beyond:
        return undefined(f"{what} is not located inside the measured range: its profile interval "
                         f"[{full.lr[0]:.3f}, {full.lr[1]:.3f}] reaches past [{x.min():.3f}, {x.max():.3f}]", **known)
    shape_free = bracket(x, k, n, seed, level) if binomial else (np.inf, -np.inf)  # (V: none)
    if isinstance(shape_free, str):
        return undefined(shape_free, **known)
    jack = []
    for s in seeds:
        part = fit(seed != s)
        if isinstance(part, str) or not (x.min() <= part.point <= x.max()):
            return undefined(f"not robust over seeds: without seed {s} {what} is lost"
                             + (f" ({part})" if isinstance(part, str) else ""), **known)
        jack.append(part.point)
    jack = np.asarray(jack)
    m = len(seeds)
    se = float(np.sqrt((m - 1) / m * np.sum((jack - jack.mean()) ** 2)))
    t = stats.t.ppf(0.5 + level / 2, m - 1)
    lo = min(full.lr[0], full.point - t * se, shape_free[0])
    hi = max(full.lr[1], full.point + t * se, shape_free[1])
    if not hi - lo >= full.resolution:  # a guard: never narrower than the profile grid resolves
        lo, hi = min(lo, full.point - full.resolution / 2), max(hi, full.point + full.resolution / 2)
    parts = dict(lr_lo=full.lr[0], lr_hi=full.lr[1], se_seeds=se, bracket_lo=shape_free[0] if binomial else np.nan,
                 bracket_hi=shape_free[1] if binomial else np.nan, **known)
    if lo < x.min() or hi > x.max():
        return undefined(f"{what} is not located inside the measured range: its interval [{lo:.3f}, {hi:.3f}] "
                         f"reaches past [{x.min():.3f}, {x.max():.3f}]", **parts)
    return dict(value=full.point, lo=float(lo), hi=float(hi), found=True, reason="", **parts)
