"""The model door: every model a study trains is an entry of one registry, named in configs and results.

An entry is a ``ModelSpec``: how to build a ``Model`` for a dataset (``build(dataset, settings, options)``),
whether it is a quantum model (what it costs per replica, whether a simulator runs it), which architecture axis
a sweep varies (the QNN's depth, the MLP's hidden sizes, none for a user's model), and optional training
defaults and optimiser. Built in: "qnn" (``qrobust.models.qnn``, any circuit) and "mlp" (the Flax MLP), and
the classical controls of the QNN (``qrobust.models.controls``: "quadratic", "quadratic_pm1", "logistic",
"mlp_wd", "mlp_invariant", "fidelity_kernel", "projected_kernel", "mlp_pca"; docs/controls.md). A
researcher's own model enters the same way, through the Python API:

    spec = flax_model(MyModule(), name="wide")              # a Flax linen module (one example -> one logit)
    spec = flax_model(lambda rngs: MyNnx(rngs=rngs), name="nnx")   # an nnx module, built from its rngs
    spec = model_from(init, apply, name="mine")             # a pure pair: init(key, x) -> params,
                                                            #   apply(params, x) -> logit
    SweepConfig(models=("qnn", spec), ...)                  # trained beside the QNN on the replica engine

A user's model reads what the MLP reads (the classical view of the encoded inputs: real and imaginary parts
side by side, float32), one example at a time (the engine vmaps it). Its training settings default to the
paper's MLP settings for the dataset, overridden per spec (``epochs``, ``batch_size``, ``learning_rate``,
``optimizer``). Nothing downstream of the registry knows which model is which.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable

import jax
import jax.numpy as jnp

from qrobust.errors import ConfigError
from qrobust.models.base import BuildOptions, Model, ModelSpec  # noqa: F401 (the registry's types)


@dataclass(frozen=True)
class ModelSettings:
    """How one model is built and trained: epochs, batch size, learning rate; the QNN's ``depth`` and
    ``ansatz``, the MLP's ``hidden`` sizes (each model reads what applies to it); ``optimizer``: a name of
    ``qrobust.optimizers`` (the paper's "adam" by default); a quantum model's ``shots`` (None: exact) and
    ``noise`` (a label of ``qrobust.models.noise``; "none": exact), which a classical model does not read."""

    epochs: int
    batch_size: int
    learning_rate: float
    depth: int = 6
    hidden: tuple[int, ...] = (64, 16)
    ansatz: str = "hea"
    optimizer: str = "adam"
    shots: int | None = None
    noise: str = "none"

    def validate(self, name: str) -> "ModelSettings":
        for field, value in (("epochs", self.epochs), ("batch_size", self.batch_size), ("depth", self.depth)):
            if int(value) != value or value < 1:
                raise ConfigError(f"{name}: {field} must be a positive integer, got {value}")
        if not 0 < self.learning_rate < math.inf:
            raise ConfigError(f"{name}: learning rate must be positive and finite, got {self.learning_rate}")
        if not self.hidden or any(int(h) != h or h < 1 for h in self.hidden):
            raise ConfigError(f"{name}: hidden sizes must be positive integers, got {self.hidden}")
        if self.ansatz != "hea":
            from qrobust.models.ansatze import ansatz

            ansatz(self.ansatz)
        from qrobust.optimizers import get

        get(self.optimizer)
        from qrobust.models.noise import parse
        from qrobust.models.shots import check_shots

        check_shots(self.shots)
        object.__setattr__(self, "noise", parse(self.noise).label)
        return self

    def to_dict(self, name: str) -> dict:
        """What config.json records: the settings that apply to model ``name`` (the paper's ansatz and optimiser
        are left out, as they were recorded before they were options)."""
        d = asdict(self)
        axis = spec(name).arch_axis
        if axis != "depth":
            d.pop("depth")
        if axis != "hidden":
            d.pop("hidden")
        if axis != "depth" or d["ansatz"] == "hea":
            d.pop("ansatz")
        if d["optimizer"] == "adam":
            d.pop("optimizer")
        for key, exact in (("shots", None), ("noise", "none")):  # recorded where they are not exact, as before
            if d[key] == exact or not spec(name).quantum:
                d.pop(key)
        if "hidden" in d:
            d["hidden"] = list(d["hidden"])
        d.update(spec(name).options or {})
        return d


def _build_qnn(dataset, settings: ModelSettings, options: BuildOptions) -> Model:
    from qrobust.models.qnn import qnn

    encoding = dataset.meta.get("encoding", "amplitude")
    return qnn(dataset.n_qubits, settings.depth, ansatz=settings.ansatz, encoding=encoding,
               n_features=None if encoding == "amplitude" else dataset.x_train.shape[1], dtype=options.dtype,
               simulator=options.simulator, matmul_precision=options.matmul_precision,
               forward_mode=options.forward_mode, noise=settings.noise, shots=settings.shots,
               shot_gradient=options.shot_gradient)


def _build_mlp(dataset, settings: ModelSettings, options: BuildOptions) -> Model:
    from qrobust.models.mlp import mlp

    return mlp(dataset.x_train.shape[1], settings.hidden, complex_input=dataset.is_complex)


_REGISTRY: dict[str, ModelSpec] = {
    "qnn": ModelSpec("qnn", _build_qnn, quantum=True, arch_axis="depth", family="qnn"),
    "mlp": ModelSpec("mlp", _build_mlp, arch_axis="hidden"),
}
BUILT_IN = ("qnn", "mlp")


def _add_controls() -> tuple[str, ...]:
    """The classical controls of the QNN (``qrobust.models.controls``), registered at their default options."""
    from qrobust.models import controls

    _REGISTRY.update((s.name, s) for s in controls.specs())
    return controls.CONTROLS


CONTROLS = _add_controls()  # not in BUILT_IN: a study trains them when it names them


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def spec(name: str) -> ModelSpec:
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; choose from {', '.join(_REGISTRY)}, or pass a ModelSpec "
                          "(qrobust.models.flax_model, model_from)")
    return _REGISTRY[name]


def register(model: "str | ModelSpec") -> str:
    """The name of ``model``; a user's ModelSpec is kept under its name for this process (config.json records the
    name). A name used by another model is refused."""
    if isinstance(model, str):
        spec(model)
        return model
    if not isinstance(model, ModelSpec):
        raise ConfigError(f"a model is a name ({', '.join(_REGISTRY)}) or a ModelSpec (qrobust.models.flax_model, "
                          f"model_from), got {type(model).__name__}")
    if _REGISTRY.get(model.name, model) is not model:
        owner = "a built-in model" if model.name in BUILT_IN + CONTROLS else "another model of this process"
        raise ConfigError(f"the model name {model.name!r} is taken by {owner}; give yours another name")
    _REGISTRY[model.name] = model
    return model.name


def build(name: str, dataset, settings: ModelSettings, options: BuildOptions = BuildOptions()) -> Model:
    """The model ``name`` of the registry for ``dataset``'s inputs."""
    return spec(name).build(dataset, settings, options)


