"""The three-valued verdicts of qrobust.analysis.claims: each rule reads the 95% bootstrap interval (over seeds) of
its quantity; holds / departs where the whole interval is on one side of the threshold, indeterminate where it
straddles, undefined for NaN; the generic rules applied to controls; the unlearning rule's "nothing to regain"."""

import re

import numpy as np
import pandas as pd
import pytest

from qrobust.analysis import claims

ALPHAS = np.round(np.arange(10) * 0.1, 1)
SEEDS = (0, 1, 2, 3, 4, 5)


def _refusing_train(a, s):  # a learner that fits the label majority: 1 - alpha below 0.5, alpha above
    return np.where(a < 0.5, 1 - a, a)


def _refusing_val(a, s):  # the majority rule is the clean rule below 0.5, the inverted one above
    return np.where(a < 0.5, 0.97, 0.04)


def _memorising_train(a, s):
    return np.ones_like(a)


def _memorising_val(a, s):
    return 1 - 0.7 * a  # at alpha 0.9: 0.37, not the inverted rule


def _table(models: dict, seeds=SEEDS, diverged=lambda model, corruption, a, s: False) -> pd.DataFrame:
    """A sweep's results: per model (train(alpha, seed), val(alpha, seed)) under flipping; features leave val at
    val(0)."""
    rows = []
    for model, (train, val) in models.items():
        for corruption in ("flip", "features"):
            for s in seeds:
                t, v = train(ALPHAS, s), val(ALPHAS, s)
                if corruption == "features":
                    v = np.full_like(v, v[0])
                for a, ti, vi in zip(ALPHAS, t, v):
                    rows.append(dict(model=model, corruption=corruption, alpha=a, seed=s, epoch=3, train_acc=ti,
                                     train_acc_clean=ti, val_acc=vi, memorization=float(a >= 0.5),
                                     learning_rate=0.01, diverged=diverged(model, corruption, a, s)))
    return pd.DataFrame(rows)


def _critical(models=("qnn",), a=0.5, lo=0.47, hi=0.53, transition=True, reason="", n_seeds=len(SEEDS)):
    return pd.DataFrame([dict(model=m, corruption="flip", alpha_c_memorization=a, alpha_c_memorization_lo=lo,
                              alpha_c_memorization_hi=hi, transition=transition, reason=reason, n_seeds=n_seeds)
                         for m in models])


def _by_claim(verdicts) -> dict:
    return {v.claim.split(": ", 1)[1][:24]: v for v in verdicts}


def _mlp_train(low_by_seed):
    """The MLP memorises except at alpha 0.5, where seed s reaches ``low_by_seed[s]``."""
    def train(a, s):
        return np.where(np.isclose(a, 0.5), low_by_seed[s], 1.0)
    return train


def _memorises(low_by_seed, seeds=SEEDS, **kw) -> claims.Verdict:
    table = _table({"qnn": (_refusing_train, _refusing_val), "mlp": (_mlp_train(low_by_seed), _memorising_val)},
                   seeds=seeds, **kw)
    return _by_claim(claims.noise_claims(table, _critical(), "p", "toy"))["the MLP reaches training"]


def _bounds(interval: str) -> tuple[float, float]:
    lo, hi = re.search(r"\[([-0-9.]+), ([-0-9.]+)\]", interval).groups()
    return float(lo), float(hi)


def test_an_interval_above_below_or_across_the_threshold_holds_departs_or_is_indeterminate():
    above = _memorises([0.99, 0.98, 1.0, 0.985, 0.995, 0.99])
    assert above.verdict == "holds" and _bounds(above.interval)[0] >= 0.95
    below = _memorises([0.86, 0.88, 0.85, 0.87, 0.86, 0.9])
    assert below.verdict == "departs" and _bounds(below.interval)[1] < 0.95
    # a knife edge: the mean, 0.952, is above 0.95 (the old reading: holds), the interval straddles it
    edge = _memorises([0.93, 0.97, 0.94, 0.96, 0.955, 0.957])
    assert edge.measured == "min train acc 0.952" and edge.verdict == "indeterminate"
    lo, hi = _bounds(edge.interval)
    assert lo < 0.95 < hi and edge.interval.startswith("min train acc [")


def test_the_interval_is_the_documented_percentile_bootstrap_over_seeds():
    low = [0.93, 0.97, 0.94, 0.96, 0.955, 0.957]
    edge = _memorises(low)
    draws = np.random.default_rng(claims.RNG_SEED).integers(0, len(SEEDS), size=(claims.N_BOOT, len(SEEDS)))
    resampled = np.asarray(low)[draws].mean(axis=1)  # the MLP's lowest mean training accuracy is at alpha 0.5
    q = 100 * (1 - claims.LEVEL) / 2
    lo, hi = np.percentile(resampled, q), np.percentile(resampled, 100 - q)
    assert edge.interval == f"min train acc [{lo:.3f}, {hi:.3f}]"
    assert claims.N_BOOT == 1000 and claims.LEVEL == 0.95


