"""CIFAR data for study 2: the official files through torchvision (offline, with fake batch files), the tensor
cache, ImageFolder decoding and the shared cifar10-jpg tarballs.

torchvision checks md5s that fake files cannot match, so the loading tests replace its integrity check and the
fetching tests point its pins at the fake files they serve on 127.0.0.1; everything else (download, file layout,
pickle format, label order) is torchvision's own code reading files written here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import pickle
import tarfile
import time
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
import torchvision.datasets.cifar
import torchvision.datasets.utils
from PIL import Image

from advtransfer.data import cifar
from advtransfer.data.cifar import (
    CIFAR10_CLASSES,
    cache_path,
    class_names,
    fetch_cifar,
    fetch_command,
    load_cifar,
    load_image_folder_split,
    prepare_cifar10_jpg,
)
from advtransfer.data.images import load_image
from advtransfer.errors import ConfigError, DataError
from httpserver import LocalFileServer

REAL_CIFAR10_JPG = Path(__file__).resolve().parents[2] / "shared/data/cifar10-jpg"
TRAIN_PER_BATCH, N_TEST = 6, 8


# ------------------------------------------------------------------------------------------- fake CIFAR-10 files

def _batch(rng: np.random.Generator, n: int) -> dict:
    # The real batches are Python 2 pickles with str keys once loaded with encoding="latin1" (as torchvision does).
    return {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, n).tolist(),
            "batch_label": "fake"}


def write_fake_cifar10(data_root: Path, seed: int = 0) -> dict[str, dict]:
    folder = data_root / "cifar" / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": _batch(rng, TRAIN_PER_BATCH) for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, N_TEST)
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": list(CIFAR10_CLASSES)}))
    return batches


def expected_tensors(batches: dict[str, dict], train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    data = np.concatenate([batches[n]["data"] for n in names]).reshape(-1, 3, 32, 32)  # rows are CHW
    labels = [label for n in names for label in batches[n]["labels"]]
    return torch.from_numpy(data).float() / 255.0, torch.tensor(labels, dtype=torch.int64)


@pytest.fixture
def no_md5(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake files cannot match torchvision's pinned md5s: accept them (batches and meta are checked separately)."""
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)


@pytest.fixture
def count_torchvision(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = torchvision.datasets.CIFAR10

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", counting)
    return calls


def forbid_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args, **kwargs):
        raise AssertionError("torchvision was called although the cache is valid")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", boom)


# ------------------------------------------------------------------------------------------------ missing data

@pytest.mark.parametrize(("name", "folder"), [("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python")])
def test_missing_cifar_names_folder_and_exact_command(tmp_path: Path, name: str, folder: str) -> None:
    with pytest.raises(DataError) as err:
        load_cifar(name, tmp_path, train=True)
    msg = str(err.value)
    assert f"`advtransfer data fetch {name} --data-root {tmp_path}`" in msg
    assert fetch_command(name, tmp_path) == f"advtransfer data fetch {name} --data-root {tmp_path}"
    assert f"{tmp_path}/cifar/{folder}/" in msg
    assert "torchvision" in msg and "md5" in msg
    assert not (tmp_path / "cifar" / f"{name}-train.pt").exists()


