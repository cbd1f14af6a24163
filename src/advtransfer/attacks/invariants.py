"""Checks on every adversarial batch: a violation is a bug in an attack backend, never something to average over."""

from __future__ import annotations

import torch

EPS_TOLERANCE = 1e-6  # float32 rounding of x + delta at values near 1 stays well inside this


class AttackCheckError(RuntimeError):
    """An adversarial batch left the eps ball or [0, 1], or holds NaN: the attack implementation is wrong."""


def check_adversarial(x: torch.Tensor, adv: torch.Tensor, eps: float, where: str = "attack") -> None:
    if adv.shape != x.shape:
        raise AttackCheckError(f"{where}: adversarial batch has shape {tuple(adv.shape)}, input {tuple(x.shape)}")
    # One device sync for all four statistics (this runs after every adversarial batch).
    lo, hi, dist, nan = torch.stack([adv.amin(), adv.amax(), (adv - x).abs().amax(),
                                     adv.isnan().any().to(adv.dtype)]).tolist()
    if nan:
        raise AttackCheckError(f"{where}: adversarial batch contains NaN")
    if lo < 0.0 or hi > 1.0:
        raise AttackCheckError(f"{where}: adversarial values leave [0, 1] (min {lo}, max {hi})")
    if dist > eps + EPS_TOLERANCE:
        raise AttackCheckError(f"{where}: L-inf distance {dist} exceeds eps {eps} (+{EPS_TOLERANCE})")
