"""The attack study, "Against the strongest attacker": damage curves of random, heuristic and adaptive label
flips per model, beside certified accuracy.

1. A sweep (results.csv, summary.csv) of the models under random flips ("flip"), a heuristic ("boundary") and
   the adaptive attacks of ``qrobust.attacks`` ("gradient", "influence", "transfer"), all at the same counts
   (floor(alpha N) to even, half per class); the attacks' priorities from ``qrobust.experiments.adversary``,
   their wall time in cost.csv; both stored in the run directory (chunks "attacks-0000", "attacks-cost-0000"),
   so a resumed run reads them instead of computing them again.
2. Deep partition aggregation per model (certified.csv): the training set hashed into ``partitions`` parts by
   input (``qrobust.analysis.certify.hash_partition``); every seed's k partition models are replicas of ONE
   compiled program (``Program.train`` with a stream per replica), all k with the seed's keys; each trains the
   same number of optimiser steps as the full model (``dpa_epochs`` None: the paper's epochs times the ratio of
   batches per epoch); the ensemble's certified flips per validation point and certified accuracy against flips.
   Every cell's S x k partition models (one model, clean or one attacked cell) are one chunk of the run directory
   ("dpa-MODEL-CELL-0000": each model's votes and validation accuracy), so a resumed run reads the cells it
   finished; only their last epoch is evaluated (the votes read the final weights).
   Under attack (dpa_attacked.csv, ``dpa_attacked``): the same k partition models of each seed trained again on
   the labels each corruption flips at the largest alpha > 0 (default "largest"; "all": every alpha > 0;
   "none"), the flip mask the full model of that seed saw (the same keys, counts and priorities); the attacked
   ensemble's accuracy beside the clean ensemble's certified accuracy at the attack's flip count
   (``qrobust.analysis.attack.attacked_certificates``). The default trains |corruptions| x the clean ensemble's
   replicas, whatever the alpha grid ("all" would multiply that by the number of alphas > 0): the largest alpha
   is each attack at its strongest (the ranked attacks' flip sets are nested across alpha), where the question
   "does the ensemble resist what broke the full model?" is asked.
3. Randomized smoothing over labels (smoothing.csv) where its closed form applies (``certify``'s docstring):
   ridge regression on the states' classical view and kernel ridge with the fidelity kernel, flip noise
   ``smoothing_q``, ridge ``ridge``.
4. attack.csv (``qrobust.analysis.attack.damage``): the damage curves with intervals; the verdicts
   (``qrobust.analysis.claims.attack_claims``) were fixed in the code before any run.
"""

from __future__ import annotations

import logging
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

log = logging.getLogger("qrobust")

MODELS = ("qnn", "mlp", "logistic", "quadratic")
ATTACKS = ("flip", "boundary", "gradient", "influence", "transfer")
SMOOTHING_FEATURES = ("ridge", "fidelity")
DPA_ATTACKED = ("largest", "all", "none")  # which alphas the partition ensembles are trained under attack at


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
    dpa_attacked: str = option("largest", group="grid", choices=DPA_ATTACKED,
                               help="partition ensembles also trained on each corruption's flipped labels at the "
                                    "largest alpha (default), at every alpha > 0 (all), or not (none)")
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
        if self.dpa_attacked not in DPA_ATTACKED:
            raise ConfigError(f"--dpa-attacked must be one of {', '.join(DPA_ATTACKED)}, got {self.dpa_attacked!r}")
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

    def attacked_cells(self) -> list[tuple[str, float]]:
        """The (corruption, alpha) cells whose flipped labels the partition ensembles are also trained on
        (``dpa_attacked``): every corruption of the study at its largest alpha > 0, at every alpha > 0, or none
        (none either without partitions)."""
        positive = sorted(a for a in self.alphas if a > 0)
        if not self.partitions or not positive or self.dpa_attacked == "none":
            return []
        alphas = positive[-1:] if self.dpa_attacked == "largest" else positive
        return [(c, a) for c in self.corruptions for a in alphas]