def test_partially_missing_cifar_names_the_missing_files(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path)
    (tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_3").unlink()
    (tmp_path / "cifar" / "cifar-10-batches-py" / "batches.meta").unlink()
    with pytest.raises(DataError, match=r"missing: data_batch_3, batches\.meta"):
        load_cifar("cifar10", tmp_path, train=False)


def test_corrupt_cifar_fails_torchvisions_md5_as_a_data_error(tmp_path: Path) -> None:
    write_fake_cifar10(tmp_path)  # real md5 check: fake files fail it
    with pytest.raises(DataError, match="md5") as err:
        load_cifar("cifar10", tmp_path, train=False)
    assert fetch_command("cifar10", tmp_path) in str(err.value)


# ------------------------------------------------------------------------------------------- load path and cache

@pytest.mark.usefixtures("no_md5")
@pytest.mark.parametrize("train", [True, False])
def test_load_cifar10_tensors_labels_and_cache_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     train: bool) -> None:
    batches = write_fake_cifar10(tmp_path)
    images_ref, labels_ref = expected_tensors(batches, train)
    ds = load_cifar("cifar10", tmp_path, train=train)
    n = 5 * TRAIN_PER_BATCH if train else N_TEST
    assert ds.images.shape == (n, 3, 32, 32) and ds.images.dtype == torch.float32
    assert ds.labels.shape == (n,) and ds.labels.dtype == torch.int64
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert torch.equal(ds.images, images_ref)  # channel layout, order across batches, exact u8 / 255
    assert torch.equal(ds.labels, labels_ref)
    assert len(ds) == n and ds[0][0].shape == (3, 32, 32)

    cache = cache_path("cifar10", tmp_path, train)
    assert cache == tmp_path / "cifar" / f"cifar10-{'train' if train else 'test'}.pt"
    assert cache.is_file()
    stored = torch.load(cache, weights_only=True)
    assert isinstance(stored["key"], str) and len(stored["key"]) == 64
    assert stored["images"].dtype == torch.uint8

    mtime = cache.stat().st_mtime_ns
    forbid_torchvision(monkeypatch)
    again = load_cifar("cifar10", tmp_path, train=train)
    assert torch.equal(again.images, ds.images) and torch.equal(again.labels, ds.labels)
    assert cache.stat().st_mtime_ns == mtime  # read, not rewritten


@pytest.mark.usefixtures("no_md5")
@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong-dtype", "wrong-format"])
def test_corrupt_cache_is_rebuilt(tmp_path: Path, count_torchvision: list[int], damage: str) -> None:
    batches = write_fake_cifar10(tmp_path)
    load_cifar("cifar10", tmp_path, train=False)
    assert len(count_torchvision) == 1
    cache = cache_path("cifar10", tmp_path, False)
    stored = torch.load(cache, weights_only=True)
    if damage == "garbage":
        cache.write_bytes(b"not a torch file")
    elif damage == "truncated":
        cache.write_bytes(cache.read_bytes()[:500])
    elif damage == "wrong-dtype":  # the right key, but content that is not what the kit writes
        torch.save(dict(stored, images=stored["images"].float()), cache)
    else:
        torch.save(dict(stored, format=0), cache)
    ds = load_cifar("cifar10", tmp_path, train=False)
    assert len(count_torchvision) == 2
    images_ref, labels_ref = expected_tensors(batches, train=False)
    assert torch.equal(ds.images, images_ref) and torch.equal(ds.labels, labels_ref)
    assert torch.load(cache, weights_only=True)["key"] == stored["key"]  # rewritten, valid again


@pytest.mark.usefixtures("no_md5")
def test_cache_of_changed_source_is_rebuilt(tmp_path: Path, count_torchvision: list[int]) -> None:
    write_fake_cifar10(tmp_path, seed=0)
    old = load_cifar("cifar10", tmp_path, train=False)
    old_key = torch.load(cache_path("cifar10", tmp_path, False), weights_only=True)["key"]
    batches = write_fake_cifar10(tmp_path, seed=1)  # new batch files, same names: the cache is stale
    new = load_cifar("cifar10", tmp_path, train=False)
    assert len(count_torchvision) == 2
    images_ref, labels_ref = expected_tensors(batches, train=False)
    assert torch.equal(new.images, images_ref) and torch.equal(new.labels, labels_ref)
    assert not torch.equal(new.images, old.images)
    assert torch.load(cache_path("cifar10", tmp_path, False), weights_only=True)["key"] != old_key
    # Each split is keyed by its own files: a changed train batch leaves the test cache valid.
    train_batch = tmp_path / "cifar" / "cifar-10-batches-py" / "data_batch_1"
    train_batch.write_bytes(pickle.dumps(_batch(np.random.default_rng(7), TRAIN_PER_BATCH)))
    load_cifar("cifar10", tmp_path, train=False)
    assert len(count_torchvision) == 2


@pytest.mark.usefixtures("no_md5")
def test_unwritable_cache_only_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batches = write_fake_cifar10(tmp_path)

    def read_only(*args, **kwargs):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(cifar, "atomic_torch_save", read_only)
    with pytest.warns(UserWarning, match="could not write"):
        ds = load_cifar("cifar10", tmp_path, train=False)
    assert torch.equal(ds.labels, expected_tensors(batches, train=False)[1])


