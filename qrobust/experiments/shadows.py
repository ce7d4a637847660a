"""Shadow replicas of an unlearning setting: forgetting measured per example (``--shadows K``).

Protocol (U-LiRA, Hayes et al., arXiv:2403.01218; the NeurIPS 2023 unlearning challenge, arXiv:2406.09073):
the *pool* is the study's poisoned training set of its first seed (its flipped labels, its forget set:
with several known fractions, the largest). With ``shadow_draws`` D > 1 (default 1) there are D pools, the
poisoned training sets of the study's first D seeds (poisoning draws: each its own flipped labels and forget
set), each with its own K shadows, all keyed by that draw's seed; draw 0 is the single draw of before, chunk
for chunk (``shadow-teacher-*``, ``shadow-student-*``; draw d > 0's chunks are ``shadow-seed<seed>-*``).
K shadows each take a random half of the pool, keyed by the seed: every sample is in exactly
floor(K / 2) of them (LiRA's balanced split). Shadow k's teacher trains on its half with the teacher's
settings; its forget set is the study's forget set within the half, its retain set the rest of the half.
From that teacher every method of the study unlearns, with the study's budget and weights; and every
shadow is retrained on its retain set with the teacher's whole recipe from a fresh initialisation
(``retrain_full``, the reference any method is measured against: the model that never saw the forget
set). The shadow teacher itself is scored too, as method ``none`` (no unlearning: how memorable the
forget set is to begin with).

All of it runs as replicas of the study's own programs (one per model and objective), chunked and
resumable in the study's run directory (chunks ``shadow-*``); the chunks keep each shadow's final logits
on the whole pool and on the validation set, and ``qrobust.analysis.ulira`` scores them: per forget
example and pooled, unlearned shadows against retrained ones, per draw and with the draws pooled, with
bootstrap intervals over draws and shadows (``ulira.score_draws``). With several draws the per-draw scores
are also written to the run directory as ``shadow_draws.csv``.
"""

from __future__ import annotations

import itertools
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from qrobust.analysis import ulira
from qrobust.experiments import study
from qrobust.experiments.inputs import blockwise
from qrobust.experiments.chunks import run_chunks
from qrobust.experiments.unlearning_stages import Context, flatten, unflatten
from qrobust.experiments.unlearning_students import (StudentInputs, method_vectors, program_of, student_programs,
                                                     student_recipe)
from qrobust.keys import INIT, SHUFFLE, STUDENT_ORDER, shadow_keys
from qrobust.objectives import weights_used

REFERENCE = "retrain_full"  # what the shadows' unlearned outputs are told apart from
DEFAULT_SHADOWS = 64
MIN_SHADOWS = 8  # each example in 4 shadows at least: leave-one-out Gaussian fits of 3 outputs
DEFAULT_DRAWS = 1  # poisoning draws (``UnlearnConfig.shadow_draws``): each costs as much as the first
DRAWS_TABLE = "shadow_draws.csv"  # the per-draw scores, written with several draws


def n_draws(config) -> int:
    """The poisoning draws of ``config``'s shadows."""
    return int(getattr(config, "shadow_draws", DEFAULT_DRAWS) or DEFAULT_DRAWS)


def work(config) -> int:
    """Replica-epochs of every shadow of ``config`` (0 without shadows), for the progress bar."""
    if not config.shadows:
        return 0
    teachers, students = shadow_tables(config)
    return n_draws(config) * (sum(config.teacher_settings(m).epochs for m in teachers.model)
                              + sum(student_recipe(config, q, 1)[2] for q in students.program))


@partial(jax.jit, static_argnums=(1, 2))
def _split(seed, n_shadows: int, n: int):
    u = jax.random.uniform(shadow_keys(seed, jnp.arange(1))[INIT, 0], (n_shadows, n))
    rank = jnp.argsort(jnp.argsort(u, axis=0), axis=0)
    return rank < n_shadows // 2


def shadow_split(seed: int, n_shadows: int, n: int) -> np.ndarray:
    """(K, N) bool: sample i is in shadow k's half. Every sample is in exactly floor(K / 2) shadows; keyed
    by ``seed`` alone (the same pool gives the same halves)."""
    return np.asarray(_split(jnp.uint32(seed), n_shadows, n))


