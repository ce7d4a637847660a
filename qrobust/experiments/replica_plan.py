"""The reproduction's replica plan (issue 32, item 4): the parts declare the replicas they will train, the union is
trained once, one compiled program per distinct program, before any part runs, and each part then reads its
replicas back from the store of trained replicas (``qrobust.replicas``), bit for bit.

The store alone already trains a replica once however many parts need it. What the plan adds: the union of a
program's replicas over every part trains as one sequence of full chunks of one program, where the parts would
each run a partial sequence of their own (each with a padded last chunk, and a compile of its own where their
chunk shapes differ). ``summary`` counts both, so the reproduction records what the plan saved.

What a part declares (its study's ``demands`` entry, ``qrobust.experiments.registry``): the replicas it trains from
the data alone. The sweeps (and the controls, device, attack and gauge studies built on them): every replica of a
corruption that ranks no sample by a trained model. The unlearning study: its teachers. Not declared, so trained
by their part as before: the reference models and adaptive attacks of the aimed poisoners (their flips depend on
trained models), the students and shadows (they start from trained teachers, or train on a stream), the partition
ensembles, and the landscape's and detection's replicas. A program whose trainer vmaps the replica axis (an
accelerator) is left to its parts: there a replica's bits depend on the chunk it trains in.
"""

from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np

from qrobust import replicas
from qrobust.corruption import CORRUPTIONS, check_feasible, poisoner

log = logging.getLogger("qrobust")

TRAINED_SCORES = ("reference", "attack")  # poisoners whose flips need a trained model: their parts train them


class Demand(NamedTuple):
    """Replicas a part will train: rows of one program (``study.Program``): seeds, corruption kinds (indices of
    ``CORRUPTIONS``) and counts, the aimed poisoners' scores ((R, N), or None where none ranks) and learning
    rates."""

    program: object
    seeds: np.ndarray
    kinds: np.ndarray
    counts: np.ndarray
    scores: np.ndarray | None
    rates: np.ndarray


class Group(NamedTuple):
    """One program's union of replicas: the program that trains them (the first part's that declared them) and
    the rows by replica digest."""

    program: object
    rows: dict  # digest -> (seed, kind, count, scores row or None, rate)


def _free(corruptions) -> list[str]:
    return [c for c in corruptions if poisoner(c).scores not in TRAINED_SCORES]


def _bar(bar):
    """The planner's progress line (``chunks.Progress``), or a silent one."""
    from qrobust.experiments.chunks import Progress

    return Progress(None, False) if bar is None else bar


def _scores(priorities, corruptions, seeds) -> np.ndarray | None:
    rows = priorities.rows(list(corruptions), list(seeds))
    return rows if rows.any() else None


def sweep_demands(config, bar=None) -> list[Demand]:
    """What a sweep (or a study built on one) trains from the data alone: every replica of every corruption that
    ranks no sample by a trained model."""
    from qrobust.experiments import study
    from qrobust.experiments.poisoners import Priorities
    from qrobust.experiments.sweep import build_programs
    from qrobust.experiments.sweep_grid import replica_table

    config, dataset = study.start(config)
    free = _free(config.corruptions)
    if not free:
        return []
    built = build_programs(config, dataset, _bar(bar), None)
    priorities = Priorities(dataset)
    demands = []
    for m in config.models:
        table = replica_table(config, m)
        table = table[table.corruption.isin(free)]
        for name, rows in table.groupby("program", sort=False):
            counts = [check_feasible(c, a, dataset.y_train) for c, a in zip(rows.corruption, rows.alpha)]
            demands.append(Demand(built[name][0], rows.seed.to_numpy(),
                                  np.array([CORRUPTIONS.index(c) for c in rows.corruption], np.int32),
                                  np.array(counts, np.int32), _scores(priorities, rows.corruption, rows.seed),
                                  rows.learning_rate.to_numpy(float)))
    return demands


