"""The device study, "Does resilience survive a device?" (issue 34): the QNN trained and read under label flipping
at finite shots and gate noise (``--shots``, ``--noise``: each (shots, noise) pair its own program), the MLP beside
it exact, and the paper's QNN rules judged at each setting (``qrobust.analysis.claims.device_claims``).

It is a sweep (one resumable run directory: results.csv, summary.csv, critical_points.csv, with config.json naming
the study "device") plus device.csv (``qrobust.analysis.device.device_table``: per setting the clean accuracy,
memorisation at alpha 0.3, the plateau's fall and the critical point, with intervals) and, where the QNN's weights
are kept (the default), the same read without shots: exact_reading.csv (every QNN replica's trained weights, its
outputs taken as expectations of its circuit without gate noise) and device_exact.csv (its table), which separate
what a QNN trained on a device learned from how that device reads it. Its shots default to the issue's 100, 1,000, 10,000 and exact; gate noise is
exact unless asked for (its cost on a CPU: docs/device.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from qrobust.corruption import CORRUPTIONS
from qrobust.experiments.sweep_grid import SweepConfig
from qrobust.models import registry
from qrobust.models.shots import parse_axis as shots_axis
from qrobust.options import option

SHOTS = (100, 1000, 10000, None)  # the grid; None: exact


@dataclass(frozen=True)
class DeviceConfig(SweepConfig):
    """The device study (module docstring): a ``SweepConfig`` of the QNN and the MLP under label flipping, its
    shots axis defaulting to ``SHOTS``."""

    models: tuple[str, ...] = option(("qnn", "mlp"), flag="--model", repeat=True, group="models",
                                     choices=registry.BUILT_IN, help="repeat; default qnn, mlp")
    corruptions: tuple[str, ...] = option(("flip",), flag="--corruption", repeat=True, group="grid",
                                          choices=CORRUPTIONS, help="repeat; default flip")
    shots: tuple[int | None, ...] = option(
        SHOTS, group="models", parse=shots_axis, metavar="N,...|inf",
        help="the QNN's shots per output and per parameter-shift term, a grid axis (default 100,1000,10000,inf; "
             "inf: exact). The MLP is read exactly (docs/device.md)")

    def validate(self) -> "DeviceConfig":
        from qrobust.errors import ConfigError

        if "qnn" not in self.models or "flip" not in self.corruptions:
            raise ConfigError("the device study judges the QNN under label flipping: keep --model qnn and "
                              "--corruption flip")
        super().validate()
        several = self.several_architectures()
        if several:
            raise ConfigError(f"the device study's axes are shots and noise: give one value of {', '.join(several)} "
                              "(a capacity or learning-rate axis is the sweep's: qrobust sweep)")
        return self


def run_device(config: DeviceConfig, out: str | Path | None = None, *, progress: bool = True) -> pd.DataFrame:
    """Run (or resume) the device study; returns device.csv's table."""
    from qrobust.experiments.sweep import run_sweep_study

    def tables(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
        return dict(exact_tables(config, out, int(results.epoch.max())), **device_tables(results))

    return run_sweep_study(config, out, progress=progress, study_name="device", tables=tables)["device.csv"]


def exact_tables(config: DeviceConfig, out: str | Path | None, epoch: int) -> dict[str, pd.DataFrame]:
    """exact_reading.csv (each stored QNN replica read exactly: ``exact_reading``) and device_exact.csv (its device
    table), where the run keeps the QNN's weights, and where it has finite shots gradient_variance.csv
    (``gradient_variance``); else none. ``epoch``: the replicas' last."""
    if out is None or not config.keeps_weights("qnn"):
        return {}
    from qrobust.analysis.device import device_table
    from qrobust.experiments import study
    from qrobust.stored import StoredWeights

    run, dataset = StoredWeights(out), study.load(config)
    rows = exact_reading(run, dataset, epoch)
    tables = {"exact_reading.csv": rows, "device_exact.csv": device_table(rows)}
    if any(s is not None for s in config.shots):
        tables["gradient_variance.csv"] = gradient_variance(run, dataset)
    return tables


def exact_reading(run, dataset, epoch: int) -> pd.DataFrame:
    """Every stored QNN replica of a device run (``run``: its ``qrobust.stored.StoredWeights``, or the
    ``load_results`` of a finished one) read exactly: trained at its setting, its outputs then taken as exact
    expectations (no shots) of its circuit without gate noise, on the very training set it trained on (its flips
    remade from its seed by the engine's own input builder, ``make_chunk_inputs``) and on the validation set.
    This separates what a QNN trained on a device learned from how that device (N shots, noisy gates) reads it. Rows shaped as a sweep's final
    results (one per replica: its grid coordinates, epoch, train_acc on its trained labels, memorization: the
    flipped samples predicted as flipped, val_acc, at ``epoch``), so that ``analysis.device.device_table`` reads them
    as it reads the sweep's. ``dataset``: the run's (``qrobust.experiments.study.load`` of its config)."""
    from qrobust.stored import logits_of

    rows = []
    programs = run.programs()
    for program in (p for p in programs if p.startswith("qnn")):
        trained = run.weights(program)[program]
        if programs[program]["settings"].get("noise", "none") != "none":  # the same circuit without its noise
            trained = trained._replace(model=run.model(program, noise="none"))
        r = trained.replicas
        _, data = _replica_inputs(trained, dataset)
        y, flipped = np.asarray(data.y) > 0.5, np.asarray(data.corrupted)
        right = (logits_of(trained, dataset.x_train) > 0) == y
        val = (logits_of(trained, dataset.x_val) > 0) == (np.asarray(dataset.y_val) > 0.5)[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            memorization = np.where(flipped.any(axis=1), (right & flipped).sum(axis=1) / flipped.sum(axis=1), np.nan)
        keep = [c for c in ("model", "arch", "corruption", "alpha", "seed", "learning_rate", "n_corrupted", "n_params",
                            "encoding", "ansatz", "depth", "hidden", "shots", "noise") if c in r]
        rows.append(r[keep].assign(epoch=epoch, train_acc=right.mean(axis=1),
                                   memorization=memorization, val_acc=val.mean(axis=1), diverged=False))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def gradient_variance(run, dataset) -> pd.DataFrame:
    """How much noisier the "gaussian" shot gradient is than the device's ("shift") at the same shots, for every
    stored QNN replica of a finite-shots setting (``run``, ``dataset``: as ``exact_reading``'s): the per-parameter
    variance ratio of ``qrobust.models.shots.variance_ratio`` at the replica's initial parameters and at its trained
    ones, over its whole training set (its flips remade from its seed) with the cotangent of the mean binary
    cross-entropy at the exact logits, sigmoid(logit) - y (the engine's per-step cotangent, up to the batch and the
    shot noise of the logits). Rows: grid coordinates, variance_ratio_init and variance_ratio (the mean over
    parameters: the ratio of the two estimates' total variances), variance_ratio_min (the least parameter's,
    trained) and device_shots (shots x variance_ratio: the shots at which the device's gradient has the total
    variance the "gaussian" one has at ``shots``)."""
    rows, by_noise = [], {}  # noise -> (the jitted ratios, the initial ratios by replica)
    programs = run.programs()
    coordinates = ["corruption", "seed", "n_corrupted"]  # a replica's start: its seed's weights, its flips
    for program in (p for p in programs if p.startswith("qnn") and programs[p]["settings"].get("shots")):
        trained = run.weights(program)[program]
        model, r = trained.model, trained.replicas
        noise = programs[program]["settings"].get("noise", "none")
        init, data = _replica_inputs(trained, dataset)
        if noise not in by_noise:  # the exact logits, hence the ratios, are the same at every shots of one noise
            ratios = _replica_ratios(model)
            start = r[coordinates].assign(variance_ratio_init=np.asarray(ratios(init, data.x, data.y)[0]))
            by_noise[noise] = ratios, start
        ratios, start = by_noise[noise]
        at_end, least = ratios(trained.params, data.x, data.y)
        keep = [c for c in ("model", "arch", "corruption", "alpha", "seed", "n_corrupted", "shots", "noise") if c in r]
        frame = r[keep].assign(variance_ratio=np.asarray(at_end), variance_ratio_min=np.asarray(least),
                               device_shots=r.shots.astype(float).to_numpy() * np.asarray(at_end))
        rows.append(frame.merge(start, on=coordinates, how="left", validate="one_to_one"))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _replica_inputs(trained, dataset):
    """(initial params, TrainData) of the stored replicas ``trained``, remade from their seeds (their flips
    included) by the engine's own input builder, ``make_chunk_inputs``, for ``trained.model``."""
    from qrobust.experiments.inputs import make_chunk_inputs

    r = trained.replicas
    kinds = np.asarray([CORRUPTIONS.index(c) for c in r.corruption], np.int32)
    init, _, data = make_chunk_inputs(trained.model, dataset)(r.seed.to_numpy(np.int32), kinds,
                                                             r.n_corrupted.to_numpy(np.int32))
    return init, data


def _replica_ratios(model):
    """``ratios(params, xs, ys) -> (mean, least)`` over a leading replica axis: ``variance_ratio``'s mean and least
    over the parameters, at the cotangent of the mean binary cross-entropy, one replica after another."""
    import jax

    from qrobust.models import batch_logits
    from qrobust.models.shots import variance_ratio

    logits_of, scale = batch_logits(model), model.settings["readout_scale"]

    def one(args):
        params, xs, y = args
        per = variance_ratio(logits_of, params, xs, jax.nn.sigmoid(logits_of(params, xs)) - y, scale)
        return per.mean(), per.min()

    return jax.jit(lambda ps, xs, ys: jax.lax.map(one, (ps, xs, ys)))


def device_tables(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The device study's own tables from the sweep's results, device.csv (which marks a finished run) last."""
    from qrobust.analysis.critical import critical_points
    from qrobust.analysis.device import device_table

    critical = critical_points(results)
    return {"critical_points.csv": critical, "device.csv": device_table(results, critical)}


def merged_tables(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every table of the device study from its result rows in any order (``qrobust.experiments.merge``)."""
    from qrobust.experiments.sweep import sweep_tables

    tables = sweep_tables(rows)
    return dict(tables, **device_tables(tables["results.csv"]))
