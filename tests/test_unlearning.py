"""Unlearning: objectives on hand-computable cases, the attack, and the experiment end to end."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import pytest

from qrobust.analysis import epochs_to_recover, loss_mia_accuracy
from qrobust.cli import main
from qrobust.engine import EvalData, TrainData, make_train_fn
from qrobust.experiments.unlearning import UnlearnConfig, method_coefs, run_unlearning
from qrobust.models import Model
from qrobust.objectives import Batch, bernoulli_kl, scrub_kurmanji, unlearning_family


def _sig(z):
    return 1 / (1 + np.exp(-z))


def test_bernoulli_kl_matches_the_direct_formula():
    t, s = np.array([2.0, -1.0, 0.3, 0.0]), np.array([-0.5, -1.0, 1.7, 4.0])
    for temp in (1.0, 4.0):
        pt, ps = _sig(t / temp), _sig(s / temp)
        direct = pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))
        np.testing.assert_allclose(np.asarray(bernoulli_kl(jnp.asarray(t), jnp.asarray(s), temp)), direct,
                                   rtol=1e-5, atol=1e-7)
    assert float(bernoulli_kl(jnp.array(1.3), jnp.array(1.3))) == pytest.approx(0.0, abs=1e-7)


def _ce(z, y):
    return -(y * np.log(_sig(z)) + (1 - y) * np.log(1 - _sig(z)))


# a hand-made case: retain batch of 2 (+1 padding), forget set of 2 (+1 padding)
RETAIN = dict(logits=[1.0, -2.0, 9.0], labels=[1.0, 0.0, 1.0], weights=[1.0, 1.0, 0.0], teacher=[0.5, -1.0, 0.0],
              random_labels=[0.0, 0.0, 0.0])
FORGET = dict(logits=[0.7, -0.4, 9.0], labels=[0.0, 1.0, 0.0], weights=[1.0, 1.0, 0.0], teacher=[2.0, 1.0, 0.0],
              random_labels=[1.0, 0.0, 1.0])


def _batch(d):
    return Batch(*(jnp.asarray(d[k], jnp.float32) for k in Batch._fields))


def _by_hand(method, kl_w, fo_w):
    r, f = {k: np.array(v[:2]) for k, v in RETAIN.items()}, {k: np.array(v[:2]) for k, v in FORGET.items()}
    ce_r = _ce(r["logits"], r["labels"]).mean()
    ce_f = _ce(f["logits"], f["labels"]).mean()
    ce_rl = _ce(f["logits"], f["random_labels"]).mean()

    def kl(t, s):
        pt, ps = _sig(t), _sig(s)
        return (pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))).mean()

    return {"retrain": ce_r, "finetune": ce_r, "relabel": ce_r + ce_rl,
            "scrub": ce_r + kl_w * kl(r["teacher"], r["logits"]) - fo_w * kl(f["teacher"], f["logits"]),
            "ga": ce_r - fo_w * ce_f, "neggrad": (1 - fo_w) * ce_r - fo_w * ce_f}[method]


@pytest.mark.parametrize("method", ["retrain", "finetune", "relabel", "scrub", "ga", "neggrad"])
def test_each_method_loss_on_a_hand_computed_case(method):
    kl_w, fo_w = 0.3, 0.2
    coef = jnp.asarray(method_coefs(method, kl_w, fo_w), jnp.float32)
    got = float(unlearning_family().loss(_batch(RETAIN), _batch(FORGET), coef))
    assert got == pytest.approx(_by_hand(method, kl_w, fo_w), rel=1e-5)


def test_kurmanji_scrub_losses_by_hand():
    obj = scrub_kurmanji(temperature=4.0, ce_weight=0.99, kl_weight=0.001, max_epochs=2)
    r, f = {k: np.array(v[:2]) for k, v in RETAIN.items()}, {k: np.array(v[:2]) for k, v in FORGET.items()}

    def kl(t, s, T):
        pt, ps = _sig(t / T), _sig(s / T)
        return (pt * np.log(pt / ps) + (1 - pt) * np.log((1 - pt) / (1 - ps))).mean()

    minimum = 0.99 * _ce(r["logits"], r["labels"]).mean() + 0.001 * 16 * kl(r["teacher"], r["logits"], 4.0)
    assert float(obj.loss(_batch(RETAIN), None, None)) == pytest.approx(minimum, rel=1e-5)
    assert float(obj.max_loss(_batch(FORGET), None)) == pytest.approx(-16 * kl(f["teacher"], f["logits"], 4.0),
                                                                      rel=1e-5)
    assert obj.max_epochs == 2


def test_retrain_with_zero_forget_weight_is_fresh_training_on_the_retain_set(x64):
    """The unlearning program with retrain's weights equals a plain Adam loop over the retain set only."""
    rng = np.random.default_rng(0)
    n, dim, batch, epochs, lr = 9, 3, 4, 3, 0.05
    x = rng.normal(size=(n, dim))
    y = (rng.random(n) > 0.5).astype(np.float64)
    forget = np.array([1, 4, 6])
    stream = np.ones(n, bool)
    stream[forget] = False
    model = Model("lin", lambda k: 0.1 * jax.random.normal(k, (dim,), jnp.float64), lambda w, v: jnp.dot(w, v),
                  jnp.asarray, (dim,), {})
    w0 = model.init(jax.random.PRNGKey(3))
    key = jax.random.PRNGKey(11)
    teacher = rng.normal(size=n)
    data = TrainData(x=jnp.asarray(x)[None], y=jnp.asarray(y)[None], y_clean=jnp.asarray(y)[None],
                     corrupted=jnp.asarray(~stream)[None], stream=jnp.asarray(stream)[None],
                     teacher=jnp.asarray(teacher)[None], random_labels=jnp.zeros((1, n)),
                     forget_idx=jnp.asarray(forget)[None], forget_w=jnp.ones((1, 3)),
                     coef=jnp.asarray(method_coefs("retrain", 0.7, 0.0))[None])
    train = make_train_fn(model, epochs=epochs, batch_size=batch, n_samples=int(stream.sum()),
                          objective=unlearning_family())
    w_engine, _ = train(w0[None], jnp.array([lr]), key[None], data, EvalData(jnp.asarray(x), jnp.asarray(y)))

    tx = optax.adam(lr)
    w, state, k = w0, tx.init(w0), key
    for _ in range(epochs):
        k, sub = jax.random.split(k)
        u = np.asarray(jax.random.uniform(sub, (n,)))
        order = np.argsort(np.where(stream, u, 2 + u))[: stream.sum()]  # the retain samples in random order
        for start in range(0, len(order), batch):
            idx = order[start:start + batch]
            g = jax.grad(lambda w: jnp.mean(optax.sigmoid_binary_cross_entropy(jnp.asarray(x[idx]) @ w, y[idx])))(w)
            upd, state = tx.update(g, state, w)
            w = optax.apply_updates(w, upd)
    np.testing.assert_allclose(np.asarray(w_engine[0]), np.asarray(w), atol=1e-7)


