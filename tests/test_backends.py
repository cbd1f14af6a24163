"""The torchattacks and ART backends against the native attacks: same batches, same contract.

Two models, both with normalisation inside and trained a little on the built-in tiny data (so input gradients are
informative: on a random model a different loss scale could flip a gradient sign): a small CNN at 16 px and the
demo-width MobileNetV2 (width 0.25, stride 8) at 32 px.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advtransfer.attacks import BACKENDS, AttackSpec, art_backend, attack, backend_module, torchattacks_backend
from advtransfer.data.tiny import TinySpec, make_source
from advtransfer.errors import ConfigError
from advtransfer.models.classifier import ImageClassifier
from advtransfer.models.mobilenet import build_mobilenet_v2, wrap

N_CLASSES = 4
BATCH = 16
EPS, STEP, STEPS = 8 / 255, 2 / 255, 5
# Largest difference allowed between backends on the same deterministic attack. On CPU (torch 2.14.1,
# torchattacks 3.5.1, ART 1.20.1) the batches are bit-identical; the slack only absorbs float32 re-association
# in the projection (x + clamp(adv - x) vs clamp(adv, x - eps, x + eps)).
TOLERANCE = 1e-6

Batch = tuple[nn.Module, torch.Tensor, torch.Tensor]


pytestmark = pytest.mark.usefixtures("one_thread")


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float, batch: int) -> nn.Module:
    """A few Adam steps, then BatchNorm statistics recomputed over the whole set (few steps leave them stale)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for _ in range(steps):
            idx = torch.randint(0, len(x), (batch,))
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        for bn in bns:
            bn.reset_running_stats()
            bn.momentum = None  # cumulative average over the calibration pass
        with torch.no_grad():
            model(x)
        for bn in bns:
            bn.momentum = 0.1
    for p in model.parameters():
        p.grad = None
    return model.eval()


@pytest.fixture(scope="module")
def cnn() -> Batch:
    x, y = make_source(TinySpec(n_source_classes=N_CLASSES, n_target_classes=2, image_size=16, source_per_class=32))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, stride=2), nn.ReLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Dropout(0.2), nn.Linear(32, N_CLASSES),
        )
    model = _train(ImageClassifier(net), x, y, steps=40, lr=1e-2, batch=32)
    return model, x[:BATCH], y[:BATCH]


@pytest.fixture(scope="module")
def mobilenet() -> Batch:
    x, y = make_source(TinySpec(n_source_classes=N_CLASSES, n_target_classes=2, image_size=32, source_per_class=32))
    model = wrap(build_mobilenet_v2(num_classes=N_CLASSES, width_mult=0.25, stride8=True, seed=0))
    model = _train(model, x, y, steps=60, lr=1e-2, batch=16)
    return model, x[:BATCH], y[:BATCH]


@pytest.fixture(params=["cnn", "mobilenet"])
def trained(request: pytest.FixtureRequest) -> Batch:
    return request.getfixturevalue(request.param)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def rng_states() -> tuple[torch.Tensor, tuple]:
    return torch.get_rng_state(), np.random.get_state()


def assert_rng_unchanged(before: tuple[torch.Tensor, tuple]) -> None:
    torch_state, np_state = before
    assert torch.equal(torch.get_rng_state(), torch_state), "torch global RNG state changed"
    now = np.random.get_state()
    assert now[0] == np_state[0] and np.array_equal(now[1], np_state[1]) and now[2:] == np_state[2:], \
        "numpy global RNG state changed"


def assert_valid(adv: torch.Tensor, x: torch.Tensor, eps: float) -> None:
    assert adv.shape == x.shape and adv.dtype == x.dtype and adv.device == x.device
    assert not adv.requires_grad
    assert (adv - x).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0


RANDOM_SPECS = {
    "pgd-rs": AttackSpec.pgd(EPS, STEP, 3, random_start=True),
    "fgsm_rs": AttackSpec("fgsm_rs", EPS, step=1.25 * EPS, random_start=True),
}


# ---------------------------------------------------------------------------------------------------- setup


def test_backend_modules_declare_their_attacks() -> None:
    assert BACKENDS == ("native", "torchattacks", "art")
    assert torchattacks_backend.SUPPORTED == frozenset({"fgsm", "pgd", "fgsm_rs", "nifgsm", "vmifgsm", "apgd_ce",
                                                        "autoattack"})
    assert art_backend.SUPPORTED == frozenset({"fgsm", "pgd", "fgsm_rs", "apgd_ce"})
    assert backend_module("torchattacks") is torchattacks_backend
    assert backend_module("art") is art_backend


