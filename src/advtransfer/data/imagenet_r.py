"""ImageNet-R (Hendrycks et al. 2021): 30,000 renditions of 200 ImageNet classes, and its official class mask.

The archive is pinned by size and sha256 (the checksum tensorflow-datasets publishes), downloaded with resume
into ``DATA_ROOT/downloads/`` and extracted safely to ``DATA_ROOT/imagenet-r/<wnid>/*.jpg``.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import DataError
from .download import download, safe_extract_tar

URL = "https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar"
SIZE = 2_191_079_936
SHA256 = "18c6bf493b39a0d975d48e587437f562caab9c52ae6327dcfa9dd8eb54aa1b52"
N_IMAGES = 30_000


def classes() -> tuple[np.ndarray, list[str]]:
    """The official 200-class mask: ImageNet-1k indices (sorted) and wnids; label j of ImageNet-R is wnids[j]."""
    text = resources.files("advtransfer.resources").joinpath("imagenet_r_classes.tsv").read_text()
    rows = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]
    return np.array([int(i) for i, _ in rows], dtype=np.int64), [w for _, w in rows]


def root(data_root: Path) -> Path:
    return Path(data_root) / "imagenet-r"


def fetch_command(data_root: Path) -> str:
    return f"advtransfer data fetch imagenet-r --data-root {data_root}"


def missing_message(data_root: Path) -> str:
    return (f"ImageNet-R is not under {root(data_root)} (expected 200 class folders n01443537 ... n12267677 with "
            f"30,000 images). `{fetch_command(data_root)}` downloads ({SIZE / 1e9:.1f} GB), verifies and extracts it; "
            f"or download {URL} yourself (sha256 {SHA256}) and extract it into {Path(data_root)}")


def check(data_root: Path) -> Path:
    """The extracted dataset folder; DataError naming the fix if it is missing or incomplete."""
    path = root(data_root)
    if not path.is_dir():
        raise DataError(missing_message(data_root))
    _, wnids = classes()
    missing = [w for w in wnids if not (path / w).is_dir()]
    if missing:
        raise DataError(f"{path} is incomplete: {len(missing)} of 200 class folders are missing "
                        f"(e.g. {missing[0]}). Delete it and run `{fetch_command(data_root)}`")
    return path


def fetch(data_root: Path, progress: bool = True, url: str = URL, sha256: str = SHA256,
          size: int | None = SIZE) -> Path:
    """Download (resumable), verify and safely extract ImageNet-R under ``data_root``; idempotent."""
    data_root = Path(data_root)
    if root(data_root).is_dir():
        return check(data_root)
    if not data_root.exists():
        data_root.mkdir(parents=True)
    archive = download(url, data_root / "downloads" / "imagenet-r.tar", sha256, size=size, progress=progress)
    safe_extract_tar(archive, data_root)
    path = check(data_root)
    archive.unlink()  # 2.2 GB; the verified extraction is what the kit reads
    return path
