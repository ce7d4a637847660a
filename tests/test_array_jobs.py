"""Array jobs: independent processes share one run directory chunk by chunk (``--claim``, ``qrobust.leases``),
die at any moment and are replaced, and the directory's tables equal an undisturbed single-process run's, byte
for byte."""

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from qrobust import leases
from qrobust.cli import main
from qrobust.files import write_new

ROOT = Path(__file__).resolve().parents[1]
TINY = ["sweep", "--dataset", "xxz", "--qubits", "4", "--n-train", "4", "--model", "mlp", "--corruption", "flip",
        "--alphas", "0,0.5", "--epochs", "2", "--chunk-size", "1", "--seeds", "3", "--no-progress"]
TABLES = ("results.csv", "summary.csv")


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


def _plant(path: Path, *, host=leases.HOST, pid=None, age_s=0.0, lease_s=60.0) -> None:
    path.write_text(json.dumps(dict(host=host, pid=os.getpid() if pid is None else pid, time="-", token="planted",
                                    lease_s=lease_s)))
    past = time.time() - age_s
    os.utime(path, (past, past))


# --- the lock -------------------------------------------------------------------------------------------------


def test_a_held_lock_is_not_claimed_twice_and_is_free_once_released(tmp_path):
    path = tmp_path / "c.lock"
    lease = leases.claim(path, 60)
    assert lease is not None and json.loads(path.read_text())["pid"] == os.getpid()
    assert leases.claim(path, 60) is None
    lease.release()
    assert not path.exists()
    again = leases.claim(path, 60)
    assert again is not None
    again.release()


@pytest.mark.parametrize("planted, stale", [
    (dict(pid="dead"), True),                                    # a dead process of this machine: at once
    (dict(host="elsewhere", age_s=120, lease_s=60), True),       # another machine's, silent past its lease
    (dict(host="elsewhere", age_s=10, lease_s=60), False),       # another machine's, within its lease
    (dict(age_s=120, lease_s=60), True),                         # alive here but silent (a reused pid, say)
    (dict(age_s=10, lease_s=60), False),                         # alive here and beating
])
def test_a_stale_lock_is_taken_over_and_a_live_one_is_not(tmp_path, planted, stale):
    path = tmp_path / "c.lock"
    if planted.get("pid") == "dead":
        planted = dict(planted, pid=_dead_pid())
    _plant(path, **planted)
    lease = leases.claim(path, 60)
    assert (lease is not None) == stale
    if lease is not None:
        assert json.loads(path.read_text())["token"] == lease.token
        lease.release()
    else:
        assert json.loads(path.read_text())["token"] == "planted"


def test_a_breaker_left_by_a_taker_killed_while_breaking_is_removed(tmp_path):
    path = tmp_path / "c.lock"
    _plant(path, pid=_dead_pid())
    _plant(path.with_name("c.lock.break"), pid=_dead_pid())
    lease = leases.claim(path, 60)
    assert lease is not None and not path.with_name("c.lock.break").exists()
    lease.release()
    _plant(path, pid=_dead_pid())
    _plant(path.with_name("c.lock.break"), host="elsewhere", age_s=1)  # a live taker elsewhere: left to it
    assert leases.claim(path, 60) is None and path.with_name("c.lock.break").exists()


def _race(n: int, attempt):
    """``attempt()`` by ``n`` threads released at once; their results."""
    start, results = threading.Barrier(n), [None] * n

    def go(i):
        start.wait()
        results[i] = attempt()

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("stale", [False, True])
def test_racing_claimers_get_exactly_one_lease(tmp_path, stale):
    """Sixteen claimers of a free lock, or of a stale one they all find stale and take over: exactly one wins."""
    for round in range(5):
        path = tmp_path / f"c{round}.lock"
        if stale:
            _plant(path, host="elsewhere", age_s=600, lease_s=60)
        won = [lease for lease in _race(16, lambda: leases.claim(path, 60)) if lease is not None]
        assert len(won) == 1
        assert json.loads(path.read_text())["token"] == won[0].token
        won[0].release()
        assert not list(tmp_path.glob(".*tmp*")) and not list(tmp_path.glob("*.break"))


def test_racing_creators_of_a_file_create_it_once(tmp_path):
    path = tmp_path / "config.json"
    created = _race(16, lambda: write_new(path, f"{threading.get_ident()}\n"))
    assert sum(created) == 1 and path.read_text().strip().isdigit()