def _linear(dim):
    return Model("lin", lambda k: 0.1 * jax.random.normal(k, (dim,)), lambda w, v: jnp.dot(w, v), jnp.asarray,
                 (dim,), {})


def test_l1_sparse_penalty_by_formula():
    coef = jnp.asarray(method_coefs("l1_sparse", 0.0, 0.0, l1_w=0.1))
    params = {"a": jnp.array([1.0, -2.0]), "b": jnp.array([[3.0]])}
    # Jia et al.: the weight decays linearly over the epochs; a quarter through: 0.1 * 0.75 * (1 + 2 + 3)
    assert float(unlearning_family().param_loss(params, coef, 0.25)) == pytest.approx(0.45)
    assert float(unlearning_family().param_loss(params, jnp.asarray(method_coefs("finetune", 0, 0)), 0.0)) == 0


def test_a_gradient_mask_freezes_exactly_the_masked_weights():
    rng = np.random.default_rng(0)
    n, dim = 8, 3
    x, y = rng.normal(size=(n, dim)).astype(np.float32), (rng.random(n) > 0.5).astype(np.float32)
    model = _linear(dim)
    w0 = model.init(jax.random.PRNGKey(0))[None]
    data = TrainData(x=jnp.asarray(x)[None], y=jnp.asarray(y)[None], y_clean=jnp.asarray(y)[None],
                     corrupted=jnp.zeros((1, n), bool), stream=jnp.ones((1, n), bool), teacher=jnp.zeros((1, n)),
                     random_labels=jnp.zeros((1, n)), forget_idx=jnp.zeros((1, 1), jnp.int32),
                     forget_w=jnp.zeros((1, 1)), coef=jnp.asarray(method_coefs("finetune", 0, 0))[None],
                     grad_mask=jnp.asarray([[1.0, 0.0, 1.0]]))
    train = make_train_fn(model, epochs=3, batch_size=4, n_samples=n, objective=unlearning_family())
    w, _ = train(w0, jnp.array([0.1]), jax.random.PRNGKey(1)[None], data, EvalData(jnp.asarray(x), jnp.asarray(y)))
    moved = np.abs(np.asarray(w - w0))[0]
    assert moved[1] == 0 and moved[0] > 1e-3 and moved[2] > 1e-3


