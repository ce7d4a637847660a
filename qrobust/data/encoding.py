"""Amplitude encoding of classical vectors and the classical view of quantum states."""

from __future__ import annotations

import numpy as np

from qrobust.errors import DataError


def qubits_for_length(length: int) -> int:
    """Number of qubits n with 2**n == length; a clear error if length is not a power of two."""
    if length < 2 or (length & (length - 1)) != 0:
        raise DataError(
            f"an amplitude vector must have a power-of-two length (2, 4, 8, ...), got length {length}"
        )
    return int(length).bit_length() - 1


def amplitude_encode(x: np.ndarray, n_qubits: int | None = None) -> np.ndarray:
    """Amplitude-encode rows of ``x`` as normalised statevectors.

    Args:
      x: (N, F) real or complex features.
      n_qubits: pad each row with zeros to length 2**n_qubits. When None, F itself
        must be a power of two.

    Returns:
      (N, 2**n_qubits) array of unit L2 norm rows, float64 for real input and
      complex128 for complex input.

    Raises DataError if a row is all zeros, has non-finite values, or does not fit.
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise DataError(f"amplitude_encode expects a 2-D array (samples, features), got shape {x.shape}")
    n, f = x.shape
    if n_qubits is None:
        n_qubits = qubits_for_length(f)
    dim = 2**n_qubits
    if f > dim:
        raise DataError(f"{f} features do not fit in {n_qubits} qubits (at most {dim} amplitudes)")
    dtype = np.complex128 if np.iscomplexobj(x) else np.float64
    finite = np.isfinite(x)
    bad = ~finite.all(axis=1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        j = int(np.flatnonzero(~finite[i])[0])
        raise DataError(f"sample {i} has non-finite values ({x[i, j]} at feature {j}; {int(bad.sum())} such samples): "
                        "amplitudes must be finite numbers")
    out = np.zeros((n, dim), dtype=dtype)
    out[:, :f] = x
    with np.errstate(over="ignore", under="ignore"):
        norms = np.linalg.norm(out, axis=1)
    # a row whose sum of squares overflows (|v| ~ 1e155 and up) or underflows (~ 1e-155 and down) is first divided
    # by its largest component: the same unit vector, computed without leaving float64's range (other rows as before)
    unsafe = ~np.isfinite(norms) | (norms < _TINY_NORM)
    if unsafe.any():
        rows = out[unsafe]
        scale = np.maximum(np.abs(rows.real).max(axis=1), np.abs(rows.imag).max(axis=1))
        divisor = np.where(scale > 0, scale, 1)[:, None]
        if np.iscomplexobj(rows):  # part by part: a complex division could overflow on the way
            rows.real, rows.imag = rows.real / divisor, rows.imag / divisor
        else:
            rows = rows / divisor
        out[unsafe] = rows
        norms[unsafe] = np.where(scale > 0, np.linalg.norm(rows, axis=1), 0.0)
    zero = norms == 0
    if zero.any():
        raise DataError(
            f"sample {int(np.flatnonzero(zero)[0])} is all zeros and cannot be normalised "
            f"into a quantum state ({int(zero.sum())} such samples)"
        )
    return out / norms[:, None]


_TINY_NORM = 1e-140  # below it, squares of the components may have lost precision to underflow


def classical_view(x: np.ndarray) -> np.ndarray:
    """The classical model's input for statevectors ``x`` of shape (N, D).

    Real states are passed through unchanged (N, D); complex states become their
    real and imaginary parts side by side, (N, 2 D), as float.
    """
    x = np.asarray(x)
    if np.iscomplexobj(x):
        return np.concatenate([x.real, x.imag], axis=-1)
    return x
