"""The "Is it quantum?" reading (qrobust.analysis.controls) on synthetic sweeps whose answer is known by
construction, and the controls study end to end on a tiny sweep."""

import numpy as np
import pandas as pd
import pytest

from qrobust.analysis.controls import MARGINS, quantities, specificity

ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _model_rows(model, seeds, memorization, val, rng, noise=0.01):
    """Final-epoch rows of one model: memorization(alpha) and val(alpha) plus seed noise."""
    rows = []
    for s in seeds:
        for a in ALPHAS:
            rows.append(dict(model=model, arch="-", corruption="flip", alpha=a, seed=s, learning_rate=0.01, epoch=5,
                             train_acc=1.0, val_acc=float(np.clip(val(a) + noise * rng.normal(), 0, 1)),
                             memorization=np.nan if a == 0 else float(np.clip(memorization(a) + noise * rng.normal(),
                                                                              0, 1)),
                             diverged=False, n_corrupted=int(round(a * 100))))
    return rows


def _step(at):
    return lambda a: float(a > at)


def _critical(models, transition):
    rows = []
    for m in models:
        t = transition.get(m)
        rows.append(dict(model=m, corruption="flip", transition=t is not None,
                         alpha_c_memorization=np.nan if t is None else t[0],
                         alpha_c_memorization_lo=np.nan if t is None else t[1],
                         alpha_c_memorization_hi=np.nan if t is None else t[2],
                         reason="" if t is not None else "M does not cross 1/2 in the measured range"))
    return pd.DataFrame(rows)


