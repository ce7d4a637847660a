"""The "native" QNN simulators: C++ statevector kernels called from JAX through the XLA FFI (CPU).

Two kernels share one library and the machinery of ``csrc/statevector.h``: ``csrc/hea.cc``, the paper's
hardware-efficient ansatz from its parameters (``hea_logits``, the built-in QNN's "native"), and
``csrc/gates.cc``, any circuit given as fused operations, 2x2 and 4x4 matrices and diagonals
(``gate_logits``, the "native-gates" simulator of ``qrobust.models.circuits``). What follows describes the
first; the second works the same way on its operations.

XLA runs the "blocks" simulator as a sequence of whole-batch operations, each a
pass over all the states in memory; its gradient is reverse mode through those
passes (about three times the work of a forward pass, with every intermediate
batch kept). The kernel in ``csrc/hea.cc`` instead simulates one state at a time
in two real planes of 2**L floats, which stay in the core's cache through all the
gates, applies each qubit's three rotations as one 2 x 2 gate (no dense blocks, so
the light cone costs nothing extra), and computes the parameter gradient by the
adjoint method from the final states its forward pass keeps (undo each gate on the
state and on the costate; a gate exp(-i t P / 2) contributes Im <lambda|P|psi>).
The states of a batch are shared among the cores.

Build. The kernel is compiled on first use with the system's C++ compiler
(``$CXX``, which may carry a launcher such as ``ccache g++``; else ``g++``) against
the FFI headers that jaxlib ships, with ``-march=native``, and cached in the
"native" subdirectory of qrobust's cache (``$QROBUST_CACHE``, default
``$XDG_CACHE_HOME/qrobust`` or ``~/.cache/qrobust``; ``qrobust.cache``). The
library's name is a hash of everything the binary depends on: the source, the
flags, the compiler (its path and its ``--version``), jaxlib's version, the
machine's architecture and the CPU's features (``-march=native`` compiles for
them), but not the host name, so the nodes of a cluster with one CPU model
share one build in a shared cache, and a node with other features builds its
own. Builders write to a private directory (``.build-HOST-PID-*``) and rename the
library into place, so concurrent processes are safe; the directories of builders
killed mid-build are removed by the next build. Where the cache cannot be written,
the kernel is built in a private temporary directory for this process instead (a
logged warning).

Failure. Whatever stops the kernel (no compiler, a failed compile, an unwritable
cache and temporary directory, a library that does not load) makes
``available()`` False and ``unavailable_reason()`` say why; the outcome is
remembered for the process, so nothing is retried at every ``qnn()`` call. Where
``qnn`` would have picked "native" by default it falls back to "blocks" and
logs the reason once (logger "qrobust", WARNING); asking for
``simulator="native"`` raises ``NativeUnavailable`` with the reason.

Threads. The kernel runs the batch on ``thread_count()`` threads at most: the
CPUs this process may run on (its affinity mask and a cgroup v2 CPU quota, which
C++'s ``hardware_concurrency`` ignores), or ``$QROBUST_THREADS``; and never more
than one per 2**16 amplitudes of the batch (a thread costs about as much to
start as a few thousand amplitudes to simulate). The count is fixed when a model
is built.

Errors. Each FFI handler validates the ranks and dimensions of all its buffers (and the operations of
``csrc/gates.cc``) before it reads any of them, and returns INVALID_ARGUMENT, naming the buffer and its shape,
where one is wrong. No C++ exception leaves a handler or a thread: one thrown in a thread of the batch
(``std::bad_alloc``, say) is recorded, every thread is joined, and the call fails with RESOURCE_EXHAUSTED (out of
memory) or INTERNAL; a thread the system will not start has its share of the batch run on the calling thread.
JAX raises these as its runtime error (``jax.errors.JaxRuntimeError``), and the process goes on.

Limits: complex64 states, float32 parameters (other real parameters are cast to
float32 and their gradients returned in their own dtype), the "hea" ansatz, the
CPU. Only the parameters are differentiable (differentiating with respect to the
input states raises), and only in reverse mode: forward mode (``jax.jvp``,
Hessians) needs the "blocks" simulator.
"""

from __future__ import annotations

import atexit
import ctypes
import enum
import functools
import hashlib
import logging
import os
import platform
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from qrobust.cache import cache_dir, untrusted
from qrobust.errors import ConfigError
from qrobust.files import HOST, process_alive
from qrobust.models import hea
from qrobust.models.base import Capabilities, SimOptions

