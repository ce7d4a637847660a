"""The device study (issue 34): its reading per (shots, noise) setting on synthetic sweeps whose answer is known by
construction, and the study end to end on a tiny sweep, its exact QNN the plain sweep's."""

import numpy as np
import pandas as pd
import pytest

from qrobust.analysis.claims import DEVICE_LEARNS_MARGIN, device_claims
from qrobust.analysis.device import device_table, label, settings, variance_table

ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
N_TRAIN = 100


def _rows(model, shots, noise, seeds, memorization, val, train, rng, spread=0.01):
    """Final-epoch rows of one model at one setting: memorization(alpha), val(alpha), train(alpha) plus seed
    noise."""
    out = []
    for s in seeds:
        for a in ALPHAS:
            out.append(dict(model=model, arch=f"d6-s{shots}-{noise}", shots=float(shots), noise=noise,
                            corruption="flip", alpha=a, seed=s, learning_rate=0.01, epoch=5,
                            train_acc=float(np.clip(train(a) + spread * rng.normal(), 0, 1)),
                            val_acc=float(np.clip(val(a) + spread * rng.normal(), 0, 1)),
                            memorization=np.nan if a == 0 else float(np.clip(memorization(a)
                                                                             + spread * rng.normal(), 0, 1)),
                            diverged=False, n_corrupted=int(round(a * N_TRAIN))))
    return out


def _resilient(a):  # the paper's QNN: refuses the flips below 0.5, learns the inverted rule above
    return 0.95 - 0.9 * float(a > 0.5)


def _sweep(seeds=range(10)):
    """An exact QNN as the paper describes it; at 100 shots a QNN at chance (it has lost the task: flat, so its
    plateau holds trivially); at 1,000 shots one that memorises (no plateau); an MLP that memorises."""
    rng = np.random.default_rng(0)
    rows = _rows("qnn", np.inf, "none", seeds, lambda a: float(a > 0.5), _resilient,
                 lambda a: 1 - a if a < 0.5 else a, rng)
    rows += _rows("qnn", 100, "none", seeds, lambda a: 0.5, lambda a: 0.5, lambda a: 0.5, rng)
    rows += _rows("qnn", 1000, "none", seeds, lambda a: 1.0, lambda a: 0.95 - a, lambda a: 1.0, rng)
    rows += _rows("mlp", np.inf, "none", seeds, lambda a: 1.0, lambda a: 0.95 - a, lambda a: 1.0, rng)
    return pd.DataFrame(rows)


def _critical():
    rows = []
    for shots, step in ((np.inf, (0.5, 0.46, 0.54)), (100.0, None), (1000.0, None)):
        rows.append(dict(model="qnn", shots=shots, noise="none", corruption="flip", transition=step is not None,
                         alpha_c_memorization=np.nan if step is None else step[0],
                         alpha_c_memorization_lo=np.nan if step is None else step[1],
                         alpha_c_memorization_hi=np.nan if step is None else step[2],
                         reason="" if step else "M does not cross 1/2 in the measured range", n_seeds=10))
    rows.append(dict(model="mlp", shots=np.inf, noise="none", corruption="flip", transition=False,
                     alpha_c_memorization=np.nan, alpha_c_memorization_lo=np.nan, alpha_c_memorization_hi=np.nan,
                     reason="M does not cross 1/2 in the measured range", n_seeds=10))
    return pd.DataFrame(rows)


def test_the_variance_table_averages_each_setting_over_its_seeds():
    """Per setting, the mean over its replicas (seeds resampled, all of a seed's alphas together), an interval
    that holds it, the device shots at the setting's shots times the ratio, and the least parameter's ratio."""
    rng = np.random.default_rng(0)
    rows = pd.DataFrame([dict(shots=float(n), noise="none", seed=seed, alpha=a, variance_ratio_init=0.98,
                              variance_ratio=r, variance_ratio_min=r - 0.1, device_shots=n * r)
                         for n, base in ((100, 0.9), (10000, 0.95)) for seed in range(5) for a in (0.0, 0.3)
                         for r in [base + 0.01 * rng.standard_normal()]])
    table = variance_table(rows)
    assert list(table.setting) == ["10000 shots", "100 shots"] and list(table.n_seeds) == [5, 5]
    for (_, row), n in zip(table.iterrows(), (10000, 100)):
        mine = rows[rows.shots == n]
        assert row.variance_ratio == pytest.approx(mine.variance_ratio.mean())
        assert row.variance_ratio_lo < row.variance_ratio < row.variance_ratio_hi
        assert row.device_shots == pytest.approx(n * row.variance_ratio)
        assert row.variance_ratio_init == pytest.approx(0.98)
        assert row.variance_ratio_min == mine.variance_ratio_min.min()


