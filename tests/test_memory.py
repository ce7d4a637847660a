"""Chunk sizes from free memory and XLA's measured per-replica footprint."""

import jax
import jax.numpy as jnp
import pandas as pd
import pytest

from qrobust.memory import available_bytes, program_bytes, replicas_that_fit


def test_available_bytes_agrees_with_the_kernel_and_falls_back_without_psutil(monkeypatch):
    """Against an independent reading (Linux's MemAvailable, or the total memory elsewhere), then the
    fallback path with psutil hidden."""
    import builtins
    import os

    def meminfo_available():
        with open("/proc/meminfo") as fh:
            return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))

    got = available_bytes()
    if os.path.exists("/proc/meminfo"):
        assert abs(got - meminfo_available()) < 0.2 * meminfo_available() + 256 * 2**20
    else:
        assert 0 < got <= os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    real_import = builtins.__import__

    def no_psutil(name, *args, **kwargs):
        if name == "psutil":
            raise ImportError("hidden by the test")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_psutil)
    if os.path.exists("/proc/meminfo"):
        assert abs(available_bytes() - meminfo_available()) < 0.2 * meminfo_available() + 256 * 2**20
    else:
        with pytest.raises(RuntimeError, match="psutil"):
            available_bytes()


def test_program_bytes_counts_arguments_outputs_and_scratch():
    f = jax.jit(lambda a: (a @ a.T).sum(axis=0))
    small = program_bytes(f, jnp.zeros((64, 256), jnp.float32))
    big = program_bytes(f, jnp.zeros((512, 256), jnp.float32))
    assert small >= 64 * 256 * 4  # at least the argument
    assert big >= 512 * 256 * 4 + 512 * 4
    assert big > 4 * small  # the (512, 512) product is scratch


def test_replicas_that_fit_respects_memory_cap_and_devices():
    mb = 2**20
    assert replicas_that_fit(10 * mb, cap=50, free_bytes=1000 * mb) == 50  # capped
    assert replicas_that_fit(10 * mb, cap=500, free_bytes=1000 * mb) == 50  # half of 1000 MB / 10 MB
    assert replicas_that_fit(300 * mb, cap=50, free_bytes=1000 * mb) == 1  # at least one
    with pytest.raises(ValueError, match="positive"):
        replicas_that_fit(0, cap=5)


def test_a_sweep_picks_its_chunk_size_from_memory_and_keeps_it_on_resume(tmp_path, monkeypatch):
    import json

    from qrobust import memory
    from qrobust.cli import main

    args = ["sweep", "--dataset", "xxz", "--qubits", "4", "--n-train", "4", "--model", "mlp",
            "--corruption", "flip", "--alphas", "0.5", "--seeds", "5", "--epochs", "2", "--no-progress"]
    per_replica = {}
    real = memory.program_bytes

    def spy(jitted, *a):  # a[1]: the learning rates, one per replica of the program asked about
        per_replica["bytes"] = real(jitted, *a) // a[1].shape[0]
        return per_replica["bytes"] * a[1].shape[0]

    monkeypatch.setattr("qrobust.experiments.study.program_bytes", spy)
    # pretend only 4.5 replicas' worth of memory is free: half of it holds 2
    monkeypatch.setattr(memory, "available_bytes",  # (before any program: the result table's check)
                        lambda device=None: int(4.5 * per_replica["bytes"]) if per_replica else 2**40)
    out = tmp_path / "run"
    assert main(args + ["--out", str(out)]) == 0
    assert json.loads((out / "chunk_sizes.json").read_text()) == {"mlp": 2}  # one mechanism for every study
    assert len(list((out / "chunks").glob("*.csv"))) == 3  # 5 replicas in chunks of at most 2
    # a resume with more memory free keeps the chunks it started with
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 1000 * per_replica["bytes"])
    assert main(args + ["--out", str(out)]) == 0
    assert len(list((out / "chunks").glob("*.csv"))) == 3


