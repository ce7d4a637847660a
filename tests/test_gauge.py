"""The gauge of quantum data: the global phase of each state, an explicit, keyed, recorded option."""

import json

import jax
import numpy as np
import pandas as pd
import pytest

from qrobust.cli import main
from qrobust.data import xxz_dataset
from qrobust.data.gauge import GAUGES, gauge_factors
from qrobust.models import qnn


def test_gauge_factors_are_keyed_unit_phases_of_their_kind():
    n = 400
    assert np.array_equal(gauge_factors(n, "fixed", 0), np.ones(n))
    sign = gauge_factors(n, "sign", 0)
    assert set(sign.real) == {-1.0, 1.0} and np.all(sign.imag == 0) and 150 < (sign.real > 0).sum() < 250
    phase = gauge_factors(n, "phase", 0)
    np.testing.assert_allclose(np.abs(phase), 1.0, atol=1e-12)
    angles = np.angle(phase) % (2 * np.pi)
    assert np.histogram(angles, bins=4, range=(0, 2 * np.pi))[0].min() > 70  # spread over the circle
    np.testing.assert_array_equal(gauge_factors(n, "phase", 0), phase)  # keyed: the same seed, the same draw
    assert not np.allclose(gauge_factors(n, "phase", 1), phase)


@pytest.mark.parametrize("gauge", GAUGES)
def test_a_gauge_changes_each_state_by_a_global_phase_only(gauge):
    fixed = xxz_dataset(n_spins=4, gauge="fixed")
    other = xxz_dataset(n_spins=4, gauge=gauge, gauge_seed=3)
    for a, b in ((fixed.x_train, other.x_train), (fixed.x_val, other.x_val)):
        overlaps = np.einsum("kd,kd->k", a.conj(), b)
        np.testing.assert_allclose(np.abs(overlaps), 1.0, atol=1e-12)  # the same rays
    assert other.meta["gauge"] == gauge and other.meta["gauge_seed"] == 3
    assert np.array_equal(other.y_train, fixed.y_train)


@pytest.mark.parametrize("simulator", ["blocks", "native", "tc-fused"])
def test_the_qnn_cannot_see_the_gauge(simulator):
    """<Z> of e^{i phi} psi is <Z> of psi: the logits agree to float32 rounding, whatever the simulator."""
    from qrobust.models import simulators
    from qrobust.models.ansatze import ansatz
    from qrobust.models.circuit import Circuit

    reason = simulators.why_not(simulator, Circuit(ansatz("hea"), 6, 3), dtype="complex64", on_accelerator=False)
    if reason:
        pytest.skip(reason)
    fixed = xxz_dataset(n_spins=6, gauge="fixed")
    phase = xxz_dataset(n_spins=6, gauge="phase")
    model = qnn(6, 3, simulator=simulator, init_std=1.0)
    params = model.init(jax.random.PRNGKey(1))
    logits = jax.vmap(model.apply, in_axes=(None, 0))
    np.testing.assert_allclose(logits(params, model.prepare(phase.x_train)),
                               logits(params, model.prepare(fixed.x_train)), atol=2e-5)


def test_the_gauge_is_refused_on_mnist_and_recorded_for_xxz(tmp_path, capsys):
    out = tmp_path / "m"
    assert main(["sweep", "--dataset", "mnist", "--gauge", "sign", "--seeds", "1", "--out", str(out)]) == 2
    assert "quantum data" in capsys.readouterr().err and not out.exists()
    out = tmp_path / "x"
    assert main(["sweep", "--dataset", "xxz", "--qubits", "4", "--n-train", "4", "--model", "mlp", "--corruption",
                 "flip", "--alphas", "0.5", "--seeds", "1", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    settings = json.loads((out / "config.json").read_text())["settings"]
    assert settings["gauge"] == "phase" and settings["gauge_seed"] == 0  # the default, by name


@pytest.mark.slow  # measured 2026-12-01 on 2 AVX2 cores: kept out of the default suite's 10 minutes
def test_the_gauge_study_runs_every_gauge_and_the_qnn_rows_agree(tmp_path):
    out = tmp_path / "g"
    assert main(["gauge", "--qubits", "4", "--n-train", "4", "--alphas", "0,0.5", "--seeds", "1", "--epochs", "2",
                 "--no-progress", "--out", str(out)]) == 0
    summary = pd.read_csv(out / "gauge.csv")
    assert set(summary.gauge) == set(GAUGES) and (out / "gauge.png").stat().st_size > 1000
    assert all((out / g / "results.csv").exists() for g in GAUGES)
    # the QNN's trajectories agree to float32 rounding (accuracies are discrete: a validation state at the
    # boundary may flip); the MLP's are free to differ
    runs = {g: pd.read_csv(out / g / "results.csv") for g in GAUGES}
    qnn = {g: r[r.model == "qnn"].reset_index(drop=True) for g, r in runs.items()}
    for g in ("sign", "phase"):
        np.testing.assert_allclose(qnn[g].loss, qnn["fixed"].loss, rtol=1e-4, atol=1e-5)
