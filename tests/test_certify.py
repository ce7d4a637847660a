"""Certified robustness to label flips (qrobust.analysis.certify): deep partition aggregation checked by brute
force on a tiny problem (every flip set of one and two labels retrained through the engine), the certificate's
arithmetic against direct counting, and the randomized-smoothing certificate of ridge regression against the
exact distribution (all 2^N noisy label vectors enumerated)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qrobust.analysis import certify
from qrobust.engine import EvalData, make_train_fn, plain_data
from qrobust.models.controls import logistic_model

K = 5


def _problem(seed=0, n=8, m=30):
    rng = np.random.default_rng(seed)
    def draw(k):
        x = np.concatenate([rng.normal(-0.8, 1.0, (k, 2)), rng.normal(0.8, 1.0, (k, 2))]).astype(np.float32)
        return x, np.repeat([0, 1], k).astype(np.float32)
    return draw(n), draw(m)


def _ensemble_votes(x, labels, xv, yv, partition):
    """votes (S, K, M): for each label vector of ``labels`` (S, N), the K partition models (logistic regression,
    the engine's Adam, one seed for all) trained on their partitions, each predicting the M validation points.
    All S x K replicas are one compiled program."""
    model = logistic_model(2, complex_input=False)
    s, n = labels.shape
    streams = certify.partition_streams(partition, K)  # (K, N)
    n_stream = max(int(streams.sum(1).max()), 1)
    train = make_train_fn(model, epochs=40, batch_size=4, n_samples=n_stream, replica_mode="vmap")
    r = s * K
    y = jnp.asarray(np.repeat(labels, K, axis=0), jnp.float32)
    data = plain_data(jnp.broadcast_to(jnp.asarray(x), (r, n, 2)), y, y, jnp.zeros((r, n), bool))
    data = data._replace(stream=jnp.asarray(np.tile(streams, (s, 1))))
    keys = jnp.broadcast_to(jax.random.PRNGKey(7), (r, 2))
    params = jax.vmap(model.init)(keys)
    params, _ = train(params, jnp.full(r, 0.1), keys, data, EvalData(jnp.asarray(xv), jnp.asarray(yv)))
    logits = jax.vmap(model.apply_batch, in_axes=(0, None))(params, jnp.asarray(xv))
    return np.asarray(logits > 0).astype(int).reshape(s, K, -1)


def test_the_dpa_formula_against_counting():
    """floor((n_c - n_c' - [c' < c]) / 2) equals the fewest vote changes (one per flip: a vote moves from the
    winner to the other class) that change the prediction, minus one, for every vote count of k = 1..7."""
    for k in range(1, 8):
        for ones in range(k + 1):
            votes = np.array([1] * ones + [0] * (k - ones))[:, None]
            pred, cert = certify.dpa_certificate(votes)
            expected = 1 if ones > k - ones else 0
            assert pred[0] == expected
            r = 0
            while True:  # move r + 1 votes away from the prediction
                moved = ones - (r + 1) if expected == 1 else ones + (r + 1)
                if moved < 0 or moved > k or (1 if moved > k - moved else 0) != expected:
                    break
                r += 1
            assert cert[0] == r, (k, ones)


def test_hash_partition_is_a_function_of_the_input_alone():
    x = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    p = certify.hash_partition(x, 4)
    assert p.shape == (50,) and set(p) <= {0, 1, 2, 3} and len(set(p)) == 4
    np.testing.assert_array_equal(certify.hash_partition(x[::-1], 4), p[::-1])  # order and labels play no part
    streams = certify.partition_streams(p, 4)
    assert (streams.sum(0) == 1).all()


@pytest.fixture(scope="module")
def brute():
    (x, y), (xv, yv) = _problem()
    partition = certify.hash_partition(x, K)
    n = len(y)
    sets = [()] + [(i,) for i in range(n)] + list(itertools.combinations(range(n), 2))
    labels = np.array([np.where(np.isin(np.arange(n), s), 1 - y, y) for s in sets])
    votes = _ensemble_votes(x, labels, xv, yv, partition)
    return sets, votes, yv


def test_no_flip_set_within_the_certificate_changes_the_ensemble_vote(brute):
    """For every validation point certified for r flips, no set of r' <= r flipped labels (all 136 sets of at
    most 2 of the 16) changes the ensemble's prediction; and the brute force does change uncertified ones (the
    check has teeth)."""
    sets, votes, yv = brute
    clean, cert = certify.dpa_certificate(votes[0])
    assert cert.max() >= 2 and (cert >= 1).mean() > 0.3  # not vacuous
    changed_uncertified = False
    for s, v in zip(sets[1:], votes[1:]):
        pred, _ = certify.dpa_certificate(v)
        changed = pred != clean
        assert not (changed & (cert >= len(s))).any(), (s, np.flatnonzero(changed & (cert >= len(s))))
        changed_uncertified |= bool(changed.any())
    assert changed_uncertified


def test_certified_accuracy_never_exceeds_the_accuracy_under_attack(brute):
    """Certified accuracy at r flips is at most the ensemble's accuracy under every set of r flips (the best
    attack of the brute force included)."""
    sets, votes, yv = brute
    clean, cert = certify.dpa_certificate(votes[0])
    for r in (0, 1, 2):
        bound = certify.certified_accuracy(clean, cert, yv, [r])[0]
        worst = min(np.mean(certify.dpa_certificate(v)[0] == yv) for s, v in zip(sets, votes) if len(s) == r)
        assert bound <= worst + 1e-12, (r, bound, worst)


def test_the_ridge_coefficients_give_the_ridge_prediction():
    """beta(x) . y equals sklearn's Ridge (no intercept) fitted on the labels."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(1)
    phi, y, phi_val = rng.normal(size=(12, 3)), rng.integers(0, 2, 12), rng.normal(size=(5, 3))
    beta = certify.ridge_coefficients(phi, phi_val, 0.7)
    ridge = Ridge(alpha=0.7, fit_intercept=False).fit(phi, y)
    np.testing.assert_allclose(beta @ y, ridge.predict(phi_val), atol=1e-10)


