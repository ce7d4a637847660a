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
    """

    name: str
    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, jax.Array], jax.Array]
    prepare: Callable[[Any], jax.Array]
    input_shape: tuple[int, ...]
    settings: dict


def count_params(params) -> int:
    """Number of scalar parameters in a pytree."""
    return int(sum(np.size(leaf) for leaf in jax.tree_util.tree_leaves(params)))
