"""A user's own binary task from an ``.npz`` file (``np.savez``), amplitude-encoded like MNIST.

Keys (all four required, nothing else):
  x_train  (N, F) real or complex features (F > 1; a row is one sample)
  y_train  (N,)   labels, integers 0 or 1 (bool accepted)
  x_val    (M, F) the validation samples, the same F and kind (real or complex)
  y_val    (M,)   their labels
Each row is zero-padded to the next power of two, 2**n amplitudes (n qubits, at most ``MAX_QUBITS``), and
L2-normalised: quantum states given as unit vectors of length 2**n are taken as they are. Every class needs
at least 2 training samples. The file's SHA-256 is recorded in the dataset's metadata (config.json), so a
run says which file made its numbers. Every malformation is refused with a message naming it.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from qrobust.data.dataset import Dataset
from qrobust.data.encoding import amplitude_encode
from qrobust.errors import DataError

KEYS = ("x_train", "y_train", "x_val", "y_val")
MAX_QUBITS = 20


def _read(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        raise DataError(f"data file {path} does not exist")
    if path.is_dir():
        raise DataError(f"data file {path} is a directory; give an .npz file with the keys {', '.join(KEYS)}")
    try:
        with open(path, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    if magic == b"\x93NUMPY":
        raise DataError(f"{path} holds one array (.npy), not an .npz archive with the keys {', '.join(KEYS)}")
    if not zipfile.is_zipfile(path):
        raise DataError(f"cannot read {path} as an .npz file: it is not a zip archive (np.savez writes one)")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in KEYS if k not in z.files]
            extra = [k for k in z.files if k not in KEYS]
            if missing or extra:
                raise DataError(f"{path}: " + "; ".join(
                    part for part in (f"missing {', '.join(missing)}" if missing else "",
                                      f"unknown {', '.join(extra)}" if extra else "") if part)
                    + f" (an .npz data file holds exactly {', '.join(KEYS)})")
            return {k: np.asarray(z[k]) for k in KEYS}
    except DataError:
        raise
    except ValueError as exc:  # object arrays (pickles) are refused by allow_pickle=False
        raise DataError(f"{path}: an array needs Python pickles to load ({exc}); save plain numeric arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"cannot read {path} as an .npz file: {exc}") from None


def _check(path: Path, arrays: dict[str, np.ndarray]) -> None:
    for part in ("train", "val"):
        x, y = arrays[f"x_{part}"], arrays[f"y_{part}"]
        if x.dtype.kind not in "biufc":
            raise DataError(f"{path}: x_{part} has dtype {x.dtype}; features must be numbers")
        if x.ndim != 2 or x.shape[1] < 2:
            raise DataError(f"{path}: x_{part} has shape {x.shape}; expected (samples, features) with 2 or more "
                            "features")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path}: x_{part} has {len(x)} rows but y_{part} has shape {y.shape}")
        if y.dtype.kind not in "biu" and not (y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)):
            raise DataError(f"{path}: y_{part} must hold integer labels 0 and 1, got dtype {y.dtype}")
        values = set(np.unique(y).tolist())
        if not values <= {0, 1}:
            raise DataError(f"{path}: y_{part} holds labels {sorted(values - {0, 1})[:5]}; a binary task "
                            "needs labels 0 and 1")
    if arrays["x_train"].shape[1] != arrays["x_val"].shape[1]:
        raise DataError(f"{path}: x_train has {arrays['x_train'].shape[1]} features, x_val "
                        f"{arrays['x_val'].shape[1]}")
    if np.iscomplexobj(arrays["x_train"]) != np.iscomplexobj(arrays["x_val"]):
        raise DataError(f"{path}: one of x_train and x_val is complex and the other real")
    for cls in (0, 1):
        have = int((arrays["y_train"] == cls).sum())
        if have < 2:
            raise DataError(f"{path}: class {cls} has {have} training samples; at least 2 are needed")
    if not len(arrays["y_val"]):
        raise DataError(f"{path}: the validation set is empty")
    features = arrays["x_train"].shape[1]
    if features > 2**MAX_QUBITS:
        raise DataError(f"{path}: {features} features need more than {MAX_QUBITS} qubits")


def npz_dataset(path: str | Path, n_train_per_class: int | None = None) -> Dataset:
    """The task in ``path`` (keys and encoding: the module docstring); ``n_train_per_class`` keeps the first
    that many training samples of each class."""
    path = Path(path)
    arrays = _read(path)
    _check(path, arrays)
    n_qubits = max(1, int(np.ceil(np.log2(arrays["x_train"].shape[1]))))
    x_train, y_train = arrays["x_train"], arrays["y_train"].astype(np.int32)
    if n_train_per_class is not None:
        have = min(int((y_train == c).sum()) for c in (0, 1))
        if n_train_per_class > have:
            raise DataError(f"{path}: {n_train_per_class} training samples per class asked, a class has {have}")
        keep = np.sort(np.concatenate([np.flatnonzero(y_train == c)[:n_train_per_class] for c in (0, 1)]))
        x_train, y_train = x_train[keep], y_train[keep]
    encoded = []
    for part, x in (("x_train", x_train), ("x_val", arrays["x_val"])):
        try:
            encoded.append(amplitude_encode(x.astype(np.complex128 if np.iscomplexobj(x) else np.float64),
                                            n_qubits))
        except DataError as exc:
            raise DataError(f"{path}: {part}: {exc}") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Dataset(name="npz", x_train=encoded[0], y_train=y_train, x_val=encoded[1],
                   y_val=arrays["y_val"].astype(np.int32), n_qubits=n_qubits,
                   meta=dict(source=str(path.resolve()), sha256=digest, n_features=int(x_train.shape[1]),
                             n_train=len(y_train), n_val=len(arrays["y_val"])))
