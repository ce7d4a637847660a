"""Layer 6: analysis of results (statistics over seeds, forgetting measures)."""

from qrobust.analysis.critical import critical_points, fit_step, logistic_step
from qrobust.analysis.forgetting import epochs_to_recover, loss_mia_accuracy
from qrobust.analysis.summary import final_epoch, final_summary, recovery_summary

__all__ = ["critical_points", "fit_step", "logistic_step", "final_epoch", "final_summary", "recovery_summary", "epochs_to_recover", "loss_mia_accuracy"]
