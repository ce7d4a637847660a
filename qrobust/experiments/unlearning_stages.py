"""The first stages of an unlearning study (``qrobust.experiments.unlearning``): the study's ``Context``,
teachers and forget sets. The students' stages (their inputs, their training) are
``qrobust.experiments.unlearning_students``. Each stage is a function of the ``Context``; chunks are planned,
run, stored and resumed by ``qrobust.experiments.chunks``; the scoring is
``qrobust.analysis.forgetting.score_students``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from qrobust.analysis.detection import detection_metrics
from qrobust.corruption import CORRUPTIONS
from qrobust.experiments import poisoners, study
from qrobust.experiments.chunks import Progress, run_chunks
from qrobust.keys import FORGET_PART, replica_keys
from qrobust.models import batch_logits
from qrobust.models.base import flatten, unflatten

@dataclass
class Context:
    """What every stage reads: the study's config, data, run directory and teacher programs (one per model,
    ``study.Program``), the poisoned count, the progress bar, and what earlier stages left (teachers'
    parameters, forget sets)."""

    config: object
    dataset: object
    store: object
    teachers: dict  # model -> the teacher's study.Program
    n_poisoned: int
    n_known: dict  # known fraction -> forget set size (oracle)
    bar: Progress | None = None
    teacher_flat: dict | None = None
    forget_sets: dict | None = None
    priorities: dict | None = None  # model -> poisoners.Priorities (the aimed poisoners' scores)

    def __post_init__(self):
        if self.priorities is None:
            self.priorities = {m: poisoners.Priorities(self.dataset) for m in self.config.models}
        self.logits = {m: jax.jit(jax.vmap(batch_logits(self.models[m]))) for m in self.config.models}
        # one replica's parameters (shapes only), for unflatten: built once, not per chunk
        self.templates = {m: jax.eval_shape(self.models[m].init, jax.random.PRNGKey(0)) for m in self.config.models}

    @property
    def n(self) -> int:
        return len(self.dataset.y_train)

    @property
    def models(self) -> dict:
        return {m: p.built for m, p in self.teachers.items()}

    @property
    def val(self) -> dict:
        return {m: p.val for m, p in self.teachers.items()}

    @property
    def inputs(self) -> dict:
        return {m: p.inputs for m, p in self.teachers.items()}

    def plan(self, table: pd.DataFrame, programs: dict, prefix: str) -> list:
        """The chunks of ``table`` (its "program" column names ``programs``), files named ``prefix``...; 50 replicas
        per chunk for a directory started before sizes were recorded."""
        return study.plan(self.config, self.store, table, programs, prefix=prefix, legacy=50)

    def poisoned_data(self, m: str, seeds):
        """(initial params, shuffle keys, TrainData) of the poisoned training set of each seed."""
        kind = CORRUPTIONS.index(self.config.corruption)
        return self.inputs[m](seeds, np.full(len(seeds), kind, np.int32),
                              np.full(len(seeds), self.n_poisoned, np.int32), self.scores(m, seeds))

    def scores(self, m: str, seeds) -> np.ndarray:
        """(R, N) the poisoner's per-sample scores for these seeds (zeros unless it is an aimed one)."""
        return self.priorities[m].rows([self.config.corruption] * len(seeds), seeds)

    def teacher_params(self, m: str, seeds, alpha: float):
        flat = np.stack([self.teacher_flat[(m, alpha, s)] for s in seeds]).astype(np.float32)
        return unflatten(self.templates[m], flat)


def teacher_programs(config, dataset, bar, out=None) -> dict:
    """model -> the teachers' Program (the paper's teacher settings; only the last epoch is evaluated: the
    others' evaluation, about half a QNN teacher's time, is skipped)."""
    return {m: study.build_program(config, m, m, config.teacher_settings(m), dataset, out=out, progress=bar.hook,
                                   eval_every=config.teacher_settings(m).epochs) for m in config.models}


def teacher_table(config) -> pd.DataFrame:
    """Teachers: poisoned (alpha) and clean (alpha = 0), per model and seed."""
    return pd.DataFrame([dict(model=m, seed=s, alpha=a, program=m) for m in config.models
                         for a in (config.alpha, 0.0) for s in config.seeds])


def teacher_chunks(ctx: Context) -> list:
    """The teachers' chunks, sized from their training programs."""
    return ctx.plan(teacher_table(ctx.config), ctx.teachers, "teacher-")


def train_teachers(ctx: Context, chunks: list) -> pd.DataFrame:
    """Stage 1: train (or read back) the teachers; keeps their parameters in ``ctx.teacher_flat``."""
    config = ctx.config
    kind = CORRUPTIONS.index(config.corruption)

    def run(chunk):
        m = chunk.program
        seeds = chunk.padded.seed.to_numpy()
        counts = np.where(chunk.padded.alpha > 0, ctx.n_poisoned, 0).astype(np.int32)
        params, metrics, _ = ctx.teachers[m].train(seeds, np.full(len(seeds), kind), counts, ctx.scores(m, seeds),
                                                   data=False)
        k = len(chunk.rows)
        frame = chunk.rows.drop(columns="program").copy()
        for name in ("val_acc", "train_acc", "memorization"):
            frame[name] = np.asarray(metrics[name])[:k, -1]
        return frame, {"params": flatten(params)[:k]}

    done = run_chunks(chunks, run, ctx.store, ctx.bar)
    ctx.teacher_flat = {(r.model, r.alpha, r.seed): w for c in chunks
                        for r, w in zip(c.rows.itertuples(index=False), done.arrays[c.name]["params"])}
    return pd.concat([done.frames[c.name] for c in chunks], ignore_index=True)


@partial(jax.jit, static_argnums=1)
def _uniforms(keys, n):
    return jax.vmap(lambda k: jax.random.uniform(k, (n,)))(keys)


def forget_sets(ctx: Context) -> dict:
    """Stage 2: per seed and known fraction, the forget set: the oracle's (a random ``n_known`` of the
    poisoned samples; a smaller fraction's set is part of every larger one's), or the samples whose training
    label the poisoned QNN teacher refuses. Returns (seed, known fraction) -> (size, precision, recall)
    against the true poisoned set; the sets themselves go to ``ctx.forget_sets``."""
    config, n = ctx.config, ctx.n
    seeds = np.asarray(config.seeds)
    _, _, data = ctx.poisoned_data(config.models[0], seeds)
    poisoned = np.asarray(data.corrupted)
    if config.forget_source == "oracle":
        u = np.asarray(_uniforms(replica_keys(seeds)[FORGET_PART], n))
        order = np.argsort(np.where(poisoned, u, 2.0 + u), axis=1, kind="stable")  # poisoned first, random
        sets = {(int(s), kf): np.sort(order[i, :n_known]) for i, s in enumerate(seeds)
                for kf, n_known in ctx.n_known.items()}
    else:
        _, _, q_data = ctx.poisoned_data("qnn", seeds)
        logits = ctx.logits["qnn"](ctx.teacher_params("qnn", seeds, config.alpha), q_data.x)
        refused = np.asarray((logits > 0) != (q_data.y == 1))
        sets = {(int(s), 1.0): np.flatnonzero(refused[i]) for i, s in enumerate(seeds)}
    ctx.forget_sets = sets
    out = {}
    row = {int(s): i for i, s in enumerate(seeds)}
    for (s, kf), f in sets.items():
        flagged = np.isin(np.arange(n), f)
        m = detection_metrics(flagged.astype(float), poisoned[row[s]], flagged=flagged)
        out[(s, kf)] = (len(f), m["precision"], m["recall"])
    return out
