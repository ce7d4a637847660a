"""Layer 5: unlearning the poisoned samples, every method and weight as replicas.

Protocol (PAPER.md, "Unlearning"): label flipping at ratio alpha; per model and
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

import itertools
import math
import warnings
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from qrobust.analysis.detection import detection_metrics
from qrobust.analysis.forgetting import epochs_to_recover, loss_mia_accuracy
from qrobust.corruption import CORRUPTIONS, check_alpha, check_feasible
from qrobust.engine import EvalData, make_train_fn
from qrobust.errors import ConfigError
from qrobust.experiments.chunks import Progress, fitted_chunk_size, plan_chunks, run_chunks
from qrobust.experiments.sweep import make_chunk_inputs, training_bytes
from qrobust.keys import FORGET_PART, FRESH_INIT, RANDOM_LABELS, STUDENT_ORDER, replica_keys
from qrobust.memory import default_cap, program_bytes
from qrobust.experiments.settings import (DATASETS, ModelSettings, build_model, check_name, check_simulator,
                                         load_dataset, simulators_used)
from qrobust.models import MODELS, batch_logits
from qrobust.objectives import scrub_kurmanji, unlearning_family
from qrobust.store import RunDirectory

FORGET_SOURCES = ("oracle", "qnn_detector")
METHODS = ("retrain", "finetune", "scrub", "ga", "neggrad", "relabel", "scrub_kurmanji")
PAPER_METHODS = ("retrain", "finetune", "scrub", "ga")

# Teachers (PAPER.md): the noise-study QNN; on MNIST a smaller MLP (16, 4).
TEACHER_SETTINGS = {
    "mnist": {"qnn": ModelSettings(epochs=100, batch_size=256, learning_rate=0.005, depth=6),
              "mlp": ModelSettings(epochs=100, batch_size=128, learning_rate=0.01, hidden=(16, 4))},
    "xxz": {"qnn": ModelSettings(epochs=200, batch_size=32, learning_rate=0.03, depth=4),
            "mlp": ModelSettings(epochs=400, batch_size=32, learning_rate=0.01, hidden=(64, 16))},
}
# Students: batch size (None = the whole retain set as one batch) and learning rate.
UNLEARN_SETTINGS = {
    "mnist": {"qnn": (256, 0.005), "mlp": (None, 0.001)},
    "xxz": {"qnn": (None, 0.005), "mlp": (None, 0.01)},
}
METRIC_COLUMNS = ("val_acc", "forget_acc_clean", "forget_acc_poisoned", "retain_acc", "objective", "loss")
GRID = ("model", "method", "seed", "kl_w", "fo_w")


def method_coefs(method: str, kl_w: float, fo_w: float) -> tuple[float, ...]:
    """The unlearning family's loss weights (COEFS order) of ``method``."""
    table = {
        "retrain": (1, 0, 0, 0, 0), "finetune": (1, 0, 0, 0, 0), "relabel": (1, 0, 0, 0, 1),
        "scrub": (1, kl_w, fo_w, 0, 0), "ga": (1, 0, 0, fo_w, 0), "neggrad": (1 - fo_w, 0, 0, fo_w, 0),
        "scrub_kurmanji": (0, 0, 0, 0, 0),
    }
    return tuple(float(c) for c in table[method])


def _weights_used(method: str) -> tuple[bool, bool]:
    """Whether (kl_w, fo_w) enter ``method``'s objective."""
    return method == "scrub", method in ("scrub", "ga", "neggrad")


