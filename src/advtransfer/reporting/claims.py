"""Judging a write-up's conclusions: each claim is a list of comparisons, decided with the kit's statistics.

A comparison ``left > right`` (by at least ``min_gap``, for claims that say "highly" or "much") is decided on the
95% interval of the difference (:func:`advtransfer.results.stats.difference`: where both numbers come from the
same test images, an exact McNemar test and Newcombe's paired interval; otherwise unpaired). It is *supported*
when the interval lies above zero (paired: and McNemar's p < 0.05) and the difference reaches ``min_gap``, *not
supported* when the interval lies below ``min_gap`` (or below zero), *inconclusive* otherwise. A claim is
supported when all its comparisons are, not supported when any is not, inconclusive otherwise; comparisons
without numbers are listed and skipped ("no data" if none is left).

Sources: the study's published numbers and our results per protocol, each a mapping from the study's claim keys
to :class:`~advtransfer.results.stats.Estimate` objects. Our estimates are the table's reference estimates, so a
claim's evidence shows exactly the mean and interval of the study's tables and figures.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..results.stats import Estimate, difference

if TYPE_CHECKING:  # pragma: no cover
    from ..results.table import Results
    from ..studies.base import Study

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NO_DATA = "supported", "not supported", "inconclusive", "no data"
PUBLISHED = "published"
ALPHA = 0.05  # two-sided, as the 95% intervals

Lookup = Callable[[tuple], Estimate | None]


def _name(key: tuple) -> str:
    return "/".join(str(k) for k in key)


@dataclass(frozen=True)
class Comparison:
    """``left > right`` (by at least ``min_gap``), with keys of the study's claim lookup."""

    left: tuple
    right: tuple
    min_gap: float = 0.0

    def judge(self, get: Lookup) -> tuple[str, str]:
        a, b = get(self.left), get(self.right)
        if a is None or b is None:
            missing = " and ".join(_name(k) for k, v in ((self.left, a), (self.right, b)) if v is None)
            return NO_DATA, f"{missing}: no number"
        d = difference(a, b)
        text = f"{a} vs {b}: {d.text()}"
        if self.min_gap:
            text += f" (claim needs > {self.min_gap:.2f})"
        significant = d.low > 0 and (d.p_value is None or d.p_value < ALPHA)  # paired: McNemar must agree
        if significant and d.diff >= self.min_gap:  # surely positive, and as large as the claim says
            return SUPPORTED, text
        if d.high < max(self.min_gap, 1e-12):  # even the upper bound falls short (or is below zero)
            return NOT_SUPPORTED, text
        return INCONCLUSIVE, text


@dataclass(frozen=True)
class Claim:
    id: str
    text: str  # the write-up's words
    test: str  # how the kit tests it
    comparisons: Callable[[set], list[Comparison]]  # from the keys present in a source

    def judge(self, get: Lookup, keys: set) -> tuple[str, list[str]]:
        results = [c.judge(get) for c in self.comparisons(keys)]
        decided = [v for v, _ in results if v != NO_DATA]
        lines = [f"{v}: {t}" for v, t in results]
        if not decided:
            return NO_DATA, lines
        if NOT_SUPPORTED in decided:
            return NOT_SUPPORTED, lines
        return (SUPPORTED if all(v == SUPPORTED for v in decided) else INCONCLUSIVE), lines


@dataclass(frozen=True)
class Judged:
    study: str
    claim: Claim
    verdicts: dict[str, tuple[str, list[str]]]  # source name -> (verdict, evidence lines)


def sources(study: Study, results: Results) -> dict[str, Mapping[tuple, Estimate]]:
    """The published numbers (if the study has any) and our results per protocol, by claim key."""
    out: dict[str, Mapping[tuple, Estimate]] = {}
    published = study.published()
    if published:
        out[PUBLISHED] = published
    ours: dict[str, dict[tuple, Estimate]] = {}
    for key, est in results.reference.items():
        claim_key = study.claim_key(key)
        if claim_key is not None:
            ours.setdefault(key.protocol, {})[claim_key] = est.labelled(study.claim_label(claim_key))
    order = study.claim_columns
    for protocol in sorted(ours, key=lambda p: (order.index(p) if p in order else len(order), p)):
        out[protocol] = ours[protocol]
    return out


def judge(study: Study, results: Results) -> list[Judged]:
    """Every claim of ``study`` on each source (``results``: this study's rows)."""
    if not study.claims or not results:
        return []
    by_source = sources(study, results)
    return [Judged(study.name, claim, {name: claim.judge(values.get, set(values))
                                       for name, values in by_source.items()})
            for claim in study.claims]