def test_the_bootstrap_is_reproducible():
    table = _table({"qnn": (lambda a, s: _refusing_train(a, s) - 0.02 * s, _refusing_val),
                    "mlp": (_mlp_train([0.93, 0.97, 0.94, 0.96, 0.955, 0.957]), _memorising_val)})
    first = claims.noise_claims(table, _critical(), "p", "toy")
    again = claims.noise_claims(table.sample(frac=1.0, random_state=3), _critical(), "p", "toy")  # row order
    assert first == again
    assert all(v.interval not in ("", "-") for v in first)


def test_a_nan_is_undefined_never_a_verdict():
    every_replica_diverged = lambda model, corruption, a, s: model == "mlp" and corruption == "flip" and a == 0.3
    v = _memorises([0.99] * 6, diverged=every_replica_diverged)
    assert v.verdict == "undefined" and v.interval == "-"
    crit = _critical(a=np.nan, lo=np.nan, hi=np.nan, transition=False, reason="too few seeds for a fit")
    table = _table({"qnn": (_refusing_train, _refusing_val), "mlp": (_memorising_train, _memorising_val)})
    point = _by_claim(claims.noise_claims(table, crit, "p", "toy"))["near alpha ~ 0.5 the QNN"]
    assert point.verdict == "undefined" and "too few seeds" in point.measured
    crit = _critical(a=np.nan, lo=np.nan, hi=np.nan, transition=True)
    assert _by_claim(claims.noise_claims(table, crit, "p", "toy"))["near alpha ~ 0.5 the QNN"].verdict == "undefined"


def test_one_seed_reads_the_point_and_says_there_is_no_interval():
    edge = _memorises({0: 0.952}, seeds=(0,))
    assert edge.verdict == "holds" and edge.interval == claims.ONE_RUN == "- (no interval: 1 run)"
    assert _memorises({0: 0.94}, seeds=(0,)).verdict == "departs"


def test_a_compound_rule_departs_if_any_part_departs_and_holds_only_if_every_part_holds():
    def qnn_train(spread):  # at alpha 0.9 the seeds' training accuracy straddles (or misses) 0.8
        return lambda a, s: np.where(np.isclose(a, 0.9), spread[s], _refusing_train(a, s))
    mlp = (_memorising_train, _memorising_val)

    def inverted(spread):
        table = _table({"qnn": (qnn_train(spread), _refusing_val), "mlp": mlp})
        return _by_claim(claims.noise_claims(table, _critical(), "p", "toy"))["beyond it the QNN learns"]

    assert inverted([0.88, 0.9, 0.86, 0.87, 0.9, 0.89]).verdict == "holds"
    straddles = inverted([0.7, 0.9, 0.75, 0.88, 0.72, 0.9])
    assert straddles.verdict == "indeterminate"
    assert straddles.interval.startswith("val 0.040 (every run equal); train acc [")  # each part's interval, named
    assert inverted([0.6, 0.65, 0.62, 0.6, 0.61, 0.66]).verdict == "departs"


def test_the_critical_point_reads_its_interval_against_the_range():
    table = _table({"qnn": (_refusing_train, _refusing_val), "mlp": (_memorising_train, _memorising_val)})

    def verdict(**kw):
        v = _by_claim(claims.noise_claims(table, _critical(**kw), "p", "toy"))["near alpha ~ 0.5 the QNN"]
        return v.verdict, v.interval

    assert verdict(a=0.5, lo=0.45, hi=0.55) == ("holds", "alpha_c [0.450, 0.550]")
    assert verdict(a=0.58, lo=0.55, hi=0.65)[0] == "indeterminate"
    assert verdict(a=0.7, lo=0.65, hi=0.75)[0] == "departs"
    assert verdict(a=0.5, lo=0.5, hi=0.5, n_seeds=1) == ("holds", claims.ONE_RUN)
    assert verdict(a=np.nan, lo=np.nan, hi=np.nan, transition=False,
                   reason="M does not cross 1/2 in the measured range")[0] == "departs"  # no step: the claim departs