def test_each_setting_is_read_as_its_own_qnn():
    sweep = _sweep()
    assert settings(sweep) == [(np.inf, "none"), (1000.0, "none"), (100.0, "none")]
    assert [label(*s) for s in settings(sweep)] == ["exact", "1000 shots", "100 shots"]
    assert label(1000.0, "depolarizing:0.01") == "1000 shots, depolarizing:0.01"
    table = device_table(sweep, _critical()).set_index(["model", "setting"])
    final = sweep[sweep.epoch == 5]
    for shots, text in ((np.inf, "exact"), (100.0, "100 shots"), (1000.0, "1000 shots")):
        mine = final[(final.model == "qnn") & (final.shots == shots)].groupby("alpha")
        val, mem = mine.val_acc.mean(), mine.memorization.mean()
        row = table.loc[("qnn", text)]
        # against the hand-computed means over seeds, this setting's rows only
        assert row.clean_val == pytest.approx(val[0.0], abs=1e-6)
        assert row.memorization == pytest.approx(mem[0.3], abs=1e-6)
        assert row.plateau == pytest.approx(max(0.0, val[0.0] - val[val.index < 0.5].min()), abs=1e-6)
        assert row.clean_val_lo <= row.clean_val <= row.clean_val_hi
    assert table.loc[("qnn", "exact")].alpha_c == 0.5 and np.isnan(table.loc[("qnn", "100 shots")].alpha_c)
    assert table.loc[("mlp", "exact")].memorization > 0.95  # the MLP once, exact


def test_the_papers_rules_are_judged_at_each_setting_after_the_learns_the_task_rule():
    verdicts = {v.claim: v.verdict for v in device_claims(_sweep(), _critical(), "device-x", "MNIST")}
    exact = {c: v for c, v in verdicts.items() if c.startswith("MNIST at exact:")}
    assert len(exact) == 4 and set(exact.values()) == {"holds"}  # no learns-the-task rule for exact itself
    assert verdicts["MNIST at 100 shots: the QNN still learns the clean task (qrobust's)"] == "departs"
    # flat at chance: the plateau rule holds trivially, which is why the learns-the-task rule comes first
    assert verdicts["MNIST at 100 shots: the QNN's validation accuracy holds a plateau below alpha ~ 0.5"] == "holds"
    assert verdicts["MNIST at 1000 shots: the QNN still learns the clean task (qrobust's)"] == "holds"
    assert verdicts["MNIST at 1000 shots: the QNN's validation accuracy holds a plateau below alpha ~ 0.5"] \
        == "departs"
    assert verdicts["MNIST at 1000 shots: near alpha ~ 0.5 the QNN changes qualitatively, like a phase "
                    "transition"] == "departs"
    assert DEVICE_LEARNS_MARGIN == 0.10


def test_bad_device_configs_are_refused_by_name():
    from qrobust.errors import ConfigError
    from qrobust.experiments.device import SHOTS, DeviceConfig

    assert DeviceConfig().shots == SHOTS == (100, 1000, 10000, None)
    with pytest.raises(ConfigError, match="keep --model qnn"):
        DeviceConfig(models=("mlp",)).validate()
    with pytest.raises(ConfigError, match="give one value of --depth"):
        DeviceConfig(depth=(2, 6)).validate()


