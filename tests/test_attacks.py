"""Adaptive label-flip attacks (qrobust.attacks) against brute force: on a logistic regression of 12 training
points, every class-balanced flip set of the budget is trained and scored, so the optimal flips and the mean of
random flips (the exact mean over all sets) are known."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from qrobust import attacks
from qrobust.engine import EvalData
from qrobust.models.controls import logistic_model
from qrobust.optimizers import Optimizer

STEPS, LR, L2 = 400, 0.1, 0.01  # a strongly convex fit, run to (near) its optimum


def _problem(seed=0, n=6, m=60):
    """Two overlapping 2-D Gaussian classes: n training points each, m validation points each."""
    rng = np.random.default_rng(seed)
    def draw(k):
        x = np.concatenate([rng.normal(-0.7, 1.0, (k, 2)), rng.normal(0.7, 1.0, (k, 2))]).astype(np.float32)
        return x, np.repeat([0, 1], k).astype(np.float32)
    (x, y), (xv, yv) = draw(n), draw(m)
    return jnp.asarray(x), jnp.asarray(y), EvalData(jnp.asarray(xv), jnp.asarray(yv))


MODEL = logistic_model(2, complex_input=False)
ZERO = {"w": jnp.zeros(2), "b": jnp.zeros(())}


@jax.jit
def _victim_losses(x, y, val, flips):
    def one(mask):
        p = attacks.fit(MODEL, ZERO, x, jnp.where(mask, 1 - y, y), steps=STEPS, learning_rate=LR, l2=L2)
        return attacks.val_loss(MODEL, p, val)
    return jax.vmap(one)(flips)


def _victim_loss(x, y, val, flips):
    """Clean validation loss of the victim (the convex fit) trained with the labels of ``flips`` (S, N) inverted."""
    return np.asarray(_victim_losses(x, y, val, jnp.asarray(flips)))


def _balanced_sets(y, per_class):
    y = np.asarray(y)
    zeros, ones = np.flatnonzero(y == 0), np.flatnonzero(y == 1)
    sets = []
    for a in itertools.combinations(zeros, per_class):
        for b in itertools.combinations(ones, per_class):
            mask = np.zeros(len(y), bool)
            mask[list(a) + list(b)] = True
            sets.append(mask)
    return np.array(sets)


@jax.jit
def _influence(x, y, val, flipped):
    labels = jnp.where(flipped, 1 - y, y)
    p = attacks.fit(MODEL, ZERO, x, labels, steps=STEPS, learning_rate=LR, l2=L2)
    return attacks.influence_scores(MODEL, p, x, labels, val, damping=0.0, l2=L2)


def _influence_at(x, y, val, flipped):
    return np.asarray(_influence(x, y, val, jnp.asarray(flipped)))


@pytest.fixture(scope="module")
def brute():
    x, y, val = _problem()
    sets = _balanced_sets(y, 2)  # 225 sets of 4 flips, 2 per class
    return x, y, val, sets, _victim_loss(x, y, val, sets)


def _rank(loss, losses):
    """Fraction of all flip sets whose loss is below ``loss``."""
    return float(np.mean(losses < loss - 1e-6))


def test_the_influence_equals_a_retrained_finite_difference(x64):
    """Koh & Liang's influence of relaxing label i equals (val loss(w_i = +e) - val loss(w_i = -e)) / 2e with the
    model retrained to its optimum (the implicit derivative is exact for this strongly convex fit); so does the
    derivative unrolled through that retraining. In 64 bits, so the difference quotient is not rounding."""
    x, y, val = _problem(1)
    x, y, val = x.astype(jnp.float64), y.astype(jnp.float64), EvalData(*(a.astype(jnp.float64) for a in val))
    zero = {"w": jnp.zeros(2, jnp.float64), "b": jnp.zeros((), jnp.float64)}
    gd = Optimizer("sgd", optax.sgd)  # plain gradient descent converges to the optimum (Adam jitters around it)
    p = attacks.fit(MODEL, zero, x, y, steps=1500, learning_rate=1.0, optimizer=gd, l2=L2)
    influence = np.asarray(attacks.influence_scores(MODEL, p, x, y, val, damping=0.0, l2=L2))
    eps = 1e-3

    def loss_at(w):
        q = attacks.fit(MODEL, zero, x, attacks.relaxed_labels(y, w), steps=1500, learning_rate=1.0, optimizer=gd,
                        l2=L2)
        return attacks.val_loss(MODEL, q, val)

    e = eps * jnp.eye(len(y))
    diff = (jax.jit(jax.vmap(loss_at))(e) - jax.jit(jax.vmap(loss_at))(-e)) / (2 * eps)
    np.testing.assert_allclose(influence, np.asarray(diff), rtol=0.01, atol=1e-5)
    unrolled = attacks.unrolled_scores(MODEL, zero, x, y, val, steps=1500, learning_rate=1.0, optimizer=gd, l2=L2)
    np.testing.assert_allclose(np.asarray(unrolled), np.asarray(diff), rtol=0.01, atol=1e-5)


@pytest.mark.parametrize("attack", ["gradient", "influence", "greedy", "transfer"])
def test_each_attack_beats_random_flips_and_comes_near_the_optimum(brute, attack):
    """Against the fit they target, each attack's 4 flips (2 per class) raise the clean validation loss above
    the mean of random balanced flips (every set's loss averaged) and rank in the top tenth of all 225 sets."""
    x, y, val, sets, losses = brute
    if attack == "gradient":
        scores = jax.jit(lambda x, y, val: attacks.unrolled_scores(MODEL, ZERO, x, y, val, steps=STEPS,
                                                                   learning_rate=LR, l2=L2))(x, y, val)
    elif attack == "influence":
        scores = _influence_at(x, y, val, np.zeros(len(y), bool))
    elif attack == "greedy":
        scores = attacks.greedy_priorities(lambda f: _influence_at(x, y, val, f), np.asarray(y), 2, rounds=2)
    else:  # transfer: chosen against a surrogate (10 times the weight decay, 30 unrolled steps), applied here
        scores = jax.jit(lambda x, y, val: attacks.unrolled_scores(MODEL, ZERO, x, y, val, steps=30,
                                                                   learning_rate=LR, l2=10 * L2))(x, y, val)
    chosen = attacks.top_per_class(np.asarray(scores), np.asarray(y), 2)
    loss = _victim_loss(x, y, val, chosen[None])[0]
    assert loss > losses.mean(), (attack, loss, losses.mean())
    assert _rank(loss, losses) >= 0.9, (attack, _rank(loss, losses), loss, losses.max())


def test_the_ranked_poisoner_flips_what_an_attack_ranks_first():
    """An attack's priorities through the ranked poisoner (the mask contract) flip exactly top_per_class's set,
    nested over counts."""
    from qrobust.corruption import flip_ranked

    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 10)
    scores = rng.normal(size=20).astype(np.float32)
    previous = np.zeros(20, bool)
    for n in (0, 2, 6, 10):
        out = flip_ranked(jax.random.PRNGKey(0), jnp.zeros((20, 1)), jnp.asarray(y), jnp.int32(n), jnp.asarray(scores))
        mask = np.asarray(out.mask)
        np.testing.assert_array_equal(mask, attacks.top_per_class(scores, y, n // 2))
        np.testing.assert_array_equal(np.asarray(out.y), np.where(mask, 1 - y, y))
        assert (mask >= previous).all()
        previous = mask


def test_greedy_priorities_rank_rounds_before_the_rest():
    """Round 1's picks rank above round 2's, which rank above every sample never picked; each round's picks are
    the top of that round's scores among those not yet flipped, per class."""
    y = np.repeat([0, 1], 5)
    calls = []

    def scores_of(flipped):
        calls.append(flipped.copy())
        return np.arange(10.0) if len(calls) == 1 else -np.arange(10.0)

    pr = attacks.greedy_priorities(scores_of, y, 4, rounds=2)
    first = {3, 4, 8, 9}  # round 1: the two highest of arange per class
    second = {0, 1, 5, 6}  # round 2: the two highest of -arange among the rest
    order = list(np.argsort(-pr))
    assert set(order[:4]) == first and set(order[4:8]) == second
    assert calls[1].sum() == 4 and set(np.flatnonzero(calls[1])) == first
