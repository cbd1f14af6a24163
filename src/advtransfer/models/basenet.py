"""Study 2's shallow CNN (``BaseNet``, the original's LeNet-style net) for 32x32 CIFAR images.

CIFAR-10: conv 3->6 5x5, ReLU, maxpool 2; conv 6->16 5x5, ReLU, maxpool 2; fc 400->120->84->10.
CIFAR-100 variant: the same convolutions, fc 400->1024->512->100 (SPEC section 3).
"""

from __future__ import annotations

import torch
from torch import nn


class BaseNet(nn.Module):
    def __init__(self, num_classes: int = 10, hidden: tuple[int, int] = (120, 84)) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 6, 5), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * 5 * 5, hidden[0]), nn.ReLU(),
            nn.Linear(hidden[0], hidden[1]), nn.ReLU(),
            nn.Linear(hidden[1], num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def basenet(num_classes: int = 10, seed: int | None = None, wide: bool | None = None) -> BaseNet:
    """BaseNet for CIFAR-10 or its CIFAR-100 variant (``wide``: fc 400->1024->512; default: when num_classes is
    100); seeded init on a private RNG."""
    hidden = (1024, 512) if (num_classes == 100 if wide is None else wide) else (120, 84)
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return BaseNet(num_classes, hidden)
