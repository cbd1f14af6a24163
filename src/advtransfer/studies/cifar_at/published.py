"""Numbers published by study 2's write-up (SPEC section 3).

PyTorch 1.7.1 + torchattacks ~3.3, one run, accuracy in % on the CIFAR test set: (clean, PGD, FGSM, NIFGSM,
VMIFGSM). Attacks at eps 8/255 (PGD/NIFGSM/VMIFGSM step 2/255, 10 steps). After adversarial training the original
evaluated examples crafted on the *clean* model (a transfer attack), and its ResNet attacks clamped
ImageNet-normalised tensors to [0, 1] (SPEC section 3): the as-run protocol reproduces both.
"""

from __future__ import annotations

EXP2_ATTACK_ORDER = ("clean", "pgd", "fgsm", "nifgsm", "vmifgsm")
# (experiment, model key, training): numbers. Setting 4's BaseNet is the wide CIFAR-100 variant (fc 400->1024->512).
EXP2_PUBLISHED: dict[tuple[int, str, str], tuple[float, float, float, float, float]] = {
    (1, "basenet", "clean"): (60, 1.02, 3.65, 1.88, 1.09),
    (1, "basenet", "pgd"): (48, 43.04, 43.13, 42.91, 42.59),
    (2, "resnet18_transfer", "clean"): (77, 0.00, 18.76, 2.02, 0.00),
    (2, "resnet18_transfer", "pgd"): (10, 10.06, 10.07, 10.02, 10.00),
    (3, "resnet18_scratch", "clean"): (85, 4.20, 25.06, 9.46, 4.59),
    (3, "resnet18_scratch", "pgd"): (11, 74.38, 74.31, 74.03, 74.00),
    (4, "resnet18_scratch", "clean"): (58, 1.72, 9.63, 3.58, 1.90),
    (4, "basenet", "clean"): (27, 1.17, 2.56, 1.77, 1.39),
}
PUBLISHED_N = 10_000  # the CIFAR test sets
