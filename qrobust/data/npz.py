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

Nothing is read without a bound: the file must be a regular file of at most ``MAX_FILE_BYTES``; each array's
.npy header is read first, and its dtype, shape and size (at most ``MAX_SAMPLES`` rows of at most
2**``MAX_QUBITS`` features, the encoded states at most ``MAX_STATE_BYTES``) are checked before any array is
allocated; a member cut short or damaged is refused as such.
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import zipfile
import zlib
from pathlib import Path
from struct import error as struct_error
from typing import NamedTuple

import numpy as np

from qrobust import options
from qrobust.data.dataset import Dataset
from qrobust.data.encoding import amplitude_encode
from qrobust.errors import DataError

KEYS = ("x_train", "y_train", "x_val", "y_val")
MAX_QUBITS = options.MAX_QUBITS  # 20: 2**20 amplitudes per state
MAX_SAMPLES = 1_000_000  # rows of one array
MAX_FILE_BYTES = 2**32  # 4 GiB: the file itself (it is hashed whole)
MAX_STATE_BYTES = 2**30  # 1 GiB: the encoded states (x_train and x_val, float64 or complex128 amplitudes)
MAX_MEMBERS = 64  # entries of the zip archive (np.savez writes one per array: 4)
MAX_DIRECTORY_BYTES = 2**20  # the zip archive's central directory (a few hundred bytes for 4 arrays)
_COMPRESSIONS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflated"}  # np.savez, np.savez_compressed
_KINDS = "biufc"  # numbers: bool, signed and unsigned integers, floats, complex


class _Header(NamedTuple):
    """What a member's .npy header declares."""

    member: str
    shape: tuple[int, ...]
    dtype: np.dtype
    offset: int  # bytes of the magic string and header: the data start here

    @property
    def data_bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _described(mode: int) -> str:
    for test, what in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory")):
        if test(mode):
            return what
    return "not a regular file"


def _check_kind(path: Path, info: os.stat_result) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise DataError(f"data file {path} is a directory; give an .npz file with the keys {', '.join(KEYS)}")
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"data file {path} is {_described(info.st_mode)}, not a regular file: give an .npz file "
                        f"(np.savez) with the keys {', '.join(KEYS)}")
    if info.st_size > MAX_FILE_BYTES:
        raise DataError(f"data file {path} is {info.st_size / 2**30:.1f} GiB, more than the "
                        f"{MAX_FILE_BYTES / 2**30:.0f} GiB an .npz data file may be")


def _open(path: Path):
    """``path`` opened for reading, after checking (os.stat before opening, fstat of what was opened) that it is a
    regular file of at most ``MAX_FILE_BYTES``: a FIFO, a device or a directory is never read."""
    try:
        _check_kind(path, os.stat(path))
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"data file {path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read data file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:  # non-blocking: a FIFO put in the file's place since the check does not hang the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror or exc}") from None
    try:
        _check_kind(path, os.fstat(fd))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _digest(fh) -> str:
    fh.seek(0)
    h = hashlib.sha256()
    for block in iter(lambda: fh.read(2**22), b""):
        h.update(block)
    return h.hexdigest()


def _damaged(path: Path, member: str, exc: BaseException) -> DataError:
    text = str(exc) or type(exc).__name__
    return DataError(f"{path}: the array {member} is truncated or damaged ({text}); save the file again "
                     "(np.savez)")


def _members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by key (np.savez names an array's member KEY.npy), each exactly once."""
    found: dict[str, zipfile.ZipInfo] = {}
    for info in archive.infolist():
        key = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
        if key in found:
            raise DataError(f"{path}: the archive holds {key} twice; an .npz data file holds each of "
                            f"{', '.join(KEYS)} once")
        found[key] = info
    missing = [k for k in KEYS if k not in found]
    extra = [k for k in found if k not in KEYS]
    if missing or extra:
        raise DataError(f"{path}: " + "; ".join(
            part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"unknown {', '.join(extra[:8])}{' ...' if len(extra) > 8 else ''}" if extra else "")
            if part) + f" (an .npz data file holds exactly {', '.join(KEYS)})")
    return {k: found[k] for k in KEYS}