def test_salun_mask_keeps_the_weights_with_the_largest_forget_gradient():
    from qrobust.experiments.unlearning_students import StudentInputs

    rng = np.random.default_rng(1)
    n, dim, f = 10, 6, 4
    x, y = rng.normal(size=(n, dim)).astype(np.float32), (rng.random(n) > 0.5).astype(np.float32)
    model = _linear(dim)
    teacher = jnp.asarray(rng.normal(size=(1, dim)), jnp.float32)
    forget = np.array([0, 3, 5, 7])
    data = TrainData(x=jnp.asarray(x)[None], y=jnp.asarray(y)[None], y_clean=jnp.asarray(y)[None],
                     corrupted=jnp.zeros((1, n), bool), stream=jnp.ones((1, n), bool), teacher=jnp.zeros((1, n)),
                     random_labels=jnp.zeros((1, n)), forget_idx=jnp.asarray(forget)[None],
                     forget_w=jnp.ones((1, f)), coef=jnp.zeros((1, 6)))
    from qrobust.keys import replica_keys
    complete = StudentInputs._completion(model, 0.5)
    args = (data, teacher, replica_keys(jnp.array([0])), jnp.zeros((1, 6)), jnp.array([False]))
    known = jnp.asarray(np.isin(np.arange(n), forget))[None]
    _, salun = complete(*args, jnp.array([True]), jnp.asarray(forget)[None], jnp.ones((1, f)), known,
                        jnp.ones((1, n), bool))
    _, other = complete(*args, jnp.array([False]), jnp.asarray(forget)[None], jnp.ones((1, f)), known,
                        jnp.ones((1, n), bool))
    # by hand: d mean BCE / dw = mean over the forget set of (sigmoid(x w) - y) x
    xf, yf = x[forget], y[forget]
    grad = ((1 / (1 + np.exp(-(xf @ np.asarray(teacher[0])))) - yf)[:, None] * xf).mean(0)
    top = np.argsort(-np.abs(grad))[:dim // 2]
    assert np.flatnonzero(np.asarray(salun.grad_mask[0])).tolist() == sorted(top.tolist())
    assert np.asarray(other.grad_mask).min() == 1  # every other method updates every weight
    assert np.asarray(salun.stream[0]).tolist() == (~np.isin(np.arange(n), forget)).tolist()


def test_membership_attack_calibration():
    rng = np.random.default_rng(0)
    same = loss_mia_accuracy(rng.exponential(1.0, 400), rng.exponential(1.0, 400))
    assert abs(same - 0.5) < 0.07
    separated = loss_mia_accuracy(rng.uniform(0, 0.1, 200), rng.uniform(1.0, 2.0, 300))
    assert separated > 0.97
    assert np.isnan(loss_mia_accuracy(np.array([np.nan, 1.0]), np.ones(5)))


def test_epochs_to_recover():
    assert epochs_to_recover(np.array([0.5, 0.9, 0.975, 0.99]), 0.98) == 3
    assert np.isnan(epochs_to_recover(np.array([0.5, 0.6]), 0.98))


TINY = ["unlearn", "--dataset", "xxz", "--qubits", "4", "--n-train", "10", "--teacher-epochs", "15",
        "--epochs", "4", "--seeds", "2", "--no-progress"]


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_unlearn_end_to_end_with_a_weight_grid_and_resume(tmp_path):
    out = tmp_path / "u"
    args = TINY + ["--method", "retrain", "--method", "finetune", "--method", "scrub", "--method", "ga",
                   "--kl-w", "0,0.5", "--fo-w", "0,0.3", "--out", str(out), "--chunk-size", "8"]
    assert main(args) == 0
    final = pd.read_csv(out / "final.csv")
    # retrain and finetune: 1 cell; scrub: 2 x 2 cells; ga: 2 cells (fo_w); x 2 models x 2 seeds
    assert len(final) == (1 + 1 + 4 + 2) * 2 * 2
    results = pd.read_csv(out / "results.csv")
    assert len(results) == len(final) * 4 and results.epoch.max() == 4
    # the forget set is the 6 flipped samples of 20 (alpha = 0.3, rounded down to even), as recorded
    assert (final.forget_size == 6).all() and (final.forget_precision == 1).all()
    assert json.loads((out / "config.json").read_text())["settings"]["n_forget"] == 6
    # distance to the retrained student, recomputed by hand from the stored final parameters
    stored = {}
    for chunk in sorted((out / "chunks").glob("student-*.csv")):
        rows = pd.read_csv(chunk).drop_duplicates(["model", "method", "seed", "kl_w", "fo_w"])  # one per replica
        with np.load(chunk.with_suffix(".npz")) as z:
            for row, w in zip(rows.itertuples(index=False), z["params"]):
                stored[(row.model, row.method, row.seed, row.kl_w, row.fo_w)] = w
    for r in final.itertuples(index=False):
        mine = stored[(r.model, r.method, r.seed, r.kl_w, r.fo_w)]
        retrained = stored[(r.model, "retrain", r.seed, 0.0, 0.0)]
        assert r.dist_to_retrain == pytest.approx(float(np.linalg.norm(mine - retrained)), rel=1e-6, abs=1e-9)
        assert r.param_norm == pytest.approx(float(np.linalg.norm(mine)), rel=1e-6)
    assert (final[final.method != "retrain"].dist_to_retrain > 0).all()
    assert final.mia_acc.between(0, 1).all()
    # a student with zero weights on the extra terms is the fine-tuned one
    a = final[(final.method == "scrub") & (final.kl_w == 0) & (final.fo_w == 0)].sort_values(["model", "seed"])
    b = final[final.method == "finetune"].sort_values(["model", "seed"])
    np.testing.assert_allclose(a.val_acc.to_numpy(), b.val_acc.to_numpy())
    teachers = pd.read_csv(out / "teachers.csv")
    assert len(teachers) == 2 * 2 * 2 and set(teachers.alpha) == {0.0, 0.3}
    for name in ("recovery.csv", "unlearning.png", "weights_heatmap.png", "config.json"):
        assert (out / name).exists()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "chunks").glob("*.csv")}
    assert main(args) == 0  # resumes: nothing recomputed, same table
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())
    pd.testing.assert_frame_equal(pd.read_csv(out / "final.csv"), final)


