"""The paper's defaults per dataset and model (Chen & Zhang, arXiv:2508.02422), and the dataset loader."""

from __future__ import annotations

from dataclasses import replace

from qrobust.data import Dataset, mnist_embedded, mnist_from_file
from qrobust.data.gauge import DEFAULT_GAUGE
from qrobust.data.phases import PHASES, phase_dataset
from qrobust.errors import ConfigError
from qrobust.models import Model, registry
from qrobust.models.registry import BuildOptions, ModelSettings

QUANTUM_DATASETS = tuple(PHASES)  # ground states of spin chains (qrobust.data.phases)
DATASETS = ("mnist", "xxz", "tfim", "cluster", "sklearn-digits", "npz")


def paper_family(dataset: str) -> str:
    """Whose paper settings a dataset trains with: the XXZ experiment's for every quantum phase, MNIST's for
    every classical dataset (a documented choice: the paper has only these two; override per run)."""
    return "xxz" if dataset in QUANTUM_DATASETS else "mnist"


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
    """The paper's settings for ``model`` on ``dataset`` with non-None ``overrides`` applied. A model of the
    registry that is not the paper's starts from its family's settings (the MLP's) and its own training
    defaults (``ModelSpec.training``)."""
    check_name("dataset", dataset, DATASETS)
    spec = registry.spec(model)
    changes = dict(spec.training or {})
    changes.update({k: v for k, v in overrides.items() if v is not None})
    if "hidden" in changes:
        changes["hidden"] = tuple(changes["hidden"])
    return replace(PAPER_DEFAULTS[paper_family(dataset)][spec.family], **changes).validate(model)


def check_name(kind: str, value: str, allowed) -> str:
    if value not in allowed:
        raise ConfigError(f"unknown {kind} {value!r}; choose from {', '.join(allowed)}")
    return value


def check_data_options(name: str, *, mnist_path=None, n_train_per_class=None, n_qubits=None, gauge=None,
                       digits=None, data_file=None, grid=None) -> None:
    """Refuse, by name, a data option that does not apply to dataset ``name`` or is missing."""
    check_name("dataset", name, DATASETS)
    quantum = name in QUANTUM_DATASETS
    if n_train_per_class is not None and (int(n_train_per_class) != n_train_per_class or n_train_per_class < 1):
        raise ConfigError(f"training-set size per class must be a positive integer, got {n_train_per_class}")
    for given, option, applies, where in (
            (gauge is not None, "--gauge", quantum, f"quantum data ({', '.join(QUANTUM_DATASETS)}): {name}'s "
                                                    "amplitude encoding is real"),
            (grid is not None, "--grid, --param-range, --n-points and --window", quantum,
             f"the quantum phases ({', '.join(QUANTUM_DATASETS)})"),
            (n_qubits is not None, "--qubits", quantum, f"spin chains ({', '.join(QUANTUM_DATASETS)}); {name} "
                                                        "fixes its qubits"),
            (digits is not None, "--digits", name in ("mnist", "sklearn-digits"), "mnist and sklearn-digits"),
            (mnist_path is not None, "--mnist-path", name == "mnist", "the mnist dataset"),
            (data_file is not None, "--data-file", name == "npz", "--dataset npz")):
        if given and not applies:
            raise ConfigError(f"{option} appl{'y' if ' and ' in option else 'ies'} to {where} only")
    if name == "npz" and data_file is None:
        raise ConfigError("--dataset npz reads a user's arrays: give the file with --data-file "
                          "(keys x_train, y_train, x_val, y_val)")


def load_dataset(name: str, *, mnist_path: str | None = None, n_train_per_class: int | None = None,
                 n_qubits: int | None = None, gauge: str | None = None, gauge_seed: int = 0, digits=None,
                 data_file: str | None = None, grid=None) -> Dataset:
    """Load ``name`` with its split; ``n_train_per_class`` shrinks the training set. Quantum phases: ``n_qubits``
    spins (default 12), ``grid`` (``qrobust.data.phases``: a name, a Grid, None for the paper's) and ``gauge``,
    ``gauge_seed`` (``qrobust.data.gauge``; None: its default). MNIST: ``digits`` (default 1, 9) and
    ``mnist_path`` (full MNIST); sklearn-digits: ``digits``; npz: ``data_file`` (``qrobust.data.npz``)."""
    check_data_options(name, mnist_path=mnist_path, n_train_per_class=n_train_per_class, n_qubits=n_qubits,
                       gauge=gauge, digits=digits, data_file=data_file, grid=grid)
    kwargs = {} if n_train_per_class is None else {"n_train_per_class": n_train_per_class}
    if digits is not None:
        kwargs["digits"] = tuple(digits)
    if name == "mnist":
        return mnist_from_file(mnist_path, **kwargs) if mnist_path else mnist_embedded(**kwargs)
    if name == "sklearn-digits":
        from qrobust.data.digits import sklearn_digits

        return sklearn_digits(**kwargs)
    if name == "npz":
        from qrobust.data.npz import npz_dataset

        return npz_dataset(data_file, **kwargs)
    ds = phase_dataset(name, 12 if n_qubits is None else n_qubits, grid, gauge=gauge or DEFAULT_GAUGE,
                       gauge_seed=gauge_seed)
    if n_train_per_class is not None:
        import numpy as np

        have = min(ds.class_counts)
        if n_train_per_class > have:
            raise ConfigError(f"{n_train_per_class} training samples per class asked; the grid gives {have}")
        keep = np.concatenate([np.flatnonzero(ds.y_train == c)[:n_train_per_class] for c in (0, 1)])
        ds = replace(ds, x_train=ds.x_train[keep], y_train=ds.y_train[keep])
    return ds


def build_model(name: str, dataset: Dataset, settings: ModelSettings, *, dtype: str = "complex64",
                simulator: str | None = None, matmul_precision: str = "highest", forward_mode: bool = False,
                shot_gradient: str = "shift") -> Model:
    """The model ``name`` of the registry (``qrobust.models.registry``) for ``dataset``'s inputs: the QNN on its
    ansatz (``settings.ansatz``) in the dataset's encoding (``dataset.meta["encoding"]``), run by ``simulator``
    (None: the registry's choice; a named one that cannot run it is refused) at ``matmul_precision``; the MLP and
    a user's model on the same inputs. The QNN's shots and noise are its settings' (``shot_gradient``: how its
    gradient is estimated at finite shots, ``qrobust.models.shots``)."""
    return registry.build(name, dataset, settings, BuildOptions(dtype, simulator, matmul_precision, forward_mode,
                                                                shot_gradient))


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