def gauge_demands(config, bar=None) -> list[Demand]:
    """The gauge study's: each gauge's sweep's."""
    config = config.validate()
    return [d for g in config.gauges for d in sweep_demands(config.sweep(g), bar)]


def teacher_demands(config, bar=None) -> list[Demand]:
    """The unlearning study's teachers (poisoned and clean, per model and seed), unless its poisoner ranks by a
    trained model."""
    from qrobust.experiments import study, unlearning_stages as stages
    from qrobust.experiments.poisoners import Priorities

    config, dataset = study.start(config)
    if not _free([config.corruption]):
        return []
    n_poisoned = check_feasible(config.corruption, config.alpha, dataset.y_train)
    programs = stages.teacher_programs(config, dataset, _bar(bar))
    table = stages.teacher_table(config)
    kind = CORRUPTIONS.index(config.corruption)
    priorities = Priorities(dataset)
    demands = []
    for m, rows in table.groupby("program", sort=False):
        seeds = rows.seed.to_numpy()
        demands.append(Demand(programs[m], seeds, np.full(len(seeds), kind, np.int32),
                              np.where(rows.alpha.to_numpy() > 0, n_poisoned, 0).astype(np.int32),
                              _scores(priorities, [config.corruption] * len(seeds), seeds),
                              np.full(len(seeds), programs[m].settings.learning_rate)))
    return demands


def union(declared: dict[str, list[Demand]]) -> dict[str, Group]:
    """{group key: Group} of ``declared`` ({part: its demands}): each replica once, under the program of the
    first part that declared it (a program that cannot take part, ``Program.plan_key`` None, is left to its
    part)."""
    groups: dict[str, Group] = {}
    for demands in declared.values():
        for d in demands:
            key = d.program.plan_key()
            if key is None:
                continue
            group = groups.setdefault(key, Group(d.program, {}))
            for i, digest in enumerate(_digests(d)):
                group.rows.setdefault(digest, (int(d.seeds[i]), int(d.kinds[i]), int(d.counts[i]),
                                               None if d.scores is None else d.scores[i], float(d.rates[i])))
    return groups


def missing(group: Group) -> list[str]:
    """The digests of ``group`` not in the store yet (with the epochs its program records)."""
    recorded = group.program.trainer().recipe.recorded
    return [k for k in group.rows if replicas.read([k], recorded) is None]


def chunk_sizes(n: int, cap: int) -> list[int]:
    """The real replicas of each chunk of ``n`` replicas at most ``cap`` per chunk (``chunks.chunk_bounds``)."""
    from qrobust.experiments.chunks import chunk_bounds

    return [hi - lo for lo, hi in chunk_bounds(n, cap)] if n else []


def cap_of(program) -> int:
    from qrobust.memory import default_cap

    return default_cap(program.quantum)


def train(group: Group, digests: list[str]) -> int:
    """Train the replicas ``digests`` of ``group`` in chunks of its program (``chunk_sizes``; each written to the
    store by ``Program.train``), none padded: a shorter last chunk is a shape of its own (one compile) rather than
    padding, which costs a whole replica's training per slot where the replicas are walked one by one (CPU).
    Returns the replica-epochs run."""
    program = group.program
    lo = 0
    for size in chunk_sizes(len(digests), cap_of(program)):
        rows = [group.rows[k] for k in digests[lo:lo + size]]
        lo += size
        seeds, kinds, counts, scores, rates = zip(*rows)
        n = next((len(s) for s in scores if s is not None), 0)
        score_rows = None if not n else np.stack([np.zeros(n, np.float32) if s is None else s for s in scores])
        program.train(np.array(seeds), np.array(kinds, np.int32), np.array(counts, np.int32), score_rows,
                      np.array(rates), data=False)
    return len(digests) * program.epochs


def padded_epochs(counts, program) -> int:
    """Replica-epochs a part's chunks of ``counts`` replicas of ``program`` run, padding included (a part pads
    its last chunk to its program's one chunk shape: ``chunks.plan_chunks``)."""
    from qrobust.experiments.chunks import chunk_shape

    sizes = chunk_sizes(counts, cap_of(program))
    return len(sizes) * chunk_shape(counts, cap_of(program)) * program.epochs if sizes else 0


