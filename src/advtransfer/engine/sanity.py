"""Sanity checks on evaluations: results that contradict how attacks must behave are flagged, never hidden.

Each check returns :class:`Flag` records (kept in the cell's JSON and listed in the report). A flag does not stop
a run: it marks a number that should not be trusted until explained, with a sentence on what it means and what to
look at. The checks follow AutoAttack's and Carlini et al.'s advice on evaluating robustness ("On Evaluating
Adversarial Robustness", 2019): a stronger attack must not do worse than a weaker one, and accuracy must fall
towards zero as eps grows. AutoAttack against PGD (Croce & Hein 2020) is the check RobustBench relies on: AutoAttack
well below PGD means PGD's gradients were masked, AutoAttack above PGD means the AutoAttack run is broken.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from itertools import pairwise

import numpy as np

from ..results.schema import flags_from_str

# Accuracy differences below this are noise from a finite test set, not a violation: with n examples a difference
# of one example is 1/n; 1 percentage point is a few examples on the demo and ~60 examples at paper scale.
TOLERANCE = 0.01
# "Accuracy falling towards zero": at the largest eps evaluated, white-box accuracy should be below this fraction
# of natural accuracy.
COLLAPSE_FRACTION = 0.5
# "PGD overstates robustness by a wide margin": PGD accuracy more than this above AutoAttack's. On models without
# masked gradients AutoAttack's standard suite lands 0.5 to 5 points below PGD-10/20 (RobustBench's leaderboards,
# Croce & Hein 2020 table 2); the gradient-masking defences it exposed lost 10 to 60 points. Ten points lies
# between, and is well above what the demo's 3-step PGD and cheap AutoAttack differ by on its models.
MASKING_MARGIN = 0.10
# Backends whose PGD row AutoAttack is compared with, in order of preference (the results table's reference rule).
_PGD_PREFERENCE = ("native", "torchattacks", "art")


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


def _paired_noise(a: dict, b: dict) -> float:
    """3 standard deviations of the accuracy difference of two randomised evaluations of the same images: from the
    per-example flags where both records have them (the discordant examples b + c give Var = (b + c) / n^2, as in
    McNemar's test), else 0."""
    fa, fb = a.get("flags"), b.get("flags")
    if not (isinstance(fa, str) and isinstance(fb, str) and len(fa) == len(fb) and fa):
        return 0.0
    xa, xb = flags_from_str(fa), flags_from_str(fb)
    return 3.0 * math.sqrt(float(np.sum(xa != xb))) / len(xa)


def _pgd_record(records: list[dict], threat: str, eps: float) -> dict | None:
    found = {r["backend"]: r for r in records if r["attack"] == "pgd" and r["threat"] == threat and r["eps"] == eps}
    return next((found[b] for b in (*_PGD_PREFERENCE, *sorted(found)) if b in found), None)


def check_autoattack(model: str, records: list[dict], tolerance: float = TOLERANCE,
                     margin: float = MASKING_MARGIN) -> list[Flag]:
    """AutoAttack against PGD, at each threat and eps both were evaluated at (PGD through its reference backend)."""
    flags: list[Flag] = []
    for aa in (r for r in records if r["attack"] == "autoattack"):
        pgd = _pgd_record(records, aa["threat"], aa["eps"])
        if pgd is None:
            continue
        diff, noise = aa["accuracy"] - pgd["accuracy"], _paired_noise(aa, pgd)
        where = f"{aa['threat']} eps {aa['eps']:g}: AutoAttack ({aa['backend']}) accuracy {aa['accuracy']:.4f}"
        if diff > tolerance + noise:
            flags.append(Flag(
                "autoattack_weaker_than_pgd", model,
                f"{where} > PGD ({pgd['backend']}) {pgd['accuracy']:.4f} (beyond {tolerance:g} + 3-sigma "
                f"{noise:.4f})",
                "AutoAttack starts with an APGD-CE at least as strong as this PGD and adds three more attacks on what "
                "it leaves, so it cannot rightly leave more examples correct: the AutoAttack run is broken (another "
                "eps, number of classes or input range than the model's) or its setting is too cheap (the demo's "
                "few iterations and queries); do not report its number until it is at most PGD's"))
        if -diff > margin:
            flags.append(Flag(
                "pgd_overstates_robustness", model,
                f"{where} < PGD ({pgd['backend']}) {pgd['accuracy']:.4f} by {-diff:.4f} (more than {margin:g})",
                "PGD leaves far more examples correct than AutoAttack: the model masks its gradients (saturated "
                "softmax, non-differentiable or randomised layers, numerical overflow), so gradient attacks with "
                "cross-entropy stall while AutoAttack's scale-invariant DLR loss, FAB and the gradient-free Square "
                "attack do not; its PGD robustness is an artefact, report AutoAttack's number"))
    return flags


def check_evaluations(model: str, records: list[dict], tolerance: float = TOLERANCE) -> list[Flag]:
    """Checks over one model's evaluation records (dicts with attack, threat, eps, backend, accuracy; per-example
    ``flags`` where present)."""
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
    return flags + check_autoattack(model, records, tolerance)