def test_models_are_trained(trained: Batch) -> None:
    model, x, y = trained
    assert accuracy(model, x, y) >= 0.75
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(model(xr), y).backward()
    assert (xr.grad != 0).float().mean() > 0.9  # informative gradients, not ~1e-12 everywhere
    assert xr.grad.abs().mean() > 1e-5


# ----------------------------------------------------------------------------------- agreement with native


@pytest.mark.parametrize("spec", [AttackSpec.fgsm(EPS), AttackSpec.pgd(EPS, STEP, STEPS, random_start=False)],
                         ids=["fgsm", "pgd"])
def test_backends_agree_with_native(trained: Batch, spec: AttackSpec) -> None:
    model, x, y = trained
    native = attack(model, x, y, spec, backend="native")
    clean = accuracy(model, x, y)
    assert accuracy(model, native, y) <= clean
    for backend in ("torchattacks", "art"):
        adv = attack(model, x, y, spec, backend=backend)
        assert_valid(adv, x, spec.eps)
        diff = (adv - native).abs().max().item()
        assert diff <= TOLERANCE, f"{backend}/{spec.key()}: max |adv - native| = {diff}"
        assert accuracy(model, adv, y) <= clean


def _native_from_start(model: nn.Module, x: torch.Tensor, y: torch.Tensor, start: torch.Tensor,
                       spec: AttackSpec) -> torch.Tensor:
    """Native's loop (signed steps, projection, clamp) from a given start point."""
    adv = start.clone()
    for _ in range(spec.steps):
        xr = adv.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(xr), y), xr)
        adv = adv + spec.step_size * grad.sign()
        adv = torch.min(torch.max(adv, x - spec.eps), x + spec.eps).clamp(0.0, 1.0)
    return adv