def test_the_generic_rules_are_marked_and_passed_by_a_non_memorising_control():
    table = _table({"qnn": (_refusing_train, _refusing_val), "mlp": (_memorising_train, _memorising_val),
                    "linear": (_refusing_train, _refusing_val), "wide": (_memorising_train, _memorising_val)})
    critical = pd.concat([_critical(("qnn", "linear")),
                          _critical(("wide",), a=np.nan, lo=np.nan, hi=np.nan, transition=False,
                                    reason="M does not cross 1/2 in the measured range")])
    verdicts = claims.noise_claims(table, critical, "p", "toy")
    generic = [v for v in verdicts if v.generic]
    assert len(generic) == 4 and all(v.generic == claims.GENERIC for v in generic)
    assert {v.claim.split(": ", 1)[1][:24] for v in generic} == {
        "the QNN's training accur", "the QNN's validation acc", "near alpha ~ 0.5 the QNN", "beyond it the QNN learns"}
    assert all(v.verdict == "holds" and v.also_passed_by == "linear" for v in generic)
    assert all(v.also_passed_by == "" for v in verdicts if not v.generic)  # the MLP's and the features rule
    passing = claims.controls_passing(table, critical)
    assert set(passing) == {r.claim for r in claims.NOISE_RULES if r.generic}
    assert all(models == ["linear"] for models in passing.values())
    # only a memorising control: none of the controls passes, and the report says so
    table = table[table.model != "linear"]
    assert {v.also_passed_by for v in claims.noise_claims(table, critical, "p", "toy") if v.generic} == {"none of wide"}
    # no controls: no "also passed by" at all
    table = table[table.model != "wide"]
    assert all(v.also_passed_by == "" for v in claims.noise_claims(table, critical, "p", "toy"))
    assert claims.controls_passing(table, critical) == {r.claim: [] for r in claims.NOISE_RULES if r.generic}


def _unlearning(teacher_gap, student_gap, seeds=SEEDS):
    rows, final = [], []
    for s in seeds:
        clean = 0.95 + 0.002 * s
        for model in ("qnn", "mlp"):
            for method in ("retrain", "finetune", "scrub"):
                val = (clean - student_gap - 0.003 * (s % 2) if model == "qnn" and method != "retrain"
                       else clean - 0.3 if model == "mlp" and method != "retrain" else 0.6)
                rows.append(dict(model=model, method=method, seed=s, epoch=5, val_acc=val, diverged=False))
                final.append(dict(model=model, method=method, seed=s, clean_val_acc=clean,
                                  teacher_val_acc=clean - teacher_gap - 0.004 * (s % 3)))
    return claims.unlearning_claims(pd.DataFrame(rows), pd.DataFrame(final), "u", "XXZ")


def test_a_teacher_that_lost_nothing_leaves_nothing_to_regain():
    regains = _by_claim(_unlearning(teacher_gap=0.3, student_gap=0.01))["the QNN regains high val"]
    assert regains.verdict == "holds" and "the poisoned teacher 0.30" in regains.measured
    assert "the teacher's gap to clean [" in regains.interval
    nothing = _by_claim(_unlearning(teacher_gap=-0.007, student_gap=0.01))["the QNN regains high val"]
    assert nothing.verdict == "indeterminate" and nothing.measured.endswith(": nothing to regain")
    assert "the poisoned teacher -0.00" in nothing.measured
    # a student that ends far below clean still departs, whatever the teacher lost
    assert _by_claim(_unlearning(teacher_gap=0.0, student_gap=0.2))["the QNN regains high val"].verdict == "departs"
    others = _by_claim(_unlearning(teacher_gap=0.3, student_gap=0.01))
    assert others["the MLP's memories of th"].verdict == "holds"
    assert others["retraining from scratch "].verdict == "holds"


def test_the_report_shows_the_interval_the_indeterminate_verdict_and_the_controls():
    from qrobust import paper_report

    plain = claims.Verdict("c", "r", "m", "indeterminate", "p", "", "q [0.1, 0.2]")
    generic = claims.Verdict("<c>", "r", "m", "holds", "p", "", "q [0.1, 0.2]", claims.GENERIC, "linear")
    md = paper_report._verdict_table_md([plain])
    assert "also passed by" not in md[0] and md[2].count(" | ") == 5 and "*indeterminate*" in md[2]
    md = paper_report._verdict_table_md([plain, generic])
    assert "also passed by" in md[0] and md[3].endswith("| linear |") and "*(generic: any learner" in md[3]
    page = paper_report._verdict_table_html([plain, generic])
    assert '<td class="indeterminate">indeterminate</td><td class="paper">' in page
    assert '<td class="interval">q [0.1, 0.2]</td>' in page and "&lt;c&gt;" in page
    assert '<div class="generic">generic: any learner' in page and '<td class="also">linear</td>' in page
    assert "td.indeterminate" in paper_report._STYLE
    assert "also passed by" not in paper_report._verdict_table_html([plain])


@pytest.mark.parametrize("published", [True, False])
def test_the_published_runs_are_resampled_like_seeds(published):
    """The paper's five runs per point give an interval: on XXZ the MLP's lowest training accuracy, 0.939, no longer
    departs from 0.95 but is indeterminate."""
    from qrobust.paper import published_noise

    table = published_noise("xxz")
    ours = _table({"qnn": (_refusing_train, _refusing_val), "mlp": (_memorising_train, _memorising_val)})
    v = _by_claim(claims.noise_claims(ours, None, "p", "xxz", table if published else None))[
        "the MLP reaches training"]
    if published:
        assert v.paper.startswith("indeterminate: min train acc 0.939; 95% interval: min train acc [")
        lo, hi = _bounds(v.paper)
        assert lo < 0.95 < hi
    else:
        assert v.paper == ""


