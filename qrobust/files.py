"""Writing files safely: the one helper every file qrobust writes goes through (``write_atomic``, and
``atomic_write`` for writers that need a file name), whether a directory can be made somewhere, the lock that
lets one process at a time write a run directory (``qrobust.store``), and the cleaning of what killed writers
left.

Every file is written to a temporary file beside it and renamed into place (never a partial file). The
temporary file is created new (``O_CREAT | O_EXCL | O_NOFOLLOW``) under an unpredictable name that names its
writer (``.NAME.tmp-HOST-PID-RANDOM``), and written through the descriptor that created it, so a symbolic
link planted at its name, or at any name qrobust will use, is never written through: the rename replaces a
link at the target's name rather than following it. A write that fails removes its temporary file and
raises ``StorageError`` (a full file system: ``NoSpaceError``, naming the file system and the bytes it
needed), which the command line prints in one line. ``remove_leftovers`` removes the temporary files of
writers that are gone (killed).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
import shutil
import socket
import stat
import time
import weakref
from pathlib import Path
from typing import Callable

from qrobust.errors import ConfigError, QrobustError, ResultsMismatchError

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; a second writer is not detected there
    fcntl = None

# this machine, in the names of temporary files: a shared directory (a cluster's cache) is written from several
HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
STALE_S = 24 * 3600  # a temporary file of another machine's writer this old is a leftover
_TMP = re.compile(r"^\..+\.tmp-(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-[0-9a-f]{8}$")
_OLD_TMP = (re.compile(r"^\..+\.tmp(?P<pid>\d+)(\.[^.]+)?$"),  # atomic_write's names before this one
            re.compile(r"^\..+\.(?P<pid>\d+)\.tmp\.npz$"))  # the caches' own names before
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))


class StorageError(QrobustError, OSError):
    """A file could not be written (a full file system, a quota, no permission), its temporary file removed.

    A QrobustError, so the command line prints it in one line (exit status 2); and an OSError, so code that
    handles a failed write (a cache's, ``RunDirectory.open``) handles it as before."""

    def __init__(self, message: str, path=None, code: int | None = None):
        super().__init__(message)
        self.message, self.strerror, self.errno = message, message, code
        self.filename = None if path is None else str(path)

    def __str__(self) -> str:
        return self.message


class NoSpaceError(StorageError):
    """The file system (or the user's quota on it) has no room for the file."""


def mount_point(path) -> tuple[Path, str]:
    """The mount point of the file system that holds ``path`` (or the nearest existing directory above it),
    and a description of that file system ("ext4 /dev/sda1"; empty where unknown)."""
    p = Path(os.path.realpath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    best, kind = None, ""
    try:  # Linux: the longest mount point above p (bind mounts of one device included)
        with open("/proc/self/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) < 3:
                    continue
                where = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[1]))
                if (where == p or where in p.parents) and (best is None or len(str(where)) >= len(str(best))):
                    best, kind = where, f"{fields[2]} {fields[0]}"
    except OSError:
        pass
    if best is None:  # elsewhere: climb while the device stays the same
        best = p
        try:
            device = os.stat(p).st_dev
            while best != best.parent and os.stat(best.parent).st_dev == device:
                best = best.parent
        except OSError:
            pass
    return best, kind


def write_error(path, needed: int | None, exc: OSError, *, partial: bool = False) -> StorageError:
    """The one-line error for writing ``needed`` bytes (None: unknown; ``partial``: at least that many, all
    that was written before the failure) to ``path`` that failed with ``exc``."""
    path = Path(path)
    if exc.errno in _FULL:
        where, kind = mount_point(path.parent)
        try:
            free = f"{shutil.disk_usage(where).free:,} bytes are free"
        except OSError:
            free = "its free space is unknown"
        what = "has no space left" if exc.errno == errno.ENOSPC else "is over your disk quota"
        need = ("needs more space" if needed is None else f"needs more than the {needed:,} bytes written before "
                "it filled" if partial else f"needs {needed:,} bytes")
        return NoSpaceError(
            f"the file system at {where}{f' ({kind})' if kind else ''} {what}: writing {path} {need}, "
            f"{free}. Free some space there (or write elsewhere) and run the same command again: what was "
            "finished is kept, and the file was not written", path, exc.errno)
    return StorageError(f"cannot write {path}: {exc.strerror or exc}", path, exc.errno)


def _temporary_name(path: Path) -> Path:
    """An unused-looking, unpredictable name beside ``path`` that names its writer (machine and process)."""
    return path.with_name(f".{path.name[:180]}.tmp-{HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def _discard(tmp: Path) -> None:
    try:
        if os.path.isdir(tmp) and not os.path.islink(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.unlink(tmp)
    except OSError:
        pass


def _write_all(fd: int, data: bytes, path: Path) -> None:
    """Write all of ``data`` to the descriptor ``fd`` (the temporary file of ``path``)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _write_temporary(path: Path, data: bytes, mode: int) -> Path:
    """A new temporary file beside ``path`` (never through a link, under a name no one can predict) holding
    ``data``, written through the descriptor that created it. Any failure removes it and raises
    ``StorageError`` naming ``path`` (``NoSpaceError`` for a full file system: the file system and the bytes)."""
    tmp = None
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC
        for _ in range(100):
            tmp = _temporary_name(path)
            try:
                fd = os.open(tmp, flags, mode)
                break
            except FileExistsError:
                tmp = None
        else:
            raise FileExistsError(errno.EEXIST, "no unused temporary name", str(path))
        try:
            _write_all(fd, data, path)
        finally:
            os.close(fd)
        return tmp
    except BaseException as exc:
        if tmp is not None:
            _discard(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise write_error(path, len(data), exc) from None
        raise


def _encoded(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else bytes(data)


def write_atomic(path, data: bytes | str, *, mode: int = 0o666) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` atomically: into a temporary file (``_write_temporary``), then
    renamed into place (which replaces a link at ``path``, never writes through it). ``mode`` (less the umask) is
    the new file's. Any failure removes the temporary file and raises ``StorageError`` (``NoSpaceError`` for a
    full file system: it names the file system and the bytes needed)."""
    path, data = Path(path), _encoded(data)
    tmp = _write_temporary(path, data, mode)
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        _discard(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise write_error(path, len(data), exc) from None
        raise


def write_new(path, data: bytes | str) -> bool:
    """Create ``path`` holding ``data`` unless it exists, atomically: the whole file is written to a temporary
    file (``_write_temporary``) then hard-linked to ``path``, which fails where ``path`` exists (on a shared file
    system too), so of processes racing to create it exactly one does and none reads a partial file. Returns
    whether this call created it."""
    path, data = Path(path), _encoded(data)
    tmp = _write_temporary(path, data, 0o666)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as exc:
        raise write_error(path, None, exc) from None
    finally:
        _discard(tmp)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` atomically (``write_atomic``)."""
    write_atomic(path, text)


def atomic_write_npz(path, arrays: dict, *, mode: int = 0o666) -> None:
    """Write ``arrays`` as an ``.npz`` archive (``np.savez``) atomically (``write_atomic``)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    write_atomic(path, buffer.getvalue(), mode=mode)


def atomic_write(path, write: Callable[[Path], object]) -> None:
    """``write(tmp)`` writes the file by name (for writers that want one: a figure's ``savefig`` reads the
    format from it), then it is renamed into ``path``. ``tmp`` has ``path``'s name, inside a directory made
    new for it beside ``path`` (``mkdir``, mode 0700: no one else can put a file or a link there), so the
    writer follows no planted link either. Failures as ``write_atomic``'s."""
    path = Path(path)
    private = None
    try:
        for _ in range(100):
            private = _temporary_name(path)
            try:
                os.mkdir(private, 0o700)
                break
            except FileExistsError:
                private = None
        else:
            raise FileExistsError(errno.EEXIST, "no unused temporary name", str(path))
        tmp = private / path.name
        write(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            written = None
            if private is not None:
                try:
                    written = os.stat(private / path.name, follow_symlinks=False).st_size
                except OSError:
                    pass
            _discard(private)
            raise write_error(path, written, exc, partial=True) from None
        if private is not None:
            _discard(private)
        raise
    _discard(private)


def is_temporary(name: str) -> bool:
    """Whether ``name`` is a temporary file's (or a by-name writer's directory) of ``write_atomic`` or of
    qrobust before it."""
    return bool(_TMP.match(name) or any(p.match(name) for p in _OLD_TMP))


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process
        return True
    return True


def writer_gone(name: str, mtime: float, now: float | None = None) -> bool:
    """Whether the writer named in a temporary name is gone: a process of this machine that is not alive,
    or (another machine's, whose processes cannot be seen from here) one whose file is a day old."""
    now = time.time() if now is None else now
    found = _TMP.match(name) or next((m for p in _OLD_TMP if (m := p.match(name))), None)
    if found is None:
        return False
    host = found.groupdict().get("host")
    if host in (None, HOST) and not process_alive(int(found.group("pid"))):
        return True
    return now - mtime > STALE_S


def remove_leftovers(directory) -> list[str]:
    """Remove from ``directory`` the temporary files (``is_temporary``) whose writers are gone
    (``writer_gone``: killed while writing); a link is removed, never followed. Returns their names."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        if not entry.name.startswith(".") or not is_temporary(entry.name):
            continue
        try:
            if not writer_gone(entry.name, entry.stat(follow_symlinks=False).st_mtime, now):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.name)
        except OSError:
            continue
    return removed


def outside(path, root) -> str | None:
    """Why reading ``path`` would leave the directory ``root`` (None: it would not): it, or a directory on the way
    to it, is a symbolic link that leads out of ``root``."""
    real, base = os.path.realpath(path), os.path.realpath(root)
    if real == base or os.path.commonpath([real, base]) == base:
        return None
    return f"{path} is a symbolic link out of {root} (to {real})"


def unreadable(path, root) -> str | None:
    """Why the file ``path`` of the directory ``root`` must not be read (None: it may be): it leads out of
    ``root`` (``outside``), or it is not a regular file (a FIFO would hang the reader, a device never end)."""
    why = outside(path, root)
    if why is None:
        try:
            if not stat.S_ISREG(os.stat(path).st_mode):
                why = f"{path} is not a regular file"
        except OSError:
            pass  # missing (a dangling link inside root): the reader says so
    return why


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
    name = path.name
    return name == WriterLock.NAME or (is_temporary(name) and name.startswith((".config.json.", ".config.tmp")))


class WriterLock:
    """An exclusive advisory lock (``flock``) on ``DIR/.lock``, so one process at a time writes a run directory.

    Taken when a study opens its directory and held while the ``RunDirectory`` (the study's run) lives; the
    operating system drops it when the process ends, however it ends (SIGKILL included), so no stale lock
    survives a crash. Re-entrant within a process. The lock file holds the writer's pid, for the message
    that refuses a second writer. It is opened without following a link (a link planted at its name is
    refused, so nothing it points to is created, truncated or locked) and must be a regular file. Where
    ``fcntl`` is missing (Windows) nothing is locked."""

    NAME = ".lock"
    _held: dict[str, list] = {}  # resolved directory -> [file descriptor, holders]

    def __init__(self, key: str):
        self.key = key

    @classmethod
    def take(cls, directory: Path, shared: bool = False) -> "WriterLock | None":
        """Take the lock of ``directory``; ``shared``: with other processes that take it shared (processes that
        claim its chunks one by one, ``qrobust.leases``), never with one that takes it alone."""
        if fcntl is None:
            return None
        key = str(Path(directory).resolve())
        if key in cls._held:
            cls._held[key][1] += 1
        else:
            path = Path(key) / cls.NAME
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | _NOFOLLOW | _CLOEXEC, 0o644)
            except OSError as exc:
                if os.path.islink(path):
                    raise ConfigError(f"{Path(directory) / cls.NAME} is a symbolic link (to {os.readlink(path)}): "
                                      "qrobust locks a file of its own and follows no link there; remove the link "
                                      "and run again") from None
                if exc.errno in _FULL:
                    raise write_error(path, None, exc) from None
                raise ConfigError(f"cannot write the run directory {directory}: {exc.strerror or exc}") from None
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                os.close(fd)
                raise ConfigError(f"{Path(directory) / cls.NAME} is not a regular file: qrobust locks a file of "
                                  "its own there; remove it and run again")
            try:
                fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
            except OSError:
                try:
                    holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                finally:
                    os.close(fd)
                if shared:
                    raise ResultsMismatchError(
                        f"{directory} is being written by a qrobust process that does not claim chunks (pid "
                        f"{holder}); wait for it to end, then start the processes with --claim again") from None
                if holder == "claiming":
                    raise ResultsMismatchError(
                        f"{directory} is being written by qrobust processes started with --claim; start this one "
                        "with --claim too to share their work, or wait for them to end") from None
                raise ResultsMismatchError(
                    f"{directory} is being written by another qrobust process (pid {holder}); wait for it to end "
                    "(then rerun to resume) or use another --out directory") from None
            try:
                os.ftruncate(fd, 0)
                os.write(fd, ("claiming\n" if shared else f"{os.getpid()}\n").encode())
            except OSError as exc:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
                raise write_error(path, len(f"{os.getpid()}\n"), exc) from None
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
