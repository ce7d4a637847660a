"""Counting what a piece of work compiles: ``with count_compiles() as count: ...``.

JAX reports every compilation through ``jax.monitoring``: tracing, lowering and XLA's compile of each program,
and the persistent compilation cache's hits (a program read back instead of compiled). ``count_compiles``
listens while its block runs (one listener for the process, forwarding to the counters open now), so a study or
a reproduction part can say how many programs it compiled and what that cost, and a repeated one that it read
them all from the cache.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field

_COMPILE = "/jax/core/compile/backend_compile_duration"
_STAGES = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration", _COMPILE)
_HIT = "/jax/compilation_cache/cache_hits"
_RETRIEVAL = "/jax/compilation_cache/cache_retrieval_time_sec"


@dataclass
class Compiles:
    """What a block compiled: ``compiled`` programs compiled by XLA, ``from_cache`` read back from the persistent
    cache, and the seconds spent tracing, lowering and compiling (``seconds``) and reading the cache."""

    requests: int = 0  # XLA compile requests: a cache hit is one too (JAX times its retrieval as a compile)
    from_cache: int = 0
    seconds: float = 0.0
    by_stage: dict = field(default_factory=dict)

    @property
    def compiled(self) -> int:
        return max(0, self.requests - self.from_cache)

    def as_dict(self) -> dict:
        return dict(compiled=self.compiled, from_cache=self.from_cache, seconds=round(self.seconds, 1))


_open: list[Compiles] = []
_lock = threading.Lock()
_listening = False


def _on_duration(event: str, duration: float, **_) -> None:
    if event in _STAGES or event == _RETRIEVAL:
        with _lock:
            for c in _open:
                c.seconds += duration
                c.by_stage[event] = c.by_stage.get(event, 0.0) + duration
                if event == _COMPILE:
                    c.requests += 1


def _on_event(event: str, **_) -> None:
    if event == _HIT:
        with _lock:
            for c in _open:
                c.from_cache += 1


@contextlib.contextmanager
def count_compiles():
    """A ``Compiles`` filled in while the block runs (blocks may nest: each counts what ran inside it)."""
    global _listening
    from jax import monitoring

    with _lock:
        if not _listening:
            monitoring.register_event_duration_secs_listener(_on_duration)
            monitoring.register_event_listener(_on_event)
            _listening = True
        counter = Compiles()
        _open.append(counter)
    try:
        yield counter
    finally:
        with _lock:
            _open.remove(counter)
