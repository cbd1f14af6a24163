"""Small helpers shared by the attack backends."""

from __future__ import annotations

import torch
from torch import nn


def model_device(model: nn.Module, x: torch.Tensor) -> torch.device:
    """The device the model lives on (its first parameter or buffer), else the input's."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return x.device
