"""Tests that search, not only list (hypothesis): no input reaches a traceback, a hang or a huge allocation.

- Over the command line: argv lists for each study command, built from the options its config declares
  (``qrobust.options.options_of``), mixing valid values, edge values and garbage. Parsing plus
  ``config.validate()`` either succeeds or raises a QrobustError (a usage error: argparse's), and then
  ``qrobust.cli.main`` returns 2 with one line "qrobust: error: ..." and writes nothing. Nothing trains: a
  config that validates is not run.
- Over the npz loader: arrays of every dtype (bool, ints, floats, complex, object, extended precision), huge,
  tiny and non-finite values, wrong shapes, missing and extra keys, truncated and damaged bytes, headers that
  declare huge shapes. ``npz_dataset`` returns finite unit states or raises DataError/ConfigError with a
  message; its peak allocation stays small (numpy's allocations are traced by tracemalloc).

Each example runs under an alarm (``_time_limit``): a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import signal
import tracemalloc
import zipfile
from pathlib import Path

import jax
import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st

from qrobust import options
from qrobust.cli import _UsageError, build_parser, config_of, main
from qrobust.data.phases import MAX_POINTS, Grid
from qrobust.errors import ConfigError, DataError, QrobustError
from qrobust.experiments import registry
from qrobust.options import flag_of, options_of

COMMANDS = ("sweep", "gauge", "unlearn", "landscape", "detect")
CLI_EXAMPLES = 150  # per command (5 commands)
NPZ_EXAMPLES = 400
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
                derandomize=True)


class _Hang(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float):
    """Raise _Hang if the block runs longer than ``seconds`` (a hang is a failure, not a stalled suite)."""
    def on_alarm(signum, frame):
        raise _Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --- the command line ----------------------------------------------------------------------------------------

INT_EDGES = ["0", "1", "2", "3", "4", "5", "6", "8", "12", "16", "20", "21", "32", "64", "100", "1000", "4096",
             "4097", "65536", "65537", "100000", "100001", "1000000", "2147483648", "4294967296", "-1", "-5",
             "99999999999999999999999", "1" * 5000, "0x10", "1_000", " 3 ", "٣"]
FLOAT_EDGES = ["0", "0.0", "0.1", "0.2", "0.3", "0.5", "0.9", "1", "1.0", "1.5", "2", "-0.1", "1e-9", "1e-12",
               "1e308", "1.7976931348623157e308", "1e-320", "5e-324", "inf", "-inf", "nan", "NaN", "1e400", "-0"]
GARBAGE = st.text(max_size=12)


def _number():
    return st.one_of(st.sampled_from(INT_EDGES), st.sampled_from(FLOAT_EDGES),
                     st.integers(-10**12, 10**12).map(str), st.floats().map(repr))


GRIDS = ("alphas", "kl_ws", "fo_ws", "known_fraction", "--param-range")  # START:STOP:STEP or a list
SIZES = ("seeds", "epochs", "teacher_epochs", "batch_size", "depth", "hidden", "n_features", "eval_every",
         "chunk_size", "n_train_per_class", "n_qubits", "shadows", "n_eval", "hutchinson_samples", "folds",
         "--n-points")
HUGE = ["1000001", "10000000", "2147483647", "4294967296", "10000000000", "99999999999999999999"]
STEPS = ["0.1", "1e-3", "1e-5", "1e-9", "1e-12", "1e-300", "5e-324", "0", "-0.1", "nan", "inf"]


def _values(name=None):
    """Strings for option ``name``'s value: numbers, ranges, lists and garbage; ranges with fine steps for a grid
    option, huge counts for a size option."""
    number = _number()
    rng = st.tuples(st.sampled_from(FLOAT_EDGES), st.sampled_from(FLOAT_EDGES), st.sampled_from(FLOAT_EDGES))
    fine = st.tuples(st.sampled_from(["0", "-1", "0.1", "-1e308"]), st.sampled_from(["1", "0.9", "2", "1e308"]),
                     st.sampled_from(STEPS))
    choices = [number, rng.map(":".join),
               st.tuples(st.sampled_from(INT_EDGES), st.sampled_from(INT_EDGES)).map(":".join),
               st.lists(number, min_size=1, max_size=4).map(",".join), GARBAGE]
    if name in GRIDS:
        choices += [fine.map(":".join)] * 3
    if name in SIZES:
        choices += [st.sampled_from(HUGE)] * 2 + [st.sampled_from(["0", "1"]).map(lambda v: f"{v}:" + HUGE[-1])]
    return st.one_of(*choices)


PLAUSIBLE = {  # values a user would give, per option (so that a search also reaches the deeper checks)
    "seeds": ["1", "2", "3", "0,1", "3:5", "2,7"], "n_train_per_class": ["2", "5", "10"], "n_qubits": ["4", "6", "8"],
    "chunk_size": ["1", "2", "8"], "gauge_seed": ["0", "1"], "digits": ["3,5", "1,9", "0,8"],
    "alphas": ["0", "0,0.2", "0:0.4:0.2", "0.1,0.3"], "epochs": ["1", "2", "5"], "batch_size": ["4", "8", "32"],
    "learning_rates": ["0.01", "0.05"], "learning_rate": ["0.01", "0.05"], "depth": ["1", "2", "4"],
    "hidden": ["8,2", "16", "4,4,4"], "n_features": ["2", "4"], "eval_every": ["1", "2", "5"],
    "kl_ws": ["0", "0,0.5", "0:1:0.5"], "fo_ws": ["0.2", "0,0.5"], "known_fraction": ["1", "0.5,1", "0.25:1:0.25"],
    "alpha": ["0.1", "0.3"], "teacher_epochs": ["1", "3"], "l1_w": ["0.0005", "0"], "salun_fraction": ["0.5", "1"],
    "shadows": ["0", "8", "16"], "n_eval": ["10", "100"], "hutchinson_samples": ["2", "10"], "folds": ["2", "5"],
    "gauges": ["fixed", "fixed,sign", "phase"], "keep_weights": ["all", "none", "qnn", "mlp", "qnn,mlp"],
    "data_file": ["data.npz", "/dev/zero", "/nonexistent.npz"], "mnist_path": ["mnist.npz", "/tmp"],
}
PLAUSIBLE_EXTRA = {"--param-range": ["0.5,1.5", "0,2", "1.2,2"], "--n-points": ["20", "50", "174", "3"],
                   "--window": ["0", "0.05", "0.2"], "--val-placement": ["first", "second"]}


def _option_args(name, opt):
    """Strategy: the argv words of one config option (possibly repeated, possibly with its extra flags): a
    plausible value, a choice, an edge value or garbage."""
    flag = flag_of(name, opt)
    if opt.switch:
        return st.just([flag])
    value = _values(name)
    if name in PLAUSIBLE:
        value = st.one_of(st.sampled_from(PLAUSIBLE[name]), st.sampled_from(PLAUSIBLE[name]), value)
    if opt.choices is not None:
        value = st.one_of(st.sampled_from(opt.choices), st.sampled_from(opt.choices), value)
    words = st.lists(value, min_size=1, max_size=3 if opt.repeat else 1).map(
        lambda vs: [w for v in vs for w in (flag, v)])
    if opt.nargs == "?":
        words = st.one_of(words, st.just([flag]))
    if opt.extra:
        extra = st.sampled_from(opt.extra).flatmap(lambda e: st.one_of(
            st.sampled_from(PLAUSIBLE_EXTRA.get(e[0], ["1"])), _values(e[0])).map(lambda v: [e[0], v]))
        words = st.one_of(words, extra, st.tuples(words, extra).map(lambda t: t[0] + t[1]))
    return words


@st.composite
def _argv(draw, command):
    entry = registry.by_command(command)
    declared = options_of(entry.get("config"))
    chosen = draw(st.lists(st.sampled_from(declared), max_size=6, unique_by=lambda o: o[0]))
    words = [command]
    for name, opt, _ in chosen:
        words += draw(_option_args(name, opt))
    if draw(st.booleans()):
        words += ["--seed-offset", draw(st.sampled_from(["0", "1", "-1", "4294967295", "x"]))]
    if draw(st.booleans()):
        words.append(draw(st.sampled_from(["--no-progress", "-q", "-v"])))
    return words


def _assert_bounded(config) -> None:
    """A config that validates asks for bounded work: every size within its stated bound (``qrobust.options``)."""
    for name, (flag, bound, _) in options.SIZE_BOUNDS.items():
        value = getattr(config, name, None)
        for v in value if isinstance(value, tuple) else (value,):
            assert v is None or v <= bound, (flag, v)
    for name in ("alphas", "kl_ws", "fo_ws", "known_fraction", "learning_rates", "corruptions", "methods", "gauges"):
        assert len(getattr(config, name, None) or ()) <= options.MAX_VALUES, name
    assert len(config.seeds) <= options.MAX_SEEDS and max(config.seeds) < 2**32
    hidden = getattr(config, "hidden", None)
    for layers in (hidden if hidden and isinstance(hidden[0], tuple) else (hidden,)):
        assert layers is None or (len(layers) <= options.MAX_LAYERS and max(layers) <= options.MAX_HIDDEN)
    for name in ("chunk_size", "n_train_per_class"):
        assert (getattr(config, name) or 0) <= max(options.MAX_CHUNK_SIZE, options.MAX_TRAIN_PER_CLASS)
    if isinstance(config.grid, Grid):
        assert config.grid.n_points <= MAX_POINTS


def _validated(command, argv):
    """Parse ``argv`` and validate its config: "ok" (and its work bounded), or "refused" for a QrobustError or a
    usage error; any other exception propagates. JAX's 64-bit mode (``--dtype complex128`` turns it on) is restored
    afterwards."""
    x64 = jax.config.jax_enable_x64
    try:
        args = build_parser(argv).parse_args(argv)
        config = config_of(registry.by_command(command), args)
        config.validate()
        _assert_bounded(config)
        return "ok"
    except (QrobustError, _UsageError):
        return "refused"
    finally:
        jax.config.update("jax_enable_x64", x64)


@pytest.mark.parametrize("command", COMMANDS)
@settings(max_examples=CLI_EXAMPLES, **SETTINGS)
@given(data=st.data())
def test_any_command_line_is_validated_or_refused_in_one_line(command, data, tmp_path_factory):
    argv = data.draw(_argv(command))
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = argv + ["--out", str(out)]
    with _time_limit(20):
        outcome = _validated(command, argv)
        event(outcome)
        if outcome == "refused":  # the same argv through main: exit status 2, one line, nothing written
            err = io.StringIO()
            x64 = jax.config.jax_enable_x64
            try:
                with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                    code = main(argv)
            finally:
                jax.config.update("jax_enable_x64", x64)
            lines = err.getvalue().splitlines()
            assert code == 2, (argv, err.getvalue())
            assert len(lines) == 1 and lines[0].startswith("qrobust: error: "), (argv, err.getvalue())
            assert not out.exists(), argv


# --- the npz loader ------------------------------------------------------------------------------------------

NUMERIC = [np.bool_, np.int8, np.int64, np.uint8, np.uint64, np.float16, np.float32, np.float64, np.longdouble,
           np.complex64, np.complex128, np.clongdouble]
X_DTYPES = NUMERIC + [object, "U3", "V8", "M8[s]"]
Y_DTYPES = [np.int64, np.int8, np.uint8, np.bool_, np.float64, np.float32, object, "U1", np.complex128]
EXTREMES = [0.0, 1.0, -1.0, 1e200, -1e200, 1e-200, 1e-320, 5e-324, 1.7976931348623157e308, 1e30, 2.0**63, 1e155,
            1e-155, 3e-308]
ELEMENTS = st.one_of(st.floats(0.5, 10), st.floats(-10, -0.5), st.floats(0.5, 10), st.floats(-10, 10),
                     st.sampled_from(EXTREMES), st.sampled_from(EXTREMES),
                     st.floats(allow_nan=True, allow_infinity=True))
MUTATIONS = ("none",) * 8 + ("drop_key", "extra_key", "replace_array", "truncate_file", "flip_byte",
                             "truncate_member", "huge_header", "garbage_member", "duplicate_member", "npy_file",
                             "empty_file", "bad_header")
HUGE_SHAPES = [(2**20, 2**20), (2**62, 2), (10**7, 4), (8, 2**21), (2**31,), (3, 2**40, 2), (-1, 4), (4, 3)]
MAX_PEAK_BYTES = 64 * 2**20  # the examples' arrays are tiny: anything near this is an allocation of a declared size


def _cast(values, dtype):
    with np.errstate(all="ignore"):
        kind = np.dtype(dtype).kind
        if kind == "c":
            return (values + 1j * values.ravel()[::-1].reshape(values.shape)).astype(dtype)
        if kind == "V":
            return values.astype(np.float64).view("V8")
        if kind in "iub":  # whole numbers, as a user's integer features would be
            return np.nan_to_num(np.round(values * 3)).clip(-1e18, 1e18).astype(dtype)
        return values.astype(dtype)


@st.composite
def _array(draw, shape, dtypes):
    dtype = draw(st.sampled_from(dtypes))
    size = int(np.prod(shape))
    values = np.array(draw(st.lists(ELEMENTS, min_size=size, max_size=size)), dtype=np.float64).reshape(shape)
    return _cast(values, dtype)


@st.composite
def _labels(draw, n):
    kind = draw(st.sampled_from(["alternating"] * 8 + ["random", "dtype"]))
    base = np.arange(n) % 2
    if kind == "alternating":
        return base
    if kind == "random":
        return np.array(draw(st.lists(st.sampled_from([0, 1, 2, -1]), min_size=n, max_size=n)), dtype=np.int64)
    return _cast(base.astype(np.float64) + draw(st.sampled_from([0.0, 0.0, 0.5, np.nan])), draw(
        st.sampled_from(Y_DTYPES)))


@st.composite
def _npz_case(draw):
    n, m, f = draw(st.integers(0, 10)), draw(st.integers(0, 5)), draw(st.integers(0, 6))
    if draw(st.sampled_from([True] * 4 + [False])):  # mostly a well-formed task, so the values reach the encoding
        n, m, f = max(n, 4), max(m, 1), max(f, 2)
    f_val = draw(st.sampled_from([f] * 8 + [f + 1]))
    dtype = draw(st.sampled_from(NUMERIC * 3 + X_DTYPES))
    arrays = dict(x_train=draw(_array((n, f), [dtype])), y_train=draw(_labels(n)),
                  x_val=draw(_array((m, f_val), [dtype] * 8 + [np.complex128, np.float64])),
                  y_val=draw(_labels(m)))
    if draw(st.sampled_from([False] * 6 + [True])):  # a wrong shape somewhere
        key = draw(st.sampled_from(sorted(arrays)))
        shape = draw(st.sampled_from([(), (3,), (2, 3, 2), (n,), (n, 1), (0, 0)]))
        arrays[key] = draw(_array(shape, X_DTYPES))
    return dict(arrays=arrays, compressed=draw(st.booleans()), mutation=draw(st.sampled_from(MUTATIONS)),
                at=draw(st.floats(0, 1)), key=draw(st.sampled_from(["x_train", "y_train", "x_val", "y_val"])),
                shape=draw(st.sampled_from(HUGE_SHAPES)), per_class=draw(st.sampled_from([None, None, 1, 2, 50])))


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def _header_only(shape, descr="<f8") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def _write_case(path: Path, case) -> None:
    arrays = dict(case["arrays"])
    mutation, key, at = case["mutation"], case["key"], case["at"]
    if mutation == "drop_key":
        arrays.pop(key)
    elif mutation == "extra_key":
        arrays["x_test"] = np.zeros(3)
    elif mutation == "replace_array":
        arrays[key] = np.array([[1, None], [2, 3]], dtype=object)
    if mutation == "npy_file":
        with open(path, "wb") as fh:
            np.save(fh, arrays["x_train"], allow_pickle=True)
        return
    if mutation == "empty_file":
        path.write_bytes(b"")
        return
    members = {f"{k}.npy": _npy(v) for k, v in arrays.items()}
    name = f"{key}.npy"
    if mutation == "truncate_member" and name in members:
        members[name] = members[name][:int(at * len(members[name]))]
    elif mutation == "huge_header":
        members[name] = _header_only(case["shape"])
    elif mutation == "garbage_member":
        members[name] = bytes(range(256))[:int(at * 256)]
    elif mutation == "bad_header":
        members[name] = b"\x93NUMPY\x01\x00\x20\x00{'descr': '<f8', 'shape': (((\n" + b"\0" * 16
    method = zipfile.ZIP_DEFLATED if case["compressed"] else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as z:
        for member, data in members.items():
            z.writestr(member, data)
        if mutation == "duplicate_member":
            with pytest.warns(UserWarning):
                z.writestr(name, members.get(name, b""))
    if mutation in ("truncate_file", "flip_byte"):
        data = bytearray(path.read_bytes())
        i = min(int(at * len(data)), len(data) - 1)
        if mutation == "truncate_file":
            del data[i:]
        else:
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))


def _loads_or_refuses(path: Path, per_class=None):
    """npz_dataset(path): the Dataset, or the DataError/ConfigError it raised (with a message); its peak traced
    allocation is returned too."""
    from qrobust.data.npz import npz_dataset

    tracemalloc.start()
    try:
        with _time_limit(20):
            try:
                result = npz_dataset(path, n_train_per_class=per_class)
            except (DataError, ConfigError) as exc:
                result = exc
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


@settings(max_examples=NPZ_EXAMPLES, **SETTINGS)
@given(case=_npz_case())
def test_any_npz_file_gives_unit_states_or_a_named_refusal(case, tmp_path_factory):
    path = tmp_path_factory.mktemp("npz") / "data.npz"
    _write_case(path, case)
    result, peak = _loads_or_refuses(path, case["per_class"])
    assert peak < MAX_PEAK_BYTES, (case["mutation"], peak)
    event(f"{case['mutation']}: {'refused' if isinstance(result, Exception) else 'loaded'}")
    if isinstance(result, Exception):
        assert str(result).strip(), type(result)
        return
    for x, y in ((result.x_train, result.y_train), (result.x_val, result.y_val)):
        assert np.isfinite(x).all()
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-9)
        assert x.shape[1] == 2**result.n_qubits and set(np.unique(y).tolist()) <= {0, 1}
    assert result.meta["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
