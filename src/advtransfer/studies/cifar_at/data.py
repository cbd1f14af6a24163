"""Study 2's data: CIFAR-10/100 (torchvision), the CIFAR-10 JPEG copy, or the built-in tiny stand-ins; what a run
lacks (``preflight``) and how to fetch it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...data import cifar, tiny
from ...data.images import TensorImages, subset
from ...data.splits import stratified_split
from ...errors import DataError
from ...models import weights
from ..base import Experiment


@dataclass
class Data:
    train: TensorImages
    test: TensorImages
    num_classes: int
    test_set: str  # names the test images (equal names: the same images)


def needs_imagenet_weights(exp: Experiment) -> bool:
    cfg = exp.cfg
    return cfg.resnet_pretrained.source == "torchvision" and any("resnet18_transfer" in s.models
                                                                    for s in cfg.settings)


def preflight(exp: Experiment, data_root: Path) -> list[str]:
    cfg, missing = exp.cfg, []
    if cfg.data == "cifar":
        for name in sorted({s.dataset for s in cfg.settings}):
            try:
                cifar.check_cifar(name, data_root)
            except DataError as exc:
                missing.append(str(exc))
    elif cfg.data == "cifar10-jpg":
        root = Path(data_root) / "cifar10-jpg"
        if not (root / "train").is_dir() or not (root / "test").is_dir():
            missing.append(f"the CIFAR-10 JPEG folders {root}/train and {root}/test are missing: "
                           f"`advtransfer data fetch cifar10-jpg --data-root {data_root} --source "
                           "../shared/data/cifar10-jpg` unpacks and verifies them")
    if needs_imagenet_weights(exp):
        try:
            weights.verify_cached("resnet18", cfg.resnet_pretrained.weights)
        except DataError as exc:
            missing.append(str(exc))
    return missing


def fetch(exp: Experiment, data_root: Path) -> list[str]:
    cfg, failures = exp.cfg, []
    for name in sorted({s.dataset for s in cfg.settings}) if cfg.data == "cifar" else []:
        try:
            cifar.fetch_cifar(name, data_root)
        except DataError as exc:
            failures.append(f"{name}: {str(exc).split('. ')[0]}")
    if needs_imagenet_weights(exp):
        try:
            weights.fetch("resnet18", cfg.resnet_pretrained.weights)
        except DataError as exc:
            failures.append(f"ResNet-18 {cfg.resnet_pretrained.weights}: {str(exc).split('. ')[0]}")
    return failures


def load_data(exp: Experiment, dataset: str, data_root: Path, setting: int) -> Data:
    cfg = exp.cfg
    if cfg.data == "tiny":
        # A stand-in for CIFAR: the tiny "photo" task with as many classes as the profile gives the dataset,
        # split 80/20 once with a fixed seed as CIFAR's official train/test split is fixed.
        n_classes = getattr(cfg.tiny_classes, dataset)
        spec = tiny.TinySpec(n_source_classes=n_classes, n_target_classes=1, image_size=32,
                             source_per_class=cfg.tiny_per_class, seed=100 + setting)
        images, labels = tiny.make_source(spec)
        pool = TensorImages(images, labels)
        parts = stratified_split(labels.numpy(), test=0.2, val=0.0, seed=0)
        return Data(subset(pool, np.sort(np.concatenate([parts["train"], parts["val"]]))), subset(pool, parts["test"]),
                    n_classes, f"tiny-{n_classes}c-{cfg.tiny_per_class}pc-seed{100 + setting}")
    if cfg.data == "cifar10-jpg":
        root = Path(data_root) / "cifar10-jpg"
        cache = Path(data_root) / "cache"  # decoded once into the tensor cache, read from it afterwards
        train = cifar.load_image_folder_split(root / "train", limit_per_class=cfg.train_per_class or None, seed=0,
                                              cache_dir=cache)
        test = cifar.load_image_folder_split(root / "test", cache_dir=cache)
        return Data(train, test, len(train.classes), "cifar10-jpg-test")
    train, test = cifar.load_cifar(dataset, data_root, train=True), cifar.load_cifar(dataset, data_root, train=False)
    if cfg.train_per_class:
        idx = stratified_split(train.labels.numpy(), test=0.5, val=0.0, seed=0)["train"]
        train = subset(train, idx[: cfg.train_per_class * len(cifar.class_names(dataset))])
    return Data(train, test, len(cifar.class_names(dataset)), f"{dataset}-test")