@dataclass(frozen=True)
class UnlearnConfig:
    """An unlearning study. None settings take the paper's defaults (module constants).

    kl_ws, fo_ws: the loss-weight grid; each method gets only the weights it uses
    (the others are recorded as 0, their value in its objective).
    """

    dataset: str = "mnist"
    models: tuple[str, ...] = MODELS
    methods: tuple[str, ...] = PAPER_METHODS
    alpha: float = 0.3
    corruption: str = "flip"
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    epochs: int = 50
    kl_ws: tuple[float, ...] = (0.0,)
    fo_ws: tuple[float, ...] = (0.2,)
    known_fraction: float = 1.0
    forget_source: str = "oracle"
    batch_size: int | None = None
    learning_rate: float | None = None
    teacher_epochs: int | None = None
    n_train_per_class: int | None = None
    n_qubits: int | None = None
    mnist_path: str | None = None
    dtype: str = "complex64"
    chunk_size: int | None = None
    simulator: str | None = None
    matmul_precision: str = "highest"

    def validate(self) -> "UnlearnConfig":
        check_name("dataset", self.dataset, DATASETS)
        check_name("corruption", self.corruption, CORRUPTIONS)
        for kind, values, allowed in (("model", self.models, MODELS), ("method", self.methods, METHODS)):
            if not values:
                raise ConfigError(f"choose at least one {kind}")
            for v in values:
                check_name(kind, v, allowed)
        check_alpha(self.alpha)
        if not 0 < self.known_fraction <= 1:
            raise ConfigError(f"known fraction must lie in (0, 1], got {self.known_fraction}")
        check_name("forget source", self.forget_source, FORGET_SOURCES)
        if self.forget_source == "qnn_detector":
            if "qnn" not in self.models:
                raise ConfigError("the qnn_detector forget set comes from the poisoned QNN teacher: include --model qnn")
            if self.known_fraction != 1.0:
                raise ConfigError("--known-fraction applies to the oracle forget set only")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ConfigError(f"seeds must be distinct non-negative integers, got {self.seeds}")
        if self.epochs < 1 or (self.teacher_epochs is not None and self.teacher_epochs < 1):
            raise ConfigError("epochs must be positive")
        for name, ws in (("kl_w", self.kl_ws), ("fo_w", self.fo_ws)):
            if not ws or min(ws) < 0 or not all(math.isfinite(w) for w in ws):
                raise ConfigError(f"{name} values must be finite and >= 0, got {ws}")
        if "neggrad" in self.methods and max(self.fo_ws) >= 1:
            raise ConfigError(f"neggrad weighs retain descent by 1 - fo_w; fo_w = {max(self.fo_ws)} leaves pure "
                              "gradient ascent on the forget set, whose loss is unbounded below: use fo_w < 1")
        if self.corruption != "flip" and ({"ga", "neggrad"} & set(self.methods)):
            raise ConfigError("ga and neggrad ascend the cross-entropy of the poisoned labels; with feature "
                              "randomisation the labels are clean, so use --corruption flip")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"batch size must be positive, got {self.batch_size}")
        if self.learning_rate is not None and self.learning_rate <= 0:
            raise ConfigError(f"learning rate must be positive, got {self.learning_rate}")
        check_simulator(self.simulator, self.matmul_precision)
        return self

    def teacher_settings(self, model: str) -> ModelSettings:
        s = TEACHER_SETTINGS[self.dataset][model]
        return s if self.teacher_epochs is None else ModelSettings(**{**asdict(s), "epochs": self.teacher_epochs})

    def student_settings(self, model: str, n_retain: int) -> tuple[int, float]:
        batch, lr = UNLEARN_SETTINGS[self.dataset][model]
        batch = self.batch_size or batch or n_retain
        return min(batch, n_retain), self.learning_rate or lr

    def resolved(self) -> dict:
        d = asdict(self)
        d["teachers"] = {m: self.teacher_settings(m).to_dict(m) for m in self.models}
        d["students"] = {m: dict(zip(("batch_size", "learning_rate"), UNLEARN_SETTINGS[self.dataset][m]))
                         for m in self.models}
        return d


def replica_table(config: UnlearnConfig) -> pd.DataFrame:
    """One row per student replica: model, method, seed, kl_w, fo_w, its program and loss weights."""
    rows = []
    for model, method in itertools.product(config.models, config.methods):
        use_kl, use_fo = _weights_used(method)
        for seed, kl_w, fo_w in itertools.product(config.seeds, config.kl_ws if use_kl else (0.0,),
                                                  config.fo_ws if use_fo else (0.0,)):
            program = f"{model}-{'kurmanji' if method == 'scrub_kurmanji' else 'family'}"
            rows.append(dict(model=model, method=method, seed=seed, kl_w=kl_w, fo_w=fo_w, program=program))
    return pd.DataFrame(rows)


@jax.jit
def _bce(logits, labels):
    return optax.sigmoid_binary_cross_entropy(logits, labels)


