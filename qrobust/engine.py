"""Layer 4: the one training loop, for every model, objective and replica.

A run is a ``lax.scan`` over epochs. Each epoch draws a random order of the
replica's *stream* samples (the whole training set when training, the retain
set when unlearning) with the replica's own key, scans over minibatches (the
last, partial batch is padded to full size and masked, so it is trained on
without a recompile), then evaluates. The epoch step is vmapped over a leading
replica axis: every replica has its own parameters, optimiser state, key,
training inputs and labels, masks, teacher logits, loss weights and learning
rate. The validation set is shared (broadcast).

A replica whose stream is shorter than the longest (a shadow's half, a smaller
retain set) takes only the steps its own samples fill: a minibatch of padding
alone is skipped, not taken with a zero gradient.

The step minimises an ``Objective`` (``qrobust.objectives``): plain binary
cross-entropy for training; the unlearning family for forgetting, which also
sees the whole forget set at every step. Optimiser: Adam, with the learning
rate injected per replica (``optax.inject_hyperparams``).

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

from qrobust import sharding
from qrobust.models.base import Model, batch_logits
from qrobust.objectives import Batch, Objective, cross_entropy, supervised

METRICS = ("loss", "objective", "train_acc", "train_acc_clean", "val_acc", "memorization",
           "forget_acc_clean", "retain_acc")


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


def bce_loss(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
    """Weighted mean binary cross-entropy; weights (B,) are 1 for real samples, 0 for padding."""
    return cross_entropy(Batch(logits, labels, weights, logits, labels))


def adam(learning_rate) -> optax.GradientTransformation:
    """Adam with its learning rate held in the state, so it can differ per replica."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


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


def evaluate(model: Model, params, data: TrainData, val: EvalData, *, margins: bool = False) -> dict:
    """The end-of-epoch metrics of one replica (module docstring), except ``objective``.

    With ``margins``, also ``margin`` (N,): (2 y - 1) * logit per training sample,
    positive where the model agrees with the label it was trained on.
    """
    logits_of = batch_logits(model)
    logits = logits_of(params, data.x)
    pred = (logits > 0).astype(data.y.dtype)
    val_logits = logits_of(params, val.x)
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


