"""The reporting layer: a run directory's tables and figures, for the command line and notebooks alike.

Studies (``qrobust.experiments``) compute, and store their tables in their run
directory; they draw nothing. This layer reads a run directory back
(``load_results``: any study's tables and settings) and draws its figures
(``draw``) with matplotlib's object API: it never switches the user's backend
or touches pyplot's figures.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from qrobust.errors import ConfigError

# the table that marks each study's directory, and the tables it may hold (in order of importance)
STUDIES = {  # checked in this order: an unlearning directory holds a results.csv too
    "landscape": ("landscape.csv",),
    "detection": ("detection.csv",),
    "unlearning": ("final.csv", "results.csv", "teachers.csv", "recovery.csv"),
    "sweep": ("results.csv", "summary.csv", "critical_points.csv"),
}


@dataclass
class RunResults:
    """What a run directory holds: its study, its settings (config.json) and its tables by file stem
    (``results["summary"]`` is summary.csv as a DataFrame)."""

    path: Path
    study: str
    settings: dict
    tables: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.tables[name]


def study_of(path: str | Path) -> str:
    """Which study wrote ``path`` (by the tables it holds)."""
    path = Path(path)
    for name, tables in STUDIES.items():
        if (path / tables[0]).is_file():
            return name
    if not path.is_dir():
        raise ConfigError(f"{path} is not a run directory (it does not exist)")
    raise ConfigError(f"{path} holds no finished study's tables ({', '.join(t[0] for t in STUDIES.values())}); "
                      "run or resume the study first")


def load_results(path: str | Path) -> RunResults:
    """The settings and every table of the run directory ``path`` (see ``RunResults``)."""
    path = Path(path)
    study = study_of(path)
    config = path / "config.json"
    try:
        settings = json.loads(config.read_text())["settings"] if config.is_file() else {}
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{config} is not a qrobust configuration ({exc})") from None
    tables = {name[:-4]: pd.read_csv(path / name) for name in STUDIES[study] if (path / name).is_file()}
    return RunResults(path, study, settings if isinstance(settings, dict) else {}, tables)


def draw(path: str | Path, *, critical: pd.DataFrame | None = None) -> list[Path]:
    """Draw the figures of the run in ``path`` into it; returns their paths. For a sweep, ``critical``
    (``qrobust.analysis.critical.critical_points``; by default the stored critical_points.csv, if any)
    marks the critical points."""
    from qrobust import plots

    run = load_results(path)
    s, out = run.settings, run.path
    if run.study == "sweep":
        critical = run.tables.get("critical_points") if critical is None else critical
        return [plots.plot_noise_response(run["results"], out / "noise_response.png",
                                          title=str(s.get("dataset", out.name)), critical=critical)]
    if run.study == "unlearning":
        figures = [plots.plot_unlearning(run["results"], run["final"], out / "unlearning.png",
                                         title=f"{s.get('dataset')}, alpha={s.get('alpha')}")]
        if len(s.get("kl_ws", ())) > 1 or len(s.get("fo_ws", ())) > 1:
            figures.append(plots.plot_weight_heatmaps(run["final"], out / "weights_heatmap.png"))
        return figures
    if run.study == "detection":
        return [plots.plot_detection(run["detection"], out / "detection.png")]
    return [plots.plot_landscape(run["landscape"], out / "landscape.png")]
