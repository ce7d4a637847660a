"""Paired comparison of two device runs that differ only in --shot-gradient (docs/device.md): the final QNN rows of
one shots setting, seed by seed (the same initial weights, flips and batch order in both), read at N shots
(results.csv) and exactly (exact_reading.csv), with the mean difference's 95% interval (bootstrap over seeds,
``qrobust.analysis.intervals.Boot``).

    python scripts/compare_shot_gradients.py runs/device-xxz runs/device-xxz-shift100 --shots 100
"""

from __future__ import annotations

import argparse
import sys

import pandas as pd

from qrobust.analysis.intervals import Boot, widened

QUANTITIES = ((0.0, "val_acc"), (0.3, "val_acc"), (0.3, "memorization"), (0.3, "train_acc"))


def final_rows(run: str, table: str, shots: float) -> pd.DataFrame:
    rows = pd.read_csv(f"{run}/{table}")
    rows = rows[(rows.model == "qnn") & (rows.shots == shots)]
    return rows[rows.epoch == rows.epoch.max()] if "epoch" in rows else rows


def compare(first: str, second: str, shots: float) -> pd.DataFrame:
    out = []
    for table in ("results.csv", "exact_reading.csv"):
        a, b = final_rows(first, table, shots), final_rows(second, table, shots)
        for alpha, column in QUANTITIES:
            pair = a[a.alpha == alpha].merge(b[b.alpha == alpha], on="seed", suffixes=("_a", "_b"))
            if not len(pair):
                continue
            diff = pair.assign(d=pair[f"{column}_b"] - pair[f"{column}_a"])
            values = Boot(diff.seed).means(diff.assign(all=0), ["all"], "d").to_numpy()[0]
            lo, hi = widened(values, values[0])
            out.append(dict(read="at N shots" if table == "results.csv" else "exactly", alpha=alpha, quantity=column,
                            seeds=len(pair), first=pair[f"{column}_a"].mean(), second=pair[f"{column}_b"].mean(),
                            difference=values[0], lo=lo, hi=hi))
    return pd.DataFrame(out)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--shots", type=float, default=100.0)
    args = parser.parse_args(argv)
    try:
        table = compare(args.first, args.second, args.shots)
    except (OSError, AttributeError, KeyError) as exc:
        print(f"compare_shot_gradients: cannot read the runs ({type(exc).__name__}: {exc})", file=sys.stderr)
        return 2
    if not len(table):
        print(f"compare_shot_gradients: no QNN rows at {args.shots:g} shots in both runs", file=sys.stderr)
        return 2
    print(table.round(3).to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