def run_attack(config: AttackConfig, out: str | Path | None = None, *, progress: bool = True) -> pd.DataFrame:
    """Run the attack study; returns attack.csv's table (``attrs``: certified, dpa_attacked, smoothing, cost)."""
    from qrobust.analysis.attack import attacked_certificates, certified_curves, damage
    from qrobust.corruption import check_feasible
    from qrobust.experiments import adversary
    from qrobust.experiments.sweep import run_sweep

    costs, scores, stored = [], {}, {}

    def attacks(programs, dataset, counts, store):
        found, cost = adversary.stored_priorities(config, programs, dataset, counts, config.attack_options(), store)
        costs.append(cost)
        return found

    def keep(found, store):  # the aimed poisoners' scores, and the run directory the partition models join
        scores.update(found)
        stored["store"] = store

    start = time.perf_counter()
    results = run_sweep(config, out, progress=progress, study_name="attack", attacks=attacks, with_priorities=keep)
    sweep_seconds = time.perf_counter() - start
    config = config.validate()
    from qrobust.experiments.study import load

    dataset = load(config)
    counts = {cell: check_feasible(*cell, dataset.y_train) for cell in config.attacked_cells()}
    votes, attacked, dpa_cost = partition_votes(config, dataset, scores, counts, stored.get("store"), progress) \
        if config.partitions else ({}, {}, [])
    certified = certified_curves(votes, dataset.y_val, len(dataset.y_train))
    under_attack = attacked_certificates(votes, attacked, counts, dataset.y_val)
    _warn_broken(under_attack)
    smoothing = smoothing_table(config, dataset)
    cost = pd.concat(costs + [pd.DataFrame(dpa_cost), pd.DataFrame(
        [dict(attack="sweep (training and attacks)", model="all", seconds=sweep_seconds, replicas=np.nan,
              seconds_per_replica=np.nan)])], ignore_index=True)
    table = damage(results)
    if out is not None:
        from qrobust import sharding
        from qrobust.files import atomic_write_text

        if sharding.is_primary():
            for name, frame in (("certified.csv", certified), ("dpa_attacked.csv", under_attack),
                                ("smoothing.csv", smoothing), ("cost.csv", cost),
                                ("attack.csv", table)):  # attack.csv last: it marks a finished run
                atomic_write_text(Path(out) / name, frame.to_csv(index=False))
    table.attrs.update(certified=certified, dpa_attacked=under_attack, smoothing=smoothing, cost=cost)
    return table


def _warn_broken(under_attack: pd.DataFrame) -> None:
    """A logged warning naming every ensemble where a point certified for the attack's flips changed its vote
    (never, if each partition model is a deterministic function of its partition: module docstring)."""
    broken = under_attack[under_attack.changed_certified > 0]
    if len(broken):
        log.warning("the partition certificate failed (a certified point's prediction changed under the attack) "
                    "in %d ensemble(s): training is not a function of each partition alone\n%s", len(broken),
                    broken.to_string(index=False))


def _dpa_epochs(config, settings, n_train: int, largest: int) -> int:
    """The partition models' epochs: ``dpa_epochs``, else the full model's optimiser steps over the batches per
    epoch of the largest partition (rounded up)."""
    if config.dpa_epochs is not None:
        return int(config.dpa_epochs)
    full = math.ceil(n_train / settings.batch_size) * settings.epochs
    return math.ceil(full / math.ceil(largest / settings.batch_size))