def shadow_tables(config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(teachers, students): one row per shadow teacher (model, shadow) and per shadow student (model,
    method, shadow, kl_w, fo_w, program); the students are every method of the study, and the reference."""
    k = range(config.shadows)
    teachers = pd.DataFrame([dict(model=m, shadow=s, program=m) for m in config.models for s in k])
    methods = list(config.methods) + ([REFERENCE] if REFERENCE not in config.methods else [])
    rows = []
    for model, method in itertools.product(config.models, methods):
        use_kl, use_fo = weights_used(method)
        program = program_of(model, method)
        for kl_w, fo_w, s in itertools.product(config.kl_ws if use_kl else (0.0,), config.fo_ws if use_fo else (0.0,),
                                               k):
            rows.append(dict(model=model, method=method, shadow=s, kl_w=kl_w, fo_w=fo_w, program=program))
    return teachers, pd.DataFrame(rows)


class ShadowDraw:
    """The shadow replicas of one poisoning draw of a study (``Context`` after its forget sets are drawn): the
    pool and forget set of the study's seed ``config.seeds[draw]``, every key from that seed."""

    def __init__(self, ctx: Context, draw: int = 0):
        self.ctx, config = ctx, ctx.config
        self.draw = draw
        self.seed = int(config.seeds[draw])
        self.prefix = "shadow-" if draw == 0 else f"shadow-seed{self.seed}-"  # draw 0: the chunks of before
        self.member = shadow_split(self.seed, config.shadows, ctx.n)
        forget = np.zeros(ctx.n, bool)
        forget[ctx.forget_sets[(self.seed, max(config.known_fraction))]] = True
        self.forget = forget
        self.known = self.member & forget[None]
        self.n_forget_max = max(1, int(self.known.sum(1).max()))
        self.n_retain = int((self.member & ~forget[None]).sum(1).max())
        self.complete = {m: StudentInputs._completion(ctx.models[m], config.salun_fraction)
                         for m in config.models}
        self.teachers, self.students = shadow_tables(config)

    def pool(self, m: str, r: int):
        """(initial params, shuffle keys, TrainData) of the pool (the first seed's poisoned set), r times."""
        return self.ctx.poisoned_data(m, np.full(r, self.seed))

    def _discount(self, chunks, programs) -> None:
        store = self.ctx.store
        done = sum(programs[c.program].epochs * len(c.rows) for c in chunks
                   if store is not None and store.has_chunk(c.name))
        if done:
            self.ctx.bar.discount(done)

    def train_teachers(self) -> dict:
        """(model, shadow) -> the shadow teacher's flat parameters; its final logits go to ``self.outputs``."""
        ctx, config = self.ctx, self.ctx.config
        n_half = int(self.member.sum(1).max())

        def args(m, shadows):
            _, _, data = self.pool(m, len(shadows))
            keys = shadow_keys(self.seed, jnp.asarray(shadows))
            params = jax.vmap(ctx.models[m].init)(keys[INIT])
            lr = jnp.full(len(shadows), config.teacher_settings(m).learning_rate, jnp.float32)
            return params, lr, keys[SHUFFLE], data._replace(stream=jnp.asarray(self.member[shadows])), ctx.val[m]

        programs = {}
        for m in config.models:
            teacher, s = ctx.teachers[m], config.teacher_settings(m)
            programs[m] = study.Program(m, m, teacher.built, s, teacher.data, progress=ctx.bar.hook, inputs=args,
                                        args_for=lambda r, m=m: args(m, np.arange(r) % config.shadows),
                                        n_stream=n_half, batch_size=min(s.batch_size, n_half), eval_every=s.epochs)
        chunks = ctx.plan(self.teachers, programs, self.prefix + "teacher-")
        self._discount(chunks, programs)

        def run(chunk):
            m = chunk.program
            a = args(m, chunk.padded.shadow.to_numpy())
            params, metrics = programs[m].trainer()(*a)
            return self._outputs(chunk, m, params, a[3], metrics), {"params": flatten(params)[:len(chunk.rows)],
                                                                    **self._logits(m, params, a[3], len(chunk.rows))}

        done = run_chunks(chunks, run, ctx.store, ctx.bar)
        self.teacher_arrays = {c.name: done.arrays[c.name] for c in chunks}
        self.teacher_chunks = chunks
        return {(r.model, r.shadow): w for c in chunks
                for r, w in zip(c.rows.itertuples(index=False), done.arrays[c.name]["params"])}

    def _logits(self, m, params, data, k):
        val = self.ctx.val[m]
        val_x = jnp.broadcast_to(val.x, (data.x.shape[0],) + val.x.shape)
        return {"logits": np.asarray(self.ctx.logits[m](params, data.x))[:k],
                "val_logits": np.asarray(self.ctx.logits[m](params, val_x))[:k]}

    @staticmethod
    def _outputs(chunk, m, params, data, metrics):
        k = len(chunk.rows)
        frame = chunk.rows.drop(columns="program").copy()
        for name in ("val_acc", "retain_acc", "forget_acc_clean", "memorization", "loss"):
            frame[name] = np.asarray(metrics[name], np.float64)[:k, -1]
        if "objective" in metrics:
            frame["diverged"] = ~np.isfinite(np.asarray(metrics["objective"])[:k]).all(1)
        return frame

    def train_students(self, teacher_flat: dict):
        """Every shadow student. Returns (table of final metrics, chunk name -> arrays, the chunks)."""
        ctx, config = self.ctx, self.ctx.config

        def args(program, rows):
            m = program.split("-")[0]
            shadows = rows.shadow.to_numpy()
            _, _, data = self.pool(m, len(rows))
            flat = np.stack([teacher_flat[(m, int(s))] for s in shadows]).astype(np.float32)
            idx = np.zeros((len(rows), self.n_forget_max), np.int32)
            w = np.zeros((len(rows), self.n_forget_max), np.float32)
            for r, s in enumerate(shadows):
                f = np.flatnonzero(self.known[s])
                idx[r, :len(f)], w[r, :len(f)] = f, 1.0
            keys = shadow_keys(self.seed, jnp.asarray(shadows))
            start, data = blockwise(self.complete[m], data, unflatten(ctx.templates[m], flat),
                                          jnp.swapaxes(keys, 0, 1), method_vectors(config, rows),
                                          *StudentInputs.flags(rows), idx, w, self.known[shadows],
                                          self.member[shadows])
            lr = student_recipe(config, program, self.n_retain)[1]
            return start, jnp.full(len(rows), lr, jnp.float32), keys[STUDENT_ORDER], data, ctx.val[m]

        programs = student_programs(ctx, self.students, self.n_retain, args, eval_every="last")
        chunks = ctx.plan(self.students, programs, self.prefix + "student-")
        self._discount(chunks, programs)

        def run(chunk):
            m = chunk.program.split("-")[0]
            a = args(chunk.program, chunk.padded)
            params, metrics = programs[chunk.program].trainer()(*a)
            return self._outputs(chunk, m, params, a[3], metrics), self._logits(m, params, a[3], len(chunk.rows))

        done = run_chunks(chunks, run, ctx.store, ctx.bar)
        frames = []
        for c in chunks:
            frame = done.frames[c.name].copy()
            frame["seconds"] = done.seconds[c.name] / len(c.padded)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True), done.arrays, chunks

    def run(self) -> ulira.Draw:
        """Train (or read back) every shadow of this draw; returns its outputs for ``ulira.score_draws``."""
        teacher_flat = self.train_teachers()
        students, arrays, chunks = self.train_students(teacher_flat)
        outputs = {}  # (model, method, kl_w, fo_w) -> (logits (K, N), val_logits (K, M)), rows in shadow order
        for c in chunks:
            for i, r in enumerate(c.rows.itertuples(index=False)):
                outputs.setdefault((r.model, r.method, r.kl_w, r.fo_w), {})[r.shadow] = (
                    arrays[c.name]["logits"][i], arrays[c.name]["val_logits"][i])
        for c in self.teacher_chunks:
            for i, r in enumerate(c.rows.itertuples(index=False)):
                outputs.setdefault((r.model, "none", 0.0, 0.0), {})[r.shadow] = (
                    self.teacher_arrays[c.name]["logits"][i], self.teacher_arrays[c.name]["val_logits"][i])
        stacked = {key: tuple(np.stack([v[s][j] for s in range(self.ctx.config.shadows)]) for j in (0, 1))
                   for key, v in outputs.items()}
        diverged = students.groupby(["model", "method", "kl_w", "fo_w"]).diverged.any()
        seconds = students.groupby(["model", "method", "kl_w", "fo_w"]).seconds.mean()
        return ulira.Draw(stacked, self.member, self.forget, self.labels(), diverged, seconds, self.seed)

    def labels(self) -> np.ndarray:
        """(N,) the pool's training labels (poisoned where flipped)."""
        _, _, data = self.pool(self.ctx.config.models[0], 1)
        return np.asarray(data.y[0])


class Shadows:
    """The shadow replicas of one study, every poisoning draw (``n_draws``; module docstring)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.draws = [ShadowDraw(ctx, d) for d in range(n_draws(ctx.config))]
        self.scores: ulira.Scores | None = None

    def run(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Train every shadow of every draw; returns (summary, per-example) of ``ulira.score_draws`` (the draws
        pooled; ``self.scores.draws`` per draw, also written as ``DRAWS_TABLE`` with several draws)."""
        draws = [d.run() for d in self.draws]
        self.scores = ulira.score_draws(draws, np.asarray(self.ctx.dataset.y_val), reference=REFERENCE)
        store = self.ctx.store
        if len(draws) > 1 and store is not None and store.writer:
            store.write_table(DRAWS_TABLE, self.scores.draws)
        return self.scores.summary, self.scores.examples
