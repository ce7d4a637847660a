"""Time to first result: the wall time of a small study from the command line, caches warm.

Runs, as a user would, in fresh processes:

- ``qrobust --help``;
- the 10-replica, 1-epoch MNIST sweep ``qrobust sweep --dataset mnist --model qnn --corruption flip
  --alphas 0.3:0.3:0.1 --seeds 10 --epochs 1`` (figure included), with the progress bar (the default)
  and with ``--no-progress``.

Each command runs once to warm the caches (qrobust's: the parsed digits, the native kernel, JAX's
persistent compilation cache), then ``--repeats`` times into a fresh output directory; the median
wall time is reported. The progress bar is a host callback inside the training program, which makes
XLA's cache key unique to the process: with the bar the training program is compiled again in every
process (about 1 s on 2 cores); without it, it is read from the cache.

  python benchmarks/first_result.py [--repeats 3] [--out runs/first_result.json]

Run it alone on the machine: nothing else heavy at the same time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SWEEP = ["sweep", "--dataset", "mnist", "--model", "qnn", "--corruption", "flip", "--alphas", "0.3:0.3:0.1",
         "--seeds", "10", "--epochs", "1"]


def wall(args: list[str], repeats: int) -> list[float]:
    """Wall seconds of ``python -m qrobust.cli ARGS`` (after one warm-up run), each into a fresh --out."""
    times = []
    for k in range(repeats + 1):
        out = Path(tempfile.mkdtemp(prefix="qrobust-first-"))
        extra = ["--out", str(out / "run")] if args[0] == "sweep" else []
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "qrobust.cli", *args, *extra], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if k:  # the first run warms the caches
            times.append(time.perf_counter() - start)
        shutil.rmtree(out)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None, help="write the timings as JSON here")
    args = ap.parse_args()
    cases = {"qrobust --help": ["--help"], "sweep, 10 replicas, 1 epoch": SWEEP,
             "the same, --no-progress": SWEEP + ["--no-progress"]}
    result = {}
    for name, argv in cases.items():
        times = wall(argv, args.repeats)
        result[name] = dict(median_s=statistics.median(times), runs_s=times)
        print(f"{name:32s} {statistics.median(times):6.2f} s  (runs: {', '.join(f'{t:.2f}' for t in times)})")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