CSRC = Path(__file__).with_name("csrc")
SOURCES = (CSRC / "hea.cc", CSRC / "gates.cc")  # one library; both include csrc/statevector.h
HEADERS = (CSRC / "statevector.h",)
# -fcx-limited-range: complex products as the textbook formula, not a library call checking for inf/NaN
# (the two-qubit operations of csrc/gates.cc multiply std::complex numbers; their matrices are finite)
FLAGS = ("-O3", "-march=native", "-fcx-limited-range", "-std=c++17", "-shared", "-fPIC", "-pthread")
MIN_QUBITS, MAX_QUBITS = 5, 20  # the kernel works on 32 amplitudes at a time
TARGETS = {"qrobust_hea_forward": "QrobustHeaForward", "qrobust_hea_forward_states": "QrobustHeaForwardStates",
           "qrobust_hea_backward": "QrobustHeaBackward",
           "qrobust_gates_forward": "QrobustGatesForward", "qrobust_gates_backward": "QrobustGatesBackward"}
THREADS_VARIABLE = "QROBUST_THREADS"
COMPILE_TIMEOUT_S = 600  # a hung compiler must not hang qnn(); the build takes seconds

log = logging.getLogger("qrobust")


class NativeUnavailable(ConfigError):
    """The native kernel cannot be built or loaded on this machine."""


class OpKind(enum.IntEnum):
    """The kind of an operation, the first entry of a row of ``gate_logits``'s ops.

    Mirrors the C++ enum ``OpKind`` of ``csrc/gates.cc`` (kSingle, kDiagonal, kTwoQubit, kPermutation), value for
    value; tests/test_native.py checks that the two agree.
    """

    SINGLE = 0  # the 2x2 matrix mats1[index] on qubit q1
    DIAGONAL = 1  # the diagonal diags[index] of 2**L phases on the whole state
    TWO_QUBIT = 2  # the 4x4 matrix mats2[index] on qubits (q1, q2)
    PERMUTATION = 3  # the permutation perms[index] of basis states


def _compiler() -> tuple[list[str], str, str]:
    """The compiler's command line ($CXX, else g++), its resolved path and its ``--version`` output."""
    spec = os.environ.get("CXX") or "g++"
    try:
        command = shlex.split(spec)
    except ValueError as error:
        raise NativeUnavailable(f"$CXX={spec!r} is not a command line ({error})") from None
    path = shutil.which(command[0]) if command else None
    if path is None:
        raise NativeUnavailable(f"the native simulator needs a C++ compiler; {spec!r} was not found "
                                "(set CXX, or use simulator='blocks')")
    try:
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, errors="replace", timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        raise NativeUnavailable(f"the C++ compiler {spec!r} ({path}) does not run: {error}") from None
    if done.returncode != 0:
        said = f": {done.stderr.strip()[-500:]}" if done.stderr.strip() else ""
        raise NativeUnavailable(f"the C++ compiler {spec!r} ({path}) does not work: '{spec} --version' exited "
                                f"with status {done.returncode}{said} (set CXX, or use simulator='blocks')")
    return command, path, done.stdout


def _cpu_features() -> str:
    """The CPU's instruction-set features, which -march=native compiles for (Linux: /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                name, _, value = line.partition(":")
                if name.strip() in ("flags", "Features"):  # x86, ARM
                    return " ".join(sorted(value.split()))
    except OSError:
        pass
    return platform.processor()


def _library_name(command: list[str], path: str, version: str) -> str:
    """The library's file name: a hash of all the build depends on (module docstring), not the host's name."""
    import jaxlib

    key = hashlib.sha256()
    sources = (f.read_bytes() for f in SOURCES + HEADERS)
    for part in (*sources, " ".join(FLAGS), " ".join(command), path, version, jaxlib.__version__,
                 platform.machine(), _cpu_features()):
        key.update(part if isinstance(part, bytes) else part.encode())
        key.update(b"\0")
    return f"kernels-{key.hexdigest()[:16]}.so"


def _compile(command: list[str], target: Path) -> None:
    """Compile the kernel into ``target``; NativeUnavailable with the compiler's message if that fails."""
    argv = [*command, *FLAGS, f"-I{jax.ffi.include_dir()}", *map(str, SOURCES), "-o", str(target)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=COMPILE_TIMEOUT_S)
    except (OSError, subprocess.SubprocessError) as error:
        raise NativeUnavailable(f"building the native simulator failed ({shlex.join(argv)}): {error}") from None
    if done.returncode != 0:
        raise NativeUnavailable(f"building the native simulator failed ({shlex.join(argv)}), exit status "
                                f"{done.returncode}:\n{done.stderr[-2000:]}")


