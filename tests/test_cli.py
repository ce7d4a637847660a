"""The command line as a user meets it: --version, a fast --help, the simulator it records."""

import json
import subprocess
import sys

import pytest

from qrobust.cli import main


def test_version_and_help_do_not_load_jax():
    script = ("import sys; from qrobust.cli import build_parser; p = build_parser(); "
              "assert 'jax' not in sys.modules, 'jax imported'; p.parse_args(['--version'])")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("qrobust 0.")


@pytest.mark.parametrize("simulator, expected", [pytest.param("blocks", "blocks", marks=pytest.mark.slow)])
def test_sweep_records_the_simulator_that_ran(tmp_path, simulator, expected):
    out = tmp_path / "run"
    code = main(["sweep", "--dataset", "xxz", "--qubits", "4", "--model", "qnn", "--model", "mlp", "--chunk-size", "1",
                 "--corruption", "flip", "--alphas", "0.2", "--seeds", "1", "--epochs", "1", "--n-train", "4",
                 "--no-progress",
                 "--simulator", simulator, "--out", str(out)])
    assert code == 0
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["simulators"] == {"qnn": expected, "mlp": "-"}
    assert settings["simulator"] == simulator and settings["matmul_precision"] == "highest"


def test_landscape_refuses_native_before_any_work(tmp_path, capsys):
    code = main(["landscape", "--simulator", "native", "--out", str(tmp_path / "run")])
    assert code == 2
    assert "forward mode" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_every_help_text_is_honest_about_defaults_and_usage_errors_are_one_line(capsys):
    """No "(default: None)", no default said twice; a bad choice is one "qrobust: error:" line, exit 2."""
    from qrobust.cli import build_parser, main

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name, sub in commands.items():
        text = sub.format_help()
        assert "(default: None)" not in text and "default both) (default" not in text, name
        # the fixed sets are offered as choices
        if name not in ("analyze", "reproduce", "report"):  # the studies: their data sets as choices
            assert "{mnist,xxz,tfim,cluster,sklearn-digits,npz}" in text, name
    assert "{noise-mnist,noise-xxz," in commands["reproduce"].format_help()
    assert main(["sweep", "--dataset", "cifar", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qrobust: error: argument --dataset: invalid choice") and err.count("\n") == 1


def test_the_clis_literal_choices_are_the_librarys():
    """The CLI spells its fixed choices out (a fast --help imports no library); they must be the library's."""
    from qrobust import cli
    from qrobust.corruption import CORRUPTIONS, LABEL_FLIPS
    from qrobust.data.gauge import GAUGES
    from qrobust.data.phases import GRIDS
    from qrobust.experiments.settings import DATASETS
    from qrobust.models.qnn import SIMULATORS

    assert cli._DATASETS == DATASETS and cli._CORRUPTIONS == CORRUPTIONS and cli._LABEL_FLIPS == LABEL_FLIPS
    assert cli._GAUGES == GAUGES and cli._GRIDS == tuple(GRIDS) and cli._SIMULATORS == tuple(SIMULATORS)
    from qrobust.data.features import ENCODINGS
    from qrobust.models.ansatze import _BUILT_IN, LIBRARY

    assert cli._ENCODINGS == ENCODINGS and set(cli._ANSATZE) == _BUILT_IN and cli._ANSATZE == tuple(LIBRARY)[:4]
    from qrobust.objectives import UNLEARNING_METHODS

    assert cli._METHODS == UNLEARNING_METHODS
