"""Sanity checks on evaluations: results that contradict how attacks must behave are flagged, never hidden.

Each check returns :class:`Flag` records (kept in the cell's JSON and listed in the report). A flag does not stop
a run: it marks a number that should not be trusted until explained, with a sentence on what it means and what to
look at. The checks follow AutoAttack's and Carlini et al.'s advice on evaluating robustness ("On Evaluating
Adversarial Robustness", 2019): a stronger attack must not do worse than a weaker one, and accuracy must fall
towards zero as eps grows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from itertools import pairwise

# Accuracy differences below this are noise from a finite test set, not a violation: with n examples a difference
# of one example is 1/n; 1 percentage point is a few examples on the demo and ~60 examples at paper scale.
TOLERANCE = 0.01
# "Accuracy falling towards zero": at the largest eps evaluated, white-box accuracy should be below this fraction
# of natural accuracy.
COLLAPSE_FRACTION = 0.5


@dataclass(frozen=True)
class Flag:
    check: str
    model: str
    detail: str
    meaning: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def _acc(records: Iterable[dict], **match) -> dict[float, float]:
    return {r["eps"]: r["accuracy"] for r in records if all(r.get(k) == v for k, v in match.items())}


def _at_least_as_strong(model: str, check: str, *, strong: dict[float, float], weak: dict[float, float],
                        tolerance: float, detail: str, meaning: str) -> list[Flag]:
    """Flags every eps where the stronger attack left a higher accuracy than the weaker one (beyond tolerance)."""
    return [Flag(check, model, detail.format(eps=eps, strong=strong[eps], weak=weak[eps]), meaning)
            for eps in sorted(set(strong) & set(weak)) if strong[eps] > weak[eps] + tolerance]


def check_evaluations(model: str, records: list[dict], tolerance: float = TOLERANCE) -> list[Flag]:
    """Checks over one model's evaluation records (dicts with attack, threat, eps, backend, accuracy)."""
    flags: list[Flag] = []
    for backend in sorted({r["backend"] for r in records if r["backend"]}):
        wb = _acc(records, attack="fgsm", threat="whitebox", backend=backend)
        tr = _acc(records, attack="fgsm", threat="transfer", backend=backend)
        pgd = _acc(records, attack="pgd", threat="whitebox", backend=backend)
        flags += _at_least_as_strong(
            model, "whitebox_weaker_than_transfer", strong=wb, weak=tr, tolerance=tolerance,
            detail=f"{backend} FGSM eps {{eps:g}}: white-box accuracy {{strong:.4f}} > transfer {{weak:.4f}}",
            meaning="an attack that sees the model's own gradients did worse than one crafted on another model: "
                    "typical of gradient masking (flat or noisy input gradients, e.g. saturated softmax), which "
                    "makes white-box numbers overstate robustness; try PGD with more steps or random starts")
        flags += _at_least_as_strong(
            model, "pgd_weaker_than_fgsm", strong=pgd, weak=wb, tolerance=tolerance,
            detail=f"{backend} eps {{eps:g}}: PGD accuracy {{strong:.4f}} > FGSM {{weak:.4f}}",
            meaning="an iterative attack did worse than a single step at the same eps: the PGD step size or step "
                    "count is too small, or gradients are masked; robustness under PGD is then overstated")
        eps_sorted = sorted(wb)
        for lo, hi in pairwise(eps_sorted):
            if wb[hi] > wb[lo] + tolerance:
                flags.append(Flag(
                    "accuracy_not_falling_with_eps", model,
                    f"{backend} FGSM white-box accuracy rises from {wb[lo]:.4f} (eps {lo:g}) to {wb[hi]:.4f} "
                    f"(eps {hi:g})",
                    "a larger perturbation budget should never help the model; FGSM's single step can overshoot "
                    "at large eps (label leaking, curvature), so check with PGD before reading robustness into it"))
        natural = _acc(records, threat="natural")
        if eps_sorted and natural and len(eps_sorted) > 1:
            nat, top = next(iter(natural.values())), eps_sorted[-1]
            if nat > 0 and wb[top] > COLLAPSE_FRACTION * nat:
                flags.append(Flag(
                    "no_collapse_at_large_eps", model,
                    f"{backend} FGSM white-box accuracy at the largest eps {top:g} is {wb[top]:.4f}, more than "
                    f"{COLLAPSE_FRACTION:.0%} of natural accuracy {nat:.4f}",
                    "an undefended model should be near zero accuracy at a large eps; if it is not, the attack is "
                    "likely not working (wrong input range or normalisation, masked gradients)"))
    return flags
