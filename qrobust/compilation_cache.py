"""JAX's persistent compilation cache, in the "xla" subdirectory of qrobust's cache, and its guard.

A study turns the cache on as it starts (``use_compilation_cache``), so that a repeated study, in this process or
another, compiles nothing. qrobust then stands between JAX and the files of that cache (never of a cache the user
chose):

- an entry JAX cannot read back (a write cut short by a full disk or a kill, garbage) is removed and compiled
  again, with one warning, instead of JAX warning about it on every run and never replacing it;
- a program that JAX could not load back without crashing the process is not kept, and one left by an older
  qrobust is removed unread (``loadable``).
"""

from __future__ import annotations

import functools
import logging
import os
import struct
from pathlib import Path

from qrobust.cache import cache_dir

log = logging.getLogger("qrobust")

_GUARDED: set[str] = set()  # the compilation caches qrobust turned on, whose entries it guards

# The most compiled objects that call out of themselves (an undefined symbol: sincosf, memcpy) a cached CPU program
# may hold and still load. Loading links each such object with LLVM's ORC, which recurses once per object on a
# worker thread's fixed-size stack (``ulimit -s`` does not change it) and kills the process with SIGSEGV beyond
# it. Measured with jaxlib 0.10.2 on x86-64 Linux (docs/device.md): a plain jitted chain of sort(sin + cos)
# stages, reloaded from the cache by a second process, loads at 900 such objects and crashes at 1,000, 1,050 and
# 1,100; MNIST's noisy QNN programs held 961 (loads) and 1,026 (crashes).
MAX_LINKING_OBJECTS = 900
_BYTES_PER_OBJECT = 64  # fewer than any compressed object takes (measured: ~1.7 kB each): smaller entries not opened


def linking_objects(serialized: bytes) -> int:
    """How many of the ELF64 objects in ``serialized`` (a compiled CPU program) hold an undefined symbol."""
    count, start = 0, serialized.find(b"\x7fELF")
    while start >= 0:
        count += _links(serialized, start)
        start = serialized.find(b"\x7fELF", start + 1)
    return count


def _links(blob: bytes, at: int) -> bool:
    """Whether the ELF64 little-endian object at offset ``at`` of ``blob`` has a named undefined symbol (False for
    anything else that starts with the magic bytes)."""
    try:
        if blob[at + 4:at + 6] != b"\x02\x01":  # not ELFCLASS64, ELFDATA2LSB
            return False
        (shoff,) = struct.unpack_from("<Q", blob, at + 0x28)
        entsize, count = struct.unpack_from("<HH", blob, at + 0x3A)
        if entsize != 64:  # not an ELF64 section header
            return False
        for header in range(at + shoff, at + shoff + count * entsize, entsize):
            if struct.unpack_from("<I", blob, header + 4)[0] != 2:  # not SHT_SYMTAB
                continue
            offset, size = struct.unpack_from("<QQ", blob, header + 0x18)
            if struct.unpack_from("<Q", blob, header + 0x38)[0] != 24:  # not an ELF64 symbol table
                return False
            for symbol in range(at + offset + 24, min(at + offset + size, len(blob)), 24):  # the null symbol skipped
                name, index = struct.unpack_from("<I", blob, symbol)[0], struct.unpack_from("<H", blob, symbol + 6)[0]
                if index == 0 and name:
                    return True
    except struct.error:  # cut short: not a whole object
        return False
    return False


def loadable(entry: Path) -> bool:
    """Whether JAX can load the compilation-cache file ``entry`` back without crashing (``MAX_LINKING_OBJECTS``);
    True where it is small or cannot be read (JAX's own read decides then)."""
    try:
        if entry.stat().st_size < MAX_LINKING_OBJECTS * _BYTES_PER_OBJECT:
            return True
        from jax._src.compilation_cache import decompress_executable

        return linking_objects(decompress_executable(entry.read_bytes())) <= MAX_LINKING_OBJECTS
    except Exception:  # noqa: BLE001 - unreadable: JAX's read reports it
        return True


def _suffix() -> str:
    try:
        from jax._src.lru_cache import _CACHE_SUFFIX
    except ImportError:
        return "-cache"
    return _CACHE_SUFFIX


def _our_entry(cache_key: str) -> Path | None:
    """The file of ``cache_key`` in the compilation cache in use, if that cache is one qrobust turned on."""
    import jax

    where = str(jax.config.jax_compilation_cache_dir)
    return Path(where) / f"{cache_key}{_suffix()}" if where in _GUARDED else None


def _remove(entry: Path) -> None:
    for path in (entry, entry.with_name(entry.name.removesuffix(_suffix()) + "-atime")):
        try:
            path.unlink()
        except OSError:
            pass


def _guarded_read(read):
    @functools.wraps(read)
    def guarded(cache_key, *args, **kwargs):
        entry = _our_entry(cache_key)
        if entry is not None and not loadable(entry):
            _remove(entry)
            log.warning("a compiled program in qrobust's cache, %s, is one JAX cannot load back without crashing "
                        "(more than %d objects to link): it was removed, and the program is compiled again",
                        entry, MAX_LINKING_OBJECTS)
            return None, None
        try:
            return read(cache_key, *args, **kwargs)
        except Exception as exc:
            import jax

            if entry is None or not entry.is_file():
                raise
            _remove(entry)
            log.warning("a compiled program in qrobust's cache, %s, could not be read back (%s: %s): it was "
                        "removed, and the program is compiled and cached again", entry, type(exc).__name__,
                        str(exc)[:200])
            if getattr(jax.config, "jax_raise_persistent_cache_errors", False):
                raise
            return None, None

    return guarded


def _guarded_write(write):
    @functools.wraps(write)
    def kept(cache_key, *args, **kwargs):
        write(cache_key, *args, **kwargs)
        entry = _our_entry(cache_key)
        if entry is not None and not loadable(entry):
            _remove(entry)
            log.info("%s is not kept in qrobust's compilation cache: JAX could not load it back (more than %d "
                     "objects to link); it is compiled in each process", cache_key, MAX_LINKING_OBJECTS)

    return kept


def _guard_compiled_programs() -> None:
    """Wrap JAX's reader and writer of cache entries (``get_executable_and_time``, ``put_executable_and_time``),
    once per process; a JAX without them is left alone."""
    try:
        from jax._src import compilation_cache as jax_cache
    except ImportError:
        return
    read = getattr(jax_cache, "get_executable_and_time", None)
    if read is None or getattr(read, "_qrobust_guard", False):
        return
    jax_cache.get_executable_and_time = _guarded_read(read)
    jax_cache.get_executable_and_time._qrobust_guard = True
    write = getattr(jax_cache, "put_executable_and_time", None)
    if write is not None:
        jax_cache.put_executable_and_time = _guarded_write(write)


def use_compilation_cache() -> bool:
    """Turn on JAX's persistent compilation cache in the "xla" subdirectory of the cache, so a repeated study,
    in this process or another, compiles nothing; left alone where the user chose a cache of their own
    (``JAX_COMPILATION_CACHE_DIR``, or ``jax.config``), or set ``QROBUST_COMPILATION_CACHE=0``. Every study calls
    it as it starts (a global setting of JAX's, announced here and in the README). Its entries are guarded (the module's
    docstring). Returns whether qrobust's cache is the one in use."""
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
    _GUARDED.add(ours)
    _guard_compiled_programs()
    return True
