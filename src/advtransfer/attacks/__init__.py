"""Attacks: ``attack(model, x, y, spec, backend=...)`` returns the adversarial batch for an :class:`AttackSpec`.

Semantics shared by every backend: inputs in [0, 1] with normalisation inside the model, true labels, mean
cross-entropy loss, untargeted L-inf; the model's train/eval mode is restored afterwards; every adversarial batch is
checked (inside the eps ball + 1e-6, inside [0, 1], no NaN) before it is returned.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .checks import check_adversarial
from .spec import ATTACKS, AttackSpec

BACKENDS = ("native",)

__all__ = ["ATTACKS", "BACKENDS", "AttackSpec", "attack", "check_adversarial"]


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, backend: str = "native",
           generator: torch.Generator | None = None, eval_mode: bool = True) -> torch.Tensor:
    """Adversarial examples for ``(x, y)`` against ``model``.

    The model runs in eval mode during the attack (``eval_mode=True``, BatchNorm and dropout fixed, as torchattacks
    does) and gets its previous mode back afterwards. ``generator`` drives the random start, so the same seed gives
    the same batch.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown attack backend {backend!r}; valid: {', '.join(BACKENDS)}")
    was_training = model.training
    if eval_mode:
        model.eval()
    try:
        from . import native

        adv = native.run(model, x, y, spec, generator=generator)
    finally:
        model.train(was_training)
    check_adversarial(x, adv, spec.eps, where=f"{backend}/{spec.key()}")
    return adv
