"""The study door: every study is one entry of this registry, read by the store, the report, ``reproduce`` and
the command line alike.

An entry (``Study``) names the study's config type and run function (``qrobust.experiments``), the tables it
writes (the first marks a finished run), and the surfaces' functions for it: its figures (``qrobust.report``),
the verdicts the reproduction's report applies to it (``qrobust.analysis.claims``) and the table the command
line prints after a run. References are "module:name" strings, imported on first use, so ``qrobust --help``
imports no study and the science layers import no surface. config.json records the study's name
(``RunDirectory(..., study=NAME)``), so a run directory says which study wrote it.

A new study is its own module (a config extending ``study.StudyConfig``, whose fields declare their command-line
options, and a run function) plus one entry here; its command ``qrobust COMMAND`` follows from the entry.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Callable, NamedTuple

from qrobust.errors import ConfigError


class Study(NamedTuple):
    """name: how config.json and ``reproduce`` name it; command: its ``qrobust`` subcommand; help: one line.
    config, run: "module:name" of its config type and of ``run(config, out, *, progress)``. tables: the files it
    writes (tables[0] marks a finished run). figures(run, **kw) -> paths, claims(run, part) -> verdicts,
    summary(run) -> the table the command line prints; report_tables(run) -> [(title, table)] the reproduction's
    report shows besides the verdicts: "module:name" of surface functions, or None. merge(rows) -> {file: table}:
    every table of the study from its result rows in any order, so that runs split by seed merge into one
    (``qrobust.experiments.merge``; None: its runs are not merged). demands(config, bar=None) -> [Demand]: the
    replicas a run of it trains from the data alone, which ``reproduce`` trains once for every part before the
    parts run (``qrobust.experiments.replica_plan``; None: it declares none)."""

    name: str
    command: str
    help: str
    config: str
    run: str
    tables: tuple[str, ...]
    figures: str | None = None
    claims: str | None = None
    summary: str | None = None
    report_tables: str | None = None
    merge: str | None = None
    demands: str | None = None

    def get(self, field: str):
        """The object a reference names (``config``, ``run``, ``figures``, ``claims``, ``summary``,
        ``report_tables``, ``merge``, ``demands``), imported now; None where the entry has none."""
        return resolve(getattr(self, field))


def resolve(reference: str | Callable | None):
    """The object "module:name" names (or the object itself)."""
    if reference is None or not isinstance(reference, str):
        return reference
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


_E = "qrobust.experiments"
_P = f"{_E}.replica_plan"
_STUDIES: dict[str, Study] = {s.name: s for s in (
    Study("sweep", "sweep", "the noise response: model x corruption x alpha x seed (the paper's Fig. 2)",
          f"{_E}.sweep_grid:SweepConfig", f"{_E}.sweep:run_sweep", ("results.csv", "summary.csv",
                                                                      "critical_points.csv"),
          figures="qrobust.report:sweep_figures", claims="qrobust.analysis.claims:sweep_verdicts",
          summary="qrobust.report:sweep_summary", merge=f"{_E}.sweep:sweep_tables", demands=f"{_P}:sweep_demands"),
    Study("controls", "controls", "is it quantum? the QNN beside classical controls of its model class, under label "
          "flipping", f"{_E}.controls:ControlsConfig", f"{_E}.controls:run_controls",
          ("controls.csv", "quantum.csv", "results.csv", "summary.csv", "critical_points.csv"),
          figures="qrobust.report:sweep_figures", claims="qrobust.analysis.claims:controls_verdicts",
          summary="qrobust.report:controls_summary", report_tables="qrobust.report:controls_tables",
          merge=f"{_E}.controls:merged_tables", demands=f"{_P}:sweep_demands"),
    Study("device", "device", "does resilience survive a device? the QNN under label flipping at finite shots and "
          "gate noise, the MLP beside it exact", f"{_E}.device:DeviceConfig", f"{_E}.device:run_device",
          ("device.csv", "results.csv", "summary.csv", "critical_points.csv", "device_exact.csv", "exact_reading.csv",
           "gradient_variance.csv"),
          figures="qrobust.report:device_figures", claims="qrobust.analysis.claims:device_verdicts",
          summary="qrobust.report:device_summary", report_tables="qrobust.report:device_tables",
          merge=f"{_E}.device:merged_tables", demands=f"{_P}:sweep_demands"),
    Study("attack", "attack", "against the strongest attacker: random, heuristic and adaptive label flips per model, "
          "beside certified accuracy (partition ensembles, randomized smoothing)",
          f"{_E}.attack:AttackConfig", f"{_E}.attack:run_attack",
          ("attack.csv", "certified.csv", "dpa_attacked.csv", "smoothing.csv", "cost.csv", "results.csv",
           "summary.csv"),
          figures="qrobust.report:attack_figures", claims="qrobust.analysis.claims:attack_verdicts",
          summary="qrobust.report:attack_summary", report_tables="qrobust.report:attack_tables",
          demands=f"{_P}:sweep_demands"),
    Study("gauge", "gauge", "the sweep of quantum data under each gauge of its states (fixed, sign, phase)",
          f"{_E}.sweep_grid:GaugeConfig", f"{_E}.gauge:run_gauge_study", ("gauge.csv",),
          figures="qrobust.report:gauge_figures", claims="qrobust.analysis.claims:gauge_verdicts",
          summary="qrobust.report:gauge_summary", demands=f"{_P}:gauge_demands"),
    Study("unlearning", "unlearn", "unlearning of the poisoned samples: methods x seeds x loss weights (Fig. 3)",
          f"{_E}.unlearning_grid:UnlearnConfig", f"{_E}.unlearning:evaluate_unlearning",
          ("final.csv", "results.csv", "teachers.csv", "recovery.csv", "scorecard.csv", "shadows.csv",
           "examples.csv", "shadow_draws.csv"),
          figures="qrobust.report:unlearning_figures", claims="qrobust.analysis.claims:unlearning_verdicts",
          summary="qrobust.report:unlearning_summary", report_tables="qrobust.report:unlearning_tables",
          demands=f"{_P}:teacher_demands"),
    Study("landscape", "landscape", "the Hessian trace and spectrum of trained models against alpha",
          f"{_E}.landscape:LandscapeConfig", f"{_E}.landscape:run_landscape", ("landscape.csv",),
          figures="qrobust.report:landscape_figures", claims="qrobust.analysis.claims:landscape_verdicts",
          summary="qrobust.report:landscape_summary"),
    Study("detection", "detect", "find the flipped labels: model margins, AUM, cleanlab baselines",
          f"{_E}.detection:DetectConfig", f"{_E}.detection:run_detection", ("detection.csv",),
          figures="qrobust.report:detection_figures", summary="qrobust.report:detection_summary"),
)}


def names() -> tuple[str, ...]:
    return tuple(_STUDIES)


def study(name: str) -> Study:
    if name not in _STUDIES:
        raise ConfigError(f"unknown study {name!r}; choose from {', '.join(_STUDIES)}")
    return _STUDIES[name]


def by_command(command: str) -> Study | None:
    return next((s for s in _STUDIES.values() if s.command == command), None)


def register(entry: Study) -> str:
    """Add a study (a user's, for this process); a name or command already used is refused."""
    for s in _STUDIES.values():
        if s.name != entry.name and s.command == entry.command:
            raise ConfigError(f"the command {entry.command!r} is the {s.name} study's")
    if entry.name in _STUDIES and _STUDIES[entry.name] != entry:
        raise ConfigError(f"a study named {entry.name!r} is registered already")
    _STUDIES[entry.name] = entry
    return entry.name


def study_of(path: str | Path) -> str:
    """Which study wrote the run directory ``path``: the name its config.json records; for a directory written
    before config.json named its study, the first study (in registry order) whose marking table is there."""
    path = Path(path)
    config = path / "config.json"
    try:
        recorded = json.loads(config.read_text()).get("study") if config.is_file() else None
    except (ValueError, OSError, AttributeError):
        recorded = None
    if recorded in _STUDIES:
        if not (path / _STUDIES[recorded].tables[0]).is_file():
            raise ConfigError(f"{path} holds an unfinished {recorded} run (no {_STUDIES[recorded].tables[0]}): run "
                              "or resume the study first")
        return recorded
    for s in sorted(_STUDIES.values(), key=lambda s: s.name != "unlearning"):  # an unlearning run holds a
        if (path / s.tables[0]).is_file():                                     # results.csv too
            return s.name
    if not path.is_dir():
        raise ConfigError(f"{path} is not a run directory (it does not exist)")
    raise ConfigError(f"{path} holds no finished study's tables ({', '.join(s.tables[0] for s in _STUDIES.values())})"
                      "; run or resume the study first")
