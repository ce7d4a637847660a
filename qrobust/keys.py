"""Per-replica PRNG keys, all derived from the replica's seed: ``fold_in(PRNGKey(seed), purpose)``.

One numbered purpose per use, so that every experiment draws the same numbers
for the same seed (e.g. an unlearning teacher is the sweep's poisoned replica).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

INIT, CORRUPT, SHUFFLE, FRESH_INIT, RANDOM_LABELS, STUDENT_ORDER, FORGET_PART, HUTCHINSON, LANCZOS, SHADOW = range(10)
N_PURPOSES = 10
SHOTS = 10  # a finite-shot model's draws: fold_in(the replica's epoch key, SHOTS) (qrobust.engine), not in replica_keys


@jax.jit
def replica_keys(seeds: jax.Array) -> jax.Array:
    """(N_PURPOSES, R, 2) uint32 keys: entry [p, r] = fold_in(PRNGKey(seeds[r]), p). Jitted once: called
    eagerly, its inner lambdas (new at every call) were traced again for every chunk of a study."""
    base = jax.vmap(jax.random.PRNGKey)(jnp.asarray(seeds).astype(jnp.uint32))
    return jax.vmap(lambda p: jax.vmap(lambda k: jax.random.fold_in(k, p))(base))(jnp.arange(N_PURPOSES))


@jax.jit
def shadow_keys(seed: jax.Array, shadows: jax.Array) -> jax.Array:
    """(N_PURPOSES, R, 2) keys of shadow replicas (``qrobust.experiments.shadows``) of the pool of ``seed``:
    entry [p, r] = fold_in(fold_in(fold_in(PRNGKey(seed), SHADOW), shadows[r]), p). Shadow k of a seed has its
    own initialisation, batch order and student keys, none shared with the study's own replicas."""
    base = jax.random.fold_in(jax.random.PRNGKey(jnp.asarray(seed).astype(jnp.uint32)), SHADOW)
    per = jax.vmap(lambda k: jax.random.fold_in(base, k))(jnp.asarray(shadows).astype(jnp.uint32))
    return jax.vmap(lambda p: jax.vmap(lambda k: jax.random.fold_in(k, p))(per))(jnp.arange(N_PURPOSES))
