"""CIFAR-10 / CIFAR-100 for study 2, and CIFAR-10 as real JPEG files for CPU-scale checks.

Official data (SPEC section 5: "CIFAR-10/100 through torchvision (its own checksums)"):

* Layout: ``DATA_ROOT/cifar/cifar-10-batches-py/`` (data_batch_1..5, test_batch, batches.meta) and
  ``DATA_ROOT/cifar/cifar-100-python/`` (train, test, meta), exactly what torchvision's ``CIFAR10`` / ``CIFAR100``
  expect with ``root=DATA_ROOT/cifar``. torchvision checks every file's md5 when the dataset is built.
* :func:`fetch_cifar` downloads the archive with torchvision's ``download_url`` (md5-checked), but extracts it with
  the kit's :func:`~advtransfer.data.download.safe_extract_tar` instead of torchvision's plain ``extractall``
  (no path-traversal checks), then lets torchvision verify the extracted files.
* :func:`load_cifar` converts a split once to uint8 (N, 3, 32, 32) + int64 labels and caches that next to the data
  (``DATA_ROOT/cifar/<name>-<split>.pt``), keyed by the sha256 of the split's batch files; a cache whose key does not
  match, or that cannot be read, is rebuilt, never trusted. The cache stores uint8 (154 MB for CIFAR-10 train rather
  than 614 MB as float32); ``u8 / 255`` is exact and the same on every load. It returns float32 images in [0, 1].

Real JPEGs (``../shared/data/cifar10-jpg``, lossy, for integration checks only, never exact robustness numbers):
:func:`prepare_cifar10_jpg` verifies and safely extracts the tarballs, :func:`load_image_folder_split` decodes any
ImageFolder tree into memory.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.datasets.utils
from PIL import Image, UnidentifiedImageError

from ..errors import ConfigError, DataError
from ..io import atomic_torch_save
from .download import safe_extract_tar, sha256_file
from .images import TensorImages, scan_image_folder

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "NAMES",
    "ImageFolderSplit",
    "cache_path",
    "check_cifar",
    "cifar_root",
    "class_names",
    "fetch_cifar",
    "fetch_command",
    "load_cifar",
    "load_image_folder_split",
    "prepare_cifar10_jpg",
]

NAMES = ("cifar10", "cifar100")

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# The official fine-label order of CIFAR-100's ``meta`` file (alphabetical).
CIFAR100_CLASSES = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger",
    "tractor", "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

# Bumped whenever the cache's content or layout changes, so an old cache is rebuilt rather than misread.
_CACHE_FORMAT = 1


@dataclass(frozen=True)
class _Source:
    """What torchvision expects on disk for one dataset (mirrors torchvision.datasets.CIFAR10/CIFAR100)."""

    title: str
    torchvision_class: str
    folder: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    url: str
    archive: str
    archive_mb: int
    classes: tuple[str, ...]

    @property
    def all_files(self) -> tuple[str, ...]:
        return (*self.train_files, *self.test_files, self.meta_file)


_SOURCES = {
    "cifar10": _Source(
        "CIFAR-10", "CIFAR10", "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), "batches.meta",
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz", 163, CIFAR10_CLASSES,
    ),
    "cifar100": _Source(
        "CIFAR-100", "CIFAR100", "cifar-100-python", ("train",), ("test",), "meta",
        "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "cifar-100-python.tar.gz", 161,
        CIFAR100_CLASSES,
    ),
}


def _source(name: str) -> _Source:
    try:
        return _SOURCES[name]
    except KeyError:
        raise ConfigError(f"unknown CIFAR dataset {name!r}; valid: {', '.join(NAMES)}") from None


def _torchvision_dataset(name: str):
    # Looked up at call time (not imported by name) so tests can replace it.
    return getattr(torchvision.datasets, _source(name).torchvision_class)


# ------------------------------------------------------------------------------------------- official CIFAR files


def class_names(name: str) -> list[str]:
    """Class names in label order (label ``i`` is ``class_names(name)[i]``)."""
    return list(_source(name).classes)


def cifar_root(data_root: Path) -> Path:
    """The ``root`` handed to torchvision: ``DATA_ROOT/cifar``."""
    return Path(data_root) / "cifar"


def fetch_command(name: str, data_root: Path) -> str:
    return f"advtransfer data fetch {name} --data-root {data_root}"


def _missing_message(name: str, data_root: Path, missing: Sequence[str]) -> str:
    src = _source(name)
    folder = cifar_root(data_root) / src.folder
    return (f"{src.title} is not under {folder}/ (missing: {', '.join(missing)}). "
            f"`{fetch_command(name, data_root)}` downloads it ({src.archive_mb} MB) through torchvision, which "
            f"verifies its md5 checksums, and extracts it there; or download {src.url} yourself and extract it "
            f"into {cifar_root(data_root)}/")


def check_cifar(name: str, data_root: Path) -> Path:
    """The dataset folder if every file torchvision needs is present; DataError naming the fix otherwise.

    Only presence is checked here; torchvision checks the md5s when the dataset is built.
    """
    folder = cifar_root(data_root) / _source(name).folder
    missing = [f for f in _source(name).all_files if not (folder / f).is_file()]
    if missing:
        raise DataError(_missing_message(name, data_root, missing))
    return folder


def cache_path(name: str, data_root: Path, train: bool) -> Path:
    return cifar_root(data_root) / f"{name}-{'train' if train else 'test'}.pt"


def _source_key(name: str, data_root: Path, train: bool) -> str:
    """sha256 over the cache format and the split's batch files (names and contents)."""
    src = _source(name)
    folder = cifar_root(data_root) / src.folder
    digest = hashlib.sha256(f"advtransfer-cifar-cache:{_CACHE_FORMAT}:{name}:{train}".encode())
    for file in src.train_files if train else src.test_files:
        digest.update(f"\n{file}:{sha256_file(folder / file)}".encode())
    return digest.hexdigest()


