"""Layer 3: a model is a pair of pure functions plus how it reads a state."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import numpy as np


class Model(NamedTuple):
    """A binary classifier of quantum states, for ONE example (vmap adds batch axes).

    name: short name ("qnn", "mlp") used in result tables.
    init: init(key) -> params (a pytree).
    apply: apply(params, x) -> scalar logit of p(y = 1), x of shape ``input_shape``.
    prepare: prepare(states) -> model inputs; states (..., 2**n_qubits) float or
      complex amplitude vectors (numpy or jax), result (..., *input_shape) as a
      jax array. Raises ConfigError/DataError if the states do not fit.
    input_shape: shape of one prepared example.
    settings: the architecture's settings, JSON-serialisable (for config.json).
    apply_batch: optional apply_batch(params, xs) -> (B,) logits for xs of shape
      (B, *input_shape), equal to vmapping ``apply`` but faster; None: vmap is used.
    """

    name: str
    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, jax.Array], jax.Array]
    prepare: Callable[[Any], jax.Array]
    input_shape: tuple[int, ...]
    settings: dict
    apply_batch: Callable[[Any, jax.Array], jax.Array] | None = None


class Capabilities(NamedTuple):
    """What a QNN simulator runs (declared in its own module, collected by ``qrobust.models.simulators``).

    ``unavailable()`` returns why it cannot be used on this machine, or None.
    """

    ansatze: tuple[str, ...]
    dtypes: tuple[str, ...]
    min_qubits: int
    max_qubits: int
    accelerators: bool  # runs on GPU/TPU devices (else CPU devices only)
    forward_mode: bool  # jax.jvp through it (Hessian-vector products by forward-over-reverse)
    whole_batch: bool  # its build returns logits(params, xs) for a batch (else apply(params, x) for one example)
    unavailable: Callable[[], str | None] = lambda: None


class SimOptions(NamedTuple):
    """The options a simulator's ``build(plan, options)`` may read (each reads those that apply to it)."""

    dtype: str = "complex64"
    contractor: str | None = None
    block_size: int = 5
    matmul_precision: str = "highest"


def batch_logits(model: Model) -> Callable[[Any, jax.Array], jax.Array]:
    """``logits(params, xs) -> (B,)`` for a batch xs of shape (B, *input_shape)."""
    if model.apply_batch is not None:
        return model.apply_batch
    return jax.vmap(model.apply, in_axes=(None, 0))


def count_params(params) -> int:
    """Number of scalar parameters in a pytree (of arrays, or of shapes: ``jax.eval_shape``)."""
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params)))