@pytest.mark.slow  # 19 s; the known-fraction axis test below covers partial forget sets in the default suite
def test_partial_knowledge_scores_the_full_poisoned_set(tmp_path):
    results, final = run_unlearning(UnlearnConfig(dataset="xxz", n_qubits=4, n_train_per_class=10, models=("mlp",),
                                                  methods=("finetune",), seeds=(0,), epochs=2, teacher_epochs=5,
                                                  known_fraction=0.5), progress=False)
    # 6 flipped samples, 3 known: the retain set keeps 3 poisoned samples; forget metrics score all 6
    acc = results.forget_acc_clean.to_numpy()
    assert np.all(np.isclose(acc * 6, np.round(acc * 6)))


@pytest.mark.slow  # 14 to 29 s on 2 AVX2 cores (2026-12-01): kept out of the default suite; CI runs it
def test_known_fraction_axis_nests_the_forget_sets_in_one_program(tmp_path):
    """The corrective curve: several known fractions are replicas of the same programs; a smaller fraction's
    forget set is part of a larger one's; the figure is drawn from the run directory."""
    from qrobust import report
    from qrobust.experiments import unlearning_stages as stages

    seen = {}
    original = stages.forget_sets

    def spy(ctx):
        out = original(ctx)
        seen.update(ctx.forget_sets)
        return out

    config = UnlearnConfig(dataset="xxz", n_qubits=4, n_train_per_class=10, models=("mlp",),
                           methods=("finetune", "ga"), seeds=(0, 1), epochs=2, teacher_epochs=3,
                           known_fraction=(1 / 3, 2 / 3, 1.0))
    try:
        stages.forget_sets = spy
        import qrobust.experiments.unlearning as unlearning

        unlearning.stages.forget_sets = spy
        results, final = run_unlearning(config, tmp_path / "c", progress=False)
    finally:
        stages.forget_sets = original
    assert sorted(final.known_fraction.unique()) == pytest.approx([1 / 3, 2 / 3, 1.0])
    # 6 flipped samples: forget sets of 2, 4, 6, each inside the next, per seed
    assert sorted(final.forget_size.unique()) == [2, 4, 6] and (final.forget_precision == 1).all()
    for s in (0, 1):
        a, b, c = (set(seen[(s, kf)]) for kf in (1 / 3, 2 / 3, 1.0))
        assert a < b < c
    assert len(list((tmp_path / "c" / "chunks").glob("student-mlp-family-*.csv"))) == 1  # one program, one chunk
    assert tmp_path / "c" / "corrective.png" in report.draw(tmp_path / "c")


