"""Per-example forgetting scores (qrobust.analysis.ulira) against known answers."""

import numpy as np
import pytest

from qrobust.analysis import ulira


def _shadows(rng, k, f, gap, *, spread=1.0):
    """(unlearned, retrained, member) of k shadows on f examples: each example in half the shadows;
    unlearned outputs shifted by ``gap`` from the retrained ones (0: the example is forgotten)."""
    member = np.zeros((k, f), bool)
    for j in range(f):
        member[rng.permutation(k)[:k // 2], j] = True
    centre = rng.normal(0, 2, f)  # each example its own typical output
    retrained = centre + spread * rng.normal(size=(k, f))
    unlearned = centre + gap + spread * rng.normal(size=(k, f))
    return unlearned, retrained, member


def test_an_example_never_trained_on_scores_at_chance_and_a_memorised_one_high():
    rng = np.random.default_rng(0)
    forgotten, _ = ulira.ulira(*_shadows(rng, 64, 200, gap=0.0))
    assert abs(forgotten["auc"] - 0.5) < 0.04
    assert forgotten["tpr_at_1pct_fpr"] < 0.05
    memorised, per = ulira.ulira(*_shadows(rng, 64, 200, gap=4.0))
    assert memorised["auc"] > 0.99 and memorised["tpr_at_1pct_fpr"] > 0.8
    assert memorised["n_pos"] == memorised["n_neg"] == 64 // 2 * 200
    # the Gaussians fitted to all members recover the shift
    assert np.mean(per["mu_unlearned"] - per["mu_retrained"]) == pytest.approx(4.0, abs=0.1)
    assert np.mean(per["score_unlearned"]) > 0 > np.mean(per["score_retrained"])


def test_the_leave_one_out_fits_match_a_direct_computation():
    rng = np.random.default_rng(1)
    u, r, m = _shadows(rng, 10, 3, gap=1.0)
    _, per = ulira.ulira(u, r, m)
    # the per-example score of the unlearned targets, by hand: each target scored by the others' Gaussians
    for f in range(3):
        idx = np.flatnonzero(m[:, f])
        scores = []
        for k in idx:
            others = idx[idx != k]
            mu_u, sd_u = u[others, f].mean(), u[others, f].std(ddof=1)
            mu_r, sd_r = r[others, f].mean(), r[others, f].std(ddof=1)
            pdf = lambda x, mu, sd: np.exp(-0.5 * ((x - mu) / sd) ** 2) / sd  # noqa: E731
            scores.append(np.log(pdf(u[k, f], mu_u, sd_u)) - np.log(pdf(u[k, f], mu_r, sd_r)))
        assert per["score_unlearned"][f] == pytest.approx(np.mean(scores), rel=1e-9)
        assert per["n_shadows"][f] == len(idx)


def test_too_few_shadows_leave_an_example_out_and_bad_shapes_are_refused():
    u = np.zeros((4, 2))
    m = np.array([[1, 1], [1, 0], [1, 0], [1, 0]], bool)
    _, per = ulira.ulira(u, u + 1, m)
    assert per["n_shadows"].tolist() == [4, 0] and np.isnan(per["auc"][1])
    with pytest.raises(ValueError, match="one shape"):
        ulira.ulira(u, u[:2], m)
    with pytest.raises(ValueError, match="not finite"):
        ulira.ulira(np.full((4, 2), np.nan), u, m)


def test_epsilon_of_hand_computed_rates():
    # FPR 0.1, FNR 0.2, delta 0.01: max(log(0.89 / 0.2), log(0.79 / 0.1)) = log 7.9
    assert ulira.epsilon_from_rates([0.1], [0.2]) == pytest.approx(np.log(7.9))
    # the largest bound over attacks; a one-sided zero rate is left out; a perfect attack is infinite
    assert ulira.epsilon_from_rates([0.5, 0.1, 0.0], [0.5, 0.2, 0.3]) == pytest.approx(np.log(7.9))
    assert ulira.epsilon_from_rates([0.0], [0.0]) == np.inf
    assert ulira.epsilon_from_rates([0.5], [0.5]) == 0.0  # log(0.49 / 0.5) < 0: no evidence
    # bins of 0.5: [0, 0.5) scores 1, [0.5, 1) 1/2, [1, 1.5) 1/4; infinity the last bin, 2 / 2^13
    assert ulira.forgetting_quality([0.1, 0.6, 1.2, np.inf, np.nan]) == pytest.approx(
        (1 + 0.5 + 0.25 + 2 / 2**13) / 4)


def test_per_example_epsilon_separates_forgotten_from_memorised():
    rng = np.random.default_rng(2)
    forgotten = ulira.example_epsilons(*_shadows(rng, 64, 20, gap=0.0))
    memorised = ulira.example_epsilons(*_shadows(rng, 64, 20, gap=6.0))
    assert np.median(forgotten) < 1.0 and np.median(memorised) > 2.5  # 2.7: the resolution at 64 shadows
    assert ulira.forgetting_quality(forgotten) > 0.5 > 0.1 > ulira.forgetting_quality(memorised)
    # a perfectly separated example: every held-out side scores 0 errors, counted as half an error, so epsilon
    # sits at the estimate's resolution, log((1 - delta - r) / r) with r = 1 / (2 n), n = 8 of 32 held out
    u, r = np.full((32, 1), 5.0) + np.arange(32)[:, None] * 1e-3, np.zeros((32, 1)) - np.arange(32)[:, None] * 1e-3
    rate = 0.5 / 8
    assert ulira.example_epsilons(u, r, np.ones((32, 1), bool))[0] == pytest.approx(np.log((0.99 - rate) / rate))
    # reproducible: the attack's splits are keyed
    again = ulira.example_epsilons(*_shadows(np.random.default_rng(2), 64, 20, gap=0.0))
    assert np.array_equal(forgotten, again)


def test_divergences_by_formula():
    a, b = np.log(0.8 / 0.2), 0.0  # p_a = 0.8, p_b = 0.5
    d = ulira.bernoulli_divergences(np.array([a, b]), np.array([b, b]))
    assert d["kl"][0] == pytest.approx(0.8 * np.log(0.8 / 0.5) + 0.2 * np.log(0.2 / 0.5))
    m = 0.65
    js = 0.5 * (0.8 * np.log(0.8 / m) + 0.2 * np.log(0.2 / (1 - m))) + 0.5 * (0.5 * np.log(0.5 / m)
                                                                              + 0.5 * np.log(0.5 / (1 - m)))
    assert d["js"][0] == pytest.approx(js)
    assert d["kl"][1] == 0 and d["js"][1] == 0
    assert d["agree"].tolist() == [False, True]  # 0.8 says 1, 0.5 (logit 0) says 0
    # JS is bounded by log 2 even for confident opposite predictions; KL is not
    far = ulira.bernoulli_divergences(np.array([30.0]), np.array([-30.0]))
    assert far["js"][0] == pytest.approx(np.log(2), abs=1e-8) and far["kl"][0] == pytest.approx(30, abs=1e-6)


def test_confidence_is_the_signed_logit():
    z = np.array([2.0, -1.0])
    p = 1 / (1 + np.exp(-z))
    for y in (0, 1):
        q = p if y == 1 else 1 - p
        assert np.allclose(ulira.confidence(z, np.full(2, y)), np.log(q / (1 - q)))
