"""Analysis of results (statistics over seeds, critical points, forgetting, detection, landscape).

Names are imported on first use (the critical-point fits import scipy.optimize, which a sweep does not need)."""

from qrobust._lazy import exports

_WHERE = {
    **dict.fromkeys(("analyze_sweeps", "critical_points", "fit_step", "logistic_step", "transition_width"),
                    "qrobust.analysis.critical"),
    **dict.fromkeys(("detection_metrics", "margin_scores"), "qrobust.analysis.detection"),
    **dict.fromkeys(("epochs_to_recover", "loss_mia_accuracy", "score_students", "scorecard"),
                    "qrobust.analysis.forgetting"),
    **dict.fromkeys(("bernoulli_divergences", "example_epsilons", "forgetting_quality", "score_shadows"),
                    "qrobust.analysis.ulira"),
    **dict.fromkeys(("curvature", "dense_hessian", "hessian_trace", "hutchinson_trace", "lanczos_eigenvalues"),
                    "qrobust.analysis.landscape"),
    **dict.fromkeys(("final_epoch", "final_summary", "recovery_summary"), "qrobust.analysis.summary"),
}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = exports(__name__, _WHERE)
