"""The aimed poisoners' priorities: which training samples "boundary" and "quid" flip first.

``qrobust.corruption`` ranks a replica's flips by a score per sample; a study
supplies the scores through ``Priorities.rows``:
- "quid": ``corruption.quid_scores`` of the clean training set (the same for every replica);
- "boundary": -|p - 1/2|, p the probability a clean reference model of the replica's family gives each
  training sample: the sweep's own clean replica of that seed (alpha 0, the model's first learning rate;
  same initial parameters and batch order), trained first as chunks named "reference-MODEL-..." of the run
  directory, so a resumed run does not train it again;
- every other corruption: zeros (unused).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from qrobust.corruption import CORRUPTIONS, quid_scores
from qrobust.data import Dataset
from qrobust.experiments import study
from qrobust.experiments.chunks import plan_chunks, run_chunks
from qrobust.models import Model, batch_logits


class Priorities:
    """Per-sample scores of the aimed poisoners for one model's replicas (see the module docstring)."""

    def __init__(self, dataset: Dataset, references: dict[int, np.ndarray] | None = None):
        self.dataset, self.n = dataset, len(dataset.y_train)
        self.references = references or {}

    @functools.cached_property
    def quid(self) -> np.ndarray:
        """(N,) ``corruption.quid_scores`` of the clean training set, computed on first use (N x N overlaps)."""
        return quid_scores(self.dataset.x_train, self.dataset.y_train).astype(np.float32)

    def rows(self, corruptions, seeds) -> np.ndarray:
        """(R, N) float32 scores for replicas with these corruptions and seeds."""
        out = np.zeros((len(seeds), self.n), np.float32)
        for i, (kind, seed) in enumerate(zip(corruptions, seeds)):
            if kind == "quid":
                out[i] = self.quid
            elif kind == "boundary":
                out[i] = -np.abs(self.references[int(seed)] - 0.5)
        return out


def plan_references(config, name: str, train: Callable, inputs: Callable, val, seeds, store) -> list:
    """The chunks "reference-NAME-..." that train the clean reference models of ``seeds`` with ``train`` (the
    study's own program for model ``name``)."""
    table = pd.DataFrame({"program": name, "seed": list(seeds)})
    return plan_chunks(table, "program", lambda m, n: study.chunk_size(
        config, store, m, m, study.program_footprint(train, study.training_args(inputs, val)), n),
        prefix="reference-", store=store)


def run_references(chunks: list, model: Model, train: Callable, inputs: Callable, val, dataset: Dataset,
                   learning_rate: float, store, bar) -> dict[int, np.ndarray]:
    """seed -> (N,) probabilities the clean model of that seed gives each training sample (``chunks``:
    ``plan_references``; those already in ``store`` are read back)."""
    logits = jax.jit(jax.vmap(batch_logits(model), in_axes=(0, None)))
    x = model.prepare(jnp.asarray(dataset.x_train))

    def run(chunk):
        rows, k = chunk.padded, len(chunk.rows)
        zeros = np.zeros(len(rows), np.int32)
        params, keys, data = inputs(rows.seed.to_numpy(), zeros + CORRUPTIONS.index("flip"), zeros)
        params, _ = train(params, jnp.full(len(rows), learning_rate, jnp.float32), keys, data, val)
        p = np.asarray(jax.nn.sigmoid(logits(params, x)), np.float32)[:k]
        return chunk.rows.drop(columns="program"), {"p": p}

    done = run_chunks(chunks, run, store, bar)
    return {int(seed): done.arrays[c.name]["p"][i] for c in chunks for i, seed in enumerate(done.frames[c.name].seed)}
