"""The gauge study: one sweep of quantum data under each gauge of its states (``qrobust.data.gauge``).

The global phase of a ground state is physically meaningless, and a QNN cannot
see it; an MLP fed the amplitudes can. This study runs the same sweep (same
seeds, grid and settings) once per gauge, each a resumable sweep directory of its
own (OUT/fixed, OUT/sign, OUT/phase), and returns their final summaries side by
side (OUT/gauge.csv): the QNN's rows agree across gauges up to float rounding
(its logits are gauge invariant), the MLP's show what the choice does to it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from qrobust.experiments.sweep import run_sweep
from qrobust.experiments.sweep_grid import GaugeConfig


def run_gauge_study(config: GaugeConfig, out: str | Path | None = None, *, progress: bool = True) -> pd.DataFrame:
    """The sweep ``config`` under each of its gauges; returns the final summaries with a ``gauge`` column.
    Every configuration is validated before the first sweep runs."""
    from qrobust.analysis.summary import final_summary

    config = config.validate()
    frames = []
    for g in config.gauges:
        results = run_sweep(config.sweep(g), Path(out) / g if out is not None else None, progress=progress)
        frames.append(final_summary(results).assign(gauge=g))
    summary = pd.concat(frames, ignore_index=True)
    summary = summary[["gauge"] + [c for c in summary.columns if c != "gauge"]]
    if out is not None:
        from qrobust import sharding
        from qrobust.files import atomic_write_text

        if sharding.is_primary():
            atomic_write_text(Path(out) / "gauge.csv", summary.to_csv(index=False))
    return summary
