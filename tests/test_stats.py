"""Contract tests of the kit's one statistics convention (:mod:`advtransfer.results.stats`).

Expected values are computed here independently of the module: Wilson's interval as the roots of its quadratic,
Newcombe's paired interval from its published formula, McNemar's exact p-value from binomial coefficients.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from advtransfer.results.stats import (
    LEVEL,
    Difference,
    Estimate,
    SeedResult,
    Z,
    difference,
    estimate,
    newcombe,
    paired,
    published_estimate,
    wilson,
)
from budget import examples


def wilson_roots(p: float, n: float, z: float = Z) -> tuple[float, float]:
    """Wilson's interval as the two solutions pi of (p - pi)^2 = z^2 pi (1 - pi) / n."""
    # (1 + z^2/n) pi^2 - (2p + z^2/n) pi + p^2 = 0
    a, b, c = 1 + z * z / n, -(2 * p + z * z / n), p * p
    disc = math.sqrt(b * b - 4 * a * c)
    return (-b - disc) / (2 * a), (-b + disc) / (2 * a)


def newcombe_method10(a: int, b: int, c: int, d: int, z: float = Z) -> tuple[float, float]:
    """Newcombe (1998, Stat Med 17:2635, method 10), as published: the Wilson limits of both marginal proportions
    combined with the correlation phi, which is shrunk towards 0 when positive (phi* = (AD - BC - N/2) / sqrt(EFGH)
    where AD - BC > N/2, 0 where 0 <= AD - BC <= N/2, uncorrected where negative)."""
    n = a + b + c + d
    p1, p2 = (a + b) / n, (a + c) / n
    l1, u1 = wilson_roots(p1, n, z)
    l2, u2 = wilson_roots(p2, n, z)
    efgh = (a + b) * (c + d) * (a + c) * (b + d)
    ad_bc = a * d - b * c
    if efgh == 0:
        phi = 0.0
    elif ad_bc > n / 2:
        phi = (ad_bc - n / 2) / math.sqrt(efgh)
    elif ad_bc >= 0:
        phi = 0.0
    else:
        phi = ad_bc / math.sqrt(efgh)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    return low, high


def old_t_interval(accs: list[float]) -> tuple[float, float]:
    """The kit's former interval: mean +- t(0.975, k - 1) * sd / sqrt(k)."""
    k = len(accs)
    mean = float(np.mean(accs))
    half = float(sps.t.ppf(0.975, k - 1)) * float(np.std(accs, ddof=1)) / math.sqrt(k)
    return mean - half, mean + half


