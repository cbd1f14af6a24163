"""One statistics convention for every number the kit reports: accuracies with 95% intervals, and differences.

**An accuracy over seeds** (:func:`estimate`). Each seed gives ``correct`` of ``n`` test images. The estimate is
the mean of the per-seed accuracies. Its variance is the larger of two estimates:

- the binomial variance of that mean, ``sum(p_i (1 - p_i) / n_i) / k**2`` (the test images' sampling noise, which
  is all there is with one seed and which a couple of seeds cannot measure reliably), and
- the seed-to-seed variance of the mean, ``s**2 / k`` (training randomness, and test-set draws where each seed
  splits its own test set), with two or more seeds.

The interval is the Wilson score interval at that variance: Wilson's interval for ``p`` with the effective sample
size ``n_eff = p (1 - p) / variance`` (a design-effect correction). Unlike ``mean +- t * sd / sqrt(k)`` it always
stays inside [0, 1], and two seeds do not blow it up to +-12.7 standard errors (the t quantile at one degree of
freedom): the binomial term is a floor, and the seed term widens it when seeds really disagree.

**A difference of two accuracies** (:func:`difference`). When both were measured on the *same test images* (the
same seeds, and per seed the same test set, with per-example flags), the comparison is paired: an exact McNemar
test on the discordant pairs (``scipy.stats.binomtest``; ``b`` examples only the first model gets right, ``c``
only the second) and Newcombe's interval for a paired difference (method 10: Wilson intervals of both accuracies
combined through their correlation, so it stays sensible when the models never disagree). With several seeds the
pairs are pooled and the interval is widened to the seed-to-seed interval of the per-seed differences where that
is wider. Otherwise (different test sets, or a published number without flags) the comparison is unpaired: the
difference of the means with the two variances above added, normal interval.

Everything is 95% two-sided (``LEVEL``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as _stats

LEVEL = 0.95
Z = float(_stats.norm.ppf(0.5 + LEVEL / 2))  # 1.959963984540054


@dataclass(frozen=True)
class SeedResult:
    """One seed's evaluation: ``correct`` of ``n`` test images; ``test_set`` names the images (equal strings mean
    the same images in the same order), ``flags`` are the per-example outcomes (None where not kept)."""

    seed: int
    correct: int
    n: int
    test_set: str = ""
    flags: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else math.nan


@dataclass(frozen=True)
class Estimate:
    """An accuracy in [0, 1] with its 95% interval [low, high], over ``n_seeds`` seeds and ``n`` test images."""

    mean: float
    low: float
    high: float
    variance: float
    n_seeds: int
    n: int
    seeds: tuple[SeedResult, ...] = field(default=(), compare=False, repr=False)
    label: str = field(default="", compare=False)

    def labelled(self, label: str) -> Estimate:
        return Estimate(self.mean, self.low, self.high, self.variance, self.n_seeds, self.n, self.seeds, label)

    @property
    def interval(self) -> tuple[float, float]:
        return self.low, self.high

    def text(self, digits: int = 4) -> str:
        """``0.6125 [0.5712, 0.6523]``: the form tables, figures' captions and claim evidence all use."""
        return f"{self.mean:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def __str__(self) -> str:
        return f"{self.label} {self.text()}".strip()


