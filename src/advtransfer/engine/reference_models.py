"""Small trained models for the cross-check and the attack benchmark, built on the tiny data in seconds.

Cross-checks need *trained* models: on a randomly initialised one, input gradients can be ~1e-12 and a different
loss scale flips their sign (SPEC section 4).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ..config.common import Phase
from ..data import tiny
from ..data.images import TensorImages
from ..models.basenet import basenet
from ..models.classifier import ImageClassifier
from ..models.mobilenet import build_mobilenet_v2, wrap
from .train import fit

REFERENCE_MODELS = ("small-cnn", "mobilenet-demo")
_DATA = tiny.TinySpec(n_source_classes=10, n_target_classes=2, image_size=32, source_per_class=64, seed=0)


def reference_model(name: str, seed: int = 0, device: torch.device | None = None
                    ) -> tuple[ImageClassifier, torch.Tensor, torch.Tensor]:
    """A model trained on the tiny 10-class source task, and held-out images and labels from the same task."""
    device = device or torch.device("cpu")
    images, labels = tiny.make_source(_DATA)
    n_test = 256
    train = TensorImages(images[n_test:], labels[n_test:])
    if name == "small-cnn":
        model = wrap(basenet(10, seed=seed))
        schedule = (Phase("adam", 3e-3, 6),)
    elif name == "mobilenet-demo":
        model = wrap(build_mobilenet_v2(10, width_mult=0.25, stride8=True, seed=seed))
        schedule = (Phase("adam", 5e-3, 4),)
    else:
        raise ValueError(f"unknown reference model {name!r}; valid: {', '.join(REFERENCE_MODELS)}")
    with tempfile.TemporaryDirectory() as tmp:
        fit(model, schedule, train, None, seed=seed, batch_size=32, ckpt_dir=Path(tmp), fingerprint=name,
            device=device, log=lambda m: None)
    return model.eval(), images[:n_test].to(device), labels[:n_test].to(device)
