"""Real datasets as plain arrays with their metadata."""

from qrobust.data.dataset import Dataset
from qrobust.data.encoding import amplitude_encode, classical_view, qubits_for_length
from qrobust.data.mnist import mnist_embedded, mnist_from_file, read_mnist_file
from qrobust.data.xxz import ground_state, ground_states, xxz_dataset

__all__ = [
    "Dataset", "amplitude_encode", "classical_view", "qubits_for_length",
    "mnist_embedded", "mnist_from_file", "read_mnist_file",
    "ground_state", "ground_states", "xxz_dataset",
]
