"""Where qrobust keeps what it can recompute (ground states, the native kernel, compiled programs): one directory.

``$QROBUST_CACHE`` names it; unset (or empty), ``$XDG_CACHE_HOME/qrobust``, else
``~/.cache/qrobust`` (the older ``$QROBUST_CACHE_DIR`` is still read where
``$QROBUST_CACHE`` is unset). Each user of the cache writes into its own subdirectory
("phases", "mnist", "native", "xla"), atomically, so concurrent processes and several machines
sharing one directory are safe.

Nothing in the cache is trusted unverified. Arrays (``store_arrays``/``load_arrays``: the ground states, the
parsed MNIST digits) are kept with a SHA-256 digest of their names, dtypes, shapes and bytes and of the entry's
name (its key), and read only if it matches, only if this user made them (``untrusted``) and not through a link
out of the cache; anything else is recomputed with one logged warning. The native kernel's library carries its
own digest (``qrobust.models.native``). JAX's compiled programs (the "xla" subdirectory) are guarded by
``qrobust.compilation_cache``. A write that fails (a full disk, say) costs only the recomputation next time,
with one warning, and leaves no temporary file; temporary files of killed writers are removed when a directory
of the cache is next written (``qrobust.files.remove_leftovers``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import zipfile
from pathlib import Path

from qrobust.files import atomic_write_npz, outside, remove_leftovers, unreadable

log = logging.getLogger("qrobust")
DIGEST = "__qrobust_sha256__"  # the array of an entry that holds the digest of the others

VARIABLE = "QROBUST_CACHE"
LEGACY_VARIABLE = "QROBUST_CACHE_DIR"  # the ground-state cache's variable before there was one for all


def cache_dir() -> Path:
    """The cache directory: $QROBUST_CACHE, else $XDG_CACHE_HOME/qrobust, else ~/.cache/qrobust.

    The old ``$QROBUST_CACHE_DIR`` is still read, but only where ``$QROBUST_CACHE`` is unset, so that
    existing setups keep their cache. The directory is not created here (a reader needs none).
    """
    for variable in (VARIABLE, LEGACY_VARIABLE):
        if os.environ.get(variable):
            return Path(os.environ[variable]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qrobust"


def untrusted(path: Path) -> str | None:
    """Why a file read from the cache must not be trusted (None: it may be): on POSIX, it or its directory
    belongs to another user or can be written by others, so someone else could have planted or replaced it
    (a cached library's constructor runs in the caller's process; cached data enters the results). Only
    what this user made, in a directory only this user can change, is used."""
    if os.name != "posix":
        return None
    uid = os.getuid()
    for p in (path, path.parent):
        st = p.stat()
        if st.st_uid != uid:
            return f"{p} belongs to another user (uid {st.st_uid})"
        if st.st_mode & 0o022:
            return f"{p} can be written by other users (mode {st.st_mode & 0o777:o})"
    return None


def _digest(arrays: dict, key: str) -> str:
    """SHA-256 of ``key`` (the entry's name) and of each array's name, dtype, shape and bytes, by name."""
    import numpy as np

    h = hashlib.sha256(f"qrobust-cache-entry\0{key}\0".encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _make_directory(directory: Path) -> None:
    """``directory`` and any missing directory above it, each new one writable by this user only (0755 less
    the umask), so that what is kept there can be trusted (``untrusted``)."""
    missing = []
    for p in (directory, *directory.parents):
        if p.is_dir():
            break
        missing.append(p)
    for p in reversed(missing):
        try:
            p.mkdir(mode=0o755)
        except FileExistsError:
            pass


def store_arrays(path: Path, arrays: dict, *, what: str) -> bool:
    """Keep ``arrays`` in the cache entry ``path`` (an ``.npz``), with the digest of their content (``_digest``,
    under the name ``DIGEST``), written atomically and never through a link (``qrobust.files.write_atomic``;
    not at all where a directory on the way is a link out of the cache), after removing the temporary files of
    killed writers from its directory. Where it cannot be written (a
    full disk, say: any OSError) nothing is left behind, one warning names ``what`` and the reason, and False
    is returned: it costs the recomputation next time, no more."""
    path = Path(path)
    why = outside(path.parent, cache_dir())
    if why is not None:  # a directory of the cache that is a link out of it: nothing is written there
        log.warning("%s is not kept in the cache: %s", what, why)
        return False
    try:
        _make_directory(path.parent)
        remove_leftovers(path.parent)
        atomic_write_npz(path, {**arrays, DIGEST: _digest_array(arrays, path.name)}, mode=0o644)
        return True
    except OSError as exc:  # qrobust.files.StorageError included
        log.warning("%s could not be kept in the cache (%s); it is computed again next time", what,
                    str(exc) or type(exc).__name__)
        return False


def _digest_array(arrays: dict, key: str):
    import numpy as np

    return np.array(_digest(arrays, key))


def load_arrays(path: Path, names, *, what: str) -> dict | None:
    """The arrays (``names`` among them) of the cache entry ``path``, or None where they must be computed:
    there is no entry; it was not made by this user (``untrusted``: silently, as another user's cache is
    expected); or, with one warning naming ``what`` and why, it is reached through a link out of the cache or
    is not a regular file, does not load, has no digest (written by qrobust before entries had one), or its
    digest is not that of its content (rewritten, damaged, or another entry's)."""
    import numpy as np

    path = Path(path)
    if not os.path.lexists(path):
        return None
    why = unreadable(path, cache_dir())
    if why is None:
        try:
            if untrusted(path) is not None:
                return None
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            recorded = arrays.pop(DIGEST, None)
            if recorded is None:
                why = "it has no digest of its content (written by an older qrobust)"
            elif recorded.shape != () or str(recorded) != _digest(arrays, path.name):
                why = "its content is not what was written (its digest does not match)"
            elif not set(names) <= set(arrays):
                why = f"it lacks {sorted(set(names) - set(arrays))}"
            else:
                return arrays
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            why = f"it does not load ({type(exc).__name__}: {str(exc)[:120]})"
    log.warning("the cached %s in %s is not used: %s; computed again", what, path, why)
    return None
