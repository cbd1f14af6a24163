"""Image files decoded and resized once into a uint8 tensor cache on disk, read back through a memory map.

Why: decoding a JPEG and resizing it costs more CPU than a small model's training step (BaseNet on CIFAR-sized
images), and on a GPU it is the JPEG decoder, not the GPU, that sets the pace (SPEC section 8). The cache turns every
later epoch and every later run into a memory-mapped read plus a ``uint8 -> float`` conversion per batch.

Files (``PATH`` = e.g. ``DATA_ROOT/cache/imagenet-r-1a2b3c4d-224px.bin``):

* ``PATH``: raw bytes, no header. Images uint8 (N, 3, S, S) C-order from offset 0, then labels int64 little-endian
  (N,) from offset ``N * 3 * S * S``. One file, so one checksum covers pixels and labels.
* ``PATH.json`` (the sidecar): format version, the key, the layout, the payload's size and sha256, the class names
  and the sources' relative paths.

The key is a sha256 over the format version, the image size, the resize method, Pillow's version and, for every
source in the order cached (sorted paths for a scanned folder), its path relative to the folder, its label, its size
in bytes and its mtime (ns).
Stat rather than content: the key is computed on every load, and hashing ImageNet-R's 2.2 GB of JPEGs would cost
seconds to minutes per process (each cell of a ``make -j`` or SLURM grid is one) where 30,000 ``stat`` calls cost
well under a second (10,000 cifar10-jpg files: 0.2 s on a busy 2-core machine). Every realistic change (files
added, removed, renamed, re-extracted from another archive, copied over, edited) changes a path, a size or an mtime;
what it misses is an in-place rewrite that keeps both the size and the mtime (``touch -r`` on purpose). The
sources are an extraction verified against a pinned sha256 that the kit never modifies. Pillow's version is in the
key because the cached pixels must equal what :func:`advtransfer.data.images.load_image` decodes now, and a new
Pillow (or its libjpeg) may decode differently.

Two different failures, two different responses:

* **stale** (no cache, key mismatch: sources changed, another size, another format version): rebuilt automatically,
  with a log line. That is the cache doing its job.
* **corrupt** (payload of the wrong size, sha256 mismatch, unreadable sidecar): :class:`~advtransfer.errors.DataError`
  naming the file and the fix (delete it; the next run rebuilds it). The cache was verified when it was written, so
  a damaged one means a disk error or another program writing into it: worth a person's attention, never silent
  wrong data, and never a silent rebuild that would hide a failing disk.

The whole payload is hashed on every open (sha256 runs at about 0.9 GB/s here: 0.2 s for CIFAR-10 train at 32 px,
about 5 s for ImageNet-R at 224 px, which also warms the page cache the memory map reads from).

Writes are atomic: the payload goes to a temporary file in the same folder and is ``os.replace``-d into place, then
the sidecar is written atomically; the old sidecar is removed first, so a crash at any point leaves either no cache
(rebuilt next time) or a complete one, never a sidecar describing other bytes. Decoding runs in a small thread pool
(Pillow releases the GIL while decoding and resizing, which helps on large images) and chunks are written in order,
so the bytes are the same whatever the thread timing; images are in the order given (sorted paths for a scanned
folder).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
import PIL
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..errors import DataError
from ..io import atomic_write, atomic_write_json
from .images import FileImages, TensorImages, scan_image_folder
from .images import subset as _images_subset

__all__ = [
    "FORMAT",
    "RESIZE",
    "CachedImages",
    "augment",
    "cache_file",
    "cached_image_folder",
    "cached_or_files",
    "decode_u8",
    "load_or_build",
    "source_key",
    "subset",
]

# Bumped whenever the layout or the decode changes, so an old cache is rebuilt rather than misread.
FORMAT = 1
# The decode of advtransfer.data.images.load_image, by name: stored in the key and the sidecar.
RESIZE = "PIL convert('RGB') + resize((S, S), BILINEAR), aspect ratio not kept"
_CHUNK = 256  # images decoded per pool task and written per write() call: bounds memory at any image size
_HASH_BLOCK = 1 << 24


def decode_u8(path: Path, size: int) -> np.ndarray:
    """(3, S, S) uint8: exactly :func:`advtransfer.data.images.load_image` before the float division."""
    try:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.uint8)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"cannot read image {path} ({exc}): the file is corrupt; delete it or re-extract the "
                        "dataset") from None
    return arr.transpose(2, 0, 1)


# ------------------------------------------------------------------------------------------------------ key ---


def source_key(root: Path, files: Sequence[Path], labels: np.ndarray, image_size: int) -> str:
    """sha256 over what the cached bytes depend on (see the module docstring for why stat, not content)."""
    digest = hashlib.sha256(json.dumps({"format": FORMAT, "image_size": image_size, "resize": RESIZE,
                                        "pillow": PIL.__version__}, sort_keys=True).encode())
    for file, label in zip(files, labels.tolist()):
        try:
            st = os.stat(file)
        except OSError as exc:
            raise DataError(f"cannot read image {file} ({exc.strerror}); re-extract the dataset") from None
        digest.update(f"\n{_relative(file, root)}\t{label}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    return digest.hexdigest()


def _relative(file: Path, root: Path) -> str:
    try:
        return Path(file).relative_to(root).as_posix()
    except ValueError:
        return Path(file).as_posix()


def cache_file(cache_dir: Path, folder: Path, image_size: int) -> Path:
    """Where the cache of ``folder`` at ``image_size`` lives: ``<cache_dir>/<folder name>-<8 hex>-<S>px.bin``.
    The 8 hex digits (sha256 of the resolved folder path) keep two folders with the same name apart."""
    folder = Path(folder)
    tag = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
    return Path(cache_dir) / f"{folder.name}-{tag}-{image_size}px.bin"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


# ------------------------------------------------------------------------------------------------ datasets ---


class _Pixels:
    """The ``images`` of a :class:`CachedImages`: indexing reads uint8 rows from the memory map and returns float32
    in [0, 1] (on ``device``), so :func:`advtransfer.data.images.batches` slices it like an in-memory tensor."""

    def __init__(self, path: Path, n: int, image_size: int, positions: np.ndarray | None = None,
                 device: torch.device | str | None = None) -> None:
        self.path, self.n, self.image_size = Path(path), n, image_size
        self.positions = np.arange(n, dtype=np.int64) if positions is None else np.asarray(positions, np.int64)
        self.device = torch.device(device) if device is not None else None
        self._map: np.memmap | None = None

    @property
    def array(self) -> np.memmap:
        if self._map is None:  # opened lazily: also after unpickling in a DataLoader worker
            s = self.image_size
            self._map = np.memmap(self.path, dtype=np.uint8, mode="r", shape=(self.n, 3, s, s))
        return self._map

    def __getstate__(self) -> dict:  # a pickled memmap would copy every byte; reopen by path instead
        return {**self.__dict__, "_map": None}

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.positions), 3, self.image_size, self.image_size)

    def u8(self, index) -> torch.Tensor:
        """uint8 (B, 3, S, S) (or (3, S, S) for an int index) on ``device``: for augmenting before the float."""
        if isinstance(index, torch.Tensor):
            index = index.cpu().numpy()
        pos = self.positions[index]
        if np.ndim(pos) == 0:
            out = torch.from_numpy(np.array(self.array[int(pos)]))
        elif len(pos) and np.all(np.diff(pos) == 1):  # a contiguous run (evaluation order): one slice read
            out = torch.from_numpy(np.array(self.array[int(pos[0]):int(pos[-1]) + 1]))
        else:
            out = torch.from_numpy(self.array[pos])  # fancy indexing copies
        return out.to(self.device) if self.device is not None else out

    def __getitem__(self, index) -> torch.Tensor:
        return self.u8(index).float().div_(255.0)  # the same float as load_image: u8 / 255


class CachedImages(TensorImages):
    """Like :class:`~advtransfer.data.images.TensorImages`, backed by a cache file: ``images[idx]`` reads and converts
    one batch (uint8 -> float32 [0, 1], on ``device`` if given), ``images.u8(idx)`` returns the uint8 batch."""

    def __init__(self, pixels: _Pixels, labels: torch.Tensor, classes: list[str], files: list[str],
                 built: bool = False, build_seconds: float = 0.0) -> None:
        super().__init__(pixels, labels)
        self.pixels, self.classes, self.files = pixels, classes, files
        self.built, self.build_seconds = built, build_seconds  # whether this load (re)built the cache, and how long

    @property
    def path(self) -> Path:
        return self.pixels.path

    def select(self, indices: np.ndarray) -> CachedImages:
        """The examples at ``indices``, still on the memory map (nothing is copied but the index and labels)."""
        indices = np.asarray(indices, dtype=np.int64)
        pixels = _Pixels(self.pixels.path, self.pixels.n, self.pixels.image_size, self.pixels.positions[indices],
                         self.pixels.device)
        return CachedImages(pixels, self.labels[torch.as_tensor(indices)], self.classes,
                            [self.files[i] for i in indices.tolist()])


def subset(dataset: Dataset, indices: np.ndarray) -> Dataset:
    """:func:`advtransfer.data.images.subset` that keeps a :class:`CachedImages` on its memory map."""
    if isinstance(dataset, CachedImages):
        return dataset.select(indices)
    return _images_subset(dataset, indices)


# ------------------------------------------------------------------------------------------ build and load ---


def _corrupt(path: Path, reason: str) -> DataError:
    return DataError(f"image cache {path} is corrupt ({reason}). It was complete and verified when it was written, "
                     "so it was damaged afterwards (a disk error, or another program wrote to it). Delete "
                     f"{path} and {_sidecar(path)}: the next run rebuilds it from the source images")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _read_sidecar(path: Path) -> dict | None:
    """The sidecar of a cache whose payload exists; None where there is no cache; DataError if unreadable."""
    side = _sidecar(path)
    if not side.is_file() or not path.is_file():
        return None
    try:
        meta = json.loads(side.read_text())
        if not isinstance(meta, dict):
            raise ValueError("not a JSON object")
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _corrupt(path, f"its sidecar {side} is unreadable: {exc}") from None
    return meta


def _open(path: Path, meta: dict, verify: bool) -> tuple[int, torch.Tensor]:
    """(N, labels) of a cache whose key matched; DataError if the payload is not the one the sidecar describes."""
    try:
        n, s = int(meta["n"]), int(meta["image_size"])
        expected_bytes, expected_sha = int(meta["payload_bytes"]), str(meta["payload_sha256"])
    except (KeyError, TypeError, ValueError) as exc:
        raise _corrupt(path, f"its sidecar lacks a valid field: {exc}") from None
    pixel_bytes = n * 3 * s * s
    size = path.stat().st_size
    if size != expected_bytes or expected_bytes != pixel_bytes + 8 * n:
        raise _corrupt(path, f"{size} bytes, the sidecar says {expected_bytes} and N={n} images at {s} px need "
                             f"{pixel_bytes + 8 * n}")
    if verify:
        actual = _sha256_file(path)
        if actual != expected_sha:
            raise _corrupt(path, f"sha256 {actual}, the sidecar says {expected_sha}")
    labels = np.fromfile(path, dtype="<i8", count=n, offset=pixel_bytes).astype(np.int64)
    return n, torch.from_numpy(labels)


def _build(path: Path, files: Sequence[Path], labels: np.ndarray, image_size: int, workers: int) -> tuple[int, str]:
    """Decode every file into ``path`` atomically; returns (payload bytes, payload sha256)."""
    digest = hashlib.sha256()
    chunks = [list(range(i, min(i + _CHUNK, len(files)))) for i in range(0, len(files), _CHUNK)]

    def decode_chunk(idx: list[int]) -> bytes:
        block = np.empty((len(idx), 3, image_size, image_size), dtype=np.uint8)
        for row, i in enumerate(idx):
            block[row] = decode_u8(files[i], image_size)
        return block.tobytes()

    def write(fh) -> None:
        # In order: chunk k is written k-th whatever the threads' timing, so the bytes are deterministic. At most
        # 2 x workers chunks are in flight, so memory stays bounded whatever the image size.
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            pending: deque[Future[bytes]] = deque()
            try:
                for idx in chunks:
                    pending.append(pool.submit(decode_chunk, idx))
                    if len(pending) >= 2 * max(1, workers):
                        _write_block(fh, digest, pending.popleft().result())
                while pending:
                    _write_block(fh, digest, pending.popleft().result())
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
        tail = np.asarray(labels, dtype="<i8").tobytes()
        digest.update(tail)
        fh.write(tail)

    atomic_write(path, write)
    return len(files) * 3 * image_size * image_size + 8 * len(files), digest.hexdigest()


def _write_block(fh, digest, block: bytes) -> None:
    digest.update(block)
    fh.write(block)


def load_or_build(path: Path, root: Path, files: Sequence[Path], labels: np.ndarray, image_size: int, *,
                  classes: Sequence[str] = (), workers: int | None = None, verify: bool = True,
                  device: torch.device | str | None = None, log: Callable[[str], None] | None = None) -> CachedImages:
    """The images ``files`` (labels ``labels``, relative paths taken from ``root``) at ``image_size``, from the
    cache at ``path``; (re)built first if it is missing or stale. DataError if it is corrupt (see the module
    docstring). ``workers``: decoding threads (default: the CPU count, at most 8)."""
    path, root = Path(path), Path(root)
    files, labels = [Path(f) for f in files], np.asarray(labels, dtype=np.int64)
    if len(files) != len(labels):
        raise ValueError(f"{len(files)} files but {len(labels)} labels")
    if not files:
        raise DataError(f"no images to cache under {root}")
    key = source_key(root, files, labels, image_size)
    meta = _read_sidecar(path)
    rel = [_relative(f, root) for f in files]
    built, seconds = False, 0.0
    if meta is not None and meta.get("format") == FORMAT and meta.get("key") == key:
        n, stored_labels = _open(path, meta, verify)
        if n != len(files) or not torch.equal(stored_labels, torch.from_numpy(labels)):
            raise _corrupt(path, "its labels differ from the ones its key was computed from")
    else:
        if log is not None:
            why = "no cache yet" if meta is None else "its sources, size or format changed"
            log(f"building the image cache {path} ({len(files)} images at {image_size} px; {why})")
        t0 = time.perf_counter()
        _sidecar(path).unlink(missing_ok=True)  # never a sidecar describing other bytes, whatever happens next
        nbytes, sha = _build(path, files, labels, image_size, workers or min(8, os.cpu_count() or 1))
        atomic_write_json(_sidecar(path), {
            "format": FORMAT, "key": key, "n": len(files), "image_size": image_size, "resize": RESIZE,
            "pillow": PIL.__version__, "layout": {"images": ["uint8", [len(files), 3, image_size, image_size], 0],
                                                   "labels": ["<i8", [len(files)], nbytes - 8 * len(files)]},
            "payload_bytes": nbytes, "payload_sha256": sha, "root": str(root), "classes": list(classes),
            "files": rel})
        built, seconds = True, time.perf_counter() - t0
        if log is not None:
            log(f"built the image cache {path} in {seconds:.1f}s ({nbytes / 2**20:.1f} MiB)")
        n = len(files)
    return CachedImages(_Pixels(path, n, image_size, device=device), torch.from_numpy(labels.copy()),
                        list(classes), rel, built, seconds)


def cached_image_folder(folder: Path, image_size: int, cache_dir: Path, **kwargs) -> CachedImages:
    """An ImageFolder tree (``<folder>/<class>/<image>``, scanned as :func:`scan_image_folder` does) from its cache
    under ``cache_dir`` (see :func:`cache_file`); keyword arguments go to :func:`load_or_build`."""
    classes, files, labels = scan_image_folder(folder)
    return load_or_build(cache_file(cache_dir, folder, image_size), folder, files, labels, image_size,
                         classes=classes, **kwargs)


def cached_or_files(cache_dir: Path, folder: Path, files: Sequence[Path], labels: np.ndarray, image_size: int, *,
                    classes: Sequence[str] = (), log: Callable[[str], None] | None = None) -> Dataset:
    """The images of ``folder`` from their cache under ``cache_dir`` (built if missing or stale), or, where the cache
    cannot be written (a read-only data root, a full disk), :class:`~advtransfer.data.images.FileImages` decoding
    the files on the fly, with a warning. Both give the same float pixels; a corrupt cache is a DataError."""
    path = cache_file(cache_dir, folder, image_size)
    try:
        return load_or_build(path, folder, files, labels, image_size, classes=classes, log=log)
    except OSError as exc:
        warnings.warn(f"could not write the image cache {path} ({exc}); the images are decoded from {folder} on "
                      "every epoch instead (slower, same pixels)", stacklevel=2)
        return FileImages(list(files), np.asarray(labels), image_size)


# ----------------------------------------------------------------------------------------------- augmentation ---


def augment(x: torch.Tensor, generator: torch.Generator, *, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """Random crop with ``pad`` pixels of zero padding, then a random horizontal flip, per image of a batch.

    The same distribution as torchvision's ``RandomCrop(S, padding=pad)`` (fill 0) then
    ``RandomHorizontalFlip()``, on a whole (B, C, H, W) batch at once, uint8 or float (the values are only moved,
    so the range is kept). Every draw comes from ``generator`` (on the CPU, or on x's device), so the same
    generator state gives the same batch and the global RNG is never touched.
    """
    if x.ndim != 4:
        raise ValueError(f"augment expects a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    n, _, h, w = x.shape
    gdev = generator.device
    if pad > 0:
        offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=gdev).to(x.device)
        # Every S x S window of the zero-padded batch as a view (B, C, 2 pad + 1, 2 pad + 1, H, W); one advanced
        # index picks each image's window (a per-image loop of slices costs about twice as much at 32 px).
        windows = F.pad(x, (pad, pad, pad, pad)).unfold(2, h, 1).unfold(3, w, 1)
        x = windows[torch.arange(n, device=x.device), :, offsets[0], offsets[1]]
    if flip:
        mask = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(x.device)
        x = torch.where(mask[:, None, None, None], x.flip(3), x)
    return x
