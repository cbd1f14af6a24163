"""ImageNet-R: the official 200-class mask, the dataset check and the offline end-to-end fetch.

The fetch test serves a small stand-in archive (the real layout, 200 wnid folders, one 8x8 JPEG each) from a
LocalFileServer on 127.0.0.1; nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))  # tests/ holds the shared httpserver helper

from advtransfer.data import imagenet_r
from advtransfer.errors import DataError
from advtransfer.models.classifier import ImageClassifier
from httpserver import LocalFileServer

REPO = Path(__file__).resolve().parents[1]
META = REPO.parent / "shared" / "data" / "imagenet-meta"
FETCH_COMMAND = "advtransfer data fetch imagenet-r"


# ------------------------------------------------------------------------------------------------- the mask


def test_classes_are_200_sorted_wnids_with_increasing_indices() -> None:
    indices, wnids = imagenet_r.classes()
    assert len(wnids) == 200 and len(set(wnids)) == 200
    assert wnids == sorted(wnids)
    assert all(len(w) == 9 and w[0] == "n" and w[1:].isdigit() for w in wnids)
    assert isinstance(indices, np.ndarray) and indices.shape == (200,)
    assert np.issubdtype(indices.dtype, np.integer)
    assert (np.diff(indices) > 0).all()
    assert indices.min() >= 0 and indices.max() < 1000


@pytest.mark.parametrize(("index", "wnid"), [(812, "n04266014"), (437, "n02814860")], ids=["shuttle", "beacon"])
def test_known_classes(index: int, wnid: str) -> None:
    indices, wnids = imagenet_r.classes()
    assert wnid in wnids
    assert int(indices[wnids.index(wnid)]) == index


def test_first_and_last_class() -> None:
    indices, wnids = imagenet_r.classes()
    assert (wnids[0], wnids[-1]) == ("n01443537", "n12267677")  # the folders missing_message() names
    assert int(indices[0]) == 1


@pytest.mark.realdata
def test_classes_match_official_list() -> None:
    wnid_file, index_file = META / "imagenet_r_wnids.txt", META / "imagenet_r_indices.txt"
    if not (wnid_file.is_file() and index_file.is_file()):
        pytest.skip(f"official ImageNet-R class lists not found under {META}")
    official_wnids = wnid_file.read_text().split()
    official_indices = [int(v) for v in index_file.read_text().split()]
    indices, wnids = imagenet_r.classes()
    assert wnids == official_wnids
    assert indices.tolist() == official_indices


@pytest.mark.realdata
def test_classes_match_imagenet_1k_order() -> None:
    order_file = META / "imagenet_1k_wnids_sorted.txt"
    if not order_file.is_file():
        pytest.skip(f"ImageNet-1k wnid list not found under {META}")
    imagenet_wnids = order_file.read_text().split()
    indices, wnids = imagenet_r.classes()
    assert [imagenet_wnids[i] for i in indices.tolist()] == wnids


class _Fixed(nn.Module):
    """Ignores its input and returns preset logits."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__()
        self.logits = logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits


def test_mask_keeps_logits_in_imagenet_r_label_order() -> None:
    indices, wnids = imagenet_r.classes()
    logits = torch.randn(6, 1000, generator=torch.Generator().manual_seed(0))
    model = ImageClassifier(_Fixed(logits), output_indices=torch.as_tensor(indices))
    out = model(torch.rand(6, 3, 4, 4))
    assert out.shape == (6, 200)
    assert torch.equal(out, logits[:, torch.as_tensor(indices)])
    # ImageNet-R label j is wnids[j]: the space-shuttle logit (ImageNet index 812) is column wnids.index(...).
    j = wnids.index("n04266014")
    assert torch.equal(out[:, j], logits[:, 812])
    # np.ndarray indices work as well as tensors.
    assert torch.equal(ImageClassifier(_Fixed(logits), output_indices=indices)(torch.rand(6, 3, 4, 4)), out)


# ------------------------------------------------------------------------------------------------ check()


def test_check_missing_folder_names_fetch_command(tmp_path: Path) -> None:
    data_root = tmp_path / "data"
    with pytest.raises(DataError) as info:
        imagenet_r.check(data_root)
    message = str(info.value)
    assert FETCH_COMMAND in message
    assert str(data_root / "imagenet-r") in message


def test_check_incomplete_folder(tmp_path: Path) -> None:
    _, wnids = imagenet_r.classes()
    for wnid in wnids[:150]:
        (tmp_path / "imagenet-r" / wnid).mkdir(parents=True)
    with pytest.raises(DataError) as info:
        imagenet_r.check(tmp_path)
    message = str(info.value)
    assert "incomplete" in message
    assert FETCH_COMMAND in message
    assert wnids[150] in message  # names a missing class


def test_check_complete_folder(tmp_path: Path) -> None:
    _, wnids = imagenet_r.classes()
    for wnid in wnids:
        (tmp_path / "imagenet-r" / wnid).mkdir(parents=True)
    assert imagenet_r.check(tmp_path) == tmp_path / "imagenet-r"


