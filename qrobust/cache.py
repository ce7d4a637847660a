"""Where qrobust keeps what it can recompute (ground states, the native kernel, compiled programs): one directory.

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


def use_compilation_cache() -> bool:
    """Turn on JAX's persistent compilation cache in the "xla" subdirectory of the cache, so a repeated study,
    in this process or another, compiles nothing; left alone where the user chose a cache of their own
    (``JAX_COMPILATION_CACHE_DIR``, or ``jax.config``), or set ``QROBUST_COMPILATION_CACHE=0``. Every study calls
    it as it starts (a global setting of JAX's, announced here and in the README). Returns whether qrobust's
    cache is the one in use."""
    import jax

    if os.environ.get("QROBUST_COMPILATION_CACHE", "1") == "0":
        return False
    ours = str(cache_dir() / "xla")
    chosen = os.environ.get("JAX_COMPILATION_CACHE_DIR") or jax.config.jax_compilation_cache_dir
    if chosen and chosen != ours:
        return False
    if chosen != ours:
        jax.config.update("jax_compilation_cache_dir", ours)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    return True
