"""Where qrobust keeps what it can recompute (ground states, the native kernel): one directory for all.

``$QROBUST_CACHE`` names it; unset (or empty), ``$XDG_CACHE_HOME/qrobust``, else
``~/.cache/qrobust`` (the older ``$QROBUST_CACHE_DIR`` is still read where
``$QROBUST_CACHE`` is unset). Each user of the cache writes into its own subdirectory
("xxz", "native"), atomically, so concurrent processes and several machines
sharing one directory are safe.
"""

from __future__ import annotations

import os
from pathlib import Path

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
