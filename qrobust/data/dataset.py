"""The dataset container shared by every experiment."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Dataset:
    """A binary classification task on quantum states.

    Attributes:
      name: "mnist" or "xxz" (or a user's name).
      x_train: (N, 2**n_qubits) unit-norm amplitude vectors, float64 or complex128.
      y_train: (N,) int labels in {0, 1} (clean).
      x_val: (M, 2**n_qubits) validation states.
      y_val: (M,) clean validation labels.
      n_qubits: number of qubits of the amplitude encoding.
      meta: provenance (source, digits, grid, ...), JSON-serialisable.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    n_qubits: int
    meta: dict = field(default_factory=dict)

    @property
    def is_complex(self) -> bool:
        """Whether the states have complex amplitudes (then noise is complex too)."""
        return bool(np.iscomplexobj(self.x_train))

    @property
    def class_counts(self) -> tuple[int, int]:
        """Training samples in class 0 and class 1."""
        return int((self.y_train == 0).sum()), int((self.y_train == 1).sum())
