"""The SCRUB (kl_w, fo_w) grid as one chunked program vs a Python loop over the cells.

The program holds the students on its replica axis (vmapped on an accelerator, walked
with ``lax.map`` inside the program on CPU: ``replica_mode="auto"``).

Both paths run the same experiment code (teachers, data, objective, metrics);
the loop is the same study with chunk size 1, i.e. one compiled R = 1 program
called once per cell. Only the students' time is compared (the sum of their
chunks' wall times, compile included); teachers are trained in each path and
excluded. The two final tables must agree.

  python benchmarks/bench_unlearn_grid.py                         # MLP, 10 x 10 cells x 5 seeds = 500
  python benchmarks/bench_unlearn_grid.py --model qnn --seeds 1 --epochs 10
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from qrobust.experiments.unlearning import UnlearnConfig, run_unlearning


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--model", default="mlp")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--grid", type=int, default=10, help="values per weight: 0, 0.1, ..., (grid-1)/10")
    ap.add_argument("--chunk-size", type=int, default=100)
    ap.add_argument("--teacher-epochs", type=int)
    args = ap.parse_args()
    weights = tuple(round(0.1 * i, 1) for i in range(args.grid))
    base = dict(dataset=args.dataset, models=(args.model,), methods=("scrub",), seeds=tuple(range(args.seeds)),
                epochs=args.epochs, kl_ws=weights, fo_ws=weights, teacher_epochs=args.teacher_epochs)
    timings, finals = {}, {}
    for label, chunk in (("program", args.chunk_size), ("loop", 1)):
        t0 = time.perf_counter()
        _, final = run_unlearning(UnlearnConfig(**base, chunk_size=chunk), progress=False)
        total = time.perf_counter() - t0
        # each replica carries its chunk's seconds / chunk size: the sum is the students' wall time
        # (exact when no chunk is padded, as when the chunk size divides the number of students)
        timings[label] = float(final.seconds.sum())
        finals[label] = final
        print(f"{label}: {len(final)} students, whole study {total:.1f} s", flush=True)
    n = len(finals["program"])
    diff = np.abs(finals["program"].sort_values(["kl_w", "fo_w", "seed"]).val_acc.to_numpy()
                  - finals["loop"].sort_values(["kl_w", "fo_w", "seed"]).val_acc.to_numpy()).max()
    table = pd.DataFrame([dict(model=args.model, students=n, epochs=args.epochs, program_s=timings["program"],
                               loop_s=timings["loop"], speedup=timings["loop"] / timings["program"],
                               max_val_acc_diff=diff)])
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
