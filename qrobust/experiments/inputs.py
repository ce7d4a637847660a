"""A chunk's training inputs: the replicas' initial weights, shuffle keys and (corrupted) training sets, made
from their seeds alone (``qrobust.keys``), so every study's replica of a seed is the sweep's replica of that seed.

- ``make_chunk_inputs``: a model's input builder, computed ``INPUT_BLOCK`` replicas at a time (``blockwise``): its
  programs compile once per data shape and model, whatever the chunk sizes, and a replica's inputs are the same
  in a chunk of any size;
- ``training_args``: their shapes, for the footprint of the program a chunk runs;
- ``blockwise``: any per-replica function of replica-stacked arguments, a block at a time (the unlearning
  students' completion uses it too).
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.corruption import corrupt_replicas
from qrobust.data import Dataset
from qrobust.engine import EvalData, plain_data
from qrobust.keys import CORRUPT, INIT, SHUFFLE, replica_keys
from qrobust.models import Model


INPUT_BLOCK = 8  # replicas per call of a chunk's input builder: its programs do not depend on the chunk size


@jax.jit
def _corrupted_block(seeds, kinds, counts, scores, x, y):
    """A block's corrupted training sets (model-independent: one program per data shape, shared by every
    model and study) and its shuffle keys."""
    keys = replica_keys(seeds)
    c = corrupt_replicas(kinds, keys[CORRUPT], x, y, counts, scores)
    return c.x, c.y.astype(jnp.float32), jnp.broadcast_to(y, c.y.shape).astype(jnp.float32), c.mask, keys[SHUFFLE]


@partial(jax.jit, static_argnums=1)
def _joined(blocks, r: int):
    """The blocks' arrays joined along the replica axis, cut to the chunk's ``r`` replicas."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.concatenate(leaves)[:r], *blocks)


def blockwise(fn: Callable, *args):
    """``fn(*args)`` for arguments (pytrees) with a leading replica axis of length R, computed ``INPUT_BLOCK``
    replicas at a time (the last block padded with repeats of the first replica, its results cut), so that a
    jitted ``fn`` compiles for one block shape whatever R. For functions that treat each replica on its own
    (vmapped), whose results do not depend on the other replicas of a call. (Replica keys, whose replica axis
    is their second, are made inside ``fn`` from the seeds.)"""
    r = jnp.shape(jax.tree_util.tree_leaves(args)[0])[0]
    rows = np.concatenate([np.arange(r), np.zeros(-r % INPUT_BLOCK, int)])
    args = jax.tree_util.tree_map(lambda a: a if isinstance(a, (jax.Array, jax.core.Tracer)) else np.asarray(a), args)
    blocks = [fn(*jax.tree_util.tree_map(lambda a: a[rows[i:i + INPUT_BLOCK]], args))
              for i in range(0, len(rows), INPUT_BLOCK)]
    return _joined(blocks, r)


def make_chunk_inputs(model: Model, dataset: Dataset):
    """A function (seeds (R,), corruption index (R,), count (R,), scores (R, N) or None) -> (initial params,
    shuffle keys, TrainData). Keys from the seed alone (``qrobust.keys``): a seed's replica is the same in every
    study. ``scores``: the aimed poisoners' priorities per replica (``qrobust.experiments.poisoners``; None:
    zeros, all the others need).

    The inputs are built ``INPUT_BLOCK`` replicas at a time (``blockwise``), so the builder compiles once per
    data shape (the corruption, shared by every model) and once per model (its initial weights and its reading
    of the inputs), whatever the chunk sizes; a replica's inputs are the same in a chunk of any size."""
    x = jnp.asarray(dataset.x_train)  # float32 / complex64 (or 64-bit in x64 mode)
    y = jnp.asarray(dataset.y_train, jnp.int32)

    @jax.jit
    def model_block(seeds, corrupted):
        cx, cy, y_clean, mask, shuffle = corrupted
        params = jax.vmap(model.init)(replica_keys(seeds)[INIT])
        return params, shuffle, plain_data(model.prepare(cx), cy, y_clean, mask)

    def block(seeds, kinds, counts, scores):
        return model_block(seeds, _corrupted_block(seeds, kinds, counts, scores.astype(jnp.float32), x, y))

    def inputs(seeds, kinds, counts, scores=None):
        if scores is None:
            scores = np.zeros((jnp.shape(seeds)[0], y.shape[0]), np.float32)  # on the host: cut into blocks there
        return blockwise(block, seeds, kinds, counts, scores)

    return inputs


def training_args(inputs: Callable, val: EvalData) -> Callable[[int], tuple]:
    """``args_for(r)``: the abstract arguments of a training program for r replicas whose inputs come from
    ``inputs`` (``make_chunk_inputs``): (params, learning rates, shuffle keys, data, val)."""
    def args_for(r: int) -> tuple:
        ints = jax.ShapeDtypeStruct((r,), jnp.int32)
        params, keys, data = jax.eval_shape(inputs, ints, ints, ints)
        return params, jax.ShapeDtypeStruct((r,), jnp.float32), keys, data, val

    return args_for
