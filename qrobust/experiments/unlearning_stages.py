"""The stages of an unlearning study (``qrobust.experiments.unlearning``): teachers, forget sets, student
inputs, students. Each stage is a function of the study's ``Context``; chunks are planned, run, stored and
resumed by ``qrobust.experiments.chunks``; the scoring is ``qrobust.analysis.forgetting.score_students``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from qrobust.analysis.detection import detection_metrics
from qrobust.analysis.forgetting import GRID, loss_mia_accuracy
from qrobust.corruption import CORRUPTIONS
from qrobust.engine import make_train_fn
from qrobust.experiments import poisoners, study
from qrobust.experiments.chunks import Progress, plan_chunks, run_chunks
from qrobust.keys import FORGET_PART, FRESH_INIT, RANDOM_LABELS, STUDENT_ORDER, replica_keys
from qrobust.models import batch_logits
from qrobust.objectives import method_coefs, scrub_kurmanji, unlearning_family, weighted_mean

METRIC_COLUMNS = ("val_acc", "forget_acc_clean", "forget_acc_poisoned", "retain_acc", "objective", "loss")


@dataclass
class Context:
    """What every stage reads: the study's config, prepared data and models, the poisoned count, the
    progress bar, and what earlier stages left (teachers' parameters, forget sets)."""

    config: object
    prepared: study.Prepared
    n_poisoned: int
    n_known: dict  # known fraction -> forget set size (oracle)
    bar: Progress | None = None
    inputs: dict | None = None
    teacher_trainers: dict | None = None
    teacher_flat: dict | None = None
    forget_sets: dict | None = None
    priorities: dict | None = None  # model -> poisoners.Priorities (the aimed poisoners' scores)

    def __post_init__(self):
        if self.priorities is None:
            self.priorities = {m: poisoners.Priorities(self.prepared.dataset) for m in self.config.models}
        self.inputs = {m: study.make_chunk_inputs(self.prepared.models[m], self.prepared.dataset)
                       for m in self.config.models}
        self.logits = {m: jax.jit(jax.vmap(batch_logits(self.prepared.models[m]))) for m in self.config.models}
        # one replica's parameters (shapes only), for unflatten: built once, not per chunk
        self.templates = {m: jax.eval_shape(self.prepared.models[m].init, jax.random.PRNGKey(0))
                          for m in self.config.models}

    @property
    def n(self) -> int:
        return len(self.prepared.dataset.y_train)

    def chunk_size(self, program: str, model: str, footprint, n_replicas: int) -> int:
        """Asked, recorded or what fits; 50 for a directory started before sizes were recorded."""
        return study.chunk_size(self.config, self.prepared.store, program, model, footprint, n_replicas, legacy=50)

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


def flatten(params) -> np.ndarray:
    """(R, P) flat parameter vectors of a replica-stacked pytree."""
    leaves = jax.tree_util.tree_leaves(params)
    return np.concatenate([np.asarray(leaf).reshape(leaf.shape[0], -1) for leaf in leaves], axis=1)


def unflatten(template, flat: np.ndarray):
    """Inverse of ``flatten`` for a single replica's template pytree, stacked over rows of ``flat``."""
    leaves, treedef = jax.tree_util.tree_flatten(template)
    out, i = [], 0
    for leaf in leaves:
        size = int(np.prod(leaf.shape))
        out.append(jnp.asarray(flat[:, i:i + size].reshape((flat.shape[0],) + leaf.shape), leaf.dtype))
        i += size
    return jax.tree_util.tree_unflatten(treedef, out)


def teacher_table(config) -> pd.DataFrame:
    """Teachers: poisoned (alpha) and clean (alpha = 0), per model and seed."""
    return pd.DataFrame([dict(model=m, seed=s, alpha=a, program=m) for m in config.models
                         for a in (config.alpha, 0.0) for s in config.seeds])


def teacher_chunks(ctx: Context) -> list:
    """The teachers' chunks, sized from their training programs (kept in ``ctx.teacher_trainers``)."""
    config, p = ctx.config, ctx.prepared
    # only the teachers' last epoch is kept: the others' evaluation (about half a QNN teacher's time) is skipped
    ctx.teacher_trainers = {m: make_train_fn(p.models[m], epochs=config.teacher_settings(m).epochs,
                                             batch_size=config.teacher_settings(m).batch_size, n_samples=ctx.n,
                                             progress=ctx.bar.hook, eval_every=config.teacher_settings(m).epochs)
                            for m in config.models}
    return plan_chunks(teacher_table(config), "program", lambda m, n: ctx.chunk_size(
        f"teacher-{m}", m, study.program_footprint(ctx.teacher_trainers[m], study.training_args(
            ctx.inputs[m], p.val[m])), n), prefix="teacher-", store=p.store)


def train_teachers(ctx: Context, chunks: list) -> pd.DataFrame:
    """Stage 1: train (or read back) the teachers; keeps their parameters in ``ctx.teacher_flat``."""
    config, p = ctx.config, ctx.prepared
    trainers = ctx.teacher_trainers
    kind = CORRUPTIONS.index(config.corruption)

    def run(chunk):
        m, s = chunk.program, config.teacher_settings(chunk.program)
        seeds = chunk.padded.seed.to_numpy()
        counts = np.where(chunk.padded.alpha > 0, ctx.n_poisoned, 0).astype(np.int32)
        params, shuffle_keys, data = ctx.inputs[m](seeds, np.full(len(seeds), kind, np.int32), counts,
                                                   ctx.scores(m, seeds))
        params, metrics = trainers[m](params, jnp.full(len(seeds), s.learning_rate, jnp.float32),
                                      shuffle_keys, data, p.val[m])
        k = len(chunk.rows)
        frame = chunk.rows.drop(columns="program").copy()
        for name in ("val_acc", "train_acc", "memorization"):
            frame[name] = np.asarray(metrics[name])[:k, -1]
        return frame, {"params": flatten(params)[:k]}

    done = run_chunks(chunks, run, p.store, ctx.bar)
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


class StudentInputs:
    """Stage 3: the student programs' arguments for any replicas (start, rates, keys, data, val)."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        sizes = [len(f) for f in ctx.forget_sets.values()]
        self.n_forget_max, self.n_retain = max(1, max(sizes)), ctx.n - min(sizes)
        self.complete = {m: self._completion(ctx.prepared.models[m], ctx.config.salun_fraction)
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
            n = data.y.shape[1]
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
        start, data = self.complete[m](poisoned, ctx.teacher_params(m, seeds, ctx.config.alpha), keys,
                                       method_vectors(ctx.config, rows), *self.flags(rows), forget_idx, forget_w,
                                       known, jnp.ones(known.shape, bool))
        return start, jnp.full(len(seeds), lr, jnp.float32), keys[STUDENT_ORDER], data, ctx.prepared.val[m]

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


def train_students(ctx: Context, students: pd.DataFrame, inputs: StudentInputs):
    """Stage 4: every student, as replicas of one program per model and objective. Returns (per-epoch
    results, GRID tuple -> final parameters, GRID tuple -> seconds)."""
    config, p = ctx.config, ctx.prepared
    objectives = {"family": unlearning_family(), "kurmanji": scrub_kurmanji()}

    objectives["full"] = objectives["family"]

    def trainer(program, progress_hook=None):
        m, family = program.split("-")
        batch, _, epochs = student_recipe(config, program, inputs.n_retain)
        return make_train_fn(p.models[m], epochs=epochs, batch_size=batch, n_samples=inputs.n_retain,
                             objective=objectives[family], progress=progress_hook)

    trainers = {q: trainer(q, ctx.bar.hook) for q in dict.fromkeys(students.program)}

    def args_for(program):
        rows = students[students.program == program].reset_index(drop=True)
        return lambda r: inputs(program, rows.iloc[np.arange(r) % len(rows)])

    chunks = plan_chunks(students, "program", lambda q, n: ctx.chunk_size(
        f"student-{q}", q.split("-")[0], study.program_footprint(trainers[q], args_for(q)), n), prefix="student-",
                         store=p.store)
    stored = sum(student_recipe(config, c.program, inputs.n_retain)[2] * len(c.rows) for c in chunks
                 if p.store is not None and p.store.has_chunk(c.name))
    ctx.bar.discount(stored)

    def run(chunk):
        m = chunk.program.split("-")[0]
        start, rates, keys, data, val = inputs(chunk.program, chunk.padded)
        params, metrics = trainers[chunk.program](start, rates, keys, data, val)
        k = len(chunk.rows)
        # membership inference on the final students: forget-set losses (poisoned labels) vs validation losses
        train_losses = np.asarray(_bce(ctx.logits[m](params, data.x), data.y))
        val_x = jnp.broadcast_to(val.x, (len(chunk.padded),) + val.x.shape)
        val_losses = np.asarray(_bce(ctx.logits[m](params, val_x), val.y[None]))
        mask = np.asarray(data.corrupted)
        epochs = student_recipe(config, chunk.program, inputs.n_retain)[2]
        frame = chunk.rows.drop(columns="program").loc[chunk.rows.index.repeat(epochs)].reset_index(drop=True)
        frame["epoch"] = np.tile(np.arange(1, epochs + 1), k)
        names = dict(forget_acc_poisoned="memorization")
        for col in METRIC_COLUMNS:
            frame[col] = np.asarray(metrics[names.get(col, col)], np.float64)[:k].reshape(-1)
        frame["mia_acc"] = np.repeat([loss_mia_accuracy(train_losses[r][mask[r]], val_losses[r])
                                      for r in range(k)], epochs)
        return frame, {"params": flatten(params)[:k]}

    done = run_chunks(chunks, run, p.store, ctx.bar)
    results = pd.concat([done.frames[c.name] for c in chunks], ignore_index=True)
    params, seconds = {}, {}
    for c in chunks:
        for r, w in zip(c.rows[list(GRID)].itertuples(index=False), done.arrays[c.name]["params"]):
            params[tuple(r)] = w
            seconds[tuple(r)] = done.seconds[c.name] / len(c.padded)  # the chunk's time, shared equally
    return results, params, seconds
