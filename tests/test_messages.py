"""Expected conditions get one clear message, never a traceback; a damaged run is said to be damaged."""

import json

import pandas as pd
import pytest

from qrobust.cli import main


def test_a_damaged_reproduction_record_is_reported_and_resumed(tmp_path, capsys):
    """reproduce.json that does not parse: `report` writes the report and says the record is damaged; a damaged
    part's config.json is reported as damaged, not as "not run"; text quoted from the directory cannot break
    report.md's Markdown."""
    out = tmp_path / "run `x`<b>"
    part = out / "noise-mnist"
    part.mkdir(parents=True)
    (out / "reproduce.json").write_text("{ not json")
    (part / "config.json").write_text("{ not json either")
    pd.DataFrame({"model": ["qnn"], "epoch": [1]}).to_csv(part / "results.csv", index=False)
    assert main(["report", str(out)]) == 0
    printed = capsys.readouterr()
    assert "Traceback" not in printed.err and "damaged" in printed.out
    md = (out / "report.md").read_text()
    assert "reproduce.json is damaged" in md and "**damaged**" in md
    (out / "reproduce.json").write_text(json.dumps({"profile": "tiny", "parts": {"noise-mnist": {
        "seconds": 1.0, "command": f"qrobust sweep --out {part}"}}}))
    assert main(["report", str(out)]) == 0
    md = (out / "report.md").read_text()
    assert "Reproduce: ``qrobust sweep --out " in md and "`x`&lt;b&gt;" not in md.split("Reproduce:")[1].split("\n")[0]


def test_analyze_names_a_damaged_table(tmp_path, capsys):
    run = tmp_path / "sweep"
    run.mkdir()
    table = pd.DataFrame(dict(model="qnn", corruption="flip", alpha=[0.0, "oops"], seed=0, epoch=1, memorization=0.5,
                              train_acc=0.5, train_acc_clean=0.5, val_acc=0.5, diverged=False))
    table.to_csv(run / "results.csv", index=False)
    assert main(["analyze", str(run)]) == 2
    err = capsys.readouterr().err
    assert "column alpha holds 'oops', not a number" in err and "Traceback" not in err
    (run / "results.csv").write_text('model,alpha\n"unclosed,0\n')
    assert main(["analyze", str(run)]) == 2
    assert "does not parse" in capsys.readouterr().err


def test_detect_refuses_an_alpha_that_flips_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["detect", "--dataset", "xxz", "--qubits", "4", "--n-train", "4", "--alphas", "0.1", "--seeds", "1",
                 "--epochs", "1", "--no-baselines", "--no-progress", "--out", str(out)]) == 2
    assert "flips no label of the 8 training samples" in capsys.readouterr().err and not out.exists()


@pytest.mark.parametrize("option", [["--ansatz", "reupload"], ["--encoding", "reupload"]])
def test_reupload_alone_is_refused_by_name(tmp_path, capsys, option):
    out = tmp_path / "run"
    assert main(["sweep", "--dataset", "xxz", "--qubits", "4", "--model", "qnn", *option, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no qnn architecture fits" in err and "Traceback" not in err and not out.exists()
