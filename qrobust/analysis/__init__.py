"""Layer 6: analysis of results (statistics over seeds, critical points, forgetting, detection, landscape)."""

from qrobust.analysis.critical import analyze_sweeps, critical_points, fit_step, logistic_step, transition_width
from qrobust.analysis.detection import detection_metrics, margin_scores
from qrobust.analysis.forgetting import epochs_to_recover, loss_mia_accuracy, score_students
from qrobust.analysis.landscape import hessian_trace, hutchinson_trace, lanczos_eigenvalues
from qrobust.analysis.summary import final_epoch, final_summary, recovery_summary

__all__ = ["analyze_sweeps", "critical_points", "fit_step", "logistic_step", "transition_width",
           "detection_metrics", "margin_scores", "epochs_to_recover", "loss_mia_accuracy", "score_students",
           "hessian_trace", "hutchinson_trace", "lanczos_eigenvalues", "final_epoch", "final_summary",
           "recovery_summary"]
