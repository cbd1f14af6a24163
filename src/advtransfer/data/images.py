"""Datasets the training and evaluation loops read: in-memory tensors (tiny data) or image files (ImageFolder).

Both yield ``(image, label)`` with images as float32 (3, S, S) in [0, 1]. Image files are resized straight to
S x S (bilinear, aspect ratio not kept), as Keras' ``image_dataset_from_directory`` did in the original study.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import DataLoader, Dataset

from ..errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")


class TensorImages(Dataset):
    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i], self.labels[i]


class FileImages(Dataset):
    def __init__(self, paths: Sequence[Path], labels: np.ndarray, image_size: int) -> None:
        self.paths, self.labels, self.image_size = list(paths), torch.as_tensor(labels), image_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return load_image(self.paths[i], self.image_size), self.labels[i]


def load_image(path: Path, size: int) -> torch.Tensor:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB").resize((size, size), Image.BILINEAR)
            arr = np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {path} ({exc}): the file is corrupt; delete it or re-extract the "
                        "dataset") from None
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def scan_image_folder(path: Path) -> tuple[list[str], list[Path], np.ndarray]:
    """An ImageFolder tree: sorted class folders, sorted image files; returns (class names, files, labels)."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"image folder {path} does not exist (expected {path}/<class>/<image files>)")
    class_dirs = sorted(d for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    files, labels = [], []
    for label, d in enumerate(class_dirs):
        for f in sorted(d.rglob("*")):
            if f.suffix.lower() in IMAGE_EXTENSIONS and f.is_file():
                files.append(f)
                labels.append(label)
    if not files:
        raise DataError(f"image folder {path} holds no images (expected {path}/<class>/<image files>, extensions "
                        f"{', '.join(IMAGE_EXTENSIONS)})")
    return [d.name for d in class_dirs], files, np.asarray(labels, dtype=np.int64)


def subset(dataset: Dataset, indices: np.ndarray) -> Dataset:
    idx = torch.as_tensor(indices, dtype=torch.long)
    if isinstance(dataset, TensorImages):
        return TensorImages(dataset.images[idx], dataset.labels[idx])
    if isinstance(dataset, FileImages):
        return FileImages([dataset.paths[i] for i in indices], dataset.labels[idx].numpy(), dataset.image_size)
    raise TypeError(type(dataset))


def batches(dataset: Dataset, batch_size: int, order: torch.Tensor | None = None,
            workers: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Batches in ``order`` (default: dataset order). In-memory tensors are sliced directly (no per-item
    overhead); image files go through a DataLoader with ``workers`` decoding processes."""
    order = torch.arange(len(dataset)) if order is None else order
    if isinstance(dataset, TensorImages):
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield dataset.images[idx], dataset.labels[idx]
        return
    chunks = [order[s:s + batch_size].tolist() for s in range(0, len(order), batch_size)]
    yield from DataLoader(dataset, batch_sampler=chunks, num_workers=workers, persistent_workers=False)
