"""qrobust: poisoning resilience and unlearning of quantum and classical classifiers, in JAX.

Chen & Zhang, "Superior resilience to poisoning and amenability to unlearning in quantum machine
learning" (arXiv:2508.02422), reproduced and extended. The curated public API, layer by layer (see the
README); names are imported on first use, so ``import qrobust`` (and ``qrobust --help``) stays fast.
"""

from __future__ import annotations

from qrobust._lazy import exports

__version__ = "0.1.0"

_WHERE = {
    **dict.fromkeys(("analyze_sweeps", "critical_points", "detection_metrics", "final_summary",
                     "hessian_trace", "hutchinson_trace", "lanczos_eigenvalues", "loss_mia_accuracy",
                     "recovery_summary", "score_students"), "qrobust.analysis"),
    **dict.fromkeys(("CORRUPTIONS", "Corrupted", "corruption_count", "flip_labels", "randomize_features"),
                    "qrobust.corruption"),
    **dict.fromkeys(("Dataset", "amplitude_encode", "classical_view", "mnist_embedded", "mnist_from_file",
                     "xxz_dataset"), "qrobust.data"),
    **dict.fromkeys(("EvalData", "TrainData", "make_train_fn"), "qrobust.engine"),
    **dict.fromkeys(("ConfigError", "DataError", "QrobustError", "ResultsMismatchError"), "qrobust.errors"),
    **dict.fromkeys(("PAPER_DEFAULTS", "StudyConfig", "SweepConfig", "load_dataset", "run_sweep", "UnlearnConfig",
                     "run_unlearning", "DetectConfig", "run_detection", "LandscapeConfig", "run_landscape",
                     "run_gauge_study", "evaluate_unlearning", "run_reproduce"),
                    "qrobust.experiments"),
    **dict.fromkeys(("RunResults", "Trained", "load_results"), "qrobust.results"),
    **dict.fromkeys(("Optimizer", "adam"), "qrobust.optimizers"),
    **dict.fromkeys(("ModelSpec", "flax_model", "model_from"), "qrobust.models.registry"),
    **dict.fromkeys(("GaugeConfig",), "qrobust.experiments.sweep_grid"),
    "draw": "qrobust.report",
    "write_report": "qrobust.paper_report",
    **dict.fromkeys(("Model", "mlp", "qnn"), "qrobust.models"),
}

__all__ = sorted(_WHERE)


__getattr__, __dir__ = exports(__name__, _WHERE)
