"""Chunk sizes from free memory and XLA's measured per-replica footprint."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrobust.memory import available_bytes, program_bytes, replicas_that_fit


def test_available_bytes_is_a_plausible_amount():
    assert 10 * 2**20 < available_bytes() < 2**50


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

    def spy(jitted, *a):
        per_replica["bytes"] = real(jitted, *a)
        return per_replica["bytes"]

    monkeypatch.setattr("qrobust.experiments.sweep.program_bytes", spy)
    # pretend only 4.5 replicas' worth of memory is free: half of it holds 2
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: int(4.5 * per_replica["bytes"]))
    out = tmp_path / "run"
    assert main(args + ["--out", str(out)]) == 0
    assert json.loads((out / "config.json").read_text())["settings"]["models"]["mlp"]["chunk_size"] == 2
    assert len(list((out / "chunks").glob("*.csv"))) == 3  # 5 replicas in chunks of at most 2
    # a resume with more memory free keeps the chunks it started with
    monkeypatch.setattr(memory, "available_bytes", lambda device=None: 1000 * per_replica["bytes"])
    assert main(args + ["--out", str(out)]) == 0
    assert len(list((out / "chunks").glob("*.csv"))) == 3
