"""Layer 6: analysis of results (statistics over seeds, ...)."""

from qrobust.analysis.summary import final_epoch, final_summary

__all__ = ["final_epoch", "final_summary"]