@partial(jax.jit, static_argnums=1)
def _uniforms(keys, n):
    return jax.vmap(lambda k: jax.random.uniform(k, (n,)))(keys)


def _make_logits(model):
    """Jitted (params (R, ...), x (R, N, ...)) -> logits (R, N)."""
    return jax.jit(jax.vmap(batch_logits(model)))


def _make_student_inputs(model):
    """Jitted: a poisoned TrainData + teacher params + keys -> the student's starting params and TrainData."""

    @jax.jit
    def complete(data, teacher, keys, coef, is_retrain, forget_idx, forget_w, known):
        n = data.y.shape[1]
        teacher_logits = jax.vmap(batch_logits(model))(teacher, data.x)
        random_labels = jax.vmap(lambda k: jax.random.bernoulli(k, 0.5, (n,)))(keys[RANDOM_LABELS])
        fresh = jax.vmap(model.init)(keys[FRESH_INIT])
        start = jax.tree_util.tree_map(
            lambda f, t: jnp.where(is_retrain.reshape((-1,) + (1,) * (f.ndim - 1)), f, t), fresh, teacher)
        return start, data._replace(stream=~known, teacher=teacher_logits,
                                    random_labels=random_labels.astype(jnp.float32), forget_idx=forget_idx,
                                    forget_w=forget_w, coef=coef)

    return complete


def _flatten(params) -> np.ndarray:
    """(R, P) flat parameter vectors of a replica-stacked pytree."""
    leaves = jax.tree_util.tree_leaves(params)
    return np.concatenate([np.asarray(leaf).reshape(leaf.shape[0], -1) for leaf in leaves], axis=1)


def _unflatten(template, flat: np.ndarray):
    """Inverse of _flatten for a single replica's template pytree, stacked over rows of ``flat``."""
    leaves, treedef = jax.tree_util.tree_flatten(template)
    out, i = [], 0
    for leaf in leaves:
        size = int(np.prod(leaf.shape))
        out.append(jnp.asarray(flat[:, i:i + size].reshape((flat.shape[0],) + leaf.shape), leaf.dtype))
        i += size
    return jax.tree_util.tree_unflatten(treedef, out)


