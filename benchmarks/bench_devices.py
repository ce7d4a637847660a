"""The replica axis over several devices: QNN training time per replica, per simulator and device count.

Each device count runs in its own process (the count is fixed when JAX starts), on CPU with forced host
devices (``--xla_force_host_platform_device_count``), or on the machine's accelerators with ``--no-force``.
Every process trains the same R replicas at the MNIST paper settings through ``make_train_fn``, which
splits the replica axis over the devices (``sharding.per_device``). Time: first call (compile included),
then the best of --repeats calls, scaled to seconds per replica per 100 epochs.

  python benchmarks/bench_devices.py                      # 1, 2 and 4 forced CPU devices; native and blocks
  python benchmarks/bench_devices.py --devices 1 2 --replicas 16

On forced CPU devices the devices share the cores, so more devices cannot be faster than one; what this
shows is that the sharded program costs nothing extra, and that the native kernel runs on every device's
shard (were it gathered, time would grow with the device count).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import pandas as pd

CHILD = "--child"


def child(devices: int, simulators: list[str], replicas: int, epochs: int, repeats: int) -> list[dict]:
    import jax
    from suite import training_inputs  # benchmarks/suite.py, beside this script

    from qrobust.engine import make_train_fn
    from qrobust.experiments.settings import load_dataset, model_settings
    from qrobust.models import qnn

    if jax.local_device_count() != devices:
        raise SystemExit(f"asked for {devices} devices, JAX sees {jax.local_device_count()}")
    mnist = load_dataset("mnist")
    s = model_settings("mnist", "qnn")
    rows = []
    for simulator in simulators:
        model = qnn(mnist.n_qubits, s.depth, simulator=simulator)
        args = training_inputs(model, mnist, replicas, s.learning_rate)
        train = make_train_fn(model, epochs=epochs, batch_size=s.batch_size, n_samples=len(mnist.y_train))
        t0 = time.perf_counter()
        jax.block_until_ready(train(*args))
        first = time.perf_counter() - t0
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(train(*args))
            best = min(best, time.perf_counter() - t0)
        rows.append(dict(devices=devices, platform=jax.devices()[0].platform, simulator=simulator,
                         replicas=replicas, first_call_s=first, per_replica_100ep_s=best / replicas * 100 / epochs))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", nargs="+", type=int, default=[1, 2, 4])
    ap.add_argument("--simulators", nargs="+", default=["native", "blocks"])
    ap.add_argument("--replicas", type=int, default=8, help="a multiple of every device count")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--no-force", action="store_true", help="use the machine's own devices (accelerators)")
    ap.add_argument(CHILD, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.child, args.simulators, args.replicas, args.epochs, args.repeats)))
        return
    bad = [d for d in args.devices if d < 1 or args.replicas % d]
    if bad:
        ap.error(f"--replicas {args.replicas} is not a positive multiple of device counts {bad}")
    rows = []
    for devices in args.devices:
        env = dict(os.environ)
        if not args.no_force:
            env.update(JAX_PLATFORMS="cpu", XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
        elif devices > 1:
            env.setdefault("CUDA_VISIBLE_DEVICES", ",".join(map(str, range(devices))))
        cmd = [sys.executable, __file__, CHILD, str(devices), "--simulators", *args.simulators,
               "--replicas", str(args.replicas), "--epochs", str(args.epochs), "--repeats", str(args.repeats)]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{devices} devices failed:\n{done.stderr[-3000:]}")
        rows += json.loads(done.stdout.strip().splitlines()[-1])
        print(pd.DataFrame(rows[-len(args.simulators):]).to_string(index=False, float_format="%.3g"), flush=True)
    table = pd.DataFrame(rows)
    one = table[table.devices == min(args.devices)].set_index("simulator").per_replica_100ep_s
    table["vs_fewest_devices"] = table.per_replica_100ep_s / table.simulator.map(one)
    print(f"\n== seconds per QNN replica per 100 epochs (MNIST settings, R = {args.replicas})")
    print(table.to_string(index=False, float_format="%.3g"))


if __name__ == "__main__":
    main()