def partition_votes(config: AttackConfig, dataset, priorities: dict | None = None,
                    counts: dict | None = None, store=None, progress: bool = False) -> tuple[dict, dict, list]:
    """({model: (S, k, M) votes of each seed's k partition models on the validation set}, {model: {(corruption,
    alpha): (S, k, M) votes of the partition models trained on that cell's flipped labels}}, their cost rows).

    ``counts``: (corruption, alpha) -> flips of the cells to train under attack (``AttackConfig.attacked_cells``);
    ``priorities``: {program: ``poisoners.Priorities``} of the sweep (its aimed poisoners' scores), so every
    partition model of a seed sees the flip mask of that seed's full model (the same keys, counts and scores).
    Each model's S x k replicas of one cell are one call of one compiled program (the same for every cell), and
    one chunk of the run directory ``store`` (``dpa_table``: "dpa-MODEL-CELL-0000", each partition model's votes
    and validation accuracy), so a resumed run reads the cells it finished and an interrupted one loses only the
    cell it was training. Only the last epoch is evaluated: the votes read the final weights alone."""
    from qrobust.analysis.certify import hash_partition, partition_streams
    from qrobust.data.features import encode
    from qrobust.experiments import study
    from qrobust.experiments.chunks import Progress, plan_chunks, run_chunks

    data = encode(dataset, "amplitude", config.n_features)
    k, seeds, counts = int(config.partitions), np.asarray(config.seeds), counts or {}
    streams = partition_streams(hash_partition(np.asarray(dataset.x_train), k), k)
    largest = int(streams.sum(1).max())
    table = dpa_table(config, counts)
    chunks = plan_chunks(table, "program", lambda program, n: n, store=store)
    bar = Progress(None, progress, name="attack: partition models")
    programs = {}
    for m in config.models:
        settings = config.settings_for(m)
        epochs = _dpa_epochs(config, settings, len(dataset.y_train), largest)
        programs[m] = study.build_program(config, f"dpa-{m}", m, settings, data, epochs=epochs, eval_every=epochs,
                                          progress=bar.hook)
        programs[m].store = store
    bar.start(sum(programs[c.rows.model[0]].epochs * len(c.rows) for c in chunks
                  if store is None or not store.has_chunk(c.name)))

    def run(chunk):
        row = chunk.rows.iloc[0]
        m, corruption = row.model, row.corruption
        scores = (priorities or {}).get(next(iter(config.programs(m))))
        votes = ensemble_votes(programs[m], seeds, streams, corruption, int(row.flips),
                               None if scores is None or row.cell == "clean" else
                               scores.rows([corruption] * len(seeds), seeds))
        frame = chunk.rows.assign(val_acc=(votes == np.asarray(dataset.y_val)).mean(-1).reshape(-1))
        return frame, {"votes": votes.reshape(len(seeds) * k, -1).astype(np.int8)}

    done = run_chunks(chunks, run, store, bar)
    bar.close()
    votes, attacked, costs = {}, {m: {} for m in config.models}, []
    for chunk in chunks:
        row = chunk.rows.iloc[0]
        v = np.asarray(done.arrays[chunk.name]["votes"]).astype(int).reshape(len(seeds), k, -1)
        what = f"{k} partitions, {programs[row.model].epochs} epochs"
        if row.cell == "clean":
            votes[row.model] = v
            costs.append(_cost_row(f"dpa ({what})", row.model, done.seconds[chunk.name], len(chunk.rows)))
        else:
            attacked[row.model][(row.corruption, float(row.alpha))] = v
            costs.append(_cost_row(f"dpa under attack ({what}, {row.corruption} at {row.alpha:g})", row.model,
                                   done.seconds[chunk.name], len(chunk.rows)))
    return {"seeds": seeds, **votes}, {m: a for m, a in attacked.items() if a}, costs


def dpa_table(config: AttackConfig, counts: dict) -> pd.DataFrame:
    """One row per partition model the study trains: program (its chunk: "dpa-MODEL-CELL", CELL "clean" or
    "CORRUPTION-aALPHA"), model, cell, corruption, alpha, flips, seed, partition; seed-major within a cell."""
    cells = [("clean", "flip", 0.0, 0)] + [(f"{c}-a{a:g}", c, float(a), int(n)) for (c, a), n in counts.items()]
    k = int(config.partitions)
    rows = [dict(program=f"dpa-{m}-{cell}", model=m, cell=cell, corruption=c, alpha=a, flips=n, seed=int(s),
                 partition=j)
            for m in config.models for cell, c, a, n in cells for s in config.seeds for j in range(k)]
    return pd.DataFrame(rows)


def _cost_row(attack: str, model: str, seconds: float, replicas: int) -> dict:
    return dict(attack=attack, model=model, seconds=seconds, replicas=replicas, seconds_per_replica=seconds / replicas)


def ensemble_votes(program, seeds, streams: np.ndarray, corruption: str = "flip", count: int = 0,
                   scores: np.ndarray | None = None) -> np.ndarray:
    """(S, k, M) votes (0/1) on the validation set of the k partition models (``streams`` (k, N)) of each seed,
    trained by ``program`` on the training labels that ``corruption`` with ``count`` flips (and the priorities
    ``scores`` (S, N) of a ranked poisoner) gives that seed's replica: the same flip mask as the full model's."""
    from qrobust.models import batch_logits

    k, seeds = len(streams), np.asarray(seeds)
    r = len(seeds) * k
    rows = None if scores is None else np.repeat(np.asarray(scores, np.float32), k, axis=0)
    params, _, _ = program.train(np.repeat(seeds, k), np.full(r, CORRUPTIONS.index(corruption), np.int32),
                                 np.full(r, count, np.int32), rows, stream=np.tile(streams, (len(seeds), 1)),
                                 data=False)
    logits = jax.vmap(batch_logits(program.built), in_axes=(0, None))(params, program.val.x)
    return np.asarray(logits > 0).astype(int).reshape(len(seeds), k, -1)


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
