"""qrobust's guard of JAX's compilation cache against programs JAX cannot load back (qrobust.compilation_cache)."""

import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest

from qrobust.compilation_cache import linking_objects

# n stages, each a kernel that calls sincosf (sin and cos of one argument) and a sort that breaks the fusion
CHAIN = """
def chain(x, n):
    for i in range(n):
        y = x * (1.0 + 1e-3 * i)
        x = jnp.sort(jnp.sin(y) + jnp.cos(y))
    return x
"""


def _serialized(f, *args) -> bytes:
    return jax.jit(f).lower(*args).compile().runtime_executable().serialize()


def _chain(n):
    scope = {"jnp": jnp}
    exec(CHAIN, scope)
    return lambda x: scope["chain"](x, n)


def test_linking_objects_counts_the_kernels_that_call_out():
    """A chain of n sin+cos stages compiles to n objects that call sincosf; a chain of sorts alone to none that
    call anything. Where binutils' nm is installed, it agrees object by object."""
    x = jnp.linspace(0.0, 1.0, 8)
    calling = _serialized(_chain(7), x)
    assert linking_objects(calling) == 7
    assert linking_objects(_serialized(lambda v: jnp.sort(jnp.sort(v * 2) * 3), x)) == 0
    assert linking_objects(b"no object here \x7fELF cut short") == 0
    if shutil.which("nm") is None:
        return
    starts = [i for i in range(len(calling)) if calling.startswith(b"\x7fELF", i)]
    by_nm = 0
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(calling)
        path = f"{os.environ.get('TMPDIR', '/tmp')}/qrobust-object-{os.getpid()}-{k}.o"
        with open(path, "wb") as fh:
            fh.write(calling[start:end])
        try:
            by_nm += bool(subprocess.run(["nm", "-u", path], capture_output=True, text=True).stdout.split())
        finally:
            os.remove(path)
    assert by_nm == 7


def _run(script: str, tmp_path, timeout=600) -> subprocess.CompletedProcess:
    env = dict(os.environ, QROBUST_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout)


def test_a_program_too_large_to_load_back_is_not_kept_and_an_old_one_is_removed_unread(tmp_path):
    """With the limit lowered to 5 linking objects: a 3-stage chain is cached and read back; a 9-stage one is
    compiled, not kept (an info line), and compiled again by the next process. An entry of 9 stages written while
    the limit allowed it (an older qrobust) is removed before JAX reads it, with one warning, and the program is
    compiled again."""
    script = CHAIN + """if True:
        import glob, logging, sys
        logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s: %(message)s")
        import qrobust.compilation_cache as cc
        from qrobust.cache import cache_dir
        from qrobust.compiles import count_compiles
        assert cc.use_compilation_cache()
        import jax, jax.numpy as jnp
        x = jnp.linspace(0.0, 1.0, 8)
        small, large = jax.jit(lambda v: chain(v, 3)), jax.jit(lambda v: chain(v, 9))
        entries = lambda: sorted(glob.glob(str(cache_dir() / "xla" / "jit__lambda*-cache")))
        cc.MAX_LINKING_OBJECTS = 5 if sys.argv[1] != "older" else 100
        for f in (small, large):
            f(x).block_until_ready()
        print("entries", len(entries()), file=sys.stderr, flush=True)
        cc.MAX_LINKING_OBJECTS = 5
        jax.clear_caches()
        print("--- reload ---", file=sys.stderr, flush=True)
        with count_compiles() as c:
            small(x).block_until_ready(); large(x).block_until_ready()
        print("compiled", c.as_dict()["compiled"], "entries", len(entries()), file=sys.stderr, flush=True)
    """
    fresh = _run(script.replace("sys.argv[1]", "'fresh'"), tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    first, again = fresh.stderr.split("--- reload ---\n")
    assert "entries 1" in first and first.count("is not kept in qrobust's compilation cache") == 1, fresh.stderr
    assert "compiled 1 entries 1" in again and "WARNING" not in again, fresh.stderr

    shutil.rmtree(tmp_path / "cache")
    older = _run(script.replace("sys.argv[1]", "'older'"), tmp_path)
    assert older.returncode == 0, older.stderr
    first, again = older.stderr.split("--- reload ---\n")
    assert "entries 2" in first and "not kept" not in first, older.stderr
    assert again.count("cannot load back without crashing") == 1, older.stderr
    assert "compiled 1 entries 1" in again, older.stderr


@pytest.mark.slow
def test_a_program_past_the_measured_limit_runs_again_in_a_second_process(tmp_path):
    """A chain of 1,100 linking objects: with JAX's cache alone a second process that loads it dies (SIGSEGV,
    jaxlib 0.10.2, docs/device.md); with qrobust's cache it is not kept, so the second process compiles it and
    both give the same numbers."""
    script = CHAIN + """if True:
        from qrobust.compilation_cache import use_compilation_cache
        assert use_compilation_cache()
        import jax, jax.numpy as jnp
        print(repr(float(jax.jit(lambda v: chain(v, 1100))(jnp.linspace(0.0, 1.0, 8)).sum())))
    """
    runs = [_run(script, tmp_path, timeout=900) for _ in range(2)]
    assert [r.returncode for r in runs] == [0, 0], runs[1].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout
