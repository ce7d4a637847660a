"""Writes the notebooks of this folder (stored without outputs). Run: python notebooks/build_notebooks.py"""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).parent

SETUP = """import tempfile
from pathlib import Path

import pandas as pd
from IPython.display import Image, display

import qrobust
workdir = Path(tempfile.mkdtemp(prefix="qrobust-notebook-"))
print("qrobust", qrobust.__version__, "- results go to", workdir)"""

NOTEBOOKS = {
    "01_quickstart.ipynb": [
        new_markdown_cell("# Quick start: one noise sweep, its figure and its critical point\n\n"
                          "A small sweep (XXZ ground states of a 6-spin ring, 2 seeds, 30 epochs) that runs in about a "
                          "minute on a laptop CPU. Every replica (model x corruption x alpha x seed) trains in one "
                          "compiled, vmapped program. For the paper's settings use `qrobust sweep --dataset mnist` "
                          "(README)."),
        new_code_cell(SETUP),
        new_code_cell("""from qrobust.experiments.sweep import SweepConfig, run_sweep

config = SweepConfig(dataset="xxz", n_qubits=6, n_train_per_class=20, alphas=(0.0, 0.2, 0.4, 0.5, 0.6, 0.8),
                     seeds=(0, 1, 2), epochs=30, depth=2, batch_size=8, hidden=(16, 8))
results = run_sweep(config, workdir / "sweep", progress=False)
results.head()"""),
        new_markdown_cell("Final accuracies, mean over seeds (the summary the figure is drawn from):"),
        new_code_cell("""from qrobust.analysis import final_summary

final_summary(results)[["model", "corruption", "alpha", "train_acc_mean", "val_acc_mean", "memorization_mean"]]"""),
        new_markdown_cell("The critical point: a memorisation step fitted on the realised flip fraction, its 95% "
                          "interval never finer than the grid (three seeds, the fewest it takes; none where there is "
                          "no transition, with the reason)."),
        new_code_cell("""from qrobust.analysis import critical_points
from qrobust.plots import plot_noise_response

critical = critical_points(results)
display(critical[["model", "corruption", "alpha_c_memorization", "alpha_c_memorization_lo",
                  "alpha_c_memorization_hi", "transition", "reason"]])
display(Image(filename=str(plot_noise_response(results, workdir / "noise.png", critical=critical))))"""),
    ],
    "02_unlearning.ipynb": [
        new_markdown_cell("# Unlearning: trajectories and the loss-weight grid\n\n"
                          "Teachers trained on label-flipped data (alpha = 0.3), then every method trains a student; "
                          "SCRUB and gradient ascent over a small weight grid. All students of a model are replicas of "
                          "one program. Small settings (XXZ, 6 spins) so it runs in a few minutes on a CPU."),
        new_code_cell(SETUP),
        new_code_cell("""from qrobust.experiments.unlearning import UnlearnConfig, run_unlearning

config = UnlearnConfig(dataset="xxz", n_qubits=6, n_train_per_class=20, seeds=(0, 1), epochs=15,
                       teacher_epochs=40, methods=("retrain", "finetune", "scrub", "ga"),
                       kl_ws=(0.0, 0.5), fo_ws=(0.0, 0.2, 0.5))
results, final = run_unlearning(config, workdir / "unlearn", progress=False)
final.groupby(["model", "method"])[["val_acc", "forget_acc_clean", "mia_acc", "epochs_to_recover"]].mean()"""),
        new_markdown_cell("Studies return and store tables; figures are drawn from a run directory by the reporting "
                          "layer (`qrobust.report.draw`), which leaves this notebook's matplotlib settings alone. "
                          "`qrobust.load_results` reads any run directory back."),
        new_code_cell("""for figure in qrobust.draw(workdir / "unlearn"):
    display(Image(filename=str(figure)))
qrobust.load_results(workdir / "unlearn").tables.keys()"""),
        new_markdown_cell("Epochs to recover (first epoch within 1 point of the clean model's validation accuracy), "
                          "per method and model:"),
        new_code_cell("""pd.read_csv(workdir / "unlearn" / "recovery.csv")[
    ["model", "method", "kl_w", "fo_w", "n_recovered", "epochs_to_recover_mean", "mia_acc_mean"]]"""),
    ],
    "03_landscape_and_detection.ipynb": [
        new_markdown_cell("# Loss landscape and detection of flipped labels\n\n"
                          "The Hessian trace (exact, and Hutchinson's estimate) and top eigenvalues of trained models "
                          "against alpha; then scoring every training sample by how strongly the model refuses its "
                          "label. Small settings (XXZ, 6 spins)."),
        new_code_cell(SETUP),
        new_code_cell("""from qrobust.experiments.landscape import LandscapeConfig, run_landscape

land = run_landscape(LandscapeConfig(dataset="xxz", n_qubits=6, alphas=(0.0, 0.2, 0.4), seeds=(0, 1), epochs=20,
                                     depth=3, n_eval=20, hutchinson_samples=30), workdir / "landscape",
                     progress=False)
display(land[["model", "alpha", "seed", "trace_exact", "trace_hutchinson", "trace_hutchinson_se", "eig_1", "ratio"]])
for figure in qrobust.draw(workdir / "landscape"):
    display(Image(filename=str(figure)))"""),
        new_code_cell("""from qrobust.experiments.detection import DetectConfig, run_detection

det = run_detection(DetectConfig(dataset="xxz", n_qubits=6, n_train_per_class=20, alphas=(0.1, 0.3), seeds=(0, 1),
                                 epochs=30, folds=3), workdir / "detect", progress=False)
display(det.groupby(["detector", "alpha"])[["auroc", "precision_at_k", "precision", "recall"]].mean())
for figure in qrobust.draw(workdir / "detect"):
    display(Image(filename=str(figure)))"""),
    ],
}


def main():
    for name, cells in NOTEBOOKS.items():
        nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                "language": "python"}})
        nbformat.write(nb, HERE / name)
        print("wrote", HERE / name)


if __name__ == "__main__":
    main()
