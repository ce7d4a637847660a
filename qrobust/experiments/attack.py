"""The attack study, "Against the strongest attacker": damage curves of random, heuristic and adaptive label
flips per model, beside certified accuracy.

1. A sweep (results.csv, summary.csv) of the models under random flips ("flip"), a heuristic ("boundary") and
   the adaptive attacks of ``qrobust.attacks`` ("gradient", "influence", "transfer"), all at the same counts
   (floor(alpha N) to even, half per class); the attacks' priorities from ``qrobust.experiments.adversary``,
   their wall time in cost.csv.
2. Deep partition aggregation per model (certified.csv): the training set hashed into ``partitions`` parts by
   input (``qrobust.analysis.certify.hash_partition``); every seed's k partition models are replicas of ONE
   compiled program (``Program.train`` with a stream per replica), all k with the seed's keys; each trains the
   same number of optimiser steps as the full model (``dpa_epochs`` None: the paper's epochs times the ratio of
   batches per epoch); the ensemble's certified flips per validation point and certified accuracy against flips.
3. Randomized smoothing over labels (smoothing.csv) where its closed form applies (``certify``'s docstring):
   ridge regression on the states' classical view and kernel ridge with the fidelity kernel, flip noise
   ``smoothing_q``, ridge ``ridge``.
4. attack.csv (``qrobust.analysis.attack.damage``): the damage curves with intervals; the verdicts
   (``qrobust.analysis.claims.attack_claims``) were fixed in the code before any run.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np
import pandas as pd

from qrobust.corruption import CORRUPTIONS
from qrobust.errors import ConfigError
from qrobust.experiments.adversary import AttackOptions
from qrobust.experiments.sweep_grid import SweepConfig
from qrobust.models import registry
from qrobust.models.controls import CONTROLS
from qrobust.options import floats, number, option

MODELS = ("qnn", "mlp", "logistic", "quadratic")
ATTACKS = ("flip", "boundary", "gradient", "influence", "transfer")
SMOOTHING_FEATURES = ("ridge", "fidelity")


@dataclass(frozen=True)
class AttackConfig(SweepConfig):
    """The attack study (module docstring): a ``SweepConfig`` over the attacks, plus the attacks', partition
    ensemble's and smoothing's settings."""

    models: tuple[str, ...] = option(MODELS, flag="--model", repeat=True, group="models",
                                     choices=registry.BUILT_IN + CONTROLS,
                                     help="repeat; default qnn, mlp, logistic, quadratic")
    corruptions: tuple[str, ...] = option(ATTACKS, flag="--corruption", repeat=True, group="grid",
                                          choices=CORRUPTIONS, help="repeat; default flip (random), boundary "
                                          "(heuristic), gradient, influence, transfer (adaptive)")
    alphas: tuple[float, ...] = option((0.0, 0.1, 0.2, 0.3, 0.4), group="grid",
                                       parse=lambda t: floats(t, "--alphas"),
                                       metavar="A:B:STEP|LIST", help="flip fractions (default 0 to 0.4: the plateau)")
    unroll_steps: int = option(20, group="grid", parse=number(int, "--unroll-steps"),
                               help="gradient attack: full-batch optimiser steps unrolled (default 20)")
    rounds: int = option(2, group="grid", parse=number(int, "--rounds"),
                         help="influence attack: greedy rounds, each a retraining (default 2)")
    damping: float = option(1e-3, group="grid", parse=number(float, "--damping"),
                            help="influence attack: damping added to the Gauss-Newton matrix (default 1e-3)")
    cg_iterations: int = option(100, group="grid", parse=number(int, "--cg-iterations"),
                                help="influence attack: conjugate-gradient iterations where the model has over "
                                     "4096 weights (default 100)")
    surrogate: str = option("logistic", group="grid", choices=registry.BUILT_IN + CONTROLS,
                            help="transfer attack: the model the flips are chosen against (default logistic)")
    transfer_from: str = option("influence", group="grid", choices=("influence", "gradient"),
                                help="transfer attack: which attack runs on the surrogate (default influence)")
    partitions: int = option(10, group="grid", parse=number(int, "--partitions"),
                             help="deep partition aggregation: partitions (default 10; 0: no certificate)")
    dpa_epochs: int | None = option(None, group="training", parse=number(int, "--dpa-epochs"),
                                    help="epochs of each partition model (default: as many optimiser steps as the "
                                         "full model's)")
    smoothing_q: float = option(0.1, group="grid", parse=number(float, "--smoothing-q"),
                                help="randomized smoothing: each label flipped with this probability (default 0.1)")
    ridge: float = option(1.0, group="grid", parse=number(float, "--ridge"),
                          help="randomized smoothing: the ridge of its least-squares classifiers (default 1.0)")

    def validate(self) -> "AttackConfig":
        super().validate()
        if "flip" not in self.corruptions:
            raise ConfigError("the attack study compares attacks with random flips: keep --corruption flip")
        if not self.unroll_steps >= 1 or not self.rounds >= 1 or int(self.rounds) != self.rounds:
            raise ConfigError(f"--unroll-steps and --rounds must be positive integers, got {self.unroll_steps}, "
                              f"{self.rounds}")
        if int(self.cg_iterations) != self.cg_iterations or self.cg_iterations < 1:
            raise ConfigError(f"--cg-iterations must be a positive integer, got {self.cg_iterations}")
        if not (0 <= self.damping < math.inf):
            raise ConfigError(f"--damping must be a non-negative number, got {self.damping}")
        if int(self.partitions) != self.partitions or self.partitions < 0 or self.partitions == 1:
            raise ConfigError(f"--partitions must be 0 (no certificate) or at least 2, got {self.partitions}")
        if not (0 < self.smoothing_q < 0.5):
            raise ConfigError(f"--smoothing-q must lie in (0, 0.5), got {self.smoothing_q}")
        if not (0 < self.ridge < math.inf):
            raise ConfigError(f"--ridge must be positive, got {self.ridge}")
        if self.dpa_epochs is not None and self.dpa_epochs < 1:
            raise ConfigError(f"--dpa-epochs must be positive, got {self.dpa_epochs}")
        if self.encodings() != ("amplitude",):
            raise ConfigError("the attack study reads amplitude-encoded states (its surrogate and smoothing do)")
        registry.spec(self.surrogate)
        return self

    def attack_options(self) -> AttackOptions:
        return AttackOptions(unroll_steps=int(self.unroll_steps), rounds=int(self.rounds),
                             damping=float(self.damping), surrogate=self.surrogate,
                             transfer_from=self.transfer_from, cg_iterations=int(self.cg_iterations))


def run_attack(config: AttackConfig, out: str | Path | None = None, *, progress: bool = True) -> pd.DataFrame:
    """Run the attack study; returns attack.csv's table (``attrs``: certified, smoothing, cost)."""
    from qrobust.analysis.attack import certified_curves, damage
    from qrobust.experiments import adversary
    from qrobust.experiments.sweep import run_sweep

    costs = []

    def attacks(programs, dataset, counts):
        scores, cost = adversary.priorities(config, programs, dataset, counts, config.attack_options())
        costs.append(cost)
        return scores

    start = time.perf_counter()
    results = run_sweep(config, out, progress=progress, study_name="attack", attacks=attacks)
    sweep_seconds = time.perf_counter() - start
    config = config.validate()
    from qrobust.experiments.study import load

    dataset = load(config)
    votes, dpa_cost = partition_votes(config, dataset) if config.partitions else ({}, [])
    certified = certified_curves(votes, dataset.y_val, len(dataset.y_train))
    smoothing = smoothing_table(config, dataset)
    cost = pd.concat(costs + [pd.DataFrame(dpa_cost), pd.DataFrame(
        [dict(attack="sweep (training and attacks)", model="all", seconds=sweep_seconds, replicas=np.nan,
              seconds_per_replica=np.nan)])], ignore_index=True)
    table = damage(results)
    if out is not None:
        from qrobust import sharding
        from qrobust.files import atomic_write_text

        if sharding.is_primary():
            for name, frame in (("certified.csv", certified), ("smoothing.csv", smoothing), ("cost.csv", cost),
                                ("attack.csv", table)):  # attack.csv last: it marks a finished run
                atomic_write_text(Path(out) / name, frame.to_csv(index=False))
    table.attrs.update(certified=certified, smoothing=smoothing, cost=cost)
    return table


