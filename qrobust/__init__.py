"""qrobust: poisoning resilience and unlearning of quantum and classical classifiers, in JAX.

The curated public API, layer by layer (see DESIGN.md and the README).
"""

from qrobust.analysis import final_summary
from qrobust.corruption import CORRUPTIONS, Corrupted, corruption_count, flip_labels, randomize_features
from qrobust.data import Dataset, amplitude_encode, classical_view, mnist_embedded, mnist_from_file, xxz_dataset
from qrobust.engine import EvalData, TrainData, make_train_fn
from qrobust.errors import ConfigError, DataError, QrobustError, ResultsMismatchError
from qrobust.experiments import PAPER_DEFAULTS, SweepConfig, load_dataset, run_sweep
from qrobust.models import Model, mlp, qnn

__version__ = "0.1.0"

__all__ = [
    "Dataset", "amplitude_encode", "classical_view", "mnist_embedded", "mnist_from_file", "xxz_dataset",
    "CORRUPTIONS", "Corrupted", "corruption_count", "flip_labels", "randomize_features",
    "Model", "qnn", "mlp",
    "TrainData", "EvalData", "make_train_fn",
    "SweepConfig", "run_sweep", "load_dataset", "PAPER_DEFAULTS",
    "final_summary",
    "QrobustError", "ConfigError", "DataError", "ResultsMismatchError",
]