def _read_cache(path: Path, key: str, num_classes: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(uint8 images, int64 labels) from a cache that matches ``key`` and is well-formed; None otherwise."""
    if not path.is_file():
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # truncated, corrupt, not a torch file: rebuilt, so the reason does not matter
        return None
    if not isinstance(obj, dict) or obj.get("format") != _CACHE_FORMAT or obj.get("key") != key:
        return None
    images, labels = obj.get("images"), obj.get("labels")
    if not (isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor)):
        return None
    if (images.dtype != torch.uint8 or images.ndim != 4 or tuple(images.shape[1:]) != (3, 32, 32)
            or labels.dtype != torch.int64 or labels.shape != (images.shape[0],)):
        return None
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        return None
    return images, labels


def _build_from_torchvision(name: str, data_root: Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    folder = cifar_root(data_root) / _source(name).folder
    try:
        dataset = _torchvision_dataset(name)(root=str(cifar_root(data_root)), train=train, download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted" (an md5 did not match)
        raise DataError(f"{_source(name).title} under {folder}/ failed torchvision's md5 check ({exc}): the files "
                        f"are corrupt or incomplete. Delete {folder} and run `{fetch_command(name, data_root)}`") \
            from None
    data = np.asarray(dataset.data, dtype=np.uint8)  # (N, 32, 32, 3) HWC
    images = torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(np.asarray(dataset.targets, dtype=np.int64))
    return images, labels


def load_cifar(name: str, data_root: Path, train: bool) -> TensorImages:
    """The official train or test split as float32 (N, 3, 32, 32) images in [0, 1] and int64 labels.

    The first call reads the batch files through torchvision (which checks their md5s) and writes the uint8 cache;
    later calls read the cache if its key (sha256 of the batch files) still matches. A data root that cannot be
    written (e.g. a read-only mount) only costs the cache: a warning, and the data are returned anyway.
    """
    check_cifar(name, data_root)
    key = _source_key(name, data_root, train)
    path = cache_path(name, data_root, train)
    cached = _read_cache(path, key, len(_source(name).classes))
    if cached is None:
        images, labels = _build_from_torchvision(name, data_root, train)
        try:
            atomic_torch_save(path, {"format": _CACHE_FORMAT, "key": key, "images": images, "labels": labels})
        except OSError as exc:
            warnings.warn(f"could not write the {name} cache {path} ({exc}); the data are read from the batch "
                          "files on every load", stacklevel=2)
    else:
        images, labels = cached
    return TensorImages(images.float().div_(255.0), labels)


def fetch_cifar(name: str, data_root: Path) -> Path:
    """Download, verify and extract CIFAR-10/100 into ``DATA_ROOT/cifar`` unless it is already there; idempotent.

    The archive is fetched with torchvision's ``download_url`` (its pinned md5), extracted safely, verified again
    file by file by torchvision's dataset class, and then deleted. Network failures become a DataError.
    """
    src = _source(name)
    root = cifar_root(data_root)
    folder = root / src.folder
    if folder.is_dir():
        missing = [f for f in src.all_files if not (folder / f).is_file()]
        if missing:
            raise DataError(f"{folder}/ is incomplete (missing: {', '.join(missing)}). Delete {folder} and run "
                            f"`{fetch_command(name, data_root)}` again")
        _verify_with_torchvision(name, data_root)
        return folder
    archive = root / src.archive
    root.mkdir(parents=True, exist_ok=True)
    try:
        torchvision.datasets.utils.download_url(src.url, str(root), filename=src.archive,
                                                md5=_torchvision_dataset(name).tgz_md5)
    except (OSError, RuntimeError) as exc:  # URLError/HTTPError/timeouts are OSErrors; md5 mismatch: RuntimeError
        raise DataError(f"could not download {src.title} from {src.url}: {exc}. Check the network connection (and "
                        f"proxy settings) and run `{fetch_command(name, data_root)}` again; or download the file "
                        f"yourself on a machine with internet access and extract it into {root}/") from None
    safe_extract_tar(archive, root)
    check_cifar(name, data_root)
    _verify_with_torchvision(name, data_root)
    archive.unlink(missing_ok=True)  # the verified extraction is what the kit reads
    return folder


def _verify_with_torchvision(name: str, data_root: Path) -> None:
    folder = cifar_root(data_root) / _source(name).folder
    try:
        _torchvision_dataset(name)(root=str(cifar_root(data_root)), train=False, download=False)
    except RuntimeError as exc:
        raise DataError(f"{_source(name).title} under {folder}/ failed torchvision's md5 check ({exc}). Delete "
                        f"{folder} and run `{fetch_command(name, data_root)}` again") from None


# ------------------------------------------------------------------------------------------ ImageFolder into memory


class ImageFolderSplit(TensorImages):
    """A decoded ImageFolder tree: ``images`` float32 (N, 3, S, S) in [0, 1], ``labels`` int64, plus the class
    names (sorted folder names, label order) and the source file of every image."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: list[str], files: list[Path]) -> None:
        super().__init__(images, labels)
        self.classes, self.files = classes, files


def _decode_u8(path: Path, size: int) -> np.ndarray:
    """(S, S, 3) uint8: the same decode as :func:`advtransfer.data.images.load_image`, before the float division."""
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (size, size):
                im = im.resize((size, size), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {path} ({exc}): the file is corrupt; delete it or re-extract the "
                        "dataset") from None


def load_image_folder_split(path: Path, image_size: int = 32, limit_per_class: int | None = None,
                            seed: int = 0, cache_dir: Path | None = None) -> ImageFolderSplit:
    """Decode an ImageFolder tree (``<path>/<class>/<image>``) into memory.

    Classes are the sorted folder names (for ``cifar10-jpg`` that is the official CIFAR-10 label order). With
    ``limit_per_class=K``, each class keeps the first K of its files after a permutation drawn from
    ``numpy.random.default_rng(seed)`` (classes in label order, one permutation each): deterministic for a seed,
    independent of the global RNGs. Images stay in class, then file-name order.

    Decoding is a plain loop: 32x32 JPEGs decode at several thousand per second per core, so a process pool would
    cost more to start than it saves. With ``cache_dir``, the chosen images are decoded once into the tensor cache
    there (:mod:`advtransfer.data.tensor_cache`, keyed by the files, the selection and the size) and later calls
    read it instead: the same pixels.
    """
    if limit_per_class is not None and limit_per_class < 1:
        raise ValueError(f"limit_per_class must be >= 1 or None, got {limit_per_class}")
    classes, files, labels = scan_image_folder(path)
    if limit_per_class is not None:
        rng = np.random.default_rng(seed)
        keep = []
        for label in range(len(classes)):
            idx = np.flatnonzero(labels == label)
            keep.append(idx[rng.permutation(len(idx))[:limit_per_class]])
        chosen = np.sort(np.concatenate(keep))
        files, labels = [files[i] for i in chosen], labels[chosen]
    if cache_dir is not None:
        from .tensor_cache import cache_file, load_or_build

        target = cache_file(cache_dir, path, image_size)
        if limit_per_class is not None:  # one file per selection, so two selections do not rebuild each other's
            target = target.with_name(f"{target.stem}-{limit_per_class}pc-s{seed}.bin")
        images = load_or_build(target, path, files, labels, image_size, classes=classes).images[:]
        return ImageFolderSplit(images, torch.from_numpy(labels), classes, files)
    pixels = np.empty((len(files), image_size, image_size, 3), dtype=np.uint8)
    for i, file in enumerate(files):
        pixels[i] = _decode_u8(file, image_size)
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255.0).contiguous()
    return ImageFolderSplit(images, torch.from_numpy(labels), classes, files)


