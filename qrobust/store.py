"""The results store of one run directory: a surface (docs/design.md), below the studies that write through it.

Layout:
  config.json       {"settings": ..., "study": ..., "versions": ..., "devices": ..., "created": ...}
  chunks/NAME.csv   one finished chunk each, written atomically (rename), last;
                    chunks/NAME.json what it holds (its name, rows and the digest of the
                    settings that made it), NAME.seconds its wall time, NAME.npz its arrays
  programs.json     how each program's model is built (for its stored weights: ``qrobust.load_results``)
  results.csv       all chunks merged: one row per replica per epoch
  .lock             held (``flock``) by the one process writing the directory (shared by claiming processes)
  claims/NAME.lock  the claim of chunk NAME by one of several processes started with --claim (``qrobust.leases``)
A directory whose config.json holds other settings is refused; one with the
same settings resumes, skipping the chunks already written. A second process
asked to write a directory another process is writing is refused at once, with
the writer's pid, before it reads or writes anything there; processes that all
claim chunks (``claiming``) share it, and a process that does not is refused
while they write it (and they while it does).
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import shutil
import socket
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from qrobust.errors import ConfigError, ResultsMismatchError
from qrobust.files import (WriterLock, atomic_write_npz, atomic_write_text, opening_leftover, outside, remove_leftovers,
                           unreadable, unwritable, write_atomic, write_error, write_new)
from qrobust.provenance import devices, versions

CHUNK_FORMAT = 2  # 2: every chunk has NAME.json naming the settings that made it (1: it has not)

log = logging.getLogger("qrobust")

def _diff(a, b, prefix=""):
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [f"{prefix[:-1]}: {a!r} here, {b!r} asked for"]


def _same_values(a: pd.Series, b: pd.Series) -> np.ndarray:
    """Element-wise equality of a stored column and a planned one: numbers to rounding (NaN equals NaN),
    anything else as text."""
    x, y = pd.to_numeric(a, errors="coerce"), pd.to_numeric(b, errors="coerce")
    if x.notna().sum() == a.notna().sum() and y.notna().sum() == b.notna().sum():
        return np.isclose(x.to_numpy(float), y.to_numpy(float), rtol=1e-9, atol=0.0, equal_nan=True)
    return a.astype(str).to_numpy() == b.astype(str).to_numpy()


class RunDirectory:
    """A run directory tied to one configuration (see module docstring)."""

    # settings that say what was asked, where another entry records what it gave ("simulators": the simulator
    # each program ran on): a resume may ask differently (the default now, where the run named one) as long as
    # what it gives is the same
    REQUESTS = ("simulator",)

    def __init__(self, path: str | Path, settings: dict, study: str | None = None, numerics: dict | None = None,
                 claiming: "Claiming | None" = None, merged_from: list | None = None):
        self.path = Path(path)
        self.merged_from = merged_from  # the runs ``qrobust merge`` made this directory of (recorded in config.json)
        self.study = study
        self.numerics = numerics
        self.claiming = claiming  # shared with other processes, chunk by chunk (``qrobust.leases``); None: alone
        self._adopt(json.loads(json.dumps(settings)))  # normalise tuples -> lists
        self.chunk_format = CHUNK_FORMAT

    def _adopt(self, settings: dict) -> None:
        self.settings = settings
        self.digest = hashlib.sha256(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    def check_place(self) -> None:
        """Refuse a place where no directory can be made or written."""
        if self.path.exists() and not self.path.is_dir():
            raise ResultsMismatchError(f"output path {self.path} exists and is not a directory")
        reason = unwritable(self.path)
        if reason is not None:
            raise ConfigError(f"cannot write the run directory {self.path}: {reason}")

    def check(self) -> None:
        """Refuse a directory made by other settings (without writing anything)."""
        self.check_place()
        if self.config_path.exists():
            try:
                config = json.loads(self.config_path.read_text())
                old = config["settings"]
                if not isinstance(old, dict):
                    raise TypeError(f"its settings are {type(old).__name__}, not a table")
            except (ValueError, KeyError, TypeError, OSError) as exc:
                raise ResultsMismatchError(f"{self.config_path} is not a qrobust configuration ({exc}); use "
                                           "another --out directory or delete it") from None
            diffs = _diff({k: v for k, v in old.items() if k not in self.REQUESTS},
                          {k: v for k, v in self.settings.items() if k not in self.REQUESTS})
            if diffs:
                raise ResultsMismatchError(
                    f"{self.path} holds results of a different configuration; use another --out "
                    "directory or delete it. Differences: " + "; ".join(diffs[:8])
                )
            self._check_numerics(config.get("numerics"))
            if config.get("merged_from"):
                raise ResultsMismatchError(f"{self.path} holds runs merged by qrobust merge, which is not run or "
                                           "resumed: run into another --out directory")
            self._adopt(old)  # the run's own settings (and their digest, which its chunks carry)
        elif self.path.exists() and any(not opening_leftover(p) for p in self.path.iterdir()):
            raise ResultsMismatchError(f"{self.path} is not empty and holds no qrobust config.json")

    def _check_numerics(self, recorded) -> None:
        """Refuse to resume under other numerics than the run's (``provenance.numerics``: JAX's version, 64-bit
        mode, PRNG, matmul precision, platform): its chunks would mix two random streams or arithmetics. A run
        made before numerics were recorded is resumed with a warning."""
        if self.numerics is None:
            return
        if not isinstance(recorded, dict):
            log.warning("%s was made before config.json recorded JAX's numerics: resumed under %s, unchecked",
                        self.path, self.numerics)
            return
        diffs = [d.replace(" asked for", " now") for d in _diff(recorded, self.numerics)]
        if diffs:
            raise ResultsMismatchError(
                f"{self.path} was made under other numerics, and resuming it would mix its chunks with chunks of "
                "another random stream or arithmetic: " + "; ".join(diffs) + ". Resume it under the same settings "
                "(JAX version, JAX_ENABLE_X64, jax_default_prng_impl, jax_threefry_partitionable, "
                "jax_default_matmul_precision, platform) or use another --out directory")

    @property
    def writer(self) -> bool:
        """Whether this process writes merged outputs (process 0 of a multi-host job; always otherwise)."""
        from qrobust.sharding import is_primary

        return is_primary()

    def open(self) -> "RunDirectory":
        """Take the directory for this process (``WriterLock``), then create it and write config.json (kept
        if it already matches). In a multi-host job every process checks the directory before any writes to it
        (so all see the same state and refuse alike), then process 0 creates it while the others wait; process
        0 holds the lock for the job."""
        from qrobust.sharding import barrier

        created = False
        if self.writer:
            self.check_place()
            try:
                self.path.mkdir(parents=True)
                created = True
            except FileExistsError:
                pass
            except OSError as exc:
                raise ConfigError(f"cannot write the run directory {self.path}: {exc.strerror or exc}") from None
            # refused: the directory is the other writer's, left alone
            self._lock = WriterLock.take(self.path, shared=self.claiming is not None)
            try:
                self._clean_leftovers()
                self.check()
            except BaseException:
                if created:
                    shutil.rmtree(self.path, ignore_errors=True)  # leave nothing behind
                raise
        else:
            self.check()
        barrier(f"qrobust-checked-{self.path}")
        if self.writer:
            try:  # config.json first: a run killed before it is written leaves only what opening_leftover names
                self.path.mkdir(parents=True, exist_ok=True)
                if not self.config_path.exists():
                    config = dict(settings=self.settings, versions=versions(), devices=devices(),
                                  created=time.strftime("%Y-%m-%dT%H:%M:%S%z"), chunk_format=CHUNK_FORMAT,
                                  **({"study": self.study} if self.study else {}),
                                  **({"numerics": self.numerics} if self.numerics else {}),
                                  **({"merged_from": self.merged_from} if self.merged_from else {}))
                    if not write_new(self.config_path, json.dumps(config, indent=2) + "\n"):
                        self.check()  # another claiming process wrote it first: its settings must be these
                (self.path / "chunks").mkdir(exist_ok=True)
                if self.claiming is not None:
                    self.claims_path.mkdir(exist_ok=True)
            except OSError as exc:
                if created and self.path.is_dir() and not self.config_path.exists():
                    shutil.rmtree(self.path, ignore_errors=True)  # leave nothing behind
                raise ConfigError(f"cannot write the run directory {self.path}: {exc.strerror or exc}") from None
        barrier(f"qrobust-open-{self.path}")
        self.chunk_format = json.loads(self.config_path.read_text()).get("chunk_format", 1)
        return self

    @property
    def chunk_sizes_path(self) -> Path:
        return self.path / "chunk_sizes.json"

    @property
    def claims_path(self) -> Path:
        return self.path / "claims"

    def claim_path(self, name: str) -> Path:
        """The lock of chunk ``name`` (``qrobust.leases``); "" names the lock of the directory's plan."""
        return self.claims_path / f"{name or '.plan'}.lock"

    def claim(self, name: str) -> "Lease | None":
        """Claim chunk ``name`` for this process (``leases.claim``): a lease, or None where a live process holds
        it."""
        from qrobust.leases import claim

        lease = claim(self.claim_path(name), self.claiming.lease_s)
        if lease is not None:  # what a holder killed while writing this chunk left
            remove_leftovers(self.path / "chunks")
        return lease

    def clear_stale_claims(self) -> None:
        """Remove the stale locks left in claims/ (``leases.take_over``): a holder killed after its chunk was
        stored, before it let go of the lock."""
        from qrobust.leases import take_over

        for path in sorted(self.claims_path.glob("*.lock")):
            take_over(path, self.claiming.lease_s)
        remove_leftovers(self.claims_path)

    def exclusive(self):
        """A context in which this process alone, of those claiming the directory's chunks, reads and writes its
        plan (chunk_sizes.json, programs.json), so the first to decide decides for all; alone, nothing to do."""
        if self.claiming is None:
            return contextlib.nullcontext()
        from qrobust.leases import hold

        return hold(self.claim_path(""), self.claiming.lease_s)

    def _clean_leftovers(self) -> None:
        """As the directory is opened, before anything in it is read: refuse a config.json, chunks/ or
        chunks/rejected that is a symbolic link out of the run directory (what it leads to would be read, or
        written, as this run's); then, in a qrobust run directory (one with a config.json, or only what opening
        one leaves), remove the temporary files of writers that are gone (killed while writing:
        ``files.remove_leftovers``) from it and from its chunks/."""
        for path in (self.config_path, self.path / "chunks", self.path / "chunks" / "rejected"):
            why = outside(path, self.path)
            if why is None and path == self.config_path and os.path.lexists(path) and not path.is_file():
                why = f"{path} is not a regular file"
            if why is not None:
                raise ResultsMismatchError(
                    f"{why}: qrobust reads and writes a run directory's own files only, and follows no link out of "
                    "it; put the file (or directory) itself there, or use another --out directory")
        if not self.path.is_dir() or not (self.config_path.is_file()
                                          or all(opening_leftover(p) for p in self.path.iterdir())):
            return  # not a run directory: check() refuses it, untouched
        removed = (remove_leftovers(self.path) + remove_leftovers(self.path / "chunks")
                   + remove_leftovers(self.claims_path))
        if removed:
            log.info("removed %d temporary file(s) of writers that were killed in %s: %s", len(removed), self.path,
                     ", ".join(removed))

    def _link_out(self, path: Path) -> str | None:
        """Why ``path`` must not be read as this run's (None: it may be): it is a link out of the run directory,
        or not a regular file (a FIFO would hang the reader)."""
        return unreadable(path, self.path) if os.path.lexists(path) else None

    def recorded_chunk_sizes(self) -> dict[str, int]:
        """Replicas per chunk of each program as this directory's run first chose them (chunk_sizes.json; not
        read through a link out of the run directory)."""
        if not os.path.lexists(self.chunk_sizes_path):
            return {}
        why = self._link_out(self.chunk_sizes_path)
        if why is not None:
            log.warning("%s is not read (%s): it is rebuilt from the stored chunks' records", self.chunk_sizes_path,
                        why)
            return {}
        try:
            return {k: int(v) for k, v in json.loads(self.chunk_sizes_path.read_text()).items()}
        except (ValueError, AttributeError, TypeError, OSError) as exc:  # the chunks' records still hold the plan
            log.warning("%s is not a table of chunk sizes (%s): it is rebuilt from the stored chunks' records",
                        self.chunk_sizes_path, type(exc).__name__)
            return {}

    def record_chunk_size(self, program: str, size: int) -> None:
        """Keep ``size`` for ``program``, so that a resumed run plans the same chunks on any machine."""
        if self.writer:
            sizes = dict(self.recorded_chunk_sizes(), **{program: int(size)})
            atomic_write_text(self.chunk_sizes_path, json.dumps(sizes, indent=2, sort_keys=True) + "\n")

    def chunk_sizes_in_records(self) -> dict[str, int]:
        """Replicas per chunk of each program, as the records of its stored chunks (of these settings) name
        them: the chunk plan, should chunk_sizes.json lose it."""
        sizes = {}
        for path in sorted((self.path / "chunks").glob("*.json")):
            if self._link_out(path) is not None:
                continue
            try:
                record = json.loads(path.read_text())
                program, size = record["chunk"].rsplit("-", 1)[0], record["chunk_size"]
            except (ValueError, KeyError, TypeError, AttributeError, OSError):
                continue
            if record.get("settings_digest") == self.digest and isinstance(size, int) and size > 0:
                sizes.setdefault(program, size)
        return sizes

    def has_chunks(self) -> bool:
        """Whether any chunk is stored (a run that was started)."""
        return any(self._link_out(p) is None for p in (self.path / "chunks").glob("*.csv"))

    def chunk_path(self, name: str) -> Path:
        return self.path / "chunks" / f"{name}.csv"

    CHUNK_FILES = (".csv", ".json", ".npz", ".seconds")  # a chunk's table, record, arrays and wall time

    def _chunk_link_out(self, name: str) -> str | None:
        """Why chunk ``name`` must not be read (None: it may be): one of its files is a link out of the run
        directory, or not a regular file."""
        return next((why for suffix in self.CHUNK_FILES
                     if (why := self._link_out(self.chunk_path(name).with_suffix(suffix))) is not None), None)

    def has_chunk(self, name: str) -> bool:
        """Whether chunk ``name`` is stored (its table is there, last). One with a file that is a link out of the
        run directory, or not a regular file, is not: it is set aside (``set_aside``, by the writer) and run
        again, nothing read through the link."""
        why = self._chunk_link_out(name)
        if why is not None:
            if self.writer:
                self.set_aside(name, why)
            return False
        return self.chunk_path(name).exists()

    def write_chunk(self, name: str, frame: pd.DataFrame, seconds: float | None = None,
                    arrays: dict | None = None, chunk_size: int | None = None) -> None:
        """Store a finished chunk: its table, its arrays (NAME.npz) and wall time (NAME.seconds).

        The table is written last, so its presence means the chunk is complete; before it, NAME.json
        records what the chunk holds (``check_chunk``). Each file is written atomically, never through a link
        (``files.write_atomic``); one that cannot be written (a full disk) raises ``files.StorageError`` with
        its temporary file removed and the chunk's table not written, so the chunk is run again on resume.
        """
        record = {"chunk": name, "rows": len(frame), "settings_digest": self.digest, "chunk_size": chunk_size}
        if self.claiming is not None:  # which of the processes sharing the directory trained it
            record["written_by"] = f"{socket.gethostname()} pid {os.getpid()}"
        if arrays:
            atomic_write_npz(self.chunk_path(name).with_suffix(".npz"), arrays)
        if seconds is not None:
            atomic_write_text(self.chunk_path(name).with_suffix(".seconds"), f"{seconds:.3f}\n")
        atomic_write_text(self.chunk_path(name).with_suffix(".json"), json.dumps(record) + "\n")
        atomic_write_text(self.chunk_path(name), frame.to_csv(index=False))

    def copy_chunk(self, source: "RunDirectory", name: str, new: str) -> None:
        """Store chunk ``name`` of the run ``source`` as this run's chunk ``new`` (``qrobust merge``): its files
        copied, its record renamed to this run's, naming where it came from; the table last."""
        record = json.loads(source.chunk_path(name).with_suffix(".json").read_text())
        record.update(chunk=new, settings_digest=self.digest, copied_from=f"{source.path}/chunks/{name}")
        for suffix in (".npz", ".seconds"):
            path = source.chunk_path(name).with_suffix(suffix)
            if path.exists():
                write_atomic(self.chunk_path(new).with_suffix(suffix), path.read_bytes())
        atomic_write_text(self.chunk_path(new).with_suffix(".json"), json.dumps(record) + "\n")
        write_atomic(self.chunk_path(new), source.chunk_path(name).read_bytes())

    def _record_mismatch(self, name: str, frame: pd.DataFrame) -> str | None:
        """Why chunk ``name``'s record (NAME.json) does not name this run's chunk ``name`` (None: it does)."""
        path = self.chunk_path(name).with_suffix(".json")
        try:
            record = json.loads(path.read_text())
        except FileNotFoundError:
            return f"it has no {path.name} naming the settings that made it"
        except (ValueError, UnicodeDecodeError, OSError) as exc:
            return f"its {path.name} does not parse ({type(exc).__name__})"
        if not isinstance(record, dict):
            return f"its {path.name} is not a record"
        if record.get("settings_digest") != self.digest:
            return (f"it was made by other settings (digest {record.get('settings_digest')!r}, this run's "
                    f"{self.digest!r})")
        if record.get("chunk") != name or record.get("rows") != len(frame):
            return f"its record names chunk {record.get('chunk')!r} of {record.get('rows')!r} rows"
        return None

    def check_stored(self, name: str) -> str | None:
        """Why the stored chunk ``name`` is not one of this run's (None: it is), where its planned rows are not
        known (``qrobust merge`` reading another run): its files lie inside the run directory, its table parses,
        its record names it, its rows and this run's settings, and its arrays load with one entry per replica."""
        why = self._chunk_link_out(name)
        if why is not None:
            return why
        try:
            frame = self.read_chunk(name)
            arrays = self.read_arrays(name)
        except (ValueError, UnicodeDecodeError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
            return f"it does not load ({type(exc).__name__}: {str(exc).strip()[:120]})"
        why = self._record_mismatch(name, frame) if self.chunk_format >= 2 else None
        if why is None and any(v.ndim == 0 or len(frame) % v.shape[0] for v in arrays.values()):
            why = f"its arrays do not hold one entry per replica of its {len(frame)} rows"
        return why

    def check_chunk(self, name: str, rows: pd.DataFrame) -> str | None:
        """Why the stored chunk ``name`` is not the chunk of replicas ``rows`` (None: it is). A chunk is
        trusted only if its record (NAME.json) names this chunk, its rows and the digest of this run's
        settings; its table parses, holds a whole number of rows per replica, and names exactly these
        replicas in this order in every column it shares with ``rows``; and its arrays (if any) load and
        hold one entry per replica. So a chunk copied from another run (even one whose grid is this run's,
        made with other epochs or data), cut short, damaged, or planned with other chunk sizes is never
        read as this one. A directory made before chunks had records (``chunk_format`` 1) is checked
        without them."""
        try:
            frame = self.read_chunk(name)
        except (ValueError, UnicodeDecodeError, OSError) as exc:  # pandas' parser errors are ValueErrors
            return f"its table does not parse ({type(exc).__name__}: {str(exc).strip()[:120]})"
        if self.chunk_format >= 2:
            why = self._record_mismatch(name, frame)
            if why is not None:
                return why
        common = [c for c in rows.columns if c in frame.columns]
        if frame.empty or not common:
            return "its table holds no replicas" if frame.empty else "its table has none of the grid's columns"
        if len(frame) % len(rows):
            return f"its table has {len(frame)} rows, not a whole number per each of its {len(rows)} replicas"
        expected = rows[common].loc[rows.index.repeat(len(frame) // len(rows))].reset_index(drop=True)
        got = frame[common].reset_index(drop=True)
        for column in common:
            same = _same_values(got[column], expected[column])
            if not same.all():
                i = int(np.argmax(~same))
                return (f"row {i} has {column} = {got[column].tolist()[i]!r} where the plan has "
                        f"{expected[column].tolist()[i]!r}")
        try:
            arrays = self.read_arrays(name)
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:  # cut short, damaged
            return f"its arrays do not load ({type(exc).__name__}: {str(exc).strip()[:120]})"
        short = {k: v.shape[:1] for k, v in arrays.items() if v.ndim == 0 or v.shape[0] != len(rows)}
        if short:
            return f"its arrays do not hold one entry per replica ({len(rows)}): {short}"
        return None

    def set_aside(self, name: str, reason: str) -> None:
        """Move the files of chunk ``name`` into chunks/rejected/ (kept for inspection), so it is run again; a
        link is moved as the link, never followed."""
        rejected = self.path / "chunks" / "rejected"
        why = outside(rejected, self.path)
        if why is not None:
            raise ResultsMismatchError(f"{why}: qrobust moves a run's rejected chunks into its own directory only; "
                                       "put a directory there, or remove it")
        try:
            rejected.mkdir(exist_ok=True)
            for path in self.chunk_path(name).parent.glob(f"{glob.escape(name)}.*"):
                os.replace(path, rejected / path.name)
        except OSError as exc:  # a full disk, say: one line, not a traceback
            raise write_error(rejected, None, exc) from None
        log.warning("chunk %s is not this run's and is run again (%s); its files are in %s",
                    self.chunk_path(name), reason, rejected)

    def _refuse_link_out(self, path: Path) -> None:
        why = self._link_out(path)
        if why is not None:
            raise ResultsMismatchError(f"{why}: qrobust reads no file of a run through a link out of its directory")

    def read_arrays(self, name: str) -> dict:
        """Chunk ``name``'s arrays (NAME.npz; none: {}), read without pickles, not through a link out of the run
        directory (``ResultsMismatchError``)."""
        path = self.chunk_path(name).with_suffix(".npz")
        self._refuse_link_out(path)
        if not path.exists():
            return {}
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}

    def chunk_seconds(self, name: str) -> float:
        path = self.chunk_path(name).with_suffix(".seconds")
        return float("nan") if self._link_out(path) is not None else read_seconds(path)

    def read_chunk(self, name: str) -> pd.DataFrame:
        """Chunk ``name``'s table, not through a link out of the run directory (``ResultsMismatchError``)."""
        path = self.chunk_path(name)
        self._refuse_link_out(path)
        return pd.read_csv(path)

    @property
    def programs_path(self) -> Path:
        return self.path / "programs.json"

    def record_programs(self, programs: dict[str, dict]) -> None:
        """Keep how each program's model is built (``study.Program.description``), by chunk-name prefix, so that
        ``qrobust.load_results`` rebuilds the model its stored weights belong to."""
        if not self.writer or not programs:
            return
        with self.exclusive():
            known = self.recorded_programs()
            if all(known.get(k) == v for k, v in programs.items()):
                return
            atomic_write_text(self.programs_path, json.dumps(dict(known, **programs), indent=2, sort_keys=True)
                              + "\n")

    def recorded_programs(self) -> dict[str, dict]:
        why = self._link_out(self.programs_path)
        if why is not None:  # rewritten (replacing the link) by record_programs
            log.warning("%s is not read (%s)", self.programs_path, why)
            return {}
        try:
            programs = json.loads(self.programs_path.read_text())
        except (OSError, ValueError):
            return {}
        return programs if isinstance(programs, dict) else {}

    def record_replicas(self, program: str, reused: int, trained: int, why_not: str | None, epochs: int) -> None:
        """Add to replicas.json how many of ``program``'s replicas were read back from the store of trained
        replicas (``qrobust.replicas``) and how many trained, the same in replica-epochs (each replica trains
        ``epochs``), and why none could be reused where none could."""
        if not self.writer:
            return
        path = self.path / "replicas.json"
        try:
            known = json.loads(path.read_text()) if self._link_out(path) is None else {}
        except (OSError, ValueError):
            known = {}
        known = known if isinstance(known, dict) else {}
        entry = known.get(program) if isinstance(known.get(program), dict) else {}
        entry = {"reused": int(entry.get("reused", 0)) + reused, "trained": int(entry.get("trained", 0)) + trained,
                 "reused_epochs": int(entry.get("reused_epochs", 0)) + reused * epochs,
                 "trained_epochs": int(entry.get("trained_epochs", 0)) + trained * epochs}
        if why_not:
            entry["not reusable"] = why_not
        known[program] = entry
        atomic_write_text(path, json.dumps(known, indent=2, sort_keys=True) + "\n")

    def write_table(self, filename: str, frame: pd.DataFrame) -> Path:
        """Write a merged table (process 0 only, in a multi-host job)."""
        path = self.path / filename
        if self.writer:
            atomic_write_text(path, frame.to_csv(index=False))
        return path


def read_seconds(path: Path) -> float:
    """A chunk's wall time from its ``NAME.seconds`` file; NaN where the file is missing or damaged (the time is
    unknown, the results are not affected)."""
    try:
        return float(Path(path).read_text())
    except (OSError, ValueError):
        return float("nan")
