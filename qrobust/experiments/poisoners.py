"""The aimed poisoners' priorities: which training samples "boundary" and "quid" flip first.

``qrobust.corruption`` ranks a replica's flips by a score per sample; a study
supplies the scores through ``Priorities.rows``:
- "quid": ``corruption.quid_scores`` of the clean training set (the same for every replica);
- "boundary": -|p - 1/2|, p the probability a clean reference model of the replica's family gives each
  training sample: the sweep's own clean replica of that seed (alpha 0, the model's first learning rate;
  same initial parameters and batch order), trained first as chunks named "reference-MODEL-..." of the run
  directory, so a resumed run does not train it again;
- "gradient", "influence", "transfer": the adaptive attacks' priorities of each (corruption, seed), computed by
  the attack study (``qrobust.experiments.adversary``) and passed in as ``attacks``;
- every other corruption: zeros (unused).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from qrobust.corruption import CORRUPTIONS, poisoner
from qrobust.data import Dataset
from qrobust.experiments import study
from qrobust.experiments.chunks import run_chunks
from qrobust.models import batch_logits


class Priorities:
    """Per-sample scores of the aimed poisoners for one model's replicas (see the module docstring)."""

    def __init__(self, dataset: Dataset, references: dict[int, np.ndarray] | None = None,
                 attacks: dict[tuple[str, int], np.ndarray] | None = None):
        self.dataset, self.n = dataset, len(dataset.y_train)
        self.references = references or {}
        self.attacks = attacks or {}

    @functools.lru_cache(maxsize=None)
    def data_scores(self, kind: str) -> np.ndarray:
        """(N,) the poisoner's ``data_scores`` of the clean training set, computed on first use."""
        return poisoner(kind).data_scores(self.dataset.x_train, self.dataset.y_train).astype(np.float32)

    def rows(self, corruptions, seeds) -> np.ndarray:
        """(R, N) float32 scores for replicas with these corruptions and seeds (zeros for an unranked poisoner)."""
        out = np.zeros((len(seeds), self.n), np.float32)
        for i, (kind, seed) in enumerate(zip(corruptions, seeds)):
            source = poisoner(kind).scores
            if source == "data":
                out[i] = self.data_scores(kind)
            elif source == "reference":
                out[i] = -np.abs(self.references[int(seed)] - 0.5)
            elif source == "attack":
                out[i] = self.attacks[(kind, int(seed))]
        return out


def needs_references(corruptions) -> bool:
    """Whether any of ``corruptions`` ranks by a clean reference model's scores (``Poisoner.scores``)."""
    return any(poisoner(c).scores == "reference" for c in corruptions)


def needs_attacks(corruptions) -> bool:
    """Whether any of ``corruptions`` is an adaptive attack (``Poisoner.scores`` "attack")."""
    return any(poisoner(c).scores == "attack" for c in corruptions)


def plan_references(config, program, seeds, store) -> list:
    """The chunks "reference-PROGRAM-..." that train the clean reference models of ``seeds`` with the study's own
    ``program`` (a ``study.Program``; its chunk size is the program's own)."""
    table = pd.DataFrame({"program": program.name, "seed": list(seeds)})
    return study.plan(config, store, table, {program.name: program}, prefix="reference-", sizes_key="")


def run_references(chunks: list, program, learning_rate: float, store, bar) -> dict[int, np.ndarray]:
    """seed -> (N,) probabilities the clean model of that seed gives each training sample (``chunks``:
    ``plan_references``; those already in ``store`` are read back)."""
    model = program.built
    logits = jax.jit(jax.vmap(batch_logits(model), in_axes=(0, None)))
    x = model.prepare(jnp.asarray(program.data.x_train))

    def run(chunk):
        rows, k = chunk.padded, len(chunk.rows)
        zeros = np.zeros(len(rows), np.int32)
        params, _, _ = program.train(rows.seed.to_numpy(), zeros + CORRUPTIONS.index("flip"), zeros,
                                     learning_rates=np.full(len(rows), learning_rate), data=False)
        p = np.asarray(jax.nn.sigmoid(logits(params, x)), np.float32)[:k]
        return chunk.rows.drop(columns="program"), {"p": p}

    done = run_chunks(chunks, run, store, bar)
    return {int(seed): done.arrays[c.name]["p"][i] for c in chunks for i, seed in enumerate(done.frames[c.name].seed)}
