"""Attacks: ``attack(model, x, y, spec, backend=...)`` returns the adversarial batch for an :class:`AttackSpec`.

Semantics shared by every backend: inputs in [0, 1] with normalisation inside the model, true labels, mean
cross-entropy loss, untargeted L-inf; the model's train/eval mode is restored afterwards; every adversarial batch is
checked (inside the eps ball + 1e-6, inside [0, 1], no NaN) before it is returned.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError
from .invariants import check_adversarial
from .spec import ATTACKS, AttackSpec

BACKENDS = ("native", "torchattacks", "art")

__all__ = ["ATTACKS", "BACKENDS", "AttackSpec", "attack", "backends_for", "check_adversarial"]


def backend_module(backend: str):
    """The module implementing ``backend``: it has ``SUPPORTED`` (attack names) and ``run(model, x, y, spec,
    generator)``. Imported lazily, so torchattacks and ART load only when asked for."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown attack backend {backend!r}; valid: {', '.join(BACKENDS)}")
    import importlib

    return importlib.import_module(f".{backend}_backend" if backend != "native" else ".native", __name__)


def backends_for(backends: tuple[str, ...] | list[str], spec: AttackSpec) -> tuple[str, ...]:
    """The backends of ``backends`` that implement ``spec``; where none does, the first of :data:`BACKENDS` that
    does (NIFGSM, VMIFGSM and AutoAttack: torchattacks, the only backend with them), so every attack an experiment
    asks for runs whatever ``--backends`` says."""
    able = tuple(b for b in backends if spec.name in backend_module(b).SUPPORTED)
    return able or tuple(b for b in BACKENDS if spec.name in backend_module(b).SUPPORTED)[:1]


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, backend: str = "native",
           generator: torch.Generator | None = None, eval_mode: bool = True,
           check_against: torch.Tensor | None = None) -> torch.Tensor:
    """Adversarial examples for ``(x, y)`` against ``model``.

    The model runs in eval mode during the attack (``eval_mode=True``, BatchNorm and dropout fixed, as torchattacks
    does) and gets its previous mode back afterwards. ``generator`` drives the random start, so the same seed gives
    the same batch.

    ``check_against`` replaces ``x`` as the centre of the eps-ball check. Only study 2's as-run protocol needs it:
    the original attacked ImageNet-normalised tensors and clamped them to [0, 1], so its examples lie within eps of
    ``clamp(x, 0, 1)``, not of ``x`` (reproducing that defect is the point of that protocol).
    """
    module = backend_module(backend)
    if spec.name not in module.SUPPORTED:
        able = [b for b in BACKENDS if spec.name in backend_module(b).SUPPORTED]
        raise ConfigError(f"attack {spec.name!r} is not available in the {backend!r} backend; "
                          f"backends that have it: {', '.join(able)}")
    # Each submodule's own flag is restored (not model.train(mode), which would flatten deliberately mixed modes,
    # e.g. frozen BatchNorm blocks inside a model in training mode).
    modes = [(m, m.training) for m in model.modules()]
    if eval_mode:
        model.eval()
    try:
        adv = module.run(model, x, y, spec, generator=generator)
    finally:
        for m, training in modes:
            m.training = training
    check_adversarial(x if check_against is None else check_against, adv, spec.eps, where=f"{backend}/{spec.key()}")
    return adv
