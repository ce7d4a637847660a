"""The noise-response sweep, model x corruption x alpha x seed x learning rate (its configuration
and grid: ``qrobust.experiments.sweep_grid``, whose names are importable from here too).

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

import logging
from pathlib import Path
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from qrobust.analysis.summary import diverged as loss_diverged, with_architecture
from qrobust.corruption import CORRUPTIONS, check_feasible
from qrobust.data.features import encode
from qrobust.engine import evaluated_epochs
from qrobust.experiments import poisoners, study
from qrobust.experiments.chunks import Progress, run_chunks
from qrobust.experiments.sweep_grid import (  # noqa: F401 (the sweep's description, importable from here too)
    ARCH_COLUMNS, DEFAULT_ALPHAS, GRID_COLUMNS, RESULT_COLUMNS, SWEEP_METRICS, Architecture, SweepConfig,
    architecture_columns, replica_table)
from qrobust.models import count_params

log = logging.getLogger("qrobust")


def _to_frame(grid: pd.DataFrame, metrics: dict, n_corrupt: np.ndarray, epoch_numbers, columns: dict) -> pd.DataFrame:
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
    for k, v in columns.items():
        frame[k] = v
    return with_architecture(frame)[list(RESULT_COLUMNS)]  # an architecture column not given: its default


def run_sweep(config: SweepConfig, out: str | Path | None = None, *, progress: bool = True,
              study_name: str = "sweep", attacks=None, with_priorities=None) -> pd.DataFrame:
    """Run (or resume) a sweep; returns the tidy results (one row per replica per epoch).

    Everything is validated, and the data loaded, before anything is written. With
    ``out`` the chunks (with each replica's trained weights), results.csv, summary.csv and config.json are
    written there (the figure: ``qrobust.report.draw(out)``). ``study_name``: the study config.json names (a
    study built on the sweep, such as "controls", records its own). ``attacks(programs, dataset, counts, store)``:
    the adaptive attacks' priorities per program, {program: {(corruption, seed): (N,)}} (the attack study's;
    ``store`` the run directory, None without ``out``). ``with_priorities({program: poisoners.Priorities}, store)``:
    called once the aimed poisoners' scores are known (the attack study trains its partition ensembles on the
    same flips, in chunks of the same run directory).
    """
    config, dataset = study.start(config)
    counts = {(kind, a): check_feasible(kind, a, dataset.y_train)
              for kind in config.corruptions for a in config.alphas}
    bar = Progress(None, progress, name=study_name)
    built = build_programs(config, dataset, bar, out)
    programs = {p: program for p, (program, _) in built.items()}
    run_settings = dict(config.resolved(), n_train=len(dataset.y_train), n_qubits_data=dataset.n_qubits,
                        dataset_meta={k: v for k, v in dataset.meta.items() if k != "per_state"})
    store = study.open_store(out, run_settings, programs, study_name, claiming=config.claiming())
    columns = {p: architecture_columns(program.model, arch, count_params(jax.eval_shape(
        program.built.init, jax.random.PRNGKey(0)))) for p, (program, arch) in built.items()}
    chunks = study.plan(config, store, pd.concat([replica_table(config, m) for m in config.models],
                                                 ignore_index=True), programs)
    references = {p: poisoners.plan_references(config, programs[p], config.seeds, store)
                  for p in programs if poisoners.needs_references(config.corruptions)}
    todo = [c for c in chunks + sum(references.values(), []) if store is None or not store.has_chunk(c.name)]
    bar.start(sum(programs[c.program].epochs * len(c.rows) for c in todo))
    # the aimed poisoners' scores; QUID's from the amplitude-encoded states whatever a program reads
    adaptive = attacks(programs, dataset, counts, store) if poisoners.needs_attacks(config.corruptions) else {}
    priorities = {p: poisoners.Priorities(dataset, poisoners.run_references(
        references[p], programs[p], config.learning_rates_for(programs[p].model)[0], store, bar)
        if p in references else None, adaptive.get(p)) for p in programs}
    if with_priorities is not None:
        with_priorities(priorities, store)

    def run(chunk):
        p = programs[chunk.program]
        padded, n_real = chunk.padded, len(chunk.rows)
        n_corrupt = np.array([counts[(c, a)] for c, a in zip(padded.corruption, padded.alpha)], np.int32)
        kinds = np.array([CORRUPTIONS.index(c) for c in padded.corruption], np.int32)
        params, metrics, _ = p.train(padded.seed.to_numpy(), kinds, n_corrupt,
                                     priorities[chunk.program].rows(padded.corruption, padded.seed),
                                     padded.learning_rate.to_numpy(), data=False)
        metrics = {k: np.asarray(v)[:n_real] for k, v in metrics.items()}
        frame = _to_frame(chunk.rows, metrics, n_corrupt[:n_real], evaluated_epochs(p.epochs, config.eval_every),
                          columns[chunk.program])
        return frame, study.weights(params, n_real, config.keeps_weights(p.model))

    frames = run_chunks(chunks, run, store, bar).frames
    bar.close()
    tables = sweep_tables(pd.concat([frames[c.name] for c in chunks], ignore_index=True))
    results = tables["results.csv"]
    diverged = results.loc[results.diverged, list(GRID_COLUMNS)].drop_duplicates()
    if len(diverged):
        log.warning("%d replica(s) diverged (non-finite loss) and are left out of averages:\n%s", len(diverged),
                    diverged.to_string(index=False))
    if store is not None and store.writer:
        for name, table in tables.items():
            store.write_table(name, table)
    return results


def run_sweep_study(config: SweepConfig, out: str | Path | None, *, progress: bool, study_name: str,
                    tables: Callable[[pd.DataFrame], dict[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """A study that is a sweep plus tables of its own (controls, device): run (or resume) the sweep, then write
    ``tables(results)`` in its order into ``out`` (its last table marks a finished run); returns them."""
    results = run_sweep(config, out, progress=progress, study_name=study_name)
    own = tables(results)
    if out is not None:
        from qrobust import sharding
        from qrobust.files import atomic_write_text

        if sharding.is_primary():
            for name, frame in own.items():
                atomic_write_text(Path(out) / name, frame.to_csv(index=False))
    return own


def sweep_tables(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The sweep's tables from its result rows in any order (its chunks', or those of runs split by seed:
    ``qrobust.experiments.merge``): results.csv (sorted by replica, then epoch) and summary.csv."""
    from qrobust.analysis.summary import final_summary

    results = rows.sort_values(list(GRID_COLUMNS) + ["epoch"], kind="stable").reset_index(drop=True)
    return {"results.csv": results, "summary.csv": final_summary(results)}


def build_programs(config: SweepConfig, dataset, bar, out) -> dict:
    """program name -> (Program, Architecture): one compiled program per model architecture, each on the data
    as its encoding reads them."""
    encoded = {e: encode(dataset, e, config.n_features) for e in config.encodings()}
    return {p: (study.build_program(config, p, m, arch.settings, encoded[arch.encoding], out=out, progress=bar.hook,
                                    eval_every=config.eval_every), arch)
            for m in config.models for p, (_, arch) in config.programs(m).items()}
