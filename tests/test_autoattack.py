"""AutoAttack and APGD-CE: the spec, every parameter reaching torchattacks and ART, owned randomness, AutoAttack at
least as strong as its own APGD-CE, the APGD-CE cross-check between torchattacks and ART, and the sanity check that
catches masked gradients (and a broken AutoAttack)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from advtransfer.attacks import AttackSpec, art_backend, attack, backends_for, torchattacks_backend
from advtransfer.attacks.autoattack import AutoAttackSettings
from advtransfer.attacks.crosscheck import apgd_tolerance, crosscheck, default_specs, random_start_tolerance
from advtransfer.config.reader import read
from advtransfer.engine.reference_models import reference_model
from advtransfer.engine.sanity import MASKING_MARGIN, check_autoattack, check_evaluations
from advtransfer.errors import ConfigError
from advtransfer.results.schema import flags_to_str

pytestmark = pytest.mark.usefixtures("one_thread")

EPS = 2 / 255  # the reference CNN keeps ~65% of its 256 images under PGD here: the comparisons are not vacuous
N = 96


def cheap(n_classes: int = 10, **changes) -> AttackSpec:
    kwargs = dict(steps=5, restarts=1, target_classes=3, fab_steps=5, square_queries=30)
    return AttackSpec.autoattack(EPS, n_classes, **{**kwargs, **changes})


@pytest.fixture(scope="module")
def cnn():
    model, x, y = reference_model("small-cnn", seed=0)
    return model, x[:N], y[:N]


def _correct(model, adv, y) -> torch.Tensor:
    with torch.no_grad():
        return model(adv).argmax(1) == y


# ---------------------------------------------------------------------------------------------------- spec ---


_CLASSES_RULE = ("the model's number of classes, at least 4 (APGD-T's DLR loss reads the third and fourth largest "
                 "logits)")


@pytest.mark.parametrize("kwargs, message", [
    ({"step": 0.01}, "autoattack sets its own step size (2 eps, halved when the loss stalls): leave step unset"),
    ({"random_start": False}, "autoattack starts from a random point in the eps ball: random_start = true"),
    ({"restarts": 0}, "autoattack: restarts = 0: must be an integer >= 1"),
    ({"n_classes": 0}, f"autoattack: n_classes = 0: {_CLASSES_RULE}"),
    ({"target_classes": 2.0}, "autoattack: target_classes = 2.0: must be between 1 and n_classes - 1 = 9"),
    ({"square_queries": -1}, "autoattack: square_queries = -1: must be an integer >= 1"),
    ({"square_queries": 2.5}, "autoattack: square_queries = 2.5: must be an integer >= 1"),
    ({"seed": 1.0}, "autoattack: seed = 1.0: must be an integer in [0, 2**63)"),
    ({"version": "plus"}, "autoattack version 'plus' is not supported; valid: standard (the L-inf suite APGD-CE, "
                          "APGD-T, FAB-T, Square)"),
    ({"steps": 0}, "steps = 0: must be an integer >= 1"),
], ids=lambda v: v if isinstance(v, str) else "-".join(v))
def test_autoattack_spec_refuses_bad_parameters(kwargs: dict, message: str) -> None:
    # The whole message; test_attacks.py's test_autoattack_spec_refusals_in_full holds the seed, n_classes,
    # target_classes and fab_steps bounds.
    base = dict(name="autoattack", eps=EPS, steps=5, random_start=True, restarts=1, version="standard",
                n_classes=10, target_classes=3, seed=0, fab_steps=5, square_queries=30)
    with pytest.raises(ConfigError) as err:
        AttackSpec(**{**base, **kwargs})
    assert str(err.value) == message


def test_apgd_spec_refuses_a_step_and_a_fixed_start() -> None:
    with pytest.raises(ConfigError, match="leave step unset"):
        AttackSpec("apgd_ce", EPS, step=0.01, steps=5, random_start=True)
    with pytest.raises(ConfigError, match="random_start = true"):
        AttackSpec("apgd_ce", EPS, steps=5)
    assert AttackSpec.apgd_ce(EPS, 7, restarts=2).step_size == pytest.approx(2 * EPS)  # APGD's initial step


def test_keys_name_every_parameter_and_identity_keeps_old_fingerprints() -> None:
    specs = [cheap(), cheap(steps=6), cheap(restarts=2), cheap(target_classes=4), cheap(fab_steps=6),
             cheap(square_queries=31), cheap(seed=1), cheap(n_classes=11), AttackSpec.apgd_ce(EPS, 5),
             AttackSpec.apgd_ce(EPS, 5, restarts=2)]
    assert len({s.key() for s in specs}) == len(specs)
    assert cheap().key() == "autoattack-standard-eps0.00784314-c10-n5-r1-t3-fab5-sq30-seed0"
    pgd = AttackSpec.pgd(8 / 255, 2 / 255, 10)
    # exactly the fields a PGD spec had before APGD and AutoAttack existed: old adversarial-training checkpoints resume
    assert list(pgd.identity()) == ["name", "eps", "norm", "step", "steps", "random_start", "targeted", "decay",
                                    "n_samples", "beta"]
    assert pgd.key() == "pgd-eps0.0313725-step0.00784314-n10-rs"
    assert cheap().identity()["square_queries"] == 30 and AttackSpec.apgd_ce(EPS, 5).identity()["restarts"] == 1


def test_settings_make_the_spec_and_cap_target_classes() -> None:
    settings = read(AutoAttackSettings, {"autoattack": True, "apgd_steps": 7, "target_classes": 9, "fab_steps": 3,
                                         "square_queries": 11}, "t")
    spec = settings.spec(0.03, 5)
    assert (spec.name, spec.steps, spec.target_classes, spec.fab_steps, spec.square_queries, spec.n_classes) == \
        ("autoattack", 7, 4, 3, 11, 5)
    assert settings.spec(0.03, 100).target_classes == 9
    assert not settings.applies(3) and "at least 4" in settings.skip_reason(3)
    # off unless a config asks for it; then the original's standard setting
    assert AutoAttackSettings() == AutoAttackSettings(False, 100, 1, 9, 100, 5000)
    assert not AutoAttackSettings().applies(10) and "robust_eval.autoattack = false" in AutoAttackSettings() \
        .skip_reason(10)
    with pytest.raises(ConfigError, match="unknown key 'apgd_step'; did you mean 'apgd_steps'"):
        read(AutoAttackSettings, {"apgd_step": 7}, "t")


def test_only_torchattacks_has_autoattack_and_apgd_is_in_two_libraries() -> None:
    assert backends_for(("native",), cheap()) == ("torchattacks",)
    assert backends_for(("native", "art"), AttackSpec.apgd_ce(EPS, 3)) == ("art",)
    assert backends_for(("native", "torchattacks", "art"), AttackSpec.apgd_ce(EPS, 3)) == ("torchattacks", "art")
    with pytest.raises(ConfigError, match="backends that have it: torchattacks"):
        attack(nn.Sequential(nn.Flatten(), nn.Linear(12, 4)), torch.rand(2, 3, 2, 2), torch.tensor([0, 1]),
               cheap(n_classes=4), backend="art")


# ---------------------------------------------------------------------------------------- what is passed ---


def test_every_autoattack_parameter_reaches_torchattacks() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 10))
    spec = AttackSpec.autoattack(0.05, 10, steps=7, restarts=2, target_classes=4, fab_steps=8, square_queries=33,
                                 seed=5)
    atk = torchattacks_backend._build(model, spec, seed=123)
    assert (atk.eps, atk.norm, atk.version, atk.n_classes) == (0.05, "Linf", "standard", 10)
    apgd, apgdt, fab, square = torchattacks_backend.components(atk)
    assert [type(a).__name__ for a in (apgd, apgdt, fab, square)] == ["APGD", "APGDT", "FAB", "Square"]
    assert (apgd.eps, apgd.steps, apgd.n_restarts, apgd.seed, apgd.loss, apgd.eot_iter, apgd.thr_decr) == \
        (0.05, 7, 2, 123, "ce", 1, 0.75)
    assert (apgdt.eps, apgdt.steps, apgdt.n_restarts, apgdt.seed, apgdt.n_target_classes, apgdt.thr_decr) == \
        (0.05, 7, 2, 123, 4, 0.75)
    assert (fab.eps, fab.steps, fab.n_restarts, fab.seed, fab.multi_targeted, fab.n_target_classes, fab.alpha_max,
            fab.eta, fab.beta) == (0.05, 8, 2, 123, True, 4, 0.1, 1.05, 0.9)
    assert (square.eps, square.n_queries, square.n_restarts, square.seed, square.p_init, square.loss,
            square.rescale_schedule) == (0.05, 33, 2, 123, 0.8, "margin", True)
    assert torchattacks_backend.components(torchattacks_backend._build(model, spec))[0].seed == 5  # spec.seed


def test_every_apgd_parameter_reaches_art() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    estimator, _ = art_backend._estimator(model, torch.rand(5, 3, 2, 2), torch.device("cpu"))
    apgd = art_backend._attack(estimator, AttackSpec.apgd_ce(0.05, 7, restarts=2), batch_size=5)
    assert (apgd.eps, apgd.eps_step, apgd.max_iter, apgd.nb_random_init, apgd.batch_size, apgd.norm,
            apgd.targeted, apgd.loss_type, apgd.verbose) == (0.05, 0.1, 7, 2, 5, np.inf, False, "cross_entropy", False)


# ---------------------------------------------------------------------------------------------- randomness ---


@pytest.mark.heavy
@pytest.mark.parametrize("backend, spec", [("torchattacks", cheap()), ("torchattacks", AttackSpec.apgd_ce(EPS, 4)),
                                           ("art", AttackSpec.apgd_ce(EPS, 4))], ids=["aa", "apgd-ta", "apgd-art"])
def test_same_generator_same_batch_and_global_rngs_left_alone(cnn, backend: str, spec: AttackSpec) -> None:
    model, x, y = cnn
    x, y = x[:24], y[:24]
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    a = attack(model, x, y, spec, backend, generator=torch.Generator().manual_seed(3))
    b = attack(model, x, y, spec, backend, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), torch_state)  # the libraries reseed it: on a fork only
    assert all(np.array_equal(u, v) for u, v in zip(np.random.get_state(), numpy_state))
    c = attack(model, x, y, spec, backend, generator=torch.Generator().manual_seed(4))
    assert not torch.equal(a, c)  # the generator decides the random start


@pytest.mark.heavy
def test_autoattack_without_a_generator_uses_its_seed_and_leaves_the_global_rng(cnn) -> None:
    model, x, y = cnn
    state = torch.get_rng_state()
    a = attack(model, x[:24], y[:24], cheap(seed=7), "torchattacks")
    assert torch.equal(torch.get_rng_state(), state)  # AutoAttack's manual_seed calls ran on a fork
    assert torch.equal(a, attack(model, x[:24], y[:24], cheap(seed=7), "torchattacks"))


# ---------------------------------------------------------------------------------------------- strength ---


@pytest.mark.heavy
def test_autoattack_is_at_least_as_strong_as_its_own_apgd_ce_and_stays_in_the_ball(cnn) -> None:
    """AutoAttack's first component is APGD-CE with the same seed and iterations: every example AutoAttack leaves
    correct, APGD-CE alone left correct too, and the later components fool some more."""
    model, x, y = cnn
    spec = cheap(steps=5, square_queries=100)
    aa = attack(model, x, y, spec, "torchattacks", generator=torch.Generator().manual_seed(1))
    apgd = attack(model, x, y, AttackSpec.apgd_ce(EPS, 5), "torchattacks", generator=torch.Generator().manual_seed(1))
    assert (aa - x).abs().max() <= EPS + 1e-6 and aa.min() >= 0 and aa.max() <= 1
    ok_aa, ok_apgd = _correct(model, aa, y), _correct(model, apgd, y)
    assert bool((ok_aa <= ok_apgd).all())
    pgd = attack(model, x, y, AttackSpec.pgd(EPS, EPS / 4, 10), "native", generator=torch.Generator().manual_seed(1))
    clean = _correct(model, x, y).float().mean().item()
    acc_aa, acc_pgd = ok_aa.float().mean().item(), _correct(model, pgd, y).float().mean().item()
    assert 0.3 < acc_aa <= acc_pgd + 0.02 < clean  # a real robust accuracy, not 0 or the clean one
    assert check_autoattack("cnn", [_rec("autoattack", acc_aa, ok_aa, "torchattacks"), _rec("pgd", acc_pgd,
                                    _correct(model, pgd, y), "native")]) == []


# ------------------------------------------------------------------------------------- APGD cross-check ---


@pytest.mark.heavy
def test_apgd_ce_cross_check_torchattacks_against_art(cnn) -> None:
    model, x, y = cnn
    rows = crosscheck(model, x, y, default_specs(EPS, steps=3, apgd_steps=10), seed=2)
    apgd = [r for r in rows if r["attack"].startswith("apgd_ce")]
    assert [(r["backends"], r["attack"]) for r in apgd] == [("torchattacks vs art", "apgd_ce-eps0.00784314-n10-r1")]
    row = apgd[0]
    acc = row["accuracy"]
    assert row["agree"] and row["random_start"]
    assert abs(acc["art"] - acc["torchattacks"]) <= apgd_tolerance(acc["torchattacks"], N)
    assert 0.3 < acc["torchattacks"] < 0.9  # neither collapsed nor untouched: the comparison means something
    assert row["criterion"] == f"|accuracy difference| <= {apgd_tolerance(acc['torchattacks'], N):.4f} (3-sigma, n={N})"
    assert apgd_tolerance(0.3, 100) == random_start_tolerance(0.3, 100)


def test_apgd_cross_check_catches_a_broken_library(cnn, monkeypatch) -> None:
    model, x, y = cnn
    real = art_backend.run

    def no_apgd(m, xx, yy, spec, generator=None):  # ART "runs" APGD but returns the clean images
        return xx.clone() if spec.name == "apgd_ce" else real(m, xx, yy, spec, generator)

    monkeypatch.setattr(art_backend, "run", no_apgd)
    rows = crosscheck(model, x, y, [AttackSpec.apgd_ce(8 / 255, 5)], seed=0)
    assert [(r["backends"], r["agree"]) for r in rows] == [("torchattacks vs art", False)]


# ---------------------------------------------------------------------------------------- sanity checks ---


class SaturatedSoftmax(nn.Module):
    """A large-temperature softmax stage in front of the logits: log_softmax(T * z). It changes no prediction, but
    in float32 the softmax saturates, so cross-entropy gradients are exactly zero on confidently classified
    examples: the textbook case of masked gradients (PGD stalls; AutoAttack's DLR loss is scale-invariant)."""

    def __init__(self, net: nn.Module, temperature: float = 1e4) -> None:
        super().__init__()
        self.net, self.temperature = net, temperature

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(self.temperature * self.net(x), dim=1)


def _rec(attack_name: str, accuracy: float, flags=None, backend: str = "native", eps: float = EPS) -> dict:
    rec = {"attack": attack_name, "threat": "whitebox", "eps": eps, "backend": backend, "accuracy": accuracy}
    if flags is not None:
        rec.update(flags=flags_to_str(np.asarray(flags)), n=len(flags))
    return rec


def _evaluate(model, x, y, eps: float) -> list[dict]:
    pgd = attack(model, x, y, AttackSpec.pgd(eps, eps / 4, 10), "native", generator=torch.Generator().manual_seed(0))
    aa = attack(model, x, y, AttackSpec.autoattack(eps, 10, steps=10, restarts=1, target_classes=3, fab_steps=10,
                                                   square_queries=50), "torchattacks",
                generator=torch.Generator().manual_seed(0))
    return [_rec(name, ok.float().mean().item(), ok.numpy(), backend, eps)
            for name, adv, backend in (("pgd", pgd, "native"), ("autoattack", aa, "torchattacks"))
            for ok in [_correct(model, adv, y)]]


@pytest.mark.heavy
def test_masked_gradients_are_flagged_and_a_normal_model_is_not(cnn) -> None:
    model, x, y = cnn
    masked = SaturatedSoftmax(copy.deepcopy(model)).eval()
    assert torch.equal(masked(x).argmax(1), model(x).argmax(1))  # the same classifier
    eps = 8 / 255
    normal = _evaluate(model, x, y, eps)
    records = _evaluate(masked, x, y, eps)
    pgd, aa = (r["accuracy"] for r in records)
    assert pgd > 0.8 and aa < 0.3  # PGD stalls at its random start; AutoAttack finds what is really there
    flags = check_evaluations("masked", records)
    assert [f.check for f in flags] == ["pgd_overstates_robustness"]
    assert f"by {pgd - aa:.4f} (more than {MASKING_MARGIN:g})" in flags[0].detail
    assert "masks its gradients" in flags[0].meaning and "report AutoAttack's number" in flags[0].meaning
    assert check_evaluations("normal", normal) == []
    assert abs(normal[0]["accuracy"] - normal[1]["accuracy"]) < MASKING_MARGIN


def test_autoattack_above_pgd_is_flagged_as_broken_beyond_paired_noise() -> None:
    n = 200
    pgd = np.zeros(n, bool)
    pgd[:60] = True  # PGD: 0.30
    aa = pgd.copy()
    aa[60:64] = True  # AutoAttack 0.32: 4 discordant examples, within 0.01 + 3 * sqrt(4) / 200 = 0.04
    assert check_autoattack("m", [_rec("pgd", 0.30, pgd), _rec("autoattack", 0.32, aa, "torchattacks")]) == []
    aa[64:80] = True  # 0.40: 20 discordant, beyond 0.01 + 3 * sqrt(20) / 200 = 0.077
    flags = check_autoattack("m", [_rec("pgd", 0.30, pgd), _rec("autoattack", 0.40, aa, "torchattacks")])
    assert [f.check for f in flags] == ["autoattack_weaker_than_pgd"]
    assert f"3-sigma {3 * math.sqrt(20) / 200:.4f}" in flags[0].detail and "broken" in flags[0].meaning
    # without flags only the tolerance applies; PGD of the reference backend (native) is the one compared
    recs = [_rec("pgd", 0.30), _rec("pgd", 0.10, backend="art"), _rec("autoattack", 0.305, backend="torchattacks")]
    assert check_autoattack("m", recs) == []
    assert [f.check for f in check_autoattack("m", [*recs[:2], _rec("autoattack", 0.32, backend="torchattacks")])] \
        == ["autoattack_weaker_than_pgd"]
    # another threat or eps than PGD's: nothing to compare
    assert check_autoattack("m", [_rec("pgd", 0.9), _rec("autoattack", 0.1, eps=0.5)]) == []
