"""The attack contract: L-inf FGSM/PGD on [0, 1] inputs with normalisation inside the model.

The model under attack is a tiny CNN (with BatchNorm and dropout, so train/eval mode matters) trained for a few
steps on separable random data, so input gradients are informative rather than ~0.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from advtransfer.attacks import AttackSpec, attack, check_adversarial
from advtransfer.attacks.invariants import AttackCheckError
from advtransfer.errors import ConfigError
from advtransfer.models.classifier import ImageClassifier
from budget import examples

N_CLASSES = 4
SIZE = 8


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(4),  # any input size works (the property test varies it)
        nn.Flatten(),
        nn.Dropout(0.3),
        nn.Linear(8 * 16, N_CLASSES),
    )


def separable_batch(n: int, gen: torch.Generator, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c brightens colour channel c % 3 in the top half (classes 0-2) or the bottom half (class 3)."""
    y = torch.randint(0, N_CLASSES, (n,), generator=gen)
    x = 0.35 + 0.3 * torch.rand(n, 3, size, size, generator=gen)
    for i, c in enumerate(y.tolist()):
        half = slice(0, size // 2) if c < 3 else slice(size // 2, size)
        x[i, c % 3, half] += 0.3
    return x.clamp(0, 1), y


@functools.lru_cache(maxsize=1)
def _trained_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = ImageClassifier(tiny_net())
    gen = torch.Generator().manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(60):
        x, y = separable_batch(32, gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def trained_model() -> ImageClassifier:
    """A fresh copy of the trained model in eval mode (tests may switch modes freely)."""
    model = ImageClassifier(tiny_net())
    model.load_state_dict(_trained_state())
    return model.eval()


@pytest.fixture
def model() -> ImageClassifier:
    return trained_model()


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return separable_batch(16, torch.Generator().manual_seed(1))


def reference_fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """FGSM written out: one step of eps along the sign of the gradient of the mean cross-entropy, then [0, 1]."""
    xr = x.clone().requires_grad_(True)
    loss = F.cross_entropy(model(xr), y)
    (grad,) = torch.autograd.grad(loss, xr)
    return (x + eps * grad.sign()).clamp(0.0, 1.0)


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_model_is_trained_enough(model: ImageClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    assert (model(x).argmax(1) == y).float().mean() >= 0.75
    xr = x.clone().requires_grad_(True)
    F.cross_entropy(model(xr), y).backward()
    assert (xr.grad != 0).float().mean() > 0.99  # informative gradients almost everywhere


# ------------------------------------------------------------------------------------------------------ FGSM


@pytest.mark.parametrize("eps", [0.005, 0.03, 0.1])
def test_fgsm_stays_in_ball_and_range(model: ImageClassifier, batch: tuple[torch.Tensor, torch.Tensor],
                                      eps: float) -> None:
    x, y = batch
    adv = attack(model, x, y, AttackSpec.fgsm(eps))
    assert adv.shape == x.shape and adv.dtype == x.dtype
    assert not torch.isnan(adv).any()
    assert (adv - x).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0
    assert not adv.requires_grad


def test_fgsm_moves_unclipped_pixels_by_exactly_eps(model: ImageClassifier,
                                                    batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    eps = 0.03
    adv = attack(model, x, y, AttackSpec.fgsm(eps))
    unclipped = (x >= eps) & (x <= 1 - eps)  # a full step either way stays inside [0, 1]
    moved_by_eps = ((adv - x).abs() - eps).abs() <= 1e-6
    assert unclipped.float().mean() > 0.5
    assert moved_by_eps[unclipped].float().mean() > 0.99


def test_fgsm_clips_to_range() -> None:
    model = trained_model()
    gen = torch.Generator().manual_seed(3)
    x = torch.rand(8, 3, SIZE, SIZE, generator=gen).round()  # all pixels at 0 or 1
    y = torch.randint(0, N_CLASSES, (8,), generator=gen)
    adv = attack(model, x, y, AttackSpec.fgsm(0.2))
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0
    assert ((adv - x).abs() <= 0.2 + 1e-6).all()


def test_fgsm_is_deterministic(model: ImageClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    spec = AttackSpec.fgsm(0.03)
    assert torch.equal(attack(model, x, y, spec), attack(model, x, y, spec))


def test_fgsm_increases_loss(model: ImageClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    adv = attack(model, x, y, AttackSpec.fgsm(0.03))
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y)
        adversarial = F.cross_entropy(model(adv), y)
    assert adversarial > clean


@pytest.mark.parametrize("eps", [0.0, 0.01, 0.03, 0.25])
def test_fgsm_equals_reference(model: ImageClassifier, batch: tuple[torch.Tensor, torch.Tensor],
                               eps: float) -> None:
    x, y = batch
    adv = attack(model, x, y, AttackSpec.fgsm(eps))
    assert torch.equal(adv, reference_fgsm(model.eval(), x, y, eps))


def test_fgsm_eps_zero_is_identity(model: ImageClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    assert torch.equal(attack(model, x, y, AttackSpec.fgsm(0.0)), x)


def test_fgsm_uses_eval_mode_gradients(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Attacking a model left in train mode gives the same batch as attacking it in eval mode."""
    x, y = batch
    spec = AttackSpec.fgsm(0.03)
    expected = attack(trained_model(), x, y, spec)
    model = trained_model().train()
    torch.manual_seed(99)  # dropout would draw from here if it were active
    assert torch.equal(attack(model, x, y, spec), expected)


# ------------------------------------------------------------------------------------------------------- PGD


def test_pgd_without_random_start_in_ball_and_range(model: ImageClassifier,
                                                    batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    eps = 0.03
    spec = AttackSpec.pgd(eps, step=0.01, steps=5, random_start=False)
    adv = attack(model, x, y, spec)
    assert not torch.isnan(adv).any()
    assert (adv - x).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0
    assert torch.equal(adv, attack(model, x, y, spec))  # no randomness without a random start
    with torch.no_grad():
        assert F.cross_entropy(model(adv), y) > F.cross_entropy(model(x), y)


def test_pgd_one_step_of_eps_is_fgsm(model: ImageClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    pgd = attack(model, x, y, AttackSpec.pgd(0.03, step=0.03, steps=1, random_start=False))
    assert torch.equal(pgd, attack(model, x, y, AttackSpec.fgsm(0.03)))


def test_pgd_random_start_follows_generator(model: ImageClassifier,
                                            batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    eps = 0.03
    spec = AttackSpec.pgd(eps, step=0.01, steps=3, random_start=True)
    a = attack(model, x, y, spec, generator=torch.Generator().manual_seed(7))
    b = attack(model, x, y, spec, generator=torch.Generator().manual_seed(7))
    c = attack(model, x, y, spec, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    for adv in (a, c):
        assert (adv - x).abs().max().item() <= eps + 1e-6
        assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0


def test_fgsm_rs_in_ball(model: ImageClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    spec = AttackSpec("fgsm_rs", 0.03, step=0.0375, random_start=True)
    adv = attack(model, x, y, spec, generator=torch.Generator().manual_seed(0))
    assert (adv - x).abs().max().item() <= 0.03 + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0


# ------------------------------------------------------------------------------------------ model left alone


@pytest.mark.parametrize("start_training", [False, True])
@pytest.mark.parametrize("spec", [AttackSpec.fgsm(0.03), AttackSpec.pgd(0.03, 0.01, 3, random_start=True)],
                         ids=["fgsm", "pgd"])
def test_attack_restores_mode_and_leaves_model_unchanged(batch: tuple[torch.Tensor, torch.Tensor],
                                                        start_training: bool, spec: AttackSpec) -> None:
    x, y = batch
    model = trained_model().train(start_training)
    before = state(model)
    modes = [m.training for m in model.modules()]

    attack(model, x, y, spec, generator=torch.Generator().manual_seed(0))

    assert model.training == start_training
    assert [m.training for m in model.modules()] == modes
    after = state(model)
    assert after.keys() == before.keys()
    for key, value in before.items():  # parameters and BatchNorm statistics
        assert torch.equal(after[key], value), key
    assert all(p.grad is None for p in model.parameters())  # input gradients only


def test_attack_restores_mode_after_failure(batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    model = trained_model().train()
    with pytest.raises(Exception):  # noqa: B017 - labels out of range: any error, but mode comes back
        attack(model, x, y + 100, AttackSpec.fgsm(0.03))
    assert model.training


def test_attack_does_not_touch_inputs(model: ImageClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    x0, y0 = x.clone(), y.clone()
    attack(model, x, y, AttackSpec.pgd(0.03, 0.01, 2, random_start=True), generator=torch.Generator())
    assert torch.equal(x, x0) and torch.equal(y, y0)
    assert not x.requires_grad


# ------------------------------------------------------------------------------------------------ validation


_RS_ONE_STEP = "fgsm_rs is one step from a random start: steps = 1, random_start = true"
_FGSM_ONE_STEP = ("fgsm is one step from the clean input: steps = 1, random_start = false (use 'fgsm_rs' for FGSM "
                  "with a random start, 'pgd' for several steps)")
_EPS_RULE = "eps is in pixel units on [0, 1] inputs, so 0 <= eps <= 1"
_TARGETED = "targeted attacks are not supported by the kit's studies; use targeted = false"


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "cw", "eps": 0.03},
     "unknown attack 'cw'; valid: fgsm, pgd, fgsm_rs, nifgsm, vmifgsm, apgd_ce, autoattack"),
    ({"name": "fgsm", "eps": -0.01}, f"eps = -0.01: {_EPS_RULE}"),
    ({"name": "fgsm", "eps": 1.5}, f"eps = 1.5: {_EPS_RULE}"),
    ({"name": "fgsm", "eps": 1.0000001}, f"eps = 1.0000001: {_EPS_RULE}"),
    ({"name": "fgsm", "eps": math.nan}, f"eps = nan: {_EPS_RULE}"),
    ({"name": "fgsm", "eps": math.inf}, f"eps = inf: {_EPS_RULE}"),
    ({"name": "fgsm", "eps": "0.03"}, f"eps = '0.03': {_EPS_RULE}"),
    ({"name": "fgsm", "eps": 0.03, "norm": "l2"}, "attack norm 'l2' is not supported; valid: linf"),
    ({"name": "fgsm", "eps": 0.03, "targeted": True}, _TARGETED),
    ({"name": "pgd", "eps": 0.03, "step": 0.01, "steps": 5, "targeted": True}, _TARGETED),
    ({"name": "pgd", "eps": 0.03, "step": 0.01, "steps": 0}, "steps = 0: must be an integer >= 1"),
    ({"name": "pgd", "eps": 0.03, "step": 0.01, "steps": 2.0}, "steps = 2.0: must be an integer >= 1"),
    ({"name": "fgsm", "eps": 0.03, "step": 0.03}, "fgsm's step is eps: leave step unset"),
    ({"name": "fgsm", "eps": 0.03, "steps": 2}, _FGSM_ONE_STEP),
    ({"name": "fgsm", "eps": 0.03, "random_start": True}, _FGSM_ONE_STEP),
    ({"name": "pgd", "eps": 0.03, "steps": 5}, "pgd needs step in (0, 1] pixel units, got None"),
    ({"name": "pgd", "eps": 0.03, "step": 0.0, "steps": 5}, "pgd needs step in (0, 1] pixel units, got 0.0"),
    ({"name": "pgd", "eps": 0.03, "step": -0.01, "steps": 5}, "pgd needs step in (0, 1] pixel units, got -0.01"),
    ({"name": "pgd", "eps": 0.03, "step": 1.5, "steps": 5}, "pgd needs step in (0, 1] pixel units, got 1.5"),
    ({"name": "pgd", "eps": 0.03, "step": math.nan, "steps": 5}, "pgd needs step in (0, 1] pixel units, got nan"),
    ({"name": "nifgsm", "eps": 0.03, "steps": 5}, "nifgsm needs step in (0, 1] pixel units, got None"),
    ({"name": "fgsm_rs", "eps": 0.03, "step": 0.03}, _RS_ONE_STEP),
    ({"name": "fgsm_rs", "eps": 0.03, "step": 0.03, "random_start": True, "steps": 3}, _RS_ONE_STEP),
    ({"name": "nifgsm", "eps": 0.03, "step": 0.01, "steps": 5, "random_start": True},
     "nifgsm starts from the clean input: random_start = false"),
    ({"name": "vmifgsm", "eps": 0.03, "step": 0.01, "steps": 5, "random_start": True},
     "vmifgsm starts from the clean input: random_start = false"),
    ({"name": "vmifgsm", "eps": 0.03, "step": 0.01, "steps": 5, "decay": -0.5}, "decay = -0.5: must be >= 0"),
    ({"name": "vmifgsm", "eps": 0.03, "step": 0.01, "steps": 5, "decay": math.inf}, "decay = inf: must be >= 0"),
    ({"name": "vmifgsm", "eps": 0.03, "step": 0.01, "steps": 5, "n_samples": 0},
     "n_samples = 0: must be an integer >= 1"),
    ({"name": "vmifgsm", "eps": 0.03, "step": 0.01, "steps": 5, "n_samples": 2.0},
     "n_samples = 2.0: must be an integer >= 1"),
    ({"name": "vmifgsm", "eps": 0.03, "step": 0.01, "steps": 5, "beta": 0.0}, "beta = 0.0: must be > 0"),
    ({"name": "vmifgsm", "eps": 0.03, "step": 0.01, "steps": 5, "beta": math.nan}, "beta = nan: must be > 0"),
    ({"name": "apgd_ce", "eps": 0.03, "step": 0.01, "steps": 5, "random_start": True},
     "apgd_ce sets its own step size (2 eps, halved when the loss stalls): leave step unset"),
    ({"name": "apgd_ce", "eps": 0.03, "steps": 5},
     "apgd_ce starts from a random point in the eps ball: random_start = true"),
    ({"name": "apgd_ce", "eps": 0.03, "steps": 5, "random_start": True, "restarts": 1.0},
     "apgd_ce: restarts = 1.0: must be an integer >= 1"),
], ids=lambda v: v.get("name") if isinstance(v, dict) else None)
def test_attack_spec_refusals_in_full(kwargs: dict, message: str) -> None:
    # Each refusal names what is wrong and the rule, in one line: the whole message is the contract.
    with pytest.raises(ConfigError) as info:
        AttackSpec(**kwargs)
    assert str(info.value) == message


@pytest.mark.parametrize("kwargs", [
    {"name": "fgsm", "eps": 1}, {"name": "fgsm", "eps": 0},
    {"name": "pgd", "eps": 0.03, "step": 1.0, "steps": 1},
    {"name": "fgsm_rs", "eps": 0.03, "step": 0.03, "random_start": True},
    {"name": "vmifgsm", "eps": 0.03, "step": 0.01, "steps": 5, "decay": 0.0, "n_samples": 1, "beta": 1e-9},
    {"name": "nifgsm", "eps": 0.03, "step": 0.01, "steps": 5},
    {"name": "apgd_ce", "eps": 0.03, "steps": 1, "random_start": True, "restarts": 1},
])
def test_attack_spec_accepts_its_edge_values(kwargs: dict) -> None:
    assert AttackSpec(**kwargs).name == kwargs["name"]


def test_attack_spec_error_names_valid_attacks() -> None:
    with pytest.raises(ConfigError, match="fgsm") as info:
        AttackSpec("cw", 0.03)
    assert "pgd" in str(info.value)


def test_attack_spec_accepts_valid() -> None:
    assert AttackSpec.fgsm(0.005).step_size == 0.005
    assert AttackSpec.fgsm(0.0).eps == 0.0
    assert AttackSpec.fgsm(1.0).eps == 1.0
    pgd = AttackSpec.pgd(0.03, 0.01, 10)
    assert (pgd.step_size, pgd.steps, pgd.random_start, pgd.norm, pgd.targeted) == (0.01, 10, True, "linf", False)
    assert AttackSpec.fgsm(0.03).key() != AttackSpec.fgsm(0.05).key()
    assert pgd.key() != AttackSpec.pgd(0.03, 0.01, 10, random_start=False).key()


def test_unknown_backend_is_config_error(model: ImageClassifier, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = batch
    model.train()
    with pytest.raises(ConfigError, match="native"):
        attack(model, x, y, AttackSpec.fgsm(0.03), backend="cleverhans")
    assert model.training


# ---------------------------------------------------------------------------------------------------- checks


def test_check_adversarial_accepts_valid_batch() -> None:
    x = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    adv = (x + 0.03 * torch.sign(torch.randn(x.shape, generator=torch.Generator().manual_seed(1)))).clamp(0, 1)
    check_adversarial(x, adv, 0.03)
    check_adversarial(x, x.clone(), 0.0)


@pytest.mark.parametrize("defect", ["out-of-ball", "above-1", "below-0", "nan", "shape"])
def test_check_adversarial_rejects_invalid_batch(defect: str) -> None:
    x = 0.2 + 0.6 * torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    adv = x.clone()
    if defect == "out-of-ball":
        adv[1, 2, 3, 4] += 0.031
    elif defect == "above-1":
        x[0, 0, 0, 0] = 1.0
        adv[0, 0, 0, 0] = 1.0 + 1e-3
    elif defect == "below-0":
        x[0, 0, 0, 0] = 0.0
        adv[0, 0, 0, 0] = -1e-3
    elif defect == "nan":
        adv[2, 1, 0, 0] = math.nan
    else:
        adv = adv[:3]
    with pytest.raises(AttackCheckError) as info:
        check_adversarial(x, adv, 0.03)
    assert {"out-of-ball": "exceeds eps 0.03", "above-1": "leave [0, 1]", "below-0": "leave [0, 1]",
            "nan": "contains NaN", "shape": "has shape (3, 3, 5, 5), input (4, 3, 5, 5)"}[defect] in str(info.value)


# ------------------------------------------------------------------------------------------------ properties


@settings(max_examples=examples(25), deadline=None)
@given(
    eps=st.floats(min_value=0.0, max_value=0.5, allow_nan=False),
    n=st.integers(min_value=1, max_value=4),
    size=st.integers(min_value=4, max_value=12),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_fgsm_property_matches_reference_in_ball_and_range(eps: float, n: int, size: int, seed: int) -> None:
    model = trained_model()
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size, size, generator=gen)
    y = torch.randint(0, N_CLASSES, (n,), generator=gen)
    adv = attack(model, x, y, AttackSpec.fgsm(eps))
    assert not torch.isnan(adv).any()
    assert (adv - x).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0
    assert torch.equal(adv, reference_fgsm(model, x, y, eps))


@settings(max_examples=examples(15), deadline=None)
@given(
    eps=st.floats(min_value=1e-4, max_value=0.3, allow_nan=False),
    step_frac=st.floats(min_value=0.1, max_value=1.0),
    steps=st.integers(min_value=1, max_value=4),
    random_start=st.booleans(),
    seed=st.integers(min_value=0, max_value=2**31 - 1),
)
def test_pgd_property_in_ball_and_range(eps: float, step_frac: float, steps: int, random_start: bool,
                                        seed: int) -> None:
    model = trained_model()
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 3, SIZE, SIZE, generator=gen)
    y = torch.randint(0, N_CLASSES, (3,), generator=gen)
    spec = AttackSpec.pgd(eps, step=eps * step_frac, steps=steps, random_start=random_start)
    adv = attack(model, x, y, spec, generator=gen)
    assert (adv - x).abs().max().item() <= eps + 1e-6
    assert adv.min().item() >= 0.0 and adv.max().item() <= 1.0


def _aa(**changes) -> AttackSpec:
    fields = {"steps": 5, "random_start": True, "restarts": 1, "n_classes": 10, "target_classes": 9, "seed": 0,
              "fab_steps": 5, "square_queries": 50, **changes}
    return AttackSpec("autoattack", 0.03, **fields)


@pytest.mark.parametrize("changes", [{"seed": 2**63 - 1}, {"seed": 200}, {"target_classes": 1},
                                     {"n_classes": 4, "target_classes": 3}])
def test_autoattack_spec_accepts_its_edge_values(changes) -> None:
    assert _aa(**changes).name == "autoattack"


@pytest.mark.parametrize("changes, message", [
    ({"seed": 2**63}, "autoattack: seed = 9223372036854775808: must be an integer in [0, 2**63)"),
    ({"seed": True}, "autoattack: seed = True: must be an integer in [0, 2**63)"),
    ({"seed": -1}, "autoattack: seed = -1: must be an integer in [0, 2**63)"),
    ({"restarts": True}, "autoattack: restarts = True: must be an integer >= 1"),
    ({"fab_steps": 0}, "autoattack: fab_steps = 0: must be an integer >= 1"),
    ({"version": "rand"}, "autoattack version 'rand' is not supported; valid: standard (the L-inf suite APGD-CE, "
                          "APGD-T, FAB-T, Square)"),
    ({"n_classes": True}, "autoattack: n_classes = True: the model's number of classes, at least 4 (APGD-T's DLR "
                          "loss reads the third and fourth largest logits)"),
    ({"n_classes": 3, "target_classes": 2}, "autoattack: n_classes = 3: the model's number of classes, at least 4 "
                                            "(APGD-T's DLR loss reads the third and fourth largest logits)"),
    ({"target_classes": 10}, "autoattack: target_classes = 10: must be between 1 and n_classes - 1 = 9"),
    ({"target_classes": 0}, "autoattack: target_classes = 0: must be between 1 and n_classes - 1 = 9"),
])
def test_autoattack_spec_refusals_in_full(changes, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _aa(**changes)
    assert str(err.value) == message


def test_apgd_ce_checks_only_its_own_fields() -> None:
    """AutoAttack's seed, FAB and Square budgets mean nothing to APGD-CE alone: not checked there."""
    spec = AttackSpec("apgd_ce", 0.03, steps=5, random_start=True, restarts=1, fab_steps=0, square_queries=0, seed=-1)
    assert spec.name == "apgd_ce"
    with pytest.raises(ConfigError, match=r"^apgd_ce: restarts = 0: must be an integer >= 1$"):
        AttackSpec("apgd_ce", 0.03, steps=5, random_start=True, restarts=0)


def test_autoattack_n_classes_must_be_an_integer() -> None:
    with pytest.raises(ConfigError, match=r"^autoattack: n_classes = 10\.0: the model's number of classes"):
        _aa(n_classes=10.0)


def test_check_adversarial_names_the_attack_by_default() -> None:
    x = torch.zeros(2, 3, 4, 4)
    with pytest.raises(AttackCheckError, match=r"^attack: adversarial batch contains NaN$"):
        check_adversarial(x, torch.full_like(x, float("nan")), 0.1)
