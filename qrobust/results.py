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
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from qrobust.errors import ConfigError, DamagedRunError

log = logging.getLogger("qrobust")


class Trained(NamedTuple):
    """The stored replicas of one program: ``replicas`` (one row per replica: its grid coordinates, in the order
    of ``params``), ``params`` (the replica-stacked parameters, as the model's ``init`` shapes them) and the
    rebuilt ``model`` they belong to."""

    program: str
    replicas: pd.DataFrame
    params: Any
    model: Any


@dataclass
class RunResults:
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

    def programs(self) -> dict[str, dict]:
        """program -> how its model is built (programs.json), for the programs that stored it."""
        path = self.path / "programs.json"
        try:
            recorded = json.loads(path.read_text()) if path.is_file() else {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path} does not parse ({type(exc).__name__}): its weights cannot be read") from None
        return recorded if isinstance(recorded, dict) else {}

    def model(self, program: str):
        """The model ``program``'s weights belong to, rebuilt as the study built it (``qrobust.models.registry``;
        a user's model must be registered in this process under the name the run recorded)."""
        from qrobust.data import Dataset
        from qrobust.models.registry import BuildOptions, ModelSettings, build

        described = self.programs().get(program)
        if described is None:
            raise ConfigError(f"{self.path} records no program {program!r} (programs.json: "
                              f"{', '.join(self.programs()) or 'none'})")
        inputs, numerics = described["inputs"], described["numerics"]
        s = dict(described["settings"])
        s["hidden"] = tuple(s.get("hidden", ()))
        width = inputs["width"]
        x = np.zeros((1, width), complex if inputs["complex"] else float)
        shape = Dataset("shape", x, np.zeros(1, int), x, np.zeros(1, int), inputs["n_qubits"],
                        {"encoding": inputs["encoding"]})
        options = BuildOptions(numerics["dtype"], numerics["simulator"], numerics["matmul_precision"],
                               shot_gradient=numerics.get("shot_gradient", "shift"))
        return build(described["model"], shape, ModelSettings(**s), options)

    def weights(self, program: str | None = None) -> dict[str, Trained]:
        """program -> its stored replicas (``Trained``), read from the chunks that kept their weights (a study's
        ``keep_weights``); with ``program``, that one only. A chunk set aside as another run's is not read."""
        import jax

        from qrobust.models.base import unflatten

        found: dict[str, list] = {}
        for chunk in sorted((self.path / "chunks").glob("*.npz")):
            name = chunk.stem
            key = name.rsplit("-", 1)[0]
            if program is not None and key != program:
                continue
            with np.load(chunk) as z:
                if "params" not in z.files:
                    continue
                flat = z["params"]
            frame = pd.read_csv(chunk.with_suffix(".csv"))
            step = len(frame) // len(flat)  # rows per replica: its recorded epochs, the last one last
            found.setdefault(key, []).append((frame.iloc[step - 1::step].reset_index(drop=True), flat))
        if program is not None and program not in found:
            raise ConfigError(f"{self.path} holds no stored weights of program {program!r} (programs with weights: "
                              f"{', '.join(self.weights()) or 'none'}; a study keeps them unless keep_weights says "
                              "not to)")
        out = {}
        for key, parts in found.items():
            model = self.model(key)
            template = jax.eval_shape(model.init, jax.random.PRNGKey(0))
            replicas = pd.concat([p[0] for p in parts], ignore_index=True)
            drop = [c for c in ("epoch",) if c in replicas]
            out[key] = Trained(key, replicas.drop(columns=drop), unflatten(template, np.concatenate(
                [p[1] for p in parts])), model)
        return out

    def predict(self, program: str, inputs) -> np.ndarray:
        """(replicas, inputs) logits of every stored replica of ``program`` on ``inputs`` (raw inputs as its
        dataset gives them: amplitude vectors, or the features of an angle or reupload encoding); the rows are
        those of ``weights()[program].replicas``."""
        import jax

        from qrobust.models import batch_logits

        trained = self.weights(program)[program]
        xs = trained.model.prepare(np.asarray(inputs))
        logits = jax.jit(jax.vmap(batch_logits(trained.model), in_axes=(0, None)))
        return np.asarray(logits(trained.params, xs))


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


def load_results(path: str | Path, *, unfinished: str | None = None) -> RunResults:
    """The study, settings and every table of the run directory ``path`` (see ``RunResults``). ``unfinished``: a
    study's name, for that study reading its own run before its marking table is written (the tables it has so
    far, its weights); by default an unfinished run is refused."""
    from qrobust.experiments.registry import study, study_of

    path = Path(path)
    name = unfinished or study_of(path)
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
