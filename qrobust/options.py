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
    """'0:0.9:0.1' (an inclusive range) or '0,0.3,0.5' -> values."""
    try:
        if ":" in text:
            start, stop, step = (float(v) for v in text.split(":"))
            if not step > 0 or not all(math.isfinite(v) for v in (start, stop, step)):
                raise ValueError
            count = math.floor((stop - start) / step + 0.5) + 1
            values = [start + i * step for i in range(max(count, 0))]
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
    """'5' (a count: seeds 0..4, or from --seed-offset), '3,7,9' (these seeds) or '10:14' (an inclusive range)."""
    try:
        if ":" in text:
            lo, hi = (int(v) for v in text.split(":"))
            return tuple(range(lo, hi + 1))
        if "," in text:
            return ints(text, "--seeds")
        return int(text)
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