def test_qrobusts_own_judges_print_their_intervals_too():
    """Landscape, capacity and gauge read the same bootstrap over seeds; the scorecard (one AUC per method) says
    it has no interval."""
    rows = [dict(model=m, alpha=a, seed=s, ratio=(1 + (30 * a if m == "mlp" else 0.1 * a)) * (1 + 0.05 * s))
            for m in ("qnn", "mlp") for a in (0.0, 0.1, 0.3, 0.5) for s in range(4)]
    grows, near = claims.landscape_claims(pd.DataFrame(rows), "l")
    assert grows.verdict == near.verdict == "holds"
    assert grows.interval.startswith("MLP ratio at the largest alpha [16.")
    rows = [dict(model=m, arch=arch, corruption="flip", alpha=a, seed=s, epoch=2, train_acc=1.0, train_acc_clean=1.0,
                 val_acc=1.0, memorization=(0.5 if m == "mlp" else 0.45) + 0.1 * (-1) ** s * (arch in ("h16", "d6")),
                 learning_rate=0.01, diverged=False)
            for m, archs in (("qnn", ("d2", "d6")), ("mlp", ("h16", "h64"))) for arch in archs
            for s in range(6) for a in (0.0, 0.3, 0.6)]
    capacity = claims.capacity_claims(pd.DataFrame(rows), "c")[0]
    assert capacity.interval.startswith("smallest MLP - largest QNN memorisation [")
    assert capacity.verdict == "indeterminate"  # 0.5 - 0.45 at the point, the seeds' spread straddles 0
    card = pd.DataFrame([dict(model=m, method="finetune", auc=x, diverged=False)
                         for m, x in (("qnn", 0.5), ("mlp", 0.7))])
    old = claims.scorecard_claims(card, "s")  # a card without intervals: the values decide
    assert len(old) == 1 and old[0].verdict == "holds" and old[0].interval == "finetune: QNN -, MLP -"


def test_a_scorecard_interval_the_shadows_could_not_resolve_is_indeterminate_not_a_point_verdict():
    rows = [dict(model="qnn", method="finetune", auc=0.6, auc_lo=0.55, auc_hi=0.65, removed=0.8, removed_lo=np.nan,
                 removed_hi=np.nan, diverged=False),
            dict(model="mlp", method="finetune", auc=0.9, auc_lo=0.85, auc_hi=0.95, removed=0.3, removed_lo=0.2,
                 removed_hi=0.45, diverged=False)]
    auc, removed = claims.scorecard_claims(pd.DataFrame(rows), "s")
    assert auc.verdict == "holds" and removed.verdict == "indeterminate"
    # where several scorecards share a report, each claim names its dataset
    named = claims.scorecard_claims(pd.DataFrame(rows), "s", "XXZ")
    assert [v.claim for v in named] == ["XXZ: " + auc.claim, "XXZ: " + removed.claim]


def test_an_interval_of_runs_that_all_agree_is_not_printed_as_zero_width():
    from qrobust.analysis.intervals import bounds

    assert bounds(0.99, 0.99) == "0.990 (every run equal)" and bounds(0.95, 0.99) == "[0.950, 0.990]"


@pytest.mark.parametrize("qnn, mlp, verdict", [((0.55, 0.50, 0.60), (0.80, 0.75, 0.85), "holds"),
                                               ((0.70, 0.62, 0.78), (0.75, 0.70, 0.80), "indeterminate"),
                                               ((0.90, 0.86, 0.94), (0.70, 0.65, 0.75), "departs")])
def test_the_scorecard_reads_the_shadows_intervals(qnn, mlp, verdict):
    """AUC and the share of the own leak removed, each judged by whether the two models' intervals separate."""
    rows = []
    for model, (auc, lo, hi) in (("qnn", qnn), ("mlp", mlp)):
        removed = (0.95 - auc) / 0.45
        rows.append(dict(model=model, method="finetune", auc=auc, auc_lo=lo, auc_hi=hi, diverged=False,
                         removed=removed, removed_lo=(0.95 - hi) / 0.45, removed_hi=(0.95 - lo) / 0.45))
    auc, removed = claims.scorecard_claims(pd.DataFrame(rows), "s")
    assert auc.verdict == removed.verdict == verdict  # one leak for both: the two readings agree
    assert auc.interval == f"finetune: QNN [{qnn[1]:.3f}, {qnn[2]:.3f}], MLP [{mlp[1]:.3f}, {mlp[2]:.3f}]"
