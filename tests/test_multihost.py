"""Two processes on this host, joined with jax.distributed.initialize, share a sweep's chunks."""

import os
import socket
import subprocess
import sys

import pandas as pd

from qrobust.cli import main

ARGS = ["sweep", "--dataset", "xxz", "--qubits", "4", "--n-train", "4", "--model", "mlp", "--corruption", "flip",
        "--alphas", "0,0.5", "--seeds", "3", "--epochs", "2", "--batch-size", "4", "--hidden", "4",
        "--chunk-size", "2", "--no-progress"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_share_the_chunks_and_match_one_process(tmp_path):
    one = tmp_path / "one"
    assert main(ARGS + ["--out", str(one)]) == 0
    two = tmp_path / "two"
    port = _free_port()
    procs = []
    for pid in range(2):
        env = dict(os.environ, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                   JAX_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu")
        procs.append(subprocess.Popen([sys.executable, "-m", "qrobust.cli", *ARGS, "--out", str(two),
                                       "--distributed"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    logs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(log[-2000:] for log in logs)
    # 6 replicas in chunks of 2: three chunks, dealt to the two processes, all in the shared directory
    assert len(list((two / "chunks").glob("*.csv"))) == 3
    pd.testing.assert_frame_equal(pd.read_csv(one / "results.csv"), pd.read_csv(two / "results.csv"))