def test_the_smoothing_bound_holds_against_the_exact_distribution():
    """With N = 10 training labels the smoothed classifier's probability is exact (all 2^10 noisy label vectors
    weighted): the Chernoff lower bound never exceeds it, its class is the exact majority where the bound is
    informative; and the certified radius r is sound: moving r labels, the worst case over every set of r
    labels flipped keeps the exact smoothed class (r + 1 need not, and the radius is the largest r of that
    Neyman-Pearson bound)."""
    rng = np.random.default_rng(2)
    n, q = 10, 0.1
    phi = rng.normal(size=(n, 2)) + np.repeat([[-1.0, 0.0], [1.0, 0.0]], n // 2, axis=0)
    y = np.repeat([0, 1], n // 2)
    beta = certify.ridge_coefficients(phi, rng.normal(size=(6, 2)) * 1.5, 1.0)
    flips = np.array(list(itertools.product([0, 1], repeat=n)))

    def exact(labels, b):
        noisy = np.where(flips == 1, 1 - labels, labels)
        weights = q ** flips.sum(1) * (1 - q) ** (n - flips.sum(1))
        return float(weights @ (noisy @ b >= 0.5))

    classes, lower = certify.smoothed_prediction(beta, y, q)
    for b, c, p in zip(beta, classes, lower):
        p1 = exact(y, b)
        truth = p1 if c == 1 else 1 - p1
        assert p <= truth + 1e-9
        r = certify.smoothing_radius(p, q)
        if r < 0:
            continue
        assert truth > 0.5
        for s in itertools.combinations(range(n), r):  # every attack of r flips keeps the smoothed class
            moved = y.copy()
            moved[list(s)] = 1 - moved[list(s)]
            shifted = exact(moved, b)
            assert (shifted if c == 1 else 1 - shifted) > 0.5, (r, s)
    assert (np.array([certify.smoothing_radius(p, q) for p in lower]) >= 1).any()  # not vacuous


def test_the_smoothing_radius_is_the_neyman_pearson_one():
    """r = 0 needs p > 1/2; a larger p certifies more; p = 0.99 at q = 0.1 certifies 1 flip but not 2 (the worst
    set of measure 0.99 under Binomial(r, 0.9) agreement: its mass under Binomial(r, 0.1))."""
    assert certify.smoothing_radius(0.5, 0.1) == -1
    assert certify.smoothing_radius(0.6, 0.1) == 0
    radii = [certify.smoothing_radius(p, 0.2) for p in (0.6, 0.9, 0.99, 0.9999)]
    assert radii == sorted(radii) and radii[-1] > radii[0]
    # r = 1 at q = 0.1: agreement k=1 has P 0.9, P' 0.1; k=0 has P 0.1, P' 0.9. A of P-measure 0.99 takes k=1
    # whole (P' 0.1) and 0.09/0.1 of k=0 (P' 0.81): 0.91 > 1/2. r = 2: k=2 (P .81, P' .01), k=1 (P .18, P' .18):
    # 0.99 fills both (P' 0.19), nothing of k=0: 0.19 < 1/2.
    assert certify.smoothing_radius(0.99, 0.1) == 1
