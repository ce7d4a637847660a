"""The reporting layer: a run directory's tables and figures, for the command line and notebooks alike.

Studies (``qrobust.experiments``) compute, and store their tables in their run
directory; they draw nothing. This layer reads a run directory back
(``load_results``, from ``qrobust.store``: any study's tables and settings) and draws its figures
(``draw``) with matplotlib's object API: it never switches the user's backend
or touches pyplot's figures.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qrobust.store import RunResults, load_results, study_of  # noqa: F401 (reading a run directory back)


def draw(path: str | Path, *, critical: pd.DataFrame | None = None) -> list[Path]:
    """Draw the figures of the run in ``path`` into it; returns their paths. For a sweep, ``critical``
    (``qrobust.analysis.critical.critical_points``; by default the stored critical_points.csv, if any)
    marks the critical points."""
    from qrobust import plots

    run = load_results(path)
    s, out = run.settings, run.path
    if run.study == "sweep":
        critical = run.tables.get("critical_points") if critical is None else critical
        figures = [plots.plot_noise_response(run["results"], out / "noise_response.png",
                                             title=str(s.get("dataset", out.name)), critical=critical)]
        if "arch" in run["results"] and run["results"].groupby("model").arch.nunique().max() > 1:
            figures.append(plots.plot_capacity(run["results"], out / "capacity.png", critical=critical))
        return figures
    if run.study == "unlearning":
        figures = [plots.plot_unlearning(run["results"], run["final"], out / "unlearning.png",
                                         title=f"{s.get('dataset')}, alpha={s.get('alpha')}")]
        if len(s.get("kl_ws", ())) > 1 or len(s.get("fo_ws", ())) > 1:
            figures.append(plots.plot_weight_heatmaps(run["final"], out / "weights_heatmap.png"))
        if "known_fraction" in run["final"] and run["final"].known_fraction.nunique() > 1:
            figures.append(plots.plot_corrective(run["final"], out / "corrective.png",
                                                 title=f"{s.get('dataset')}, alpha={s.get('alpha')}"))
        if "scorecard" in run.tables:
            figures.append(plots.plot_scorecard(run["scorecard"], out / "scorecard.png",
                                                title=f"{s.get('dataset')}, alpha={s.get('alpha')}, "
                                                      f"{s.get('shadows')} shadows"))
        return figures
    if run.study == "detection":
        return [plots.plot_detection(run["detection"], out / "detection.png")]
    return [plots.plot_landscape(run["landscape"], out / "landscape.png")]
