"""Study 2's config schema: ``experiments/exp2.toml`` ([experiment] + [common] + [profiles.NAME]) is read into
:class:`Exp2Config` by the kit's one config reader (unknown keys, wrong types, non-finite numbers refused).

Which fields change training is stated once, in :func:`advtransfer.studies.cifar_at.cell.clean_training_inputs`
and :func:`~advtransfer.studies.cifar_at.cell.adversarial_training_inputs`; everything else (evaluation attacks,
AutoAttack's ``robust_eval``, backends, cross-check, evaluation batch size) can change without retraining anything.

Models: the write-up's ``basenet``, ``resnet18_transfer`` and ``resnet18_scratch``, or any torchvision / timm
classifier named ``torchvision:NAME`` (scratch), ``torchvision:NAME@WEIGHTS`` (pretrained, only the head trained),
``timm:NAME`` or ``timm:NAME@TAG`` (:mod:`advtransfer.models.zoo`). A prefixed name is stored as its safe key
(``torchvision-NAME-WEIGHTS``), the name cell keys, results.csv and figures use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal

from ...attacks.autoattack import AutoAttackSettings
from ...config.common import (
    Backends,
    Eps,
    Fraction,
    NonNegativeInt,
    Phase,
    PositiveInt,
    Precision,
    Protocols,
    Schedule,
    Seeds,
)
from ...config.reader import Length, NonEmpty, Range, Unique, did_you_mean
from ...errors import ConfigError
from ...models import zoo

MODELS = ("basenet", "resnet18_transfer", "resnet18_scratch")
TRAININGS = ("clean", "pgd", "nifgsm", "vmifgsm", "fgsm_rs")
Model = Literal["basenet", "resnet18_transfer", "resnet18_scratch"]  # the write-up's; see Setting.models for more
Training = Literal["clean", "pgd", "nifgsm", "vmifgsm", "fgsm_rs"]
ClassCount = Annotated[int, Range(2, 1000)]


@dataclass(frozen=True)
class Setting:
    """One of the write-up's four experiments: a dataset, its models and their trainings."""

    id: Annotated[int, Range(1, 999)]
    dataset: Literal["cifar10", "cifar100"]
    # MODELS, or torchvision:NAME[@WEIGHTS] / timm:NAME[@TAG] (stored as their safe keys, see the module docstring)
    models: Annotated[tuple[str, ...], NonEmpty, Unique]
    trainings: Annotated[tuple[Training, ...], NonEmpty, Unique]

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(zoo.key_of(m) for m in self.models))

    def validate(self, where: str) -> None:
        for i, model in enumerate(self.models):
            if model not in MODELS and zoo.parse(model) is None:
                valid = ", ".join(repr(m) for m in MODELS)
                raise ConfigError(f"{where}.models[{i}] = {model!r}{did_you_mean(model, MODELS) or ';'} valid: "
                                  f"{valid}, or {zoo.SYNTAX}")
        keys = list(self.models)
        repeated = [m for m in dict.fromkeys(keys) if keys.count(m) > 1]
        if repeated:
            raise ConfigError(f"{where}.models: {zoo.parse(repeated[0]).spelled!r} appears twice (as "
                              f"{zoo.parse(repeated[0]).key!r}); each model may appear once")
        if "clean" not in self.trainings:
            raise ConfigError(f"{where}.trainings = {list(self.trainings)!r} must include 'clean' (adversarial "
                              "training starts from the clean model)")


@dataclass(frozen=True)
class ResnetPretrained:
    """Where the "transfer" ResNet-18's backbone comes from."""

    source: Literal["torchvision", "pretrain"] = "torchvision"  # pretrain: trained by the kit on a tiny source task
    weights: Literal["IMAGENET1K_V1"] = "IMAGENET1K_V1"
    classes: ClassCount = 16  # pretrain: classes and images per class of the tiny source task (its own seed)
    per_class: Annotated[int, Range(2, 100_000)] = 64
    seed: NonNegativeInt = 7
    schedule: tuple[Phase, ...] = ()

    def validate(self, where: str) -> None:
        if self.source == "pretrain" and not self.schedule:
            raise ConfigError(f"{where}: source = 'pretrain' needs a schedule ([[...resnet_pretrained.schedule]] "
                              "with optimizer, lr, epochs)")


