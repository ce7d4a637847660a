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
])
def test_bad_input_is_refused_before_any_work(tmp_path, capsys, args, words):
    out = tmp_path / "run"
    assert main(["attack", "--out", str(out), *args]) == 2
    assert words in capsys.readouterr().err and not out.exists()


def test_a_plain_sweep_refuses_the_adaptive_attacks(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["sweep", "--corruption", "influence", "--out", str(out)]) == 2
    assert "qrobust attack" in capsys.readouterr().err and not out.exists()


@pytest.mark.slow  # about two minutes on 2 cores
def test_the_attack_study_end_to_end(tmp_path):
    """A tiny grid (logistic regression, 2 seeds, alpha 0 and 0.3): every table written, the adaptive attacks'
    flips at the random flips' counts, the partition ensembles' certified accuracy at 0 flips equal to their
    accuracy, and the verdicts read."""
    from qrobust.experiments.attack import AttackConfig, run_attack

    out = tmp_path / "run"
    table = run_attack(AttackConfig(models=("logistic",), seeds=2, n_train_per_class=20, epochs=4, alphas=(0.0, 0.3),
                                    partitions=4, unroll_steps=3), out, progress=False)
    for name in ("attack.csv", "certified.csv", "smoothing.csv", "cost.csv", "results.csv"):
        assert (out / name).is_file()
    counts = table.groupby("alpha").n_corrupted.nunique()
    assert (counts == 1).all()
    certified = table.attrs["certified"]
    zero = certified[certified.flips == 0]
    assert np.allclose(zero.certified_acc, zero.ensemble_acc)
    assert set(table.attrs["cost"].attack.str.split().str[0]) >= {"gradient", "influence", "transfer", "dpa"}
