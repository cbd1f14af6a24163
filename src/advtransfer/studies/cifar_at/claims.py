"""Study 2's conclusions as testable comparisons.

Claim keys: ``(setting, model, training, attack)`` with attack ``clean`` (natural accuracy), ``fgsm``, ``pgd``,
``nifgsm`` or ``vmifgsm``.
"""

from __future__ import annotations

from ...reporting.claims import Claim, Comparison
from ...results.stats import Estimate, published_estimate
from ...results.table import EvalKey
from .published import EXP2_ATTACK_ORDER, EXP2_PUBLISHED, PUBLISHED_N

_SHORT = {"basenet": "BaseNet", "resnet18_scratch": "R18-scratch", "resnet18_transfer": "R18-transfer"}


def claim_key(key: EvalKey) -> tuple | None:
    if key.setting is None:
        return None
    return (key.setting, key.model, key.training, "clean" if key.attack == "none" else key.attack)


def label(claim_key: tuple) -> str:
    setting, model, training, attack = claim_key
    return (f"e{setting} {_SHORT.get(model, model)} {training}-trained "
            f"{attack.upper() if attack != 'clean' else 'clean'}")


def published() -> dict[tuple, Estimate]:
    out: dict[tuple, Estimate] = {}
    for (setting, model, training), numbers in EXP2_PUBLISHED.items():
        for attack, pct in zip(EXP2_ATTACK_ORDER, numbers):
            key = (setting, model, training, attack)
            out[key] = published_estimate(pct / 100, PUBLISHED_N, label(key))
    return out


def _at_helps(keys: set) -> list[Comparison]:
    return [Comparison((setting, model, "pgd", "pgd"), (setting, model, "clean", "pgd"), min_gap=0.10)
            for setting, model in sorted({(s, m) for s, m, t, _ in keys if t == "pgd" and m != "resnet18_transfer"})]


def _transfer_more_vulnerable(keys: set) -> list[Comparison]:
    return [Comparison((3, "resnet18_scratch", t, "pgd"), (2, "resnet18_transfer", t, "pgd")) for t in ("clean", "pgd")]


def _fgsm_weak_on_pretrained(keys: set) -> list[Comparison]:
    return [Comparison((2, "resnet18_transfer", "clean", "fgsm"), (2, "resnet18_transfer", "clean", "pgd"),
                       min_gap=0.05)]


def _scratch_better(keys: set) -> list[Comparison]:
    return [Comparison((3, "resnet18_scratch", "clean", "clean"), (2, "resnet18_transfer", "clean", "clean")),
            Comparison((3, "resnet18_scratch", "pgd", "pgd"), (2, "resnet18_transfer", "pgd", "pgd"))]


def _more_classes_lower(keys: set) -> list[Comparison]:
    return [Comparison((small, model, t, "clean"), (4, model, t, "clean"))
            for model, small in (("resnet18_scratch", 3), ("basenet", 1)) for t in ("clean", "pgd")]


CLAIMS: tuple[Claim, ...] = (
    Claim("2.1", "Adversarial Training is highly effective on model from scratch with white-box attack",
          "PGD accuracy of every from-scratch model: PGD-trained > clean-trained by more than 10 points "
          "(as-run and published: crafted on the clean model, not white-box)", _at_helps),
    Claim("2.2", "Transfer learning model is much more vulnerable to adversarial attacks",
          "PGD accuracy, clean-trained and PGD-trained: ResNet-18 scratch (exp. 3) > transfer (exp. 2)",
          _transfer_more_vulnerable),
    Claim("2.3", "FGSM attack is weak on pretrained models",
          "clean-trained transfer ResNet-18 (exp. 2): FGSM accuracy > PGD accuracy by > 5 points",
          _fgsm_weak_on_pretrained),
    Claim("2.4", "Training models from scratch without pretrained layers have a better performance and are more "
          "robust to adversarial attacks",
          "ResNet-18 scratch > transfer: clean accuracy of the clean models, PGD accuracy of the PGD-trained ones",
          _scratch_better),
    Claim("2.5", "Training models from scratch with larger classes have relatively lower accuracy with or without "
          "adversarial training due to the increasing level of task complexity",
          "clean accuracy, clean-trained and PGD-trained: CIFAR-10 (exp. 3 ResNet-18, exp. 1 BaseNet) > CIFAR-100 "
          "(exp. 4)", _more_classes_lower),
)
