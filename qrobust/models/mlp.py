"""The classical twin: a Flax MLP, Dense(h1) ReLU, Dense(h2) ReLU, ..., Dense(1) -> logit."""

from __future__ import annotations

import functools
from typing import Sequence

import jax
import jax.numpy as jnp

from qrobust.errors import ConfigError
from qrobust.models.base import Model


_FULL = jax.lax.Precision.HIGHEST  # full float32 products on a GPU too (its default there is TensorFloat-32)


@functools.cache
def _module_class():
    """The Flax module, defined on first use: a study without an MLP does not import Flax (0.2 s)."""
    import flax.linen as nn

    class _MLP(nn.Module):
        hidden: Sequence[int]

        @nn.compact
        def __call__(self, x):
            for width in self.hidden:
                x = nn.relu(nn.Dense(width, precision=_FULL)(x))
            return nn.Dense(1, precision=_FULL)(x)[..., 0]

    return _MLP


def mlp(input_dim: int, hidden: Sequence[int] = (64, 16), *, complex_input: bool = False) -> Model:
    """The MLP as a Model.

    Args:
      input_dim: length of the amplitude vectors it classifies (2**n_qubits).
      hidden: widths of the hidden ReLU layers (paper: (64, 16)).
      complex_input: states are complex; the MLP then reads real and imaginary
        parts side by side (2 * input_dim features).
    Flax's default initialisers (LeCun-normal kernels, zero biases); float32, with full-precision
    products on every platform (a GPU's default would be TensorFloat-32).
    """
    hidden = tuple(int(h) for h in hidden)
    if not hidden or any(h < 1 for h in hidden):
        raise ConfigError(f"hidden sizes must be positive integers, got {hidden}")
    features = 2 * input_dim if complex_input else input_dim
    module = _module_class()(hidden)

    def init(key):
        return module.init(key, jnp.zeros((features,), jnp.float32))

    def apply(params, x):
        return module.apply(params, x)

    return Model(name="mlp", init=init, apply=apply, prepare=classical_prepare(input_dim, complex_input),
                 input_shape=(features,),
                 settings=dict(kind="mlp", hidden=list(hidden), input_features=features))


def classical_prepare(input_dim: int, complex_input: bool):
    """``prepare(states)``: what a classical model reads of states (..., input_dim): float32, real and imaginary
    parts side by side (2 * input_dim features) where they are complex."""

    def prepare(states):
        length = states.shape[-1] if getattr(states, "ndim", 0) else 0
        if length != input_dim or jnp.iscomplexobj(states) != complex_input:
            raise ConfigError(f"this model reads {'complex' if complex_input else 'real'} states of length "
                              f"{input_dim}, got shape {states.shape} ({states.dtype})")
        states = jnp.asarray(states)
        if complex_input:
            states = jnp.concatenate([states.real, states.imag], axis=-1)
        return states.astype(jnp.float32)

    return prepare
