"""scikit-learn's 8x8 digits (1,797 images, about 180 per digit, shipped with scikit-learn: no download) as a
binary task on 6 qubits: pixels/16 (64 values, 2**6 amplitudes), L2-normalised, the MNIST recipe.

Split: for each of the two digits, its images in scikit-learn's order; both classes cut to the smaller
count, the first half of each trains and the rest validates (about 90 + 90 per class).
"""

from __future__ import annotations

import numpy as np

from qrobust.data.dataset import Dataset
from qrobust.data.encoding import amplitude_encode
from qrobust.data.mnist import DEFAULT_DIGITS, check_digits
from qrobust.errors import ConfigError

DIGITS_QUBITS = 6  # 8 x 8 = 64 = 2**6 pixels


def sklearn_digits(digits=DEFAULT_DIGITS, n_train_per_class: int | None = None) -> Dataset:
    """Digit ``digits[0]`` (class 0) against ``digits[1]`` (class 1) from ``sklearn.datasets.load_digits``."""
    from sklearn.datasets import load_digits

    check_digits(digits)
    bunch = load_digits()
    images, labels = bunch.data, bunch.target
    per_digit = [np.flatnonzero(labels == d) for d in digits]
    n = min(len(i) for i in per_digit)
    n_train = n // 2 if n_train_per_class is None else n_train_per_class
    if not 1 <= n_train < n:
        raise ConfigError(f"scikit-learn's digits {digits[0]} and {digits[1]} have {n} images each to share "
                          f"between training and validation; {n_train} training images per class leave none")
    train = np.concatenate([i[:n_train] for i in per_digit])
    val = np.concatenate([i[n_train:n] for i in per_digit])
    y_train = np.repeat(np.arange(2, dtype=np.int32), n_train)
    y_val = np.repeat(np.arange(2, dtype=np.int32), n - n_train)
    encode = lambda rows: amplitude_encode(images[rows] / 16.0, DIGITS_QUBITS)  # noqa: E731
    return Dataset(name="sklearn-digits", x_train=encode(train), y_train=y_train, x_val=encode(val), y_val=y_val,
                   n_qubits=DIGITS_QUBITS,
                   meta=dict(source="sklearn.datasets.load_digits", digits=list(digits), n_train_per_class=n_train,
                             n_val_per_class=n - n_train))