# --------------------------------------------------------------------------------------- cifar10-jpg (shared data)

CIFAR10_JPG_ARCHIVES = {"train": "cifar10-jpg-train.tar.gz", "test": "cifar10-jpg-test.tar.gz"}


def _read_sha256sums(path: Path) -> dict[str, str]:
    """``sha256sum`` output (``<hex>  <name>`` or ``<hex> *<name>``) as {name: hex}."""
    if not path.is_file():
        raise DataError(f"checksum file {path} does not exist; it must sit beside the cifar10-jpg tarballs "
                        "(one `<sha256>  <file name>` line per tarball)")
    sums = {}
    for line in path.read_text().splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2:
            sums[parts[1].lstrip("*").strip()] = parts[0].lower()
    return sums


def prepare_cifar10_jpg(shared_dir: Path, data_root: Path,
                        splits: Sequence[str] = ("train", "test")) -> Path:
    """Verify and safely extract the cifar10-jpg tarballs from ``shared_dir`` into ``DATA_ROOT/cifar10-jpg``.

    Returns that folder, which then holds ``train/`` and/or ``test/`` (ImageFolder trees). Idempotent: a split whose
    folder already exists is left alone (extraction moves a split's folder into place only once it is complete).
    Every archive to be extracted is checked against ``SHA256SUMS`` first; one mismatch and nothing is extracted.
    """
    shared_dir, target = Path(shared_dir), Path(data_root) / "cifar10-jpg"
    unknown = [s for s in splits if s not in CIFAR10_JPG_ARCHIVES]
    if unknown:
        raise ConfigError(f"unknown cifar10-jpg split {unknown[0]!r}; valid: {', '.join(CIFAR10_JPG_ARCHIVES)}")
    todo = [s for s in dict.fromkeys(splits) if not (target / s).is_dir()]
    if not todo:
        return target
    for split in todo:
        archive = shared_dir / CIFAR10_JPG_ARCHIVES[split]
        if not archive.is_file():
            raise DataError(f"{archive} does not exist: cifar10-jpg expects {', '.join(CIFAR10_JPG_ARCHIVES.values())} "
                            f"and SHA256SUMS in {shared_dir} (see the README there)")
    sums = _read_sha256sums(shared_dir / "SHA256SUMS")
    for split in todo:
        archive = shared_dir / CIFAR10_JPG_ARCHIVES[split]
        expected = sums.get(archive.name)
        if expected is None:
            raise DataError(f"{shared_dir / 'SHA256SUMS'} has no line for {archive.name}; nothing was extracted")
        actual = sha256_file(archive)
        if actual != expected:
            raise DataError(f"checksum mismatch for {archive}: expected sha256 {expected}, got {actual}. The file is "
                            f"corrupt or was replaced; nothing was extracted. Copy it again from its source")
    for split in todo:
        safe_extract_tar(shared_dir / CIFAR10_JPG_ARCHIVES[split], target)
        if not (target / split).is_dir():
            raise DataError(f"{shared_dir / CIFAR10_JPG_ARCHIVES[split]} did not contain a top-level {split}/ folder "
                            f"(expected {split}/<class>/<NNNN>.jpg); it is not a cifar10-jpg archive")
    return target
