"""The attack study: its verdict rules on synthetic damage curves whose answer is known by construction, the
certified-accuracy tables against direct counting, bad input refused before any work, and (slow) the study end to
end on a tiny grid."""

import numpy as np
import pandas as pd
import pytest

from qrobust.analysis.attack import certified_curves, certified_summary, damage
from qrobust.analysis.certify import dpa_certificate
from qrobust.analysis.claims import attack_claims
from qrobust.cli import main

ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4)


def _results(curves: dict, seeds=range(6), noise=0.005, seed=0):
    """Final-epoch rows: curves[(model, corruption)](alpha) is the mean validation accuracy, plus seed noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for (model, corruption), val in curves.items():
        for s in seeds:
            for a in ALPHAS:
                rows.append(dict(model=model, arch="-", corruption=corruption, alpha=a, seed=s, learning_rate=0.01,
                                 epoch=5, val_acc=val(a) + (0 if a == 0 else noise * rng.normal()),
                                 diverged=False, n_corrupted=int(round(a * 100))))
    return pd.DataFrame(rows)


def _verdicts(results):
    return {(v.claim.split(": ", 1)[1]): v.verdict for v in attack_claims(results, "attack", "TEST")}


def test_a_plateau_that_survives_every_attack_holds_and_one_that_falls_departs():
    """The QNN stays flat under every attack (holds); the MLP falls by 0.3 under the influence attack only
    (departs: the strongest attack is read, not the mean); both: the attack does more damage than random flips
    exactly where it was built to."""
    flat, linear, steep = (lambda a: 0.9), (lambda a: 0.9 - 0.5 * a), (lambda a: 0.9 - 0.75 * a)
    results = _results({("qnn", "flip"): flat, ("qnn", "gradient"): flat, ("qnn", "influence"): flat,
                        ("mlp", "flip"): linear, ("mlp", "gradient"): linear, ("mlp", "influence"): steep})
    v = _verdicts(results)
    assert v["the QNN's validation plateau below alpha 0.5 survives the strongest attack"] == "holds"
    assert v["the MLP's validation plateau below alpha 0.5 survives the strongest attack"] == "departs"
    assert v["the strongest attack does more damage to the MLP than random flips"] == "holds"
    assert v["the strongest attack does more damage to the QNN than random flips"] != "holds"


def test_a_fall_near_the_threshold_is_indeterminate():
    """A fall of 0.05 (the rule's threshold) with seed noise straddles it: indeterminate, not holds."""
    near = lambda a: 0.9 - 0.125 * a  # noqa: E731 (falls 0.05 by alpha 0.4)
    results = _results({("qnn", "flip"): (lambda a: 0.9), ("qnn", "gradient"): near}, noise=0.02)
    v = _verdicts(results)
    assert v["the QNN's validation plateau below alpha 0.5 survives the strongest attack"] == "indeterminate"


def test_damage_leaves_diverged_replicas_out():
    results = _results({("qnn", "flip"): (lambda a: 0.8)}, seeds=range(3))
    results.loc[(results.seed == 0) & (results.alpha == 0.2), ["val_acc", "diverged"]] = [0.0, True]
    table = damage(results)
    row = table[(table.alpha == 0.2)].iloc[0]
    assert row.n_seeds == 2 and abs(row.val_acc - 0.8) < 0.02


def test_certified_curves_count_what_the_votes_certify():
    """Per seed and r: the fraction of validation points the ensemble gets right with a certificate >= r,
    counted directly; the summary's mean over seeds counts a seed whose certificates ended as 0."""
    rng = np.random.default_rng(0)
    votes = rng.integers(0, 2, size=(2, 7, 40))
    votes[0, :, :10] = 1  # unanimous points: certificate 3 (7 votes: (7 - 0 - 1) // 2)
    y = rng.integers(0, 2, 40)
    y[:10] = 1
    table = certified_curves({"seeds": np.array([3, 5]), "qnn": votes}, y, n_train=100)
    for i, seed in enumerate((3, 5)):
        pred, cert = dpa_certificate(votes[i])
        rows = table[table.seed == seed]
        assert rows.flips.max() == cert.max()
        for r in rows.itertuples():
            assert r.certified_acc == pytest.approx(np.mean((pred == y) & (cert >= r.flips)))
            assert r.alpha == r.flips / 100
    summary = certified_summary(table)
    top = summary[summary.flips == 3].iloc[0]
    seed5 = table[(table.seed == 5) & (table.flips == 3)].certified_acc
    assert top.certified_acc == pytest.approx((0.25 + (seed5.iloc[0] if len(seed5) else 0.0)) / 2)


@pytest.mark.parametrize("args, words", [
    (["--partitions", "1"], "--partitions"),
    (["--smoothing-q", "0.5"], "--smoothing-q"),
    (["--corruption", "gradient"], "keep --corruption flip"),
    (["--rounds", "0"], "--rounds"),
    (["--dpa-attacked", "every"], "--dpa-attacked"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    assert main(["attack", "--out", str(out), *args]) == 2
    assert words in capsys.readouterr().err and not out.exists()


def test_a_plain_sweep_refuses_the_adaptive_attacks(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sweep", "--corruption", "influence", "--out", str(out)]) == 2
    assert "qrobust attack" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow  # 22 s here with the resume (measured once, quiet machine); minutes under load
def test_the_attack_study_end_to_end(tmp_path, monkeypatch):
    """A tiny grid (logistic regression, 2 seeds, alpha 0 and 0.3): every table written, the adaptive attacks'
    flips at the random flips' counts, the partition ensembles' certified accuracy at 0 flips equal to their
    accuracy, the ensembles trained under every attack at alpha 0.3 (the default), and the verdicts read. Resumed
    (attack.csv removed), the run reads the attacks' priorities it stored (computing them again fails here) and
    writes the same tables, but for the measured cost, reading every cell's partition models from their chunks
    (training them fails here); a run interrupted before one cell trains that cell alone, to the same tables."""
    from qrobust.experiments import adversary, attack
    from qrobust.experiments.attack import AttackConfig, run_attack

    out = tmp_path / "run"
    config = AttackConfig(models=("logistic",), seeds=2, n_train_per_class=20, epochs=4, alphas=(0.0, 0.3),
                          partitions=4, unroll_steps=3)
    table = run_attack(config, out, progress=False)
    names = ("attack.csv", "certified.csv", "dpa_attacked.csv", "smoothing.csv", "results.csv", "summary.csv")
    for name in names + ("cost.csv",):
        assert (out / name).is_file()
    counts = table.groupby("alpha").n_corrupted.nunique()
    assert (counts == 1).all()
    certified = table.attrs["certified"]
    zero = certified[certified.flips == 0]
    assert np.allclose(zero.certified_acc, zero.ensemble_acc)
    attacked = table.attrs["dpa_attacked"]
    assert sorted(set(attacked.corruption)) == sorted(config.corruptions) and set(attacked.alpha) == {0.3}
    assert len(attacked) == 2 * len(config.corruptions) and (attacked.flips == 12).all()
    assert (attacked.changed_certified == 0).all() and (attacked.certified_acc <= attacked.attacked_acc).all()
    assert set(table.attrs["cost"].attack.str.split().str[0]) >= {"gradient", "influence", "transfer", "dpa"}
    first = {name: (out / name).read_text() for name in names}
    dpa = sorted(p.name for p in (out / "chunks").glob("dpa-logistic-*.csv"))
    assert dpa == [f"dpa-logistic-{cell}-0000.csv" for cell in
                   sorted(["clean"] + [f"{c}-a0.3" for c in config.corruptions])]
    (out / "attack.csv").unlink()
    monkeypatch.setattr(adversary, "priorities", lambda *a, **k: pytest.fail("the priorities were recomputed"))
    real = attack.ensemble_votes
    monkeypatch.setattr(attack, "ensemble_votes", lambda *a, **k: pytest.fail("a partition model was retrained"))
    run_attack(config, out, progress=False)
    assert {name: (out / name).read_text() for name in names} == first
    # interrupted after all but one cell: only that cell's partition models train again, to the same tables
    for suffix in (".csv", ".npz", ".json", ".seconds"):
        (out / "chunks" / f"dpa-logistic-gradient-a0.3-0000{suffix}").unlink()
    trained = []
    monkeypatch.setattr(attack, "ensemble_votes", lambda *a, **k: trained.append(a[3]) or real(*a, **k))
    run_attack(config, out, progress=False)
    assert trained == ["gradient"] and {name: (out / name).read_text() for name in names} == first


def test_the_report_shows_the_ensembles_under_attack_beside_the_full_model(tmp_path):
    """attack_tables: the ensembles' accuracy under each attack (mean over seeds, interval), the clean ensemble's
    certified accuracy at the attack's flips and the full model's accuracy under the same attack, joined by
    model, attack and alpha; a run without dpa_attacked.csv (made before it existed) shows no such table."""
    from qrobust.report import attack_tables
    from qrobust.results import RunResults

    attack = pd.DataFrame(dict(model="qnn", corruption=["flip", "gradient"], alpha=0.4, val_acc=[0.7, 0.4],
                               val_acc_lo=0.0, val_acc_hi=1.0, n_corrupted=200, n_seeds=2))
    dpa = pd.DataFrame(dict(model="qnn", corruption=["flip", "flip", "gradient", "gradient"], alpha=0.4,
                            seed=[0, 1, 0, 1], partitions=10, flips=200, certified_acc=0.0,
                            attacked_acc=[0.8, 0.9, 0.5, 0.6], clean_acc=0.9, certified=0.0, changed=0.1,
                            changed_certified=0))
    certified = pd.DataFrame(dict(model="qnn", seed=[0, 1], partitions=10, flips=0, alpha=0.0,
                                  certified_acc=0.9, ensemble_acc=0.9))
    tables = dict(attack=attack, certified=certified, smoothing=pd.DataFrame(), cost=pd.DataFrame())
    titles = [t for t, _ in attack_tables(RunResults(tmp_path, "attack", {}, tables))]
    assert not any("under each attack" in t for t in titles)
    shown = dict(attack_tables(RunResults(tmp_path, "attack", {}, dict(tables, dpa_attacked=dpa))))
    table = next(v for t, v in shown.items() if "under each attack" in t).set_index("corruption")
    assert table.loc["gradient", "full model acc"] == 0.4 and table.loc["flip", "full model acc"] == 0.7
    assert table.loc["gradient", "ensemble acc under attack"].startswith("0.550")
    assert table.loc["flip", "certified acc at flips"] == 0.0 and table.n_seeds.tolist() == [2, 2]
    assert table.flips.tolist() == [200, 200] and table["certified points changed"].dtype.kind == "i"
