"""The optimiser a replica trains with: any optax ``GradientTransformation``, with the learning rate as
its per-replica hyperparameter.

An ``Optimizer`` is a name (recorded in config.json) and a typed factory ``make(learning_rate) ->
optax.GradientTransformation``. The engine wraps the factory in ``optax.inject_hyperparams``, so each replica's
learning rate lives in its own optimiser state: a grid over learning rates is a replica axis, not a recompile.
The factory may build anything from the rate: a schedule, a chain with clipping and weight decay. A fixed
transformation (its rates already inside it) is an Optimizer too, whose learning rate is ignored
(``uses_learning_rate`` False: a study refuses a learning-rate axis for it).

    optimizer = Optimizer.from_optax(
        lambda lr: optax.chain(optax.clip_by_global_norm(1.0),
                               optax.adamw(optax.cosine_decay_schedule(lr, 500), weight_decay=1e-4)),
        name="adamw-cosine")
"""

from __future__ import annotations

import inspect
from typing import Callable, NamedTuple

import optax

from qrobust.errors import ConfigError


class Optimizer(NamedTuple):
    """name: how results record it; make(learning_rate) -> optax.GradientTransformation; uses_learning_rate:
    whether ``make`` reads its argument (False: a fixed transformation)."""

    name: str
    make: Callable[[float], optax.GradientTransformation]
    uses_learning_rate: bool = True

    @staticmethod
    def from_optax(transform, name: str) -> "Optimizer":
        """An Optimizer from an optax ``GradientTransformation`` (fixed: its own rates), or from a factory of
        one argument, the learning rate (``optax.adam``, or a function building a chain from the rate)."""
        if not isinstance(name, str) or not name:
            raise ConfigError("an optimizer needs a name (it is recorded with the results)")
        if isinstance(transform, optax.GradientTransformation):
            return Optimizer(name, lambda learning_rate: transform, False)
        if not callable(transform):
            raise ConfigError(f"an optimizer is an optax GradientTransformation or a function learning_rate -> "
                              f"GradientTransformation, got {type(transform).__name__}")
        try:
            inspect.signature(transform).bind(0.01)
        except (TypeError, ValueError):
            raise ConfigError(f"the optimizer factory {name!r} must take the learning rate as its one positional "
                              "argument") from None
        return Optimizer(name, transform, True)

    def transform(self) -> Callable[..., optax.GradientTransformation]:
        """``inject_hyperparams(make)``: called with a learning rate, a transformation whose state holds it."""
        return optax.inject_hyperparams(self.make)


def adam() -> Optimizer:
    """The paper's optimiser: Adam at the replica's learning rate."""
    return Optimizer("adam", optax.adam)


_REGISTRY: dict[str, Optimizer] = {"adam": adam()}


def register(optimizer: "Optimizer | str | None") -> str:
    """The name of ``optimizer`` (None: "adam"); a user's Optimizer is kept under its name for this process, so
    a study's config can name it (config.json records the name). A name used by another optimizer is refused."""
    if optimizer is None:
        return "adam"
    if isinstance(optimizer, str):
        get(optimizer)
        return optimizer
    if not isinstance(optimizer, Optimizer):
        raise ConfigError("an optimizer is a name or a qrobust Optimizer (Optimizer.from_optax(transform, name)), "
                          f"got {type(optimizer).__name__}")
    if _REGISTRY.get(optimizer.name, optimizer) is not optimizer:
        raise ConfigError(f"the optimizer name {optimizer.name!r} is taken by another optimizer of this process")
    _REGISTRY[optimizer.name] = optimizer
    return optimizer.name


def get(name: str) -> Optimizer:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown optimizer {name!r}; choose from {', '.join(_REGISTRY)}, or pass an Optimizer")
    return _REGISTRY[name]