def _header(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> _Header:
    """The .npy header of member ``info``, read before its data (its dtype and the order of its size checked)."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise DataError(f"{path}: the array {name} is encrypted; save the file with np.savez")
    if info.compress_type not in _COMPRESSIONS:
        raise DataError(f"{path}: the array {name} is compressed with zip method {info.compress_type}; np.savez "
                        "and np.savez_compressed write stored or deflated arrays")
    try:
        with archive.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
            else:
                raise DataError(f"{path}: the array {name} is in .npy format {version[0]}.{version[1]}; numeric "
                                "arrays are written in 1.0 or 2.0 (np.savez)")
            offset = fp.tell()
    except DataError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as exc:
        raise _damaged(path, name, exc) from None
    except Exception as exc:  # numpy's header parser: ValueError, SyntaxError, tokenize.TokenError, TypeError ...
        raise DataError(f"{path}: the array {name} has no valid .npy header ({type(exc).__name__}: "
                        f"{str(exc)[:200]!r}); it is not an array np.savez wrote, or it is damaged") from None
    if any(not isinstance(d, int) or d < 0 for d in shape):
        raise DataError(f"{path}: the array {name} has no valid .npy header (shape {shape})")
    header = _Header(name, tuple(shape), dtype, offset)
    if dtype.hasobject:
        raise DataError(f"{path}: the array {name} holds Python objects (dtype {dtype}), which load only as Python "
                        "pickles; save plain numeric arrays")
    if any(d > MAX_SAMPLES * 2**MAX_QUBITS for d in shape) or header.data_bytes > MAX_FILE_BYTES * 4:
        raise DataError(f"{path}: the array {name} declares shape {shape} of {dtype}, "
                        f"{header.data_bytes / 2**30:,.1f} GiB, more than an .npz data file may hold")
    return header


def _check_lengths(path: Path, h: _Header, info: zipfile.ZipInfo) -> None:
    """The member holds what its header declares, no less (cut short) and no more."""
    expected = h.offset + h.data_bytes
    if info.file_size < expected:
        raise DataError(f"{path}: the array {h.member} is truncated: its header declares shape {h.shape} of "
                        f"{h.dtype}, {expected:,} bytes with the header, and the archive holds {info.file_size:,}")
    if info.file_size > expected:
        raise DataError(f"{path}: the array {h.member} is damaged: it holds {info.file_size - expected:,} bytes more "
                        f"than its header declares (shape {h.shape} of {h.dtype})")


def _check_headers(path: Path, h: dict[str, _Header]) -> None:
    """The arrays' dtypes, shapes and sizes, from their headers: nothing has been allocated yet. The sizes first
    (samples, features, the states they make), then how the arrays agree."""
    for part in ("x_train", "x_val"):
        x = h[part]
        if x.dtype.kind not in _KINDS:
            raise DataError(f"{path}: {part} has dtype {x.dtype}; features must be numbers")
        if len(x.shape) != 2 or x.shape[1] < 2:
            raise DataError(f"{path}: {part} has shape {x.shape}; expected (samples, features) with 2 or more "
                            "features")
        if x.shape[0] > MAX_SAMPLES:
            raise DataError(f"{path}: {part} has {x.shape[0]:,} samples, more than {MAX_SAMPLES:,}, the most an "
                            ".npz data file may hold")
        if x.shape[1] > 2**MAX_QUBITS:
            raise DataError(f"{path}: {x.shape[1]:,} features need more than {MAX_QUBITS} qubits (at most "
                            f"{2**MAX_QUBITS:,} features)")
    features = max(h["x_train"].shape[1], h["x_val"].shape[1])
    n_qubits = max(1, math.ceil(math.log2(features)))
    itemsize = 16 if "c" in (h["x_train"].dtype.kind, h["x_val"].dtype.kind) else 8
    rows = h["x_train"].shape[0] + h["x_val"].shape[0]
    need = rows * 2**n_qubits * itemsize
    if need > MAX_STATE_BYTES:
        raise DataError(f"{path}: {rows:,} samples of {2**n_qubits:,} amplitudes ({n_qubits} qubits) make "
                        f"{need / 2**30:,.1f} GiB of states, more than the {MAX_STATE_BYTES / 2**30:.0f} GiB an .npz "
                        "data file may make: give fewer samples or features")
    for part in ("train", "val"):
        x, y = h[f"x_{part}"], h[f"y_{part}"]
        if len(y.shape) != 1 or y.shape[0] != x.shape[0]:
            raise DataError(f"{path}: x_{part} has {x.shape[0]} rows but y_{part} has shape {y.shape}")
        if y.dtype.kind not in "biuf":
            raise DataError(f"{path}: y_{part} must hold integer labels 0 and 1, got dtype {y.dtype}")
    if h["x_train"].shape[1] != h["x_val"].shape[1]:
        raise DataError(f"{path}: x_train has {h['x_train'].shape[1]} features, x_val {h['x_val'].shape[1]}")
    if (h["x_train"].dtype.kind == "c") != (h["x_val"].dtype.kind == "c"):
        raise DataError(f"{path}: one of x_train and x_val is complex and the other real")


def _read(path: Path) -> tuple[dict[str, np.ndarray], str]:
    """The four arrays of ``path`` and the file's SHA-256."""
    with _open(path) as fh:
        magic = fh.read(6)
        if magic == b"\x93NUMPY":
            raise DataError(f"{path} holds one array (.npy), not an .npz archive with the keys {', '.join(KEYS)}")
        if not magic:
            raise DataError(f"cannot read {path} as an .npz file: it is empty")
        try:
            is_zip = zipfile.is_zipfile(fh)
            # the archive's end record, as zipfile reads it first: its entry count and directory size are bounded
            # before ZipFile reads the whole directory into memory
            end = zipfile._EndRecData(fh) if is_zip and hasattr(zipfile, "_EndRecData") else None
        except (OSError, ValueError, OverflowError, struct_error) as exc:
            raise DataError(f"cannot read {path} as an .npz file: {exc}") from None
        if not is_zip:
            raise DataError(f"cannot read {path} as an .npz file: it is not a zip archive, or one cut short (its "
                            "directory, at the end, is missing); np.savez writes one")
        if end is not None:
            entries, directory = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
            if entries > MAX_MEMBERS or directory > MAX_DIRECTORY_BYTES:
                raise DataError(f"{path}: the archive lists {entries:,} entries in {directory:,} bytes; an .npz data "
                                f"file holds exactly {', '.join(KEYS)}")
        try:
            archive = zipfile.ZipFile(fh)
        except (OSError, EOFError, zipfile.BadZipFile, zlib.error, ValueError, NotImplementedError,
                struct_error) as exc:
            raise DataError(f"cannot read {path} as an .npz file: {exc}") from None
        with archive:
            members = _members(path, archive)
            headers = {k: _header(path, archive, info) for k, info in members.items()}
            _check_headers(path, headers)
            for k, info in members.items():
                _check_lengths(path, headers[k], info)
            arrays = {}
            for k, info in members.items():  # sizes checked: now the data, each array its declared size
                try:
                    with archive.open(info) as fp:
                        arrays[k] = np.lib.format.read_array(fp, allow_pickle=False)
                        fp.read(1)  # at the member's end: its CRC is checked
                except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error, RuntimeError,
                        NotImplementedError) as exc:
                    raise _damaged(path, info.filename, exc) from None
        return arrays, _digest(fh)


