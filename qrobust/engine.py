"""The one training loop, for every model, objective, optimiser and replica.

A run is a sequence of epochs. Each epoch draws a random order of the replica's
*stream* samples (the whole training set when training, the retain set when
unlearning) with the replica's own key (``shuffle``), scans over minibatches
(the last, partial batch is padded to full size and masked, so it is trained on
without a recompile; ``step``), then evaluates (``evaluate``). Every replica has
its own parameters, optimiser state, key, training inputs and labels, masks,
teacher logits, loss weights and learning rate; the validation set is shared.

A replica whose stream is shorter than the longest (a shadow's half, a smaller
retain set) takes only the steps its own samples fill: a minibatch of padding
alone is skipped, not taken with a zero gradient.

The step minimises an ``Objective`` (``qrobust.objectives``): plain binary
cross-entropy for training; the unlearning family for forgetting, which also
sees the whole forget set at every step. The optimiser is any optax
transformation (``qrobust.optimizers``; default the paper's Adam), its learning
rate held per replica in the replica's optimiser state.

The pieces are module-level functions of a ``Recipe`` (what is trained, how);
``make_train_fn`` puts them together into a ``Trainer``: one compiled program
advances all replicas by a *segment* of epochs (``lax.scan``), called from the
host until every epoch is done, with the progress reported between segments
(no host callback inside the program, so JAX's persistent compilation cache can
keep it). On several local devices the same program runs on each device's
slice of the replica axis (``sharding.per_device``).

A model with finite shots (``Model.sample``, ``qrobust.models.shots``) is trained and measured on its shot
estimates: each step's logits and gradient, and each recorded metric, are drawn with a key of the replica's
own (``fold_in(epoch key, keys.SHOTS)``, split per step and for the evaluation), so they follow from its seed;
an exact model draws nothing and its numbers are unchanged.

Metrics per epoch and replica, on the model as it stands at the end of the epoch
(accuracies threshold the logit at 0):
  loss               mean BCE over the training set, against the labels trained on
  objective          mean over the epoch's steps of the minimised objective
  train_acc          accuracy against the labels trained on
  train_acc_clean    accuracy on the training inputs against the clean labels
  val_acc            validation accuracy (clean)
  memorization       on the corrupted samples: fraction predicted as their
                     training (poisoned) label; NaN when there are none
  forget_acc_clean   on the corrupted samples: accuracy against the clean labels
  retain_acc         on the stream (retain) samples: accuracy against their labels
"""

from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from qrobust import keys as purposes
from qrobust import sharding
from qrobust.models.base import Model, batch_logits
from qrobust.objectives import Batch, Objective, cross_entropy, supervised
from qrobust.optimizers import Optimizer, adam

METRICS = ("loss", "objective", "train_acc", "train_acc_clean", "val_acc", "memorization",
           "forget_acc_clean", "retain_acc")
REPLICA_MODES = ("auto", "vmap", "map")


class TrainData(NamedTuple):
    """One replica's training set (a leading replica axis is added by stacking).

    x: (N, *input_shape) inputs as the model reads them (corrupted where randomised).
    y: (N,) float labels trained on (flipped where flipped).
    y_clean: (N,) float clean labels.
    corrupted: (N,) bool, the samples that were corrupted (the true poisoned set).
    stream: (N,) bool, the samples minibatches are drawn from (retain set).
    teacher: (N,) float teacher logits (zeros when there is no teacher).
    random_labels: (N,) float labels used by the relabelling objective.
    forget_idx: (F,) int indices of the forget set (padded); forget_w: (F,) 1 real / 0 pad.
    coef: (K,) the objective's loss weights.
    grad_mask: None, or a pytree shaped like the parameters: each gradient is multiplied by it before the
      optimiser sees it (0 freezes a weight; SalUn's saliency mask).
    """

    x: jax.Array
    y: jax.Array
    y_clean: jax.Array
    corrupted: jax.Array
    stream: jax.Array
    teacher: jax.Array
    random_labels: jax.Array
    forget_idx: jax.Array
    forget_w: jax.Array
    coef: jax.Array
    grad_mask: Any = None


def plain_data(x, y, y_clean, corrupted) -> TrainData:
    """TrainData for ordinary training on all samples (arrays may carry a replica axis)."""
    lead = y.shape[:-1]
    zeros = jnp.zeros(y.shape, jnp.float32)
    return TrainData(x=x, y=y, y_clean=y_clean, corrupted=corrupted, stream=jnp.ones(y.shape, bool),
                     teacher=zeros, random_labels=zeros, forget_idx=jnp.zeros(lead + (0,), jnp.int32),
                     forget_w=jnp.zeros(lead + (0,), jnp.float32), coef=jnp.zeros(lead + (0,), jnp.float32))