def make_train_fn(
    model: Model,
    *,
    epochs: int,
    batch_size: int,
    n_samples: int,
    objective: Objective | None = None,
    loss_fn: Callable[[jax.Array, jax.Array, jax.Array], jax.Array] | None = None,
    progress: Callable[[int], None] | None = None,
    record_margins: bool = False,
    eval_every: int = 1,
    replica_mode: str = "auto",
):
    """Build ``train(params, learning_rate, key, data, val) -> (params, metrics)`` for R replicas.

    Inputs carry a leading replica axis R: params (R, ...), learning_rate (R,),
    key (R, 2) uint32, data a TrainData of (R, N, ...) arrays; val is shared.
    ``n_samples`` is the largest stream (retain) size over replicas: it fixes the
    number of minibatches per epoch. ``objective`` defaults to plain BCE;
    ``loss_fn(logits, labels, weights)`` is a shortcut for a custom supervised loss.
    Returns the final params (R, ...) and a dict of metrics, each (R, E) for the
    E = len(evaluated_epochs(epochs, eval_every)) recorded epochs (every epoch by
    default; the end-of-epoch evaluation of the others is skipped, which saves its
    cost); with ``record_margins`` also ``margin`` (R, E, N), per training sample.
    ``progress(epoch)`` is called from the host after every epoch. The function
    is jitted and compiles once per shape.

    ``replica_mode`` says how the program walks the replica axis within an epoch:
    "vmap" runs all replicas' steps as batched operations (what an accelerator
    wants); "map" runs the replicas' epochs one after another with ``lax.map``,
    still one compiled program, so that one replica's batch stays in cache (on
    CPU 10 to 25% faster for the QNN, and the scratch memory of one replica, not R); "auto"
    (default) is "map" on CPU devices, else "vmap". Both give the same
    numbers to float32 rounding. With several local devices, each runs this
    program on its own slice of the replica axis (``sharding.per_device``).
    """
    if objective is None:
        objective = supervised() if loss_fn is None else \
            Objective("custom", lambda b, f, c: loss_fn(b.logits, b.labels, b.weights))
    if replica_mode not in ("auto", "vmap", "map"):
        raise ValueError(f"unknown replica_mode {replica_mode!r}; choose auto, vmap or map")
    mode = ("map" if sharding.cpu_only() else "vmap") if replica_mode == "auto" else replica_mode
    n_batches, padded = epoch_plan(n_samples, batch_size)
    recorded = np.array(evaluated_epochs(epochs, eval_every)) - 1
    is_evaluated = jnp.zeros(epochs, bool).at[recorded].set(True)
    tx = adam(0.0)  # its update reads each replica's learning rate from the replica's state
    logits_of = batch_logits(model)

    def init_state(params, learning_rate, key):
        opt_state = adam(jnp.asarray(learning_rate, jnp.float32)).init(params)
        return ReplicaState(params, opt_state, key)

    def forget_batch(params, data: TrainData):
        idx = data.forget_idx
        return Batch(logits_of(params, data.x[idx]), data.y[idx], data.forget_w, data.teacher[idx],
                     data.random_labels[idx])

    def no_forget(params, data: TrainData):  # the forget set's Batch where no term reads it: weights 0
        idx = data.forget_idx
        zeros = jnp.zeros(idx.shape, data.teacher.dtype)
        return Batch(zeros, data.y[idx], jnp.zeros_like(data.forget_w), data.teacher[idx], data.random_labels[idx])

    def step_loss(params, data: TrainData, idx, wb, epoch):
        batch = Batch(logits_of(params, data.x[idx]), data.y[idx], wb, data.teacher[idx], data.random_labels[idx])
        if not objective.uses_forget:
            forget = None
        elif objective.reads_forget is None:
            forget = forget_batch(params, data)
        else:  # a replica whose weights leave the forget set out skips its forward pass (a branch per replica
            # in "map" mode; under vmap both sides run and one is selected, as before)
            forget = jax.lax.cond(objective.reads_forget(data.coef), forget_batch, no_forget, params, data)
        value = objective.loss(batch, forget, data.coef)
        if objective.param_loss is not None:
            value = value + objective.param_loss(params, data.coef, epoch / epochs)
        return value

    def descend(params, opt_state, loss_fn, *args, mask=None):
        value, grads = jax.value_and_grad(loss_fn)(params, *args)
        if mask is not None:
            grads = jax.tree_util.tree_map(lambda g, m: g * m.astype(g.dtype), grads, mask)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    def one_epoch(state: ReplicaState, data: TrainData, val: EvalData, epoch):
        key, shuffle_key = jax.random.split(state.key)
        u = jax.random.uniform(shuffle_key, data.stream.shape)
        order = jnp.argsort(jnp.where(data.stream, u, 2.0 + u))  # stream samples first, in random order
        n_stream = jnp.sum(data.stream)
        position = jnp.arange(padded)
        order = jnp.concatenate([order, jnp.zeros(max(padded - order.shape[0], 0), order.dtype)])[:padded]
        weights = (position < n_stream).astype(jnp.float32)
        order = jnp.where(weights > 0, order, 0).reshape(n_batches, batch_size)
        weights = weights.reshape(n_batches, batch_size)

        def step(carry, batch):
            idx, wb = batch

            def take(carry):
                params, opt_state = carry
                if objective.max_loss is not None:
                    def ascend(p, o):
                        p, o, _ = descend(p, o, lambda q: objective.max_loss(forget_batch(q, data), data.coef),
                                          mask=data.grad_mask)
                        return p, o
                    params, opt_state = jax.lax.cond(epoch < objective.max_epochs, ascend, lambda p, o: (p, o),
                                                     params, opt_state)
                params, opt_state, value = descend(params, opt_state, step_loss, data, idx, wb, epoch,
                                                   mask=data.grad_mask)
                return (params, opt_state), value.astype(data.y.dtype)

            # a batch of padding only (this replica's stream is shorter than the longest) is no step: Adam's
            # moments would otherwise move the weights on a zero gradient. A branch per replica in "map" mode.
            real = jnp.sum(wb) > 0
            carry, value = jax.lax.cond(real, take, lambda c: (c, jnp.zeros((), data.y.dtype)), carry)
            return carry, (value, real)

        (params, opt_state), (values, real) = jax.lax.scan(step, (state.params, state.opt_state), (order, weights))
        measure = lambda p: evaluate(model, p, data, val, margins=record_margins)  # noqa: E731
        if eval_every == 1:
            metrics = measure(params)
        else:  # the predicate is the same for every replica, so this stays a branch under vmap
            skipped = jax.tree_util.tree_map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype),
                                             jax.eval_shape(measure, params))
            metrics = jax.lax.cond(is_evaluated[epoch], measure, lambda p: skipped, params)
        metrics["objective"] = jnp.sum(values) / jnp.maximum(jnp.sum(real), 1)
        return ReplicaState(params, opt_state, key), metrics

    def train(params, learning_rate, key, data: TrainData, val: EvalData, *, on_each_device: bool = False):
        chex.assert_equal_shape_prefix([data.x, data.y, data.y_clean, data.corrupted, data.stream, data.teacher], 2)
        chex.assert_equal_shape([data.forget_idx, data.forget_w])
        if data.y.shape[1] < n_samples:
            raise ValueError(f"n_samples={n_samples} exceeds the {data.y.shape[1]} training samples")
        state = jax.vmap(init_state)(params, learning_rate, key)

        def body(state, epoch):
            if mode == "vmap":
                state, metrics = jax.vmap(one_epoch, in_axes=(0, 0, None, None))(state, data, val, epoch)
            else:  # the replicas' epochs one after another, inside the same program
                state, metrics = jax.lax.map(lambda sd: one_epoch(sd[0], sd[1], val, epoch), (state, data))
            if progress is not None and on_each_device:  # every device runs this loop: the first one reports
                jax.debug.callback(lambda e, device: progress(e) if device == 0 else None, epoch,
                                   jax.lax.axis_index(sharding.AXIS))
            elif progress is not None:
                jax.debug.callback(progress, epoch)
            return state, metrics

        state, metrics = jax.lax.scan(body, state, jnp.arange(epochs))
        return state.params, {k: jnp.swapaxes(v[recorded], 0, 1) for k, v in metrics.items()}

    compiled = jax.jit(train)
    if sharding.device_count() == 1:
        return compiled

    mesh = sharding.replica_mesh()
    on_each_device = sharding.per_device(functools.partial(train, on_each_device=True), mesh, shared_argnums=(4,))

    def sharded(params, learning_rate, key, data, val):
        n_replicas, n_devices = learning_rate.shape[0], sharding.device_count()
        if n_replicas % n_devices:
            raise ValueError(f"{n_replicas} replicas cannot be split evenly over {n_devices} devices")
        params, learning_rate, key, data = sharding.shard_replicas((params, learning_rate, key, data), mesh)
        return on_each_device(params, learning_rate, key, data, sharding.replicate(val, mesh))

    sharded.lower = compiled.lower  # one device's program, for memory analysis (qrobust.memory.program_bytes)
    return sharded
