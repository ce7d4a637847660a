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

from qrobust import sharding
from qrobust.corruption import CORRUPTIONS, check_alpha, check_feasible, corrupt_replicas
from qrobust.engine import EvalData, evaluated_epochs, make_train_fn, plain_data
from qrobust.experiments.chunks import Progress, plan_chunks, run_chunks
from qrobust.errors import ConfigError
from qrobust.keys import CORRUPT, INIT, SHUFFLE, replica_keys
from qrobust.memory import default_cap, program_bytes, replicas_that_fit
from qrobust.experiments.settings import (DATASETS, ModelSettings, build_model, check_name, check_simulator,
                                         load_dataset, model_settings, simulators_used)
from qrobust.models import MODELS
from qrobust.store import RunDirectory

GRID_COLUMNS = ("model", "corruption", "alpha", "seed", "learning_rate")
SWEEP_METRICS = ("loss", "train_acc", "train_acc_clean", "val_acc", "memorization")
RESULT_COLUMNS = GRID_COLUMNS + ("epoch",) + SWEEP_METRICS + ("diverged", "n_corrupted")
DEFAULT_ALPHAS = tuple(round(0.1 * i, 1) for i in range(10))


@dataclass(frozen=True)
class SweepConfig:
    """A noise-response sweep. ``None`` settings take the paper's per-dataset defaults.

    learning_rates: several values make learning rate a grid axis (default: the paper's).
    n_train_per_class: shrink the training set (default: the paper's 250 / ~40).
    chunk_size: replicas per compiled program (default: as many as fit in half the free
      memory, by XLA's memory analysis of the one-replica program, at most 50 QNN /
      200 MLP on CPU and 1000 / 4000 on an accelerator; a resumed run keeps the size
      it started with).
    eval_every: record metrics every this many epochs and at the last (default 1: every
      epoch); the evaluation of other epochs is skipped, which saves about a third of
      the QNN's time. The analyses use the last epoch only.
    """

    dataset: str = "mnist"
    models: tuple[str, ...] = MODELS
    corruptions: tuple[str, ...] = CORRUPTIONS
    alphas: tuple[float, ...] = DEFAULT_ALPHAS
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int | None = None
    batch_size: int | None = None
    learning_rates: tuple[float, ...] | None = None
    depth: int | None = None
    hidden: tuple[int, ...] | None = None
    dtype: str = "complex64"
    n_train_per_class: int | None = None
    n_qubits: int | None = None
    mnist_path: str | None = None
    chunk_size: int | None = None
    eval_every: int = 1
    simulator: str | None = None
    matmul_precision: str = "highest"

    def validate(self) -> "SweepConfig":
        check_name("dataset", self.dataset, DATASETS)
        for kind, values, allowed in (("model", self.models, MODELS), ("corruption", self.corruptions, CORRUPTIONS)):
            if not values:
                raise ConfigError(f"choose at least one {kind}")
            for v in values:
                check_name(kind, v, allowed)
        if not self.alphas:
            raise ConfigError("choose at least one alpha")
        for a in self.alphas:
            check_alpha(a)
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or any(s < 0 for s in self.seeds):
            raise ConfigError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if self.learning_rates is not None and (not self.learning_rates or min(self.learning_rates) <= 0):
            raise ConfigError(f"learning rates must be positive, got {self.learning_rates}")
        if int(self.eval_every) != self.eval_every or self.eval_every < 1:
            raise ConfigError(f"eval_every must be a positive integer, got {self.eval_every}")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ConfigError(f"chunk size must be positive, got {self.chunk_size}")
        check_simulator(self.simulator, self.matmul_precision)
        for m in self.models:
            self.settings_for(m)
        return self

    def settings_for(self, model: str) -> ModelSettings:
        return model_settings(self.dataset, model, epochs=self.epochs, batch_size=self.batch_size,
                              depth=self.depth, hidden=self.hidden,
                              learning_rate=self.learning_rates[0] if self.learning_rates else None)

    def learning_rates_for(self, model: str) -> tuple[float, ...]:
        return tuple(self.learning_rates) if self.learning_rates else (self.settings_for(model).learning_rate,)

    def resolved(self, chunk_sizes: dict[str, int]) -> dict:
        """Every setting that determines the numbers (and how chunks were cut), for config.json."""
        d = asdict(self)
        d["models"] = {m: dict(self.settings_for(m).to_dict(m), learning_rates=list(self.learning_rates_for(m)),
                               chunk_size=chunk_sizes[m]) for m in self.models}
        for k in ("epochs", "batch_size", "learning_rates", "depth", "hidden", "chunk_size"):
            d.pop(k)
        return d


def replica_table(config: SweepConfig, model: str) -> pd.DataFrame:
    """One row per replica of ``model``: its grid coordinates."""
    rows = itertools.product([model], config.corruptions, config.alphas, config.seeds,
                             config.learning_rates_for(model))
    return pd.DataFrame(list(rows), columns=list(GRID_COLUMNS))


def make_chunk_inputs(model, dataset):
    """A function (seeds (R,), corruption index (R,), count (R,)) -> (initial params, shuffle keys, TrainData),
    jitted once per model, so that no chunk compiles anything new."""
    x = jnp.asarray(dataset.x_train)  # float32 / complex64 (or 64-bit in x64 mode)
    y = jnp.asarray(dataset.y_train, jnp.int32)

    @jax.jit
    def build(seeds, kinds, counts, x, y):
        keys = replica_keys(seeds)
        c = corrupt_replicas(kinds, keys[CORRUPT], x, y, counts)
        y_clean = jnp.broadcast_to(y, c.y.shape).astype(jnp.float32)
        data = plain_data(model.prepare(c.x), c.y.astype(jnp.float32), y_clean, c.mask)
        return jax.vmap(model.init)(keys[INIT]), keys[SHUFFLE], data

    return lambda seeds, kinds, counts: build(jnp.asarray(seeds), jnp.asarray(kinds), jnp.asarray(counts), x, y)


