"""Layer 5: the noise-response sweep, model x corruption x alpha x seed x learning rate.

All replicas of one model train as ONE compiled, vmapped program, in chunks of
equal size (the last padded with repeats that are discarded), so a chunk never
recompiles. Each finished chunk is written at once; rerunning on the same
directory skips it.

Keys, per replica, from its seed alone: ``k = PRNGKey(seed)``; initial
parameters from ``fold_in(k, 0)``, the corrupted samples from ``fold_in(k, 1)``,
the minibatch order from ``fold_in(k, 2)``. So for one seed every alpha starts
from the same parameters, sees the same batch order, and corrupts nested sets
(common random numbers: differences across alpha are due to alpha).
"""

from __future__ import annotations

import itertools
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pandas as pd

from qrobust.corruption import CORRUPTIONS, check_alpha, check_feasible
from qrobust.engine import evaluated_epochs, make_train_fn
from qrobust.errors import ConfigError
from qrobust.analysis.summary import diverged as loss_diverged
from qrobust.experiments import poisoners, study
from qrobust.experiments.chunks import Progress, plan_chunks, run_chunks
from qrobust.experiments.settings import ModelSettings, check_name, model_settings
from qrobust.experiments.study import StudyConfig, make_chunk_inputs

GRID_COLUMNS = ("model", "corruption", "alpha", "seed", "learning_rate")
SWEEP_METRICS = ("loss", "train_acc", "train_acc_clean", "val_acc", "memorization")
RESULT_COLUMNS = GRID_COLUMNS + ("epoch",) + SWEEP_METRICS + ("diverged", "n_corrupted")
DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(10))


