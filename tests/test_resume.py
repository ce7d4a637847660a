"""A run resumes as it was made: with the simulator it recorded, under the numerics it recorded, or not at all."""

import json

import pytest

from qrobust.cli import main

TINY = ["sweep", "--dataset", "xxz", "--qubits", "6", "--n-train", "4", "--model", "qnn", "--corruption", "flip",
        "--alphas", "0", "--seeds", "1", "--epochs", "1", "--no-progress"]


def test_a_run_resumes_with_the_simulator_it_recorded(tmp_path, native_kernel, capsys):
    """Made on "blocks" (as a run is where the native kernel could not build), the same command without
    --simulator resumes on "blocks" although "native" is the default now, and so does --simulator blocks; asking
    for another simulator than the one that ran is refused, naming both."""
    out = str(tmp_path / "run")
    assert main(TINY + ["--simulator", "blocks", "--out", out]) == 0
    (tmp_path / "run" / "results.csv").unlink()  # as if cut short after its chunks
    assert main(TINY + ["--out", out]) == 0
    assert main(TINY + ["--simulator", "blocks", "--out", out]) == 0
    settings = json.loads((tmp_path / "run" / "config.json").read_text())["settings"]
    assert settings["simulators"] == {"qnn": "blocks"}
    capsys.readouterr()
    assert main(TINY + ["--simulator", "native", "--out", out]) == 2
    assert "simulators.qnn: 'blocks' here, 'native' asked for" in capsys.readouterr().err


def test_a_run_resumes_only_under_the_numerics_it_recorded(tmp_path, capsys, monkeypatch):
    """config.json records JAX's numerics (version, 64-bit mode, PRNG, matmul precision, platform); a resume under
    other values would mix two random streams, and is refused naming the difference."""
    from qrobust import provenance

    out = str(tmp_path / "run")
    mlp = [a if a != "qnn" else "mlp" for a in TINY]
    assert main(mlp + ["--out", out]) == 0
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["numerics"]
    assert set(recorded) == {"jax", "jaxlib", "x64", "prng_impl", "threefry_partitionable",
                             "default_matmul_precision", "platform"}
    real = provenance.numerics
    monkeypatch.setattr(provenance, "numerics", lambda: dict(real(), threefry_partitionable=False))
    capsys.readouterr()
    assert main(mlp + ["--out", out]) == 2
    err = capsys.readouterr().err
    assert "threefry_partitionable: True here, False now" in err and err.count("\n") == 1


@pytest.mark.parametrize("seeds, message", [(["--seeds", "4294967296:4294967297"], "below 2**32"),
                                            (["--seeds", "2", "--seed-offset", "4294967295"], "below 2**32")])
def test_seeds_are_range_checked(tmp_path, capsys, seeds, message):
    assert main(TINY[:-5] + seeds + ["--no-progress", "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "run").exists()