def _training(epochs, batch_size, learning_rate, optimizer) -> dict:
    from qrobust import optimizers

    given = dict(epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                 optimizer=None if optimizer is None else optimizers.register(optimizer))
    return {k: v for k, v in given.items() if v is not None}


def model_from(init: Callable, apply: Callable, *, name: str, epochs: int | None = None,
               batch_size: int | None = None, learning_rate: float | None = None, optimizer=None) -> ModelSpec:
    """A model from a pure pair: ``init(key, x) -> params`` (``x`` one example's input, for its shape) and
    ``apply(params, x) -> logit`` of one example (a scalar, or shape (1,)). Training settings not given are
    the paper's MLP settings for the dataset; ``optimizer``: a ``qrobust.optimizers.Optimizer`` or a name."""
    if not isinstance(name, str) or not name:
        raise ConfigError("a model needs a name (it is recorded with the results)")
    if not (callable(init) and callable(apply)):
        raise ConfigError("model_from takes two functions, init(key, x) and apply(params, x)")

    def build(dataset, settings: ModelSettings, options: BuildOptions) -> Model:
        from qrobust.models.mlp import classical_prepare

        complex_input = dataset.is_complex
        features = dataset.x_train.shape[1] * (2 if complex_input else 1)
        example = jnp.zeros((features,), jnp.float32)
        return Model(name=name, init=lambda key: init(key, example),
                     apply=lambda params, x: jnp.reshape(apply(params, x), ()),
                     prepare=classical_prepare(dataset.x_train.shape[1], complex_input), input_shape=(features,),
                     settings=dict(kind=name, input_features=features))

    return ModelSpec(name, build, training=_training(epochs, batch_size, learning_rate, optimizer))


def flax_model(module, *, name: str, **training) -> ModelSpec:
    """A model from a Flax module: a linen ``nn.Module`` instance (``module.init`` / ``module.apply``), or for
    nnx a function ``rngs -> nnx.Module`` (its state is the parameters). The module maps one example's input
    to one logit. Training keywords as ``model_from``."""
    import flax.linen as nn

    if isinstance(module, nn.Module):
        return model_from(module.init, module.apply, name=name, **training)
    if not callable(module):
        raise ConfigError(f"flax_model takes a linen Module or a function rngs -> nnx.Module, got "
                          f"{type(module).__name__}")
    from flax import nnx

    def graph(key=None):
        return nnx.split(module(nnx.Rngs(0 if key is None else key)))

    definition = {}

    def init(key, x):
        graphdef, state = graph(key)
        definition.setdefault("graphdef", graphdef)
        return state

    def apply(state, x):
        if "graphdef" not in definition:
            definition["graphdef"] = nnx.split(nnx.eval_shape(lambda: module(nnx.Rngs(0))))[0]
        return nnx.merge(definition["graphdef"], state)(x)

    return model_from(init, apply, name=name, **training)


def count(model: Model) -> int:
    """Number of scalar parameters of one replica of ``model``."""
    from qrobust.models.base import count_params

    return count_params(jax.eval_shape(model.init, jax.random.PRNGKey(0)))
