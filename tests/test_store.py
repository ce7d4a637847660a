"""The run store trusts no chunk it has not checked against the plan."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qrobust.cli import main

TINY = ["--dataset", "xxz", "--qubits", "4", "--n-train", "4", "--model", "mlp", "--corruption", "flip",
        "--alphas", "0,0.5", "--epochs", "2", "--chunk-size", "2", "--no-progress"]


def _sweep(out, seeds=3, offset=0):
    assert main(["sweep", *TINY, "--seeds", str(seeds), "--seed-offset", str(offset), "--out", str(out)]) == 0
    return pd.read_csv(out / "results.csv")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A clean run (seeds 0-2) and one of other seeds (10-12), both in chunks of 2 replicas."""
    root = tmp_path_factory.mktemp("store")
    clean = _sweep(root / "clean")
    _sweep(root / "other", offset=10)
    return root, clean, root / "other"


def _damage(chunk, how, other):
    text = chunk.read_text()
    if how == "other seeds":
        shutil.copy(other / "chunks" / chunk.name, chunk)
    elif how == "cut at a line end":
        chunk.write_text("".join(text.splitlines(keepends=True)[:-1]))
    elif how == "cut mid-line":
        chunk.write_text(text[: len(text) // 2 + 3])
    elif how == "random bytes":
        chunk.write_bytes(np.random.default_rng(0).bytes(300))
    elif how == "empty":
        chunk.write_text("")
    elif how == "header only":
        chunk.write_text(text.splitlines()[0] + "\n")


@pytest.mark.parametrize("how", ["other seeds", "cut at a line end", "cut mid-line", "random bytes", "empty",
                                 "header only"])
def test_a_chunk_that_is_not_this_runs_is_set_aside_and_run_again(runs, tmp_path, how, capsys):
    root, clean, other = runs
    out = tmp_path / "run"
    shutil.copytree(root / "clean", out)
    chunk = sorted((out / "chunks").glob("*.csv"))[1]
    _damage(chunk, how, other)
    results = _sweep(out)
    pd.testing.assert_frame_equal(results, clean)  # the seeds of this config, every row once, same numbers
    assert (out / "chunks" / "rejected" / chunk.name).exists()
    warned = [line for line in capsys.readouterr().err.splitlines() if "run again" in line]
    assert len(warned) == 1 and chunk.name in warned[0], warned


def test_a_chunk_of_this_grid_made_with_other_settings_is_set_aside_by_its_record(runs, tmp_path, capsys):
    """A chunk of a run with the same grid (seeds, alphas) but other epochs has a whole number of rows per
    replica and names exactly the planned replicas: only its record (the digest of the settings that made
    it) tells it apart. Copied with its record, or without one, it is set aside and run again."""
    root, clean, _ = runs
    longer = tmp_path / "longer"
    assert main(["sweep", *TINY, "--seeds", "3", "--epochs", "3", "--out", str(longer)]) == 0
    for how in ("with its record", "without a record"):
        out = tmp_path / how.replace(" ", "-")
        shutil.copytree(root / "clean", out)
        chunk = sorted((out / "chunks").glob("*.csv"))[1]
        shutil.copy(longer / "chunks" / chunk.name, chunk)
        record = chunk.with_suffix(".json")
        if how == "with its record":
            shutil.copy(longer / "chunks" / record.name, record)
        else:
            record.unlink()
        capsys.readouterr()
        pd.testing.assert_frame_equal(_sweep(out), clean)
        warned = [line for line in capsys.readouterr().err.splitlines() if "run again" in line]
        assert len(warned) == 1 and chunk.name in warned[0], warned
        assert ("made by other settings" if how == "with its record" else "has no") in warned[0], warned


def test_a_directory_made_before_chunks_had_records_resumes_on_its_grid_check(runs, tmp_path):
    """chunk_format 1 (no NAME.json): its chunks are still checked against the plan and used, not rerun."""
    root, clean, other = runs
    out = tmp_path / "old"
    shutil.copytree(root / "clean", out)
    config = json.loads((out / "config.json").read_text())
    del config["chunk_format"]
    (out / "config.json").write_text(json.dumps(config))
    for record in (out / "chunks").glob("*.json"):
        record.unlink()
    chunks = sorted((out / "chunks").glob("*.csv"))
    stamp = chunks[0].stat().st_mtime_ns
    shutil.copy(other / "chunks" / chunks[1].name, chunks[1])  # still caught by its seeds
    pd.testing.assert_frame_equal(_sweep(out), clean)
    assert chunks[0].stat().st_mtime_ns == stamp and (out / "chunks" / "rejected" / chunks[1].name).exists()


@pytest.mark.parametrize("lost", ["deleted", "damaged"])
def test_a_lost_chunk_plan_is_recovered_from_the_chunks_records(runs, tmp_path, capsys, lost):
    """chunk_sizes.json deleted or damaged, and the run resumed without --chunk-size: the plan is not
    re-derived (from memory it would be one chunk of 6) but read from the stored chunks' records, so no
    finished chunk is run again."""
    root, clean, _ = runs
    out = tmp_path / "run"
    shutil.copytree(root / "clean", out)
    sizes = out / "chunk_sizes.json"
    sizes.unlink(missing_ok=True)  # (asked sizes are not recorded there: none here)
    if lost == "damaged":
        sizes.write_text("{not json")
    stamps = {p: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.csv")}
    args = [a for a in TINY]
    i = args.index("--chunk-size")
    del args[i:i + 2]
    capsys.readouterr()
    assert main(["sweep", *args, "--seeds", "3", "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), clean)
    assert {p: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.csv")} == stamps
    assert "2 replicas per chunk, as its stored chunks record" in capsys.readouterr().err
    assert json.loads(sizes.read_text()) == {"mlp": 2}


def test_a_chunk_of_another_chunk_plan_is_not_read_as_this_one(runs, tmp_path):
    """Asked for chunks of 4 where the stored ones hold 2: the stored chunk under a planned name holds 2
    replicas, not 4, and is run again."""
    root, clean, _ = runs
    out = tmp_path / "run"
    shutil.copytree(root / "clean", out)
    args = [a for a in TINY]
    args[args.index("--chunk-size") + 1] = "4"
    assert main(["sweep", *args, "--seeds", "3", "--out", str(out)]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), clean)
    assert (out / "chunks" / "rejected" / "mlp-0000.csv").exists()


@pytest.mark.parametrize("damage", ["cut short", "random bytes", "empty", "one array short"])
def test_a_chunk_whose_arrays_are_damaged_is_not_this_runs(tmp_path, damage):
    """A chunk's arrays (NAME.npz: an unlearning study's parameters) that do not load whole, or hold the
    wrong number of replicas, make the chunk one to run again: a reason, never an exception."""
    from qrobust.store import RunDirectory

    store = RunDirectory(tmp_path / "run", {"study": "test"}).open()
    rows = pd.DataFrame({"seed": [0, 1], "alpha": [0.0, 0.3]})
    params = np.arange(8, dtype=np.float32).reshape(2, 4)
    store.write_chunk("p-0000", rows.assign(val_acc=[0.5, 0.6]), 1.0, {"params": params}, chunk_size=2)
    assert store.check_chunk("p-0000", rows) is None
    npz = store.chunk_path("p-0000").with_suffix(".npz")
    data = npz.read_bytes()
    if damage == "cut short":
        npz.write_bytes(data[: len(data) // 2])
    elif damage == "random bytes":
        npz.write_bytes(np.random.default_rng(1).bytes(len(data)))
    elif damage == "empty":
        npz.write_bytes(b"")
    else:
        np.savez(npz, params=params[:1])
    reason = store.check_chunk("p-0000", rows)
    assert reason is not None and ("do not load" in reason or "one entry per replica" in reason), reason


def test_a_matching_chunk_is_trusted_and_not_run_again(runs, tmp_path):
    root, clean, _ = runs
    out = tmp_path / "run"
    shutil.copytree(root / "clean", out)
    chunk = sorted((out / "chunks").glob("*.csv"))[0]
    stamp = chunk.stat().st_mtime_ns
    pd.testing.assert_frame_equal(_sweep(out), clean)
    assert chunk.stat().st_mtime_ns == stamp and not (out / "chunks" / "rejected").exists()


@pytest.mark.parametrize("extra, named", [
    (["--alphas", "0.3,0.3"], "alpha 0.3 is given twice"),
    (["--lr", "0.01", "--lr", "0.01"], "learning rate 0.01 is given twice"),
    (["--lr", "nan"], "finite"),
    (["--lr", "inf"], "finite"),
    (["--model", "mlp", "--model", "mlp"], "model 'mlp' is given twice"),
])
def test_a_grid_value_twice_or_not_finite_is_refused_before_any_work(tmp_path, capsys, extra, named):
    args = [a for a in TINY if a not in ("--alphas", "0,0.5")]
    if "--model" in extra:
        i = args.index("--model")
        del args[i:i + 2]
    out = tmp_path / "run"
    assert main(["sweep", *args, "--alphas", "0.5", *extra, "--seeds", "1", "--out", str(out)]
                if "--alphas" not in extra else ["sweep", *args, *extra, "--seeds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("method, weights, named", [
    (["--method", "finetune", "--method", "finetune"], [], "method 'finetune' is given twice"),
    (["--method", "scrub"], ["--fo-w", "0.2,0.2"], "fo_w 0.2 is given twice"),
    (["--method", "finetune"], ["--lr", "nan"], "finite"),
])
def test_unlearn_refuses_a_grid_value_twice_or_a_bad_rate(tmp_path, capsys, method, weights, named):
    out = tmp_path / "u"
    args = ["unlearn", "--dataset", "xxz", "--qubits", "4", "--n-train", "4", "--model", "mlp", "--seeds", "1",
            *method, *weights, "--out", str(out), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err and not out.exists()


def test_an_output_under_a_file_is_refused_with_a_message(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["sweep", *TINY, "--seeds", "1", "--out", str(blocker / "run")]) == 2
    err = capsys.readouterr().err
    assert "is not a directory" in err and "Traceback" not in err


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc and /sys")
@pytest.mark.parametrize("place", ["/proc/qrobust-test/run", "/sys/qrobust-test"])
def test_an_output_in_a_place_no_one_can_write_is_refused_with_a_message(tmp_path, capsys, place):
    """/proc refuses new entries and /sys is read-only (in a container) or root's: even as root, mkdir fails."""
    assert main(["sweep", *TINY, "--seeds", "1", "--out", place]) == 2
    err = capsys.readouterr().err
    assert f"cannot write the run directory {place}" in err and "Traceback" not in err and not Path(place).exists()


@pytest.mark.parametrize("planted_by", ["anyone (world-writable)", "another user"])
def test_a_cached_ground_state_file_others_could_have_planted_is_not_trusted(tmp_path, monkeypatch, planted_by):
    """A planted ground-state file, world-writable or another user's, is recomputed, not read."""
    import os

    from qrobust.data import xxz

    monkeypatch.setenv("QROBUST_CACHE", str(tmp_path / "cache"))
    energies, states = xxz.ground_states(4, [0.5])
    (path,) = (tmp_path / "cache" / "phases" / "xxz").glob("*.npz")
    np.savez(path, energies=energies + 1.0, states=states)  # the planted "states"
    if planted_by == "another user":
        if os.getuid() != 0:
            pytest.skip("giving a file to another user needs root")
        os.chown(path, 65534, 65534)  # nobody
    else:
        os.chmod(path, 0o666)
    again, _ = xxz.ground_states(4, [0.5])
    np.testing.assert_allclose(again, energies)
    from qrobust.cache import untrusted

    assert untrusted(path) is None  # the recomputed states replaced the planted file with a private one
    with np.load(path) as z:
        np.testing.assert_allclose(z["energies"], energies)


def test_a_group_whose_every_replica_diverged_keeps_its_row_in_the_summary():
    from qrobust.analysis.summary import final_summary

    rows = [dict(model="mlp", corruption="flip", alpha=a, learning_rate=0.1, seed=s, epoch=1, train_acc=0.5,
                 train_acc_clean=0.5, val_acc=0.6, memorization=0.1, diverged=(a == 0.5)) for a in (0.0, 0.5)
            for s in (0, 1)]
    summary = final_summary(pd.DataFrame(rows))
    gone = summary[summary.alpha == 0.5].iloc[0]
    assert len(summary) == 2 and gone.n_seeds == 0 and gone.n_diverged == 2 and np.isnan(gone.val_acc_mean)
    assert summary[summary.alpha == 0.0].iloc[0].n_seeds == 2


def test_a_huge_finite_loss_is_a_diverged_run():
    from qrobust.analysis.summary import LOSS_CEILING, diverged

    losses = np.array([[0.7, 0.5, 0.3], [0.7, 1e32, 0.3], [0.7, np.nan, 0.3], [0.7, LOSS_CEILING, 0.2]])
    assert diverged(losses, axis=1).tolist() == [False, True, True, False]


@pytest.mark.parametrize("extra, named", [(["--qubits", "30"], "from 4 to 20"), (["--chunk-size", "0"], "chunk size")])
def test_absurd_sizes_are_refused_before_any_work(tmp_path, capsys, extra, named):
    out = tmp_path / "u"
    args = ["unlearn", "--dataset", "xxz", "--n-train", "4", "--model", "mlp", "--seeds", "1", "--method",
            "finetune", *extra, "--out", str(out), "--no-progress"]
    if "--qubits" not in extra:
        args += ["--qubits", "4"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err and not out.exists()


@pytest.mark.parametrize("extra", [["--epochs", "1000000000"], ["--seeds", "100000000"]])
def test_a_result_table_that_cannot_fit_in_memory_is_refused_at_once(tmp_path, capsys, extra):
    out = tmp_path / "run"
    args = ["sweep", *TINY, "--out", str(out)]
    if "--epochs" in extra:
        i = args.index("--epochs")
        del args[i:i + 2]
    args += extra if "--seeds" in extra else [*extra, "--seeds", "1"]
    assert main(args) == 2
    err = capsys.readouterr().err
    named = ("result rows", "seeds in one run", "the most qrobust accepts")  # the table's size, or a per-option cap
    assert any(n in err for n in named) and "Traceback" not in err and not out.exists()


class _Killed(BaseException):
    """The process dies here (as under SIGKILL: no handler runs, nothing more is written)."""


@pytest.mark.slow  # 25 tiny sweeps in-process (32 s on 2 busy cores); CI runs it
def test_a_run_killed_between_any_two_writes_resumes_to_the_undisturbed_tables(runs, tmp_path, monkeypatch):
    """Every file of a run directory is written as a temporary file renamed into place. The run is killed at
    each rename in turn, before it (the temporary file is left behind, the file is not there), so every pair
    of consecutive writes has a kill between them; the same command then finishes the run, and its results
    and summary equal those of a run never killed."""
    import os
    import types

    import qrobust.files
    import qrobust.store

    root, clean, _ = runs
    summary = pd.read_csv(root / "clean" / "summary.csv")
    writes = {"n": 0, "kill_at": None, "order": []}
    real = os.replace

    from qrobust.cache import cache_dir

    def replace(src, dst):
        if Path(dst).is_relative_to(cache_dir()):  # the cache (written by the same helper) is not the run's
            return real(src, dst)
        writes["n"] += 1
        writes["order"].append(Path(dst).name)
        if writes["n"] == writes["kill_at"]:
            raise _Killed(dst)
        return real(src, dst)

    for module in (qrobust.store, qrobust.files):  # the chunks' arrays, and every other file
        monkeypatch.setattr(module, "os", types.SimpleNamespace(**{**vars(os), "replace": replace}))
    _sweep(tmp_path / "counted")
    n = writes["n"]  # config.json, each chunk's record, time and table, results.csv, summary.csv, the figure
    assert n >= 9, n
    summary_write = writes["order"].index("summary.csv") + 1
    for k in range(1, n + 1):
        out = tmp_path / f"killed-at-write-{k}"
        writes.update(n=0, kill_at=k)
        with pytest.raises(_Killed):
            _sweep(out)
        writes.update(kill_at=None)
        assert (out / "summary.csv").exists() == (k > summary_write)  # only the figure comes after it
        pd.testing.assert_frame_equal(_sweep(out), clean, obj=f"results after a kill at write {k}")
        pd.testing.assert_frame_equal(pd.read_csv(out / "summary.csv"), summary)
        assert not (out / "chunks" / "rejected").exists()  # a kill leaves no damaged chunk to set aside


def test_a_second_writer_is_refused_at_once_and_the_first_ones_run_is_untouched(runs, tmp_path, capsys):
    """Another process writes the directory (it holds its lock): a second command on it is refused with one
    line naming that process, before it reads or writes anything there; once the first has ended, the same
    command resumes the run to the undisturbed table."""
    import subprocess
    import sys

    root, clean, _ = runs
    out = tmp_path / "run"
    shutil.copytree(root / "clean", out)
    for name in ("results.csv", "summary.csv"):
        (out / name).unlink()
    sorted((out / "chunks").glob("*.csv"))[1].unlink()  # the first writer has not finished
    holder = subprocess.Popen([sys.executable, "-c", "import sys; from qrobust.files import WriterLock; "
                               "lock = WriterLock.take(sys.argv[1]); print('held', flush=True); sys.stdin.read()",
                               str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
        assert main(["sweep", *TINY, "--seeds", "3", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"being written by another qrobust process (pid {holder.pid})" in err[0], err
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before
    finally:
        holder.communicate("", timeout=60)
    pd.testing.assert_frame_equal(_sweep(out), clean)


@pytest.mark.parametrize("text", ["[]", "null", '{"settings": 5}', "{not json", ""])
def test_a_damaged_config_is_refused_with_a_message(runs, tmp_path, capsys, text):
    root, _, _ = runs
    out = tmp_path / "run"
    shutil.copytree(root / "clean", out)
    (out / "config.json").write_text(text)
    assert main(["sweep", *TINY, "--seeds", "3", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "is not a qrobust configuration" in err and "Traceback" not in err


@pytest.mark.parametrize("damage", ["empty", "header only", "all diverged"])
def test_analyze_names_a_table_it_cannot_use(runs, tmp_path, capsys, damage):
    root, clean, _ = runs
    out = tmp_path / "run"
    shutil.copytree(root / "clean", out)
    table = out / "results.csv"
    if damage == "empty":
        table.write_text("")
    elif damage == "header only":
        table.write_text(table.read_text().splitlines()[0] + "\n")
    else:
        clean.assign(diverged=True).to_csv(table, index=False)
    assert main(["analyze", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qrobust: error:") and "Traceback" not in err and not (out / "critical_points.csv").exists()


@pytest.mark.slow  # 36 s; CI runs it
def test_an_unlearning_run_that_lost_its_chunk_plan_reads_it_from_its_chunks(tmp_path, monkeypatch):
    """The unlearning run of the issue: chunk_sizes.json lost (stored in chunks of 2; from memory the plan
    would be one chunk). Before the check, teachers.csv got duplicated rows and final.csv broke; then the
    stale chunks were set aside and run again; now the plan is read from the chunks' records, nothing is
    run again, and the tables equal a clean run's."""
    args = ["unlearn", "--dataset", "xxz", "--qubits", "4", "--n-train", "6", "--model", "mlp", "--seeds", "3",
            "--method", "finetune", "--teacher-epochs", "2", "--epochs", "2", "--no-progress"]
    clean, out = tmp_path / "clean", tmp_path / "run"
    assert main(args + ["--out", str(clean)]) == 0
    with monkeypatch.context() as m:  # little memory: every program in chunks of 2, recorded
        m.setattr("qrobust.experiments.chunks.replicas_that_fit", lambda per_replica, *, cap: min(cap, 2))
        assert main(args + ["--out", str(out)]) == 0
    assert set(json.loads((out / "chunk_sizes.json").read_text()).values()) == {2}
    (out / "chunk_sizes.json").unlink()  # lost: a new plan, from memory, would be one chunk per program
    stamps = {p: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.csv")}
    assert main(args + ["--out", str(out)]) == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.csv")} == stamps
    assert set(json.loads((out / "chunk_sizes.json").read_text()).values()) == {2}
    for table in ("teachers.csv", "final.csv"):
        a, b = pd.read_csv(clean / table), pd.read_csv(out / table)
        assert len(b) == len(a) and not b.duplicated().any(), table
        pd.testing.assert_frame_equal(a.drop(columns=["seconds"], errors="ignore"),
                                      b.drop(columns=["seconds"], errors="ignore"), check_exact=False, atol=1e-6)
    assert not (out / "chunks" / "rejected").exists()


@pytest.mark.slow  # seven small sweeps in fresh processes (81 s with five, on 2 cores); CI runs it
def test_an_interrupted_run_says_so_in_one_line_and_resumes_to_an_undisturbed_runs_table(tmp_path):
    """Ctrl-C (SIGINT) or a scheduler's stop (SIGTERM) between two chunks: one line naming the signal, the
    exit status 128 + signal, no traceback and no result table; the same command then finishes the run, and
    its table equals that of a run never interrupted."""
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "qrobust.cli", "sweep", *TINY, "--epochs", "20000", "--chunk-size", "1",
               "--seeds", "3"]

    def finished(out):
        subprocess.run(command + ["--out", str(out)], check=True, capture_output=True, timeout=300)
        return pd.read_csv(out / "results.csv")

    reference = finished(tmp_path / "undisturbed")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        out = tmp_path / sig.name
        run = subprocess.Popen(command + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
        deadline = time.monotonic() + 240
        while not list((out / "chunks").glob("*.csv")) and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        run.send_signal(sig)
        _, err = run.communicate(timeout=120)
        if sig == signal.SIGKILL:  # no handler runs: the process just ends, and its lock with it
            assert run.returncode == -sig, err
        else:
            assert run.returncode == 128 + sig, err
            assert "Traceback" not in err
            assert err.strip().splitlines()[-1] == (f"qrobust: interrupted ({sig.name}); the finished chunks are "
                                                    "kept: rerun the same command to resume")
        assert not (out / "results.csv").exists() and 1 <= len(list((out / "chunks").glob("*.csv"))) < 6
        pd.testing.assert_frame_equal(finished(out), reference)


@pytest.mark.slow  # three small sweeps in fresh processes; CI runs it
def test_two_identical_commands_started_together_make_one_run(tmp_path):
    """Two writers at once on one new directory (a job array that started a job twice): the one that takes
    the directory runs; the other is refused in one line naming it (or, started after the first ended,
    resumes a finished run). The table is that of a single undisturbed run."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "qrobust.cli", "sweep", *TINY, "--epochs", "2000", "--chunk-size", "1",
               "--seeds", "3"]
    subprocess.run(command + ["--out", str(tmp_path / "undisturbed")], check=True, capture_output=True,
                   timeout=300)
    out = tmp_path / "both"
    runs = [subprocess.Popen(command + ["--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    errs = [run.communicate(timeout=300)[1] for run in runs]
    codes = sorted(run.returncode for run in runs)
    assert codes in ([0, 0], [0, 2]), errs
    for run, err in zip(runs, errs):
        if run.returncode == 2:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and "being written by another qrobust process (pid " in lines[0], err
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"),
                                  pd.read_csv(tmp_path / "undisturbed" / "results.csv"))
