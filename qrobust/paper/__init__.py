"""The paper's published numbers, as data (Chen & Zhang, arXiv:2508.02422).

The authors published their final accuracies with their code (github.com/yutuer21/quantum-machine-unlearning,
MIT licence, ``data/*.npy``, commit 3e5eb44); ``scripts/published_results.py`` turned them into the two CSV
tables beside this module (read with an unpickler that builds only numpy arrays):

- ``published_noise.csv``: Fig. 2c/2d, the noise response. One row per dataset (mnist, xxz), model (qnn,
  mlp), corruption (flip, features), alpha (0.0 ... 0.9) and run (5 per cell): final ``train_acc`` (against
  the labels trained on) and ``val_acc`` (clean validation labels).
- ``published_unlearning.csv``: Fig. 3a/3b, unlearning at alpha = 0.3. One row per dataset, model, method
  (retrain, finetune, scrub, ga), run (5) and step (0 ... 49): ``val_acc``, ``train_acc``, ``retain_acc``,
  ``forget_acc``.

The reproduction's report judges each of the paper's claims by a stated rule on qrobust's runs, and applies
the same rule to these numbers, so a reader sees whether a departure is qrobust's or already in the paper's
own data.
"""

from __future__ import annotations

from importlib import resources

import pandas as pd

NOISE_DATASETS = ("mnist", "xxz")


def _table(name: str) -> pd.DataFrame:
    """One of the CSV tables beside this module (package data, so an installed wheel has them too)."""
    with resources.files(__package__).joinpath(name).open() as fh:
        return pd.read_csv(fh)


def published_noise(dataset: str | None = None) -> pd.DataFrame:
    """The paper's Fig. 2 final accuracies (all datasets, or ``dataset``'s: "mnist" or "xxz"; the paper's XXZ
    states carry arbitrary phases, qrobust's ``phase`` gauge)."""
    table = _table("published_noise.csv")
    if dataset is None:
        return table
    if dataset not in NOISE_DATASETS:
        raise ValueError(f"the paper published noise responses for {', '.join(NOISE_DATASETS)}, not {dataset!r}")
    return table[table.dataset == dataset].reset_index(drop=True)


def published_unlearning(dataset: str | None = None) -> pd.DataFrame:
    """The paper's Fig. 3 unlearning curves (all datasets, or ``dataset``'s)."""
    table = _table("published_unlearning.csv")
    return table if dataset is None else table[table.dataset == dataset].reset_index(drop=True)
