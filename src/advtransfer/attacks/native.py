"""The kit's own attacks: plain PyTorch, gradients with respect to the input only (no weight gradients)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .spec import AttackSpec

SUPPORTED = frozenset({"fgsm", "pgd", "fgsm_rs"})


def _input_grad(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    # Mean cross-entropy over the batch, as torchattacks and ART use: the sign is what matters, but the same scale
    # keeps the three backends bit-identical (SPEC section 4).
    loss = F.cross_entropy(model(x), y)
    (grad,) = torch.autograd.grad(loss, x)
    return grad


def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec,
        generator: torch.Generator | None = None) -> torch.Tensor:
    if spec.name not in SUPPORTED:
        raise NotImplementedError(spec.name)
    x = x.detach()
    if spec.name == "fgsm":
        return (x + spec.eps * _input_grad(model, x, y).sign()).clamp(0.0, 1.0).detach()
    if spec.random_start:
        noise = torch.rand(x.shape, generator=generator, device="cpu" if generator is None else generator.device)
        adv = (x + (noise.to(x.device, x.dtype) * 2 - 1) * spec.eps).clamp(0.0, 1.0)
    else:
        adv = x.clone()
    for _ in range(spec.steps):
        adv = adv + spec.step_size * _input_grad(model, adv, y).sign()
        # Project as x + clamp(adv - x, -eps, eps), the float operations torchattacks and ART use:
        # min(max(adv, x - eps), x + eps) is the same set but rounds differently by an ulp, and over several steps
        # one ulp can flip the sign of a near-zero gradient (seen on real CIFAR-10 images: 0.11% of pixels off by eps).
        adv = (x + (adv - x).clamp(-spec.eps, spec.eps)).clamp(0.0, 1.0)
    return adv.detach()
