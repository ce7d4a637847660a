"""Running a replica table in resumable chunks of one compiled shape.

A replica table has one row per replica. Rows of one *program* (same model,
same objective: one compiled function) are split into equal-sized chunks; a
chunk is padded with repeats of its own rows (computed and discarded) to the
program's one shape, a multiple of the device count, so every chunk of a
program compiles once and splits evenly over devices. A
finished chunk is stored at once; a chunk already in the store is not run again.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import math
import sys
import time
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd

from qrobust import sharding
from qrobust.memory import replicas_that_fit
from qrobust.store import RunDirectory

log = logging.getLogger("qrobust")


def chunk_bounds(n: int, chunk_size: int) -> list[tuple[int, int]]:
    """Split n replicas into equal-sized chunks of at most chunk_size (the last may be shorter)."""
    n_chunks = math.ceil(n / chunk_size)
    size = math.ceil(n / n_chunks)
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def fitted_chunk_size(program: str, *, footprint: Callable[[int], int], n_replicas: int, cap: int,
                      store: RunDirectory | None, asked: int | None = None, legacy: int | None = None,
                      probe: bool = True) -> int:
    """Replicas per chunk of ``program`` (which has ``n_replicas`` rows in all).

    ``asked`` if given; else the size the run in ``store`` started with
    (chunk_sizes.json, or where that file lost it, the records of its stored
    chunks; ``legacy`` for a directory with chunks written before
    sizes were recorded: a run records its sizes before its first chunk); else as
    many as fit in memory, at most ``cap``, and recorded. What fits is read from
    the program that will run: ``footprint(r)`` is the bytes of the program
    compiled for r replicas on one device (``qrobust.memory.program_bytes``), asked
    for the chunk shape the plan would run (``min(cap, n_replicas)`` over the
    devices), so on one device the run reuses that compilation; only where it does
    not fit is a smaller shape compiled again. ``probe`` False: ``min(cap,
    n_replicas)`` without compiling (a program whose replicas the reproduction's
    plan has trained, on CPU, where the replicas are walked one by one). In a
    multi-host job process 0 decides, so every process plans the same chunks.
    """
    if asked is not None:
        log.info("%s: %d replicas per chunk (asked)", program, asked)
        return asked

    def decide() -> int:
        recorded = store.recorded_chunk_sizes() if store is not None else {}
        if program in recorded:
            log.info("%s: %d replicas per chunk (recorded when the run started)", program, recorded[program])
            return recorded[program]
        found = store.chunk_sizes_in_records().get(program) if store is not None else None
        if found is not None:  # chunk_sizes.json lost or damaged: the plan is in the stored chunks' records
            log.warning("%s: %d replicas per chunk, as its stored chunks record (not in %s)", program, found,
                        store.chunk_sizes_path.name)
            store.record_chunk_size(program, found)
            return found
        if legacy is not None and store is not None and not recorded and store.has_chunks():
            size, why = legacy, "a run started before sizes were recorded"
        elif not probe:
            size, why = min(cap, n_replicas), "its replicas planned: not probed"
        else:
            devices = sharding.device_count()
            shape = chunk_shape(n_replicas, min(cap, n_replicas))
            per_device = shape // devices
            per_replica = -(-footprint(per_device) // per_device)
            size = replicas_that_fit(per_replica, cap=shape)
            why = f"{per_replica / 2**20:.1f} MiB per replica, at most {cap}"
        log.info("%s: %d replicas per chunk (%s)", program, size, why)
        if store is not None:
            store.record_chunk_size(program, size)
        return size

    def decide_once() -> int:  # processes claiming chunks: the first to decide decides for all
        with store.exclusive() if store is not None else contextlib.nullcontext():
            return decide()

    return sharding.decided_by_primary(f"chunk-size-{program}", decide_once)


def chunk_shape(n_rows: int, chunk_size: int) -> int:
    """The replica axis of every chunk of a program of ``n_rows`` rows: its largest chunk, rounded up to a
    multiple of the device count."""
    devices = sharding.device_count()
    return -(-max(hi - lo for lo, hi in chunk_bounds(n_rows, chunk_size)) // devices) * devices


class Chunk(NamedTuple):
    program: str   # which compiled program runs it
    name: str      # file name in the store
    rows: pd.DataFrame  # the real replicas
    padded: pd.DataFrame  # rows padded to the program's chunk shape
    size: int = 0  # the replicas per chunk its program was planned with (kept in the chunk's record)


def plan_chunks(table: pd.DataFrame, program_column: str, chunk_size: Callable[[str, int], int],
                prefix: str = "", store: RunDirectory | None = None) -> list[Chunk]:
    """Chunks of every program in ``table`` (order of first appearance); ``chunk_size(program, n_rows)``.

    With ``store``, every chunk already stored under a planned name is checked against the plan
    (``RunDirectory.check_chunk``); one that is not this chunk (another run's, cut short, damaged, or of
    another chunk plan) is set aside with a logged warning and run again, never read as this one."""
    chunks = _plan(table, program_column, chunk_size, prefix)
    if store is not None:
        if store.writer:
            for chunk in chunks:
                if store.has_chunk(chunk.name):
                    reason = store.check_chunk(chunk.name, chunk.rows)
                    if reason is not None:
                        store.set_aside(chunk.name, reason)
        sharding.barrier(f"qrobust-checked-chunks-{prefix}")
    return chunks


def _plan(table: pd.DataFrame, program_column: str, chunk_size: Callable[[str, int], int],
          prefix: str) -> list[Chunk]:
    chunks = []
    for program in dict.fromkeys(table[program_column]):
        rows = table[table[program_column] == program].reset_index(drop=True)
        size = chunk_size(program, len(rows))
        bounds = chunk_bounds(len(rows), size)
        shape = chunk_shape(len(rows), size)
        for k, (lo, hi) in enumerate(bounds):
            part = rows.iloc[lo:hi].reset_index(drop=True)
            padded = part.iloc[np.arange(shape) % len(part)].reset_index(drop=True)
            chunks.append(Chunk(program, f"{prefix}{program}-{k:04d}", part, padded, size))
    return chunks


class ChunkResults(NamedTuple):
    frames: dict   # name -> tidy DataFrame (real replicas only)
    arrays: dict   # name -> {array name: array with a leading real-replica axis}
    seconds: dict  # name -> wall seconds of the chunk's run, compile included


def run_chunks(chunks: list[Chunk], run: Callable, store: RunDirectory | None,
               progress: "Progress | None" = None) -> ChunkResults:
    """Run every chunk not yet in ``store``, reading the finished ones back.

    ``run(chunk)`` returns the chunk's tidy frame, or (frame, {name: array}).
    With several processes (``qrobust.sharding``) each runs its share of the
    missing chunks; they need a shared ``store``, from which all read the results.
    """
    frames, arrays, seconds = {}, {}, {}
    todo = [c for c in chunks if store is None or not store.has_chunk(c.name)]
    if store is not None and store.claiming is not None:
        _run_claimed(todo, run, store, progress)
        todo = []
    if sharding.process_count() > 1:
        if store is None:
            raise ValueError("several processes need a shared run directory to exchange their chunks")
        sharding.barrier("qrobust-plan")  # everyone has seen the store before anyone writes to it
        todo = sharding.my_share(todo)
    for chunk in todo:
        frames[chunk.name], arrays[chunk.name], seconds[chunk.name] = _run_one(chunk, run, store, progress)
    sharding.barrier("qrobust-chunks-done")
    if store is not None:
        frames = {c.name: store.read_chunk(c.name) for c in chunks}
        arrays = {c.name: store.read_arrays(c.name) for c in chunks}
        seconds = {c.name: store.chunk_seconds(c.name) for c in chunks}
    return ChunkResults(frames, arrays, seconds)


def _run_one(chunk: Chunk, run: Callable, store: RunDirectory | None, progress: "Progress | None"):
    """Run ``chunk`` and store it: (its frame, its arrays, its wall seconds)."""
    if progress is not None:
        progress.step = len(chunk.rows)
    start = time.perf_counter()
    out = run(chunk)
    frame, arrays = out if isinstance(out, tuple) else (out, {})
    seconds = time.perf_counter() - start
    if store is not None:
        store.write_chunk(chunk.name, frame, seconds, arrays, chunk_size=chunk.size)
    return frame, arrays, seconds


def _run_claimed(todo: list[Chunk], run: Callable, store: RunDirectory, progress: "Progress | None") -> None:
    """Run chunks of ``todo`` shared with other processes (``--claim``, ``qrobust.leases``) until every one is
    stored: claim an unclaimed one, run it, store it, release it, go on. With nothing left to claim but chunks
    held by live processes, wait for them (looking again every ``leases.POLL_S``), taking over any whose holder
    dies: a study's later stages read them."""
    from qrobust import leases

    waiting = None
    while todo:
        for chunk in todo:
            lease = store.claim(chunk.name)
            if lease is None:
                continue
            with lease:
                if not store.has_chunk(chunk.name):  # not finished by another since this process looked
                    _run_one(chunk, run, store, progress)
        todo = [c for c in todo if not store.has_chunk(c.name)]
        if todo:
            held = ", ".join(f"{c.name} ({leases.held_by(store.claim_path(c.name))})" for c in todo[:4])
            if held != waiting:
                log.warning("nothing left to claim in %s: waiting for %d chunk(s) held by other processes: %s%s",
                            store.path, len(todo), held, ", ..." if len(todo) > 4 else "")
                waiting = held
            time.sleep(leases.POLL_S)
    store.clear_stale_claims()