def _build_private(command: list[str], name: str, cache_error: OSError | str) -> Path:
    """Build into a private temporary directory (removed at exit), for a cache that cannot be written or
    trusted."""
    private = Path(tempfile.mkdtemp(prefix="qrobust-native-"))
    atexit.register(shutil.rmtree, private, True)
    why = cache_error if isinstance(cache_error, str) else f"qrobust's cache cannot be written ({cache_error})"
    log.warning("%s; building the native simulator in %s for this process only (set QROBUST_CACHE to a "
                "directory of your own to keep it)", why, private)
    _compile(command, private / name)
    return private / name


def _build() -> Path:
    """The kernel's library: from the cache, else compiled into it (atomically), else into a private directory."""
    command, path, version = _compiler()
    name = _library_name(command, path, version)
    cached = cache_dir() / "native" / name
    try:
        if cached.is_file():
            doubt = untrusted(cached)
            if doubt is not None:
                return _build_private(command, name, f"the cached library is not loaded: {doubt}")
            damage = _content_mismatch(cached)
            if damage is None:
                return cached
            log.warning("the cached native library %s is not loaded (%s): building it again", cached, damage)
        cached.parent.mkdir(parents=True, exist_ok=True)
        doubt = untrusted(cached.parent)  # the native directory and the cache above it
        if doubt is not None:  # a library built there could be replaced by another user before it is loaded
            return _build_private(command, name, f"the cache is not private: {doubt}")
        _clean_builds(cached.parent)
        staging = Path(tempfile.mkdtemp(dir=cached.parent, prefix=f".build-{HOST}-{os.getpid()}-"))
    except OSError as error:
        return _build_private(command, name, error)
    try:
        _compile(command, staging / name)
        digest = _sha256(staging / name)
        os.replace(staging / name, cached)  # atomic: concurrent builders leave one whole library
        (staging / "sha256").write_text(digest + "\n")
        os.replace(staging / "sha256", _digest_path(cached))  # after the library: its digest vouches for it
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cached


_BUILD = re.compile(r"^\.build-(?:(?P<host>[0-9a-f]{8})-(?P<pid>\d+)-)?")


