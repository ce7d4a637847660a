"""Layer 5: studies that turn a grid description into replicas and tidy results (the skeleton: ``study``)."""

from qrobust.experiments.detection import DetectConfig, run_detection
from qrobust.experiments.landscape import LandscapeConfig, run_landscape
from qrobust.experiments.settings import DATASETS, PAPER_DEFAULTS, ModelSettings, build_model, load_dataset
from qrobust.experiments.study import StudyConfig
from qrobust.experiments.sweep import SweepConfig, run_sweep
from qrobust.experiments.unlearning import UnlearnConfig, run_unlearning

__all__ = ["DATASETS", "PAPER_DEFAULTS", "ModelSettings", "build_model", "load_dataset", "StudyConfig",
           "SweepConfig", "run_sweep", "UnlearnConfig", "run_unlearning", "DetectConfig", "run_detection",
           "LandscapeConfig", "run_landscape"]