class EvalData(NamedTuple):
    """The shared validation set: x (M, *input_shape), y (M,) float."""

    x: jax.Array
    y: jax.Array


class ReplicaState(NamedTuple):
    """What a replica carries from epoch to epoch."""

    params: Any
    opt_state: Any
    key: jax.Array


class Recipe(NamedTuple):
    """What a training program trains and how (static: one compiled program per recipe and shape).

    n_batches, batch_size: minibatches per epoch and their size (``epoch_plan``; the longest stream fills them);
    recorded: the 0-based epochs whose metrics are kept (``evaluated_epochs``); the others skip the evaluation.
    mode: "vmap" (the replicas' steps as batched operations) or "map" (one replica's epoch after another).
    """

    model: Model
    objective: Objective
    optimizer: Optimizer
    epochs: int
    n_batches: int
    batch_size: int
    recorded: tuple[int, ...]
    record_margins: bool
    mode: str


def bce_loss(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted mean binary cross-entropy; weights (B,) are 1 for real samples, 0 for padding."""
    return cross_entropy(Batch(logits, labels, weights, logits, labels))


def epoch_plan(n_samples: int, batch_size: int) -> tuple[int, int]:
    """(number of batches, padded length) of one epoch: the last partial batch is kept."""
    n_batches = -(-n_samples // batch_size)
    return n_batches, n_batches * batch_size


def evaluated_epochs(epochs: int, eval_every: int = 1) -> list[int]:
    """The 1-based epochs whose metrics are recorded: every ``eval_every``-th, and always the last."""
    if eval_every < 1:
        raise ValueError(f"eval_every must be a positive integer, got {eval_every}")
    return sorted(set(range(eval_every, epochs + 1, eval_every)) | {epochs})


def _fraction(hits, mask):
    n = jnp.sum(mask)
    return jnp.where(n > 0, jnp.sum(hits & mask) / jnp.maximum(n, 1), jnp.nan)


def logits_function(model: Model, key: jax.Array | None = None) -> Callable[[Any, jax.Array], jax.Array]:
    """``logits(params, xs) -> (B,)`` as training and the metrics read them: the model's shot estimates drawn
    with ``key`` where it has finite shots (``Model.sample``), else its exact logits."""
    if model.sample is None or key is None:
        return batch_logits(model)
    return lambda params, xs: model.sample(params, xs, key)


def evaluate(model: Model, params, data: TrainData, val: EvalData, *, margins: bool = False,
             key: jax.Array | None = None) -> dict:
    """The end-of-epoch metrics of one replica (module docstring), except ``objective``; a model with finite shots
    is read from its shot estimates, drawn with ``key``.

    With ``margins``, also ``margin`` (N,): (2 y - 1) * logit per training sample,
    positive where the model agrees with the label it was trained on.
    """
    key = None if key is None else jax.random.split(key)
    logits = logits_function(model, None if key is None else key[0])(params, data.x)
    pred = (logits > 0).astype(data.y.dtype)
    val_logits = logits_function(model, None if key is None else key[1])(params, val.x)
    extra = {"margin": (2 * data.y - 1) * logits} if margins else {}
    return dict(
        **extra,
        loss=jnp.mean(optax.sigmoid_binary_cross_entropy(logits, data.y)),
        train_acc=jnp.mean(pred == data.y),
        train_acc_clean=jnp.mean(pred == data.y_clean),
        val_acc=jnp.mean((val_logits > 0).astype(val.y.dtype) == val.y),
        memorization=_fraction(pred == data.y, data.corrupted),
        forget_acc_clean=_fraction(pred == data.y_clean, data.corrupted),
        retain_acc=_fraction(pred == data.y, data.stream),
    )


def shuffle(key: jax.Array, stream: jax.Array, n_batches: int, batch_size: int):
    """One epoch's minibatches of one replica: (next key, indices (n_batches, batch_size), weights (same)).
    The stream samples come first, in the order of uniform draws from a key split off ``key``; padding
    entries (weight 0) point at sample 0."""
    padded = n_batches * batch_size
    key, shuffle_key = jax.random.split(key)
    u = jax.random.uniform(shuffle_key, stream.shape)
    order = jnp.argsort(jnp.where(stream, u, 2.0 + u))  # stream samples first, in random order
    n_stream = jnp.sum(stream)
    order = jnp.concatenate([order, jnp.zeros(max(padded - order.shape[0], 0), order.dtype)])[:padded]
    weights = (jnp.arange(padded) < n_stream).astype(jnp.float32)
    order = jnp.where(weights > 0, order, 0).reshape(n_batches, batch_size)
    return key, order, weights.reshape(n_batches, batch_size)


def init_state(recipe: Recipe, params, learning_rate, key) -> ReplicaState:
    """One replica's state before the first epoch: its optimiser's state holds its learning rate."""
    tx = recipe.optimizer.transform()(jnp.asarray(learning_rate, jnp.float32))
    return ReplicaState(params, tx.init(params), key)


def _forget_batch(logits_of, params, data: TrainData) -> Batch:
    idx = data.forget_idx
    return Batch(logits_of(params, data.x[idx]), data.y[idx], data.forget_w, data.teacher[idx], data.random_labels[idx])


def _no_forget(logits_of, params, data: TrainData) -> Batch:
    """The forget set's Batch where no term reads it: weights 0, no forward pass."""
    idx = data.forget_idx
    zeros = jnp.zeros(idx.shape, data.teacher.dtype)
    return Batch(zeros, data.y[idx], jnp.zeros_like(data.forget_w), data.teacher[idx], data.random_labels[idx])


def step_loss(recipe: Recipe, params, data: TrainData, idx, wb, epoch, key=None) -> jax.Array:
    """The objective of one minibatch (indices ``idx``, weights ``wb``) at ``params`` (a model with finite shots:
    its shot estimates, drawn with ``key``)."""
    objective = recipe.objective
    keys = (None, None) if key is None else jax.random.split(key)
    logits_of = logits_function(recipe.model, keys[0])
    batch = Batch(logits_of(params, data.x[idx]), data.y[idx], wb, data.teacher[idx], data.random_labels[idx])
    logits_of = logits_function(recipe.model, keys[1])  # the forget set's own draws
    if not objective.uses_forget:
        forget = None
    elif objective.reads_forget is None:
        forget = _forget_batch(logits_of, params, data)
    else:  # a replica whose weights leave the forget set out skips its forward pass (a branch per replica in
        # "map" mode; under vmap both sides run and one is selected)
        forget = jax.lax.cond(objective.reads_forget(data.coef), functools.partial(_forget_batch, logits_of),
                              functools.partial(_no_forget, logits_of), params, data)
    value = objective.loss(batch, forget, data.coef)
    if objective.param_loss is not None:
        value = value + objective.param_loss(params, data.coef, epoch / recipe.epochs)
    return value


def descend(recipe: Recipe, params, opt_state, loss_fn, *args, mask=None):
    """One optimiser step down ``loss_fn(params, *args)``: (params, opt_state, loss value). Gradients are
    multiplied by ``mask`` (a pytree like the parameters) where given."""
    value, grads = jax.value_and_grad(loss_fn)(params, *args)
    if mask is not None:
        grads = jax.tree_util.tree_map(lambda g, m: g * m.astype(g.dtype), grads, mask)
    tx = recipe.optimizer.transform()(0.0)  # its update reads the replica's learning rate from opt_state
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, value


def train_step(recipe: Recipe, carry, data: TrainData, idx, wb, epoch, key=None):
    """One minibatch: the objective's ascent step on the forget set where it has one (in its first epochs),
    then the descent step. ``carry`` = (params, opt_state); returns (carry, objective value). ``key``: the
    step's shot draws (a model with finite shots)."""
    params, opt_state = carry
    objective = recipe.objective
    key = None if key is None else jax.random.split(key)
    if objective.max_loss is not None:
        logits_of = logits_function(recipe.model, None if key is None else key[0])

        def ascend(p, o):
            p, o, _ = descend(recipe, p, o, lambda q: objective.max_loss(_forget_batch(logits_of, q, data), data.coef),
                              mask=data.grad_mask)
            return p, o

        params, opt_state = jax.lax.cond(epoch < objective.max_epochs, ascend, lambda p, o: (p, o), params, opt_state)
    params, opt_state, value = descend(recipe, params, opt_state, functools.partial(step_loss, recipe), data, idx, wb,
                                       epoch, None if key is None else key[1], mask=data.grad_mask)
    return (params, opt_state), value.astype(data.y.dtype)


def run_epoch(recipe: Recipe, state: ReplicaState, data: TrainData, val: EvalData, epoch, is_evaluated):
    """One replica's epoch: shuffle, the steps its stream fills, and the evaluation where ``is_evaluated``."""
    shots = recipe.model.sample is not None  # static: an exact model draws no shot keys
    shot_keys = jax.random.split(jax.random.fold_in(state.key, purposes.SHOTS), recipe.n_batches + 1) if shots \
        else jnp.zeros((recipe.n_batches + 1,), jnp.uint32)
    key, order, weights = shuffle(state.key, data.stream, recipe.n_batches, recipe.batch_size)

    def step(carry, batch):
        idx, wb, step_key = batch
        # a batch of padding only (this replica's stream is shorter than the longest) is no step: Adam's moments
        # would otherwise move the weights on a zero gradient. A branch per replica in "map" mode.
        real = jnp.sum(wb) > 0
        carry, value = jax.lax.cond(real, lambda c: train_step(recipe, c, data, idx, wb, epoch,
                                                               step_key if shots else None),
                                    lambda c: (c, jnp.zeros((), data.y.dtype)), carry)
        return carry, (value, real)

    (params, opt_state), (values, real) = jax.lax.scan(step, (state.params, state.opt_state),
                                                       (order, weights, shot_keys[:-1]))
    measure = functools.partial(_measure, recipe, data=data, val=val, key=shot_keys[-1] if shots else None)
    if len(recipe.recorded) == recipe.epochs:
        metrics = measure(params)
    else:  # the predicate is the same for every replica, so this stays a branch under vmap
        skipped = jax.tree_util.tree_map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), jax.eval_shape(measure, params))
        metrics = jax.lax.cond(is_evaluated, measure, lambda p: skipped, params)
    metrics["objective"] = jnp.sum(values) / jnp.maximum(jnp.sum(real), 1)
    return ReplicaState(params, opt_state, key), metrics