def _clean_builds(directory: Path) -> None:
    """Remove the build directories (``.build-HOST-PID-*``) that builders killed mid-build left in ``directory``:
    a builder of this machine that is no longer alive, or any build directory older than a build can last (twice
    the compiler's timeout: another machine's, whose processes cannot be seen from here, or one named before
    builders were). A live builder's directory is left alone; a link is never followed."""
    now = time.time()
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        found = _BUILD.match(entry.name)
        if found is None or not entry.is_dir(follow_symlinks=False):
            continue
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        gone = found.group("host") == HOST and not process_alive(int(found.group("pid")))
        if gone or age > 2 * COMPILE_TIMEOUT_S:
            shutil.rmtree(entry.path, ignore_errors=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _digest_path(library: Path) -> Path:
    return library.with_name(library.name + ".sha256")


def _content_mismatch(library: Path) -> str | None:
    """Why the cached ``library`` is not the one built there (None: it is): its content hash, recorded when it
    was built, is missing, not trusted, or not the library's."""
    recorded = _digest_path(library)
    if not recorded.is_file():
        return f"no record of its content hash ({recorded.name})"
    doubt = untrusted(recorded)
    if doubt is not None:
        return doubt
    if recorded.read_text().strip() != _sha256(library):
        return "its content is not what was built"
    return None


_registered: dict[str, ctypes.CDLL] = {}  # target -> its library, kept loaded: XLA holds pointers into it


def _register(library_path: Path) -> None:
    """Load the library and register its handlers with XLA, each target once per process: XLA's registry
    lasts the process, and a second registration of a name (another copy of the library) breaks JAX's CPU
    backend ("Duplicate FFI handler registration")."""
    try:
        for target, symbol in TARGETS.items():
            if target not in _registered:
                library = ctypes.cdll.LoadLibrary(str(library_path))
                jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu")
                _registered[target] = library
    except Exception as error:  # ctypes (OSError, AttributeError) and XLA raise several kinds
        raise NativeUnavailable(f"the native simulator's library {library_path} does not load: {error} "
                                "(delete it to rebuild)") from None


@functools.cache
def _load() -> str | None:
    """Build and register the kernel, once per process: None where that worked, else why it did not."""
    try:
        _register(_build())
    except NativeUnavailable as error:
        return str(error)
    except Exception as error:  # the cache and the temporary directory both unusable (OSError), the unforeseen
        return f"building the native simulator failed: {type(error).__name__}: {error}"
    return None


@functools.cache
def _warn_fallback(reason: str) -> None:
    """Log, once per process, that the default simulator is "blocks" because the kernel cannot run."""
    log.warning("the native simulator is unavailable, using simulator='blocks' instead: %s", reason)


def _reset_for_tests() -> None:
    """Forget the remembered outcome and warning, so that the next call builds again (for tests that change
    the environment). Targets that were registered stay registered (``_register``)."""
    _load.cache_clear()
    _warn_fallback.cache_clear()


def unavailable_reason() -> str | None:
    """Why the native kernel cannot run here (it is built on the first call), or None where it can."""
    return _load()


def _require() -> None:
    """Raise NativeUnavailable, naming the cause, unless the kernel is registered."""
    reason = _load()
    if reason is not None:
        raise NativeUnavailable(f"the native simulator is unavailable here (use simulator='blocks'): {reason}")


def _cgroup_cpus() -> int | None:
    """The CPUs this process's cgroup (v2) quota allows, at least 1; None where there is no quota or no cgroup v2."""
    root = Path("/sys/fs/cgroup")
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
        group = root / next(line[3:] for line in lines if line.startswith("0::")).lstrip("/")
    except (OSError, StopIteration):
        return None
    limits = []
    for directory in (group, *group.parents):  # a parent's quota limits its children too
        if not directory.is_relative_to(root):
            break
        try:
            quota, period = (directory / "cpu.max").read_text().split()
            if quota != "max":
                limits.append(max(1, int(quota) // int(period)))
        except (OSError, ValueError):
            continue
    return min(limits, default=None)


def thread_count() -> int:
    """Threads the kernel may use: $QROBUST_THREADS, else the CPUs this process may run on.

    Those are the affinity mask's CPUs (``os.sched_getaffinity``, else ``os.cpu_count()``), fewer under a
    cgroup v2 CPU quota. ConfigError if $QROBUST_THREADS is not a positive integer.
    """
    value = os.environ.get(THREADS_VARIABLE, "").strip()
    if value:
        try:
            threads = int(value)
        except ValueError:
            threads = 0
        if threads < 1:
            raise ConfigError(f"${THREADS_VARIABLE} must be a positive integer (threads of the native "
                              f"simulator), got {value!r}")
        return threads
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cpus = os.cpu_count() or 1
    return min(cpus, _cgroup_cpus() or cpus)


def available() -> bool:
    """Whether the native kernel builds and loads here (built on the first call, the outcome remembered).

    Where it does not, the reason (``unavailable_reason()``) is logged once per process as the fallback to
    "blocks" (the warning ``qnn`` logs where it would have picked "native" by default).
    """
    reason = _load()
    if reason is not None:
        _warn_fallback(reason)
    return reason is None


def hea_logits(rotations: np.ndarray, pairs: np.ndarray, readout_scale: float):
    """``logits(params, states) -> (B,)`` float32 of the hardware-efficient ansatz, run by the native kernel.

    rotations, pairs: (d, L) masks of the rotations and the RZZ pairs (i, i+1 mod L) that are applied
    (the light cone). params: (d, L, 4), computed in float32 (other real dtypes are cast, and their
    gradient comes back in their dtype); states: (B, 2**L), computed in complex64. Differentiable
    (reverse mode) in params only. The thread count (``thread_count()``) is read here, once.

    The gradient takes two kernel calls: the forward pass ("qrobust_hea_forward_states") returns the logits
    and each state at the end of the circuit, kept as the residual (B * 2**L * 8 bytes), and the backward
    pass ("qrobust_hea_backward") walks the circuit back from those states (the adjoint method needs nothing
    else), so the forward pass is not done twice. A call without a gradient ("qrobust_hea_forward") keeps
    nothing.
    """
    _require()
    rot = jnp.asarray(rotations, jnp.int32)
    pair = jnp.asarray(pairs, jnp.int32)
    attributes = dict(scale=np.float32(readout_scale), threads=np.int64(thread_count()))

    def forward(params, states):
        out = jax.ShapeDtypeStruct(states.shape[:1], jnp.float32)
        return jax.ffi.ffi_call("qrobust_hea_forward", out, vmap_method="sequential")(
            params, states, rot, pair, **attributes)

    def forward_states(params, states):
        out = (jax.ShapeDtypeStruct(states.shape[:1], jnp.float32), jax.ShapeDtypeStruct(states.shape, jnp.complex64))
        return jax.ffi.ffi_call("qrobust_hea_forward_states", out, vmap_method="sequential")(
            params, states, rot, pair, **attributes)

    def backward(params, finals, cotangent):
        out = jax.ShapeDtypeStruct(params.shape, jnp.float32)
        return jax.ffi.ffi_call("qrobust_hea_backward", out, vmap_method="sequential")(
            params, finals, rot, pair, cotangent, **attributes)

    @jax.custom_vjp
    def kernel(params, states):
        return forward(params, states)

    def kernel_fwd(params, states):
        if states.perturbed:
            raise NotImplementedError("the native simulator differentiates the parameters only, not the input "
                                      "states; use simulator='blocks'")
        logits, finals = forward_states(params.value, states.value)
        return logits, (params.value, finals)

    def kernel_bwd(residuals, cotangent):
        params, finals = residuals
        return backward(params, finals, cotangent.astype(jnp.float32)), None

    kernel.defvjp(kernel_fwd, kernel_bwd, symbolic_zeros=True)

    def logits(params, states):
        """The kernel in its dtypes; the casts carry the gradient back to the caller's parameter dtype."""
        return kernel(jnp.asarray(params).astype(jnp.float32), jnp.asarray(states).astype(jnp.complex64))

    return logits


def gate_logits(ops: np.ndarray, perms: np.ndarray, measured: int, readout_scale: float):
    """``logits(mats1, diags, mats2, states) -> (B,)`` float32 of a circuit given as operations, run by the
    native kernel (``csrc/gates.cc``).

    ops: (G, 4) int32 rows (kind, index, q1, q2), kind an ``OpKind``: SINGLE the 2x2 ``mats1[index]`` on qubit q1,
    DIAGONAL the diagonal ``diags[index]`` (2**L phases), TWO_QUBIT the 4x4 ``mats2[index]`` on qubits (q1, q2) (row
    2 * bit(q1) + bit(q2)), PERMUTATION the permutation ``perms[index]`` (the state after it is the state before at
    these indices; perms (NP, 2**L) int32, at least one row); qubit 0 is the most significant. mats1 (N1, 2, 2),
    diags (ND, 2**L), mats2 (N2, 4, 4) and states (B, 2**L) complex64 (each of the three at least one entry).
    logit = readout_scale * <Z_measured>.
    Differentiable (reverse mode) in the three operation arrays, whose cotangents carry the gradient on to whatever
    made them; not in the states. The thread count (``thread_count()``) is read here, once.
    """
    _require()
    table = np.asarray(ops, np.int32).reshape(-1, 4)  # numpy: constants of every program that calls it
    gathers = np.asarray(perms, np.int32)
    attributes = dict(scale=np.float32(readout_scale), measured=np.int64(measured), threads=np.int64(thread_count()))

    def forward(mats1, diags, mats2, states):
        out = jax.ShapeDtypeStruct(states.shape[:1], jnp.float32)
        return jax.ffi.ffi_call("qrobust_gates_forward", out, vmap_method="sequential")(
            table, gathers, mats1, diags, mats2, states, **attributes)

    kernel = jax.custom_vjp(forward)

    def kernel_fwd(mats1, diags, mats2, states):
        if states.perturbed:
            raise NotImplementedError("the native simulator differentiates the circuit's parameters only, not "
                                      "the input states; use simulator='xla-gates'")
        operands = (mats1.value, diags.value, mats2.value, states.value)
        return forward(*operands), operands

    def kernel_bwd(operands, cotangent):
        mats1, diags, mats2, states = operands
        outs = tuple(jax.ShapeDtypeStruct(a.shape, jnp.complex64) for a in (mats1, diags, mats2))
        cts = jax.ffi.ffi_call("qrobust_gates_backward", outs, vmap_method="sequential")(
            table, gathers, mats1, diags, mats2, states, cotangent.astype(jnp.float32), **attributes)
        return (*cts, None)

    kernel.defvjp(kernel_fwd, kernel_bwd, symbolic_zeros=True)

    def logits(mats1, diags, mats2, states):
        c64 = jnp.complex64
        return kernel(*(jnp.asarray(a).astype(c64) for a in (mats1, diags, mats2, states)))

    return logits


CAPABILITIES = Capabilities(("hea",), ("complex64",), MIN_QUBITS, MAX_QUBITS, accelerators=False,
                            forward_mode=False, whole_batch=True, unavailable=unavailable_reason)


def build(plan: hea.Plan, options: SimOptions):
    """``logits(params, xs) -> (B,)`` of the "hea" plan, run by the kernel (its light cone as masks)."""
    applied = np.zeros((2, plan.depth, plan.n_qubits), np.int32)
    for layer in range(plan.depth):
        applied[0, layer, list(plan.rotations[layer])] = 1
        applied[1, layer, list(plan.pairs[layer])] = 1
    return hea_logits(applied[0], applied[1], plan.readout_scale)
