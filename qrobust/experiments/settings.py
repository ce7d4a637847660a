"""The paper's defaults per dataset and model (Chen & Zhang, arXiv:2508.02422), and the dataset loader."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from qrobust.data import Dataset, mnist_embedded, mnist_from_file, xxz_dataset
from qrobust.data.gauge import DEFAULT_GAUGE
from qrobust.errors import ConfigError
from qrobust.models import MODELS, Model, mlp, qnn

DATASETS = ("mnist", "xxz")


@dataclass(frozen=True)
class ModelSettings:
    """How one model is built and trained. ``depth`` is for the QNN, ``hidden`` for the MLP."""

    epochs: int
    batch_size: int
    learning_rate: float
    depth: int = 6
    hidden: tuple[int, ...] = (64, 16)

    def validate(self, name: str) -> "ModelSettings":
        for field, value in (("epochs", self.epochs), ("batch_size", self.batch_size), ("depth", self.depth)):
            if int(value) != value or value < 1:
                raise ConfigError(f"{name}: {field} must be a positive integer, got {value}")
        if not 0 < self.learning_rate < float("inf"):
            raise ConfigError(f"{name}: learning rate must be positive and finite, got {self.learning_rate}")
        if not self.hidden or any(int(h) != h or h < 1 for h in self.hidden):
            raise ConfigError(f"{name}: hidden sizes must be positive integers, got {self.hidden}")
        return self

    def to_dict(self, name: str) -> dict:
        d = asdict(self)
        d.pop("hidden" if name == "qnn" else "depth")
        d["hidden"] = list(d["hidden"]) if "hidden" in d else None
        return {k: v for k, v in d.items() if v is not None}


PAPER_DEFAULTS: dict[str, dict[str, ModelSettings]] = {
    "mnist": {
        "qnn": ModelSettings(epochs=100, batch_size=256, learning_rate=0.005, depth=6),
        "mlp": ModelSettings(epochs=100, batch_size=256, learning_rate=0.005, hidden=(64, 16)),
    },
    "xxz": {
        "qnn": ModelSettings(epochs=200, batch_size=32, learning_rate=0.03, depth=4),
        "mlp": ModelSettings(epochs=400, batch_size=32, learning_rate=0.01, hidden=(64, 16)),
    },
}


def model_settings(dataset: str, model: str, **overrides) -> ModelSettings:
    """The paper's settings for ``model`` on ``dataset`` with non-None ``overrides`` applied."""
    check_name("dataset", dataset, DATASETS)
    check_name("model", model, MODELS)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "hidden" in changes:
        changes["hidden"] = tuple(changes["hidden"])
    return replace(PAPER_DEFAULTS[dataset][model], **changes).validate(model)


def check_name(kind: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ConfigError(f"unknown {kind} {value!r}; choose from {', '.join(allowed)}")
    return value


def load_dataset(name: str, *, mnist_path: str | None = None, n_train_per_class: int | None = None,
                 n_qubits: int | None = None, gauge: str | None = None, gauge_seed: int = 0) -> Dataset:
    """Load ``name`` with the paper's split; ``n_train_per_class`` shrinks the training set. ``gauge`` and
    ``gauge_seed``: the global phases of quantum data (``qrobust.data.gauge``; None: its default)."""
    check_name("dataset", name, DATASETS)
    if name == "mnist" and gauge is not None:
        raise ConfigError("--gauge applies to quantum data (xxz): MNIST's amplitude encoding is real and positive")
    if n_train_per_class is not None and n_train_per_class < 1:
        raise ConfigError(f"training-set size per class must be positive, got {n_train_per_class}")
    if name == "mnist":
        if n_qubits not in (None, 10):
            raise ConfigError(f"MNIST is amplitude-encoded into 10 qubits; --qubits {n_qubits} does not apply")
        kwargs = {} if n_train_per_class is None else {"n_train_per_class": n_train_per_class}
        return mnist_from_file(mnist_path, **kwargs) if mnist_path else mnist_embedded(**kwargs)
    if mnist_path:
        raise ConfigError("--mnist-path applies to the mnist dataset only")
    ds = xxz_dataset(n_spins=12 if n_qubits is None else n_qubits, gauge=gauge or DEFAULT_GAUGE,
                     gauge_seed=gauge_seed)
    if n_train_per_class is not None:
        import numpy as np

        keep = np.concatenate([np.flatnonzero(ds.y_train == c)[:n_train_per_class] for c in (0, 1)])
        ds = replace(ds, x_train=ds.x_train[keep], y_train=ds.y_train[keep])
    return ds


def build_model(name: str, dataset: Dataset, settings: ModelSettings, *, dtype: str = "complex64",
                simulator: str | None = None, matmul_precision: str = "highest") -> Model:
    """The model ``name`` for ``dataset``'s states. ``simulator`` (None: the QNN's default for this
    machine) and ``matmul_precision`` apply to the QNN (``qrobust.models.qnn``)."""
    check_name("model", name, MODELS)
    if name == "qnn":
        return qnn(dataset.n_qubits, settings.depth, dtype=dtype, simulator=simulator,
                   matmul_precision=matmul_precision)
    return mlp(2**dataset.n_qubits, settings.hidden, complex_input=dataset.is_complex)


def check_simulator(simulator: str | None, matmul_precision: str = "highest") -> None:
    """A QNN simulator name (None: the machine's default) and a matrix-product precision, checked by name."""
    from qrobust.models.blocks import PRECISIONS
    from qrobust.models.qnn import SIMULATORS

    if simulator is not None:
        check_name("simulator", simulator, SIMULATORS)
    check_name("matmul precision", matmul_precision, tuple(PRECISIONS))


def simulators_used(models: dict) -> dict:
    """model name -> the simulator that runs it ("-" for the MLP): what config.json records, so a run says
    what computed its numbers, fallbacks included."""
    return {name: model.settings.get("simulator", "-") for name, model in models.items()}
