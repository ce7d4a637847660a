"""A second identical study in the same process pays no compilation (the Python API shares the CLI's cache).

Runs one small sweep twice in one process, into two fresh directories, with a fresh qrobust cache (so the first
compiles everything), and reports each one's wall time against its chunks' training time (summed from the chunks'
own ``.seconds`` files): the second should cost at most 1.2x its training plus under a second. Also the same
second run with the persistent compilation cache switched off (``QROBUST_COMPILATION_CACHE=0`` in a child
process), for the ratio the cache buys. Ratios, measured in one run; do not time while another heavy job runs.

    python benchmarks/repeat_study.py [--seeds 4] [--epochs 3] [--out results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
from pathlib import Path
t0 = time.perf_counter()
import qrobust as qr
from qrobust.store import read_seconds
imported = time.perf_counter() - t0
seeds, epochs, out = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])
config = qr.SweepConfig(dataset="mnist", n_train_per_class=50, models=("qnn", "mlp"), corruptions=("flip",),
                        alphas=(0.0, 0.3), seeds=seeds, epochs=epochs)
rows = []
for name in ("first", "second"):
    start = time.perf_counter()
    qr.run_sweep(config, out / name, progress=False)
    wall = time.perf_counter() - start
    chunks = sum(read_seconds(p) for p in (out / name / "chunks").glob("*.seconds"))
    rows.append(dict(run=name, wall_s=round(wall, 3), chunks_s=round(chunks, 3)))
print(json.dumps(dict(imported_s=round(imported, 3), runs=rows)))
"""


def _child(seeds: int, epochs: int, cache_on: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, QROBUST_CACHE=str(Path(tmp) / "cache"),
                   QROBUST_COMPILATION_CACHE="1" if cache_on else "0")
        env.pop("JAX_COMPILATION_CACHE_DIR", None)
        done = subprocess.run([sys.executable, "-c", CHILD, str(seeds), str(epochs), str(Path(tmp) / "runs")],
                              env=env, capture_output=True, text=True, check=True)
        return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out")
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%d %H:%M")
    result = {"date": started, "seeds": args.seeds, "epochs": args.epochs,
              "cache on": _child(args.seeds, args.epochs, True), "cache off": _child(args.seeds, args.epochs, False)}
    for mode in ("cache on", "cache off"):
        for r in result[mode]["runs"]:
            r["wall_over_chunks"] = round(r["wall_s"] / r["chunks_s"], 2)
            r["overhead_s"] = round(r["wall_s"] - r["chunks_s"], 2)
            print(f"{mode:9}  {r['run']:6}  wall {r['wall_s']:7.2f} s  chunks {r['chunks_s']:7.2f} s  "
                  f"wall/chunks {r['wall_over_chunks']:.2f}  overhead {r['overhead_s']:.2f} s")
    on, off = result["cache on"]["runs"][1], result["cache off"]["runs"][1]
    result["second_run_speedup_from_cache"] = round(off["wall_s"] / on["wall_s"], 2)
    print(f"the second run with the cache is {result['second_run_speedup_from_cache']}x faster than without it")
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