def _measure(recipe: Recipe, params, *, data, val, key=None):
    return evaluate(recipe.model, params, data, val, margins=recipe.record_margins, key=key)


def run_epochs(recipe: Recipe, state: ReplicaState, data: TrainData, val: EvalData, start, count: int):
    """Every replica (leading axis of ``state`` and ``data``) through epochs start .. start + count - 1:
    (state, metrics {name: (count, R, ...)})."""
    is_evaluated = jnp.zeros(recipe.epochs, bool).at[np.array(recipe.recorded)].set(True)

    def body(state, epoch):
        one = functools.partial(run_epoch, recipe, val=val, epoch=epoch, is_evaluated=is_evaluated[epoch])
        if recipe.mode == "vmap":
            return jax.vmap(lambda s, d: one(s, d))(state, data)
        return jax.lax.map(lambda sd: one(*sd), (state, data))  # the replicas' epochs one after another

    return jax.lax.scan(body, state, start + jnp.arange(count))


def segment_length(epochs: int) -> int:
    """Epochs per call of the compiled program: about a tenth of them, so progress shows between calls (a divisor
    of ``epochs``, so every call has the one shape). The numbers do not depend on it (a test)."""
    return max(d for d in range(1, max(1, epochs // 10) + 1) if epochs % d == 0)


class Trainer:
    """``train(params, learning_rate, key, data, val) -> (params, metrics)`` for R replicas (``make_train_fn``).

    Inputs carry a leading replica axis R: params (R, ...), learning_rate (R,), key (R, 2) uint32, data a
    TrainData of (R, N, ...) arrays; val is shared. Returns the final params (R, ...) and a dict of metrics,
    each a numpy array (R, E) for the E recorded epochs; with ``record_margins`` also ``margin`` (R, E, N).
    ``lower(*args)`` lowers the compiled program a call runs (a segment of epochs; for memory analysis,
    ``qrobust.memory.program_bytes``)."""

    def __init__(self, recipe: Recipe, n_samples: int, progress: Callable[[int], None] | None = None,
                 segment: int | None = None):
        self.recipe, self.n_samples, self.progress = recipe, n_samples, progress
        self._called = False  # a later call runs the program compiled by the first
        self.segment = segment_length(recipe.epochs) if segment is None else segment
        if recipe.epochs % self.segment:
            raise ValueError(f"a segment of {self.segment} epochs does not divide {recipe.epochs}")
        start = jax.vmap(functools.partial(init_state, recipe))
        advance = functools.partial(train_epochs, recipe, count=self.segment)
        self._one_device = jax.jit(advance)  # for memory analysis: the program one device runs
        if sharding.device_count() == 1:
            self._start, self._advance = jax.jit(start), self._one_device
        else:
            mesh = sharding.replica_mesh()
            self._start = sharding.per_device(start, mesh)
            self._advance = sharding.per_device(advance, mesh, shared_argnums=(2, 3))
            self._mesh = mesh

    def _check(self, learning_rate, data: TrainData) -> None:
        chex.assert_equal_shape_prefix([data.x, data.y, data.y_clean, data.corrupted, data.stream, data.teacher], 2)
        chex.assert_equal_shape([data.forget_idx, data.forget_w])
        if data.y.shape[1] < self.n_samples:
            raise ValueError(f"n_samples={self.n_samples} exceeds the {data.y.shape[1]} training samples")
        n_devices = sharding.device_count()
        if learning_rate.shape[0] % n_devices:
            raise ValueError(f"{learning_rate.shape[0]} replicas cannot be split evenly over {n_devices} devices")

    def __call__(self, params, learning_rate, key, data: TrainData, val: EvalData):
        learning_rate = jnp.asarray(learning_rate, jnp.float32)
        self._check(learning_rate, data)
        if sharding.device_count() > 1:
            params, learning_rate, key, data = sharding.shard_replicas((params, learning_rate, key, data), self._mesh)
            val = sharding.replicate(val, self._mesh)
        state = self._start(params, learning_rate, key)
        parts = []
        for start in range(0, self.recipe.epochs, self.segment):
            if start == 0 and not self._called and hasattr(self.progress, "compiling"):
                self.progress.compiling(self.recipe.model.name)  # the first call compiles (or reads the cache)
            state, metrics = self._advance(state, data, val, jnp.int32(start))
            self._called = True
            parts.append(metrics)
            if self.progress is not None:  # counted when done, not when dispatched (JAX returns at once)
                jax.block_until_ready(state)
                self.progress(self.segment)
        recorded = np.array(self.recipe.recorded)  # on the host: eager device gathers cost more than the copy
        metrics = {k: np.concatenate([np.asarray(p[k]) for p in parts], axis=1)[:, recorded] for k in parts[0]}
        return state.params, metrics

    def lower(self, params, learning_rate, key, data: TrainData, val: EvalData):
        state = jax.eval_shape(jax.vmap(functools.partial(init_state, self.recipe)), params, learning_rate, key)
        return self._one_device.lower(state, data, val, jax.ShapeDtypeStruct((), jnp.int32))


def train_epochs(recipe: Recipe, state, data, val, start, *, count: int):
    """``run_epochs`` with the metrics' replica axis first: {name: (R, count, ...)}."""
    state, metrics = run_epochs(recipe, state, data, val, start, count)
    return state, {k: jnp.swapaxes(v, 0, 1) for k, v in metrics.items()}


def make_train_fn(
    model: Model,
    *,
    epochs: int,
    batch_size: int,
    n_samples: int,
    objective: Objective | None = None,
    optimizer: Optimizer | None = None,
    loss_fn: Callable[[jax.Array, jax.Array, jax.Array], jax.Array] | None = None,
    progress: Callable[[int], None] | None = None,
    record_margins: bool = False,
    eval_every: int = 1,
    replica_mode: str = "auto",
) -> Trainer:
    """The ``Trainer`` of ``model`` for R replicas (its docstring says what it takes and gives).

    ``n_samples`` is the largest stream (retain) size over replicas: it fixes the number of minibatches per
    epoch. ``objective`` defaults to plain BCE; ``loss_fn(logits, labels, weights)`` is a shortcut for a custom
    supervised loss. ``optimizer``: default the paper's Adam (``qrobust.optimizers``). Metrics are recorded at
    ``evaluated_epochs(epochs, eval_every)`` (every epoch by default; the end-of-epoch evaluation of the others
    is skipped, which saves its cost). ``progress(k)`` is called from the host each time k more epochs are done
    (every epoch of every replica).

    ``replica_mode`` says how the program walks the replica axis within an epoch: "vmap" runs all replicas'
    steps as batched operations (what an accelerator wants); "map" runs the replicas' epochs one after another
    with ``lax.map``, still one compiled program, so that one replica's batch stays in cache (on CPU 10 to 25%
    faster for the QNN, and the scratch memory of one replica, not R); "auto" (default) is "map" on CPU
    devices, else "vmap". Both give the same numbers to float32 rounding.
    """
    if objective is None:
        objective = supervised() if loss_fn is None else \
            Objective("custom", lambda b, f, c: loss_fn(b.logits, b.labels, b.weights))
    if replica_mode not in REPLICA_MODES:
        raise ValueError(f"unknown replica_mode {replica_mode!r}; choose auto, vmap or map")
    mode = ("map" if sharding.cpu_only() else "vmap") if replica_mode == "auto" else replica_mode
    n_batches, _ = epoch_plan(n_samples, batch_size)
    recorded = tuple(e - 1 for e in evaluated_epochs(epochs, eval_every))
    recipe = Recipe(model, objective, optimizer or adam(), epochs, n_batches, batch_size, recorded, record_margins,
                    mode)
    return Trainer(recipe, n_samples, progress)