def test_class_names() -> None:
    assert class_names("cifar10") == ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                      "ship", "truck"]
    names = class_names("cifar100")
    assert len(names) == len(set(names)) == 100 and names == sorted(names)
    assert names[:3] == ["apple", "aquarium_fish", "baby"] and names[-1] == "worm"
    with pytest.raises(ConfigError, match="cifar10, cifar100"):
        class_names("cifar1000")


# ----------------------------------------------------------------------------------------------------- fetching

def _fake_archive_bytes(tmp_path: Path) -> bytes:
    src = tmp_path / "upstream"
    write_fake_cifar10(src)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    return buf.getvalue()


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _tar_gz(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Upstream:
    """A CIFAR-10 "upstream" on 127.0.0.1: fake batch files in a tar.gz served over HTTP, and the kit's pins (the
    URL, torchvision's archive and per-file md5s) pointed at those bytes. Only the addresses and the expected
    checksums change; the download, both md5 checks and the extraction are the real code."""

    def __init__(self, server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.server, self.root = server, tmp_path / "data"
        src = tmp_path / "upstream"
        self.batches = write_fake_cifar10(src)
        folder = src / "cifar" / "cifar-10-batches-py"
        self.files = {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in sorted(folder.iterdir())}
        cls = torchvision.datasets.CIFAR10
        md5s = {name.rsplit("/", 1)[1]: _md5(data) for name, data in self.files.items()}
        monkeypatch.setattr(cls, "train_list", [[n, md5s[n]] for n, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[n, md5s[n]] for n, _ in cls.test_list])
        monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5s[cls.meta["filename"]]})
        self.url = server.add("cifar-10-python.tar.gz", b"")
        monkeypatch.setitem(cifar._SOURCES, "cifar10", dataclasses.replace(cifar._SOURCES["cifar10"], url=self.url))
        self.monkeypatch = monkeypatch

    def serve(self, archive: bytes, pinned: bytes | None = None) -> None:
        """Serve ``archive``; torchvision's archive md5 is that of ``pinned`` (default: the served bytes)."""
        self.server.add("cifar-10-python.tar.gz", archive)
        self.monkeypatch.setattr(torchvision.datasets.CIFAR10, "tgz_md5", _md5(archive if pinned is None else pinned))


@pytest.fixture
def upstream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with LocalFileServer() as server:
        yield Upstream(server, tmp_path, monkeypatch)


def test_fetch_downloads_verifies_extracts_and_is_idempotent(upstream: Upstream) -> None:
    upstream.serve(_tar_gz(upstream.files))
    folder = fetch_cifar("cifar10", upstream.root)
    assert folder == upstream.root / "cifar" / "cifar-10-batches-py"
    requests = list(upstream.server.requests)  # torchvision asks for redirects first, then downloads
    assert requests and {path for path, _ in requests} == {"/cifar-10-python.tar.gz"}
    assert sorted(p.name for p in upstream.root.joinpath("cifar").iterdir()) == ["cifar-10-batches-py"]  # archive gone
    test = load_cifar("cifar10", upstream.root, train=False)
    images, labels = test.images, test.labels
    want_images, want_labels = expected_tensors(upstream.batches, train=False)
    assert torch.equal(images, want_images) and torch.equal(labels, want_labels)
    assert fetch_cifar("cifar10", upstream.root) == folder  # already there and verified: no second download
    assert upstream.server.requests == requests


def test_fetch_of_bytes_not_matching_the_pinned_md5_extracts_nothing(upstream: Upstream) -> None:
    good = _tar_gz(upstream.files)
    upstream.serve(good[:-1] + bytes([good[-1] ^ 1]), pinned=good)  # one flipped bit on the wire
    with pytest.raises(DataError) as err:
        fetch_cifar("cifar10", upstream.root)
    assert str(err.value).startswith(f"could not download CIFAR-10 from {upstream.url}: ")
    assert "`advtransfer data fetch cifar10" in str(err.value)
    assert not (upstream.root / "cifar" / "cifar-10-batches-py").exists()


def test_fetch_of_an_archive_with_a_tampered_batch_fails_the_per_file_md5(upstream: Upstream) -> None:
    tampered = dict(upstream.files)
    name = "cifar-10-batches-py/test_batch"
    tampered[name] = tampered[name][:-1] + bytes([tampered[name][-1] ^ 1])
    upstream.serve(_tar_gz(tampered))  # the archive's md5 matches its pin; one file inside does not match its own
    with pytest.raises(DataError, match=r"^CIFAR-10 under .*cifar-10-batches-py/ failed torchvision's md5 check"):
        fetch_cifar("cifar10", upstream.root)


