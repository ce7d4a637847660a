"""Layer 5: experiments that turn a grid description into replicas and tidy results."""

from qrobust.experiments.settings import DATASETS, PAPER_DEFAULTS, ModelSettings, build_model, load_dataset
from qrobust.experiments.sweep import SweepConfig, run_sweep

__all__ = ["DATASETS", "PAPER_DEFAULTS", "ModelSettings", "build_model", "load_dataset", "SweepConfig", "run_sweep"]