@pytest.mark.parametrize("extra, message", [
    (["--alpha", "0"], "the forget set is empty"),
    (["--method", "neggrad", "--fo-w", "1.0"], "unbounded below"),
    (["--known-fraction", "0"], "known fraction"),
    (["--known-fraction", "0.5,0.5"], "given twice"),
    (["--method", "forget-me"], "argument --method: invalid choice: 'forget-me'"),
    (["--fo-w", "-0.1"], "fo_w values must be"),
    (["--alpha", "1.2"], "alpha must lie in [0, 1]"),
])
def test_unlearn_bad_input(tmp_path, capsys, extra, message):
    out = tmp_path / "bad"
    assert main(TINY + extra + ["--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert not out.exists()


@pytest.mark.slow  # kept out of the default suite (10 minutes on 2 cores); CI runs it
def test_teacher_trained_on_the_spot_is_the_sweeps_poisoned_model(tmp_path):
    """Same seed, same corruption, same settings: the teacher reproduces the sweep's replica exactly."""
    from qrobust.experiments.sweep import SweepConfig, run_sweep
    from qrobust.experiments.unlearning import TEACHER_SETTINGS

    s = TEACHER_SETTINGS["xxz"]["qnn"]
    sweep = run_sweep(SweepConfig(dataset="xxz", n_qubits=4, n_train_per_class=10, models=("qnn",),
                                  corruptions=("flip",), alphas=(0.0, 0.3), seeds=(0, 1), epochs=12,
                                  depth=s.depth, batch_size=s.batch_size, learning_rates=(s.learning_rate,)),
                      progress=False)
    run_unlearning(UnlearnConfig(dataset="xxz", n_qubits=4, n_train_per_class=10, models=("qnn",),
                                 methods=("finetune",), seeds=(0, 1), epochs=1, teacher_epochs=12),
                   tmp_path / "u", progress=False)
    teachers = pd.read_csv(tmp_path / "u" / "teachers.csv")
    last = sweep[sweep.epoch == 12]
    for _, t in teachers.iterrows():
        row = last[(last.seed == t.seed) & np.isclose(last.alpha, t.alpha)]
        assert row.val_acc.item() == pytest.approx(t.val_acc, abs=1e-7)
        assert row.train_acc.item() == pytest.approx(t.train_acc, abs=1e-7)


@pytest.mark.slow  # two whole studies; CI runs it with the slow checks
def test_detect_then_unlearn(tmp_path):
    out = tmp_path / "dtu"
    args = TINY + ["--method", "finetune", "--forget-source", "qnn_detector", "--out", str(out)]
    assert main(args) == 0
    final = pd.read_csv(out / "final.csv")
    assert final.forget_precision.between(0, 1).all() and final.forget_recall.between(0, 1).all()
    assert (final.groupby("seed").forget_size.nunique() == 1).all()  # one detector set per seed, for both models
    oracle = pd.read_csv(tmp_path / "o" / "final.csv") if main(TINY + ["--method", "finetune", "--out",
                                                                        str(tmp_path / "o")]) == 0 else None
    assert (oracle.forget_precision == 1).all() and (oracle.forget_recall == 1).all()


def test_detector_forget_set_needs_the_qnn(tmp_path, capsys):
    assert main(TINY + ["--model", "mlp", "--forget-source", "qnn_detector", "--out", str(tmp_path / "x")]) == 2
    assert "include --model qnn" in capsys.readouterr().err


def test_a_control_is_unlearned_with_its_familys_paper_settings(tmp_path):
    """A classical control enters the unlearning study (and so the scorecard) through the model registry: its
    teacher and students take its family's paper settings (the QNN's, or the MLP's for the MLP variants) with
    its own training defaults (mlp_wd: AdamW), as the sweep trains it."""
    from qrobust.experiments.settings import model_settings
    from qrobust.experiments.unlearning_grid import TEACHER_SETTINGS, UNLEARN_SETTINGS

    config = UnlearnConfig(dataset="mnist", models=("qnn", "logistic", "mlp_wd"), methods=("finetune",),
                           seeds=(0,)).validate()
    assert config.teacher_settings("logistic") == TEACHER_SETTINGS["mnist"]["qnn"]
    wd = config.teacher_settings("mlp_wd")
    assert wd.hidden == TEACHER_SETTINGS["mnist"]["mlp"].hidden and wd.optimizer == model_settings(
        "mnist", "mlp_wd").optimizer != model_settings("mnist", "mlp").optimizer
    assert config.student_settings("logistic", 10_000) == UNLEARN_SETTINGS["mnist"]["qnn"]
    assert config.resolved()["teachers"]["logistic"]["learning_rate"] == 0.005


@pytest.mark.slow  # 19 s on 2 busy cores (2026-12-06)
def test_a_control_is_unlearned_end_to_end(tmp_path):
    results, _ = run_unlearning(UnlearnConfig(dataset="xxz", n_qubits=4, n_train_per_class=10, models=("logistic",),
                                              methods=("finetune",), seeds=(0,), epochs=2, teacher_epochs=3),
                                progress=False)
    assert set(results.model) == {"logistic"} and results.val_acc.notna().all()
