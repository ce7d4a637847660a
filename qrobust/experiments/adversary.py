"""The adaptive attacks' priorities for a study's programs (``qrobust.attacks`` does the mathematics).

For each target program and seed, one (N,) priority vector per adaptive corruption, which the ranked poisoner
turns into the flips of every alpha (``qrobust.corruption``):

- "gradient": ``attacks.unrolled_scores`` from the replica's own initial parameters (keys.INIT of its seed, as
  the replica itself starts), ``AttackOptions.unroll_steps`` full-batch steps of the model's own optimiser
  (Adam with optax's ``eps_root`` for differentiation, ``attacks.fit``) and learning rate, on the clean
  training set;
- "influence": ``attacks.greedy_priorities`` over ``rounds`` rounds: each round trains every seed's replica on
  the flips chosen so far with the study's own program (the engine: the model's paper epochs, batches, optimiser),
  then ranks the rest by ``attacks.influence_scores`` at its trained weights (``damping``);
- "transfer": the ``transfer_from`` attack ("influence" or "gradient") computed against ``surrogate`` (a model
  of the registry, by default the logistic control), the same flips applied to every target.

The QNN's second derivatives need a simulator with forward mode: its attacker is the same circuit built with
``forward_mode=True`` (the registry's choice: "blocks" on CPU), reading the same weights. All seeds of a target
are one vmapped (``lax.map``) computation. Each attack's wall time is measured and returned (``cost.csv``).
``stored_priorities`` keeps them, and that cost, in the run directory (a chunk like any other, checked against the
run's settings when read), so a resumed run reads them instead of computing them again.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from qrobust import attacks
from qrobust.corruption import CORRUPTIONS, poisoner
from qrobust.engine import EvalData
from qrobust.experiments import study
from qrobust.experiments.settings import build_model
from qrobust.keys import INIT, replica_keys
from qrobust.optimizers import get


class AttackOptions(NamedTuple):
    """The adaptive attacks' settings (module docstring); the attack study's options, recorded in config.json."""

    unroll_steps: int = 20
    rounds: int = 2
    damping: float = 1e-3
    surrogate: str = "logistic"
    transfer_from: str = "influence"
    cg_iterations: int = 100


def adaptive(corruptions) -> list[str]:
    return [c for c in corruptions if poisoner(c).scores == "attack"]


def _attacker(config, program):
    """The model the attacker differentiates: the program's own, or for a QNN the same circuit on a simulator
    with forward mode."""
    if not program.quantum:
        return program.built
    return build_model(program.model, program.data, program.settings, dtype=config.dtype, simulator=None,
                       matmul_precision=config.matmul_precision, forward_mode=True)


def _clean(model, program):
    data = program.data
    return (model.prepare(jnp.asarray(data.x_train)), jnp.asarray(data.y_train, jnp.float32),
            EvalData(model.prepare(jnp.asarray(data.x_val)), jnp.asarray(data.y_val, jnp.float32)))


def gradient(config, program, seeds, options: AttackOptions) -> np.ndarray:
    """(S, N) "gradient" priorities of ``program``'s replicas of ``seeds``."""
    model = _attacker(config, program)
    x, y, val = _clean(model, program)
    params0 = jax.vmap(model.init)(replica_keys(jnp.asarray(seeds))[INIT])
    optimizer = None if program.settings.optimizer == "adam" else get(program.settings.optimizer)  # fit's Adam
    one = functools.partial(attacks.unrolled_scores, model, x=x, y=y, val=val, steps=options.unroll_steps,
                            learning_rate=program.settings.learning_rate, optimizer=optimizer)
    return _finite(np.asarray(jax.jit(lambda p: jax.lax.map(lambda q: one(q), p))(params0)), "gradient", program)


def _finite(scores: np.ndarray, attack: str, program) -> np.ndarray:
    """``scores``, or an error naming the attack and model where any is not finite (NaN would rank silently)."""
    bad = ~np.isfinite(scores)
    if bad.any():
        raise FloatingPointError(f"the {attack} attack on {program.name} gave {int(bad.sum())} non-finite "
                                 f"scores of {bad.size}: no flips are chosen from them")
    return scores


def influence(config, program, seeds, per_class: int, options: AttackOptions) -> np.ndarray:
    """(S, N) greedy "influence" priorities of ``program``'s replicas of ``seeds`` for ``per_class`` flips."""
    model = _attacker(config, program)
    x, y, val = _clean(model, program)
    seeds = np.asarray(seeds)
    kind = np.full(len(seeds), CORRUPTIONS.index("influence"), np.int32)
    score = jax.jit(lambda params, labels: jax.lax.map(lambda pl: attacks.influence_scores(
        model, pl[0], x, pl[1], val, damping=options.damping, cg_iterations=options.cg_iterations), (params, labels)))

    def scores_of(flipped):
        counts = flipped.sum(axis=1).astype(np.int32)
        params, _, data = program.train(seeds, kind, counts, flipped.astype(np.float32))
        return _finite(np.asarray(score(params, data.y)), "influence", program)

    return attacks.greedy_priorities(scores_of, np.broadcast_to(np.asarray(y), (len(seeds), len(y))), per_class,
                                     options.rounds)


