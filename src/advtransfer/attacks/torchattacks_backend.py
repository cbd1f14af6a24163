"""The torchattacks (3.5.1) backend: FGSM, PGD, FGSM with random start (FFGSM), NI-FGSM and VMI-FGSM.

Same semantics as :mod:`.native`: [0, 1] inputs with normalisation inside the model (torchattacks' own
normalisation feature stays off), mean cross-entropy w.r.t. the true labels, untargeted L-inf, clamp to [0, 1].
Every constructor argument is passed explicitly, never left to torchattacks' defaults.

Randomness. torchattacks draws its random start (PGD, FFGSM) and VMI-FGSM's neighbourhood samples from torch's
*global* RNG on the model's device. With a ``generator``, one seed is drawn from it and the attack runs on a forked
copy of the global RNG seeded with that seed, so the same generator seed gives the same batch and the caller's RNG
state is left as it was. Without one, the global RNG is used (and advanced) as-is. The random values are not the
ones :mod:`.native` draws from the same generator: same distribution, different stream.

Model mode. torchattacks' ``__call__`` puts the model in eval mode unless told otherwise and calls ``model.train()``
afterwards if it was training. Here it is told to keep the mode the caller (``attack()``) set, and every submodule's
``training`` flag is put back exactly as it was once the attack returns.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ._util import model_device
from .spec import AttackSpec

SUPPORTED = frozenset({"fgsm", "pgd", "fgsm_rs", "nifgsm", "vmifgsm"})

# Attacks that draw random numbers (random start or neighbourhood sampling).
_RANDOM = frozenset({"fgsm_rs", "vmifgsm"})


def _build(model: nn.Module, spec: AttackSpec):
    import torchattacks

    eps = float(spec.eps)
    if spec.name == "fgsm":
        return torchattacks.FGSM(model, eps=eps)
    step = float(spec.step_size)
    if spec.name == "pgd":
        return torchattacks.PGD(model, eps=eps, alpha=step, steps=spec.steps, random_start=spec.random_start)
    if spec.name == "fgsm_rs":
        # FFGSM (Wong et al. 2020): x + U(-eps, eps), clamp [0, 1], one step of alpha along the gradient sign,
        # projection onto the eps ball, clamp [0, 1] -- native's fgsm_rs, step for step.
        return torchattacks.FFGSM(model, eps=eps, alpha=step)
    if spec.name == "nifgsm":
        return torchattacks.NIFGSM(model, eps=eps, alpha=step, steps=spec.steps, decay=float(spec.decay))
    if spec.name == "vmifgsm":
        return torchattacks.VMIFGSM(model, eps=eps, alpha=step, steps=spec.steps, decay=float(spec.decay),
                                    N=spec.n_samples, beta=float(spec.beta))
    raise NotImplementedError(spec.name)


@contextlib.contextmanager
def _seeded_global_rng(generator: torch.Generator | None, device: torch.device):
    """Run the body on a private copy of torch's global RNG (CPU and ``device``) seeded from ``generator``."""
    if generator is None:
        yield
        return
    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())
    cuda = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" \
        else []
    with torch.random.fork_rng(devices=cuda):
        torch.random.default_generator.manual_seed(seed)
        for index in cuda:  # only the forked device: torch.manual_seed would reseed every GPU
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        yield


def run(model: nn.Module, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec,
        generator: torch.Generator | None = None) -> torch.Tensor:
    if spec.name not in SUPPORTED:
        raise NotImplementedError(spec.name)
    x = x.detach()
    if x.shape[0] == 0:
        return x.clone()
    modes = [(m, m.training) for m in model.modules()]
    try:
        atk = _build(model, spec)
        device = model_device(model, x)
        atk.set_device(device)
        # The model normalises inside: torchattacks must not (it switches normalisation on by itself only for
        # MAIR's RobModel).
        if atk.normalization_used is not None or atk._normalization_applied is not None:
            raise RuntimeError("torchattacks unexpectedly enabled its input normalisation")
        # Keep whatever mode attack() chose (eval by default) instead of torchattacks' own eval switch.
        atk.set_model_training_mode(model_training=model.training, batchnorm_training=model.training,
                                    dropout_training=model.training)
        randomised = spec.name in _RANDOM or (spec.name == "pgd" and spec.random_start)
        with _seeded_global_rng(generator if randomised else None, device):
            adv = atk(x, y)
    finally:
        for module, training in modes:
            module.training = training
    return adv.detach().to(x.device, x.dtype)