def table_flags(both: int, only_a: int, only_b: int, neither: int, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-example flags of two models with the given 2x2 table (shuffled when ``rng`` is given)."""
    a = np.array([True] * both + [True] * only_a + [False] * only_b + [False] * neither)
    b = np.array([True] * both + [False] * only_a + [True] * only_b + [False] * neither)
    if rng is not None:
        order = rng.permutation(len(a))
        a, b = a[order], b[order]
    return a, b


def paired_pair(tables, test_set: str = "test-images") -> tuple[Estimate, Estimate]:
    """Two estimates over len(tables) seeds, per seed on the same named test images, with flags."""
    left, right = [], []
    for seed, table in enumerate(tables):
        fa, fb = table_flags(*table)
        n = len(fa)
        left.append(SeedResult(seed, int(fa.sum()), n, f"{test_set}-{seed}", fa))
        right.append(SeedResult(seed, int(fb.sum()), n, f"{test_set}-{seed}", fb))
    return estimate(left), estimate(right)


@st.composite
def seed_counts(draw, max_seeds: int = 5, max_n: int = 2000):
    k = draw(st.integers(1, max_seeds))
    out = []
    for seed in range(k):
        n = draw(st.integers(1, max_n))
        out.append(SeedResult(seed, draw(st.integers(0, n)), n))
    return out


# --------------------------------------------------------------------------------------------------- Wilson ---


def test_level_and_z():
    assert LEVEL == 0.95
    assert Z == pytest.approx(sps.norm.ppf(0.975), abs=1e-12)


@pytest.mark.parametrize(("correct", "n", "published"), [
    (60, 100, (0.5020, 0.6906)),  # textbook value of Wilson's 95% interval for 60/100
    (81, 263, (0.2553, 0.3662)),  # Newcombe (1998, Stat Med 17:857), worked example 81/263
])
def test_wilson_against_hand_computed_values(correct: int, n: int, published: tuple[float, float]):
    low, high = wilson(correct / n, n)
    exact = wilson_roots(correct / n, n)
    assert (low, high) == pytest.approx(exact, abs=1e-12)
    assert (round(low, 4), round(high, 4)) == published


def test_wilson_at_the_edges():
    n = 150
    assert wilson(0.0, n) == pytest.approx((0.0, Z * Z / (n + Z * Z)), abs=1e-12)
    assert wilson(1.0, n) == pytest.approx((n / (n + Z * Z), 1.0), abs=1e-12)
    assert wilson(0.5, 0) == (0.0, 1.0)  # no information: the whole range
    assert wilson(math.nan, 100) == (0.0, 1.0)


# ------------------------------------------------------------------------------------------------- estimate ---


def test_one_seed_is_wilsons_interval_on_its_test_images():
    est = estimate([SeedResult(0, 118, 200)])
    assert est.mean == pytest.approx(0.59)
    assert (est.low, est.high) == pytest.approx(wilson_roots(0.59, 200), abs=1e-12)
    assert est.variance == pytest.approx(0.59 * 0.41 / 200)
    assert (est.n_seeds, est.n) == (1, 200)


def test_two_seeds_by_hand():
    """The results fixture's A4B natural accuracy: 118/200 and 120/200."""
    est = estimate([SeedResult(0, 118, 200), SeedResult(1, 120, 200)])
    binomial = (0.59 * 0.41 / 200 + 0.60 * 0.40 / 200) / 4
    seed = np.var([0.59, 0.60], ddof=1) / 2  # 2.5e-5: the seeds agree within sampling noise
    assert binomial > seed
    assert est.mean == pytest.approx(0.595)
    assert est.variance == pytest.approx(binomial)
    n_eff = 0.595 * 0.405 / binomial
    assert 399 < n_eff < 401  # about the 400 pooled images
    assert (est.low, est.high) == pytest.approx(wilson_roots(0.595, n_eff), abs=1e-12)
    assert est.text() == "0.5950 [0.5462, 0.6420]"
    assert (est.n_seeds, est.n) == (2, 400)


@settings(max_examples=examples(300), deadline=None)
@given(seed_counts())
def test_interval_stays_in_the_unit_interval_and_holds_the_mean(seeds):
    est = estimate(seeds)
    accs = [s.correct / s.n for s in seeds]
    assert est.mean == pytest.approx(float(np.mean(accs)), abs=1e-12)
    assert 0.0 <= est.low <= est.mean + 1e-12
    assert est.mean - 1e-12 <= est.high <= 1.0
    assert est.variance >= 0.0
    assert est.n_seeds == len(seeds) and est.n == sum(s.n for s in seeds)
    # at least as wide as the binomial interval of the seeds' mean (the noise floor of the test images)
    if 0 < est.mean < 1:
        binomial = sum(a * (1 - a) / s.n for a, s in zip(accs, seeds)) / len(seeds) ** 2
        if binomial > 0:
            floor = wilson_roots(est.mean, est.mean * (1 - est.mean) / binomial)
            assert est.high - est.low >= floor[1] - floor[0] - 1e-9


def test_two_seeds_no_longer_blow_the_interval_up():
    """Two seeds 0.59 and 0.61 on 10,000 images each: the old t-interval was +-12.7 standard errors (t at one
    degree of freedom); the new one is Wilson at the seed variance, about +-1.96 standard errors."""
    seeds = [SeedResult(0, 5900, 10_000), SeedResult(1, 6100, 10_000)]
    est = estimate(seeds)
    old_low, old_high = old_t_interval([0.59, 0.61])
    se = 0.01  # sd(0.59, 0.61) / sqrt(2)
    assert old_high - 0.60 == pytest.approx(12.706 * se, rel=1e-4)
    assert est.variance == pytest.approx(se**2)  # the seeds disagree beyond sampling noise: seed variance wins
    assert est.high - est.mean == pytest.approx(Z * se, rel=0.02)
    assert est.mean - est.low == pytest.approx(Z * se, rel=0.02)
    assert (est.high - est.low) < (old_high - old_low) / 6


def test_two_seeds_near_one_stay_below_one_where_the_t_interval_did_not():
    est = estimate([SeedResult(0, 9700, 10_000), SeedResult(1, 9900, 10_000)])
    assert old_t_interval([0.97, 0.99])[1] > 1.0  # the old interval claimed accuracies above 100%
    assert est.high < 1.0 and est.low > 0.9
    assert est.mean == pytest.approx(0.98)


def test_seed_disagreement_widens_the_interval():
    """Same mean 0.5 on 2 x 1000 images; the more the seeds disagree the wider the interval."""
    agree = estimate([SeedResult(0, 500, 1000), SeedResult(1, 500, 1000)])
    some = estimate([SeedResult(0, 450, 1000), SeedResult(1, 550, 1000)])
    much = estimate([SeedResult(0, 300, 1000), SeedResult(1, 700, 1000)])
    widths = [e.high - e.low for e in (agree, some, much)]
    assert widths == sorted(widths) and widths[0] < widths[1] < widths[2]
    assert agree.mean == some.mean == much.mean == pytest.approx(0.5)
    # agreeing seeds: the binomial floor, Wilson at the 2000 pooled images
    assert (agree.low, agree.high) == pytest.approx(wilson_roots(0.5, 2000), abs=1e-12)
    # disagreeing seeds: variance = var(0.3, 0.7) / 2 = 0.04, n_eff = 0.25 / 0.04 = 6.25
    assert much.variance == pytest.approx(0.04)
    assert (much.low, much.high) == pytest.approx(wilson_roots(0.5, 6.25), abs=1e-12)
    # three seeds, one outlier
    three = estimate([SeedResult(0, 500, 1000), SeedResult(1, 500, 1000), SeedResult(2, 800, 1000)])
    assert three.variance == pytest.approx(np.var([0.5, 0.5, 0.8], ddof=1) / 3)
    assert three.high - three.low > agree.high - agree.low


def test_all_correct_and_all_wrong_seeds():
    right = estimate([SeedResult(s, 50, 50) for s in range(3)])
    assert (right.mean, right.high) == (1.0, 1.0)
    assert right.low == pytest.approx(150 / (150 + Z * Z))  # Wilson's lower limit for 150/150
    # no sampling variance to estimate at 0 or 1: the variance is the one Wilson's interval implies, so a
    # difference with this accuracy is never taken as certain
    assert right.variance == pytest.approx(((right.high - right.low) / (2 * Z)) ** 2) and right.variance > 0
    wrong = estimate([SeedResult(s, 0, 50) for s in range(3)])
    assert wrong.mean == 0.0 and wrong.variance == pytest.approx(((wrong.high - wrong.low) / (2 * Z)) ** 2)
    assert wrong.low == pytest.approx(0.0, abs=1e-15)
    assert wrong.high == pytest.approx(Z * Z / (150 + Z * Z))
    # one seed right on every image, one wrong on every image: maximal disagreement, n_eff = 1
    split = estimate([SeedResult(0, 50, 50), SeedResult(1, 0, 50)])
    assert split.mean == 0.5 and split.variance == pytest.approx(0.25)
    assert (split.low, split.high) == pytest.approx(wilson_roots(0.5, 1.0), abs=1e-12)
    assert 0.0 <= split.low < 0.1 and 0.9 < split.high <= 1.0


def test_empty_and_zero_size_seeds():
    none = estimate([])
    assert math.isnan(none.mean) and (none.low, none.high, none.n_seeds, none.n) == (0.0, 1.0, 0, 0)
    est = estimate([SeedResult(0, 0, 0), SeedResult(1, 30, 60)])  # a seed without test images is left out
    assert (est.n_seeds, est.n, est.mean) == (1, 60, 0.5)


def test_text_and_label():
    est = estimate([SeedResult(0, 490, 800)], label="A4B+ natural")
    low, high = wilson_roots(0.6125, 800)
    assert est.text() == f"0.6125 [{low:.4f}, {high:.4f}]" == "0.6125 [0.5783, 0.6456]"
    assert est.text(2) == "0.61 [0.58, 0.65]"
    assert str(est) == "A4B+ natural 0.6125 [0.5783, 0.6456]"  # claims' evidence: label and the tables' 4 digits
    relabelled = est.labelled("BnB natural")
    assert str(relabelled) == "BnB natural 0.6125 [0.5783, 0.6456]"
    assert relabelled == est  # the label takes no part in equality
    assert relabelled.interval == (est.low, est.high)


def test_published_estimate():
    est = published_estimate(0.5965, 6000, "A4B+ natural")
    assert (est.n_seeds, est.n) == (1, 6000)
    assert est.mean == pytest.approx(3579 / 6000)
    assert (est.low, est.high) == pytest.approx(wilson_roots(3579 / 6000, 6000), abs=1e-12)
    assert est.seeds[0].flags is None and est.seeds[0].test_set == ""
    assert est.label == "A4B+ natural"
    assert published_estimate(0.12345, 100).mean == pytest.approx(0.12)  # rounded to a whole number of images
    # a published number is never paired with ours, even on the same number of images
    fa = np.ones(6000, dtype=bool)
    ours = estimate([SeedResult(0, 6000, 6000, "test", fa)])
    assert not paired(est, ours) and not paired(ours, est)
    assert difference(ours, est).method == "unpaired"


# ---------------------------------------------------------------------------------------------- difference ---


def test_unpaired_difference_by_hand():
    a, b = estimate([SeedResult(0, 60, 100)]), estimate([SeedResult(0, 50, 100)])
    d = difference(a, b)
    half = Z * math.sqrt(0.6 * 0.4 / 100 + 0.5 * 0.5 / 100)  # Z * 0.07
    assert d.method == "unpaired" and d.p_value is None and d.discordant is None
    assert d.diff == pytest.approx(0.1)
    assert (d.low, d.high) == pytest.approx((0.1 - half, 0.1 + half), abs=1e-12)
    assert d.text() == "+0.100 [-0.037, +0.237], unpaired"
    assert difference(b, a).text() == "-0.100 [-0.237, +0.037], unpaired"


def test_unpaired_difference_uses_the_seed_variance_and_is_clipped():
    a = estimate([SeedResult(0, 300, 1000), SeedResult(1, 700, 1000)])  # variance 0.04 (seed term)
    b = estimate([SeedResult(0, 200, 1000), SeedResult(1, 200, 1000)])
    d = difference(a, b)
    assert d.diff == pytest.approx(0.3)
    assert d.high - d.diff == pytest.approx(Z * math.sqrt(0.04 + b.variance))
    near_one = difference(estimate([SeedResult(0, 19, 20)]), estimate([SeedResult(0, 1, 20)]))
    assert near_one.diff == pytest.approx(0.9)
    assert near_one.high == 1.0  # 0.9 + 1.96 * 0.069 clipped to the largest possible difference
    assert near_one.low == pytest.approx(0.9 - Z * math.sqrt(2 * 0.95 * 0.05 / 20))


def test_paired_mcnemar_p_value_small_table():
    """Both right 8, only the first 5, only the second 1, neither 2 (16 images)."""
    a, b = paired_pair([(8, 5, 1, 2)])
    assert paired(a, b)
    d = difference(a, b)
    assert d.method == "paired" and d.discordant == (5, 1)
    assert d.diff == pytest.approx((5 - 1) / 16)
    # exact two-sided binomial test of 5 of 6 discordant pairs at 1/2: 2 * (C(6,5) + C(6,6)) / 2^6 = 14 / 64
    hand = 2 * (math.comb(6, 5) + math.comb(6, 6)) / 2**6
    assert hand == 0.21875
    assert d.p_value == pytest.approx(hand, abs=1e-12)
    assert d.p_value == pytest.approx(sps.binomtest(5, 6, 0.5).pvalue, abs=1e-12)
    assert d.text() == (f"+0.250 [{d.low:+.3f}, {d.high:+.3f}], paired: McNemar exact p = 0.219 on 5 vs 1 "
                        "discordant images")
    # with one seed the interval is Newcombe's on the pooled table
    assert (d.low, d.high) == pytest.approx(newcombe(8, 5, 1, 2), abs=1e-12)


@pytest.mark.parametrize(("table", "b", "c"), [((50, 10, 2, 38), 10, 2), ((40, 3, 3, 54), 3, 3),
                                               ((0, 0, 7, 13), 0, 7), ((90, 31, 17, 62), 31, 17)])
def test_paired_p_value_is_binomtest_of_the_discordant_pairs(table, b, c):
    left, right = paired_pair([table])
    d = difference(left, right)
    assert d.discordant == (b, c)
    assert d.p_value == pytest.approx(sps.binomtest(b, b + c, 0.5).pvalue, abs=1e-12)
    k = min(b, c)
    hand = min(1.0, 2 * sum(math.comb(b + c, i) for i in range(k + 1)) / 2 ** (b + c))
    assert d.p_value == pytest.approx(hand, abs=1e-12)


def test_paired_without_discordant_pairs_has_p_one_and_a_real_interval():
    left, right = paired_pair([(60, 0, 0, 40)])
    d = difference(left, right)
    assert d.diff == 0.0 and d.p_value == 1.0 and d.discordant == (0, 0)
    assert d.low < 0.0 < d.high  # Newcombe's interval does not collapse to a point
    assert (d.low, d.high) == pytest.approx(newcombe(60, 0, 0, 40), abs=1e-12)


@pytest.mark.parametrize("table", [(36, 12, 2, 0), (5, 20, 10, 2), (0, 7, 9, 0), (3, 14, 1, 1)])
def test_newcombe_matches_the_published_formula_for_negatively_correlated_tables(table):
    """Where AD < BC Newcombe's phi is uncorrected and the kit's interval is method 10's."""
    a, b, c, d = table
    assert a * d - b * c < 0
    assert newcombe(*table) == pytest.approx(newcombe_method10(*table), abs=1e-12)


def test_newcombe_independent_margins_zero_correlation():
    # an empty margin: phi = 0 and the interval is the square-and-add of two Wilson intervals
    low, high = newcombe(0, 0, 5, 15)
    p1, p2 = 0.0, 0.25
    l1, u1 = wilson_roots(p1, 20)
    l2, u2 = wilson_roots(p2, 20)
    assert low == pytest.approx(p1 - p2 - math.hypot(p1 - l1, u2 - p2), abs=1e-12)
    assert high == pytest.approx(p1 - p2 + math.hypot(u1 - p1, p2 - l2), abs=1e-12)


def test_newcombe_published_worked_example():
    """Fagerland, Lydersen & Laake (2017), Statistical Analysis of Contingency Tables, ch. 8: complete response
    before and after consolidation therapy (Cavo et al. 2012), table [[59, 6], [16, 80]]: Newcombe's square-and-add
    interval -0.0621 (95% CI -0.1186 to -0.0046)."""
    assert tuple(round(x, 4) for x in newcombe_method10(59, 6, 16, 80)) == (-0.1186, -0.0046)  # the formula here
    low, high = newcombe(59, 6, 16, 80)
    assert (round(low, 4), round(high, 4)) == (-0.1186, -0.0046)


def test_newcombe_method10_on_the_small_table():
    # a=8, b=5, c=1, d=2: AD - BC = 11 > N/2 = 8, phi* = 3 / sqrt(13 * 3 * 9 * 7)
    assert newcombe(8, 5, 1, 2) == pytest.approx(newcombe_method10(8, 5, 1, 2), abs=1e-9)


# -------------------------------------------------------------------------------------------------- paired ---


def _est(seeds_spec):
    """seeds_spec: (seed, test_set, flags or None, n)."""
    out = []
    for seed, test_set, flags, n in seeds_spec:
        correct = int(np.sum(flags)) if flags is not None else n // 2
        out.append(SeedResult(seed, correct, n, test_set, flags))
    return estimate(out)


def test_paired_requires_the_same_test_images_with_flags():
    f = np.array([True, False, True, True])
    g = np.array([False, False, True, True])
    base = _est([(0, "t0", f, 4), (1, "t1", f, 4)])
    assert paired(base, _est([(0, "t0", g, 4), (1, "t1", g, 4)]))
    assert paired(_est([(1, "t1", f, 4), (0, "t0", f, 4)]), base)  # seed order does not matter
    assert not paired(base, _est([(0, "t0", g, 4), (1, "tX", g, 4)]))  # another test set for seed 1
    assert not paired(base, _est([(0, "t0", g, 4), (2, "t1", g, 4)]))  # other seeds
    assert not paired(base, _est([(0, "t0", g, 4)]))  # fewer seeds
    assert not paired(base, _est([(0, "t0", g, 4), (1, "t1", None, 4)]))  # flags missing on one side
    assert not paired(_est([(0, "t0", None, 4), (1, "t1", None, 4)]), base)
    five = np.array([True, False, True, True, False])
    assert not paired(base, _est([(0, "t0", g, 4), (1, "t1", five, 5)]))  # another number of images
    unnamed = _est([(0, "", f, 4), (1, "", f, 4)])
    assert not paired(unnamed, unnamed)  # unnamed test sets are never assumed equal
    # flags that do not match n
    short = estimate([SeedResult(0, 3, 4, "t0", f), SeedResult(1, 3, 4, "t1", f[:3])])
    assert not paired(base, short)
    assert not paired(estimate([]), estimate([]))
    assert difference(base, _est([(0, "t0", g, 4), (1, "tX", g, 4)])).method == "unpaired"


def test_paired_interval_is_widened_by_seed_disagreement():
    # per-seed differences +0.2, 0, -0.2 on 200 images each: McNemar on the pooled table sees 50 vs 50 discordant
    # images; the seeds say the difference itself varies by training run
    disagree = [(100, 40, 0, 60), (100, 10, 10, 80), (100, 0, 40, 60)]
    a, b = paired_pair(disagree)
    d = difference(a, b)
    per_seed = np.array([0.2, 0.0, -0.2])
    half = Z * float(np.std(per_seed, ddof=1)) / math.sqrt(3)
    assert d.method == "paired" and d.discordant == (50, 50) and d.p_value == pytest.approx(1.0)
    assert d.diff == pytest.approx(0.0, abs=1e-12)
    pooled = newcombe(300, 50, 50, 200)
    assert pooled[1] - pooled[0] < 2 * half  # the seeds' interval is the wider one here ...
    assert (d.low, d.high) == pytest.approx((-half, half), abs=1e-12)  # ... and it is the one reported
    # the same pooled table from seeds that agree: Newcombe's interval, not widened
    agree = [(100, 17, 17, 66), (100, 16, 16, 68), (100, 17, 17, 66)]
    a2, b2 = paired_pair(agree)
    d2 = difference(a2, b2)
    assert d2.discordant == (50, 50)
    assert (d2.low, d2.high) == pytest.approx(newcombe(300, 50, 50, 200), abs=1e-12)
    assert d2.high - d2.low < d.high - d.low


def test_paired_interval_is_centred_on_the_mean_of_per_seed_differences():
    tables = [(100, 30, 10, 60), (100, 25, 5, 70)]
    a, b = paired_pair(tables)
    d = difference(a, b)
    assert d.diff == pytest.approx(a.mean - b.mean) == pytest.approx((20 / 200 + 20 / 200) / 2)
    pooled_low, pooled_high = newcombe(200, 55, 15, 130)
    assert d.low <= pooled_low + 1e-12 and d.high >= pooled_high - 1e-12
    assert d.p_value == pytest.approx(sps.binomtest(55, 70, 0.5).pvalue)


@st.composite
def paired_tables(draw):
    k = draw(st.integers(1, 3))
    n = draw(st.integers(1, 60))
    tables = []
    for _ in range(k):
        both = draw(st.integers(0, n))
        only_a = draw(st.integers(0, n - both))
        only_b = draw(st.integers(0, n - both - only_a))
        tables.append((both, only_a, only_b, n - both - only_a - only_b))
    return tables


@settings(max_examples=examples(200), deadline=None)
@given(paired_tables())
def test_paired_difference_contract(tables):
    a, b = paired_pair(tables)
    d = difference(a, b)
    assert isinstance(d, Difference) and d.method == "paired"
    assert d.diff == pytest.approx(a.mean - b.mean, abs=1e-12)
    assert -1.0 <= d.low <= d.diff + 1e-12 and d.diff - 1e-12 <= d.high <= 1.0
    assert 0.0 <= d.p_value <= 1.0
    assert d.discordant == (sum(t[1] for t in tables), sum(t[2] for t in tables))


@settings(max_examples=examples(200), deadline=None)
@given(seed_counts(max_seeds=3, max_n=500), seed_counts(max_seeds=3, max_n=500))
def test_unpaired_difference_contract(left, right):
    a, b = estimate(left), estimate(right)
    d = difference(a, b)
    assert d.method == "unpaired"
    assert d.diff == pytest.approx(a.mean - b.mean, abs=1e-12)
    assert -1.0 <= d.low <= d.diff + 1e-12 and d.diff - 1e-12 <= d.high <= 1.0


def test_two_paired_seeds_that_disagree_widen_the_interval_to_the_seed_spread():
    """Two seeds whose differences are +0.4 and -0.4 on 10 images each: the pooled McNemar table sees no
    difference, the interval must still hold the across-seed spread, Z * sd / sqrt(2) either side of 0."""
    left, right = paired_pair([(3, 5, 1, 1), (3, 1, 5, 1)])
    d = difference(left, right)
    assert d.method == "paired" and d.diff == pytest.approx(0.0, abs=1e-12)
    half = Z * float(np.std([0.4, -0.4], ddof=1)) / math.sqrt(2)
    assert half == pytest.approx(0.784, abs=1e-3)
    pooled = newcombe(6, 6, 6, 2)
    assert pooled[1] < half  # the pooled table alone would give a narrower interval
    assert (d.low, d.high) == pytest.approx((-half, half), abs=1e-12)


def test_paired_interval_is_clipped_to_minus_one_and_one():
    """Two seeds that disagree completely (+1 and -1 on 10 images each): the seeds' interval is wider than the
    possible range, and the reported one stops at [-1, 1]."""
    a, b = paired_pair([(0, 10, 0, 0), (0, 0, 10, 0)])
    d = difference(a, b)
    assert d.method == "paired" and (d.low, d.high) == (-1.0, 1.0)


def test_newcombe_uses_its_z_for_both_wilson_intervals():
    both, only_a, only_b, neither = 30, 5, 3, 12
    d = (both + only_a - both - only_b) / 50
    assert newcombe(both, only_a, only_b, neither, z=0.0) == pytest.approx((d, d), abs=1e-12)  # no width at z = 0


@pytest.mark.parametrize("table, phi", [((0, 1, 1, 0), -1.0), ((2, 1, 1, 2), 0.0), ((4, 2, 2, 2), 0.0)])
def test_newcombe_correlation_at_its_edges(table, phi: float):
    """(0, 1, 1, 0): every margin 1, negative association, phi = -1 (not the 0 of an empty margin); (2, 1, 1, 2)
    and (4, 2, 2, 2): a positive association of at most n / 2 (3 of 6, 4 of 10) is within Newcombe's correction,
    phi = 0."""
    both, only_a, only_b, _ = table
    n = sum(table)
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    (l1, u1), (l2, u2) = wilson(p1, n), wilson(p2, n)
    low = p1 - p2 - math.sqrt((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2)
    high = p1 - p2 + math.sqrt((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2)
    assert newcombe(*table) == pytest.approx((low, high), abs=1e-12)


def test_estimate_of_no_images_is_unknown_with_the_whole_unit_interval():
    e = estimate([], "BnB natural")
    assert math.isnan(e.mean) and math.isnan(e.variance) and (e.low, e.high, e.n_seeds, e.n) == (0.0, 1.0, 0, 0)
    assert e.seeds == () and e.label == "BnB natural"
    assert estimate([SeedResult(0, 0, 0)], "x").n == 0  # seeds without images count as none


def test_estimates_are_unlabelled_by_default():
    assert estimate([SeedResult(0, 1, 2)]).label == "" and published_estimate(0.5, 100).label == ""
