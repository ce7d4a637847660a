"""Finding (b), one factor at a time: read the six sweeps of run.sh and write the tables of this folder.

    python docs/findings/grid_factors/analyze.py OUT [--tables DIR]

Per grid: final validation accuracy per alpha (mean over seeds, 95 % seed-bootstrap interval); the 10-90 % width
of the validation step, a logistic least-squares fit (``qrobust.analysis.critical.fit_step``) on the realised flip
fraction, with a 95 % seed-bootstrap interval (1000 resamples of the seeds, the fit redone on each); and per
validation state its error rate over seeds (predicted class != true class) at every alpha, from the stored
weights, against Delta; and the accuracy on the validation states near the transition (|Delta - 1| <= 0.2, the
ones the wide grid leaves out) and on the rest, with seed-bootstrap intervals. Nothing here is tuned: the grids and seeds are run.sh's, the rules are these.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from qrobust import load_results
from qrobust.analysis.critical import fit_step, transition_width
from qrobust.analysis.intervals import LEVEL, N_BOOT
from qrobust.experiments.settings import load_dataset

GRIDS = ("P", "count40", "window", "placement", "range", "W")
NEAR = 0.2  # validation states with |Delta - 1| <= NEAR are "near" the transition: the wide grid leaves them out
FACTOR = {"P": "the paper's grid", "count40": "40 training states per class (P: 41)",
          "window": "window 0.2 (P: 0.045)", "placement": "validation second of each pair (P: first)",
          "range": "range [0, 2] (P: [0.09, 1.91])", "W": "the wide grid (all four changed)"}


def final_rows(run) -> pd.DataFrame:
    results = run["results"]
    final = results[results.epoch == results.epoch.max()].copy()
    final["x"] = final.n_corrupted / run.settings["n_train"]
    return final


def _boot_seeds(seeds: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    return [seeds] + [rng.choice(seeds, size=len(seeds), replace=True) for _ in range(N_BOOT)]


def width_interval(final: pd.DataFrame, seed: int = 0) -> tuple[float, float, float, int]:
    """10-90 % width of V's logistic fit on the realised fraction: the point, the bootstrap interval, and how
    many resamples the fit failed on (left out, and counted)."""
    seeds = np.sort(final.seed.unique())
    by_seed = {s: final[final.seed == s] for s in seeds}
    widths = []
    for sample in _boot_seeds(seeds, np.random.default_rng(seed)):
        rows = pd.concat([by_seed[s] for s in sample])
        params = fit_step(rows.x.to_numpy(), rows.val_acc.to_numpy(), rising=False)
        widths.append(transition_width(params[3]))
    widths = np.asarray(widths)
    q = 100 * (1 - LEVEL) / 2
    rest = widths[1:][np.isfinite(widths[1:])]
    return float(widths[0]), float(np.percentile(rest, q)), float(np.percentile(rest, 100 - q)), \
        int(np.sum(~np.isfinite(widths[1:])))


def accuracy_table(final: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Mean final validation accuracy per alpha with a seed-bootstrap interval."""
    rng = np.random.default_rng(seed)
    rows = []
    for alpha, group in final.groupby("alpha"):
        v = group.sort_values("seed").val_acc.to_numpy()
        boots = v[rng.integers(0, len(v), size=(N_BOOT, len(v)))].mean(axis=1)
        q = 100 * (1 - LEVEL) / 2
        rows.append(dict(alpha=alpha, val_acc=v.mean(), lo=np.percentile(boots, q), hi=np.percentile(boots, 100 - q),
                         seeds=len(v), per_seed=" ".join(f"{a:.3f}" for a in v)))
    return pd.DataFrame(rows)


def predictions_wrong(run) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Every stored replica's (alpha, seed), whether it misclassifies each validation state (replicas x states),
    and the states' Delta."""
    s = run.settings
    data = load_dataset(s["dataset"], n_qubits=s["n_qubits"], gauge=s["gauge"], gauge_seed=s["gauge_seed"],
                        grid=s["grid"])
    replicas = run.weights("qnn")["qnn"].replicas[["alpha", "seed"]].reset_index(drop=True)
    wrong = (run.predict("qnn", data.x_val) > 0).astype(int) != data.y_val[None, :]
    return replicas, wrong, np.asarray(data.meta["per_state"]["delta_val"])