@pytest.mark.slow  # 34 s; the sweep's test above covers the mechanism in the default suite
def test_unlearning_sizes_teacher_and_student_chunks_from_memory_and_keeps_them(tmp_path, monkeypatch):
    import json

    from qrobust import memory
    from qrobust.cli import main

    args = ["unlearn", "--dataset", "xxz", "--qubits", "4", "--n-train", "10", "--teacher-epochs", "3",
            "--epochs", "2", "--seeds", "3", "--model", "mlp", "--method", "retrain", "--method", "finetune",
            "--no-progress"]
    measured = []  # bytes per replica of each program asked about
    real = memory.program_bytes

    def spy(jitted, *a):  # a[1]: the learning rates, one per replica
        measured.append(real(jitted, *a) // a[1].shape[0])
        return measured[-1] * a[1].shape[0]

    monkeypatch.setattr("qrobust.experiments.study.program_bytes", spy)  # the teachers' and the students'
    # each program's own footprint, just measured: room for 2 replicas
    monkeypatch.setattr(memory, "available_bytes",  # (before any program: the result table's check)
                        lambda device=None: int(4.5 * measured[-1]) if measured else 2**40)
    out = tmp_path / "u"
    assert main(args + ["--out", str(out)]) == 0
    assert len(measured) == 2 and measured[0] != measured[1]  # a teacher's and a student's program
    assert json.loads((out / "chunk_sizes.json").read_text()) == {"teacher-mlp": 2, "student-mlp-family": 2}
    names = sorted(p.stem for p in (out / "chunks").glob("*.csv"))
    assert sum(n.startswith("teacher-") for n in names) == 3  # 6 teachers (3 seeds x 2 alphas) by 2
    assert sum(n.startswith("student-") for n in names) == 3  # 6 students (3 seeds x 2 methods) by 2
    final = pd.read_csv(out / "final.csv")
    # a resume with more memory free measures nothing and plans the same chunks
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 1000 * measured[-1])
    assert main(args + ["--out", str(out)]) == 0
    assert len(measured) == 2
    assert sorted(p.stem for p in (out / "chunks").glob("*.csv")) == names
    pd.testing.assert_frame_equal(pd.read_csv(out / "final.csv"), final)


def test_fitted_chunk_size_prefers_asked_then_recorded_then_legacy(tmp_path):
    from qrobust.experiments.chunks import fitted_chunk_size
    from qrobust.store import RunDirectory

    calls = []

    def footprint(r):
        calls.append(r)
        return r * 2**40  # nothing fits: one replica per device

    store = RunDirectory(tmp_path / "r", {"a": 1}).open()
    assert fitted_chunk_size("p", footprint=footprint, n_replicas=80, cap=50, store=store, asked=7) == 7 and not calls
    first = fitted_chunk_size("p", footprint=footprint, n_replicas=80, cap=50, store=store, legacy=50)
    assert first == jax.local_device_count() and len(calls) == 1  # no chunks yet: measured, not legacy
    assert fitted_chunk_size("p", footprint=footprint, n_replicas=80, cap=50, store=store) == first and len(calls) == 1
    # a directory whose chunks were written before sizes were recorded keeps the old fixed size
    old = RunDirectory(tmp_path / "old", {"a": 1}).open()
    old.write_chunk("p-0000", pd.DataFrame({"x": [1]}))
    assert fitted_chunk_size("p", footprint=footprint, n_replicas=80, cap=50, store=old, legacy=50) == 50
    assert len(calls) == 1
    assert old.recorded_chunk_sizes() == {"p": 50}


def test_the_chunk_size_is_read_from_the_program_that_runs_so_it_compiles_once(tmp_path, monkeypatch, caplog):
    """The footprint is asked for the shape the chunk will run (here all 6 replicas in one chunk) of the very
    trainer the chunk calls, so planning and training compile the training program once between them (it
    was twice: a separate one-replica probe)."""
    import logging

    from qrobust import memory
    from qrobust.experiments import SweepConfig, run_sweep

    asked = []
    real = memory.program_bytes

    def spy(jitted, *a):
        asked.append(a[1].shape[0])
        return real(jitted, *a)

    monkeypatch.setattr("qrobust.experiments.study.program_bytes", spy)
    config = SweepConfig(dataset="xxz", n_qubits=4, n_train_per_class=4, models=("mlp",), corruptions=("flip",),
                         alphas=(0.0, 0.5), seeds=(0, 1, 2), epochs=2)
    with caplog.at_level(logging.WARNING), jax.log_compiles(True):
        run_sweep(config, tmp_path / "run", progress=False)
    compiled = [r.getMessage() for r in caplog.records if "Finished XLA compilation of jit(train_epochs)" in r.getMessage()]
    assert asked == [6 // jax.local_device_count()] and len(compiled) == 1, (asked, compiled)