@dataclass(frozen=True)
class ModelSchedule:
    """One model's own schedules, replacing ``clean_schedule`` / ``adv_schedule`` where given."""

    clean: Annotated[tuple[Phase, ...], Length(1)] | None = None
    adversarial: Annotated[tuple[Phase, ...], Length(1)] | None = None


@dataclass(frozen=True)
class ModelSchedules:
    basenet: ModelSchedule = ModelSchedule()
    resnet18_transfer: ModelSchedule = ModelSchedule()
    resnet18_scratch: ModelSchedule = ModelSchedule()


@dataclass(frozen=True)
class TinyClasses:
    """Classes of the tiny stand-ins for CIFAR-10 and CIFAR-100 (data = "tiny")."""

    cifar10: ClassCount = 10
    cifar100: ClassCount = 20


@dataclass(frozen=True)
class Exp2Config:
    """Study 2, one profile, fully resolved."""

    data: Literal["cifar", "tiny", "cifar10-jpg"]
    batch_size: Annotated[int, Range(1, 65_536)]
    eps: Eps  # 8/255
    step: Eps  # 2/255 (PGD, NIFGSM, VMIFGSM)
    steps: PositiveInt
    clean_schedule: Schedule
    adv_schedule: Schedule
    settings: Annotated[tuple[Setting, ...], NonEmpty]
    protocols: Protocols = ("intended", "as-run")
    seeds: Seeds = (0,)
    eval_batch_size: Annotated[int, Range(1, 65_536)] = 256
    decay: Annotated[float, Range(0, 10)] = 1.0  # NIFGSM / VMIFGSM momentum
    vmi_samples: PositiveInt = 5  # VMIFGSM N
    vmi_beta: Annotated[float, Range(0, 100, lo_open=True)] = 1.5  # VMIFGSM beta
    val: Fraction = 0.1  # intended only: fraction of train held out for validation
    crosscheck_subset: NonNegativeInt = 64
    backends: Backends = ("native",)
    resnet_input_size: Annotated[int, Range(0, 1024)] = 224  # 0: no resize inside the model
    model_schedules: ModelSchedules = ModelSchedules()
    resnet_pretrained: ResnetPretrained = ResnetPretrained()
    tiny_per_class: Annotated[int, Range(5, 100_000)] = 60
    tiny_classes: TinyClasses = TinyClasses()
    train_per_class: NonNegativeInt = 0  # 0: every training image
    precision: Precision = "auto"
    compile: bool = False
    robust_eval: AutoAttackSettings = field(default_factory=AutoAttackSettings)  # AutoAttack (evaluation only)

    def validate(self, where: str) -> None:
        for i, setting in enumerate(self.settings):
            for j, model in enumerate(setting.models):
                arch = zoo.parse(model)
                if arch is not None:
                    zoo.check(arch, f"{where}.settings[{i}].models[{j}]")
        ids = [s.id for s in self.settings]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ConfigError(f"{where}.settings: id {repeated[0]} appears {ids.count(repeated[0])} times; each "
                              "experiment needs its own id (cell keys and result files are named by it)")
        if (self.resnet_pretrained.source == "pretrain") != (self.data == "tiny"):
            raise ConfigError(
                f"{where}.resnet_pretrained.source = {self.resnet_pretrained.source!r} does not fit data "
                f"{self.data!r}: 'pretrain' (a ResNet-18 trained by the kit on a tiny source task) goes with data "
                "'tiny'; real data needs 'torchvision'")

    @property
    def resize(self) -> int | None:
        """ResNet's input size inside the model (None: no resize)."""
        return self.resnet_input_size or None
