"""The built-in tiny dataset: two related image tasks generated from a seed, no files needed.

It mirrors study 1's structure at a size that trains in seconds on a CPU:
- the *source* task ("photos", like ImageNet-1k) has ``n_source_classes`` classes and is what the demo's Base A is
  pretrained on;
- the *target* task ("renditions", like ImageNet-R) uses a subset of those classes (``target_classes``, like the
  200-class mask) drawn in a different style, so features transfer but the domain shifts.

Each class is a fixed texture: an oriented sinusoidal grating (orientation and frequency set by the class) plus a
weaker random grating, with a class colour. A sample is that
texture shifted, scaled in contrast, and noised. The target style swaps the colour for a per-domain palette, adds
a coarse stripe background and more noise: the shapes (what early blocks learn) transfer, the colours do not.
Generation uses only numpy's PCG64 with explicit seeds, so the same seed gives the same bytes on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class TinySpec:
    """Sizes of the tiny dataset (a profile sets these)."""

    n_source_classes: int = 16
    n_target_classes: int = 8
    image_size: int = 32  # pixels, square
    source_per_class: int = 128  # source-task training images per class
    target_per_class: int = 150  # target-task images per class, before the train/val/test split
    seed: int = 0  # the dataset's own seed: the same data whatever the experiment's seed


def target_classes(spec: TinySpec) -> np.ndarray:
    """Indices of the target classes in the source label space (the tiny analogue of the ImageNet-R mask)."""
    rng = np.random.default_rng([spec.seed, 1])
    return np.sort(rng.choice(spec.n_source_classes, size=spec.n_target_classes, replace=False))


def _class_textures(spec: TinySpec) -> tuple[np.ndarray, np.ndarray]:
    """Per class: a grayscale texture in [-1, 1] (C,S,S) and an RGB colour in [0.2, 0.8] (C,3)."""
    rng = np.random.default_rng([spec.seed, 0])
    s = spec.image_size
    yy, xx = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
    textures = np.zeros((spec.n_source_classes, s, s))
    n_orient = (spec.n_source_classes + 1) // 2
    for c in range(spec.n_source_classes):
        # Classes differ by orientation (evenly spaced) and by one of two spatial frequencies, plus a weaker
        # random second grating, so every class is distinct but not trivially separable.
        theta = np.pi * (c % n_orient) / n_orient
        freq = (2.5 if c < n_orient else 5.0) * 2 * np.pi / s
        textures[c] = np.sin(freq * (np.cos(theta) * xx + np.sin(theta) * yy))
        theta2, freq2 = rng.uniform(0, np.pi), rng.uniform(1.0, 6.0) * 2 * np.pi / s
        textures[c] += 0.4 * np.sin(freq2 * (np.cos(theta2) * xx + np.sin(theta2) * yy) + rng.uniform(0, 6.3))
    textures /= np.abs(textures).max(axis=(1, 2), keepdims=True)
    colours = rng.uniform(0.2, 0.8, size=(spec.n_source_classes, 3))
    return textures, colours


def _render(spec: TinySpec, labels: np.ndarray, style: str, rng: np.random.Generator) -> np.ndarray:
    textures, colours = _class_textures(spec)
    n, s = len(labels), spec.image_size
    shifts = rng.integers(-s // 4, s // 4 + 1, size=(n, 2))
    contrast = rng.uniform(0.6, 1.0, size=(n, 1, 1))
    shape = np.stack([np.roll(textures[c], tuple(sh), axis=(0, 1)) for c, sh in zip(labels, shifts)]) * contrast
    if style == "source":
        colour = colours[labels] + rng.normal(0, 0.05, size=(n, 3))
        images = 0.5 + 0.35 * shape[:, None] * (2 * colour[:, :, None, None] - 1) + 0.15 * shape[:, None]
        noise = 0.08
    else:
        # "Renditions": a palette unrelated to the class, a coarse stripe background, stronger noise.
        palette = rng.uniform(0.2, 0.8, size=(n, 3))
        yy = np.arange(s)[None, :, None]
        stripes = 0.08 * np.sign(np.sin(2 * np.pi * yy / rng.uniform(6, 12, size=(n, 1, 1))))
        images = 0.5 + 0.3 * shape[:, None] * (2 * palette[:, :, None, None] - 1) + 0.2 * shape[:, None]
        images = images + stripes[:, None]
        noise = 0.12
    images = images + rng.normal(0, noise, size=images.shape)
    return np.clip(images, 0.0, 1.0).astype(np.float32)


def make_source(spec: TinySpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The source task's training set: images (N,3,S,S) in [0, 1] and labels in [0, n_source_classes)."""
    rng = np.random.default_rng([spec.seed, 2])
    labels = np.repeat(np.arange(spec.n_source_classes), spec.source_per_class)
    rng.shuffle(labels)
    return torch.from_numpy(_render(spec, labels, "source", rng)), torch.from_numpy(labels).long()


def make_target(spec: TinySpec) -> tuple[torch.Tensor, torch.Tensor]:
    """The target task's pool (split later): images in [0, 1], labels in [0, n_target_classes).

    Target label j is source class ``target_classes(spec)[j]``, as ImageNet-R label j is ImageNet index mask[j].
    """
    rng = np.random.default_rng([spec.seed, 3])
    mask = target_classes(spec)
    labels = np.repeat(np.arange(spec.n_target_classes), spec.target_per_class)
    rng.shuffle(labels)
    images = _render(spec, mask[labels], "target", rng)
    return torch.from_numpy(images), torch.from_numpy(labels).long()


def class_names(spec: TinySpec) -> list[str]:
    """Names for the source classes (the tiny analogue of ImageNet's class names)."""
    return [f"tiny-{c:02d}" for c in range(spec.n_source_classes)]
