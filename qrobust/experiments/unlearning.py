"""Unlearning the poisoned samples, every method and weight as replicas (the study's configuration
and grid: ``qrobust.experiments.unlearning_grid``, whose names are importable from here too).

Protocol (the paper, arXiv:2508.02422, "Unlearning"): label flipping at ratio alpha; per model and
seed a *teacher* is trained on the poisoned data (the paper's teacher settings)
and a *clean* model at alpha = 0 (same settings, same seed) gives the
validation accuracy to recover. The forget set is the flipped samples (or a
random fraction of them, ``known_fraction``: corrective unlearning with partial
knowledge); the retain set is the rest, labels as trained. Each method trains a
student for ``epochs`` epochs from the teacher (retrain: from a fresh
initialisation) with its objective (``qrobust.objectives``), recording every
epoch validation accuracy, forget-set accuracy against the clean and the
poisoned labels, retain accuracy and the objective. Metrics on the forget set
are always scored on the full poisoned set. With ``forget_source="qnn_detector"`` nobody says where the poison
is: the forget set of a seed is the training samples whose (poisoned) label that
seed's poisoned QNN teacher refuses to predict (detect, then unlearn); the
tables record its size, precision and recall against the true poisoned set.

All methods of the unlearning family (retrain, finetune, scrub, ga, neggrad,
relabel) share ONE compiled program per model: the method is a per-replica
vector of loss weights and a starting point. SCRUB as Kurmanji et al. define it
(alternating max/min steps) is its own program.

Keys (``qrobust.keys``): the teachers' inputs, initialisation and batch order
come from the sweep's own builder, so a teacher is the sweep's poisoned replica
when settings agree; students draw their batch order, retrain's fresh
initialisation, the random labels and the known part of the forget set from
their own purposes.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from qrobust.analysis.forgetting import GRID, score_students, scorecard  # noqa: F401 (GRID re-exported)
from qrobust.corruption import check_feasible
from qrobust.errors import ConfigError
from qrobust.experiments import poisoners, shadows, study
from qrobust.experiments import unlearning_stages as stages
from qrobust.experiments import unlearning_students as student_stages
from qrobust.experiments.chunks import Progress
from qrobust.experiments.unlearning_grid import (  # noqa: F401 (the study's description, importable from here)
    FORGET_SOURCES, METHODS, PAPER_METHODS, TEACHER_SETTINGS, UNLEARN_SETTINGS, UnlearnConfig, replica_table)
from qrobust.objectives import L1_WEIGHT, UNLEARNING_METHODS, method_coefs, weights_used  # noqa: F401

log = logging.getLogger("qrobust")


class Unlearned(NamedTuple):
    """What an unlearning study gives: per-epoch ``results``, the per-student ``final`` table, and with shadows
    (``UnlearnConfig.shadows``) the ``scorecard`` (per model x method x weights) and the per-example scores
    (``examples``); both None without shadows."""

    results: pd.DataFrame
    final: pd.DataFrame
    scorecard: pd.DataFrame | None = None
    examples: pd.DataFrame | None = None


def run_unlearning(config: UnlearnConfig, out: str | Path | None = None, *, progress: bool = True):
    """Run (or resume) an unlearning study. Returns (per-epoch results, per-replica final table); with shadows
    the scorecard is written to ``out`` (``evaluate_unlearning`` returns it)."""
    return evaluate_unlearning(config, out, progress=progress)[:2]


def evaluate_unlearning(config: UnlearnConfig, out: str | Path | None = None, *, progress: bool = True) -> Unlearned:
    """Run (or resume) an unlearning study, with its shadow replicas if ``config.shadows`` (``Unlearned``).

    Stages (``qrobust.experiments.unlearning_stages``, ``unlearning_students``): teachers, forget sets, student
    inputs, students; then the scoring (``qrobust.analysis.forgetting.score_students``); then the shadows
    (``qrobust.experiments.shadows``). Everything is validated, and the data loaded, before anything is
    written.
    """
    config = config.validate()
    students = replica_table(config)
    epochs = {m: max(config.epochs, config.teacher_settings(m).epochs) for m in config.models}
    study.check_table_size(int(sum(epochs[m] for m in students.model)), "these seeds, methods, weights and epochs")
    config, dataset = study.start(config)
    n = len(dataset.y_train)
    n_poisoned = check_feasible(config.corruption, config.alpha, dataset.y_train)
    n_known = {kf: int(round(kf * n_poisoned)) for kf in config.known_fraction}
    for kf, size in n_known.items():
        if size == 0:
            raise ConfigError(f"the forget set is empty: {config.corruption} at alpha={config.alpha} corrupts "
                              f"{n_poisoned} of {n} samples, and a known fraction of {kf} of them leaves none "
                              "to forget")
    if "mlp" in config.models and {"scrub", "ga"} & set(config.methods) and max(config.fo_ws) > 0:
        log.warning("the MLP's logits are unbounded, so the ascent terms of scrub/ga (fo_w > 0) are unbounded "
                    "below; replicas that diverge are marked and left out of averages")
    run_settings = dict(config.resolved(), n_poisoned=n_poisoned,
                        n_forget=(list(n_known.values()) if len(n_known) > 1 else n_known[config.known_fraction[0]])
                        if config.forget_source == "oracle" else None)
    bar = Progress(None, progress, name="unlearning")
    programs = stages.teacher_programs(config, dataset, bar, out)
    store = study.open_store(out, run_settings, programs, "unlearning", claiming=config.claiming())
    ctx = stages.Context(config, dataset, store, programs, n_poisoned, n_known, bar=bar)
    chunks = stages.teacher_chunks(ctx)
    references = {m: poisoners.plan_references(config, programs[m], config.seeds, store)
                  for m in config.models if poisoners.needs_references([config.corruption])}
    todo = [c for c in chunks + sum(references.values(), []) if store is None or not store.has_chunk(c.name)]
    # the students' chunks are planned once the teachers (and so the forget sets) exist; until then the bar
    # counts all of them
    ctx.bar.start(sum(config.teacher_settings(c.program).epochs * len(c.rows) for c in todo)
                  + sum(student_stages.student_recipe(config, q, 1)[2] for q in students.program)
                  + shadows.work(config))
    for m, planned in references.items():  # a reference-ranked poisoner: the clean reference models first
        ctx.priorities[m] = poisoners.Priorities(dataset, poisoners.run_references(
            planned, programs[m], config.teacher_settings(m).learning_rate, store, ctx.bar))
    teachers = stages.train_teachers(ctx, chunks)
    forget = stages.forget_sets(ctx)
    results, params, seconds = student_stages.train_students(ctx, students, student_stages.StudentInputs(ctx))
    shadow_scores, examples = shadows.Shadows(ctx).run() if config.shadows else (None, None)
    ctx.bar.close()
    last = results.groupby(list(GRID), sort=False).epoch.transform("max")  # retrain_full runs the teacher's epochs
    final = results[results.epoch == last].drop(columns="epoch").reset_index(drop=True)
    results, final = score_students(results, final, teachers, params, seconds, forget)
    if final.diverged.any():
        log.warning("%d student replica(s) diverged and are left out of averages", int(final.diverged.sum()))
    card = None if shadow_scores is None else scorecard(final, shadow_scores)
    if store is not None and store.writer:
        from qrobust.analysis.summary import recovery_summary

        store.write_table("results.csv", results)
        store.write_table("final.csv", final)
        store.write_table("teachers.csv", teachers)
        store.write_table("recovery.csv", recovery_summary(final))
        if card is not None:
            store.write_table("shadows.csv", shadow_scores)
            store.write_table("examples.csv", examples)
            store.write_table("scorecard.csv", card)
    return Unlearned(results, final, card, examples)