def priorities(config, programs: dict, dataset, counts: dict, options: AttackOptions):
    """({program: {(corruption, seed): (N,) priorities}}, the cost table: one row per attack and model with its
    wall seconds and seconds per replica). ``counts``: (corruption, alpha) -> flips; ``dataset``: the study's."""
    seeds = list(config.seeds)
    kinds = adaptive(config.corruptions)
    budget = {k: max(counts[(k, a)] for a in config.alphas) // 2 for k in kinds}
    out, costs = {p: {} for p in programs}, []

    def timed(name, target, fn):
        start = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - start
        costs.append(dict(attack=name, model=target, seconds=seconds, replicas=len(seeds),
                          seconds_per_replica=seconds / len(seeds)))
        return result

    done = {}

    def run(kind, program, per_class):
        if (kind, program.name, per_class) not in done:  # the surrogate may be a target already attacked
            fn = (lambda: gradient(config, program, seeds, options)) if kind == "gradient" else \
                (lambda: influence(config, program, seeds, per_class, options))
            done[(kind, program.name, per_class)] = timed(kind, program.name, fn)
        return done[(kind, program.name, per_class)]

    for kind in kinds:
        if kind == "transfer":
            continue
        for name, program in programs.items():
            scores = run(kind, program, budget[kind])
            out[name].update({(kind, s): scores[i] for i, s in enumerate(seeds)})
    if "transfer" in kinds:
        surrogate = _surrogate(config, programs, dataset, options)
        before = len(costs)
        scores = run(options.transfer_from, surrogate, budget["transfer"])
        if len(costs) > before:
            costs[-1]["attack"] = f"transfer ({options.transfer_from} on {options.surrogate})"
        else:
            costs.append(dict(attack=f"transfer ({options.transfer_from} on {options.surrogate}: its scores "
                                     "above, reused)", model=surrogate.name, seconds=0.0, replicas=len(seeds),
                              seconds_per_replica=0.0))
        for name in programs:
            out[name].update({("transfer", s): scores[i] for i, s in enumerate(seeds)})
    return out, pd.DataFrame(costs, columns=["attack", "model", "seconds", "replicas", "seconds_per_replica"])


def _surrogate(config, programs, dataset, options: AttackOptions):
    """The surrogate's program: the study's own where it trains that model, else built here (on the paper's
    amplitude encoding)."""
    for program in programs.values():
        if program.model == options.surrogate:
            return program
    from qrobust.data.features import encode

    settings = config.settings_of(options.surrogate)
    return study.build_program(config, f"surrogate-{options.surrogate}", options.surrogate, settings,
                               encode(dataset, "amplitude", config.n_features))


STORED = "attacks-0000"  # the run directory's chunk of the priorities: rows (program, corruption, seed), "scores"
STORED_COST = "attacks-cost-0000"  # and of the cost rows measured when they were computed


def priority_rows(config, programs) -> pd.DataFrame:
    """The stored chunk's rows: one per program, adaptive corruption and seed, in that order."""
    rows = [(p, c, int(s)) for p in programs for c in adaptive(config.corruptions) for s in config.seeds]
    return pd.DataFrame(rows, columns=["program", "corruption", "seed"])


def stored_priorities(config, programs: dict, dataset, counts: dict, options: AttackOptions, store):
    """``priorities``, read from the run directory ``store`` where a run computed them before (the chunk
    ``STORED``, checked against this run's programs, attacks and seeds and the digest of its settings, like any
    chunk; the cost rows are those measured then), else computed and stored there (None: not stored)."""
    rows = priority_rows(config, programs)
    found = _read_stored(store, rows)
    if found is not None:
        return found
    scores, cost = priorities(config, programs, dataset, counts, options)
    if store is not None and store.writer:
        store.write_chunk(STORED_COST, cost)  # the cost first: the priorities' table marks the pair complete
        stacked = np.stack([scores[p][(c, s)] for p, c, s in rows.itertuples(index=False)])
        store.write_chunk(STORED, rows, arrays={"scores": stacked})
    return scores, cost


def _read_stored(store, rows: pd.DataFrame):
    """(scores, cost) of the stored chunks, or None where they are not there or not this run's (set aside)."""
    if store is None or not store.has_chunk(STORED):
        return None
    why = store.check_chunk(STORED, rows) or (store.check_stored(STORED_COST) if store.has_chunk(STORED_COST)
                                               else f"its cost table {STORED_COST} is missing")
    if why is not None:
        if store.writer:
            store.set_aside(STORED, why)
        return None
    stacked = store.read_arrays(STORED).get("scores")
    if stacked is None:
        return None
    out: dict = {p: {} for p in dict.fromkeys(rows.program)}
    for (p, c, s), score in zip(rows.itertuples(index=False), stacked):
        out[p][(c, int(s))] = score
    return out, store.read_chunk(STORED_COST)
