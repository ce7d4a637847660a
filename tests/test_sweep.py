"""The sweep end to end through the command line, on tiny settings."""

import json

import numpy as np
import pandas as pd
import pytest

from qrobust.cli import main
from qrobust.options import floats as parse_alphas
from qrobust.experiments.chunks import chunk_bounds
from qrobust.experiments.sweep import RESULT_COLUMNS

TINY_XXZ = ["sweep", "--dataset", "xxz", "--qubits", "4", "--n-train", "6", "--epochs", "3", "--seeds", "2",
            "--alphas", "0,0.5", "--batch-size", "4", "--depth", "2", "--hidden", "8,4", "--no-progress"]


def test_parse_alphas():
    assert parse_alphas("0:0.9:0.1") == tuple(round(0.1 * i, 1) for i in range(10))
    assert parse_alphas("0.2,0.5") == (0.2, 0.5)


def test_chunk_bounds_are_balanced():
    assert chunk_bounds(100, 50) == [(0, 50), (50, 100)]
    assert chunk_bounds(101, 50) == [(0, 34), (34, 68), (68, 101)]
    assert chunk_bounds(7, 50) == [(0, 7)]


def test_tiny_sweep_outputs_resume_and_reproducibility(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(TINY_XXZ + ["--out", str(out), "--chunk-size", "3"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert list(results.columns) == list(RESULT_COLUMNS)
    assert len(results) == 2 * 2 * 2 * 2 * 3  # models x corruptions x alphas x seeds x epochs
    assert set(results.model) == {"qnn", "mlp"} and set(results.corruption) == {"flip", "features"}
    assert (results.n_corrupted == np.where(results.alpha == 0.5, 6, 0)).all()
    assert results.groupby(["model", "corruption", "alpha", "seed"]).epoch.apply(list).map(
        lambda e: e == [1, 2, 3]).all()
    assert (out / "noise_response.png").stat().st_size > 10_000
    config = json.loads((out / "config.json").read_text())
    assert config["settings"]["models"]["qnn"]["depth"] == 2 and "jax" in config["versions"]
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 2 * 2 * 2 and (summary.n_seeds == 2).all()

    # resume: nothing recomputed, same table; an interrupted chunk is recomputed alone
    chunks = sorted((out / "chunks").glob("*.csv"))
    assert len(chunks) == 6  # 8 replicas per model in chunks of at most 3 -> 3 chunks each
    stamps = {c: c.stat().st_mtime_ns for c in chunks}
    chunks[1].unlink()
    assert main(TINY_XXZ + ["--out", str(out), "--chunk-size", "3"]) == 0
    rewritten = [c.name for c in chunks if c != chunks[1] and c.stat().st_mtime_ns != stamps[c]]
    assert not rewritten, f"the resume rewrote finished chunks {rewritten}"
    pd.testing.assert_frame_equal(pd.read_csv(out / "results.csv"), results)

    # the same command in a fresh directory writes an identical table
    out2 = tmp_path / "run2"
    assert main(TINY_XXZ + ["--out", str(out2), "--chunk-size", "3"]) == 0
    pd.testing.assert_frame_equal(pd.read_csv(out2 / "results.csv"), results, check_exact=True)  # names a difference
    assert (out / "results.csv").read_bytes() == (out2 / "results.csv").read_bytes()

    # a different configuration on an existing directory is refused
    capsys.readouterr()
    assert main(TINY_XXZ + ["--out", str(out), "--chunk-size", "3", "--lr", "0.1"]) == 2
    assert "different configuration" in capsys.readouterr().err


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_chunking_does_not_change_what_is_learned(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(TINY_XXZ + ["--model", "mlp", "--out", str(a), "--chunk-size", "8"]) == 0
    assert main(TINY_XXZ + ["--model", "mlp", "--out", str(b), "--chunk-size", "3"]) == 0
    ra, rb = pd.read_csv(a / "results.csv"), pd.read_csv(b / "results.csv")
    np.testing.assert_allclose(ra.loss, rb.loss, rtol=1e-4)
    assert (ra.train_acc == rb.train_acc).mean() > 0.95


def test_mnist_qnn_learns_the_clean_task(tmp_path):
    out = tmp_path / "m"
    args = ["sweep", "--dataset", "mnist", "--model", "qnn", "--corruption", "flip", "--alphas", "0",
            "--seeds", "1", "--epochs", "8", "--n-train", "40", "--batch-size", "16", "--depth", "2",
            "--lr", "0.05", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    r = pd.read_csv(out / "results.csv")
    assert r.loss.iloc[-1] < r.loss.iloc[0] and r.val_acc.iloc[-1] > 0.65  # chance is 0.50 +- 0.02 on 500 images


def _tiny(dataset="xxz", **overrides):
    opts = {"--dataset": dataset, "--n-train": "3", "--epochs": "2", "--seeds": "1", "--alphas": "0,0.5",
            "--batch-size": "4", "--depth": "1", "--hidden": "4"}
    if dataset == "xxz":
        opts["--qubits"] = "4"
    opts.update(overrides)
    return ["sweep", "--no-progress"] + [t for kv in opts.items() if kv[1] is not None for t in kv]


@pytest.mark.parametrize("overrides, message", [
    ({"--alphas": "0,1.5"}, "alpha must lie in [0, 1], got 1.5"),
    ({"--alphas": "a:b"}, "cannot read --alphas"),
    ({"--dataset": "cifar", "--qubits": None}, "argument --dataset: invalid choice: 'cifar'"),
    ({"--model": "cnn"}, "argument --model: invalid choice: 'cnn'"),
    ({"--corruption": "blur"}, "argument --corruption: invalid choice: 'blur'"),
    ({"--dataset": "mnist", "--qubits": "5"}, "--qubits applies to spin chains"),
    ({"--dataset": "mnist", "--qubits": None, "--mnist-path": "/nonexistent/mnist.npz"}, "does not exist"),
    ({"--dtype": "complex32"}, "argument --dtype: invalid choice: 'complex32'"),
    ({"--epochs": "0"}, "epochs must be a positive integer"),
    ({"--n-train": "2", "--alphas": "1.0", "--model": "mlp"}, None),
])
def test_bad_input_is_named_before_any_work(tmp_path, capsys, overrides, message):
    out = tmp_path / "bad"
    rc = main(_tiny(**overrides) + ["--out", str(out)])
    if message is None:  # alpha = 1 flips every label: allowed, and it runs
        assert rc == 0
        return
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("qrobust: error:") and message in err, err
    assert not out.exists()


def test_malformed_mnist_file_is_refused_before_any_work(tmp_path, capsys):
    bad = tmp_path / "mnist.npz"
    bad.write_bytes(b"not a zip file")
    out = tmp_path / "out"
    assert main(["sweep", "--dataset", "mnist", "--mnist-path", str(bad), "--out", str(out), "--no-progress"]) == 2
    assert "cannot read" in capsys.readouterr().err and not out.exists()


def test_eval_every_records_every_kth_and_the_last_epoch(tmp_path):
    out = tmp_path / "run"
    assert main(TINY_XXZ + ["--model", "mlp", "--out", str(out), "--eval-every", "2"]) == 0
    results = pd.read_csv(out / "results.csv")
    assert results.groupby(["corruption", "alpha", "seed"]).epoch.apply(list).map(lambda e: e == [2, 3]).all()
    assert results[["loss", "train_acc", "val_acc"]].notna().all().all()
