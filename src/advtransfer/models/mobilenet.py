"""MobileNetV2 for study 1: Base A, BnB, AnB-N (copied and frozen) and AnB+-N (copied and trainable).

Block mapping (SPEC section 2). The original's "first N blocks" are Keras' ``block_1 .. block_N`` after the stem
and the first expanded conv; on torchvision's ``features[0..18]`` (0 = stem conv, 1..17 = inverted-residual
blocks, 18 = final 1x1 conv) N=4 -> features[0..5], N=8 -> [0..9], N=12 -> [0..13], N=16 -> [0..18] (the whole
convolutional base). ``COPIED_FEATURES[N]`` is the number of ``features`` modules copied.

Other torchvision architectures whose ``features`` is a sequence of blocks and whose ``classifier`` ends in a
``Linear`` head (MobileNetV3, EfficientNet, EfficientNetV2, MNASNet, VGG, AlexNet, ConvNeXt, ...) can be Base A
too (study 1's ``base_arch``): there N counts entries of that sequence, ``features[:N]``. :func:`check_block_arch`
refuses, with one line, an architecture without such a sequence (ResNet, ViT, ...) or an N beyond its length.
"""

from __future__ import annotations

import torch
import torchvision
from torch import nn

from ..errors import ConfigError
from .classifier import NORMALIZATION, ImageClassifier

DEFAULT_ARCH = "mobilenet_v2"

COPIED_FEATURES = {4: 6, 8: 10, 12: 14, 16: 19}

# torchvision's default inverted-residual setting (t = expansion, c = channels, n = repeats, s = stride).
_DEFAULT_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 2],
                    [6, 320, 1, 1]]
# The demo's 32 px images: two stride-2 stages made stride 1 (total stride 8), so the last feature map is 4x4
# instead of 1x1. The block count and the features[0..18] layout are unchanged, so the block mapping holds.
_STRIDE8_SETTING = [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 1], [6, 64, 4, 2], [6, 96, 3, 1], [6, 160, 3, 1],
                    [6, 320, 1, 1]]


def build_mobilenet_v2(num_classes: int, width_mult: float = 1.0, stride8: bool = False,
                       seed: int | None = None) -> nn.Module:
    """A randomly initialised torchvision MobileNetV2 (torchvision's own init scheme).

    With ``seed``, the initialisation draws from a private RNG stream (the caller's global RNG is left as it was),
    so the same seed gives the same weights bit for bit.
    """
    setting = _STRIDE8_SETTING if stride8 else _DEFAULT_SETTING
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return torchvision.models.mobilenet_v2(num_classes=num_classes, width_mult=width_mult,
                                               inverted_residual_setting=setting)


def build_base(arch: str, num_classes: int, width_mult: float = 1.0, stride8: bool = False,
               seed: int | None = None) -> nn.Module:
    """A randomly initialised Base A architecture: MobileNetV2 (:func:`build_mobilenet_v2`) or any torchvision
    model :func:`check_block_arch` accepts (torchvision's init, seeded on a private RNG stream)."""
    if arch == DEFAULT_ARCH:
        return build_mobilenet_v2(num_classes, width_mult, stride8, seed=seed)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return torchvision.models.get_model(arch, weights=None, num_classes=num_classes)


def copied_features(arch: str, n_blocks: int) -> int:
    """How many ``features`` modules "the first N blocks" are: MobileNetV2's mapping, else N itself."""
    return COPIED_FEATURES[n_blocks] if arch == DEFAULT_ARCH else n_blocks


def check_block_arch(arch: str, blocks: tuple[int, ...], where: str) -> None:
    """Refuse (ConfigError, one line) a Base A architecture block transfer cannot use: not a torchvision
    classification model, no ``features`` sequence of blocks, no ``classifier`` ending in ``Linear``, or an N
    beyond the number of blocks."""
    if arch == DEFAULT_ARCH:
        return
    from ..config.reader import did_you_mean

    names = torchvision.models.list_models(module=torchvision.models)
    if arch not in names:
        raise ConfigError(f"{where} = {arch!r}: not a torchvision classification model"
                          f"{did_you_mean(arch, names) or ';'} see torchvision.models.list_models()")
    try:
        with torch.device("meta"):  # the architecture only
            net = torchvision.models.get_model(arch, weights=None, num_classes=10)
    except NotImplementedError:  # an init meta tensors cannot run (RegNet): build it for real, it is checked once
        net = torchvision.models.get_model(arch, weights=None, num_classes=10)
    features = getattr(net, "features", None)
    if not isinstance(features, nn.Sequential) or len(features) < 2:
        raise ConfigError(f"{where} = {arch!r}: block transfer copies the first N blocks of the model's `features` "
                          f"sequence, and {arch} has none (its top-level modules: "
                          f"{', '.join(n for n, _ in net.named_children())}); use an architecture with one, e.g. "
                          "mobilenet_v3_small, efficientnet_b0")
    classifier = getattr(net, "classifier", None)
    head = classifier[-1] if isinstance(classifier, nn.Sequential) and len(classifier) else classifier
    if not isinstance(head, nn.Linear):
        raise ConfigError(f"{where} = {arch!r}: its classifier does not end in a Linear layer, so the as-run "
                          "protocol cannot keep Base A's head nor the intended one size it to the target classes")
    too_many = [n for n in blocks if n > len(features)]
    if too_many:
        raise ConfigError(f"{where} = {arch!r}: blocks {too_many} exceed its {len(features)} feature blocks (for "
                          f"architectures other than MobileNetV2, N counts entries of `features`, so N <= "
                          f"{len(features)})")


def wrap(net: nn.Module, normalization: str = "imagenet", **kwargs) -> ImageClassifier:
    mean, std = NORMALIZATION[normalization]
    return ImageClassifier(net, mean, std, **kwargs)


def transfer_model(
    base: ImageClassifier,
    n_blocks: int | None,
    *,
    trainable_copy: bool,
    num_classes: int,
    reinit_rest: bool,
    width_mult: float,
    stride8: bool,
    seed: int,
    arch: str = DEFAULT_ARCH,
) -> ImageClassifier:
    """Build BnB (``n_blocks=None``), AnB-N (``trainable_copy=False``) or AnB+-N (``trainable_copy=True``).

    ``reinit_rest=True`` (intended protocol): a fresh, seeded random MobileNetV2 with a ``num_classes`` head gets
    Base A's first ``COPIED_FEATURES[N]`` feature modules (weights and BatchNorm statistics); everything else keeps
    its random init. ``reinit_rest=False`` (as-run protocol, what the original Keras code did): the model is a full
    copy of Base A, its head included, and nothing is re-initialised; BnB is then Base A itself, fine-tuned.
    ``arch``: Base A's architecture (:func:`build_base`; N counts its ``features`` entries unless MobileNetV2).
    """
    if reinit_rest:
        net = build_base(arch, num_classes, width_mult, stride8, seed=seed)
        if n_blocks is not None:
            k = copied_features(arch, n_blocks)
            net.features[:k].load_state_dict(base.net.features[:k].state_dict())
    else:
        net = build_base(arch, _num_outputs(base.net), width_mult, stride8, seed=seed)
        net.load_state_dict(base.net.state_dict())
    frozen = 0 if (n_blocks is None or trainable_copy) else copied_features(arch, n_blocks)
    return ImageClassifier(net, tuple(base.mean.flatten().tolist()), tuple(base.std.flatten().tolist()),
                           frozen_features=frozen)


def _num_outputs(net: nn.Module) -> int:
    return net.classifier[-1].out_features
