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

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from qrobust.corruption import CORRUPTIONS, PAPER_CORRUPTIONS, check_alpha, check_feasible
from qrobust.engine import evaluated_epochs, make_train_fn
from qrobust.errors import ConfigError
from qrobust.analysis.summary import diverged as loss_diverged
from qrobust.experiments import poisoners, study
from qrobust.experiments.chunks import Progress, plan_chunks, run_chunks
from qrobust.experiments.settings import ModelSettings, check_name, model_settings
from qrobust.experiments.study import StudyConfig, make_chunk_inputs
from qrobust.models import count_params

GRID_COLUMNS = ("model", "arch", "corruption", "alpha", "seed", "learning_rate")
SWEEP_METRICS = ("loss", "train_acc", "train_acc_clean", "val_acc", "memorization")
RESULT_COLUMNS = GRID_COLUMNS + ("epoch",) + SWEEP_METRICS + ("diverged", "n_corrupted", "n_params")
DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(10))


@dataclass(frozen=True)
class SweepConfig(StudyConfig):
    """A noise-response sweep (the shared fields: ``StudyConfig``). ``None`` settings take the paper's
    per-dataset defaults.

    corruptions, alphas, learning_rates: the grid with models and seeds; several learning rates make
      learning rate a grid axis (default: the paper's).
    epochs, batch_size: override the paper's per model.
    depth, hidden: the QNN's depth and the MLP's hidden sizes, overriding the paper's; several (a tuple of
      depths, a tuple of hidden-size tuples) make architecture a grid axis: each architecture is its own
      compiled program (named MODEL_ARCH, e.g. qnn_d4, mlp_h32x8), and the results' ``arch`` column
      ("d4", "h32x8") and ``n_params`` say which.
    eval_every: record metrics every this many epochs and at the last (default 1: every
      epoch); the evaluation of other epochs is skipped, which saves about a third of
      the QNN's time. The analyses use the last epoch only.
    """

    corruptions: tuple[str, ...] = PAPER_CORRUPTIONS
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    epochs: int | None = None
    batch_size: int | None = None
    learning_rates: tuple[float, ...] | None = None
    depth: int | tuple[int, ...] | None = None
    hidden: tuple[int, ...] | tuple[tuple[int, ...], ...] | None = None
    eval_every: int = 1

    def __post_init__(self):
        super().__post_init__()
        if isinstance(self.depth, (tuple, list)) and len(self.depth) == 1:
            object.__setattr__(self, "depth", self.depth[0])
        if self.hidden is not None:
            hidden = tuple(tuple(h) if isinstance(h, (tuple, list)) else h for h in self.hidden)
            if hidden and isinstance(hidden[0], tuple):
                hidden = hidden[0] if len(hidden) == 1 else hidden
            object.__setattr__(self, "hidden", hidden)

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
        for name, values in (("depth", self.depths()), ("hidden sizes", self.hiddens())):
            if len(values) > 1:
                study.check_axis(name, values)
        study.check_table_size(sum(len(self.corruptions) * len(self.alphas) * len(self.seeds)
                                   * len(self.learning_rates_for(m)) * len(self.architectures(m))
                                   * (self.settings_for(m).epochs // self.eval_every + 1)
                                   for m in self.models), "these seeds, grid and epochs")
        return self

    def depths(self) -> tuple:
        return self.depth if isinstance(self.depth, tuple) else (self.depth,)

    def hiddens(self) -> tuple:
        return self.hidden if self.hidden and isinstance(self.hidden[0], tuple) else (self.hidden,)

    def architectures(self, model: str) -> dict[str, ModelSettings]:
        """arch label -> settings of each architecture of ``model`` ("d6" for a QNN of depth 6, "64x16" for
        an MLP with hidden sizes 64, 16)."""
        out = {}
        for depth, hidden in ([(d, None) for d in self.depths()] if model == "qnn"
                              else [(None, h) for h in self.hiddens()]):
            s = model_settings(self.dataset, model, epochs=self.epochs, batch_size=self.batch_size, depth=depth,
                               hidden=hidden, learning_rate=self.learning_rates[0] if self.learning_rates else None)
            out[f"d{s.depth}" if model == "qnn" else "h" + "x".join(map(str, s.hidden))] = s
        return out

    def programs(self, model: str) -> dict[str, tuple[str, ModelSettings]]:
        """program name -> (arch, settings): the model's name alone for one architecture, MODEL_ARCH for
        several (so a run directory of one architecture keeps the names it always had)."""
        archs = self.architectures(model)
        return {(model if len(archs) == 1 else f"{model}_{a}"): (a, s) for a, s in archs.items()}

    def settings_for(self, model: str) -> ModelSettings:
        """The settings of ``model``'s (first) architecture."""
        return next(iter(self.architectures(model).values()))

    def learning_rates_for(self, model: str) -> tuple[float, ...]:
        return tuple(self.learning_rates) if self.learning_rates else (self.settings_for(model).learning_rate,)

    def resolved(self) -> dict:
        """Every setting that determines the numbers, for config.json (chunk sizes: chunk_sizes.json)."""
        d = asdict(self)
        d["models"] = {m: dict(self.settings_for(m).to_dict(m), learning_rates=list(self.learning_rates_for(m)))
                       for m in self.models}
        for m in self.models:
            if len(self.architectures(m)) > 1:
                d["models"][m]["architectures"] = list(self.architectures(m))
        for k in ("epochs", "batch_size", "learning_rates", "depth", "hidden", "chunk_size"):
            d.pop(k)
        return d


def replica_table(config: SweepConfig, model: str) -> pd.DataFrame:
    """One row per replica of ``model``: its program and grid coordinates."""
    rows = [(program, model, arch, *rest) for program, (arch, _) in config.programs(model).items()
            for rest in itertools.product(config.corruptions, config.alphas, config.seeds,
                                          config.learning_rates_for(model))]
    return pd.DataFrame(rows, columns=["program", *GRID_COLUMNS])


def _to_frame(grid: pd.DataFrame, metrics: dict, n_corrupt: np.ndarray, epoch_numbers, n_params: int) -> pd.DataFrame:
    """Tidy rows: one per replica per recorded epoch (``epoch_numbers``, 1-based)."""
    metrics = {k: np.asarray(v, dtype=np.float64) for k, v in metrics.items()}
    n_rep, epochs = metrics["loss"].shape
    diverged = loss_diverged(metrics["loss"], axis=1)
    frame = grid.drop(columns="program").loc[grid.index.repeat(epochs)].reset_index(drop=True)
    frame["epoch"] = np.tile(np.asarray(epoch_numbers), n_rep)
    for k in SWEEP_METRICS:
        frame[k] = metrics[k].reshape(-1)
    frame["diverged"] = np.repeat(diverged, epochs)
    frame["n_corrupted"] = np.repeat(n_corrupt, epochs)
    frame["n_params"] = n_params
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
    # one compiled program per model architecture: name -> (model, settings)
    programs = {p: (m, st) for m in config.models for p, (_, st) in config.programs(m).items()}
    run_settings = dict(config.resolved(), n_train=len(dataset.y_train), n_qubits_data=dataset.n_qubits,
                        dataset_meta={k: v for k, v in dataset.meta.items() if k != "per_state"})
    dataset, models, val, store = study.prepare(config, {p: st for p, (_, st) in programs.items()}, run_settings,
                                                out, dataset=dataset)
    n_params = {p: count_params(jax.eval_shape(models[p].init, jax.random.PRNGKey(0))) for p in programs}

    bar = Progress(None, progress)
    trainers = {p: make_train_fn(models[p], epochs=st.epochs, batch_size=st.batch_size,
                                 n_samples=len(dataset.y_train), progress=bar.hook, eval_every=config.eval_every)
                for p, (_, st) in programs.items()}
    inputs = {p: make_chunk_inputs(models[p], dataset) for p in programs}
    chunks = plan_chunks(pd.concat([replica_table(config, m) for m in config.models], ignore_index=True), "program",
                         lambda p, n: study.chunk_size(config, store, p, programs[p][0], study.program_footprint(
                             trainers[p], study.training_args(inputs[p], val[p])), n), store=store)
    references = {p: poisoners.plan_references(config, p, trainers[p], inputs[p], val[p], config.seeds, store)
                  for p in programs if "boundary" in config.corruptions}
    todo = [c for c in chunks + sum(references.values(), []) if store is None or not store.has_chunk(c.name)]
    bar.start(sum(programs[c.program][1].epochs * len(c.rows) for c in todo))
    priorities = {p: poisoners.Priorities(dataset, poisoners.run_references(
        references[p], models[p], trainers[p], inputs[p], val[p], dataset, config.learning_rates_for(m)[0], store,
        bar) if p in references else None) for p, (m, _) in programs.items()}

    def run(chunk):
        p = chunk.program
        padded, n_real = chunk.padded, len(chunk.rows)
        n_corrupt = np.array([counts[(c, a)] for c, a in zip(padded.corruption, padded.alpha)], np.int32)
        kinds = np.array([CORRUPTIONS.index(c) for c in padded.corruption], np.int32)
        params, shuffle_keys, data = inputs[p](padded.seed.to_numpy(), kinds, n_corrupt,
                                               priorities[p].rows(padded.corruption, padded.seed))
        _, metrics = trainers[p](params, jnp.asarray(padded.learning_rate, jnp.float32), shuffle_keys, data, val[p])
        metrics = {k: np.asarray(v)[:n_real] for k, v in metrics.items()}
        return _to_frame(chunk.rows, metrics, n_corrupt[:n_real],
                         evaluated_epochs(programs[p][1].epochs, config.eval_every), n_params[p])

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
