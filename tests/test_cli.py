"""The command line as a user meets it: --version, a fast --help, the simulator it records."""

import json
import subprocess
import sys

import pytest

from qrobust.cli import main


def test_version_and_help_do_not_load_jax():
    script = ("import sys; from qrobust.cli import build_parser; p = build_parser(['--version']); "
              "p.format_help(); assert 'jax' not in sys.modules, 'jax imported'; p.parse_args(['--version'])")
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
        if name not in ("analyze", "reproduce", "report", "merge", "gauge"):  # the studies: their data sets as choices
            assert "{mnist,xxz,tfim,cluster,sklearn-digits,npz}" in text, name
    assert "--dataset {xxz,tfim,cluster}" in commands["gauge"].format_help()  # quantum data only
    assert "{noise-mnist,noise-xxz," in commands["reproduce"].format_help()
    assert main(["sweep", "--dataset", "cifar", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qrobust: error: argument --dataset: invalid choice") and err.count("\n") == 1


def test_every_study_is_a_command_whose_options_are_its_configs_fields():
    """Options are declared once, on the config's fields: every study of the registry is a command, each option
    names a field, and the library's own choices are offered (no copies in the CLI)."""
    from qrobust.cli import build_parser
    from qrobust.corruption import CORRUPTIONS
    from qrobust.experiments import registry
    from qrobust.experiments.settings import DATASETS
    from qrobust.models.qnn import SIMULATORS
    from qrobust.options import flag_of, options_of

    commands = build_parser()._subparsers._group_actions[0].choices
    for name in registry.names():
        entry = registry.study(name)
        parser = commands[entry.command]
        dests = {a.dest for a in parser._actions}
        for field, opt, _ in options_of(entry.get("config")):
            assert field in dests, (name, field)
            assert flag_of(field, opt) in parser._option_string_actions, (name, field)
    sweep = commands["sweep"].format_help()
    assert "{" + ",".join(DATASETS) + "}" in sweep and "{" + ",".join(CORRUPTIONS) + "}" in sweep
    assert "{auto," + ",".join(SIMULATORS) + "}" in sweep


def test_verbosity_works_before_and_after_the_command(tmp_path):
    from qrobust.cli import build_parser

    for argv in (["-v", "report", "x"], ["report", "x", "-v"], ["report", "-v", "x"]):
        assert build_parser(argv).parse_args(argv).verbose == 1, argv
    assert build_parser(["report", "x"]).parse_args(["report", "x"]).verbose == 0


def test_seeds_are_a_count_a_list_or_a_range_on_the_cli_as_in_the_api(tmp_path):
    from qrobust.cli import build_parser, config_of
    from qrobust.experiments import registry

    sweep = registry.study("sweep")
    for argv, seeds in ((["--seeds", "3"], (0, 1, 2)), (["--seeds", "2", "--seed-offset", "5"], (5, 6)),
                        (["--seeds", "3,7"], (3, 7)), (["--seeds", "10:12"], (10, 11, 12)), ([], (0, 1, 2, 3, 4))):
        full = ["sweep", "--out", str(tmp_path), *argv]
        assert config_of(sweep, build_parser(full).parse_args(full)).seeds == seeds, argv
    from qrobust.experiments import SweepConfig

    assert SweepConfig(seeds=3).seeds == (0, 1, 2)