def _digests(d: Demand) -> list[str]:
    return d.program._replica_keys(None, d.seeds, d.kinds, d.counts, d.scores, d.rates, None)


def summary(groups: dict[str, Group], declared: dict[str, list[Demand]]) -> dict:
    """What the plan trains against what the parts would train each on its own, in order, the store of trained
    replicas on in both (so a replica an earlier part trained is read back): replicas, replica-epochs, replica-
    epochs run with the chunks' padding, and the compiled shapes that train (a part's program has one, its last
    chunk padded to it; the plan's a second for a shorter last chunk, unpadded)."""
    alone = dict(replicas=0, replica_epochs=0, padded_replica_epochs=0, programs=0)
    trained: set[str] = set()
    for demands in declared.values():
        per_program: dict[str, tuple] = {}
        for d in demands:
            key = d.program.plan_key()
            if key is None:
                continue
            program, digests = per_program.get(key, (d.program, []))
            per_program[key] = (program, digests + [k for k in _digests(d) if k not in trained])
        for program, digests in per_program.values():
            fresh = list(dict.fromkeys(digests))
            trained.update(fresh)
            alone["replicas"] += len(fresh)
            alone["replica_epochs"] += len(fresh) * program.epochs
            alone["padded_replica_epochs"] += padded_epochs(len(fresh), program)
            alone["programs"] += bool(fresh)
    planned = dict(replicas=sum(len(g.rows) for g in groups.values()),
                   replica_epochs=sum(len(g.rows) * g.program.epochs for g in groups.values()),
                   padded_replica_epochs=sum(len(g.rows) * g.program.epochs for g in groups.values()),
                   programs=sum(len(set(chunk_sizes(len(g.rows), cap_of(g.program)))) for g in groups.values()))
    every = [d for demands in declared.values() for d in demands]
    return dict(declared=sum(len(d.seeds) for d in every),
                declared_replica_epochs=sum(len(d.seeds) * d.program.epochs for d in every),
                parts_alone=alone, planned=planned)


def declare(configs: dict[str, tuple[str, object]], bar=None) -> dict[str, list[Demand]]:
    """{part: its demands} of ``configs`` {part: (its study's registry name, its config)}."""
    from qrobust.experiments.registry import study

    declared = {}
    for part, (name, config) in configs.items():
        demands = study(name).get("demands")
        if demands is not None:
            declared[part] = demands(config, bar)
    return declared


def count(configs: dict[str, tuple[str, object]]) -> dict:
    """What ``run`` would plan for ``configs`` (``summary``), without training anything."""
    declared = declare(configs)
    return summary(union(declared), declared)


def run(configs: dict[str, tuple[str, object]], *, progress: bool = True) -> dict:
    """Declare, unite and train: ``configs`` {part: (its study's registry name, its config)}. Returns what was
    planned (``summary``), how many replicas of the union the store held already, and the replicas and
    replica-epochs trained now."""
    from qrobust.experiments.chunks import Progress

    bar = Progress(None, progress, name="replica plan")
    declared = declare(configs, bar)
    groups = union(declared)
    todo = {key: missing(group) for key, group in groups.items()}
    bar.start(sum(len(t) * groups[k].program.epochs for k, t in todo.items()))
    run_epochs = sum(train(groups[k], t) for k, t in todo.items() if t)
    replicas.mark_planned(groups)
    bar.close()
    log.info("replica plan: %d replicas of %d programs, %d of them stored already", sum(len(g.rows) for g in
             groups.values()), len(groups), sum(len(g.rows) - len(todo[k]) for k, g in groups.items()))
    return dict(summary(groups, declared), stored=sum(len(g.rows) - len(todo[k]) for k, g in groups.items()),
                trained=sum(len(t) for t in todo.values()), trained_replica_epochs=run_epochs)