LABEL: contextvars.ContextVar[str | None] = contextvars.ContextVar("qrobust_progress_label", default=None)


@contextlib.contextmanager
def progress_label(label: str):
    """Name the progress line of every study run inside (``reproduce`` names each part's)."""
    token = LABEL.set(label)
    try:
        yield
    finally:
        LABEL.reset(token)


class Progress:
    """One progress line a person can read: the study (or reproduction part), the replica-epochs it trains, what
    it does now ("compiling qnn", "training"), and the time left estimated from the replica-epochs done so far.
    Advanced by ``step`` replica-epochs per call (the engine's progress hook, between calls of a program)."""

    def __init__(self, total: int | None, enabled: bool, name: str = "qrobust"):
        """``total`` replica-epochs; None: shown from ``start(total)`` on (once the chunks are planned). The line
        is labelled ``name``, or the label ``progress_label`` set."""
        self.enabled, self.bar, self.step = enabled, None, 0
        self.name = LABEL.get() or name
        if total is not None:
            self.start(total)

    def start(self, total: int) -> None:
        if "IPython" in sys.modules:  # maybe a notebook: tqdm.auto picks its widget (and imports IPython)
            from tqdm.auto import tqdm
        else:  # a terminal: importing IPython only to find none would cost about a second
            from tqdm import tqdm

        self.bar = tqdm(total=total, unit=" replica-epochs", unit_scale=False, disable=not self.enabled,
                        smoothing=0.1, desc=self.name, dynamic_ncols=True,
                        bar_format="{desc}: {n:,}/{total:,} replica-epochs{postfix} [{elapsed} elapsed, {remaining} left]")
        self.bar.set_postfix_str("planning")

    @property
    def hook(self) -> "Progress":
        """The engine's progress hook (called from the host between the program's calls)."""
        return self

    def compiling(self, what: str) -> None:
        """A program is being compiled (or read from the compilation cache) before it trains."""
        if self.bar is not None:
            self.bar.set_postfix_str(f"compiling {what}")

    def __call__(self, epochs: int):
        """``epochs`` more epochs of the running chunk's ``step`` replicas are done."""
        if self.bar is not None:
            self.bar.set_postfix_str(f"training {self.step} replicas", refresh=False)
            self.bar.update(self.step * epochs)

    def discount(self, replica_epochs: int) -> None:
        """Take work found already done out of the total."""
        self.bar.total -= replica_epochs
        self.bar.refresh()

    def close(self):
        if self.bar is not None:
            self.bar.set_postfix_str("done", refresh=False)
            self.bar.close()
