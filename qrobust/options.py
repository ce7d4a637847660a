"""Options declared once: a study config's field says how the command line sets it.

A config field declared with ``option(default, help=..., ...)`` is a dataclass field like any other (the
Python API sets it by name); its metadata holds an ``Option``, from which ``qrobust COMMAND`` builds the flag:
its name (``--field-name`` unless ``flag`` says otherwise), its help, its choices (the library's own tuples), how
a given string becomes a value (``parse``), whether it may be repeated (a tuple field), and the group it is
listed under in ``--help``. A field without an option is the Python API's only. The command line passes on only
the options given, so every default is the config's own. No import of JAX here: ``qrobust --help`` stays fast.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple

from qrobust.errors import ConfigError

GROUPS = ("data", "models", "grid", "training", "run")  # the order --help lists them in

# --- bounds: the largest value of each size option, checked before anything of that size is made ----------------
# (each message states its bound; a value past it would run for hours or exhaust memory before any output)
MAX_VALUES = 10_000       # values of one grid option (--alphas, --kl-w, --fo-w, --known-fraction: START:STOP:STEP)
MAX_SEEDS = 100_000       # seeds of one run (a row per replica per recorded epoch is kept in memory)
MAX_EPOCHS = 100_000      # epochs (and --eval-every): 250 times the paper's longest (400)
MAX_BATCH_SIZE = 65_536   # a minibatch (each epoch pads its batches to this many samples per replica)
MAX_DEPTH = 1_000         # QNN layers
MAX_HIDDEN = 4_096        # units of an MLP layer (the paper's: 64, 16)
MAX_LAYERS = 16           # MLP hidden layers
MAX_QUBITS = 20           # qubits of a state: 2**20 amplitudes (the largest chain, an npz file's rows)
MAX_FEATURES = 1_024      # principal components of the angle and reupload encodings (an MLP's; a QNN's: MAX_QUBITS)
MAX_CHUNK_SIZE = 1_000_000  # replicas per compiled program
MAX_TRAIN_PER_CLASS = 1_000_000  # training samples per class
MAX_SHADOWS = 1_024       # shadow replicas per model (U-LiRA's usual 64 to 256)
MAX_FOLDS = 100           # cross-validation folds (each one a replica per alpha and seed)
MAX_N_EVAL = 100_000      # held-out samples of a Hessian
MAX_PROBES = 10_000       # Hutchinson probes (each a Hessian-vector product per replica)


def check_at_most(flag: str, value, bound: int, why: str) -> None:
    """Refuse ``value`` of option ``flag`` above ``bound`` (a ConfigError stating the bound and ``why``)."""
    if value is not None and value > bound:
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        raise ConfigError(f"{flag} {shown} is more than {bound:,}, the most qrobust accepts ({why})")


SIZE_BOUNDS = {  # a config field -> (its flag, its bound, why)
    "epochs": ("--epochs", MAX_EPOCHS, "each epoch trains every replica on every sample"),
    "teacher_epochs": ("--teacher-epochs", MAX_EPOCHS, "each epoch trains every replica on every sample"),
    "eval_every": ("--eval-every", MAX_EPOCHS, "epochs between recorded metrics"),
    "batch_size": ("--batch-size", MAX_BATCH_SIZE, "each epoch pads its minibatches to this size per replica"),
    "depth": ("--depth", MAX_DEPTH, "QNN layers, each compiled into the circuit"),
    "n_features": ("--features", MAX_FEATURES, "principal components, one input each"),
    "shadows": ("--shadows", MAX_SHADOWS, "each shadow trains a teacher and its students"),
    "folds": ("--folds", MAX_FOLDS, "each fold trains a replica per alpha and seed"),
    "n_eval": ("--n-eval", MAX_N_EVAL, "held-out samples each Hessian-vector product runs on"),
    "hutchinson_samples": ("--hutchinson", MAX_PROBES, "each probe is a Hessian-vector product per replica"),
}


def check_sizes(config, *names: str) -> None:
    """The size fields ``names`` of ``config`` (an int, a tuple of ints for an axis, or None) against their bounds
    (``SIZE_BOUNDS``), before anything of that size is made."""
    for name in names:
        flag, bound, why = SIZE_BOUNDS[name]
        value = getattr(config, name)
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                check_at_most(flag, v, bound, why)


def check_hidden(hiddens) -> None:
    """MLP hidden sizes (a tuple of layer widths, or a tuple of them for an axis; None: the paper's): at most
    ``MAX_LAYERS`` layers of at most ``MAX_HIDDEN`` units."""
    for hidden in hiddens:
        if not isinstance(hidden, (tuple, list)):
            continue
        if len(hidden) > MAX_LAYERS:
            raise ConfigError(f"--hidden gives {len(hidden):,} layers, more than {MAX_LAYERS}, the most an MLP takes")
        for width in hidden:
            if isinstance(width, (int, float)) and not isinstance(width, bool):
                check_at_most("--hidden", width, MAX_HIDDEN, "units of an MLP layer")


class Option(NamedTuple):
    """How the command line sets a config field (module docstring).

    flag: the flag (default --FIELD-NAME); parse(text) -> value of one given string; choices: the allowed
    strings; repeat: the flag may be given several times, the field is the tuple of their values; switch: a
    boolean field set by a flag without a value (``--no-...`` where the default is True); nargs, const: as
    argparse's (``--shadows`` alone means 64); extra: more flags feeding the field, (flag, help, parse) each,
    and ``combine(value, {flag: value})`` makes the field's value from them all.
    """

    help: str
    flag: str | None = None
    parse: Callable[[str], Any] | None = None
    choices: tuple | None = None
    repeat: bool = False
    group: str = "run"
    switch: bool = False
    metavar: str | None = None
    nargs: str | None = None
    const: Any = None
    extra: tuple = ()
    combine: Callable | None = None


def option(default=dataclasses.MISSING, **kwargs) -> Any:
    """A dataclass field (``default``) that the command line sets as ``Option(**kwargs)`` says."""
    return dataclasses.field(default=default, metadata={"option": Option(**kwargs)})


def options_of(config_type) -> list[tuple[str, Option, Any]]:
    """(field name, Option, default) of every field of ``config_type`` the command line sets, in field order."""
    return [(f.name, f.metadata["option"], f.default) for f in dataclasses.fields(config_type)
            if "option" in f.metadata]


def flag_of(name: str, opt: Option) -> str:
    return opt.flag or "--" + name.replace("_", "-")


# --- parsers of option strings (each raises ConfigError naming what it could not read) ---------------------


def floats(text: str, what: str = "values") -> tuple[float, ...]:
    """'0:0.9:0.1' (an inclusive range) or '0,0.3,0.5' -> values; at most ``MAX_VALUES`` of them, counted before
    any is made (a range's count from (STOP - START) / STEP)."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not step > 0 or not all(math.isfinite(v) for v in (start, stop, step)):
                raise ValueError
            span = (stop - start) / step  # +-inf where the range overflows: never floor()ed
            count = (MAX_VALUES + 1 if span >= MAX_VALUES else 0 if span < -2
                     else max(math.floor(span + 0.5) + 1, 0))
        else:
            count = text.count(",") + 1
    except ValueError:
        raise ConfigError(f"cannot read {what} {text!r}: use START:STOP:STEP (e.g. 0:0.9:0.1) "
                          "or a comma list (e.g. 0,0.3,0.5)") from None
    if count > MAX_VALUES:
        raise ConfigError(f"{what} {text!r} makes more than {MAX_VALUES:,} values, the most a grid option takes "
                          "(each value is trained, seed by seed): use a coarser step or split the grid over runs")
    try:
        if ":" in text:
            values = [start + i * step for i in range(count)]
        else:
            values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"cannot read {what} {text!r}: use START:STOP:STEP (e.g. 0:0.9:0.1) "
                          "or a comma list (e.g. 0,0.3,0.5)") from None
    return tuple(float(round(v, 10)) for v in values)


def ints(text: str, what: str = "integers") -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ConfigError(f"expected comma-separated integers for {what}, got {text!r}") from None


def seeds(text: str) -> int | tuple[int, ...]:
    """'5' (a count: seeds 0..4, or from --seed-offset), '3,7,9' (these seeds) or '10:14' (an inclusive range);
    a range or list of more than ``MAX_SEEDS`` seeds is refused before it is made."""
    try:
        if ":" in text:
            lo, hi = (int(v) for v in text.split(":"))
            if hi - lo + 1 > MAX_SEEDS:
                raise ConfigError(f"--seeds {text!r} is {hi - lo + 1:,} seeds, more than {MAX_SEEDS:,} in one run; "
                                  "their result rows would not fit in memory: split the range over runs")
            return tuple(range(lo, hi + 1))
        if "," in text:
            if text.count(",") >= MAX_SEEDS:
                raise ConfigError(f"--seeds lists more than {MAX_SEEDS:,} seeds, the most in one run: split them "
                                  "over runs")
            return ints(text, "--seeds")
        return int(text)
    except ConfigError:
        raise
    except ValueError:
        raise ConfigError(f"cannot read --seeds {text!r}: a count (5), a list (3,7,9) or a range (10:14)") from None


def number(kind: type, what: str) -> Callable[[str], Any]:
    """A parser of one ``kind`` (int or float) number, named ``what`` in its message."""
    def parse(text: str):
        try:
            return kind(text)
        except ValueError:
            raise ConfigError(f"{what} takes {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    return parse


def auto(text: str) -> str | None:
    """'auto' -> None (the library's choice); any other string as it is."""
    return None if text == "auto" else text
