"""Claims on a run directory's chunks by independent processes (array jobs; docs/array_jobs.md).

Processes started on one ``--out`` directory with ``--claim`` (SLURM array tasks, preemptible machines: no
coordinator, no process knows the others) share its chunks through lock files on the shared file system, one per
chunk, ``claims/NAME.lock``:

- a process *claims* a chunk by creating its lock atomically: the lock's whole content (host, pid, time, a
  random token, the lease) is written to a temporary file that is then hard-linked to the lock's name
  (``link`` fails if the name exists: exactly one claimer wins, on NFS too), so no process ever reads a
  half-written lock;
- while it trains the chunk, a heartbeat thread touches the lock every quarter of the lease;
- a lock is *stale* when its holder is a process of this machine that is not alive, or when its heartbeat is
  older than the lease its holder recorded (another machine's process, which cannot be seen from here; the
  machines' clocks are assumed to agree to well within the lease, as NTP keeps them). A stale lock is taken
  over: under a second lock (``NAME.lock.break``, created as a lock is) the taker checks that the lock is still
  the same stale one (same token) and removes it, then claims the chunk as anyone would. A breaker left by a
  process killed in that instant is itself stale after the lease.
- a finished chunk's lock is removed once its table is written (``RunDirectory.write_chunk`` writes it last).

So a process dying at any moment loses only the chunk it held, which another process takes over once the lock is
stale. Should a holder that was only slow (its heartbeat thread starved for a whole lease) find its chunk taken
over, both train it; a chunk's files are a function of the settings and are each replaced atomically, so the
result is the same, only the work is done twice.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import NamedTuple

from qrobust.errors import ConfigError
from qrobust.files import process_alive, write_new

log = logging.getLogger("qrobust")

DEFAULT_LEASE_S = 300.0  # a holder's heartbeat older than this (seconds) marks its lock stale
MIN_LEASE_S = 1.0
POLL_S = 1.0  # how often a process with nothing left to claim looks again
HOST = socket.gethostname()


class Claiming(NamedTuple):
    """How a process shares a run directory's chunks with others (``--claim``): ``lease_s``, the seconds after
    which a holder's silent lock is taken over (its heartbeat beats every quarter of it)."""

    lease_s: float = DEFAULT_LEASE_S

    def check(self) -> "Claiming":
        if not (isinstance(self.lease_s, (int, float)) and math.isfinite(self.lease_s)
                and self.lease_s >= MIN_LEASE_S):
            raise ConfigError(f"--claim-lease must be a number of seconds of at least {MIN_LEASE_S:g}, got "
                              f"{self.lease_s!r}")
        return self


def _content(lease_s: float) -> dict:
    return dict(host=HOST, pid=os.getpid(), time=time.strftime("%Y-%m-%dT%H:%M:%S%z"), token=secrets.token_hex(8),
                lease_s=float(lease_s))


def holder(path: Path) -> dict | None:
    """What the lock at ``path`` records (None: no lock there). A lock that does not parse is recorded as {} (its
    age alone can make it stale)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        found = json.loads(text)
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def why_stale(path: Path, lease_s: float, now: float | None = None) -> str | None:
    """Why the lock at ``path`` is stale (None: it is held, or gone): its holder is a dead process of this
    machine, or its heartbeat is older than the holder's lease (``lease_s`` where it recorded none)."""
    record = holder(path)
    try:
        age = (time.time() if now is None else now) - os.stat(path).st_mtime
    except FileNotFoundError:
        return None
    if record is None:
        return None
    pid = record.get("pid")
    if record.get("host") == HOST and isinstance(pid, int) and not process_alive(pid):
        return f"its holder, process {pid} of this machine, is not alive"
    lease = record.get("lease_s", lease_s)
    lease = lease if isinstance(lease, (int, float)) and lease > 0 else lease_s
    if age > lease:
        return f"its holder ({record.get('host', '?')} pid {record.get('pid', '?')}) sent no heartbeat for {age:.0f} s"
    return None


def _create(path: Path, record: dict) -> bool:
    """Create the lock ``path`` holding ``record``, atomically (``files.write_new``): False where it exists."""
    return write_new(path, json.dumps(record) + "\n")


def _remove_if(path: Path, token: str | None) -> bool:
    """Remove the lock ``path`` if it is still the one whose token is ``token``."""
    record = holder(path)
    if record is None or record.get("token") != token:
        return False
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def take_over(path: Path, lease_s: float) -> None:
    """Remove the lock ``path`` if it is stale, under its breaker lock, so that two processes that both found it
    stale cannot both remove it (the second would remove the first one's new claim)."""
    why = why_stale(path, lease_s)
    if why is None:
        return
    breaker, mine = path.with_name(path.name + ".break"), _content(lease_s)
    if not _create(breaker, mine):
        if why_stale(breaker, lease_s) is None:  # another process is taking it over
            return
        _remove_if(breaker, (holder(breaker) or {}).get("token"))  # a taker killed while it broke the lock
        if not _create(breaker, mine):
            return
    try:
        record = holder(path)
        if record is not None and why_stale(path, lease_s) is not None and _remove_if(path, record.get("token")):
            log.warning("took over %s: %s", path, why)
    finally:
        _remove_if(breaker, mine["token"])


class Lease:
    """A claimed lock, kept alive by a heartbeat thread until ``release``."""

    def __init__(self, path: Path, record: dict):
        self.path, self.token, self.lease_s = path, record["token"], record["lease_s"]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"qrobust-heartbeat-{path.name}", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.lease_s / 4):
            if (holder(self.path) or {}).get("token") != self.token:
                log.warning("%s was taken over by another process while this one (pid %d) held it: the chunk may be "
                            "trained twice (the same result)", self.path, os.getpid())
                return
            try:
                os.utime(self.path)
            except OSError:
                pass

    def release(self) -> None:
        self._stop.set()
        self._thread.join()
        _remove_if(self.path, self.token)

    def __enter__(self) -> "Lease":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def claim(path: Path, lease_s: float = DEFAULT_LEASE_S) -> Lease | None:
    """Claim the lock ``path`` (taking it over where it is stale): a ``Lease``, or None where a live process
    holds it."""
    path = Path(path)
    if os.path.lexists(path):  # held: only read (no file is written for a lock that stays held)
        take_over(path, lease_s)
        if os.path.lexists(path):
            return None
    record = _content(lease_s)
    return Lease(path, record) if _create(path, record) else None


def hold(path: Path, lease_s: float = DEFAULT_LEASE_S, poll_s: float = 0.05) -> Lease:
    """Claim the lock ``path``, waiting (polling every ``poll_s``) while a live process holds it."""
    while True:
        lease = claim(path, lease_s)
        if lease is not None:
            return lease
        time.sleep(poll_s)


def held_by(path: Path) -> str:
    """Who holds the lock ``path``, in words."""
    record = holder(path) or {}
    return f"{record.get('host', '?')} pid {record.get('pid', '?')} since {record.get('time', '?')}"
