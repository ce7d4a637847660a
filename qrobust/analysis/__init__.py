"""Layer 6: analysis of results (statistics over seeds, forgetting measures)."""

from qrobust.analysis.forgetting import epochs_to_recover, loss_mia_accuracy
from qrobust.analysis.summary import final_epoch, final_summary, recovery_summary

__all__ = ["final_epoch", "final_summary", "recovery_summary", "epochs_to_recover", "loss_mia_accuracy"]