def per_state_errors(replicas: pd.DataFrame, wrong: np.ndarray, delta: np.ndarray) -> pd.DataFrame:
    """Per validation state (its Delta) and alpha: the fraction of seeds whose trained QNN misclassifies it."""
    frame = pd.DataFrame(wrong, columns=delta)
    frame["alpha"] = replicas.alpha.to_numpy()
    errors = frame.groupby("alpha").mean().T
    errors.index.name = "delta"
    return errors.reset_index()


def near_far(replicas, wrong, delta, *, near: float = NEAR, seed: int = 0) -> pd.DataFrame:
    """Per alpha: validation accuracy on the states with |Delta - 1| <= ``near`` and on the rest, mean over seeds
    with a seed-bootstrap interval."""
    rng = np.random.default_rng(seed)
    q = 100 * (1 - LEVEL) / 2
    rows = []
    for alpha in np.unique(replicas.alpha):
        at = (replicas.alpha == alpha).to_numpy()
        row = dict(alpha=alpha)
        for name, cols in (("near", np.abs(delta - 1) <= near), ("far", np.abs(delta - 1) > near)):
            acc = 1 - wrong[at][:, cols].mean(axis=1) if cols.any() else np.full(at.sum(), np.nan)
            boots = acc[rng.integers(0, len(acc), size=(N_BOOT, len(acc)))].mean(axis=1)
            row.update({name: acc.mean(), f"{name}_lo": np.percentile(boots, q),
                        f"{name}_hi": np.percentile(boots, 100 - q), f"n_{name}": int(cols.sum())})
        rows.append(row)
    return pd.DataFrame(rows)


def draw(per_state: dict, path: Path, alphas=(0.4, 0.5, 0.6)) -> None:
    """Per-state error rate against Delta at ``alphas``, one panel per alpha, one line per grid."""
    import matplotlib

    matplotlib.use("Agg")  # a file, not a window; this script's own process
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(alphas), figsize=(4.2 * len(alphas), 3.4), sharey=True)
    for ax, alpha in zip(axes, alphas):
        for name, errors in per_state.items():
            col = next(c for c in errors.columns if c != "delta" and np.isclose(float(c), alpha))
            x, y = errors.delta.to_numpy(float), errors[col].to_numpy(float)
            gap = np.flatnonzero(np.diff(x) > 0.05) + 1  # no line across the states a window leaves out
            ax.plot(np.insert(x, gap, np.nan), np.insert(y, gap, np.nan), ".-", ms=3, lw=0.8, label=name)
        ax.axvspan(0.8, 1.2, color="0.9", zorder=0)
        ax.set(title=f"alpha = {alpha:g}", xlabel="Delta")
    axes[0].set_ylabel("error rate over 10 seeds")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--tables", default=str(Path(__file__).parent))
    args = parser.parse_args(argv)
    tables = Path(args.tables)
    summary, accuracy, near, per_state = [], [], [], {}
    for name in GRIDS:
        path = Path(args.out) / name
        if not (path / "results.csv").is_file():
            print(f"{path}: no results.csv (run run.sh first)", file=sys.stderr)
            return 2
        run = load_results(path)
        final = final_rows(run)
        grid = run.settings["grid"]
        point, lo, hi, failed = width_interval(final)
        acc = accuracy_table(final).assign(grid=name)
        accuracy.append(acc)
        replicas, wrong, delta = predictions_wrong(run)
        per_state[name] = per_state_errors(replicas, wrong, delta)
        per_state[name].to_csv(tables / f"per_state_{name}.csv", index=False, float_format="%.3f")
        near.append(near_far(replicas, wrong, delta).assign(grid=name))
        summary.append(dict(grid=name, change=FACTOR[name], lo=grid["lo"], hi=grid["hi"], n_points=grid["n_points"],
                            window=grid["window"], val_first=grid["val_first"], n_train=run.settings["n_train"],
                            width_10_90=point, width_lo=lo, width_hi=hi, fits_failed=failed,
                            **{f"V_{a:g}": v for a, v in zip(acc.alpha, acc.val_acc)}))
    pd.DataFrame(summary).to_csv(tables / "summary.csv", index=False, float_format="%.4f")
    pd.concat(accuracy).to_csv(tables / "accuracy.csv", index=False, float_format="%.4f")
    pd.concat(near).to_csv(tables / "near_far.csv", index=False, float_format="%.4f")
    draw(per_state, tables / "per_state.png")
    print(pd.DataFrame(summary)[["grid", "change", "width_10_90", "width_lo", "width_hi", "fits_failed"]]
          .to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
