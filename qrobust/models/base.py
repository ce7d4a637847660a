"""A model is a pair of pure functions plus how it reads a state."""

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
    sample: optional sample(params, xs, key) -> (B,) logits as a device reports them (finite shots,
      ``qrobust.models.shots``): what the engine trains on and records; None: the exact logits.
    """

    name: str
    init: Callable[[jax.Array], Any]
    apply: Callable[[Any, jax.Array], jax.Array]
    prepare: Callable[[Any], jax.Array]
    input_shape: tuple[int, ...]
    settings: dict
    apply_batch: Callable[[Any, jax.Array], jax.Array] | None = None
    sample: Callable[[Any, jax.Array, jax.Array], jax.Array] | None = None


class Capabilities(NamedTuple):
    """What a QNN simulator runs (declared in its own module, collected by ``qrobust.models.simulators``).

    ansatze: the structured circuits it runs from their structure (``qrobust.models.hea``), or None: any
      circuit, from its recorded gates.
    encodings: the inputs it takes ("amplitude": the initial state; "angle", "reupload": features).
    gates_only: it runs the recorded gates, so they must stand for the circuit (no channels, measurements).
    native_gates: it runs them on the native kernel (one- and two-qubit gates and permutations only).
    channels: the noise channels it runs (``qrobust.models.noise.CHANNELS``); none: exact circuits only, and
      readout error, which every simulator runs as a factor of the readout's scale (``simulators.read_through``).
    placements: where it places them (``qrobust.models.noise.PLACEMENTS``: after each gate, once per layer).
    ``unavailable()`` returns why it cannot be used on this machine, or None.
    """

    ansatze: tuple[str, ...] | None
    dtypes: tuple[str, ...]
    min_qubits: int
    max_qubits: int
    accelerators: bool  # runs on GPU/TPU devices (else CPU devices only)
    forward_mode: bool  # jax.jvp through it (Hessian-vector products by forward-over-reverse)
    whole_batch: bool  # its build returns logits(params, xs) for a batch (else apply(params, x) for one example)
    unavailable: Callable[[], str | None] = lambda: None
    encodings: tuple[str, ...] = ("amplitude",)
    gates_only: bool = False
    native_gates: bool = False
    channels: tuple[str, ...] = ()
    placements: tuple[str, ...] = ()


class SimOptions(NamedTuple):
    """The options a simulator's ``build(plan, options)`` may read (each reads those that apply to it)."""

    dtype: str = "complex64"
    contractor: str | None = None
    block_size: int = 5
    matmul_precision: str = "highest"
    forward_mode: bool = False  # the model must have forward mode (jax.jvp) too: a simulator may pick other kernels


def batch_logits(model: Model) -> Callable[[Any, jax.Array], jax.Array]:
    """``logits(params, xs) -> (B,)`` for a batch xs of shape (B, *input_shape)."""
    if model.apply_batch is not None:
        return model.apply_batch
    return jax.vmap(model.apply, in_axes=(None, 0))


def count_params(params) -> int:
    """Number of scalar parameters in a pytree (of arrays, or of shapes: ``jax.eval_shape``)."""
    return int(sum(np.prod(leaf.shape) for leaf in jax.tree_util.tree_leaves(params)))


def flatten(params) -> np.ndarray:
    """(R, P) flat parameter vectors of a replica-stacked pytree (leaves in tree order, each row-major)."""
    leaves = jax.tree_util.tree_leaves(params)
    return np.concatenate([np.asarray(leaf).reshape(leaf.shape[0], -1) for leaf in leaves], axis=1)


def unflatten(template, flat: np.ndarray):
    """Inverse of ``flatten``: the rows of ``flat`` (R, P) as a replica-stacked pytree shaped like ``template``
    (one replica's parameters, or their shapes: ``jax.eval_shape(model.init, key)``), in its dtypes."""
    import jax.numpy as jnp

    leaves, treedef = jax.tree_util.tree_flatten(template)
    sizes = [int(np.prod(leaf.shape)) for leaf in leaves]
    if flat.shape[1] != sum(sizes):
        raise ValueError(f"{flat.shape[1]} stored weights per replica, the model has {sum(sizes)}")
    out, i = [], 0
    for leaf, size in zip(leaves, sizes):
        out.append(jnp.asarray(flat[:, i:i + size].reshape((flat.shape[0],) + tuple(leaf.shape)), leaf.dtype))
        i += size
    return jax.tree_util.tree_unflatten(treedef, out)


class BuildOptions(NamedTuple):
    """The numerics a study asks of its models: the QNN's dtype, simulator (None: the registry's choice),
    matmul precision, whether it must have forward mode (Hessians), and how a QNN with finite shots estimates its
    gradient (``qrobust.models.shots``)."""

    dtype: str = "complex64"
    simulator: str | None = None
    matmul_precision: str = "highest"
    forward_mode: bool = False
    shot_gradient: str = "shift"


class ModelSpec(NamedTuple):
    """An entry of the model registry (``qrobust.models.registry``; ``ModelSettings`` is its).

    name: how configs and results name it. build(dataset, settings, options) -> Model. quantum: a QNN (its
    replicas cost more: smaller chunks; its simulator is recorded). arch_axis: "depth", "hidden" or None, the
    architecture a sweep varies. training: overrides of the paper's MLP training settings (epochs,
    batch_size, learning_rate, optimizer) for a user's model; family: whose paper settings it starts from.
    options: the named options its factory was given (a control's rank, weight decay, ...), recorded in
    config.json with its settings.
    """

    name: str
    build: Callable[[Any, Any, BuildOptions], Model]  # (dataset, ModelSettings, BuildOptions) -> Model
    quantum: bool = False
    arch_axis: str | None = None
    training: dict | None = None
    family: str = "mlp"
    options: dict | None = None
