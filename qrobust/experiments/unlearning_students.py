"""The students' stages of an unlearning study (``qrobust.experiments.unlearning``; the first stages, teachers
and forget sets, are ``qrobust.experiments.unlearning_stages``): stage 3, the student programs' inputs
(``StudentInputs``), and stage 4, every student trained as replicas of one program per model and objective
(``train_students``)."""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from qrobust.analysis.forgetting import GRID, loss_mia_accuracy
from qrobust.experiments import study
from qrobust.experiments.inputs import blockwise
from qrobust.experiments.chunks import run_chunks
from qrobust.experiments.unlearning_stages import Context, flatten
from qrobust.keys import FRESH_INIT, RANDOM_LABELS, STUDENT_ORDER, replica_keys
from qrobust.models import batch_logits
from qrobust.objectives import method_coefs, scrub_kurmanji, unlearning_family, weighted_mean

METRIC_COLUMNS = ("val_acc", "forget_acc_clean", "forget_acc_poisoned", "retain_acc", "objective", "loss")


class StudentInputs:
    """Stage 3: the student programs' arguments for any replicas (start, rates, keys, data, val)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        sizes = [len(f) for f in ctx.forget_sets.values()]
        self.n_forget_max, self.n_retain = max(1, max(sizes)), ctx.n - min(sizes)
        self.complete = {m: self._completion(ctx.models[m], ctx.config.salun_fraction)
                         for m in ctx.config.models}

    @staticmethod
    def _completion(model, salun_fraction: float):
        logits_of = batch_logits(model)

        def saliency(params, x, y, w):
            """SalUn's mask of one replica: 1 on the ``salun_fraction`` of the weights (over all layers) with
            the largest |gradient| of the forget set's cross-entropy (its trained labels) at ``params``."""
            grads = jax.grad(lambda p: weighted_mean(optax.sigmoid_binary_cross_entropy(logits_of(p, x), y), w))(
                params)
            size = jnp.concatenate([jnp.abs(g).ravel() for g in jax.tree_util.tree_leaves(grads)])
            threshold = jnp.quantile(size, 1 - salun_fraction)
            return jax.tree_util.tree_map(lambda g: (jnp.abs(g) >= threshold).astype(jnp.float32), grads)

        @jax.jit
        def complete(data, teacher, keys, coef, is_retrain, is_salun, forget_idx, forget_w, known, member):
            """``keys``: (R, N_PURPOSES, 2), each replica's keys (replica axis first, for ``blockwise``)."""
            n, keys = data.y.shape[1], jnp.swapaxes(keys, 0, 1)
            teacher_logits = jax.vmap(logits_of)(teacher, data.x)
            random_labels = jax.vmap(lambda k: jax.random.bernoulli(k, 0.5, (n,)))(keys[RANDOM_LABELS])
            fresh = jax.vmap(model.init)(keys[FRESH_INIT])
            rows = lambda v, leaf: v.reshape((-1,) + (1,) * (leaf.ndim - 1))  # noqa: E731
            start = jax.tree_util.tree_map(lambda f, t: jnp.where(rows(is_retrain, f), f, t), fresh, teacher)
            take = jax.vmap(lambda a, i: a[i])
            salient = jax.vmap(saliency)(teacher, take(data.x, forget_idx), take(data.y, forget_idx), forget_w)
            mask = jax.tree_util.tree_map(lambda m: jnp.where(rows(is_salun, m), m, 1.0), salient)
            return start, data._replace(stream=~known & member, teacher=teacher_logits,
                                        random_labels=random_labels.astype(jnp.float32), forget_idx=forget_idx,
                                        forget_w=forget_w, coef=coef, grad_mask=mask)

        return complete

    def forget_arrays(self, seeds, fractions):
        """(R, F) padded forget indices, their weights, and the (R, N) forget mask."""
        idx = np.zeros((len(seeds), self.n_forget_max), np.int32)
        w = np.zeros((len(seeds), self.n_forget_max), np.float32)
        mask = np.zeros((len(seeds), self.ctx.n), bool)
        for r, (s, kf) in enumerate(zip(seeds, fractions)):
            f = self.ctx.forget_sets[(int(s), float(kf))]
            idx[r, :len(f)], w[r, :len(f)], mask[r, f] = f, 1.0, True
        return jnp.asarray(idx), jnp.asarray(w), jnp.asarray(mask)

    def __call__(self, program: str, rows: pd.DataFrame):
        ctx, m = self.ctx, program.split("-")[0]
        seeds = rows.seed.to_numpy()
        _, lr, _ = student_recipe(ctx.config, program, self.n_retain)
        _, _, poisoned = ctx.poisoned_data(m, seeds)
        forget_idx, forget_w, known = self.forget_arrays(seeds, rows.known_fraction.to_numpy())
        keys = replica_keys(seeds)
        # a block of replicas at a time: the program compiles once per model, whatever the chunk sizes
        start, data = blockwise(self.complete[m], poisoned, ctx.teacher_params(m, seeds, ctx.config.alpha),
                                      jnp.swapaxes(keys, 0, 1), method_vectors(ctx.config, rows), *self.flags(rows),
                                      forget_idx, forget_w, known, jnp.ones(known.shape, bool))
        return start, jnp.full(len(seeds), lr, jnp.float32), keys[STUDENT_ORDER], data, ctx.val[m]

    @staticmethod
    def flags(rows: pd.DataFrame):
        """(starts fresh, uses the saliency mask) per row."""
        methods = rows.method.to_numpy()
        return jnp.asarray(np.isin(methods, ("retrain", "retrain_full"))), jnp.asarray(methods == "salun")


