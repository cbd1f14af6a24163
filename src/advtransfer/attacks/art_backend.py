"""The Adversarial Robustness Toolbox (ART 1.20.1) backend: FGSM, PGD, FGSM with random start and APGD-CE.

Same semantics as :mod:`.native`: [0, 1] inputs with normalisation inside the model (ART's own preprocessing is
the identity), mean cross-entropy w.r.t. the true labels (passed one-hot, so ART never attacks its predictions),
untargeted L-inf, clip to [0, 1]. Every argument is passed explicitly, never left to ART's defaults. The whole
batch is one ART batch: the loss is a batch mean, so the batch size scales the gradient and must match the other
backends'.

- ``fgsm``: ``FastGradientMethod`` (one step of eps, clip, projection).
- ``pgd``: ``ProjectedGradientDescent`` (its PyTorch implementation), one random initialisation or none.
- ``fgsm_rs``: ``ProjectedGradientDescent`` with one random initialisation and one step: x + U(-eps, eps), clip,
  one step of ``step`` along the gradient sign, clip, projection onto the eps ball -- native's fgsm_rs.
- ``apgd_ce``: ``AutoProjectedGradientDescent`` with ``loss_type="cross_entropy"``, initial step 2 eps (APGD's),
  ``steps`` iterations, ``restarts`` random initialisations. Not torchattacks' APGD step for step: ART keeps each
  restart's *last* iterate (torchattacks keeps any iterate that fooled the model), draws its start uniformly in the
  ball (torchattacks scales a uniform draw so each image's largest coordinate is eps) and hardcodes rho = 0.75; the
  cross-check compares their accuracies (:func:`advtransfer.attacks.crosscheck.apgd_tolerance`).

ART projects after clipping and does not clip again; the result is clipped to [0, 1] once more here, as native
does after its projection (a no-op unless float rounding put a value an ulp outside).

Side effects handled here: ART's random start draws from numpy's *global* RNG (with a ``generator``, one seed is
drawn from it and numpy's global state is saved, seeded and restored around the attack; without one it is used
as-is); its PGD data loader draws a seed from torch's global RNG (forked, so left as it was); its loss gradient is
``loss.backward()`` after ``model.zero_grad()``, so parameter gradients are switched off during the attack and
every parameter's ``requires_grad`` and ``.grad`` are put back afterwards; it puts the model in eval mode for every
gradient and prediction, so every submodule's ``training`` flag is put back too; its INFO logging (success rates)
is silenced for the duration of the call.

ART always computes gradients in eval mode, whatever mode the model was in, so a model with any submodule in
training mode (``attack(..., eval_mode=False)``) is refused rather than attacked with other semantics.
"""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ._util import model_device
from .spec import AttackSpec

SUPPORTED = frozenset({"fgsm", "pgd", "fgsm_rs", "apgd_ce"})

_LOGGER = "art"


@contextlib.contextmanager
def _quiet_art_logging():
    logger = logging.getLogger(_LOGGER)
    level = logger.level
    if logger.getEffectiveLevel() < logging.WARNING:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _numpy_rng(seed: int | None):
    """Seed numpy's global RNG with ``seed`` for the body and restore its state afterwards (None: leave it be)."""
    if seed is None:
        yield
        return
    state = np.random.get_state()
    np.random.seed(seed % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


@contextlib.contextmanager
def _model_left_alone(model: nn.Module):
    """Put back every submodule's mode and every parameter's requires_grad and .grad; no weight gradients."""
    modes = [(m, m.training) for m in model.modules()]
    params = [(p, p.requires_grad, p.grad) for p in model.parameters()]
    for p, _, _ in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, requires_grad, grad in params:
            p.requires_grad_(requires_grad)
            p.grad = grad
        for module, training in modes:
            module.training = training


def _estimator(model: nn.Module, x: torch.Tensor, device: torch.device):
    from art.estimators.classification import PyTorchClassifier

    with torch.no_grad():
        nb_classes = int(model(x[:1].to(device)).shape[1])
    return PyTorchClassifier(
        model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=tuple(x.shape[1:]),
        nb_classes=nb_classes,
        optimizer=None,
        use_amp=False,
        channels_first=True,
        clip_values=(0.0, 1.0),
        preprocessing_defences=None,
        postprocessing_defences=None,
        preprocessing=(0.0, 1.0),
        device_type="gpu" if device.type == "cuda" else "cpu",
    ), nb_classes


def _attack(estimator, spec: AttackSpec, batch_size: int):
    from art.attacks.evasion import AutoProjectedGradientDescent, FastGradientMethod, ProjectedGradientDescent

    eps = float(spec.eps)
    if spec.name == "fgsm":
        return FastGradientMethod(estimator, norm=np.inf, eps=eps, eps_step=eps, targeted=False, num_random_init=0,
                                  batch_size=batch_size, minimal=False, summary_writer=False)
    if spec.name in ("pgd", "fgsm_rs"):
        return ProjectedGradientDescent(estimator, norm=np.inf, eps=eps, eps_step=float(spec.step), decay=None,
                                        max_iter=spec.steps, targeted=False,
                                        num_random_init=1 if spec.random_start else 0, batch_size=batch_size,
                                        random_eps=False, summary_writer=False, verbose=False)
    if spec.name == "apgd_ce":
        return AutoProjectedGradientDescent(estimator, norm=np.inf, eps=eps, eps_step=float(spec.step_size),
                                            max_iter=spec.steps, targeted=False, nb_random_init=spec.restarts,
                                            batch_size=batch_size, loss_type="cross_entropy", verbose=False)
    raise NotImplementedError(spec.name)


def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec,
        generator: torch.Generator | None = None) -> torch.Tensor:
    if spec.name not in SUPPORTED:
        raise NotImplementedError(spec.name)
    if any(m.training for m in model.modules()):
        raise ConfigError("the 'art' attack backend computes gradients in eval mode only; attack with "
                          "eval_mode=True or use the 'native' or 'torchattacks' backend")
    x = x.detach()
    if x.shape[0] == 0 or spec.eps == 0.0:
        return x.clone()  # nothing to attack / the eps ball is x itself (ART rejects eps_step = 0 for FGSM)
    seed = None
    if spec.random_start and generator is not None:
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    device = model_device(model, x)
    # ART moves the model to cuda:<current device>: make that the model's own device.
    on_device = torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext()
    with on_device, _model_left_alone(model), _quiet_art_logging(), torch.random.fork_rng(devices=[]):
        estimator, nb_classes = _estimator(model, x, device)
        indices = y.detach().cpu().numpy()
        if indices.shape != (x.shape[0],) or indices.min() < 0 or indices.max() >= nb_classes:
            raise ValueError(f"labels must be {x.shape[0]} class indices in [0, {nb_classes})")
        labels = np.eye(nb_classes, dtype=np.float32)[indices]  # one-hot: ART's own format, true labels
        art_attack = _attack(estimator, spec, batch_size=x.shape[0])
        with _numpy_rng(seed):
            adv = art_attack.generate(x.cpu().numpy(), y=labels)
    adv = np.clip(adv, 0.0, 1.0)
    return torch.from_numpy(adv).to(x.device, x.dtype)
