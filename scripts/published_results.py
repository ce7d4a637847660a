"""Turn the numbers the paper's authors published with their code into plain CSV tables (run once; the CSVs are
committed under qrobust/paper/ and read by ``qrobust.paper``; nothing here runs in the tests or at run time).

Source: github.com/yutuer21/quantum-machine-unlearning (MIT licence), data/*.npy, described in its
data/README.md: fig2c/fig2d (MNIST / XXZ noise response: MLP flip, QNN flip, MLP features, QNN features x
10 alphas x 5 runs; final training and validation accuracy) and fig3a/fig3b (unlearning: retrain, finetune,
scrub, grad-asc x 5 runs x 50 steps). The files are pickled object arrays (dicts of floats, some as pickled
JAX arrays): they are read with an unpickler that builds nothing but numpy arrays and scalars, never with
``allow_pickle=True``.

    python scripts/published_results.py PATH/TO/quantum-machine-unlearning/data qrobust/paper
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.lib import format as npy_format

_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar")}


def _array_from_jax_pickle(fun, args, arr_state, aval_state):
    """What a pickled JAX array holds, as a numpy array (its device placement is dropped)."""
    array = fun(*args)
    array.__setstate__(arr_state)
    return array


class _NumbersOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("jax._src.array", "_reconstruct_array"):
            return _array_from_jax_pickle
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to build {module}.{name}")


def load_object_npy(path: Path) -> np.ndarray:
    with open(path, "rb") as fh:
        version = npy_format.read_magic(fh)
        read_header = npy_format.read_array_header_1_0 if version == (1, 0) else npy_format.read_array_header_2_0
        shape, _, _ = read_header(fh)
        return np.asarray(_NumbersOnly(fh).load(), dtype=object).reshape(shape)


def noise_table(data: Path) -> pd.DataFrame:
    rows = []
    settings = [("mlp", "flip"), ("qnn", "flip"), ("mlp", "features"), ("qnn", "features")]
    for dataset, name in (("mnist", "fig2c_mnist_phase.npy"), ("xxz", "fig2d_xxz_phase.npy")):
        cells = load_object_npy(data / name).reshape(4, 10, 5)
        for (model, corruption), block in zip(settings, cells):
            for k in range(10):
                for run in range(5):
                    d = block[k, run]
                    rows.append(dict(dataset=dataset, model=model, corruption=corruption, alpha=round(0.1 * k, 1),
                                     run=run, train_acc=float(d["acc"]), val_acc=float(d["val_acc"])))
    return pd.DataFrame(rows)


def unlearning_table(data: Path) -> pd.DataFrame:
    rows = []
    methods = ("retrain", "finetune", "scrub", "ga")
    for dataset, fig in (("mnist", "fig3a"), ("xxz", "fig3b")):
        for model in ("qnn", "mlp"):
            cells = load_object_npy(data / f"{fig}_{dataset}_{model}_y.npy")
            for m, method in enumerate(methods):
                for run in range(cells.shape[1]):
                    for step in range(cells.shape[2]):
                        d = cells[m, run, step]
                        rows.append(dict(dataset=dataset, model=model, method=method, run=run, step=step,
                                         **{k: float(np.asarray(v)) for k, v in d.items()}))
    return pd.DataFrame(rows)


def main(data: str, out: str) -> None:
    data, out = Path(data), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    noise_table(data).to_csv(out / "published_noise.csv", index=False, float_format="%.6g")
    unlearning_table(data).to_csv(out / "published_unlearning.csv", index=False, float_format="%.6g")


if __name__ == "__main__":
    main(*sys.argv[1:3])
