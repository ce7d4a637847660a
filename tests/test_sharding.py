"""The replica axis sharded over 4 forced CPU devices gives the results of one device."""

import os
import subprocess
import sys

import pandas as pd

ARGS = ["sweep", "--dataset", "xxz", "--qubits", "4", "--n-train", "6", "--epochs", "3", "--seeds", "3",
        "--alphas", "0,0.5", "--batch-size", "4", "--depth", "2", "--hidden", "8,4", "--chunk-size", "5",
        "--no-progress"]


def _run(out, devices):
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}", JAX_PLATFORMS="cpu")
    code = ("import sys, jax; from qrobust.cli import main; "
            f"assert jax.device_count() == {devices}; sys.exit(main(sys.argv[1:]))")
    subprocess.run([sys.executable, "-c", code, *ARGS, "--out", str(out)], check=True, env=env,
                   capture_output=True, text=True)
    return pd.read_csv(out / "results.csv")


def test_four_devices_give_the_results_of_one(tmp_path):
    one = _run(tmp_path / "one", 1)
    four = _run(tmp_path / "four", 4)
    assert len(one) == 2 * 2 * 2 * 3 * 3
    # XLA vectorises 3 and 12 replicas differently, so float32 losses may differ in the last bits
    pd.testing.assert_frame_equal(one, four, check_exact=False, rtol=0, atol=1e-6)
    accuracy = ["train_acc", "train_acc_clean", "val_acc", "memorization"]
    pd.testing.assert_frame_equal(one[accuracy], four[accuracy], check_exact=True)
