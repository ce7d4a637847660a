"""Per-example forgetting scores (qrobust.analysis.ulira) against known answers."""

import numpy as np
import pandas as pd
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
    _, per = ulira.ulira(u, r, m, global_variance_below=0)  # every variance per example
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


# --- the scorecard's uncertainty (ulira.score_draws) ----------------------------------------------------------


def _study(k, n, seed):
    """Outputs of a toy study (the reference, a method, the teacher ``none``) on a pool of n samples, a third of
    them forgotten; k shadows. The generator calls are frozen: the golden numbers below depend on them."""
    rng = np.random.default_rng(seed)
    member = np.zeros((k, n), bool)
    for j in range(n):
        member[rng.permutation(k)[:k // 2], j] = True
    forget = np.zeros(n, bool)
    forget[rng.permutation(n)[:n // 3]] = True
    labels = rng.integers(0, 2, n).astype(float)
    val_labels = rng.integers(0, 2, 7).astype(float)
    centre = rng.normal(0, 2, n)
    sign = 2 * labels - 1

    def out(gap):
        return sign * (centre + gap * forget + rng.normal(size=(k, n))), rng.normal(size=(k, 7))

    outputs = {("qnn", "retrain_full", 0.0, 0.0): out(0.0), ("qnn", "finetune", 0.0, 0.0): out(1.0),
               ("qnn", "none", 0.0, 0.0): out(2.0)}
    return outputs, member, forget, labels, val_labels


# Computed with the scoring before draws, intervals, the global variance and the TPR rule (one draw, a direct
# comparison with that module gave these columns bit for bit): rows finetune, none.
GOLDEN = {
    64: dict(auc=[0.7608203124999999, 0.915458984375], tpr_at_1pct_fpr=[0.04375, 0.26875],
             tpr_at_01pct_fpr=[0.003125, 0.059375], forgetting_quality=[0.3875, 0.1875],
             epsilon_median=[1.027235625825882, 1.651574872075683],
             kl_forget_mean=[0.21054268381771132, 0.3602411440244302],
             kl_forget_std=[0.14072216486989836, 0.20847087934391878],
             agree_val_mean=[0.5066964285714286, 0.5245535714285714],
             shadow_val_acc=[0.5334821428571429, 0.4486607142857143]),
    8: dict(auc=[0.6025, 0.8225], tpr_at_1pct_fpr=[0.075, 0.05], tpr_at_01pct_fpr=[0.075, 0.05],
            forgetting_quality=[1.0, 1.0], epsilon_median=[0.0, 0.0],
            kl_forget_mean=[0.12663219283944294, 0.31495629213942233],
            kl_forget_std=[0.07934388688199134, 0.21259259734575137],
            agree_val_mean=[0.5178571428571428, 0.5178571428571428], shadow_val_acc=[0.5, 0.4642857142857143]),
}
GOLDEN_EXAMPLES = {64: (16.572265625, 26.92296365865554), 8: (13.3125, -46.13160980891754)}


@pytest.mark.parametrize("k", [64, 8])
def test_one_draw_reproduces_the_previous_numbers(k):
    summary, examples = ulira.score_shadows(*_study(k, 30, k), global_variance_below=0, min_false_positives=0,
                                              n_boot=100)
    assert list(summary.method) == ["finetune", "none"] and (summary.n_draws == 1).all()
    for column, values in GOLDEN[k].items():
        assert summary[column].tolist() == pytest.approx(values, rel=1e-12, abs=0), column
    assert (examples.auc.sum(), examples.score_unlearned.sum()) == pytest.approx(GOLDEN_EXAMPLES[k], rel=1e-12)
    # the defaults change only what the new rules say: at 64 shadows (32 per example) the variance stays per
    # example; the TPRs of 320 negatives are unresolved (3.2 and 0.3 false positives), so NaN
    default, _ = ulira.score_shadows(*_study(k, 30, k), n_boot=100)
    if k == 64:
        assert (default.variance == "per-example").all()
        assert default.auc.tolist() == summary.auc.tolist()
        assert default.tpr_at_1pct_fpr.isna().all() and default.tpr_at_01pct_fpr.isna().all()
        assert default.tpr_at_1pct_fpr_lo.isna().all()
    else:
        assert (default.variance == "global").all() and default.auc.tolist() != summary.auc.tolist()


def test_tpr_at_a_low_fpr_is_reported_only_where_the_negatives_resolve_it():
    rng = np.random.default_rng(3)
    pos = rng.normal(2, 1, 500)
    # 768 negatives: 1 % FPR is 7.7 false positives, 0.1 % is 0.8: neither reaches 10
    s = ulira.roc_summary(pos, rng.normal(0, 1, 768))
    assert np.isnan(s["tpr_at_1pct_fpr"]) and np.isnan(s["tpr_at_01pct_fpr"]) and s["auc"] > 0.9
    s = ulira.roc_summary(pos, rng.normal(0, 1, 1000))  # 10 false positives at 1 %: resolved; 1 at 0.1 %: not
    assert 0 < s["tpr_at_1pct_fpr"] < 1 and np.isnan(s["tpr_at_01pct_fpr"])
    s = ulira.roc_summary(pos, rng.normal(0, 1, 10_000))
    assert 0 < s["tpr_at_01pct_fpr"] < s["tpr_at_1pct_fpr"] < 1
    s = ulira.roc_summary(pos, rng.normal(0, 1, 768), min_false_positives=0)  # the rule off: as before
    assert not np.isnan(s["tpr_at_01pct_fpr"])


def test_removal_is_normalised_by_the_teachers_own_leak():
    # the critique's XXZ fine-tuning numbers: QNN teacher 0.792, fine-tuned 0.728; MLP 0.964 and 0.733
    qnn, mlp = ulira.removed_share(0.792, 0.728), ulira.removed_share(0.964, 0.733)
    assert qnn == pytest.approx(0.064 / 0.292) and mlp == pytest.approx(0.231 / 0.464)
    assert round(qnn, 2) == 0.22 and round(mlp, 2) == 0.50
    assert ulira.removed_share(0.9, 0.9) == 0 and ulira.removed_share(0.9, 0.5) == 1
    assert ulira.removed_share(0.8, 0.95) == pytest.approx(-0.5)  # more recognisable than the teacher
    assert np.isnan(ulira.removed_share(0.54, 0.5))  # a teacher 0.04 above chance: below the margin, no ratio
    assert ulira.removed_share(0.55, 0.5) == pytest.approx(1.0)  # at the margin
    assert np.isnan(ulira.removed_share(0.54, 0.5, margin=0.05)) and ulira.removed_share(0.54, 0.5, margin=0.01) == 1
    # in the table: each model's own none row, its interval from the same (paired) resamples
    summary, _ = ulira.score_shadows(*_study(64, 60, 5), n_boot=200)
    card = summary.set_index("method")
    assert card.loc["finetune", "removed"] == pytest.approx(ulira.removed_share(card.loc["none", "auc"],
                                                                                card.loc["finetune", "auc"]))
    assert card.loc["none", "removed"] == 0 and card.loc["none", "removed_lo"] == card.loc["none", "removed_hi"] == 0
    assert card.loc["finetune", "removed_lo"] < card.loc["finetune", "removed"] < card.loc["finetune", "removed_hi"]


def test_the_weighted_roc_with_unit_weights_is_sklearns():
    from sklearn.metrics import roc_auc_score, roc_curve

    rng = np.random.default_rng(4)
    pos, neg = rng.normal(1, 1, 300), rng.normal(0, 1, 2000)
    unit_p, unit_n = rng.integers(0, 20, 300), rng.integers(0, 20, 2000)
    auc, tpr = ulira.weighted_roc(pos, neg, unit_p, unit_n, np.ones((1, 20)), (0.01, 0.001))
    y, s = np.r_[np.ones(300), np.zeros(2000)], np.r_[pos, neg]
    fpr, t, _ = roc_curve(y, s)
    assert auc[0] == pytest.approx(roc_auc_score(y, s), rel=1e-12)
    assert tpr[0].tolist() == [t[fpr <= 0.01].max(), t[fpr <= 0.001].max()]
    # ties count one half, as sklearn's; integer weights count a unit's targets that many times
    pos, neg = np.round(pos), np.round(neg)
    w = rng.integers(0, 3, 20).astype(float)
    auc, _ = ulira.weighted_roc(pos, neg, unit_p, unit_n, w[None])
    rep_p, rep_n = np.repeat(pos, w[unit_p].astype(int)), np.repeat(neg, w[unit_n].astype(int))
    y = np.r_[np.ones(len(rep_p)), np.zeros(len(rep_n))]
    assert auc[0] == pytest.approx(roc_auc_score(y, np.r_[rep_p, rep_n]), rel=1e-12)
    # scores of their own per row (the refitted resamples): the same numbers
    rows = ulira._roc_rows(np.r_[pos, neg][None].repeat(2, 0), np.r_[np.ones(300, bool), np.zeros(2000, bool)],
                           np.stack([np.ones(2300), np.r_[w[unit_p], w[unit_n]]]), (0.01, 0.001))
    shared = ulira.weighted_roc(pos, neg, unit_p, unit_n, np.stack([np.ones(20), w]), (0.01, 0.001))
    assert rows[0] == pytest.approx(shared[0], rel=1e-12) and np.array_equal(rows[1], shared[1])


def test_the_bootstrap_resamples_draws_then_their_units_reproducibly():
    a = ulira.bootstrap_weights([8, 5, 3], n_boot=400, seed=7)
    assert [w.shape for w in a] == [(400, 8), (400, 5), (400, 3)]
    picks = np.stack([w.sum(1) / k for w, k in zip(a, (8, 5, 3))], 1)  # how often each draw was picked
    assert (picks.sum(1) == 3).all() and (picks == np.round(picks)).all() and picks.std() > 0
    assert all(np.array_equal(x, y) for x, y in zip(a, ulira.bootstrap_weights([8, 5, 3], n_boot=400, seed=7)))
    one = ulira.bootstrap_weights([10], n_boot=50)[0]  # one draw: only the units are resampled
    assert (one.sum(1) == 10).all()
    # the draws' picks come first: the same draws for shadows and for examples
    b = ulira.bootstrap_weights([20, 30, 40], n_boot=400, seed=7)
    assert np.array_equal(picks, np.stack([w.sum(1) / k for w, k in zip(b, (20, 30, 40))], 1))


def _known_auc(member, d, tau, c):
    """The exact mean of the pooled empirical AUC when a positive target of shadow k on example f is
    d + c_f + a_k + e and a negative c_f + a_k + e' (a_k ~ N(0, tau^2) per shadow, e, e' ~ N(0, 1)): a pair
    of one shadow differs by N(d + c_f - c_g, 2), of two shadows by N(d + c_f - c_g, 2 + 2 tau^2)."""
    from scipy.stats import norm

    same = sum(np.outer(m, m) for m in member.astype(float))
    total = np.outer(member.sum(0), member.sum(0))
    diff = d + c[:, None] - c[None, :]
    return float((same * norm.cdf(diff / np.sqrt(2)) + (total - same) * norm.cdf(diff / np.sqrt(2 + 2 * tau**2))
                  ).sum() / total.sum())


def _coverage(n_sims, k, f, d, tau, n_boot, seed):
    rng = np.random.default_rng(seed)
    member = np.zeros((k, f), bool)
    for j in range(f):
        member[rng.permutation(k)[:k // 2], j] = True
    c = rng.normal(0, 1, f)  # the examples' own levels: fixed, as a study's forget set is
    truth = _known_auc(member, d, tau, c)
    kk, ff = np.nonzero(member)
    w = ulira.bootstrap_weights([k], n_boot)[0]
    hits = 0
    for _ in range(n_sims):
        a = rng.normal(0, tau, k)  # each shadow's own offset, shared by its targets
        pos = d + c[ff] + a[kk] + rng.normal(size=kk.size)
        neg = c[ff] + a[kk] + rng.normal(size=kk.size)
        lo, hi = ulira.interval(ulira.weighted_roc(pos, neg, kk, kk, w)[0])
        hits += lo <= truth <= hi
    return hits / n_sims, truth


def test_resampling_shadows_covers_the_known_auc_of_given_scores():
    """The resampling engine (``bootstrap_weights``, ``weighted_roc``, ``interval``) on synthetic Gaussian target
    scores of known separation, a per-shadow offset shared by a shadow's targets, examples of their own levels:
    the 95 % interval covers the exactly known mean AUC in about 95 % of repeated studies (measured with 1000
    studies of 1000 resamples: 0.92 to 0.95); here 200 studies of 200 resamples, the bound 4.5 standard errors."""
    coverage, truth = _coverage(200, 32, 16, 1.0, 0.5, 200, seed=11)
    assert 0.6 < truth < 0.8
    assert 0.88 <= coverage <= 1.0


def test_the_scorecards_auc_interval_covers_the_auc_of_repeated_studies():
    """The scorecard's interval (U-LiRA refitted on each resample of the shadows, re-centred: ``score_draws``) on
    synthetic Gaussian shadows, each example its own level and spread, each shadow its own offset: the interval
    of one study covers the mean U-LiRA AUC of 300 further studies (which it never sees) in most studies. The
    mean, not the AUC of the true Gaussians: at 32 shadows the fits' noise lowers U-LiRA's AUC below that
    (``ulira``'s docstring gives both coverages, measured over more studies)."""
    rng = np.random.default_rng(12)
    k, f, gap, tau = 32, 12, 0.8, 0.3
    member = np.zeros((k, f), bool)
    for j in range(f):
        member[rng.permutation(k)[:k // 2], j] = True
    centre, spread = rng.normal(0, 2, f), rng.uniform(0.5, 1.5, f)

    def study():
        a = rng.normal(0, tau, k)[:, None]
        u = centre + gap * spread + a + spread * rng.normal(size=(k, f))
        r = centre + a + spread * rng.normal(size=(k, f))
        # 16 shadows per example: the global variance. With every shadow counted once, the refit is the fit
        part = dict(u=u, r=r, usable=member, pooled=np.ones(f, bool), k=k)
        return ulira._refit_replicates([part], [np.ones((1, k))])[0][0], part

    auc, part = study()
    score_u, score_r, usable, per = ulira._targets(part["u"], part["r"], member, min_shadows=4,
                                                   global_variance_below=None)
    assert per["global_variance"].all() and (usable == member).all()
    assert auc == pytest.approx(ulira.roc_summary(score_u[usable], score_r[usable])["auc"], rel=1e-12)
    truth = np.mean([study()[0] for _ in range(300)])
    w = ulira.bootstrap_weights([k], 100)
    hits = 0
    for _ in range(60):
        auc, part = study()
        lo, hi = ulira.centred_interval(auc, ulira._refit_replicates([part], w)[0], bounds=(0.0, 1.0))
        hits += lo <= truth <= hi
    assert hits / 60 >= 0.85


def _direct_global(x, m, k):
    """By hand: the variance of every member's output about its example's mean, shadow k left out of all."""
    ss, df = 0.0, 0
    for f in range(x.shape[1]):
        idx = np.flatnonzero(m[:, f])
        idx = idx[idx != k]
        ss += ((x[idx, f] - x[idx, f].mean()) ** 2).sum()
        df += len(idx) - 1
    return ss / df


def test_the_global_variance_below_the_threshold_and_where_it_equals_the_per_example_one():
    rng = np.random.default_rng(6)
    u, r, m = _shadows(rng, 10, 4, gap=1.0)  # 5 shadows per example: below 32, so the global variance
    _, per = ulira.ulira(u, r, m)
    assert per["global_variance"].all()
    score_u, _, usable, _ = ulira._targets(u, r, m, min_shadows=4, global_variance_below=None)
    for k, f in zip(*np.nonzero(usable)):  # one target by hand: per-example means, the global variance
        others = np.flatnonzero(m[:, f])
        others = others[others != k]
        var_u, var_r = _direct_global(u, m, k), _direct_global(r, m, k)
        by_hand = (-0.5 * (u[k, f] - u[others, f].mean()) ** 2 / var_u - 0.5 * np.log(var_u)
                   + 0.5 * (u[k, f] - r[others, f].mean()) ** 2 / var_r + 0.5 * np.log(var_r))
        assert score_u[k, f] == pytest.approx(by_hand, rel=1e-9)
    # one example: pooling over examples pools nothing, so global = per example
    one = ulira.ulira(u[:, :1], r[:, :1], m[:, :1])
    per_example = ulira.ulira(u[:, :1], r[:, :1], m[:, :1], global_variance_below=0)
    assert one[0]["auc"] == per_example[0]["auc"]
    assert one[1]["score_unlearned"] == pytest.approx(per_example[1]["score_unlearned"], rel=1e-12)
    # examples held by the same shadows whose outputs are shifted copies of one another: every example has the
    # same spread, so the pooled variance is each example's own
    base_u, base_r = rng.normal(size=12), rng.normal(size=12)
    shift = rng.normal(0, 3, 5)
    uu, rr, mm = base_u[:, None] + shift + 1.0, base_r[:, None] + shift, np.ones((12, 5), bool)
    g, p = ulira.ulira(uu, rr, mm), ulira.ulira(uu, rr, mm, global_variance_below=0)
    assert g[0]["auc"] == pytest.approx(p[0]["auc"]) and g[1]["global_variance"].all()
    assert g[1]["score_unlearned"] == pytest.approx(p[1]["score_unlearned"], rel=1e-9)
    # at or above the threshold the variance is per example
    assert not ulira.ulira(u, r, m, global_variance_below=5)[1]["global_variance"].any()


def test_several_draws_are_scored_per_draw_and_pooled():
    draws = [ulira.Draw(*_study(16, 45, s)[:4], seed=s) for s in (3, 4)]
    val = _study(16, 45, 3)[4]
    scores = ulira.score_draws(draws, val, n_boot=100)
    assert list(scores.draws.seed) == [3, 3, 4, 4] and set(scores.examples.draw) == {0, 1}
    # each draw's rows are its own single-draw scoring
    for i, d in enumerate(draws):
        alone = ulira.score_draws([d], val, n_boot=100).summary
        mine = scores.draws[scores.draws.draw == i].drop(columns=["draw", "seed"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(mine, alone)
    # pooled: every target of both draws; the examples of both
    pooled = scores.summary.set_index("method")
    assert (pooled.n_draws == 2).all() and (pooled.n_forget == 30).all()
    assert pooled.loc["finetune", "n_neg"] == scores.draws.query("method == 'finetune'").n_neg.sum()
    assert pooled.loc["finetune", "auc_lo"] < pooled.loc["finetune", "auc"] < pooled.loc["finetune", "auc_hi"]
    with pytest.raises(ValueError, match="same models"):
        ulira.score_draws([draws[0], draws[1]._replace(outputs={k: v for k, v in draws[1].outputs.items()
                                                                 if k[1] != "none"})], val, n_boot=10)


def test_the_epsilon_ceiling_is_stated():
    # 32 outputs per side (64 shadows): 8 held out per side, a zero rate counts 1/16
    assert ulira.epsilon_cap(32) == pytest.approx(np.log((0.99 - 1 / 16) / (1 / 16)))
    assert 2.6 < ulira.epsilon_cap(32) < 2.8 and ulira.epsilon_cap(128) > ulira.epsilon_cap(32)
    assert ulira.epsilon_cap(4) == 0  # 8 shadows: one held-out output per side, no epsilon above 0 is possible
    summary, examples = ulira.score_shadows(*_study(64, 30, 64), n_boot=50)
    assert (summary.epsilon_cap == ulira.epsilon_cap(32)).all() and (examples.epsilon <= examples.epsilon_cap).all()
    assert (summary.forgetting_quality_floor == 2 / 2**6).all()
    assert (summary.forgetting_quality >= summary.forgetting_quality_floor).all()
    small, _ = ulira.score_shadows(*_study(8, 30, 8), n_boot=50)
    assert (small.epsilon_at_cap == 1).all() and (small.forgetting_quality_floor == 1).all()


def test_the_epsilon_aggregates_resample_examples():
    rng = np.random.default_rng(8)
    values, w = rng.normal(size=9), rng.integers(0, 4, (50, 9)).astype(float)
    w[:, 0] += 1  # never empty
    expected = [np.median(np.repeat(values, row.astype(int))) for row in w]
    assert ulira._weighted_median(values, w) == pytest.approx(expected)
    summary, _ = ulira.score_shadows(*_study(64, 60, 9), n_boot=200)
    for name in ("forgetting_quality", "epsilon_median"):
        assert (summary[f"{name}_lo"] <= summary[name]).all() and (summary[name] <= summary[f"{name}_hi"]).all()
        assert (summary[f"{name}_lo"] < summary[f"{name}_hi"]).all()
