"""Reading a run directory back: its study, settings, tables, and trained weights (``load_results``).

A surface (docs/design.md): it reads what the studies stored and rebuilds what they built, through the same
registries (``qrobust.experiments.registry`` for the study, ``qrobust.models.registry`` for the models). Nothing
is trained or written here.

    run = qrobust.load_results("runs/mnist")
    run["summary"]                        # summary.csv as a DataFrame
    trained = run.weights()["qnn"]        # every stored replica of program "qnn": its grid row and its weights
    logits = run.predict("qnn", x)        # (replicas, inputs): each trained replica on new inputs
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qrobust.errors import ConfigError, DamagedRunError
from qrobust.stored import StoredWeights, Trained  # noqa: F401 (Trained: re-exported)

log = logging.getLogger("qrobust")


@dataclass
class RunResults(StoredWeights):
    """What a run directory holds: its study, its settings (config.json) and its tables by file stem
    (``results["summary"]`` is summary.csv as a DataFrame); ``runs``: the run directories a composite study is
    made of (the gauge study's sweeps, by gauge)."""

    path: Path
    study: str
    settings: dict
    tables: dict = field(default_factory=dict)
    runs: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def _readable(path: Path, root: Path) -> Path:
    """``path`` of the run directory ``root``, if it may be read: not a link out of ``root``, a regular file."""
    from qrobust.files import unreadable

    why = unreadable(path, root)
    if why is not None:
        raise DamagedRunError(f"{why}: not read as the run's")
    return path


def _settings(path: Path) -> dict:
    config = path / "config.json"
    if config.exists() or config.is_symlink():
        _readable(config, path)
    try:
        settings = json.loads(config.read_text())["settings"] if config.is_file() else {}
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise DamagedRunError(f"{config} is not a qrobust configuration ({type(exc).__name__}: {exc})") from None
    return settings if isinstance(settings, dict) else {}


def _table(path: Path) -> pd.DataFrame:
    _readable(path, path.parent)
    try:
        return pd.read_csv(path)
    except (ValueError, UnicodeDecodeError, OSError) as exc:  # pandas' parser errors are ValueErrors
        raise DamagedRunError(f"{path} does not parse ({type(exc).__name__}: {str(exc).strip()[:120]})") from None


def load_results(path: str | Path) -> RunResults:
    """The study, settings and every table of the run directory ``path`` (see ``RunResults``)."""
    from qrobust.experiments.registry import study, study_of

    path = Path(path)
    name = study_of(path)
    settings = _settings(path)
    tables = {}
    for i, t in enumerate(study(name).tables):
        if not (path / t).is_file():
            continue
        try:
            tables[t[:-4]] = _table(path / t)
        except DamagedRunError as exc:  # the run's own table is damaged: refused; a derived one is left out
            if i == 0:
                raise
            log.warning("%s; it is left out (it is made again from the run's tables)", exc)
    runs = {}
    if name == "gauge":  # the sweep under each gauge, one directory each
        runs = {g: load_results(path / g) for g in dict.fromkeys(tables["gauge"].gauge) if (path / g).is_dir()}
    return RunResults(path, name, settings, tables, runs)


def load_sweeps(run_dirs) -> list[RunResults]:
    """The sweeps in ``run_dirs``, every one read (and refused, by name, where it is not a finished sweep or a
    table does not parse) before any work."""
    for r in run_dirs:
        if not (Path(r) / "results.csv").is_file():
            raise ConfigError(f"{r} holds no results.csv; run `qrobust sweep --out {r}` first")
    runs = []
    for r in run_dirs:
        runs.append(load_results(r))  # a table that does not parse: DamagedRunError, naming it
    return runs
