"""Writing files safely: atomic writes, whether a directory can be made somewhere, and the lock that lets
one process at a time write a run directory (``qrobust.store``)."""

from __future__ import annotations

import os
import weakref
from pathlib import Path
from typing import Callable

from qrobust.errors import ConfigError, ResultsMismatchError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second writer is not detected there
    fcntl = None


def atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` into a temporary file beside ``path`` (same suffix, so writers that read it keep the
    format), then rename it into place: never a partial file."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")
    write(tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` atomically (``atomic_write``)."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def unwritable(path: Path) -> str | None:
    """Why a directory cannot be made at ``path`` (None: it may be): the nearest existing place on the way
    is a file, or cannot be written."""
    above = next(p for p in (path, *Path(path).absolute().parents) if p.exists())
    if not above.is_dir():
        return f"{above} is not a directory"
    if not os.access(above, os.W_OK):
        return f"{above} cannot be written"
    return None


def opening_leftover(path: Path) -> bool:
    """Whether ``path`` is what opening a run directory leaves before config.json is in place (the lock, a
    temporary config.json of a process killed while writing it): such a directory is a new one."""
    return path.name == WriterLock.NAME or path.name.startswith(".config.tmp")


class WriterLock:
    """An exclusive advisory lock (``flock``) on ``DIR/.lock``, so one process at a time writes a run directory.

    Taken when a study opens its directory and held while the ``RunDirectory`` (the study's run) lives; the
    operating system drops it when the process ends, however it ends (SIGKILL included), so no stale lock
    survives a crash. Re-entrant within a process. The lock file holds the writer's pid, for the message
    that refuses a second writer. Where ``fcntl`` is missing (Windows) nothing is locked."""

    NAME = ".lock"
    _held: dict[str, list] = {}  # resolved directory -> [file descriptor, holders]

    def __init__(self, key: str):
        self.key = key

    @classmethod
    def take(cls, directory: Path) -> "WriterLock | None":
        if fcntl is None:
            return None
        key = str(Path(directory).resolve())
        if key in cls._held:
            cls._held[key][1] += 1
        else:
            path = Path(key) / cls.NAME
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise ConfigError(f"cannot write the run directory {directory}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise ResultsMismatchError(
                    f"{directory} is being written by another qrobust process (pid {holder}); wait for it to end "
                    "(then rerun to resume) or use another --out directory") from None
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            cls._held[key] = [fd, 1]
        lock = cls(key)
        weakref.finalize(lock, cls._release, key)
        return lock

    @classmethod
    def _release(cls, key: str) -> None:
        entry = cls._held.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del cls._held[key]
            fcntl.flock(entry[0], fcntl.LOCK_UN)
            os.close(entry[0])