def wilson(p: float, n_eff: float, z: float = Z) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``p`` observed on (an effective) ``n_eff`` trials."""
    if n_eff <= 0 or math.isnan(p):
        return 0.0, 1.0
    z2 = z * z
    centre = (p + z2 / (2 * n_eff)) / (1 + z2 / n_eff)
    half = z * math.sqrt(p * (1 - p) / n_eff + z2 / (4 * n_eff * n_eff)) / (1 + z2 / n_eff)
    return max(0.0, centre - half), min(1.0, centre + half)


def _variance(accs: np.ndarray, ns: np.ndarray) -> tuple[float, float]:
    """(binomial variance of the mean of per-seed accuracies, seed-to-seed variance of that mean)."""
    k = len(accs)
    binomial = float(np.sum(accs * (1 - accs) / ns)) / (k * k)
    seed = float(np.var(accs, ddof=1)) / k if k > 1 else 0.0
    return binomial, seed


def estimate(seeds: Sequence[SeedResult], label: str = "") -> Estimate:
    """The accuracy over ``seeds`` with its 95% interval (see the module docstring)."""
    seeds = tuple(s for s in seeds if s.n > 0)
    if not seeds:
        return Estimate(math.nan, 0.0, 1.0, math.nan, 0, 0, (), label)
    accs = np.array([s.correct / s.n for s in seeds], dtype=float)
    ns = np.array([s.n for s in seeds], dtype=float)
    mean = float(accs.mean())
    variance = max(_variance(accs, ns))
    total = int(ns.sum())
    if variance > 0:
        n_eff = mean * (1 - mean) / variance
        low, high = wilson(mean, n_eff)
    else:  # every seed at 0 or every seed at 1: the binomial interval of the pooled count, and the variance that
        # interval implies (so a difference with this estimate is not taken as certain)
        low, high = wilson(mean, float(total))
        variance = ((high - low) / (2 * Z)) ** 2
    return Estimate(mean, low, high, variance, len(seeds), total, seeds, label)


def published_estimate(accuracy: float, n: int, label: str = "") -> Estimate:
    """A published accuracy: one run on ``n`` test images, no per-example flags."""
    correct = round(accuracy * n)
    return estimate([SeedResult(0, correct, n, test_set="")], label)


@dataclass(frozen=True)
class Difference:
    """``left - right`` with its 95% interval; ``method`` says how it was computed."""

    diff: float
    low: float
    high: float
    method: str  # "paired" (McNemar on the same test images) or "unpaired"
    p_value: float | None = None  # exact McNemar, paired only
    discordant: tuple[int, int] | None = None  # (b, c): only left right, only right right

    def text(self) -> str:
        out = f"{self.diff:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"
        if self.method == "paired" and self.discordant is not None:
            b, c = self.discordant
            out += f", paired: McNemar exact p = {self.p_value:.3g} on {b} vs {c} discordant images"
        else:
            out += ", unpaired"
        return out


def paired(a: Estimate, b: Estimate) -> bool:
    """Whether ``a`` and ``b`` were measured on the same test images: same seeds, per seed the same named test set
    and the same number of images, and per-example flags on both sides."""
    if not a.seeds or len(a.seeds) != len(b.seeds):
        return False
    for sa, sb in zip(sorted(a.seeds, key=lambda s: s.seed), sorted(b.seeds, key=lambda s: s.seed)):
        if (sa.seed != sb.seed or not sa.test_set or sa.test_set != sb.test_set or sa.n != sb.n
                or sa.flags is None or sb.flags is None or len(sa.flags) != sa.n or len(sb.flags) != sb.n):
            return False
    return True


def difference(a: Estimate, b: Estimate) -> Difference:
    """``a - b``: paired (McNemar) where both are on the same test images, unpaired otherwise."""
    if paired(a, b):
        return _paired_difference(a, b)
    diff = a.mean - b.mean
    half = Z * math.sqrt(max(a.variance, 0.0) + max(b.variance, 0.0))
    return Difference(diff, max(-1.0, diff - half), min(1.0, diff + half), "unpaired")


def newcombe(both: int, only_a: int, only_b: int, neither: int, z: float = Z) -> tuple[float, float]:
    """Newcombe's interval (1998, method 10) for the difference of two paired proportions, from the 2x2 table of
    outcomes: Wilson intervals of each proportion combined with their correlation. Unlike the interval
    conditional on the discordant pairs, it does not collapse to a point when the models never disagree."""
    n = both + only_a + only_b + neither
    p1, p2 = (both + only_a) / n, (both + only_b) / n
    l1, u1 = wilson(p1, n, z)
    l2, u2 = wilson(p2, n, z)
    denominator = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    # Method 10's correlation, shrunk towards 0 for positive association (Newcombe's continuity correction): with
    # the uncorrected phi the interval is too narrow when the two models are right on the same images.
    association = both * neither - only_a * only_b
    if denominator <= 0:
        phi = 0.0
    elif association > n / 2:
        phi = (association - n / 2) / math.sqrt(denominator)
    elif association >= 0:
        phi = 0.0
    else:
        phi = association / math.sqrt(denominator)
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2))
    high = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2))
    return low, high


def _paired_difference(a: Estimate, b: Estimate) -> Difference:
    sa, sb = sorted(a.seeds, key=lambda s: s.seed), sorted(b.seeds, key=lambda s: s.seed)
    tables = [(int(np.sum(x.flags & y.flags)), int(np.sum(x.flags & ~y.flags)), int(np.sum(~x.flags & y.flags)),
               int(np.sum(~x.flags & ~y.flags))) for x, y in zip(sa, sb)]
    both, only_a, only_b, neither = (sum(t[i] for t in tables) for i in range(4))
    k = len(sa)
    # Per seed the difference is (b_i - c_i) / n_i; the estimate is their mean, as a.mean - b.mean is.
    per_seed = np.array([(t[1] - t[2]) / s.n for t, s in zip(tables, sa)], dtype=float)
    diff = float(per_seed.mean())
    p_value = float(_stats.binomtest(only_a, only_a + only_b, 0.5).pvalue) if only_a + only_b else 1.0
    low, high = newcombe(both, only_a, only_b, neither)
    pooled = (only_a - only_b) / (both + only_a + only_b + neither)
    low, high = low - pooled + diff, high - pooled + diff  # centred on the mean of the per-seed differences
    if k > 1:  # training randomness across seeds, which McNemar (conditional on the trained models) cannot see
        half = Z * float(np.std(per_seed, ddof=1)) / math.sqrt(k)
        low, high = min(low, diff - half), max(high, diff + half)
    return Difference(diff, max(-1.0, low), min(1.0, high), "paired", p_value, (only_a, only_b))
