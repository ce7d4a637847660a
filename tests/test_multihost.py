"""Two processes on this host, joined with jax.distributed.initialize, share a sweep's chunks."""

import os
import socket
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

ARGS = ["sweep", "--dataset", "xxz", "--qubits", "4", "--n-train", "4", "--model", "mlp", "--corruption", "flip",
        "--alphas", "0,0.5", "--seeds", "3", "--epochs", "2", "--batch-size", "4", "--hidden", "4",
        "--chunk-size", "2", "--no-progress"]
TIMEOUT_S = 180


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes(command: list[str], expect_success: bool = True) -> tuple[list[int], list[str]]:
    """Run ``command`` as processes 0 and 1 of a job; their exit codes and logs. On a hang, both are
    killed and the failure shows what they printed."""
    port = _free_port()
    procs = []
    for pid in range(2):
        # gRPC must not send loopback traffic to a proxy (JAX warns that proxy variables can hang it), and
        # the coordinator listens on loopback IPv4 (JAX's default is [::], absent where IPv6 is off)
        env = {k: v for k, v in os.environ.items() if "_proxy" not in k.lower()}
        env.update(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_COORDINATOR_BIND_ADDRESS=f"127.0.0.1:{port}",
                   JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(pid), JAX_PLATFORMS="cpu")
        procs.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=TIMEOUT_S)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            tails = [q.communicate()[0][-3000:] for q in procs]
            raise AssertionError(f"two processes still running after {TIMEOUT_S} s; their output:\n"
                                 + "\n---\n".join(tails)) from None
    codes = [p.returncode for p in procs]
    if expect_success:
        assert codes == [0, 0], "\n---\n".join(log[-3000:] for log in logs)
    return codes, logs


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_two_processes_share_the_chunks_and_match_one_process(tmp_path):
    one = tmp_path / "one"  # the reference in a fresh process too: no state of earlier tests in this one
    env = {k: v for k, v in os.environ.items() if "_proxy" not in k.lower()}
    run = subprocess.run([sys.executable, "-m", "qrobust.cli", *ARGS, "--out", str(one)],
                         env=dict(env, JAX_PLATFORMS="cpu"), capture_output=True, text=True, timeout=TIMEOUT_S)
    assert run.returncode == 0, run.stderr[-3000:]
    two = tmp_path / "two"
    _run_two_processes([sys.executable, "-m", "qrobust.cli", *ARGS, "--out", str(two), "--distributed"])
    # 6 replicas in chunks of 2: three chunks, dealt to the two processes, all in the shared directory
    assert len(list((two / "chunks").glob("*.csv"))) == 3
    pd.testing.assert_frame_equal(pd.read_csv(one / "results.csv"), pd.read_csv(two / "results.csv"))


def test_process_zero_decides_and_a_failure_stops_every_process():
    script = textwrap.dedent("""
        import sys
        import jax
        from qrobust import sharding
        sharding.initialize_distributed()
        p = jax.process_index()
        first = sharding.decided_by_primary("first", lambda: {"p": p})
        second = sharding.decided_by_primary("second", lambda: 10 + p)
        print("ANSWER", p, first["p"], second, flush=True)
        sharding.barrier("together")
        try:
            if p == 1:
                raise RuntimeError("disk full")
            sharding.barrier("never passed")  # process 1 does not come: process 0 must not hang here
        except Exception as exc:
            sharding.announce_failure(f"{type(exc).__name__}: {exc}")
            print("STOPPED", p, type(exc).__name__, exc, flush=True)
            sys.exit(3)
    """)
    codes, logs = _run_two_processes([sys.executable, "-c", script], expect_success=False)
    lines = sorted(line for log in logs for line in log.splitlines() if line.startswith(("ANSWER", "STOPPED")))
    assert codes == [3, 3], "\n---\n".join(logs)
    assert lines[:2] == ["ANSWER 0 0 10", "ANSWER 1 0 10"]
    assert lines[2].startswith("STOPPED 0 PeerFailedError process 1 failed: RuntimeError: disk full")
    assert lines[3] == "STOPPED 1 RuntimeError disk full"


def test_a_wait_that_ended_before_a_peers_failure_is_passed(monkeypatch):
    """The race the two-process test met under load (2026-12-08): this process read "not everyone yet", then the
    last process arrived, passed, failed and announced it, and only then did this one read the failures. The wait
    had ended: it is passed; a wait that has not ended still stops at the failure."""
    from qrobust import sharding

    class Store:
        def key_value_dir_get(self, prefix):
            assert prefix == sharding._FAILED
            return [("qrobust/failed/1", "RuntimeError: disk full")]

    monkeypatch.setattr(sharding, "_client", lambda: Store())
    answers = iter([None, "over"])
    assert sharding._wait(lambda: next(answers), "barrier 1 (together)", 60) == "over"
    with pytest.raises(sharding.PeerFailedError, match="process 1 failed: RuntimeError: disk full"):
        sharding._wait(lambda: None, "barrier 2 (never passed)", 60)