PROGRAMS = {"scrub_kurmanji": "kurmanji", "retrain_full": "full"}  # methods with their own compiled program


def program_of(model: str, method: str) -> str:
    """The compiled student program a method runs in: MODEL-family, MODEL-kurmanji or MODEL-full."""
    return f"{model}-{PROGRAMS.get(method, 'family')}"


def method_vectors(config, rows: pd.DataFrame) -> jax.Array:
    """(R, len(COEFS)) the unlearning family's loss weights of each row's method."""
    return jnp.asarray([method_coefs(*r, config.l1_w) for r in zip(rows.method, rows.kl_w, rows.fo_w)], jnp.float32)


def student_recipe(config, program: str, n_retain: int) -> tuple[int, float, int]:
    """(batch size, learning rate, epochs) of a student program: the unlearning budget, or for
    ``MODEL-full`` (retrain_full) the teacher's whole training recipe."""
    m, family = program.split("-")
    if family == "full":
        s = config.teacher_settings(m)
        return min(s.batch_size, n_retain), s.learning_rate, s.epochs
    return (*config.student_settings(m, n_retain), config.epochs)


@jax.jit
def _bce(logits, labels):
    return optax.sigmoid_binary_cross_entropy(logits, labels)


def student_programs(ctx: Context, table: pd.DataFrame, n_retain: int, args: Callable, *, eval_every=None) -> dict:
    """program -> the Program of the students in ``table`` (one per model and objective: ``program_of``), on the
    teacher's model, streaming at most ``n_retain`` samples; ``args(program, rows)`` gives a chunk's arguments.
    ``eval_every``: None records every epoch; "last" the last only."""
    objectives = {"family": unlearning_family(), "kurmanji": scrub_kurmanji(), "full": unlearning_family()}
    programs = {}
    for q in dict.fromkeys(table.program):
        m, family = q.split("-")
        batch, _, epochs = student_recipe(ctx.config, q, n_retain)
        rows = table[table.program == q].reset_index(drop=True)
        teacher = ctx.teachers[m]
        programs[q] = study.Program(q, m, teacher.built, teacher.settings, teacher.data, progress=ctx.bar.hook,
                                    inputs=args, args_for=_args_for(args, q, rows), n_stream=n_retain,
                                    objective=objectives[family], epochs=epochs, batch_size=batch,
                                    eval_every=epochs if eval_every == "last" else 1)
    return programs


def _args_for(args: Callable, program: str, rows: pd.DataFrame) -> Callable:
    """``args_for(r)``: the arguments of r of ``rows``' replicas (for the footprint of their program)."""
    return lambda r: args(program, rows.iloc[np.arange(r) % len(rows)])


def train_students(ctx: Context, students: pd.DataFrame, inputs: StudentInputs):
    """Stage 4: every student, as replicas of one program per model and objective. Returns (per-epoch
    results, GRID tuple -> final parameters, GRID tuple -> seconds)."""
    programs = student_programs(ctx, students, inputs.n_retain, inputs)
    chunks = ctx.plan(students, programs, "student-")
    stored = sum(programs[c.program].epochs * len(c.rows) for c in chunks
                 if ctx.store is not None and ctx.store.has_chunk(c.name))
    ctx.bar.discount(stored)

    def run(chunk):
        m = chunk.program.split("-")[0]
        start, rates, keys, data, val = inputs(chunk.program, chunk.padded)
        params, metrics = programs[chunk.program].trainer()(start, rates, keys, data, val)
        k = len(chunk.rows)
        # membership inference on the final students: forget-set losses (poisoned labels) vs validation losses
        train_losses = np.asarray(_bce(ctx.logits[m](params, data.x), data.y))
        val_x = jnp.broadcast_to(val.x, (len(chunk.padded),) + val.x.shape)
        val_losses = np.asarray(_bce(ctx.logits[m](params, val_x), val.y[None]))
        mask = np.asarray(data.corrupted)
        epochs = programs[chunk.program].epochs
        frame = chunk.rows.drop(columns="program").loc[chunk.rows.index.repeat(epochs)].reset_index(drop=True)
        frame["epoch"] = np.tile(np.arange(1, epochs + 1), k)
        names = dict(forget_acc_poisoned="memorization")
        for col in METRIC_COLUMNS:
            frame[col] = np.asarray(metrics[names.get(col, col)], np.float64)[:k].reshape(-1)
        frame["mia_acc"] = np.repeat([loss_mia_accuracy(train_losses[r][mask[r]], val_losses[r])
                                      for r in range(k)], epochs)
        return frame, {"params": flatten(params)[:k]}

    done = run_chunks(chunks, run, ctx.store, ctx.bar)
    results = pd.concat([done.frames[c.name] for c in chunks], ignore_index=True)
    params, seconds = {}, {}
    for c in chunks:
        for r, w in zip(c.rows[list(GRID)].itertuples(index=False), done.arrays[c.name]["params"]):
            params[tuple(r)] = w
            seconds[tuple(r)] = done.seconds[c.name] / len(c.padded)  # the chunk's time, shared equally
    return results, params, seconds