def test_the_heartbeat_keeps_a_lock_alive_past_its_lease(tmp_path):
    path = tmp_path / "c.lock"
    with leases.claim(path, leases.MIN_LEASE_S) as lease:
        time.sleep(1.6 * leases.MIN_LEASE_S)
        assert leases.why_stale(path, lease.lease_s) is None
        assert leases.claim(path, leases.MIN_LEASE_S) is None
    assert not path.exists()


@pytest.mark.parametrize("extra, message", [(["--claim-lease", "0"], "--claim-lease"),
                                            (["--claim-lease", "nan"], "--claim-lease"),
                                            (["--distributed"], "choose one")])
def test_bad_claim_options_are_one_line_before_any_work(tmp_path, capsys, extra, message):
    assert main(TINY + ["--claim", *extra, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1 and not (tmp_path / "run").exists()


@pytest.mark.parametrize("held, extra, message", [
    (fcntl.LOCK_SH, [], "started with --claim"),              # claimers share it: a plain writer is refused
    (fcntl.LOCK_EX, ["--claim"], "does not claim chunks"),    # a plain writer has it: a claimer is refused
])
def test_claimers_and_a_plain_writer_do_not_share_a_directory(tmp_path, capsys, held, extra, message):
    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, held)  # as another process holds it
        os.write(fd, b"claiming\n" if held == fcntl.LOCK_SH else b"12345\n")
        assert main(TINY + extra + ["--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    finally:
        os.close(fd)
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


# --- processes on one directory -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An undisturbed single-process run (six chunks of one replica), with a cache the claimers share."""
    root = tmp_path_factory.mktemp("array")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("QROBUST_CACHE", str(root / "cache"))
        assert main(TINY + ["--out", str(root / "reference")]) == 0
    return root


def _claimer(out: Path, cache: Path) -> subprocess.Popen:
    env = dict(os.environ, QROBUST_CACHE=str(cache), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "qrobust.cli", *TINY, "--claim", "--out", str(out)], env=env,
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _array_job(root: Path, out: Path, n: int, kills: int, seed: int) -> None:
    """``n`` claimers on ``out``; ``kills`` times, one of them (at random) is killed (SIGKILL) at a random moment
    and a new one started in its place. Every process not killed must end well."""
    rng = np.random.default_rng(seed)
    running = [_claimer(out, root / "cache") for _ in range(n)]
    for _ in range(kills):
        time.sleep(rng.uniform(0.5, 6.0))
        victim = running.pop(int(rng.integers(len(running))))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        running.append(_claimer(out, root / "cache"))
    for p in running:
        text = p.communicate(timeout=240)[0]
        assert p.returncode == 0, text


def _same_as_reference(out: Path, reference: Path) -> None:
    for table in TABLES:
        assert (out / table).read_bytes() == (reference / table).read_bytes(), table
    assert sorted(p.name for p in (out / "chunks").iterdir()) == sorted(p.name for p in (reference / "chunks").iterdir())
    assert not list((out / "claims").iterdir())  # every claim released or taken over
    assert not [p for p in out.rglob("*") if ".tmp" in p.name]


def test_claimers_killed_at_random_and_replaced_make_the_undisturbed_tables(reference):
    out = reference / "claimed"
    _array_job(reference, out, n=2, kills=1, seed=0)
    _same_as_reference(out, reference / "reference")


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_four_claimers_killed_again_and_again_make_the_undisturbed_tables(reference, seed):
    out = reference / f"claimed-{seed}"
    _array_job(reference, out, n=4, kills=4, seed=seed)
    _same_as_reference(out, reference / "reference")


# --- runs split by seed, merged -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def split(reference):
    """The reference's seeds run as two runs: seeds 0, 1 and seed 2 (--seed-offset)."""
    seeds = TINY.index("--seeds")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("QROBUST_CACHE", str(reference / "cache"))
        for name, extra in (("first", ["--seeds", "2"]), ("second", ["--seeds", "1", "--seed-offset", "2"])):
            assert main(TINY[:seeds] + TINY[seeds + 2:] + extra + ["--out", str(reference / name)]) == 0
    return reference / "first", reference / "second"


def test_runs_split_by_seed_merge_into_the_tables_of_one_run(reference, split, capsys):
    from qrobust.results import load_results

    out = reference / "merged"
    assert main(["merge", str(out), *map(str, split)]) == 0
    assert "merged 2 runs" in capsys.readouterr().out
    for table in TABLES:
        assert (out / table).read_bytes() == (reference / "reference" / table).read_bytes(), table
    config = json.loads((out / "config.json").read_text())
    assert config["settings"] == json.loads((reference / "reference" / "config.json").read_text())["settings"]
    assert [m["seeds"] for m in config["merged_from"]] == [[0, 1], [2]]
    trained = load_results(out).weights()["mlp"]  # every replica's weights, from the copied chunks
    alone = load_results(reference / "reference").weights()["mlp"]
    order = ["corruption", "alpha", "seed"]
    a = trained.replicas.reset_index().sort_values(order)
    b = alone.replicas.reset_index().sort_values(order)
    assert len(a) == 6
    np.testing.assert_array_equal(np.asarray(trained.params["params"]["Dense_0"]["kernel"])[a["index"]],
                                  np.asarray(alone.params["params"]["Dense_0"]["kernel"])[b["index"]])
    assert main(TINY + ["--out", str(out)]) == 2  # a merged directory is not resumed
    assert "merged by qrobust merge" in capsys.readouterr().err


def _copy(run: Path, to: Path) -> Path:
    import shutil

    shutil.copytree(run, to)
    return to


@pytest.mark.parametrize("damage, message", [
    ("settings", "not only other seeds"),
    ("seeds", "seed 0 is in"),
    ("chunk", "is not that run's"),
    ("results", "is not the table its chunks make"),
    ("unfinished", "unfinished"),
    ("out", "not an empty directory"),
])
def test_merge_refuses_runs_that_are_not_one_run_split_by_seed(reference, split, tmp_path, capsys, damage, message):
    first, second = split
    out = tmp_path / "merged"
    if damage == "settings":
        second = _copy(second, tmp_path / "second")
        config = json.loads((second / "config.json").read_text())
        config["settings"]["n_train_per_class"] = 5
        (second / "config.json").write_text(json.dumps(config))
    elif damage == "seeds":
        second = reference / "reference"
    elif damage == "chunk":
        second = _copy(second, tmp_path / "second")
        record = json.loads((second / "chunks" / "mlp-0000.json").read_text())
        (second / "chunks" / "mlp-0000.json").write_text(json.dumps(dict(record, settings_digest="0" * 16)))
    elif damage == "results":
        second = _copy(second, tmp_path / "second")
        text = (second / "results.csv").read_text().splitlines()
        (second / "results.csv").write_text("\n".join(text[:-1]) + "\n")
    elif damage == "unfinished":
        second = _copy(second, tmp_path / "second")
        (second / "results.csv").unlink()
    elif damage == "out":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    assert main(["merge", str(out), str(first), str(second)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and err.count("\n") == 1, err
    assert not out.exists() or [p.name for p in out.iterdir()] == ["notes.txt"]


@pytest.mark.slow
def test_claimers_share_a_study_of_several_stages(tmp_path):
    """The unlearning study: its students are planned from its teachers' chunks, so every claimer waits for the
    teachers before it claims a student. Three claimers make the tables of one process but for the wall-time
    columns (seconds, seconds_per_replica)."""
    import pandas as pd

    args = ["unlearn", "--dataset", "xxz", "--qubits", "4", "--n-train", "10", "--teacher-epochs", "3", "--epochs",
            "2", "--seeds", "2", "--no-progress", "--model", "mlp", "--method", "retrain", "--method", "scrub",
            "--kl-w", "0,0.5", "--chunk-size", "2"]
    env = dict(os.environ, QROBUST_CACHE=str(tmp_path / "cache"), PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "qrobust.cli", *args]
    subprocess.run(command + ["--out", str(tmp_path / "alone")], env=env, cwd=ROOT, check=True, capture_output=True)
    claimers = [subprocess.Popen(command + ["--claim", "--out", str(tmp_path / "claimed")], env=env, cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(3)]
    for p in claimers:
        text = p.communicate(timeout=400)[0]
        assert p.returncode == 0, text
    for table in ("final.csv", "results.csv", "teachers.csv", "recovery.csv"):
        claimed, alone = (pd.read_csv(tmp_path / d / table) for d in ("claimed", "alone"))
        clock = [c for c in alone.columns if c.startswith("seconds")]  # wall times: seconds, seconds_per_replica
        pd.testing.assert_frame_equal(claimed.drop(columns=clock), alone.drop(columns=clock), check_exact=True,
                                      obj=table)
    writers = {json.loads(p.read_text()).get("written_by") for p in (tmp_path / "claimed" / "chunks").glob("*.json")}
    assert None not in writers
