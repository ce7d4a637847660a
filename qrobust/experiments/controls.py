"""The controls study, "Is it quantum?": the QNN, the MLP and classical controls of the QNN's own model class
(``qrobust.models.controls``) trained side by side under label flipping, each exactly as the QNN is trained.

It is a sweep (one resumable run directory: results.csv, summary.csv, critical_points.csv, with config.json
naming the study "controls") plus two tables of ``qrobust.analysis.controls``: controls.csv (per model, its clean
accuracy, memorisation at alpha 0.3, plateau and critical point, with intervals) and quantum.csv (per claim of
the paper, whether it is QNN-specific: the QNN differs from every control by a margin fixed in the code).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from qrobust.corruption import CORRUPTIONS
from qrobust.experiments.sweep_grid import SweepConfig
from qrobust.models import registry
from qrobust.models.controls import CONTROLS
from qrobust.options import option

# quadratic_pm1 (the QNN's exact +-1 spectrum) is trained only when named: its QR of a d x d/2 matrix and the
# QR's gradient took 0.85 s per replica-step at d = 1024 on this project's 2-core CPU (measured 2026-12-06, 8
# replicas vmapped: XLA's batched QR), so MNIST's 60 replicas x 200 steps would take about 2.8 hours
MODELS = ("qnn", "mlp") + tuple(c for c in CONTROLS if c != "quadratic_pm1")


@dataclass(frozen=True)
class ControlsConfig(SweepConfig):
    """The controls study (module docstring): a ``SweepConfig`` whose models default to the QNN, the MLP and
    every control but quadratic_pm1 (``MODELS``), and whose corruption defaults to label flipping."""

    models: tuple[str, ...] | None = option(None, flag="--model", repeat=True, group="models",
                                            choices=registry.BUILT_IN + CONTROLS,
                                            help="repeat; default qnn, mlp and every control but quadratic_pm1 "
                                                 "(hours on a CPU: docs/controls.md)")
    corruptions: tuple[str, ...] = option(("flip",), flag="--corruption", repeat=True, group="grid",
                                          choices=CORRUPTIONS, help="repeat; default flip")

    def __post_init__(self):
        if self.models is None:
            object.__setattr__(self, "models", MODELS)
        super().__post_init__()

    def validate(self) -> "ControlsConfig":
        from qrobust.errors import ConfigError

        super().validate()
        several = self.several_architectures()
        if several:
            raise ConfigError(f"the controls study compares one architecture of each model: give one value of "
                              f"{', '.join(several)} (a capacity or learning-rate axis is the sweep's: qrobust sweep)")
        if "qnn" not in self.models or "flip" not in self.corruptions:
            raise ConfigError("the controls study compares the QNN with its controls under label flipping: keep "
                              "--model qnn and --corruption flip")
        return self


def run_controls(config: ControlsConfig, out: str | Path | None = None, *, progress: bool = True) -> pd.DataFrame:
    """Run (or resume) the controls study; returns controls.csv's table (its ``attrs["specificity"]``: quantum.csv's)."""
    from qrobust.experiments.sweep import run_sweep_study

    tables = run_sweep_study(config, out, progress=progress, study_name="controls", tables=controls_tables)
    table = tables["controls.csv"]
    table.attrs["specificity"] = tables["quantum.csv"]
    return table


def controls_tables(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The controls' own tables from the sweep's results, in the order they are written (controls.csv, which
    marks a finished run, last)."""
    from qrobust.analysis.controls import quantities, specificity
    from qrobust.analysis.critical import critical_points

    critical = critical_points(results)
    table = quantities(results, critical)
    return {"critical_points.csv": critical, "quantum.csv": specificity(table), "controls.csv": table}


def merged_tables(rows: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every table of the controls study from its result rows in any order (``qrobust.experiments.merge``)."""
    from qrobust.experiments.sweep import sweep_tables

    tables = sweep_tables(rows)
    return dict(tables, **controls_tables(tables["results.csv"]))
