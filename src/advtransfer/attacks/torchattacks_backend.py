"""The torchattacks (3.5.1) backend: FGSM, PGD, FGSM with random start (FFGSM), NI-FGSM, VMI-FGSM, APGD-CE and
AutoAttack.

Same semantics as :mod:`.native`: [0, 1] inputs with normalisation inside the model (torchattacks' own
normalisation feature stays off), mean cross-entropy w.r.t. the true labels, untargeted L-inf, clamp to [0, 1].
Every constructor argument is passed explicitly, never left to torchattacks' defaults.

Randomness. torchattacks draws its random start (PGD, FFGSM) and VMI-FGSM's neighbourhood samples from torch's
*global* RNG on the model's device. With a ``generator``, one seed is drawn from it and the attack runs on a forked
copy of the global RNG seeded with that seed, so the same generator seed gives the same batch and the caller's RNG
state is left as it was. Without one, the global RNG is used (and advanced) as-is. The random values are not the
ones :mod:`.native` draws from the same generator: same distribution, different stream.

APGD-CE and AutoAttack seed themselves: every APGD, APGD-T, FAB and Square call runs
``torch.manual_seed(seed)`` on torch's global RNG. They always run on a forked copy of the global RNG (so the
caller's state is left as it was, generator or not), with the library ``seed`` drawn from the generator where one
is given and ``spec.seed`` otherwise.

AutoAttack. ``torchattacks.AutoAttack(version="standard")`` runs APGD-CE, APGD-T, FAB-T and Square one after
another on the examples still correctly classified (its ``MultiAttack``), but builds them with torchattacks'
defaults: 10 APGD iterations (the original AutoAttack: 100), 10 FAB iterations (100), 5,000 Square queries and
``n_classes - 1`` target classes (the original: 9). :func:`_build` therefore constructs each component itself
with every argument explicit (iterations, restarts, queries, seed, rho, eta, beta, alpha_max, p_init, loss) and
sets the number of target classes (an attribute torchattacks derives from ``n_classes``, with no argument of its
own), then hands the four to the AutoAttack object in place of its default suite; :func:`components` returns them.

Model mode. torchattacks' ``__call__`` puts the model in eval mode unless told otherwise and calls ``model.train()``
afterwards if it was training. Here it is told to keep the mode the caller (``attack()``) set, and every submodule's
``training`` flag is put back exactly as it was once the attack returns.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ._util import model_device
from .spec import APGD_RHO, AttackSpec

SUPPORTED = frozenset({"fgsm", "pgd", "fgsm_rs", "nifgsm", "vmifgsm", "apgd_ce", "autoattack"})

# Attacks that draw random numbers (random start or neighbourhood sampling).
_RANDOM = frozenset({"fgsm_rs", "vmifgsm"})
# Attacks that reseed torch's global RNG themselves (every call: torch.manual_seed(seed)).
_SELF_SEEDED = frozenset({"apgd_ce", "autoattack"})
# Fixed parameters of the AutoAttack components, as in Croce & Hein's reference implementation (and torchattacks).
FAB_ALPHA_MAX, FAB_ETA, FAB_BETA = 0.1, 1.05, 0.9
SQUARE_P_INIT = 0.8


def _build(model: nn.Module, spec: AttackSpec, seed: int | None = None):
    """The torchattacks attack for ``spec``; ``seed``: the library seed of APGD-CE and AutoAttack (default
    ``spec.seed``)."""
    import torchattacks

    seed = spec.seed if seed is None else seed

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
    if spec.name == "apgd_ce":
        return _apgd_ce(model, spec, seed)
    if spec.name == "autoattack":
        return _autoattack(model, spec, seed)
    raise NotImplementedError(spec.name)


def _apgd_ce(model: nn.Module, spec: AttackSpec, seed: int):
    import torchattacks

    return torchattacks.APGD(model, norm="Linf", eps=float(spec.eps), steps=spec.steps, n_restarts=spec.restarts,
                             seed=seed, loss="ce", eot_iter=1, rho=APGD_RHO, verbose=False)


def _autoattack(model: nn.Module, spec: AttackSpec, seed: int):
    import torchattacks
    from torchattacks.wrappers.multiattack import MultiAttack

    eps = float(spec.eps)
    atk = torchattacks.AutoAttack(model, norm="Linf", eps=eps, version=spec.version, n_classes=spec.n_classes,
                                  seed=seed, verbose=False)
    apgd_t = torchattacks.APGDT(model, norm="Linf", eps=eps, steps=spec.steps, n_restarts=spec.restarts, seed=seed,
                                eot_iter=1, rho=APGD_RHO, verbose=False, n_classes=spec.n_classes)
    fab_t = torchattacks.FAB(model, norm="Linf", eps=eps, steps=spec.fab_steps, n_restarts=spec.restarts,
                             alpha_max=FAB_ALPHA_MAX, eta=FAB_ETA, beta=FAB_BETA, verbose=False, seed=seed,
                             multi_targeted=True, n_classes=spec.n_classes)
    for targeted in (apgd_t, fab_t):  # torchattacks derives n_classes - 1; the standard suite targets 9 classes
        if targeted.n_target_classes != spec.n_classes - 1:
            raise RuntimeError("torchattacks no longer derives n_target_classes from n_classes; check the pin")
        targeted.n_target_classes = spec.target_classes
    square = torchattacks.Square(model, norm="Linf", eps=eps, n_queries=spec.square_queries,
                                 n_restarts=spec.restarts, p_init=SQUARE_P_INIT, loss="margin", resc_schedule=True,
                                 seed=seed, verbose=False)
    atk._autoattack = MultiAttack([_apgd_ce(model, spec, seed), apgd_t, fab_t, square], verbose=False)
    return atk


def components(atk) -> list:
    """The attacks an AutoAttack object runs, in order (APGD-CE, APGD-T, FAB-T, Square); [atk] for others."""
    inner = getattr(atk, "_autoattack", None)
    return list(inner.attacks) if inner is not None else [atk]


def _draw_seed(generator: torch.Generator) -> int:
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())


@contextlib.contextmanager
def _seeded_global_rng(generator: torch.Generator | None, device: torch.device, seed: int | None = None):
    """Run the body on a private copy of torch's global RNG (CPU and ``device``) seeded with ``seed`` or, without
    one, from ``generator`` (neither: the global RNG as it is)."""
    if generator is None and seed is None:
        yield
        return
    seed = _draw_seed(generator) if seed is None else seed
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
        seed = None
        if spec.name in _SELF_SEEDED:  # always forked: these reseed the global RNG on every call
            seed = spec.seed if generator is None else _draw_seed(generator)
        atk = _build(model, spec, seed)
        device = model_device(model, x)
        for part in [atk, *components(atk)]:
            part.set_device(device)
            # The model normalises inside: torchattacks must not (it switches normalisation on by itself only for
            # MAIR's RobModel).
            if part.normalization_used is not None or part._normalization_applied is not None:
                raise RuntimeError("torchattacks unexpectedly enabled its input normalisation")
            # Keep whatever mode attack() chose (eval by default) instead of torchattacks' own eval switch.
            part.set_model_training_mode(model_training=model.training, batchnorm_training=model.training,
                                         dropout_training=model.training)
        randomised = spec.name in _RANDOM or (spec.name == "pgd" and spec.random_start)
        with _seeded_global_rng(generator if randomised else None, device, seed):
            adv = atk(x, y)
    finally:
        for module, training in modes:
            module.training = training
    return adv.detach().to(x.device, x.dtype)
