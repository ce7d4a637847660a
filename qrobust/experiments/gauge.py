"""The gauge study: one sweep of quantum data under each gauge of its states (``qrobust.data.gauge``).

The global phase of a ground state is physically meaningless, and a QNN cannot
see it; an MLP fed the amplitudes can. This study runs the same sweep (same
seeds, grid and settings) once per gauge, each a resumable sweep directory of its
own (OUT/fixed, OUT/sign, OUT/phase), and returns their final summaries side by
side (OUT/gauge.csv): the QNN's rows agree across gauges up to float rounding
(its logits are gauge invariant), the MLP's show what the choice does to it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from qrobust.data.gauge import GAUGES
from qrobust.data.phases import PHASES
from qrobust.errors import ConfigError
from qrobust.experiments.sweep import SweepConfig, run_sweep


def run_gauge_study(config: SweepConfig, out: str | Path | None = None, *, gauges=GAUGES,
                    progress: bool = True) -> pd.DataFrame:
    """The sweep ``config`` under each of ``gauges``; returns the final summaries with a ``gauge`` column.
    Every configuration is validated before the first sweep runs."""
    from qrobust.analysis.summary import final_summary
    from qrobust.experiments.study import check_axis

    if config.dataset not in PHASES:
        raise ConfigError(f"the gauge study needs quantum data (--dataset {'|'.join(PHASES)}): "
                          f"{config.dataset}'s states have no free phase")
    check_axis("gauge", gauges)
    configs = {g: replace(config, gauge=g).validate() for g in gauges}  # each checks its gauge
    frames = []
    for g, c in configs.items():
        results = run_sweep(c, Path(out) / g if out is not None else None, progress=progress)
        frames.append(final_summary(results).assign(gauge=g))
    summary = pd.concat(frames, ignore_index=True)
    summary = summary[["gauge"] + [c for c in summary.columns if c != "gauge"]]
    if out is not None:
        summary.to_csv(Path(out) / "gauge.csv", index=False)
    return summary
