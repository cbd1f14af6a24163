"""ResNet-18 for study 2: ImageNet-pretrained with only ``fc`` trained ("transfer"), or from scratch.

:class:`ResNet18` is torchvision's ResNet-18 (same modules, same init, same ``state_dict`` keys, so ImageNet weights
and torchvision checkpoints load as they are) with two study-2 options:

* ``freeze_bn_stats``: every BatchNorm layer stays in inference mode, even under ``.train()``, so its running
  statistics never change. That is what "only fc trained" means in the intended protocol. The original study
  called ``model.train()`` on the frozen backbone, so its BatchNorm layers normalised with batch statistics and
  kept updating their running statistics while only ``fc`` had gradients (the as-run protocol,
  ``freeze_bn_stats=False``).
* ``input_size``: a parameter-free :class:`Resize224` first layer (the original resized CIFAR to 224 for ResNet).
  Inside the model, attacks still act on the 32x32 [0, 1] pixels.

Normalisation: in ``intended`` the net is wrapped in :class:`~advtransfer.models.classifier.ImageClassifier`
(ImageNet mean/std inside, inputs in [0, 1]). The as-run attack path, where normalisation lived outside the model
and torchattacks clamped the *normalised* tensor to [0, 1], is reproduced by :func:`asrun_attack_input` and
:func:`clamp_defect` (study 2's as-run attacks), and
:func:`fraction_destroyed` measures it (recorded in each as-run ResNet cell and reported in the errata).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock, ResNet

from ..errors import DataError
from .classifier import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "FEATURE_DIM",
    "ResNet18",
    "Resize224",
    "asrun_attack_input",
    "build_resnet18",
    "clamp_defect",
    "fraction_destroyed",
    "parameter_count",
    "resnet18_scratch",
    "resnet18_transfer",
    "trainable_parameter_count",
]

FEATURE_DIM = 512  # ResNet-18's pooled feature width, the input of fc
_BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


class Resize224(nn.Module):
    """Bilinear resize to ``size`` x ``size`` (default 224), as a parameter-free first layer of the model.

    ``F.interpolate(mode="bilinear", align_corners=False, antialias=False)``: differentiable, so gradients reach
    the 32x32 input and an attack's eps ball stays in the original pixel grid.
    """

    def __init__(self, size: int = 224) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-2:] == (self.size, self.size):
            return x
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=False)

    def extra_repr(self) -> str:
        return f"size={self.size}"


class ResNet18(ResNet):
    """torchvision's ResNet-18 plus ``freeze_bn_stats`` and an optional resize layer (see the module docstring).

    Construction draws from the RNG exactly as ``torchvision.models.resnet18(num_classes=...)`` does, and the
    resize layer has no parameters or buffers, so ``state_dict`` keys are torchvision's.
    """

    def __init__(self, num_classes: int = 1000, *, input_size: int | None = None,
                 freeze_bn_stats: bool = False) -> None:
        super().__init__(BasicBlock, [2, 2, 2, 2], num_classes=num_classes)
        self.resize = Resize224(input_size) if input_size is not None else nn.Identity()
        self.freeze_bn_stats = freeze_bn_stats
        self.train(self.training)  # apply the BatchNorm freeze now, as construction leaves the model in train mode

    def train(self, mode: bool = True) -> ResNet18:
        super().train(mode)
        if self.freeze_bn_stats:  # inference-mode BatchNorm: running statistics used, never updated
            for module in self.modules():
                if isinstance(module, _BN_TYPES):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.resize(x))


def build_resnet18(num_classes: int, seed: int | None = None, *, input_size: int | None = None,
                   freeze_bn_stats: bool = False) -> ResNet18:
    """A randomly initialised ResNet-18 (torchvision's init scheme).

    With ``seed`` the initialisation draws from a private RNG stream (the caller's global RNG is left as it was),
    and gives the same weights as ``torch.manual_seed(seed); torchvision.models.resnet18(num_classes=...)``.
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return ResNet18(num_classes, input_size=input_size, freeze_bn_stats=freeze_bn_stats)


def _seeded_linear(in_features: int, out_features: int, seed: int | None) -> nn.Linear:
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return nn.Linear(in_features, out_features)


def _load_backbone(net: ResNet18, state_dict: Mapping[str, torch.Tensor]) -> None:
    """Every weight and BatchNorm statistic except ``fc.*``; DataError if the state_dict is not a ResNet-18's."""
    backbone = {k: v for k, v in state_dict.items() if not k.startswith("fc.")}
    try:
        result = net.load_state_dict(backbone, strict=False)
    except RuntimeError as exc:  # shape mismatches are raised even with strict=False
        raise DataError(f"the weights are not a torchvision ResNet-18's: {exc}") from None
    missing = [k for k in result.missing_keys if not k.startswith("fc.")]
    if missing or result.unexpected_keys:
        raise DataError("the weights are not a torchvision ResNet-18's state_dict (missing keys: "
                        f"{missing[:3] or 'none'}, unexpected keys: {result.unexpected_keys[:3] or 'none'}; "
                        "a state_dict saved from a wrapped model has a prefix such as 'net.' to strip first)")


def resnet18_transfer(num_classes: int, state_dict: Mapping[str, torch.Tensor], *, seed: int | None,
                      freeze_bn_stats: bool, input_size: int | None = None) -> ResNet18:
    """ImageNet-pretrained ResNet-18 with a new ``fc`` (the only trainable part): the study's "transfer" model.

    ``state_dict``: the pretrained weights (``weights.load_state_dict("resnet18", "IMAGENET1K_V1")``, or a
    kit-pretrained model's); its ``fc`` is dropped. The new ``fc = Linear(512, num_classes)`` is initialised from
    ``seed`` on a private RNG stream, independently of the backbone. Everything else gets ``requires_grad=False``.

    ``freeze_bn_stats=True`` (intended): BatchNorm stays in inference mode under ``.train()``, so the backbone is
    truly fixed. ``False`` (as-run): ``.train()`` lets BatchNorm use batch statistics and update its running
    statistics, as the original did, although no backbone parameter receives a gradient.
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        net = ResNet18(num_classes, input_size=input_size, freeze_bn_stats=freeze_bn_stats)
    _load_backbone(net, state_dict)
    net.requires_grad_(False)
    net.fc = _seeded_linear(FEATURE_DIM, num_classes, seed)  # new module: trainable
    return net


def resnet18_scratch(num_classes: int, seed: int | None, *, input_size: int | None = None) -> ResNet18:
    """ResNet-18 from random init, every parameter trainable, BatchNorm in its normal train/eval behaviour."""
    return build_resnet18(num_classes, seed, input_size=input_size, freeze_bn_stats=False)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def trainable_parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------------ as-run normalisation


def _stats(values: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-channel values shaped (C, 1, 1), broadcasting over (C, H, W) and (N, C, H, W)."""
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(-1, 1, 1)


def asrun_attack_input(x: torch.Tensor, mean: Sequence[float] | torch.Tensor = IMAGENET_MEAN,
                       std: Sequence[float] | torch.Tensor = IMAGENET_STD) -> torch.Tensor:
    """``z = (x - mean) / std``: the tensor the original's attacks received for ResNet.

    In the original, ``transforms.Normalize`` ran in the data pipeline, so torchattacks was handed ``z`` and a net
    without normalisation. Everything the attack then did happened in normalised units: eps 8/255 in ``z`` is
    8/255 * std ~ 1.8/255 in pixels, and every step ended with ``clamp(z_adv, 0, 1)`` (see :func:`clamp_defect`).
    """
    return (x - _stats(mean, x)) / _stats(std, x)


def clamp_defect(z: torch.Tensor) -> torch.Tensor:
    """``z.clamp(0, 1)``: torchattacks' final clip to the valid *pixel* range, applied to a *normalised* tensor.

    What it destroys: every normalised value below 0, i.e. every pixel darker than the ImageNet channel mean
    (0.485 / 0.456 / 0.406), is pushed up to the mean; every value above 1 (a pixel brighter than mean + std,
    0.714 / 0.680 / 0.631) is pulled down to mean + std. The result is what an attack with eps -> 0 returns, so
    "adversarial" accuracy in the as-run protocol measures this corruption plus the perturbation, and PGD's eps
    ball is centred on the clamped image rather than the natural one. :func:`fraction_destroyed` counts how much
    of an input is affected. The intended path (inputs in [0, 1], normalisation inside the model) never does this.
    """
    return z.clamp(0.0, 1.0)


def fraction_destroyed(x: torch.Tensor, mean: Sequence[float] | torch.Tensor = IMAGENET_MEAN,
                       std: Sequence[float] | torch.Tensor = IMAGENET_STD) -> float:
    """Share of normalised values outside [0, 1], i.e. changed by :func:`clamp_defect` (for the report).

    With ImageNet statistics: about 0.77 for uniform random pixels; 0.72 on 2,000 real CIFAR-10 test images
    (cifar10-jpg, 200 per class), of which 0.48 below 0 (below the mean) and 0.23 above 1 (above mean + std).
    """
    z = asrun_attack_input(x, mean, std)
    return ((z < 0) | (z > 1)).float().mean().item()