def _dpa_epochs(config, settings, n_train: int, largest: int) -> int:
    """The partition models' epochs: ``dpa_epochs``, else the full model's optimiser steps over the batches per
    epoch of the largest partition (rounded up)."""
    if config.dpa_epochs is not None:
        return int(config.dpa_epochs)
    full = math.ceil(n_train / settings.batch_size) * settings.epochs
    return math.ceil(full / math.ceil(largest / settings.batch_size))


def partition_votes(config: AttackConfig, dataset) -> tuple[dict, list]:
    """{model: (S, k, M) votes of each seed's k partition models on the validation set}, and their cost rows.
    Every model's S x k replicas are one call of one compiled program."""
    from qrobust.analysis.certify import hash_partition, partition_streams
    from qrobust.data.features import encode
    from qrobust.experiments import study
    from qrobust.models import batch_logits

    data = encode(dataset, "amplitude", config.n_features)
    k, seeds = int(config.partitions), np.asarray(config.seeds)
    streams = partition_streams(hash_partition(np.asarray(dataset.x_train), k), k)
    largest = int(streams.sum(1).max())
    votes, costs = {}, []
    for m in config.models:
        settings = config.settings_for(m)
        program = study.build_program(config, f"dpa-{m}", m, settings, data,
                                      epochs=_dpa_epochs(config, settings, len(dataset.y_train), largest))
        start = time.perf_counter()
        r = len(seeds) * k
        zeros = np.zeros(r, np.int32)
        params, _, _ = program.train(np.repeat(seeds, k), zeros + CORRUPTIONS.index("flip"), zeros,
                                     stream=np.tile(streams, (len(seeds), 1)))
        logits = jax.vmap(batch_logits(program.built), in_axes=(0, None))(params, program.val.x)
        votes[m] = np.asarray(logits > 0).astype(int).reshape(len(seeds), k, -1)
        seconds = time.perf_counter() - start
        costs.append(dict(attack=f"dpa ({k} partitions, {program.epochs} epochs)", model=m, seconds=seconds,
                          replicas=r, seconds_per_replica=seconds / r))
    return {"seeds": seeds, **votes}, costs


