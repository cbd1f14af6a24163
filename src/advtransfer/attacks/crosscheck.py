"""The cross-check: the same attack on the same model and batch through every backend, compared.

FGSM and PGD without a random start are deterministic, so the backends must agree to float tolerance
(max abs difference <= 1e-6 on CPU float32, SPEC section 4). With a random start each backend draws its own start
from its own RNG, so batches differ and only accuracies can be compared: they must agree within
:func:`random_start_tolerance`, a 3-sigma bound for the difference of two accuracies on n examples.

APGD-CE (the first attack of AutoAttack) has no native implementation: torchattacks' ``APGD`` and ART's
``AutoProjectedGradientDescent`` are compared with each other (torchattacks the reference), within
:func:`apgd_tolerance`.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch import nn

from ..io import atomic_write_json, atomic_write_text
from . import BACKENDS, AttackSpec, attack, backend_module

EXACT_TOLERANCE = 1e-6  # max abs difference for deterministic attacks (CPU float32)
PIXEL_TOLERANCE = 1e-6  # a pixel "differs" beyond this


def random_start_tolerance(accuracy: float, n: int) -> float:
    """Accuracy tolerance for attacks with a random start, measured on the same n examples.

    Each backend's random start is an independent draw, so each example's outcome is a Bernoulli trial with
    success probability about p; the difference of two such accuracies has standard deviation at most
    sqrt(2 p (1 - p) / n) (less, since the outcomes of one example are positively correlated). Three of those plus
    one example (1/n, the granularity of accuracy) keeps the false-alarm rate for a correct backend at about 0.3%
    (at most 0.4% over p in [0.02, 0.9] and n in [16, 1000], simulated in tests/test_crosscheck_bench.py), provided
    ``accuracy`` is the two backends' pooled accuracy: at one backend's own accuracy, a reference that happened to
    score 0 of 16 would leave one example of room, and a correct backend would be flagged 9% of the time at p = 0.1.
    """
    p = min(max(accuracy, 0.0), 1.0)
    return 3.0 * math.sqrt(2.0 * p * (1.0 - p) / n) + 1.0 / n


def apgd_tolerance(accuracy: float, n: int) -> float:
    """Accuracy tolerance for APGD-CE through torchattacks vs ART on the same n examples.

    Both libraries start every example from their own random point and adapt the step size per example, so an
    example's outcome is again a Bernoulli trial per library and :func:`random_start_tolerance`'s 3-sigma bound on
    the difference applies, provided both implement the same attack. They implement it differently in three
    places that could shift the success probabilities systematically: the start (ART: uniform in the ball;
    torchattacks: uniform, rescaled so each image's largest coordinate is eps), what a run returns (ART: the last
    iterate; torchattacks: any iterate that fooled the model) and the rounding of the checkpoints. Measured on the
    two reference models (256 held-out images; eps 1/255 to 8/255 for small-cnn, 0.25/255 to 1/255 for
    mobilenet-demo; 3, 10 and 100 iterations; 2 to 4 seeds: 70 comparisons; README, "Attacks, backends and the
    cross-check"), those shifts stay far inside the bound: largest |difference| 0.0117 (3 of 256 examples), mean
    difference -0.0004 (ART no weaker on average), every difference at most 14% of its bound. So no separate
    allowance is added: a failure means one library's APGD is not the other's.
    """
    return random_start_tolerance(accuracy, n)


def default_specs(eps: float, steps: int = 10, apgd_steps: int | None = None) -> list[AttackSpec]:
    """FGSM, PGD without and with a random start (step = eps/4, the usual 2.5 eps / steps rounded for 10 steps),
    and APGD-CE (``apgd_steps`` iterations, default ``steps``; one restart, as AutoAttack's standard suite)."""
    step = eps / 4
    return [AttackSpec.fgsm(eps), AttackSpec.pgd(eps, step, steps, random_start=False),
            AttackSpec.pgd(eps, step, steps, random_start=True),
            AttackSpec.apgd_ce(eps, steps if apgd_steps is None else apgd_steps, restarts=1)]


def crosscheck(model: nn.Module, x: torch.Tensor, y: torch.Tensor, specs: list[AttackSpec],
               backends: tuple[str, ...] = BACKENDS, seed: int = 0, reference: str = "native") -> list[dict]:
    """One row per (attack, backend other than the reference): differences, accuracies, seconds, agreement. An
    attack the reference lacks (APGD-CE: no native implementation) is compared against the first backend that has
    it; an attack fewer than two backends have is skipped."""
    rows = []
    with torch.no_grad():
        model.eval()(x[:1])  # warm-up; "seconds" are single runs and include each library's first-call costs
    default_reference = reference
    for spec in specs:
        able = [b for b in backends if spec.name in backend_module(b).SUPPORTED]
        reference = default_reference if default_reference in able else (able[0] if able else default_reference)
        if reference not in able or len(able) < 2:
            continue
        advs, acc, secs = {}, {}, {}
        for backend in able:
            generator = torch.Generator(device="cpu").manual_seed(seed)
            t0 = time.perf_counter()
            advs[backend] = attack(model, x, y, spec, backend, generator=generator)
            secs[backend] = time.perf_counter() - t0
            with torch.no_grad():
                acc[backend] = (model(advs[backend]).argmax(1) == y).float().mean().item()
        for backend in able:
            if backend == reference:
                continue
            diff = (advs[backend] - advs[reference]).abs()
            max_abs = diff.max().item()
            if spec.random_start:
                tolerance = apgd_tolerance if spec.name == "apgd_ce" else random_start_tolerance
                tol = tolerance((acc[reference] + acc[backend]) / 2, len(y))  # pooled: see the docstring
                agree = abs(acc[backend] - acc[reference]) <= tol
                criterion = f"|accuracy difference| <= {tol:.4f} (3-sigma, n={len(y)})"
            else:
                agree = max_abs <= EXACT_TOLERANCE
                criterion = f"max abs difference <= {EXACT_TOLERANCE:g}"
            rows.append({
                "attack": spec.key(), "random_start": spec.random_start, "backends": f"{reference} vs {backend}",
                "max_abs_diff": max_abs, "frac_pixels_differing": (diff > PIXEL_TOLERANCE).float().mean().item(),
                "accuracy": {reference: acc[reference], backend: acc[backend]},
                "seconds": {reference: round(secs[reference], 4), backend: round(secs[backend], 4)},
                "n": len(y), "criterion": criterion, "agree": bool(agree),
            })
    return rows


def to_markdown(rows: list[dict], title: str = "Cross-check of attack backends") -> str:
    lines = [f"### {title}", "",
             "| model | attack | backends | max abs diff | pixels differing | accuracy | seconds | criterion | agree |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        acc = " / ".join(f"{v:.4f}" for v in r["accuracy"].values())
        sec = " / ".join(f"{v:.3f}" for v in r["seconds"].values())
        lines.append(f"| {r.get('model', '')} | {r['attack']} | {r['backends']} | {r['max_abs_diff']:.2e} | "
                     f"{r['frac_pixels_differing']:.2%} | {acc} | {sec} | {r['criterion']} | "
                     f"{'yes' if r['agree'] else '**NO**'} |")
    return "\n".join(lines) + "\n"


def write_tables(rows: list[dict], out_dir: Path, stem: str = "crosscheck") -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    return (atomic_write_json(out_dir / f"{stem}.json", {"rows": rows, "all_agree": all(r["agree"] for r in rows)}),
            atomic_write_text(out_dir / f"{stem}.md", to_markdown(rows)))
