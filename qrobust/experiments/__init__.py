"""Studies that turn a grid description into replicas and tidy results (the skeleton: ``study``).

Names are imported on first use, so a command that runs one study imports that study only."""

from qrobust._lazy import exports

_WHERE = {
    **dict.fromkeys(("DetectConfig", "run_detection"), "qrobust.experiments.detection"),
    **dict.fromkeys(("LandscapeConfig", "run_landscape"), "qrobust.experiments.landscape"),
    **dict.fromkeys(("DATASETS", "PAPER_DEFAULTS", "ModelSettings", "build_model", "load_dataset"),
                    "qrobust.experiments.settings"),
    "StudyConfig": "qrobust.experiments.study",
    "run_gauge_study": "qrobust.experiments.gauge",
    **dict.fromkeys(("SweepConfig", "GaugeConfig"), "qrobust.experiments.sweep_grid"),
    "run_sweep": "qrobust.experiments.sweep",
    "UnlearnConfig": "qrobust.experiments.unlearning_grid",
    **dict.fromkeys(("Unlearned", "evaluate_unlearning", "run_unlearning"), "qrobust.experiments.unlearning"),
    **dict.fromkeys(("PARTS", "run_reproduce"), "qrobust.experiments.reproduce"),
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = exports(__name__, _WHERE)