def run_unlearning(config: UnlearnConfig, out: str | Path | None = None, *, progress: bool = True):
    """Run (or resume) an unlearning study. Returns (per-epoch results, per-replica final table).

    Everything is validated, and the data loaded, before anything is written.
    """
    config = config.validate()
    dataset = load_dataset(config.dataset, mnist_path=config.mnist_path,
                           n_train_per_class=config.n_train_per_class, n_qubits=config.n_qubits)
    n = len(dataset.y_train)
    n_poisoned = check_feasible(config.corruption, config.alpha, dataset.y_train)
    n_known = int(round(config.known_fraction * n_poisoned))
    if n_known == 0:
        raise ConfigError(f"the forget set is empty: {config.corruption} at alpha={config.alpha} corrupts "
                          f"{n_poisoned} of {n} samples, and a known fraction of {config.known_fraction} of "
                          "them leaves none to forget")
    if "mlp" in config.models and {"scrub", "ga"} & set(config.methods) and max(config.fo_ws) > 0:
        warnings.warn("the MLP's logits are unbounded, so the ascent terms of scrub/ga (fo_w > 0) are "
                      "unbounded below; replicas that diverge are marked and left out of averages",
                      RuntimeWarning, stacklevel=2)
    models = {m: build_model(m, dataset, config.teacher_settings(m), dtype=config.dtype, simulator=config.simulator,
                             matmul_precision=config.matmul_precision) for m in config.models}
    val = {m: EvalData(models[m].prepare(dataset.x_val), jnp.asarray(dataset.y_val, jnp.float32))
           for m in config.models}
    store = RunDirectory(out, dict(config.resolved(), simulators=simulators_used(models), n_poisoned=n_poisoned,
                                   n_forget=n_known if config.forget_source == "oracle" else None)).open() \
        if out is not None else None

    def chunk_size(key: str, model: str, footprint) -> int:
        """The asked size, else the recorded one, else what fits (``fitted_chunk_size``); 50 for a run
        started before sizes were recorded."""
        return fitted_chunk_size(key, footprint=footprint, cap=default_cap(model), store=store,
                                 asked=config.chunk_size, legacy=50)

    kind = CORRUPTIONS.index(config.corruption)
    # built once per model: the sweep's input builder (so a teacher is the sweep's replica) and trainers
    chunk_inputs = {m: make_chunk_inputs(models[m], dataset) for m in config.models}

    def teacher_trainer(m, progress_hook=None):
        s = config.teacher_settings(m)
        return make_train_fn(models[m], epochs=s.epochs, batch_size=s.batch_size, n_samples=n, progress=progress_hook)

    def teacher_footprint(m):
        s = config.teacher_settings(m)
        return training_bytes(models[m], dataset, epochs=s.epochs, batch_size=s.batch_size,
                              learning_rate=s.learning_rate, val=val[m])

    # 1. teachers: poisoned (alpha) and clean (alpha = 0), per model and seed
    teacher_rows = pd.DataFrame([dict(model=m, seed=s, alpha=a, program=m) for m in config.models
                                 for a in (config.alpha, 0.0) for s in config.seeds])
    teacher_chunks = plan_chunks(teacher_rows, "program",
                                 lambda m: chunk_size(f"teacher-{m}", m, lambda: teacher_footprint(m)),
                                 prefix="teacher-")
    students = replica_table(config)
    todo_t = [c for c in teacher_chunks if store is None or not store.has_chunk(c.name)]
    # the students' chunks are planned once the teachers (and so the forget sets) exist; until then the bar
    # counts all of them
    bar = Progress(sum(config.teacher_settings(c.program).epochs * len(c.rows) for c in todo_t)
                   + config.epochs * len(students), progress)
    teacher_trainers = {m: teacher_trainer(m, bar) for m in config.models}

    def poisoned_data(m, seeds):
        """(initial params, shuffle keys, TrainData) of the poisoned training set of each seed."""
        return chunk_inputs[m](seeds, np.full(len(seeds), kind, np.int32), np.full(len(seeds), n_poisoned, np.int32))

    def run_teachers(chunk):
        m, s = chunk.program, config.teacher_settings(chunk.program)
        seeds = chunk.padded.seed.to_numpy()
        counts = np.where(chunk.padded.alpha > 0, n_poisoned, 0).astype(np.int32)
        params, shuffle_keys, data = chunk_inputs[m](seeds, np.full(len(seeds), kind, np.int32), counts)
        params, metrics = teacher_trainers[m](params, jnp.full(len(seeds), s.learning_rate, jnp.float32),
                                              shuffle_keys, data, val[m])
        k = len(chunk.rows)
        frame = chunk.rows.drop(columns="program").copy()
        frame["val_acc"] = np.asarray(metrics["val_acc"])[:k, -1]
        frame["train_acc"] = np.asarray(metrics["train_acc"])[:k, -1]
        frame["memorization"] = np.asarray(metrics["memorization"])[:k, -1]
        return frame, {"params": _flatten(params)[:k]}

    done = run_chunks(teacher_chunks, run_teachers, store, bar)
    teachers = pd.concat([done.frames[c.name] for c in teacher_chunks], ignore_index=True)
    teacher_flat = {(r.model, r.alpha, r.seed): p for c in teacher_chunks
                    for r, p in zip(c.rows.itertuples(index=False), done.arrays[c.name]["params"])}

    logits_fns = {m: _make_logits(models[m]) for m in config.models}

    def teacher_params(m, seeds, alpha):
        flat = np.stack([teacher_flat[(m, alpha, s)] for s in seeds]).astype(np.float32)
        return _unflatten(models[m].init(jax.random.PRNGKey(0)), flat)

    # 2. the forget set of every seed: the oracle's (a random n_known of the poisoned samples), or the samples
    #    whose training label the poisoned QNN teacher refuses (its prediction differs from the label)
    seeds_all = np.asarray(config.seeds)
    _, _, all_data = poisoned_data(config.models[0], seeds_all)
    poisoned_mask = np.asarray(all_data.corrupted)
    if config.forget_source == "oracle":
        u = np.asarray(_uniforms(replica_keys(seeds_all)[FORGET_PART], n))
        order = np.argsort(np.where(poisoned_mask, u, 2.0 + u), axis=1, kind="stable")  # poisoned first, random
        forget_sets = {int(s): np.sort(order[i, :n_known]) for i, s in enumerate(seeds_all)}
    else:
        _, _, q_data = poisoned_data("qnn", seeds_all)
        logits = logits_fns["qnn"](teacher_params("qnn", seeds_all, config.alpha), q_data.x)
        refused = np.asarray((logits > 0) != (q_data.y == 1))
        forget_sets = {int(s): np.flatnonzero(refused[i]) for i, s in enumerate(seeds_all)}
    n_forget_max = max(1, max(len(f) for f in forget_sets.values()))
    n_retain = n - min(len(f) for f in forget_sets.values())
    detector = {int(s): detection_metrics(np.isin(np.arange(n), f).astype(float), poisoned_mask[i],
                                          flagged=np.isin(np.arange(n), f))
                for i, (s, f) in enumerate(forget_sets.items())}

    def forget_arrays(seeds):
        """(R, F) padded forget indices, their weights, and the (R, N) forget mask."""
        idx = np.zeros((len(seeds), n_forget_max), np.int32)
        w = np.zeros((len(seeds), n_forget_max), np.float32)
        mask = np.zeros((len(seeds), n), bool)
        for r, s in enumerate(seeds):
            f = forget_sets[int(s)]
            idx[r, :len(f)], w[r, :len(f)], mask[r, f] = f, 1.0, True
        return jnp.asarray(idx), jnp.asarray(w), jnp.asarray(mask)

    # 3. students
    trainers = {}
    objectives = {"family": unlearning_family(), "kurmanji": scrub_kurmanji()}

    completions = {m: _make_student_inputs(models[m]) for m in config.models}

    def student_trainer(program, progress_hook=None):
        m, family = program.split("-")
        batch, _ = config.student_settings(m, n_retain)
        return make_train_fn(models[m], epochs=config.epochs, batch_size=batch, n_samples=n_retain,
                             objective=objectives[family], progress=progress_hook)

    def student_inputs(program, rows):
        """The student program's arguments for the replicas ``rows``: (start, rates, keys, data, val)."""
        m = program.split("-")[0]
        seeds = rows.seed.to_numpy()
        _, lr = config.student_settings(m, n_retain)
        _, _, poisoned = poisoned_data(m, seeds)
        forget_idx, forget_w, known = forget_arrays(seeds)
        coef = jnp.asarray([method_coefs(*r) for r in zip(rows.method, rows.kl_w, rows.fo_w)], jnp.float32)
        keys = replica_keys(seeds)
        start, data = completions[m](poisoned, teacher_params(m, seeds, config.alpha), keys, coef,
                                     jnp.asarray(rows.method.to_numpy() == "retrain"), forget_idx, forget_w, known)
        return start, jnp.full(len(seeds), lr, jnp.float32), keys[STUDENT_ORDER], data, val[m]

    def student_footprint(program):
        one = students[students.program == program].iloc[:1]
        return program_bytes(student_trainer(program), *student_inputs(program, one))

    student_chunks = plan_chunks(students, "program", lambda p: chunk_size(
        f"student-{p}", p.split("-")[0], lambda: student_footprint(p)), prefix="student-")
    stored_students = sum(len(c.rows) for c in student_chunks if store is not None and store.has_chunk(c.name))
    bar.discount(config.epochs * stored_students)

    def run_students(chunk):
        m = chunk.program.split("-")[0]
        if chunk.program not in trainers:
            trainers[chunk.program] = student_trainer(chunk.program, bar)
        start, rates, keys, data, val_m = student_inputs(chunk.program, chunk.padded)
        params, metrics = trainers[chunk.program](start, rates, keys, data, val_m)
        n_rows = len(chunk.padded)
        k = len(chunk.rows)
        # membership inference on the final students: forget-set losses (poisoned labels) vs validation losses
        train_losses = np.asarray(_bce(logits_fns[m](params, data.x), data.y))
        val_x = jnp.broadcast_to(val[m].x, (n_rows,) + val[m].x.shape)
        val_losses = np.asarray(_bce(logits_fns[m](params, val_x), val[m].y[None]))
        mask = np.asarray(data.corrupted)
        frame = chunk.rows.drop(columns="program").loc[chunk.rows.index.repeat(config.epochs)].reset_index(drop=True)
        frame["epoch"] = np.tile(np.arange(1, config.epochs + 1), k)
        names = dict(forget_acc_poisoned="memorization")
        for col in METRIC_COLUMNS:
            frame[col] = np.asarray(metrics[names.get(col, col)], np.float64)[:k].reshape(-1)
        frame["mia_acc"] = np.repeat([loss_mia_accuracy(train_losses[r][mask[r]], val_losses[r])
                                      for r in range(k)], config.epochs)
        return frame, {"params": _flatten(params)[:k]}

    done = run_chunks(student_chunks, run_students, store, bar)
    bar.close()
    results = pd.concat([done.frames[c.name] for c in student_chunks], ignore_index=True)
    final = results[results.epoch == config.epochs].drop(columns="epoch").reset_index(drop=True)
    flat = {}  # (model, method, seed, kl_w, fo_w) -> final parameter vector
    for c in student_chunks:
        for r, p in zip(c.rows[list(GRID)].itertuples(index=False), done.arrays[c.name]["params"]):
            flat[tuple(r)] = p
    # distance to the retrained student of the same model and seed
    retrained = {(k[0], k[2]): v for k, v in flat.items() if k[1] == "retrain"}
    final["dist_to_retrain"] = [
        float(np.linalg.norm(flat[tuple(r)] - retrained[(r[0], r[2])])) if (r[0], r[2]) in retrained else np.nan
        for r in final[list(GRID)].itertuples(index=False)]
    final["param_norm"] = [float(np.linalg.norm(flat[tuple(r)])) for r in final[list(GRID)].itertuples(index=False)]
    diverged = results.groupby(list(GRID)).objective.transform(lambda v: ~np.isfinite(v).all()) | \
        results.groupby(list(GRID)).loss.transform(lambda v: ~np.isfinite(v).all())
    results["diverged"] = diverged
    final = final.merge(results[results.epoch == 1][list(GRID) + ["diverged"]], on=list(GRID))
    clean = teachers[teachers.alpha == 0].set_index(["model", "seed"]).val_acc
    poisoned_t = teachers[teachers.alpha > 0].set_index(["model", "seed"]).val_acc
    final["clean_val_acc"] = [clean.loc[(m, s)] for m, s in zip(final.model, final.seed)]
    final["teacher_val_acc"] = [poisoned_t.loc[(m, s)] for m, s in zip(final.model, final.seed)]
    by_replica = results.groupby(list(GRID))
    recover = {key: epochs_to_recover(g.sort_values("epoch").val_acc.to_numpy(), clean.loc[(key[0], key[2])])
               for key, g in by_replica}
    final["epochs_to_recover"] = [recover[tuple(r)] for r in final[list(GRID)].itertuples(index=False)]
    # wall time: each chunk's seconds shared equally by its (padded) replicas
    per_replica = {}
    for c in student_chunks:
        for r in c.rows.itertuples(index=False):
            per_replica[(r.model, r.method, r.seed, r.kl_w, r.fo_w)] = done.seconds[c.name] / len(c.padded)
    final["seconds"] = [per_replica[tuple(r)] for r in final[list(GRID)].itertuples(index=False)]
    # how the forget set relates to the true poisoned set (trivially exact for the full oracle)
    final["forget_size"] = [len(forget_sets[int(s)]) for s in final.seed]
    final["forget_precision"] = [detector[int(s)]["precision"] for s in final.seed]
    final["forget_recall"] = [detector[int(s)]["recall"] for s in final.seed]
    teacher_table = teachers
    if final.diverged.any():
        warnings.warn(f"{int(final.diverged.sum())} student replica(s) diverged and are left out of averages",
                      RuntimeWarning, stacklevel=2)
    if store is not None and store.writer:
        from qrobust.analysis.summary import recovery_summary
        from qrobust.plots import plot_unlearning, plot_weight_heatmaps

        store.write_table("results.csv", results)
        store.write_table("final.csv", final)
        store.write_table("teachers.csv", teacher_table)
        store.write_table("recovery.csv", recovery_summary(final))
        plot_unlearning(results, final, store.path / "unlearning.png", title=f"{config.dataset}, alpha={config.alpha}")
        if len(config.kl_ws) > 1 or len(config.fo_ws) > 1:
            plot_weight_heatmaps(final, store.path / "weights_heatmap.png")
    return results, final