# -------------------------------------------------------------------------------------------- fetch() offline


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes | None = None) -> None:
    info = tarfile.TarInfo(name)
    if data is None:
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
    else:
        info.size, info.mode = len(data), 0o644
        tar.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def archive() -> bytes:
    """A stand-in imagenet-r.tar: top folder imagenet-r/, 200 wnid folders with one tiny JPEG each."""
    _, wnids = imagenet_r.classes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "imagenet-r")
        for i, wnid in enumerate(wnids):
            _add(tar, f"imagenet-r/{wnid}")
            _add(tar, f"imagenet-r/{wnid}/art_{i}.jpg", _jpeg(i))
    return buf.getvalue()


@pytest.fixture
def server() -> Iterator[LocalFileServer]:
    with LocalFileServer() as srv:
        yield srv


def test_fetch_end_to_end(server: LocalFileServer, archive: bytes, tmp_path: Path) -> None:
    url = server.add("imagenet-r.tar", archive)
    data_root = tmp_path / "data"  # created by fetch
    sha = hashlib.sha256(archive).hexdigest()

    path = imagenet_r.fetch(data_root, progress=False, url=url, sha256=sha, size=len(archive))

    assert path == data_root / "imagenet-r"
    assert imagenet_r.check(data_root) == path
    _, wnids = imagenet_r.classes()
    assert sorted(p.name for p in path.iterdir()) == wnids
    for i, wnid in enumerate(wnids[:5]):
        image = path / wnid / f"art_{i}.jpg"
        assert image.read_bytes() == _jpeg(i)
        with Image.open(image) as im:
            assert im.size == (8, 8)
    assert not (data_root / "downloads" / "imagenet-r.tar").exists()  # the archive is removed after extraction
    assert not list((data_root / "downloads").glob("*"))  # no .part left either
    assert len(server.requests) == 1

    # Idempotent: a second fetch finds the verified tree and asks nothing of the server.
    assert imagenet_r.fetch(data_root, progress=False, url=url, sha256=sha, size=len(archive)) == path
    assert len(server.requests) == 1


def test_fetch_wrong_sha256_extracts_nothing(server: LocalFileServer, archive: bytes, tmp_path: Path) -> None:
    url = server.add("imagenet-r.tar", archive)
    data_root = tmp_path / "data"
    wrong = hashlib.sha256(archive + b"x").hexdigest()

    with pytest.raises(DataError, match=r"(?i)checksum|sha256"):
        imagenet_r.fetch(data_root, progress=False, url=url, sha256=wrong, size=len(archive))

    assert not (data_root / "imagenet-r").exists()
    assert not (data_root / "downloads" / "imagenet-r.tar").exists()
    with pytest.raises(DataError):
        imagenet_r.check(data_root)


def test_fetch_wrong_size_extracts_nothing(server: LocalFileServer, archive: bytes, tmp_path: Path) -> None:
    url = server.add("imagenet-r.tar", archive)
    data_root = tmp_path / "data"
    sha = hashlib.sha256(archive).hexdigest()

    with pytest.raises(DataError):
        imagenet_r.fetch(data_root, progress=False, url=url, sha256=sha, size=len(archive) + 1)

    assert not (data_root / "imagenet-r").exists()


def test_fetch_of_incomplete_archive_fails_check(server: LocalFileServer, tmp_path: Path) -> None:
    """An archive that verifies but lacks classes is reported, never accepted as the dataset."""
    _, wnids = imagenet_r.classes()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for wnid in wnids[:10]:
            _add(tar, f"imagenet-r/{wnid}/a.jpg", _jpeg(0))
    payload = buf.getvalue()
    url = server.add("imagenet-r.tar", payload)

    with pytest.raises(DataError, match="incomplete"):
        imagenet_r.fetch(tmp_path, progress=False, url=url, sha256=hashlib.sha256(payload).hexdigest(),
                         size=len(payload))


def test_fetch_unreachable_server_is_data_error(tmp_path: Path) -> None:
    with LocalFileServer() as srv:
        url = srv.url("imagenet-r.tar")
    # The server is stopped: the connection is refused.
    with pytest.raises(DataError):
        imagenet_r.fetch(tmp_path, progress=False, url=url, sha256="0" * 64, size=10)
    assert not (tmp_path / "imagenet-r").exists()


# The published archive: its address, size and the sha256 tensorflow-datasets publishes for it (SPEC section 5).
# A download is verified against these pins, so any change to them must be a deliberate one made here too.
PUBLISHED = ("https://people.eecs.berkeley.edu/~hendrycks/imagenet-r.tar", 2_191_079_936,
             "18c6bf493b39a0d975d48e587437f562caab9c52ae6327dcfa9dd8eb54aa1b52", 30_000)


def test_pinned_archive_constants_are_the_published_ones() -> None:
    assert (imagenet_r.URL, imagenet_r.SIZE, imagenet_r.SHA256, imagenet_r.N_IMAGES) == PUBLISHED
