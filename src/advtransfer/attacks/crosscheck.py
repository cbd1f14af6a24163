"""The cross-check: the same attack on the same model and batch through every backend, compared.

FGSM and PGD without a random start are deterministic, so the backends must agree to float tolerance
(max abs difference <= 1e-6 on CPU float32, SPEC section 4). With a random start each backend draws its own start
from its own RNG, so batches differ and only accuracies can be compared: they must agree within
:func:`random_start_tolerance`, a 3-sigma bound for the difference of two accuracies on n examples.
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
    one example (1/n, the granularity of accuracy) puts the false-alarm rate below 0.3% for a correct backend.
    """
    p = min(max(accuracy, 0.0), 1.0)
    return 3.0 * math.sqrt(2.0 * p * (1.0 - p) / n) + 1.0 / n


def default_specs(eps: float, steps: int = 10) -> list[AttackSpec]:
    """FGSM, PGD without and with a random start (step = eps/4, the usual 2.5 eps / steps rounded for 10 steps)."""
    step = eps / 4
    return [AttackSpec.fgsm(eps), AttackSpec.pgd(eps, step, steps, random_start=False),
            AttackSpec.pgd(eps, step, steps, random_start=True)]


def crosscheck(model: nn.Module, x: torch.Tensor, y: torch.Tensor, specs: list[AttackSpec],
               backends: tuple[str, ...] = BACKENDS, seed: int = 0, reference: str = "native") -> list[dict]:
    """One row per (attack, backend other than the reference): differences, accuracies, seconds, agreement."""
    rows = []
    with torch.no_grad():
        model.eval()(x[:1])  # warm-up; "seconds" are single runs and include each library's first-call costs
    for spec in specs:
        able = [b for b in backends if spec.name in backend_module(b).SUPPORTED]
        if reference not in able:
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
                tol = random_start_tolerance(acc[reference], len(y))
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