@dataclass(frozen=True)
class SweepConfig(StudyConfig):
    """A noise-response sweep (the shared fields: ``StudyConfig``). ``None`` settings take the paper's
    per-dataset defaults.

    corruptions, alphas, learning_rates: the grid with models and seeds; several learning rates make
      learning rate a grid axis (default: the paper's).
    epochs, batch_size, depth, hidden: override the paper's per model.
    eval_every: record metrics every this many epochs and at the last (default 1: every
      epoch); the evaluation of other epochs is skipped, which saves about a third of
      the QNN's time. The analyses use the last epoch only.
    """

    corruptions: tuple[str, ...] = CORRUPTIONS
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    epochs: int | None = None
    batch_size: int | None = None
    learning_rates: tuple[float, ...] | None = None
    depth: int | None = None
    hidden: tuple[int, ...] | None = None
    eval_every: int = 1

    def validate(self) -> "SweepConfig":
        self.validate_common()
        study.check_axis("corruption", self.corruptions)
        for v in self.corruptions:
            check_name("corruption", v, CORRUPTIONS)
        study.check_axis("alpha", self.alphas)
        for a in self.alphas:
            check_alpha(a)
        if self.learning_rates is not None:
            study.check_axis("learning rate", self.learning_rates)
            if min(self.learning_rates) <= 0:
                raise ConfigError(f"learning rates must be positive, got {self.learning_rates}")
        if int(self.eval_every) != self.eval_every or self.eval_every < 1:
            raise ConfigError(f"eval_every must be a positive integer, got {self.eval_every}")
        for m in self.models:
            self.settings_for(m)
        study.check_table_size(sum(len(self.corruptions) * len(self.alphas) * len(self.seeds)
                                   * len(self.learning_rates_for(m))
                                   * (self.settings_for(m).epochs // self.eval_every + 1)
                                   for m in self.models), "these seeds, grid and epochs")
        return self

    def settings_for(self, model: str) -> ModelSettings:
        return model_settings(self.dataset, model, epochs=self.epochs, batch_size=self.batch_size,
                              depth=self.depth, hidden=self.hidden,
                              learning_rate=self.learning_rates[0] if self.learning_rates else None)

    def learning_rates_for(self, model: str) -> tuple[float, ...]:
        return tuple(self.learning_rates) if self.learning_rates else (self.settings_for(model).learning_rate,)

    def resolved(self) -> dict:
        """Every setting that determines the numbers, for config.json (chunk sizes: chunk_sizes.json)."""
        d = asdict(self)
        d["models"] = {m: dict(self.settings_for(m).to_dict(m), learning_rates=list(self.learning_rates_for(m)))
                       for m in self.models}
        for k in ("epochs", "batch_size", "learning_rates", "depth", "hidden", "chunk_size"):
            d.pop(k)
        return d


def replica_table(config: SweepConfig, model: str) -> pd.DataFrame:
    """One row per replica of ``model``: its grid coordinates."""
    rows = itertools.product([model], config.corruptions, config.alphas, config.seeds,
                             config.learning_rates_for(model))
    return pd.DataFrame(list(rows), columns=list(GRID_COLUMNS))


def _to_frame(grid: pd.DataFrame, metrics: dict, n_corrupt: np.ndarray, epoch_numbers) -> pd.DataFrame:
    """Tidy rows: one per replica per recorded epoch (``epoch_numbers``, 1-based)."""
    metrics = {k: np.asarray(v, dtype=np.float64) for k, v in metrics.items()}
    n_rep, epochs = metrics["loss"].shape
    diverged = loss_diverged(metrics["loss"], axis=1)
    frame = grid.loc[grid.index.repeat(epochs)].reset_index(drop=True)
    frame["epoch"] = np.tile(np.asarray(epoch_numbers), n_rep)
    for k in SWEEP_METRICS:
        frame[k] = metrics[k].reshape(-1)
    frame["diverged"] = np.repeat(diverged, epochs)
    frame["n_corrupted"] = np.repeat(n_corrupt, epochs)
    return frame[list(RESULT_COLUMNS)]


def run_sweep(config: SweepConfig, out: str | Path | None = None, *, progress: bool = True) -> pd.DataFrame:
    """Run (or resume) a sweep; returns the tidy results (one row per replica per epoch).

    Everything is validated, and the data loaded, before anything is written. With
    ``out`` the chunks, results.csv, summary.csv and config.json are written there (the figure:
    ``qrobust.report.draw(out)``).
    """
    config = config.validate()
    dataset = study.load(config)
    counts = {(kind, a): check_feasible(kind, a, dataset.y_train)
              for kind in config.corruptions for a in config.alphas}
    settings = {m: config.settings_for(m) for m in config.models}
    run_settings = dict(config.resolved(), n_train=len(dataset.y_train), n_qubits_data=dataset.n_qubits,
                        dataset_meta={k: v for k, v in dataset.meta.items() if k != "per_state"})
    dataset, models, val, store = study.prepare(config, settings, run_settings, out, dataset=dataset)

    bar = Progress(None, progress)
    trainers = {m: make_train_fn(models[m], epochs=config.settings_for(m).epochs,
                                 batch_size=config.settings_for(m).batch_size, n_samples=len(dataset.y_train),
                                 progress=bar.hook, eval_every=config.eval_every) for m in config.models}
    inputs = {m: make_chunk_inputs(models[m], dataset) for m in config.models}
    chunks = plan_chunks(pd.concat([replica_table(config, m) for m in config.models], ignore_index=True), "model",
                         lambda m, n: study.chunk_size(config, store, m, m, study.program_footprint(
                             trainers[m], study.training_args(inputs[m], val[m])), n), store=store)
    references = {m: poisoners.plan_references(config, m, trainers[m], inputs[m], val[m], config.seeds, store)
                  for m in config.models if "boundary" in config.corruptions}
    todo = [c for c in chunks + sum(references.values(), []) if store is None or not store.has_chunk(c.name)]
    bar.start(sum(config.settings_for(c.program).epochs * len(c.rows) for c in todo))
    priorities = {m: poisoners.Priorities(dataset, poisoners.run_references(
        references[m], models[m], trainers[m], inputs[m], val[m], dataset, config.learning_rates_for(m)[0], store,
        bar) if m in references else None) for m in config.models}

    def run(chunk):
        m = chunk.program
        padded, n_real = chunk.padded, len(chunk.rows)
        n_corrupt = np.array([counts[(c, a)] for c, a in zip(padded.corruption, padded.alpha)], np.int32)
        kinds = np.array([CORRUPTIONS.index(c) for c in padded.corruption], np.int32)
        params, shuffle_keys, data = inputs[m](padded.seed.to_numpy(), kinds, n_corrupt,
                                               priorities[m].rows(padded.corruption, padded.seed))
        _, metrics = trainers[m](params, jnp.asarray(padded.learning_rate, jnp.float32), shuffle_keys, data, val[m])
        metrics = {k: np.asarray(v)[:n_real] for k, v in metrics.items()}
        return _to_frame(chunk.rows, metrics, n_corrupt[:n_real],
                         evaluated_epochs(config.settings_for(m).epochs, config.eval_every))

    frames = run_chunks(chunks, run, store, bar).frames
    bar.close()
    results = pd.concat([frames[c.name] for c in chunks], ignore_index=True)
    results = results.sort_values(list(GRID_COLUMNS) + ["epoch"], kind="stable").reset_index(drop=True)
    diverged = results.loc[results.diverged, list(GRID_COLUMNS)].drop_duplicates()
    if len(diverged):
        warnings.warn(f"{len(diverged)} replica(s) diverged (non-finite loss) and are left out of averages:\n"
                      f"{diverged.to_string(index=False)}", RuntimeWarning, stacklevel=2)
    if store is not None and store.writer:
        from qrobust.analysis.summary import final_summary

        store.write_table("results.csv", results)
        store.write_table("summary.csv", final_summary(results))
    return results