@pytest.mark.slow  # 15 to 30 s of compiles; the reading above is tested in the default suite
def test_the_device_study_end_to_end_its_exact_qnn_is_the_sweeps(tmp_path, monkeypatch):
    """A tiny device study through the CLI: its tables and figure, the shot-read QNN a program of its own, and its
    exact QNN's final rows equal to a plain sweep's, trained again (the store of trained replicas off)."""
    from qrobust import replicas
    from qrobust.cli import main

    common = ["--dataset", "mnist", "--n-train", "10", "--seeds", "2", "--alphas", "0,0.5", "--epochs", "2",
              "--no-progress"]
    assert main(["device", *common, "--shots", "100,inf", "--shot-gradient", "gaussian",
                 "--out", str(tmp_path / "d")]) == 0
    monkeypatch.setenv(replicas.VARIABLE, "0")
    assert main(["sweep", *common, "--corruption", "flip", "--out", str(tmp_path / "s")]) == 0
    d = tmp_path / "d"
    assert (d / "device.png").stat().st_size > 0
    table = pd.read_csv(d / "device.csv")
    assert sorted(table.setting) == ["100 shots", "exact", "exact"]
    results = pd.read_csv(d / "results.csv")
    assert set(results[results.model == "qnn"].shots) == {100.0, np.inf}
    cols = ["seed", "alpha", "train_acc", "val_acc", "loss"]
    mine = results[(results.model == "qnn") & (results.shots == np.inf)].sort_values(["seed", "alpha"])[cols]
    plain = pd.read_csv(tmp_path / "s" / "results.csv")
    plain = plain[plain.model == "qnn"].sort_values(["seed", "alpha"])[cols]
    np.testing.assert_array_equal(mine.to_numpy(), plain.to_numpy())
    shot = results[(results.model == "qnn") & (results.shots == 100.0)].sort_values(["seed", "alpha"])[cols]
    assert not np.array_equal(shot.to_numpy(), plain.to_numpy())
    # read exactly: the exact setting's replicas give back the metrics the engine recorded at their last epoch
    # (their flips remade from the seeds), the 100-shot ones differ from their own 100-shot readings
    read = pd.read_csv(d / "exact_reading.csv").sort_values(["shots", "seed", "alpha"])
    final = results[(results.model == "qnn") & (results.epoch == 2)].sort_values(["shots", "seed", "alpha"])
    metrics = ["train_acc", "memorization", "val_acc"]
    exact = (read.shots == np.inf).to_numpy()
    np.testing.assert_allclose(read[exact][metrics].to_numpy(), final[(final.shots == np.inf).to_numpy()][metrics]
                               .to_numpy(), atol=1e-6)
    assert not np.allclose(read[~exact][metrics].to_numpy(), final[(final.shots == 100).to_numpy()][metrics]
                           .to_numpy(), equal_nan=True)
    assert sorted(pd.read_csv(d / "device_exact.csv").setting) == ["100 shots", "exact"]
    # the shot gradient's variance ratio: the 100-shot replicas only, each a ratio of variances (at most 1)
    ratio = pd.read_csv(d / "gradient_variance.csv").sort_values(["seed", "alpha"])
    assert len(ratio) == 4 and set(ratio.shots) == {100.0}
    assert (0 < ratio.variance_ratio_min).all() and (ratio.variance_ratio_min <= ratio.variance_ratio).all()
    assert (ratio[["variance_ratio", "variance_ratio_init"]] <= 1 + 1e-6).all().all()
    np.testing.assert_allclose(ratio.device_shots, 100 * ratio.variance_ratio)


@pytest.mark.slow  # 82 s on 2 busy cores (2026-12-07): the noisy simulator's compiles
def test_a_noise_trained_qnn_is_read_without_its_noise(tmp_path):
    """exact_reading.csv reads a QNN trained under gate noise through the same circuit without the noise: its
    logits are the noiseless QNN's (the registry's default simulator, an independent build) and not the noisy
    reading's, and its accuracies are those logits'."""
    import jax

    from qrobust.experiments.device import DeviceConfig, run_device
    from qrobust.experiments.settings import ModelSettings
    from qrobust.experiments.study import load
    from qrobust.models import batch_logits
    from qrobust.models.registry import build
    from qrobust.stored import StoredWeights, logits_of

    config = DeviceConfig(dataset="xxz", n_qubits=4, n_train_per_class=6, seeds=(0,), alphas=(0.0, 0.5), epochs=2,
                          batch_size=4, models=("qnn",), shots=(None,), noise=("depolarizing:0.2",))
    out = tmp_path / "d"
    run_device(config, out, progress=False)
    run = StoredWeights(out)
    (program,) = run.programs()
    trained = run.weights(program)[program]
    data = load(config)
    plain = build("qnn", data, ModelSettings(**{**run.programs()[program]["settings"], "noise": "none",
                                                "hidden": ()}))
    assert plain.settings.get("simulator") != "heisenberg"
    exact = np.asarray(jax.vmap(batch_logits(plain), in_axes=(0, None))(trained.params, plain.prepare(data.x_val)))
    read = logits_of(trained._replace(model=run.model(program, noise="none")), data.x_val)
    np.testing.assert_allclose(read, exact, atol=1e-5)
    # the noisy reading is another function: depolarizing 0.2 after every gate damps the outputs by orders of
    # magnitude (relative, as two epochs leave the exact logits small: 7e-3 at most on 2026-12-07)
    assert np.abs(logits_of(trained, data.x_val) - exact).max() > 0.5 * np.abs(exact).max() > 1e-4
    rows = pd.read_csv(out / "exact_reading.csv").sort_values("alpha")
    val = ((exact > 0) == (np.asarray(data.y_val) > 0.5)[None]).mean(axis=1)
    np.testing.assert_allclose(rows.val_acc.to_numpy(), val[np.argsort(trained.replicas.alpha.to_numpy())])


