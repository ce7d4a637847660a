"""Classical features for the encodings that load data in the circuit ("angle", "reupload").

``feature_dataset(dataset, n_features)``: the first ``n_features`` principal components of the inputs
(the classical view: real and imaginary parts side by side for complex states), fitted on the training
set only (scikit-learn's PCA, centred, not whitened), each component scaled to [0, pi] by the training
set's minimum and maximum (validation values outside that range are clipped to it): the rotation angles
RY / RX load. The MLP of the same run gets the same features, so the twin comparison stays fair.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from qrobust.data.dataset import Dataset
from qrobust.data.encoding import classical_view
from qrobust.errors import ConfigError

ENCODINGS = ("amplitude", "angle", "reupload")


def feature_dataset(dataset: Dataset, n_features: int, encoding: str = "angle") -> Dataset:
    """``dataset`` with its inputs replaced by angle features (module docstring); ``n_qubits`` becomes
    ``n_features`` (one feature per qubit), ``meta`` records the encoding, the variance each component
    explains and the scaling."""
    from sklearn.decomposition import PCA

    x_train, x_val = classical_view(dataset.x_train), classical_view(dataset.x_val)
    if int(n_features) != n_features or not 1 <= n_features <= min(x_train.shape):
        raise ConfigError(f"{encoding} encoding needs 1 to {min(x_train.shape)} features (principal components of "
                          f"{x_train.shape[0]} training samples of {x_train.shape[1]} values), got {n_features}")
    pca = PCA(n_components=int(n_features), svd_solver="full").fit(x_train)
    f_train, f_val = pca.transform(x_train), pca.transform(x_val)
    lo, hi = f_train.min(axis=0), f_train.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)

    def scale(f):
        return np.pi * np.clip((f - lo) / span, 0.0, 1.0)

    meta = dict(dataset.meta, encoding=encoding, n_features=int(n_features),
                explained_variance=np.round(pca.explained_variance_ratio_, 6).tolist())
    return replace(dataset, x_train=scale(f_train), x_val=scale(f_val), n_qubits=int(n_features), meta=meta)


def encode(dataset: Dataset, encoding: str, n_features: int | None = None) -> Dataset:
    """The dataset as ``encoding`` reads it: itself for "amplitude"; angle features otherwise (``n_features``:
    default the dataset's qubits)."""
    if encoding not in ENCODINGS:
        raise ConfigError(f"unknown encoding {encoding!r}; choose from {', '.join(ENCODINGS)}")
    if encoding == "amplitude":
        return dataset
    return feature_dataset(dataset, dataset.n_qubits if n_features is None else n_features, encoding)