def smoothing_table(config: AttackConfig, dataset) -> pd.DataFrame:
    """Randomized smoothing's certified accuracy against flips for each classifier its closed form covers
    (``SMOOTHING_FEATURES``): columns features, q, ridge, flips, alpha, certified_acc, clean_acc."""
    from qrobust.analysis.certify import (certified_accuracy, kernel_coefficients, ridge_coefficients,
                                          smoothed_prediction, smoothing_radius)
    from qrobust.data.encoding import classical_view
    from qrobust.models.controls import fidelity_features

    x, xv = np.asarray(dataset.x_train), np.asarray(dataset.x_val)
    y, yv, q = np.asarray(dataset.y_train), np.asarray(dataset.y_val), float(config.smoothing_q)
    betas = {"ridge": ridge_coefficients(classical_view(x), classical_view(xv), config.ridge),
             "fidelity": kernel_coefficients(np.asarray(fidelity_features(x, x)), np.asarray(fidelity_features(xv, x)),
                                             config.ridge)}
    rows = []
    for name, beta in betas.items():
        classes, lower = smoothed_prediction(beta, y, q)
        radius = np.array([smoothing_radius(p, q) for p in lower])
        for r in range(0, max(int(radius.max()), 0) + 1):
            rows.append(dict(features=name, q=q, ridge=config.ridge, flips=r, alpha=r / len(y),
                             certified_acc=float(certified_accuracy(classes, radius, yv, [r])[0]),
                             clean_acc=float(np.mean((beta @ y >= 0.5) == yv))))
    return pd.DataFrame(rows, columns=["features", "q", "ridge", "flips", "alpha", "certified_acc", "clean_acc"])
