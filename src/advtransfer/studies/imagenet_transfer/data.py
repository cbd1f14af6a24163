"""Study 1's data: the target task (ImageNet-R, an ImageFolder of your own, or the built-in tiny analogue) and how it
maps onto Base A's output classes; what a run lacks (``preflight``) and how to fetch it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from ...data import imagenet_r, tiny
from ...data.images import TensorImages, scan_image_folder
from ...data.tensor_cache import cached_or_files
from ...engine.grid import stderr_log
from ...errors import DataError
from ...models import weights
from ..base import Experiment


@dataclass
class Task:
    """The target task and how it maps onto Base A's output classes."""

    pool: Dataset
    items: list[str]
    labels: np.ndarray
    class_names: list[str]  # target classes
    source_indices: np.ndarray  # target label j is Base A's output class source_indices[j] (the 200-class mask)
    source_class_names: list[str]
    class_ids: list[str] = field(default_factory=list)  # target class ids: wnids, or "0".."K-1" for tiny data
    source_train: Dataset | None = None  # tiny only: the source task Base A is pretrained on

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def source_num_classes(self) -> int:
        return len(self.source_class_names)


def user_path(text: str, key: str, exp: Experiment) -> Path:
    """A path from the config, ``~`` expanded; one clear error when it cannot be (an unknown ``~user``)."""
    try:
        return Path(text).expanduser()
    except RuntimeError as exc:
        raise DataError(f"{key} = {text!r} in {exp.source}: {exc}; give an absolute path") from None


def folder_path(exp: Experiment, data_root: Path) -> Path:
    path = user_path(exp.cfg.dataset_path, "dataset_path", exp)
    return path if path.is_absolute() else Path(data_root) / path


def _exists(path: Path, kind: str) -> bool:
    """``path.is_dir()`` / ``is_file()``, where a path the OS cannot even look up (too long) counts as absent."""
    try:
        return path.is_dir() if kind == "dir" else path.is_file()
    except OSError:
        return False


def preflight(exp: Experiment, data_root: Path) -> list[str]:
    """Everything the run needs that is missing, as messages naming the fix (no work done, no network)."""
    cfg, missing = exp.cfg, []
    try:
        if cfg.dataset == "imagenet-r":
            imagenet_r.check(data_root)
    except DataError as exc:
        missing.append(str(exc))
    try:
        if cfg.dataset == "imagefolder" and not _exists(folder_path(exp, data_root), "dir"):
            missing.append(f"image folder {folder_path(exp, data_root)} (dataset_path in {exp.source}) does not "
                           "exist: point dataset_path at an ImageFolder tree <dir>/<wnid>/<images>")
    except DataError as exc:
        missing.append(str(exc))
    try:
        if cfg.base_a.source == "torchvision":
            weights.verify_cached("mobilenet_v2", cfg.base_a.weights)
        elif cfg.base_a.source == "file" and not _exists(user_path(cfg.base_a.path, "base_a.path", exp), "file"):
            missing.append(f"Base A weight file {cfg.base_a.path} (base_a.path in {exp.source}) does not exist")
    except DataError as exc:
        missing.append(str(exc))
    return missing


def fetch(exp: Experiment, data_root: Path) -> list[str]:
    """Download (verified) what ``preflight`` finds missing; returns why each failed download failed."""
    cfg, failures, steps = exp.cfg, [], []
    if cfg.dataset == "imagenet-r" and not imagenet_r.root(data_root).is_dir():
        steps.append(("ImageNet-R", lambda: imagenet_r.fetch(data_root)))
    if cfg.base_a.source == "torchvision":
        steps.append((f"MobileNetV2 {cfg.base_a.weights}", lambda: weights.fetch("mobilenet_v2", cfg.base_a.weights)))
    for name, step in steps:
        try:
            step()
        except DataError as exc:
            failures.append(f"{name}: {str(exc).split('. ')[0]}")
    return failures


def load_task(exp: Experiment, data_root: Path) -> Task:
    cfg = exp.cfg
    if cfg.dataset == "tiny":
        spec = tiny.TinySpec(n_source_classes=cfg.tiny.n_source_classes, n_target_classes=cfg.tiny.n_target_classes,
                             image_size=cfg.image_size, source_per_class=cfg.tiny.source_per_class,
                             target_per_class=cfg.tiny.target_per_class, seed=cfg.tiny.seed)
        images, labels = tiny.make_target(spec)
        mask = tiny.target_classes(spec)
        names = tiny.class_names(spec)
        return Task(TensorImages(images, labels), [f"tiny-target/{i}" for i in range(len(labels))], labels.numpy(),
                    [names[i] for i in mask], mask, names, [str(j) for j in range(len(mask))],
                    TensorImages(*tiny.make_source(spec)))
    folder = imagenet_r.check(data_root) if cfg.dataset == "imagenet-r" else folder_path(exp, data_root)
    class_dirs, files, labels = scan_image_folder(folder)
    indices, wnids = imagenet_r.classes()
    by_wnid = dict(zip(wnids, indices.tolist()))
    unknown = [c for c in class_dirs if c not in by_wnid]
    if unknown:
        raise DataError(f"{folder}: class folders {unknown[:3]} are not ImageNet-R wnids; Base A scores the target "
                        "task through the ImageNet-R class mask, so class folders must be named by wnid "
                        "(n01443537, ...)")
    source_names = list(torchvision_categories())
    mask = np.array([by_wnid[c] for c in class_dirs], dtype=np.int64)
    # Decoded and resized once into a uint8 cache under the data root, keyed by the files and the size; every epoch
    # and every later run reads it through a memory map (same pixels as decoding each file).
    pool = cached_or_files(Path(data_root) / "cache", folder, files, labels, cfg.image_size, classes=class_dirs,
                           log=stderr_log)
    return Task(pool, [str(f.relative_to(folder)) for f in files], labels,
                [source_names[i] for i in mask], mask, source_names, class_dirs)


def torchvision_categories() -> list[str]:
    import torchvision

    return torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]


def figure_label(exp: Experiment, task: Task) -> int:
    """Target label of the eps-choice image class (the original used a space shuttle); label 0 if absent."""
    cfg = exp.cfg
    return task.class_ids.index(cfg.figure_class) if cfg.figure_class in task.class_ids else 0
