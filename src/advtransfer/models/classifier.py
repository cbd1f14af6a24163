"""A classifier that takes [0, 1] images: normalisation lives inside the model, so eps is always in pixel units.

:class:`ImageClassifier` wraps a network with
- mean/std buffers (the attack sees [0, 1] pixels, never normalised tensors: the original study 2 clamped
  normalised tensors to [0, 1], a defect this design makes impossible in ``intended``);
- optional ``output_indices``: keep only these logits (Base A scored on ImageNet-R through the 200-class mask);
- ``frozen_features``: the first k ``net.features`` modules are frozen. Frozen means no gradient *and* BatchNorm in
  inference mode, as Keras does for ``trainable = False``: their running statistics never change.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# TF-slim / Keras MobileNetV2 input scaling x * 2 - 1, as mean/std on [0, 1] pixels.
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)
NORMALIZATION = {"imagenet": (IMAGENET_MEAN, IMAGENET_STD), "inception": (INCEPTION_MEAN, INCEPTION_STD)}


class ImageClassifier(nn.Module):
    def __init__(
        self,
        net: nn.Module,
        mean: tuple[float, ...] = IMAGENET_MEAN,
        std: tuple[float, ...] = IMAGENET_STD,
        output_indices: torch.Tensor | None = None,
        frozen_features: int = 0,
    ) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        if output_indices is not None:
            self.register_buffer("output_indices", torch.as_tensor(output_indices, dtype=torch.long))
        else:
            self.output_indices = None
        self.frozen_features = frozen_features
        self._apply_freeze()

    def _frozen_modules(self) -> list[nn.Module]:
        return list(self.net.features[: self.frozen_features]) if self.frozen_features else []

    def _apply_freeze(self) -> None:
        for module in self._frozen_modules():
            module.requires_grad_(False)
            module.eval()

    def train(self, mode: bool = True) -> ImageClassifier:
        super().train(mode)
        for module in self._frozen_modules():  # frozen blocks stay in inference mode, even in training
            module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.net((x - self.mean) / self.std)
        if self.output_indices is not None:
            logits = logits.index_select(1, self.output_indices)
        return logits

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