def training_bytes(model, dataset, *, epochs: int, batch_size: int, learning_rate: float, val: EvalData,
                   **train_options) -> int:
    """Bytes of the training program of ONE replica of ``model`` on ``dataset`` (XLA's memory analysis,
    ``qrobust.memory.program_bytes``): compiled, not run. ``train_options`` go to ``make_train_fn``."""
    train = make_train_fn(model, epochs=epochs, batch_size=batch_size, n_samples=len(dataset.y_train),
                          **train_options)
    zeros = np.zeros(1, np.int32)
    params, keys, data = make_chunk_inputs(model, dataset)(zeros, zeros, zeros)
    return program_bytes(train, params, jnp.full(1, learning_rate, jnp.float32), keys, data, val)


def fitting_chunk_size(model, dataset, settings: ModelSettings, val: EvalData, *, cap: int) -> int:
    """Replicas of ``model`` per chunk that fit in memory (``qrobust.memory``), from its training footprint."""
    return replicas_that_fit(training_bytes(model, dataset, epochs=settings.epochs, batch_size=settings.batch_size,
                                            learning_rate=settings.learning_rate, val=val), cap=cap)


def chunk_sizes_for(config: SweepConfig, models: dict, dataset, val: dict, out) -> dict[str, int]:
    """Per model: the asked chunk size, else the one a resumed run started with, else what fits (on
    process 0's devices, in a multi-host job, so that every process plans the same chunks)."""
    return sharding.decided_by_primary("chunk-sizes", lambda: _chunk_sizes(config, models, dataset, val, out))


def _chunk_sizes(config: SweepConfig, models: dict, dataset, val: dict, out) -> dict[str, int]:
    stored = (RunDirectory.stored_settings(out) or {}).get("models", {})
    sizes = {}
    for m in config.models:
        if config.chunk_size is not None:
            sizes[m] = config.chunk_size
        elif isinstance(stored.get(m), dict) and "chunk_size" in stored[m]:
            sizes[m] = int(stored[m]["chunk_size"])
        else:
            sizes[m] = fitting_chunk_size(models[m], dataset, config.settings_for(m), val[m], cap=default_cap(m))
    return sizes


def _to_frame(grid: pd.DataFrame, metrics: dict, n_corrupt: np.ndarray, epoch_numbers) -> pd.DataFrame:
    """Tidy rows: one per replica per recorded epoch (``epoch_numbers``, 1-based)."""
    metrics = {k: np.asarray(v, dtype=np.float64) for k, v in metrics.items()}
    n_rep, epochs = metrics["loss"].shape
    diverged = ~np.isfinite(metrics["loss"]).all(axis=1)
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
    ``out`` the results, config.json and noise_response.png are written there.
    """
    config = config.validate()
    dataset = load_dataset(config.dataset, mnist_path=config.mnist_path,
                           n_train_per_class=config.n_train_per_class, n_qubits=config.n_qubits)
    counts = {(kind, a): check_feasible(kind, a, dataset.y_train)
              for kind in config.corruptions for a in config.alphas}
    models = {m: build_model(m, dataset, config.settings_for(m), dtype=config.dtype, simulator=config.simulator,
                             matmul_precision=config.matmul_precision) for m in config.models}
    val = {m: EvalData(models[m].prepare(dataset.x_val), jnp.asarray(dataset.y_val, jnp.float32))
           for m in config.models}
    chunk_size = chunk_sizes_for(config, models, dataset, val, out)
    settings = dict(config.resolved(chunk_size), simulators=simulators_used(models),
                    n_train=len(dataset.y_train), n_qubits_data=dataset.n_qubits,
                    dataset_meta={k: v for k, v in dataset.meta.items() if not k.startswith("deltas")})
    store = RunDirectory(out, settings).open() if out is not None else None

    chunks = plan_chunks(pd.concat([replica_table(config, m) for m in config.models], ignore_index=True),
                         "model", chunk_size.__getitem__)
    todo = [c for c in chunks if store is None or not store.has_chunk(c.name)]
    bar = Progress(sum(config.settings_for(c.program).epochs * len(c.rows) for c in todo), progress)
    trainers = {m: make_train_fn(models[m], epochs=config.settings_for(m).epochs,
                                 batch_size=config.settings_for(m).batch_size, n_samples=len(dataset.y_train),
                                 progress=bar, eval_every=config.eval_every) for m in config.models}
    inputs = {m: make_chunk_inputs(models[m], dataset) for m in config.models}

    def run(chunk):
        m = chunk.program
        padded, n_real = chunk.padded, len(chunk.rows)
        n_corrupt = np.array([counts[(c, a)] for c, a in zip(padded.corruption, padded.alpha)], np.int32)
        kinds = np.array([CORRUPTIONS.index(c) for c in padded.corruption], np.int32)
        params, shuffle_keys, data = inputs[m](padded.seed.to_numpy(), kinds, n_corrupt)
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
        from qrobust.plots import plot_noise_response

        store.write_table("results.csv", results)
        store.write_table("summary.csv", final_summary(results))
        plot_noise_response(results, store.path / "noise_response.png", title=f"{config.dataset}")
    return results
