"""Study 1's config schema: ``experiments/exp1.toml`` ([experiment] + [common] + [profiles.NAME]) is read into
:class:`Exp1Config` by the kit's one config reader (unknown keys, wrong types, non-finite numbers refused).

Which fields change training is stated once, in :func:`advtransfer.studies.imagenet_transfer.cell.training_inputs`;
every other field (attacks, eps, figures, backends, cross-check, AutoAttack's ``robust_eval``, evaluation batch
size) can change without retraining anything.
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
from ...config.reader import NonEmpty, Range, SafeName, Unique
from ...errors import ConfigError
from ...models.mobilenet import DEFAULT_ARCH, check_block_arch

DATASETS = ("tiny", "imagenet-r", "imagefolder")
BLOCKS = (4, 8, 12, 16)  # N: the first N inverted-residual blocks (SPEC section 2)
ClassCount = Annotated[int, Range(2, 100_000)]


@dataclass(frozen=True)
class Split:
    test: Fraction = 0.2  # fraction of the pool held out as the test set
    val: Fraction = 0.1  # intended protocol: fraction of the train part held out for validation


@dataclass(frozen=True)
class TinyData:
    """The built-in tiny data: a source task (Base A's "ImageNet") and target "renditions" of some of its classes."""

    n_source_classes: ClassCount = 16
    n_target_classes: ClassCount = 8
    source_per_class: Annotated[int, Range(2, 100_000)] = 96
    target_per_class: Annotated[int, Range(4, 100_000)] = 150
    seed: NonNegativeInt = 0

    def validate(self, where: str) -> None:
        if self.n_target_classes > self.n_source_classes:
            raise ConfigError(f"{where}: n_target_classes = {self.n_target_classes} must be <= n_source_classes = "
                              f"{self.n_source_classes} (the targets are renditions of source classes)")


@dataclass(frozen=True)
class BaseA:
    """Where Base A comes from: torchvision's ImageNet weights, the kit's pretraining on tiny data, or a file."""

    source: Literal["torchvision", "pretrain", "file"]
    weights: Literal["IMAGENET1K_V1", "IMAGENET1K_V2"] = "IMAGENET1K_V1"
    path: str = ""  # source = "file": a MobileNetV2 state_dict (1000 classes)
    normalization: Literal["imagenet", "inception"] = "imagenet"  # inception = mean/std 0.5 (TF-converted weights)
    width_mult: Annotated[float, Range(0.05, 4.0)] = 1.0
    stride8: bool = False  # demo: total stride 8 instead of 32, for 32 px images
    schedule: tuple[Phase, ...] = ()  # source = "pretrain": Base A's training on the tiny source task

    def validate(self, where: str) -> None:
        if self.source == "file" and not self.path:
            raise ConfigError(f"{where}: source = 'file' needs path = 'FILE.pth' (a MobileNetV2 state_dict)")
        if self.source == "pretrain" and not self.schedule:
            raise ConfigError(f"{where}: source = 'pretrain' needs a schedule ([[...base_a.schedule]] with "
                              "optimizer, lr, epochs)")


@dataclass(frozen=True)
class Schedules:
    """Training schedules per model family (SPEC section 2): BnB and AnB 4 epochs of Adam, AnB+ 2 + 2 (RMSprop)."""

    bnb: Schedule
    anb: Schedule
    anb_plus: Schedule


@dataclass(frozen=True)
class Exp1Config:
    """Study 1, one profile, fully resolved."""

    dataset: Literal["tiny", "imagenet-r", "imagefolder"]
    image_size: Annotated[int, Range(8, 1024)]
    batch_size: Annotated[int, Range(1, 65_536)]
    blocks: Annotated[tuple[Literal[4, 8, 12, 16], ...], NonEmpty, Unique]
    eps: Eps  # the main FGSM eps (paper: 0.005 = the original's 0.01 in [-1, 1] space)
    base_a: BaseA
    schedules: Schedules
    protocols: Protocols = ("intended", "as-run")
    seeds: Seeds = (0,)
    dataset_path: str = ""  # dataset = "imagefolder": an ImageFolder tree (absolute, or relative to --data-root)
    eval_batch_size: Annotated[int, Range(1, 65_536)] = 256
    eps_sweep: tuple[Eps, ...] = ()
    figure_eps: tuple[Eps, ...] = ()
    figure_class: str = "0"  # class id of the eps-choice image (a wnid, or a tiny-data target label)
    split: Split = Split()
    tiny: TinyData = TinyData()
    backends: Backends = ("native",)  # attack backends every evaluation runs through
    precision: Precision = "auto"  # training autocast: auto (bf16 on CUDA, fp32 on a CPU), fp32, bf16
    compile: bool = False  # train through torch.compile
    pgd_steps: PositiveInt = 10  # white-box PGD at the main eps: this many steps of eps/4, random start
    crosscheck_subset: NonNegativeInt = 64  # test images per model attacked through all three backends (0: off)
    # AutoAttack, white-box on every model at the main eps, and the APGD-CE iterations of the cross-check
    robust_eval: AutoAttackSettings = field(default_factory=AutoAttackSettings)
    # Base A's torchvision architecture: MobileNetV2 (the original), or any whose `features` is a sequence of blocks
    # (mobilenet_v3_small, efficientnet_b0, ...), N then counting entries of that sequence
    base_arch: SafeName = DEFAULT_ARCH

    def validate(self, where: str) -> None:
        check_block_arch(self.base_arch, self.blocks, f"{where}.base_arch")
        if self.base_arch != DEFAULT_ARCH and (self.base_a.width_mult != 1.0 or self.base_a.stride8):
            raise ConfigError(f"{where}.base_a: width_mult and stride8 are MobileNetV2's; base_arch = "
                              f"{self.base_arch!r} takes neither (leave them unset)")
        if (self.base_a.source == "pretrain") != (self.dataset == "tiny"):
            raise ConfigError(
                f"{where}.base_a.source = {self.base_a.source!r} does not fit dataset {self.dataset!r}: 'pretrain' "
                "(a Base A trained by the kit on the tiny source task) goes with dataset 'tiny'; real data needs "
                "'torchvision' or 'file'")
        if self.dataset == "imagefolder" and not self.dataset_path:
            raise ConfigError(f"{where}: dataset = 'imagefolder' needs dataset_path = 'DIR' (an ImageFolder tree)")

    @property
    def all_eps(self) -> tuple[float, ...]:
        """Every eps evaluated: the sweep plus the main eps, sorted."""
        return tuple(sorted(set(self.eps_sweep) | {self.eps}))


__all__ = ["BLOCKS", "DATASETS", "BaseA", "Exp1Config", "Schedules", "Split", "TinyData"]