def _check(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """What the headers cannot tell: the labels' values, the classes' sizes, the features' values."""
    for part in ("train", "val"):
        y = arrays[f"y_{part}"]
        if y.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                whole = np.isfinite(y) & (np.mod(y, 1) == 0)
            if not whole.all():
                raise DataError(f"{path}: y_{part} must hold integer labels 0 and 1, got dtype {y.dtype} with the "
                                f"value {y[~whole][0]}")
        values = set(np.unique(y).tolist())
        if not values <= {0, 1}:
            raise DataError(f"{path}: y_{part} holds labels {sorted(values - {0, 1})[:5]}; a binary task "
                            "needs labels 0 and 1")
    for cls in (0, 1):
        have = int((arrays["y_train"] == cls).sum())
        if have < 2:
            raise DataError(f"{path}: class {cls} has {have} training samples; at least 2 are needed")
    if not len(arrays["y_val"]):
        raise DataError(f"{path}: the validation set is empty")
    limit = np.finfo(np.float64).max
    for part in ("x_train", "x_val"):
        x = arrays[part]
        if x.dtype.kind in "fc" and x.dtype.itemsize > (16 if x.dtype.kind == "c" else 8):  # extended precision
            with np.errstate(invalid="ignore"):
                big = np.isfinite(x) & ((np.abs(x.real) > limit) | (np.abs(x.imag) > limit))
            if big.any():
                i, j = np.argwhere(big)[0]
                raise DataError(f"{path}: {part}: sample {i} has the value {x[i, j]} at feature {j}, beyond "
                                f"float64's range (|v| <= {limit:.3g}); scale the features")


def npz_dataset(path: str | Path, n_train_per_class: int | None = None) -> Dataset:
    """The task in ``path`` (keys and encoding: the module docstring); ``n_train_per_class`` keeps the first
    that many training samples of each class."""
    path = Path(path)
    arrays, digest = _read(path)
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
    return Dataset(name="npz", x_train=encoded[0], y_train=y_train, x_val=encoded[1],
                   y_val=arrays["y_val"].astype(np.int32), n_qubits=n_qubits,
                   meta=dict(source=str(path.resolve()), sha256=digest, n_features=int(x_train.shape[1]),
                             n_train=len(y_train), n_val=len(arrays["y_val"])))