def test_the_figure_of_a_gate_noise_study_has_noise_on_its_axis(tmp_path, monkeypatch):
    """At exact shots the device figure draws the QNN against its noise settings (a shots axis would hold one
    point); with a shots axis it keeps shots on x, one line per noise setting."""
    from qrobust import plots

    figures = []
    monkeypatch.setattr(plots, "_save", lambda fig, path: figures.append(fig) or path)
    exact = _sweep().pipe(lambda r: r[r.shots == np.inf])
    noisy = (exact.model == "qnn") & (exact.seed % 2 == 1)  # half the exact QNN's seeds stand for a noisy setting
    noise_only = exact.assign(noise=np.where(noisy, "depolarizing:0.01", "none"))
    plots.plot_device(device_table(noise_only), tmp_path / "noise.png")
    labels = [t.get_text() for t in figures[-1].axes[0].get_xticklabels()]
    assert labels == ["exact gates", "depolarizing\n0.01"]
    plots.plot_device(device_table(_sweep()), tmp_path / "shots.png")
    labels = [t.get_text() for t in figures[-1].axes[0].get_xticklabels()]
    assert labels == ["100", "1,000", "exact"]


def test_two_runs_are_compared_seed_by_seed(tmp_path, capsys):
    """scripts/compare_shot_gradients.py pairs the final QNN rows of one shots setting by seed: the difference is
    the mean of the per-seed differences, inside its interval; a missing run gets one message, no traceback."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "scripts" / "compare_shot_gradients.py"
    spec = importlib.util.spec_from_file_location("compare_shot_gradients", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rng = np.random.default_rng(2)
    for name, shift in (("a", 0.0), ("b", 0.05)):
        (tmp_path / name).mkdir()
        rows = pd.DataFrame([dict(model="qnn", shots=100.0, alpha=a, seed=s, epoch=e, val_acc=0.8 + shift * s / 4 +
                                  0.01 * rng.standard_normal(), memorization=0.1, train_acc=0.7)
                             for a in (0.0, 0.3) for s in range(5) for e in (1, 2)])
        rows.to_csv(tmp_path / name / "results.csv", index=False)
        rows[rows.epoch == 2].drop(columns="epoch").to_csv(tmp_path / name / "exact_reading.csv", index=False)
    table = script.compare(str(tmp_path / "a"), str(tmp_path / "b"), 100.0)
    a, b = (pd.read_csv(tmp_path / n / "results.csv") for n in "ab")
    want = (b[(b.epoch == 2) & (b.alpha == 0.0)].val_acc.to_numpy() - a[(a.epoch == 2) & (a.alpha == 0.0)].val_acc
            .to_numpy()).mean()
    row = table[(table.read == "at N shots") & (table.alpha == 0.0) & (table.quantity == "val_acc")].iloc[0]
    assert row.difference == pytest.approx(want) and row.lo <= row.difference <= row.hi and row.seeds == 5
    assert len(table) == 8 and (table[table.quantity == "memorization"].difference == 0).all()
    assert script.main([str(tmp_path / "missing"), str(tmp_path / "b")]) == 2
    assert "cannot read the runs" in capsys.readouterr().err
