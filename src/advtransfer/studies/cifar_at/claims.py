"""Study 2's conclusions as testable comparisons.

Claim keys: ``(setting, model, training, attack)`` with attack ``clean`` (natural accuracy), ``fgsm``, ``pgd``,
``nifgsm``, ``vmifgsm`` or ``autoattack``.

The claims about robustness (2.1, 2.2, 2.4) are judged under PGD, as the write-up did, and again under AutoAttack
("2.1aa", ...: the same comparisons with AutoAttack accuracy in place of PGD's), beside them in the claims table.
The write-up published no AutoAttack numbers, so those have no verdict on the published column.
"""

from __future__ import annotations

from ...reporting.claims import Claim, Comparison
from ...results.stats import Estimate, published_estimate
from ...results.table import EvalKey
from .published import EXP2_ATTACK_ORDER, EXP2_PUBLISHED, PUBLISHED_N

_SHORT = {"basenet": "BaseNet", "resnet18_scratch": "R18-scratch", "resnet18_transfer": "R18-transfer"}
_ATTACK_LABEL = {"clean": "clean", "autoattack": "AutoAttack"}


def claim_key(key: EvalKey) -> tuple | None:
    if key.setting is None:
        return None
    return (key.setting, key.model, key.training, "clean" if key.attack == "none" else key.attack)


def label(claim_key: tuple) -> str:
    setting, model, training, attack = claim_key
    return f"e{setting} {_SHORT.get(model, model)} {training}-trained {_ATTACK_LABEL.get(attack, attack.upper())}"


def published() -> dict[tuple, Estimate]:
    out: dict[tuple, Estimate] = {}
    for (setting, model, training), numbers in EXP2_PUBLISHED.items():
        for attack, pct in zip(EXP2_ATTACK_ORDER, numbers):
            key = (setting, model, training, attack)
            out[key] = published_estimate(pct / 100, PUBLISHED_N, label(key))
    return out


def _at_helps(attack: str):
    def comparisons(keys: set) -> list[Comparison]:
        return [Comparison((setting, model, "pgd", attack), (setting, model, "clean", attack), min_gap=0.10)
                for setting, model in sorted({(s, m) for s, m, t, _ in keys
                                              if t == "pgd" and m != "resnet18_transfer"})]
    return comparisons


def _transfer_more_vulnerable(attack: str):
    def comparisons(keys: set) -> list[Comparison]:
        return [Comparison((3, "resnet18_scratch", t, attack), (2, "resnet18_transfer", t, attack))
                for t in ("clean", "pgd")]
    return comparisons


def _fgsm_weak_on_pretrained(keys: set) -> list[Comparison]:
    return [Comparison((2, "resnet18_transfer", "clean", "fgsm"), (2, "resnet18_transfer", "clean", "pgd"),
                       min_gap=0.05)]


def _scratch_better(attack: str):
    # Under AutoAttack only the robustness half is new: the clean half is 2.4's own comparison, and judging it
    # again would make 2.4aa "supported" where no AutoAttack number exists (the write-up's).
    clean = [] if attack == "autoattack" else [
        Comparison((3, "resnet18_scratch", "clean", "clean"), (2, "resnet18_transfer", "clean", "clean"))]

    def comparisons(keys: set) -> list[Comparison]:
        return [*clean, Comparison((3, "resnet18_scratch", "pgd", attack), (2, "resnet18_transfer", "pgd", attack))]
    return comparisons


def _more_classes_lower(keys: set) -> list[Comparison]:
    return [Comparison((small, model, t, "clean"), (4, model, t, "clean"))
            for model, small in (("resnet18_scratch", 3), ("basenet", 1)) for t in ("clean", "pgd")]


CLAIMS: tuple[Claim, ...] = (
    Claim("2.1", "Adversarial Training is highly effective on model from scratch with white-box attack",
          "PGD accuracy of every from-scratch model: PGD-trained > clean-trained by more than 10 points "
          "(as-run and published: crafted on the clean model, not white-box)", _at_helps("pgd")),
    Claim("2.1aa", "(the same claim, under AutoAttack: beyond the original, which only ran PGD, FGSM, NIFGSM and "
          "VMIFGSM)", "AutoAttack accuracy of every from-scratch model: PGD-trained > clean-trained by more than 10 "
          "points", _at_helps("autoattack")),
    Claim("2.2", "Transfer learning model is much more vulnerable to adversarial attacks",
          "PGD accuracy, clean-trained and PGD-trained: ResNet-18 scratch (exp. 3) > transfer (exp. 2)",
          _transfer_more_vulnerable("pgd")),
    Claim("2.2aa", "(the same claim, under AutoAttack)",
          "AutoAttack accuracy, clean-trained and PGD-trained: ResNet-18 scratch (exp. 3) > transfer (exp. 2)",
          _transfer_more_vulnerable("autoattack")),
    Claim("2.3", "FGSM attack is weak on pretrained models",
          "clean-trained transfer ResNet-18 (exp. 2): FGSM accuracy > PGD accuracy by > 5 points",
          _fgsm_weak_on_pretrained),
    Claim("2.4", "Training models from scratch without pretrained layers have a better performance and are more "
          "robust to adversarial attacks",
          "ResNet-18 scratch > transfer: clean accuracy of the clean models, PGD accuracy of the PGD-trained ones",
          _scratch_better("pgd")),
    Claim("2.4aa", "(the same claim, under AutoAttack)",
          "ResNet-18 scratch > transfer: AutoAttack accuracy of the PGD-trained ones (the clean half is 2.4's)",
          _scratch_better("autoattack")),
    Claim("2.5", "Training models from scratch with larger classes have relatively lower accuracy with or without "
          "adversarial training due to the increasing level of task complexity",
          "clean accuracy, clean-trained and PGD-trained: CIFAR-10 (exp. 3 ResNet-18, exp. 1 BaseNet) > CIFAR-100 "
          "(exp. 4)", _more_classes_lower),
)
