"""Benchmarks: measured, never asserted in tests (shared machines are noisy). Report ratios from one run.

``bench_attacks``: for one model and batch, the time of one forward + backward pass with respect to the input (the
unit of work of a gradient attack) and of each attack per backend; the ratio ``attack / (steps x (fwd + bwd))``
says how close a backend gets to that bound (1.0 = no overhead).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import BACKENDS, AttackSpec, attack, backend_module


def _seconds(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def forward_backward(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), x)
    return grad


def bench_attacks(model: nn.Module, x: torch.Tensor, y: torch.Tensor, specs: list[AttackSpec],
                  backends: tuple[str, ...] = BACKENDS, repeats: int = 5) -> dict:
    """Median times over ``repeats`` rounds after one warm-up round. Each round times fwd+bwd and then every
    (attack, backend), interleaved, so drift in machine load hits all of them alike."""
    model.eval()
    gen = torch.Generator()
    jobs: dict[tuple[str, str], Callable[[], object]] = {
        ("forward+backward", ""): lambda: forward_backward(model, x, y)}
    steps = {}
    for spec in specs:
        for backend in backends:
            if spec.name in backend_module(backend).SUPPORTED:
                jobs[(spec.key(), backend)] = lambda s=spec, b=backend: attack(model, x, y, s, b, generator=gen)
                steps[(spec.key(), backend)] = spec.steps
    times: dict[tuple[str, str], list[float]] = {k: [] for k in jobs}
    for round_ in range(repeats + 1):
        for key, job in jobs.items():
            t = _seconds(job)
            if round_:  # round 0 warms up caches, allocator and lazy imports
                times[key].append(t)
    fb = statistics.median(times.pop(("forward+backward", "")))
    rows = [{"attack": a, "backend": b, "steps": steps[(a, b)], "ms_per_batch": 1e3 * statistics.median(ts),
             "ratio_to_bound": statistics.median(ts) / (steps[(a, b)] * fb)} for (a, b), ts in times.items()]
    return {"batch": len(y), "input_shape": list(x.shape[1:]), "repeats": repeats,
            "forward_backward_ms": 1e3 * fb, "torch_threads": torch.get_num_threads(), "rows": rows}


def format_attack_table(result: dict) -> str:
    lines = [f"one forward+backward (input gradient), batch {result['batch']}: {result['forward_backward_ms']:.1f} ms",
             f"{'attack':<36} {'backend':<13} {'ms/batch':>10} {'x bound':>8}"]
    for r in result["rows"]:
        lines.append(f"{r['attack']:<36} {r['backend']:<13} {r['ms_per_batch']:>10.1f} {r['ratio_to_bound']:>8.3f}")
    return "\n".join(lines)