def test_fetch_of_an_archive_escaping_its_folder_writes_nothing_outside(upstream: Upstream, tmp_path: Path) -> None:
    upstream.serve(_tar_gz({**upstream.files, "../../escaped.txt": b"outside"}))
    with pytest.raises(DataError, match=r"escaped\.txt"):
        fetch_cifar("cifar10", upstream.root)
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (upstream.root / "cifar" / "cifar-10-batches-py").exists()


def test_fetch_network_failure_is_a_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.utils, "download_url", offline)
    with pytest.raises(DataError) as err:
        fetch_cifar("cifar100", tmp_path)
    msg = str(err.value)
    assert "name resolution" in msg and torchvision.datasets.CIFAR100.url in msg
    assert fetch_command("cifar100", tmp_path) in msg


def test_fetch_refuses_an_incomplete_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fake_cifar10(tmp_path)
    (tmp_path / "cifar" / "cifar-10-batches-py" / "test_batch").unlink()
    monkeypatch.setattr(torchvision.datasets.utils, "download_url", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(DataError, match=r"incomplete \(missing: test_batch\)\. Delete"):
        fetch_cifar("cifar10", tmp_path)


# ------------------------------------------------------------------------------------------ ImageFolder decoding

def write_jpeg_tree(root: Path, classes: tuple[str, ...] = ("cat", "dog", "frog"), per_class: int = 5,
                    size: int = 32) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            base = np.full((size, size, 3), 40 + 80 * c, dtype=np.uint8)
            noise = rng.integers(0, 40, (size, size, 3), dtype=np.uint8)
            Image.fromarray(base + noise).save(root / name / f"{i:04d}.jpg", quality=90)
    return root


def test_image_folder_split_shapes_labels_and_pixels(tmp_path: Path) -> None:
    root = write_jpeg_tree(tmp_path / "test")
    ds = load_image_folder_split(root)
    assert ds.classes == ["cat", "dog", "frog"]
    assert ds.images.shape == (15, 3, 32, 32) and ds.images.dtype == torch.float32
    assert 0.0 <= ds.images.min() and ds.images.max() <= 1.0
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    assert [p.name for p in ds.files[:5]] == [f"{i:04d}.jpg" for i in range(5)]
    assert torch.equal(ds.images[7], load_image(ds.files[7], 32))  # the same decode as FileImages
    assert ds.images[ds.labels == 2].mean() > ds.images[ds.labels == 0].mean()  # brighter class, by construction

    small = load_image_folder_split(root, image_size=16)
    assert small.images.shape == (15, 3, 16, 16)
    assert torch.equal(small.images[3], load_image(small.files[3], 16))


def test_image_folder_split_per_class_limit_is_seeded(tmp_path: Path) -> None:
    root = write_jpeg_tree(tmp_path / "train", per_class=6)
    a = load_image_folder_split(root, limit_per_class=2, seed=0)
    b = load_image_folder_split(root, limit_per_class=2, seed=0)
    c = load_image_folder_split(root, limit_per_class=2, seed=1)
    assert len(a) == 6 and torch.bincount(a.labels).tolist() == [2, 2, 2]
    assert a.files == b.files and torch.equal(a.images, b.images)
    assert a.files != c.files
    assert a.labels.tolist() == sorted(a.labels.tolist())  # class order kept
    torch.manual_seed(0)
    state = torch.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    load_image_folder_split(root, limit_per_class=2, seed=3)
    assert torch.equal(torch.get_rng_state(), state) and np.array_equal(np.random.get_state()[1], np_state)

    assert len(load_image_folder_split(root, limit_per_class=100)) == 18  # larger than a class: all of it
    with pytest.raises(ValueError, match="limit_per_class"):
        load_image_folder_split(root, limit_per_class=0)


def test_image_folder_split_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_image_folder_split(tmp_path / "nowhere")
    root = write_jpeg_tree(tmp_path / "test", per_class=2)
    (root / "dog" / "0001.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataError, match=r"cannot read image .*0001\.jpg"):
        load_image_folder_split(root)


# ---------------------------------------------------------------------------------------------- cifar10-jpg tarballs

def write_shared(shared: Path, tmp_path: Path) -> Path:
    for split in ("train", "test"):
        tree = write_jpeg_tree(tmp_path / "src" / split / split, per_class=2)
        with tarfile.open(shared / f"cifar10-jpg-{split}.tar.gz", "w:gz") as tar:
            tar.add(tree, arcname=split)
    lines = [f"{hashlib.sha256((shared / f'cifar10-jpg-{s}.tar.gz').read_bytes()).hexdigest()}  "
             f"cifar10-jpg-{s}.tar.gz" for s in ("test", "train")]
    (shared / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    return shared


def test_prepare_cifar10_jpg_extracts_both_splits_idempotently(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    shared = write_shared(tmp_path / "shared", tmp_path)
    data_root = tmp_path / "data"
    out = prepare_cifar10_jpg(shared, data_root)
    assert out == data_root / "cifar10-jpg"
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]
    assert len(load_image_folder_split(out / "train")) == 6
    assert load_image_folder_split(out / "test").classes == ["cat", "dog", "frog"]

    for f in shared.iterdir():  # already extracted: the tarballs are not even read again
        f.unlink()
    assert prepare_cifar10_jpg(shared, data_root) == out


def test_prepare_cifar10_jpg_one_split(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    shared = write_shared(tmp_path / "shared", tmp_path)
    out = prepare_cifar10_jpg(shared, tmp_path / "data", splits=("test",))
    assert sorted(p.name for p in out.iterdir()) == ["test"]
    prepare_cifar10_jpg(shared, tmp_path / "data")  # adds train next to the existing test
    assert sorted(p.name for p in out.iterdir()) == ["test", "train"]
    with pytest.raises(ConfigError, match="valid: train, test"):
        prepare_cifar10_jpg(shared, tmp_path / "data", splits=("val",))


def test_prepare_cifar10_jpg_wrong_checksum_extracts_nothing(tmp_path: Path) -> None:
    (tmp_path / "shared").mkdir()
    shared = write_shared(tmp_path / "shared", tmp_path)
    lines = [line if "test" in line else "0" * 64 + "  cifar10-jpg-train.tar.gz"
             for line in (shared / "SHA256SUMS").read_text().splitlines()]
    (shared / "SHA256SUMS").write_text("\n".join(lines) + "\n")
    data_root = tmp_path / "data"
    with pytest.raises(DataError, match=r"checksum mismatch for .*cifar10-jpg-train\.tar\.gz.*nothing was extracted"):
        prepare_cifar10_jpg(shared, data_root)
    assert not (data_root / "cifar10-jpg").exists()  # the good test archive was not extracted either

    (shared / "SHA256SUMS").unlink()
    with pytest.raises(DataError, match="SHA256SUMS"):
        prepare_cifar10_jpg(shared, data_root)
    (shared / "cifar10-jpg-test.tar.gz").unlink()
    with pytest.raises(DataError, match=r"cifar10-jpg-test\.tar\.gz does not exist"):
        prepare_cifar10_jpg(shared, data_root, splits=("test",))


@pytest.mark.realdata
@pytest.mark.skipif(not (REAL_CIFAR10_JPG / "cifar10-jpg-test.tar.gz").is_file(),
                    reason=f"real CIFAR-10 JPEGs not found at {REAL_CIFAR10_JPG}")
def test_real_cifar10_jpg_test_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.perf_counter()
    out = prepare_cifar10_jpg(REAL_CIFAR10_JPG, tmp_path, splits=("test",))
    t_extract = time.perf_counter() - t0
    ds = load_image_folder_split(out / "test", limit_per_class=20, seed=0)
    assert len(ds) == 200 and ds.images.shape == (200, 3, 32, 32)
    assert ds.classes == class_names("cifar10")  # folder names sort into the official label order
    assert torch.bincount(ds.labels).tolist() == [20] * 10

    t0 = time.perf_counter()
    full = load_image_folder_split(out / "test")
    t_decode = time.perf_counter() - t0
    assert len(full) == 10_000 and torch.bincount(full.labels).tolist() == [1000] * 10
    with capsys.disabled():
        print(f"\ncifar10-jpg test split: extract {t_extract:.1f} s, decode 10,000 JPEGs {t_decode:.1f} s "
              f"({len(full) / t_decode:.0f} images/s, {torch.get_num_threads()} torch threads)")
