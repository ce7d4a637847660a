"""The replica axis sharded over 4 forced CPU devices gives the results of one device."""

import os
import subprocess
import sys

import pandas as pd

ARGS = ["sweep", "--dataset", "xxz", "--qubits", "4", "--n-train", "6", "--epochs", "3", "--seeds", "6",
        "--alphas", "0,0.5", "--corruption", "flip", "--batch-size", "4", "--depth", "2", "--hidden", "8,4",
        "--no-progress"]


def _run(out, devices, chunk_size):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    code = ("import sys, jax; from qrobust.cli import main; "
            f"assert jax.device_count() == {devices}; sys.exit(main(sys.argv[1:]))")
    subprocess.run([sys.executable, "-c", code, *ARGS, "--chunk-size", str(chunk_size), "--out", str(out)], check=True,
                   env=env,
                   capture_output=True, text=True)
    return pd.read_csv(out / "results.csv")


def test_four_devices_give_the_results_of_one(tmp_path):
    """12 replicas per model: one device runs chunks of 3, four devices one chunk of 12 (3 per device).

    XLA compiles the sharded program differently, so float32 results agree to rounding (~1e-7), not to the
    bit; a prediction whose logit lies that close to 0 can flip. So: every loss within 1e-6, and an
    accuracy differs in few rows, by one sample at most.
    """
    one = _run(tmp_path / "one", 1, 3)
    four = _run(tmp_path / "four", 4, 12)
    assert len(one) == 2 * 2 * 6 * 3  # models x alphas x seeds x epochs
    grid = ["model", "corruption", "alpha", "seed", "learning_rate", "epoch", "diverged", "n_corrupted"]
    pd.testing.assert_frame_equal(one[grid], four[grid], check_exact=True)
    assert (one.loss - four.loss).abs().max() < 1e-6
    for column, n in (("train_acc", 12), ("val_acc", 80)):
        gap = (one[column] - four[column]).abs()
        assert gap.max() <= 1 / n + 1e-6 and (gap > 1e-6).mean() <= 0.05