def _sweep(controls: dict, seeds=range(12), seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    rows = _model_rows("qnn", seeds, _step(0.5), lambda a: 0.95 - 0.9 * float(a > 0.5), rng, noise)
    rows += _model_rows("mlp", seeds, lambda a: 1.0, lambda a: 0.95 - a, rng, noise)
    for name, (mem, val) in controls.items():
        rows += _model_rows(name, seeds, mem, val, rng, noise)
    return pd.DataFrame(rows)


def test_a_control_that_refuses_the_flips_too_makes_the_claim_shared():
    sweep = _sweep({"alike": (_step(0.5), lambda a: 0.94 - 0.9 * float(a > 0.5))})
    crit = _critical(["qnn", "mlp", "alike"], {"qnn": (0.5, 0.45, 0.55), "alike": (0.5, 0.46, 0.54)})
    table = quantities(sweep, crit)
    verdicts = specificity(table).set_index("quantity").verdict
    assert verdicts["memorization"] == "shared (by alike)"
    assert verdicts["plateau"] == "shared (by alike)"
    assert verdicts["alpha_c"] == "shared (by alike)"
    row = table.set_index("model").loc["qnn"]
    assert row.memorization_lo <= row.memorization <= row.memorization_hi
    assert row.memorization < 0.05 and row.memorization_hi - row.memorization_lo < 0.05


def test_controls_that_all_memorise_make_the_claim_qnn_specific():
    memorisers = {name: (lambda a: 0.9, lambda a: 0.95 - 0.8 * a) for name in ("c1", "c2")}
    sweep = _sweep(memorisers)
    crit = _critical(["qnn", "mlp", "c1", "c2"], {"qnn": (0.5, 0.45, 0.55)})
    verdicts = specificity(quantities(sweep, crit)).set_index("quantity").verdict
    assert verdicts["memorization"] == "QNN-specific"
    assert verdicts["plateau"] == "QNN-specific"
    assert verdicts["alpha_c"] == "QNN-specific"  # the controls have no step at all: they differ in kind


def test_a_difference_near_the_margin_is_indeterminate():
    near = MARGINS["memorization"]  # a control memorising about the margin more than the QNN, with seed noise
    sweep = _sweep({"near": (lambda a: float(a > 0.5) + near + 0.05, lambda a: 0.94 - 0.9 * float(a > 0.5))},
                   seeds=range(6), noise=0.05)
    table = quantities(sweep, _critical(["qnn", "mlp", "near"], {}))
    row = table.set_index("model")
    lo, hi = np.percentile(table.attrs["samples"]["memorization"]["near"]
                           - table.attrs["samples"]["memorization"]["qnn"], [2.5, 97.5])
    assert lo < near < hi  # the construction: the paired interval straddles the margin
    assert row.loc["near", "memorization_hi"] > row.loc["qnn", "memorization_hi"]
    assert specificity(table).set_index("quantity").verdict["memorization"] == "indeterminate"


def test_a_control_with_the_qnns_critical_point_shares_it_though_the_intervals_are_grid_wide():
    sweep = _sweep({"same": (_step(0.5), lambda a: 0.94 - 0.9 * float(a > 0.5))})
    crit = _critical(["qnn", "mlp", "same"], {"qnn": (0.497, 0.448, 0.548), "same": (0.5, 0.448, 0.548)})
    assert specificity(quantities(sweep, crit)).set_index("quantity").verdict["alpha_c"] == "shared (by same)"
    apart = _critical(["qnn", "mlp", "same"], {"qnn": (0.3, 0.25, 0.35), "same": (0.5, 0.46, 0.54)})
    assert specificity(quantities(sweep, apart)).set_index("quantity").verdict["alpha_c"] == "QNN-specific"


def test_specificity_refuses_a_table_without_its_paired_resamples():
    table = quantities(_sweep({}), _critical(["qnn", "mlp"], {}))
    table.attrs.clear()
    table = pd.concat([table, table.assign(model="c", control=True)], ignore_index=True)
    with pytest.raises(ValueError, match="paired resamples"):
        specificity(table)


def test_a_control_that_learns_nothing_does_not_decide():
    sweep = _sweep({"idle": (lambda a: 0.0, lambda a: 0.5)})
    verdicts = specificity(quantities(sweep, _critical(["qnn", "mlp", "idle"], {})))
    row = verdicts.set_index("quantity").loc["memorization"]
    assert row.verdict == "indeterminate (no control decides)"
    assert "idle: does not decide" in row.controls


def test_the_bootstrap_is_reproducible_and_one_seed_has_no_interval():
    sweep = _sweep({"alike": (_step(0.5), lambda a: 0.9)})
    crit = _critical(["qnn", "mlp", "alike"], {})
    a, b = quantities(sweep, crit), quantities(sweep, crit)
    pd.testing.assert_frame_equal(a, b)
    one = quantities(sweep[sweep.seed == 0], crit)
    assert one.memorization.notna().all()
    assert one.memorization_lo.isna().all() and one.plateau_hi.isna().all()  # never a zero-width interval
    assert specificity(one).verdict.str.startswith("indeterminate").all()


@pytest.mark.slow
def test_the_controls_study_runs_end_to_end(tmp_path):
    """A tiny controls study: a run directory naming the study, the two tables, a row per model."""
    from qrobust.experiments.controls import ControlsConfig, run_controls
    from qrobust.experiments.registry import study_of

    config = ControlsConfig(dataset="mnist", n_train_per_class=12, models=("qnn", "mlp", "logistic"), seeds=(0, 1),
                            alphas=(0.0, 0.3, 0.6), epochs=2)
    table = run_controls(config, tmp_path / "c", progress=False)
    assert set(table.model) == {"qnn", "mlp", "logistic"}
    assert study_of(tmp_path / "c") == "controls"
    assert (tmp_path / "c" / "quantum.csv").is_file()
    assert len(table.attrs["specificity"]) == 3


# --- forgetting per example: the unlearning reading of the controls (scorecard rows made by hand) -------------------


def _card(models: dict) -> pd.DataFrame:
    """A scorecard with, per model, finetune's (auc, half-width), the teacher's ("none") auc, and the retrained
    reference's val acc: models = {name: (auc, half, auc_none, clean_val)}; ``removed`` from them, half-width 0.05."""
    rows = []
    for m, (auc, half, none, clean) in models.items():
        removed = (none - auc) / (none - 0.5)
        rows += [dict(model=m, method="finetune", auc=auc, auc_lo=auc - half, auc_hi=auc + half, removed=removed,
                      removed_lo=removed - 0.05, removed_hi=removed + 0.05, val_acc=clean, diverged=False,
                      n_shadows=64),
                 dict(model=m, method="none", auc=none, auc_lo=none - half, auc_hi=none + half, removed=0.0,
                      removed_lo=0.0, removed_hi=0.0, val_acc=clean, diverged=False, n_shadows=64),
                 dict(model=m, method="retrain_full", auc=np.nan, auc_lo=np.nan, auc_hi=np.nan, removed=np.nan,
                      removed_lo=np.nan, removed_hi=np.nan, val_acc=clean, diverged=False, n_shadows=np.nan)]
    return pd.DataFrame(rows)


def _unlearning_verdicts(models: dict) -> dict:
    from qrobust.analysis.controls import unlearning_specificity, unlearning_table

    out = unlearning_specificity(unlearning_table(_card(models)))
    return dict(zip(out.quantity.str.split(" ").str[0], zip(out.verdict, out.controls)))


def test_mover_gives_the_exact_interval_of_a_difference_of_independent_gaussian_estimates():
    from qrobust.analysis.controls import _mover

    a = pd.Series(dict(auc=0.9, auc_lo=0.9 - 1.96 * 0.03, auc_hi=0.9 + 1.96 * 0.03))
    b = pd.Series(dict(auc=0.6, auc_lo=0.6 - 1.96 * 0.04, auc_hi=0.6 + 1.96 * 0.04))
    lo, hi = _mover(a, b, "auc")
    assert lo == pytest.approx(0.3 - 1.96 * 0.05) and hi == pytest.approx(0.3 + 1.96 * 0.05)  # sd of a - b: 0.05
    assert np.isnan(_mover(a, pd.Series(dict(b, auc_lo=np.nan)), "auc")).all()


def test_controls_that_leak_after_unlearning_make_the_qnns_unlearning_specific():
    got = _unlearning_verdicts({"qnn": (0.60, 0.02, 0.80, 0.97), "mlp": (0.90, 0.02, 0.95, 0.98),
                                "quadratic": (0.75, 0.02, 0.85, 0.96), "logistic": (0.80, 0.03, 0.90, 0.95)})
    assert got["auc"][0] == "QNN-specific" and "quadratic: differs" in got["auc"][1]  # 0.15 - 0.05 combined > 0.05


def test_a_control_that_forgets_as_well_shares_the_claim_and_a_learner_that_fails_does_not_decide():
    got = _unlearning_verdicts({"qnn": (0.60, 0.02, 0.80, 0.97), "mlp": (0.90, 0.02, 0.95, 0.98),
                                "logistic": (0.61, 0.02, 0.70, 0.96), "fidelity_kernel": (0.51, 0.02, 0.52, 0.60)})
    assert got["auc"][0] == "shared (by logistic)"
    assert "fidelity_kernel: does not decide (clean val 0.60)" in got["auc"][1]
    # an excess of 0.06 whose interval reaches below the margin: indeterminate
    near = _unlearning_verdicts({"qnn": (0.60, 0.02, 0.80, 0.97), "quadratic": (0.66, 0.02, 0.85, 0.96)})
    assert near["auc"][0] == "indeterminate"


def test_the_share_removed_reads_the_other_way_round():
    # the QNN removes (0.8 - 0.6) / 0.3 = 0.67 of its leak, the control (0.7 - 0.62) / 0.2 = 0.4: the QNN's is larger
    # by more than the margin, while the AUCs after unlearning are within it of each other
    got = _unlearning_verdicts({"qnn": (0.60, 0.02, 0.80, 0.97), "quadratic": (0.62, 0.02, 0.70, 0.96)})
    assert got["removed"][0] == "QNN-specific" and got["auc"][0] == "shared (by quadratic)"