def _start(backend: str, spec: AttackSpec, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The random start the backend draws for ``torch.Generator().manual_seed(seed)``, replayed."""
    derived = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(seed)).item())
    if backend == "torchattacks":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derived)
            # PGD: empty_like(x).uniform_; FFGSM: randn_like(x).uniform_ (a normal draw first, then overwritten).
            base = torch.randn_like(x) if spec.name == "fgsm_rs" else torch.empty_like(x)
            noise = base.uniform_(-spec.eps, spec.eps)
    else:
        rng = np.random.RandomState(derived % 2**32)
        noise = torch.from_numpy(rng.uniform(-spec.eps, spec.eps, (len(x), x[0].numel())).astype(np.float32))
        noise = noise.reshape(x.shape)
    return (x + noise).clamp(0.0, 1.0)


@pytest.mark.parametrize("backend", ["torchattacks", "art"])
@pytest.mark.parametrize("name", list(RANDOM_SPECS))
def test_random_start_semantics_match_native(cnn: Batch, backend: str, name: str) -> None:
    """From the same start point, FFGSM / ART's PGD take native's steps: uniform start in the ball clamped to
    [0, 1], signed steps of ``step``, projection onto the ball, clamp."""
    model, x, y = cnn
    spec = RANDOM_SPECS[name]
    adv = attack(model, x, y, spec, backend=backend, generator=torch.Generator().manual_seed(11))
    expected = _native_from_start(model, x, y, _start(backend, spec, x, 11), spec)
    assert (adv - expected).abs().max().item() <= TOLERANCE


# ------------------------------------------------------------------------------------------------ randomness


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", list(RANDOM_SPECS))
def test_random_start_follows_generator(cnn: Batch, backend: str, name: str) -> None:
    model, x, y = cnn
    spec = RANDOM_SPECS[name]
    before = rng_states()
    a = attack(model, x, y, spec, backend=backend, generator=torch.Generator().manual_seed(7))
    b = attack(model, x, y, spec, backend=backend, generator=torch.Generator().manual_seed(7))
    c = attack(model, x, y, spec, backend=backend, generator=torch.Generator().manual_seed(8))
    assert_rng_unchanged(before)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    for adv in (a, c):
        assert_valid(adv, x, spec.eps)
        assert accuracy(model, adv, y) <= accuracy(model, x, y)


def test_without_generator_global_rngs_are_used(cnn: Batch) -> None:
    """No generator: torchattacks draws from torch's global RNG, ART from numpy's, as the libraries do."""
    model, x, y = cnn
    spec = RANDOM_SPECS["pgd-rs"]
    np_state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            runs = []
            for _ in range(2):
                torch.manual_seed(3)
                runs.append(attack(model, x, y, spec, backend="torchattacks"))
            assert torch.equal(*runs)
            runs = []
            for _ in range(2):
                np.random.seed(3)
                runs.append(attack(model, x, y, spec, backend="art"))
            assert torch.equal(*runs)
    finally:
        np.random.set_state(np_state)


# ------------------------------------------------------------------------------------- the model left alone


def _hooks(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("start_training", [False, True], ids=["eval", "train"])
def test_mode_and_model_restored(cnn: Batch, backend: str, start_training: bool) -> None:
    model, x, y = cnn
    model = copy.deepcopy(model).train(start_training)
    before = state(model)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    hooks = _hooks(model)

    adv = attack(model, x, y, RANDOM_SPECS["pgd-rs"], backend=backend, generator=torch.Generator().manual_seed(0))

    assert model.training == start_training
    assert [m.training for m in model.modules()] == modes
    after = state(model)
    for key, value in before.items():  # weights and BatchNorm running statistics: attacked in eval mode
        assert torch.equal(after[key], value), key
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())  # input gradients only
    assert _hooks(model) == hooks
    assert_valid(adv, x, EPS)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frozen_blocks_and_existing_gradients_survive(mobilenet: Batch, backend: str) -> None:
    """A transfer model (frozen first blocks: no grad, BatchNorm in eval even in training) with gradients pending
    from a training step comes back exactly as it was."""
    model, x, y = mobilenet
    model = ImageClassifier(copy.deepcopy(model.net), frozen_features=3).train()
    for p in model.trainable_parameters():
        p.grad = torch.full_like(p, 0.5)
    grads = [p.grad for p in model.parameters()]
    flags = [p.requires_grad for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    assert not all(flags) and any(flags) and not all(modes)

    attack(model, x[:4], y[:4], AttackSpec.fgsm(EPS), backend=backend)

    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is g for p, g in zip(model.parameters(), grads, strict=True))
    assert all(torch.equal(g, torch.full_like(g, 0.5)) for g in grads if g is not None)
    assert [m.training for m in model.modules()] == modes


def test_torchattacks_keeps_training_mode_when_asked(cnn: Batch) -> None:
    """eval_mode=False: torchattacks attacks in the model's own (training) mode, as native does -- same dropout
    masks from the same global seed, same BatchNorm batch statistics and running-statistics update."""
    model, x, y = cnn
    spec = AttackSpec.fgsm(EPS)
    models, advs = [], []
    for backend in ("native", "torchattacks"):
        m = copy.deepcopy(model).train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(5)
            advs.append(attack(m, x, y, spec, backend=backend, eval_mode=False))
        assert m.training
        models.append(m)
    assert torch.equal(*advs)
    native_state, ta_state = state(models[0]), state(models[1])
    assert all(torch.equal(native_state[k], ta_state[k]) for k in native_state)
    assert not torch.equal(native_state["net.1.running_mean"], state(model)["net.1.running_mean"])


def test_art_refuses_training_mode(cnn: Batch) -> None:
    """ART computes every gradient in eval mode: with eval_mode=False on a training model it would silently attack
    something else, so it is refused (and the mode survives)."""
    model, x, y = cnn
    model = copy.deepcopy(model).train()
    with pytest.raises(ConfigError, match="eval"):
        attack(model, x, y, AttackSpec.fgsm(EPS), backend="art", eval_mode=False)
    assert model.training


# ----------------------------------------------------------------------------------------- ART specifics


def test_art_is_quiet_and_leaves_logging_alone(cnn: Batch, caplog: pytest.LogCaptureFixture) -> None:
    model, x, y = cnn
    level = logging.getLogger("art").level
    with caplog.at_level(logging.INFO):
        attack(model, x, y, RANDOM_SPECS["pgd-rs"], backend="art", generator=torch.Generator().manual_seed(0))
        attack(model, x, y, AttackSpec.fgsm(EPS), backend="art")
    assert not [r for r in caplog.records if r.name.startswith("art")]
    assert logging.getLogger("art").level == level


def test_art_eps_zero_is_identity(cnn: Batch) -> None:
    model, x, y = cnn
    assert torch.equal(attack(model, x, y, AttackSpec.fgsm(0.0), backend="art"), x)
    assert torch.equal(attack(model, x, y, AttackSpec.pgd(0.0, STEP, 2, random_start=False), backend="art"), x)


def test_art_two_class_labels(cnn: Batch) -> None:
    """ART treats 2-class models specially: true labels must still be used (here via a 2-logit head)."""
    model, x, y = cnn
    two = ImageClassifier(copy.deepcopy(model.net), output_indices=torch.tensor([0, 1])).eval()
    keep = y < 2
    x2, y2 = x[keep], y[keep]
    spec = AttackSpec.pgd(EPS, STEP, 3, random_start=False)
    native = attack(two, x2, y2, spec, backend="native")
    assert (attack(two, x2, y2, spec, backend="art") - native).abs().max().item() <= TOLERANCE
    assert (attack(two, x2, y2, spec, backend="torchattacks") - native).abs().max().item() <= TOLERANCE


# ------------------------------------------------------------------------------------------ what is passed


def test_every_parameter_reaches_the_library() -> None:
    """Non-default values for everything: nothing falls back to a library default."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    nif = torchattacks_backend._build(model, AttackSpec("nifgsm", 0.05, step=0.007, steps=7, decay=0.6))
    assert (nif.eps, nif.alpha, nif.steps, nif.decay) == (0.05, 0.007, 7, 0.6)
    vmi = torchattacks_backend._build(model, AttackSpec("vmifgsm", 0.05, step=0.007, steps=7, decay=0.6,
                                                        n_samples=3, beta=2.5))
    assert (vmi.eps, vmi.alpha, vmi.steps, vmi.decay, vmi.N, vmi.beta) == (0.05, 0.007, 7, 0.6, 3, 2.5)
    pgd = torchattacks_backend._build(model, AttackSpec.pgd(0.05, 0.007, 7, random_start=False))
    assert (pgd.eps, pgd.alpha, pgd.steps, pgd.random_start) == (0.05, 0.007, 7, False)
    ff = torchattacks_backend._build(model, AttackSpec("fgsm_rs", 0.05, step=0.007, random_start=True))
    assert (ff.eps, ff.alpha) == (0.05, 0.007)
    assert torchattacks_backend._build(model, AttackSpec.fgsm(0.05)).eps == 0.05

    x = torch.rand(5, 3, 2, 2)
    estimator, nb_classes = art_backend._estimator(model, x, torch.device("cpu"))
    assert nb_classes == 3 and estimator.clip_values.tolist() == [0.0, 1.0]
    fgm = art_backend._attack(estimator, AttackSpec.fgsm(0.05), batch_size=5)
    assert (fgm.eps, fgm.eps_step, fgm.norm, fgm.targeted, fgm.num_random_init, fgm.batch_size, fgm.minimal) == \
        (0.05, 0.05, np.inf, False, 0, 5, False)
    art_pgd = art_backend._attack(estimator, AttackSpec.pgd(0.05, 0.007, 7, random_start=True), batch_size=5)._attack
    assert (art_pgd.eps, art_pgd.eps_step, art_pgd.max_iter, art_pgd.num_random_init, art_pgd.batch_size,
            art_pgd.norm, art_pgd.targeted, art_pgd.random_eps, art_pgd.decay) == \
        (0.05, 0.007, 7, 1, 5, np.inf, False, False, None)
    rs = art_backend._attack(estimator, AttackSpec("fgsm_rs", 0.05, step=0.007, random_start=True), batch_size=5)
    assert (rs._attack.max_iter, rs._attack.num_random_init, rs._attack.eps_step) == (1, 1, 0.007)


# --------------------------------------------------------------------------------------- unsupported pairs


@pytest.mark.parametrize("backend", ["art", "native"])
@pytest.mark.parametrize("name", ["nifgsm", "vmifgsm"])
def test_unsupported_pair_names_the_backend_that_has_it(cnn: Batch, backend: str, name: str) -> None:
    model, x, y = cnn
    model = copy.deepcopy(model).train()
    with pytest.raises(ConfigError, match="torchattacks") as info:
        attack(model, x, y, AttackSpec(name, EPS, step=STEP, steps=3), backend=backend)
    assert backend in str(info.value)
    assert model.training


# ------------------------------------------------------------------------------ momentum attacks (study 2)


def test_nifgsm(cnn: Batch) -> None:
    model, x, y = cnn
    spec = AttackSpec("nifgsm", EPS, step=STEP, steps=STEPS, decay=1.0)
    before = rng_states()
    a = attack(model, x, y, spec, backend="torchattacks")
    b = attack(model, x, y, spec, backend="torchattacks", generator=torch.Generator().manual_seed(1))
    assert_rng_unchanged(before)  # no randomness at all
    assert torch.equal(a, b)
    assert_valid(a, x, EPS)
    assert accuracy(model, a, y) <= accuracy(model, x, y)
    assert (a != x).float().mean() > 0.5


def test_vmifgsm(cnn: Batch) -> None:
    model, x, y = cnn
    spec = AttackSpec("vmifgsm", EPS, step=STEP, steps=3, decay=1.0, n_samples=3, beta=1.5)
    before = rng_states()
    a = attack(model, x, y, spec, backend="torchattacks", generator=torch.Generator().manual_seed(4))
    b = attack(model, x, y, spec, backend="torchattacks", generator=torch.Generator().manual_seed(4))
    c = attack(model, x, y, spec, backend="torchattacks", generator=torch.Generator().manual_seed(5))
    assert_rng_unchanged(before)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    for adv in (a, c):
        assert_valid(adv, x, EPS)
        assert accuracy(model, adv, y) <= accuracy(model, x, y)
