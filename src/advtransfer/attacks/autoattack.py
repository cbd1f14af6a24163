"""AutoAttack as an evaluation: the settings a study's config gives it, and the attack spec they make.

AutoAttack (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks") is the field's evaluation of record: RobustBench reports no robustness number without it,
because PGD alone overstates robustness whenever gradients are masked. The standard L-inf suite runs APGD-CE,
APGD-T, FAB-T and Square one after another, each on the examples the ones before left correct
(:class:`~advtransfer.attacks.spec.AttackSpec` ``autoattack``; the torchattacks backend).

:class:`AutoAttackSettings` is the ``robust_eval`` table of both studies' configs. AutoAttack runs only where a
config says ``autoattack = true`` (the shipped experiments do, in ``[common]``): a config of one's own, and the test
suite's miniature configs, do not pay for it unasked. The other defaults are the original's standard setting; the
demo profiles make it cheap (few iterations, target classes and queries). It is evaluation only: no training reads
it, so changing it never retrains a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from ..config.reader import Range
from .spec import AttackSpec

PositiveInt = Annotated[int, Range(1, 1_000_000)]

MIN_CLASSES = 4  # APGD-T's DLR loss reads the third and fourth largest logits


@dataclass(frozen=True)
class AutoAttackSettings:
    """``[... .robust_eval]``: AutoAttack on every model at the study's main eps (white-box in the intended
    protocol), and the APGD-CE iterations of the torchattacks-vs-ART cross-check (:meth:`crosscheck_steps`)."""

    autoattack: bool = False  # AutoAttack rows for every model (false: none; the APGD-CE cross-check stays)
    apgd_steps: PositiveInt = 100  # APGD-CE and APGD-T iterations (standard: 100)
    restarts: PositiveInt = 1  # random restarts of each component (standard: 1)
    target_classes: PositiveInt = 9  # runner-up classes APGD-T and FAB-T target, at most classes - 1 (standard: 9)
    fab_steps: PositiveInt = 100  # FAB-T iterations per target class (standard: 100)
    square_queries: PositiveInt = 5000  # Square's queries (standard: 5000)

    def applies(self, n_classes: int) -> bool:
        """Whether AutoAttack runs on a model with ``n_classes`` outputs (enabled, and at least 4 classes)."""
        return self.autoattack and n_classes >= MIN_CLASSES

    def spec(self, eps: float, n_classes: int) -> AttackSpec:
        """The AutoAttack spec for a model with ``n_classes`` outputs at ``eps`` (target classes capped at
        ``n_classes - 1``). The seed field stays 0: evaluations draw each batch's seed from their generator."""
        return AttackSpec.autoattack(eps, n_classes, steps=self.apgd_steps, restarts=self.restarts,
                                     target_classes=min(self.target_classes, n_classes - 1),
                                     fab_steps=self.fab_steps, square_queries=self.square_queries)

    def crosscheck_steps(self, pgd_steps: int) -> int:
        """APGD-CE iterations of the torchattacks-vs-ART cross-check: AutoAttack's where it runs, else the study's
        PGD steps (any count compares the two implementations; a config without AutoAttack stays as cheap)."""
        return self.apgd_steps if self.autoattack else pgd_steps

    def skip_reason(self, n_classes: int) -> str:
        """Why :meth:`applies` is false, for the log ("" when it applies)."""
        if not self.autoattack:
            return "robust_eval.autoattack = false"
        if n_classes < MIN_CLASSES:
            return (f"the model has {n_classes} classes; AutoAttack's APGD-T needs at least {MIN_CLASSES} (its DLR "
                    "loss reads the third and fourth largest logits)")
        return ""
