"""Numbers published by the original write-ups (SPEC sections 2 and 3), for tables and figures.

Keys are the kit's stable model keys, so a published number sits next to ours by key.
"""

from __future__ import annotations

# Study 1 (seed 000), Keras MobileNetV2 on ImageNet-R, one run: (natural accuracy, FGSM transfer accuracy at
# eps 0.01 in [-1, 1] input space = 0.005 pixel units). None where the write-up gives no number.
EXP1_PUBLISHED: dict[str, tuple[float, float | None]] = {
    "base_a": (0.2070, None),  # 1000-way ImageNet model scored through the 200-class mask, untrained on ImageNet-R
    "bnb": (0.5907, None),
    "a4b_plus": (0.5965, 0.2592),
    "a4b": (0.5890, 0.2267),
    "a8b_plus": (0.5963, 0.2583),
    "a8b": (0.5727, 0.1932),
    "a12b_plus": (0.5963, 0.2595),
    "a12b": (0.5287, 0.1442),
    "a16b_plus": (0.5965, 0.2613),
    "a16b": (0.4262, 0.0558),
}
EXP1_PUBLISHED_EPS = 0.005  # pixel units

# Study 2 (seed 001), PyTorch 1.7.1 + torchattacks ~3.3, one run, accuracy in % on the CIFAR test set:
# (clean, PGD, FGSM, NIFGSM, VMIFGSM). Attacks at eps 8/255 (PGD/NIFGSM/VMIFGSM step 2/255, 10 steps). After
# adversarial training the original evaluated examples crafted on the *clean* model (a transfer attack), and its
# ResNet attacks clamped ImageNet-normalised tensors to [0, 1] (SPEC section 3): the as-run protocol reproduces both.
EXP2_ATTACK_ORDER = ("clean", "pgd", "fgsm", "nifgsm", "vmifgsm")
EXP2_PUBLISHED: dict[tuple[int, str, str], tuple[float, float, float, float, float]] = {
    # (experiment, model key, training): numbers
    (1, "basenet", "clean"): (60, 1.02, 3.65, 1.88, 1.09),
    (1, "basenet", "pgd"): (48, 43.04, 43.13, 42.91, 42.59),
    (2, "resnet18_transfer", "clean"): (77, 0.00, 18.76, 2.02, 0.00),
    (2, "resnet18_transfer", "pgd"): (10, 10.06, 10.07, 10.02, 10.00),
    (3, "resnet18_scratch", "clean"): (85, 4.20, 25.06, 9.46, 4.59),
    (3, "resnet18_scratch", "pgd"): (11, 74.38, 74.31, 74.03, 74.00),
    (4, "resnet18_scratch", "clean"): (58, 1.72, 9.63, 3.58, 1.90),
    (4, "basenet100", "clean"): (27, 1.17, 2.56, 1.77, 1.39),
}
