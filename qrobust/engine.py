"""Layer 4: the one training loop, for every model and every replica.

A run is a ``lax.scan`` over epochs; each epoch reshuffles the training set with
the replica's own key, scans over minibatches (the last, partial batch is padded
to full size and masked, so it is trained on without a recompile), then
evaluates. The epoch step is vmapped over a leading replica axis: every replica
has its own parameters, optimiser state, key, training inputs and labels, and
learning rate. The validation set is shared (broadcast).

Loss: binary cross-entropy on logits (``optax.sigmoid_binary_cross_entropy``),
averaged over the real (unmasked) samples of a batch. Optimiser: Adam, with the
learning rate injected per replica (``optax.inject_hyperparams``).

Metrics per epoch and replica, on the model as it stands at the end of the epoch:
  loss             mean BCE on the training set, against the labels trained on
  train_acc        accuracy against the labels trained on
  train_acc_clean  accuracy on the training inputs against the clean labels
  val_acc          validation accuracy (clean)
  memorization     fraction of corrupted samples whose training label the model
                   predicts (NaN when a replica has no corrupted sample)
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax

from qrobust.models.base import Model

METRICS = ("loss", "train_acc", "train_acc_clean", "val_acc", "memorization")


class TrainData(NamedTuple):
    """One replica's training set (a leading replica axis is added by stacking).

    x: (N, *input_shape) inputs as the model reads them (corrupted where randomised).
    y: (N,) float labels trained on (flipped where flipped).
    y_clean: (N,) float clean labels.
    corrupted: (N,) bool mask of corrupted samples.
    """

    x: jax.Array
    y: jax.Array
    y_clean: jax.Array
    corrupted: jax.Array


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
    per_example = optax.sigmoid_binary_cross_entropy(logits, labels)
    return jnp.sum(weights * per_example) / jnp.maximum(jnp.sum(weights), 1.0)


def adam(learning_rate: float) -> optax.GradientTransformation:
    """Adam with its learning rate held in the state, so it can differ per replica."""
    return optax.inject_hyperparams(optax.adam)(learning_rate=learning_rate)


def epoch_plan(n_samples: int, batch_size: int) -> tuple[int, int]:
    """(number of batches, padded length) of one epoch: the last partial batch is kept."""
    n_batches = -(-n_samples // batch_size)
    return n_batches, n_batches * batch_size


def _evaluate(model: Model, params, data: TrainData, val: EvalData) -> dict:
    logits = jax.vmap(model.apply, in_axes=(None, 0))(params, data.x)
    pred = (logits > 0).astype(data.y.dtype)
    n_corrupt = jnp.sum(data.corrupted)
    hits = (pred == data.y) & data.corrupted
    val_logits = jax.vmap(model.apply, in_axes=(None, 0))(params, val.x)
    return dict(
        loss=jnp.mean(optax.sigmoid_binary_cross_entropy(logits, data.y)),
        train_acc=jnp.mean(pred == data.y),
        train_acc_clean=jnp.mean(pred == data.y_clean),
        val_acc=jnp.mean((val_logits > 0).astype(val.y.dtype) == val.y),
        memorization=jnp.where(n_corrupt > 0, jnp.sum(hits) / jnp.maximum(n_corrupt, 1), jnp.nan),
    )


def make_train_fn(
    model: Model,
    *,
    epochs: int,
    batch_size: int,
    n_samples: int,
    loss_fn: Callable[[jax.Array, jax.Array, jax.Array], jax.Array] = bce_loss,
    progress: Callable[[int], None] | None = None,
):
    """Build ``train(params, learning_rate, key, data, val) -> (params, metrics)`` for R replicas.

    Inputs carry a leading replica axis R: params (R, ...), learning_rate (R,),
    key (R, 2) uint32 (or typed keys (R,)), data a TrainData of (R, N, ...) arrays;
    val is shared. Returns the final params (R, ...) and a dict of metrics, each
    (R, epochs). ``progress(epoch)`` is called from the host after every epoch.
    The returned function is jitted; it compiles once per shape.
    """
    n_batches, padded = epoch_plan(n_samples, batch_size)
    tx = adam(0.0)  # its update reads each replica's learning rate from the replica's state

    def init_state(params, learning_rate, key):
        opt_state = adam(jnp.asarray(learning_rate, jnp.float32)).init(params)
        return ReplicaState(params, opt_state, key)

    def batch_loss(params, xb, yb, wb):
        logits = jax.vmap(model.apply, in_axes=(None, 0))(params, xb)
        return loss_fn(logits, yb, wb)

    def one_epoch(state: ReplicaState, data: TrainData, val: EvalData):
        key, shuffle_key = jax.random.split(state.key)
        order = jax.random.permutation(shuffle_key, n_samples)
        order = jnp.concatenate([order, jnp.zeros(padded - n_samples, order.dtype)]).reshape(n_batches, batch_size)
        weights = (jnp.arange(padded) < n_samples).astype(jnp.float32).reshape(n_batches, batch_size)

        def step(carry, batch):
            params, opt_state = carry
            idx, wb = batch
            loss, grads = jax.value_and_grad(batch_loss)(params, data.x[idx], data.y[idx], wb)
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        (params, opt_state), _ = jax.lax.scan(step, (state.params, state.opt_state), (order, weights))
        return ReplicaState(params, opt_state, key), _evaluate(model, params, data, val)

    def train(params, learning_rate, key, data: TrainData, val: EvalData):
        chex.assert_equal_shape_prefix([data.x, data.y, data.y_clean, data.corrupted], 2)
        chex.assert_axis_dimension(data.y, 1, n_samples)
        state = jax.vmap(init_state)(params, learning_rate, key)

        def body(state, epoch):
            state, metrics = jax.vmap(one_epoch, in_axes=(0, 0, None))(state, data, val)
            if progress is not None:
                jax.debug.callback(progress, epoch)
            return state, metrics

        state, metrics = jax.lax.scan(body, state, jnp.arange(epochs))
        return state.params, {k: jnp.swapaxes(v, 0, 1) for k, v in metrics.items()}

    return jax.jit(train)
