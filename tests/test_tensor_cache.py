"""The uint8 tensor cache (advtransfer.data.tensor_cache), tensor augmentation, their use by study 1 and the
cifar10-jpg loader, and `advtransfer bench train` end to end. Fast: small JPEG folders generated in tmp_path."""

from __future__ import annotations

import json
import os
import pickle
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from advtransfer.cli import main
from advtransfer.data import tensor_cache
from advtransfer.data.images import FileImages, batches, load_image, scan_image_folder
from advtransfer.data.tensor_cache import (
    CachedImages,
    augment,
    cache_file,
    cached_image_folder,
    cached_or_files,
    load_or_build,
    subset,
)
from advtransfer.errors import DataError

SIZES = [(32, 32), (20, 17), (41, 29), (32, 48)]  # odd sizes and aspect ratios: the resize matters


def _write_folder(root: Path, classes: list[str], per_class: int = 4, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            w, h = SIZES[i % len(SIZES)]
            arr = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / c / f"{i:03d}.jpg", quality=85)
    return root


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return _write_folder(tmp_path / "imgs", ["cat", "dog", "eel"])


def _pil(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR)).transpose(2, 0, 1)


def _files(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []


# ------------------------------------------------------------------------------------------- build and reuse ---


def test_pixels_equal_pil_decode_and_resize(folder: Path, tmp_path: Path) -> None:
    ds = cached_image_folder(folder, 24, tmp_path / "cache")
    classes, files, labels = scan_image_folder(folder)
    assert isinstance(ds, CachedImages) and ds.built and len(ds) == len(files) == 12
    assert ds.classes == classes and ds.files == [f.relative_to(folder).as_posix() for f in files]
    assert torch.equal(ds.labels, torch.from_numpy(labels))
    for i, f in enumerate(files):
        assert np.array_equal(ds.images.u8(i).numpy(), _pil(f, 24)), f
        x, y = ds[i]
        assert x.dtype == torch.float32 and torch.equal(x, load_image(f, 24)) and int(y) == labels[i]
    batch = ds.images[torch.tensor([3, 0, 7])]  # fancy index: float batch, in the order asked
    assert torch.equal(batch, torch.stack([load_image(files[i], 24) for i in (3, 0, 7)]))
    sidecar = json.loads(cache_file(tmp_path / "cache", folder, 24).with_suffix(".bin.json").read_text())
    assert sidecar["format"] == tensor_cache.FORMAT and sidecar["image_size"] == 24 and sidecar["n"] == 12
    assert len(sidecar["payload_sha256"]) == 64 and sidecar["files"] == ds.files


def test_same_pixels_as_the_plain_imagefolder_pipeline(folder: Path, tmp_path: Path) -> None:
    """The bench compares like with like: torchvision's Resize((S, S)) + ToTensor gives the cache's floats."""
    from torchvision import datasets, transforms

    plain = datasets.ImageFolder(str(folder), transform=transforms.Compose([
        transforms.Resize((24, 24), interpolation=transforms.InterpolationMode.BILINEAR), transforms.ToTensor()]))
    ds = cached_image_folder(folder, 24, tmp_path / "cache")
    for i in range(len(plain)):
        x, y = plain[i]
        assert torch.equal(x, ds[i][0]) and y == int(ds[i][1])


def test_rerun_reuses_the_cache(folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = cached_image_folder(folder, 24, tmp_path / "cache")
    path = first.path
    mtime = path.stat().st_mtime_ns

    def no_decode(*_a, **_k):
        raise AssertionError("decoded although the cache is valid")

    monkeypatch.setattr(tensor_cache, "decode_u8", no_decode)
    again = cached_image_folder(folder, 24, tmp_path / "cache")
    assert not again.built and again.build_seconds == 0.0
    assert path.stat().st_mtime_ns == mtime
    assert torch.equal(again.images[:], first.images[:])


def test_changed_source_is_rebuilt(folder: Path, tmp_path: Path) -> None:
    first = cached_image_folder(folder, 24, tmp_path / "cache")
    old_key = json.loads(first.path.with_suffix(".bin.json").read_text())["key"]
    target = folder / "dog" / "001.jpg"
    st = target.stat()
    Image.fromarray(np.full((17, 20, 3), 200, dtype=np.uint8)).save(target, quality=85)
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = cached_image_folder(folder, 24, tmp_path / "cache")
    assert again.built
    i = again.files.index("dog/001.jpg")
    assert np.array_equal(again.images.u8(i).numpy(), _pil(target, 24))
    assert json.loads(again.path.with_suffix(".bin.json").read_text())["key"] != old_key
    # An added file is a change too.
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(folder / "eel" / "999.jpg")
    third = cached_image_folder(folder, 24, tmp_path / "cache")
    assert third.built and len(third) == 13


def test_other_size_rebuilds_same_file_and_separate_files_coexist(folder: Path, tmp_path: Path) -> None:
    _, files, labels = scan_image_folder(folder)
    path = tmp_path / "one.bin"
    assert load_or_build(path, folder, files, labels, 24).built
    small = load_or_build(path, folder, files, labels, 16)  # same file, other size: the key differs
    assert small.built and small.images.u8(0).shape == (3, 16, 16)
    assert path.stat().st_size == 12 * 3 * 16 * 16 + 8 * 12
    # Under a cache folder, each size has its own file, so both stay valid.
    a, b = cached_image_folder(folder, 24, tmp_path / "c"), cached_image_folder(folder, 16, tmp_path / "c")
    assert a.path != b.path and not cached_image_folder(folder, 24, tmp_path / "c").built


# ------------------------------------------------------------------------------------------------- corruption ---


@pytest.mark.parametrize("damage", ["truncate", "flip_pixel", "flip_label", "sidecar_garbage", "sidecar_sha",
                                    "sidecar_n"])
def test_corrupt_cache_is_one_clear_data_error(folder: Path, tmp_path: Path, damage: str) -> None:
    ds = cached_image_folder(folder, 24, tmp_path / "cache")
    path, side = ds.path, ds.path.with_suffix(".bin.json")
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        path.write_bytes(bytes(data[:-100]))
    elif damage == "flip_pixel":
        data[len(data) // 3] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "flip_label":
        data[-8] ^= 0x01
        path.write_bytes(bytes(data))
    elif damage == "sidecar_garbage":
        side.write_text('{"format": 1, "key": ')
    elif damage == "sidecar_sha":
        meta = json.loads(side.read_text())
        side.write_text(json.dumps({**meta, "payload_sha256": "0" * 64}))
    else:
        meta = json.loads(side.read_text())
        side.write_text(json.dumps({**meta, "n": 11}))
    with pytest.raises(DataError) as err:
        cached_image_folder(folder, 24, tmp_path / "cache")
    msg = str(err.value)
    assert "corrupt" in msg and str(path) in msg and "Delete" in msg and "rebuilds" in msg
    # The fix the message names works: delete both files and the cache is rebuilt.
    path.unlink()
    side.unlink()
    rebuilt = cached_image_folder(folder, 24, tmp_path / "cache")
    assert rebuilt.built and torch.equal(rebuilt.images[:], torch.from_numpy(np.stack(
        [_pil(folder / f, 24) for f in rebuilt.files])).float().div_(255))


def test_bench_reuses_its_cache_dir_and_a_damaged_cache_is_exit_2(folder: Path, tmp_path: Path, capsys) -> None:
    args = ["bench", "train", "--data", str(folder), "--cache-dir", str(tmp_path / "cache"), "--model", "basenet",
            "--batch", "4", "--steps", "1", "--warmup", "0", "--rounds", "1", "--workers", "0", "--threads", "1",
            "--json"]
    assert main([*args, str(tmp_path / "1.json")]) == 0
    assert main([*args, str(tmp_path / "2.json")]) == 0
    first, second = (json.loads((tmp_path / f"{i}.json").read_text())["cache"][0] for i in (1, 2))
    assert first["built"] and not second["built"] and first["path"] == second["path"]
    payload = Path(first["path"])
    data = bytearray(payload.read_bytes())
    data[5] ^= 0xFF
    payload.write_bytes(bytes(data))
    capsys.readouterr()
    assert main([*args, str(tmp_path / "3.json")]) == 2  # one clear message, never a traceback or wrong pixels
    err = capsys.readouterr().err
    assert err.startswith("advtransfer: error: image cache") and "corrupt" in err and str(payload) in err


# ------------------------------------------------------------------------------------------------- atomicity ---


def test_failure_mid_write_leaves_no_partial_file(folder: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    real = tensor_cache.decode_u8
    calls = {"n": 0}

    def failing(path: Path, size: int) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("simulated crash mid-write")
        return real(path, size)

    monkeypatch.setattr(tensor_cache, "_CHUNK", 2)  # several writes before the failure
    monkeypatch.setattr(tensor_cache, "decode_u8", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        cached_image_folder(folder, 24, tmp_path / "cache", workers=1)
    assert _files(tmp_path / "cache") == []  # no payload, no sidecar, no temporary file

    # A failed rebuild over a valid cache leaves no sidecar describing other bytes: the next load rebuilds.
    monkeypatch.setattr(tensor_cache, "decode_u8", real)
    good = cached_image_folder(folder, 24, tmp_path / "cache")
    Image.fromarray(np.zeros((9, 9, 3), dtype=np.uint8)).save(folder / "cat" / "050.jpg")  # stale now
    calls["n"] = 0
    monkeypatch.setattr(tensor_cache, "decode_u8", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        cached_image_folder(folder, 24, tmp_path / "cache", workers=1)
    assert _files(tmp_path / "cache") == [good.path.name]  # the old payload, no sidecar, no temporary file
    monkeypatch.setattr(tensor_cache, "decode_u8", real)
    again = cached_image_folder(folder, 24, tmp_path / "cache")
    assert again.built and len(again) == 13


def test_unwritable_cache_falls_back_to_files(folder: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    _, files, labels = scan_image_folder(folder)
    with pytest.warns(UserWarning, match="could not write the image cache"):
        pool = cached_or_files(blocker, folder, files, labels, 24)
    assert isinstance(pool, FileImages) and torch.equal(pool[5][0], load_image(files[5], 24))


def test_unreadable_source_is_a_data_error(tmp_path: Path) -> None:
    root = _write_folder(tmp_path / "imgs", ["a"], per_class=2)
    (root / "a" / "001.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"001\.jpg"):
        cached_image_folder(root, 16, tmp_path / "cache")
    assert _files(tmp_path / "cache") == []


# ---------------------------------------------------------------------------------------- dataset behaviour ---


def test_subset_and_batches_stay_on_the_memory_map(folder: Path, tmp_path: Path) -> None:
    ds = cached_image_folder(folder, 24, tmp_path / "cache")
    part = subset(ds, np.array([10, 2, 5]))
    assert isinstance(part, CachedImages) and len(part) == 3
    assert part.files == [ds.files[i] for i in (10, 2, 5)]
    assert torch.equal(part.labels, ds.labels[[10, 2, 5]])
    assert torch.equal(part[1][0], ds[2][0])
    got = list(batches(part, 2))  # the training loop's batching: float batches straight from the cache
    assert [tuple(x.shape) for x, _ in got] == [(2, 3, 24, 24), (1, 3, 24, 24)]
    assert torch.equal(torch.cat([x for x, _ in got]), ds.images[torch.tensor([10, 2, 5])])
    assert len(pickle.dumps(part)) < 10_000  # DataLoader workers reopen the file; pixels are not pickled
    clone = pickle.loads(pickle.dumps(part))
    assert torch.equal(clone.images[:], part.images[:])


def test_study1_imagefolder_uses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from advtransfer.data import imagenet_r
    from advtransfer.studies.imagenet_transfer.data import load_task

    wnids = imagenet_r.classes()[1][:3]
    root = _write_folder(tmp_path / "renditions", list(wnids), per_class=3)
    cfg = types.SimpleNamespace(dataset="imagefolder", dataset_path=str(root), image_size=16)
    exp = types.SimpleNamespace(cfg=cfg, source=tmp_path / "exp.toml")
    task = load_task(exp, tmp_path / "data")
    assert isinstance(task.pool, CachedImages) and task.pool.path.parent == tmp_path / "data" / "cache"
    _, files, _ = scan_image_folder(root)
    reference = FileImages(files, task.labels, 16)
    for i in range(len(reference)):
        assert torch.equal(task.pool[i][0], reference[i][0])
    monkeypatch.setattr(tensor_cache, "decode_u8", lambda *a: (_ for _ in ()).throw(AssertionError("decoded")))
    assert not load_task(exp, tmp_path / "data").pool.built  # the second run reads the cache


def test_cifar_image_folder_split_with_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from advtransfer.data.cifar import load_image_folder_split

    root = _write_folder(tmp_path / "train", ["airplane", "automobile"], per_class=5)
    plain = load_image_folder_split(root, 32, limit_per_class=3, seed=1)
    cached = load_image_folder_split(root, 32, limit_per_class=3, seed=1, cache_dir=tmp_path / "cache")
    assert torch.equal(plain.images, cached.images) and torch.equal(plain.labels, cached.labels)
    assert plain.files == cached.files and plain.classes == cached.classes
    full = load_image_folder_split(root, 32, cache_dir=tmp_path / "cache")  # another selection, another file
    assert len(full) == 10 and len(_files(tmp_path / "cache")) == 4  # two caches, each with its sidecar
    monkeypatch.setattr(tensor_cache, "decode_u8", lambda *a: (_ for _ in ()).throw(AssertionError("decoded")))
    again = load_image_folder_split(root, 32, limit_per_class=3, seed=1, cache_dir=tmp_path / "cache")
    assert torch.equal(again.images, plain.images)


# ------------------------------------------------------------------------------------------------ augmentation ---


def _reference_augment(x: torch.Tensor, offsets: torch.Tensor, flips: torch.Tensor, pad: int) -> torch.Tensor:
    """Per image, as torchvision does it: zero-pad, crop at the offset, then flip."""
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    h, w = x.shape[-2:]
    out = []
    for i in range(len(x)):
        crop = padded[i, :, offsets[0, i]:offsets[0, i] + h, offsets[1, i]:offsets[1, i] + w]
        out.append(crop.flip(2) if flips[i] else crop)
    return torch.stack(out)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_augment_is_deterministic_in_range_and_a_padded_crop_then_flip(dtype: torch.dtype) -> None:
    x = torch.randint(0, 256, (16, 3, 12, 10), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    if dtype == torch.float32:
        x = x.float() / 255
    a = augment(x, torch.Generator().manual_seed(7), pad=3)
    b = augment(x, torch.Generator().manual_seed(7), pad=3)
    c = augment(x, torch.Generator().manual_seed(8), pad=3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == dtype and a.shape == x.shape
    assert float(a.min()) >= 0 and float(a.max()) <= (255 if dtype == torch.uint8 else 1.0)
    g = torch.Generator().manual_seed(7)  # the same draws, in the same order, as augment makes them
    offsets = torch.randint(0, 7, (2, 16), generator=g)
    flips = torch.rand(16, generator=g) < 0.5
    assert torch.equal(a, _reference_augment(x, offsets, flips, 3))
    assert torch.equal(augment(x, torch.Generator(), pad=0, flip=False), x)
    state = torch.get_rng_state()
    augment(x, torch.Generator().manual_seed(0))
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG is never touched
    with pytest.raises(ValueError, match="batch"):
        augment(x[0], torch.Generator())


# ----------------------------------------------------------------------------------------------- bench train ---


def test_bench_train_end_to_end_writes_json(folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench" / "train.json"
    threads = torch.get_num_threads()
    code = main(["bench", "train", "--data", str(folder), "--batch", "4", "--steps", "2", "--warmup", "1",
                 "--rounds", "2", "--size", "32", "--workers", "0,1", "--threads", "1", "--json", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    for key in ("data", "n_images", "batch", "steps", "rounds", "plain_workers", "torch_threads", "cpu_count",
                "cache", "rows", "provenance", "plain_pipeline", "kit_pipeline"):
        assert key in result, key
    assert result["n_images"] == 12 and result["plain_workers"] == [0, 1] and result["torch_threads"] == 1
    assert torch.get_num_threads() == threads  # restored
    assert [r["model"] for r in result["rows"]] == ["mobilenet_v2", "basenet", "resnet18"]
    for row in result["rows"]:
        assert row["input_px"] == 32 and row["speedup"] > 0
        for stats in (*row["plain_by_workers"], row["kit"]):
            assert stats["img_per_s"] > 0 and 0 <= stats["data_wait_share"] <= 1
            assert len(stats["windows_img_per_s"]) == 2
        assert [p["workers"] for p in row["plain_by_workers"]] == [0, 1] and row["plain"] in row["plain_by_workers"]
        assert row["plain"]["img_per_s"] == max(p["img_per_s"] for p in row["plain_by_workers"])
        assert row["speedup"] == pytest.approx(row["kit"]["img_per_s"] / row["plain"]["img_per_s"])
        assert set(row["speedup_by_workers"]) == {"0", "1"}
    assert [c["input_px"] for c in result["cache"]] == [32] and result["cache"][0]["built"]
    table = capsys.readouterr().out
    assert "speedup" in table and "basenet" in table and "resnet18" in table


def test_bench_train_bad_input_is_one_message(tmp_path: Path, folder: Path, capsys) -> None:
    assert main(["bench", "train", "--data", str(tmp_path / "nowhere")]) == 2
    assert "cifar10-jpg" in capsys.readouterr().err
    assert main(["bench", "train", "--data", str(folder), "--model", "vgg"]) == 2
    assert "mobilenet_v2" in capsys.readouterr().err
    assert main(["bench", "train", "--data", str(folder), "--batch", "64"]) == 2
    assert "larger than the 12 images" in capsys.readouterr().err


@pytest.mark.parametrize(("shape", "pad", "flip"), [((16, 3, 12, 10), 3, True), ((5, 3, 32, 32), 4, True),
                                                    ((4, 1, 7, 9), 2, False), ((6, 3, 8, 8), 0, True)])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_crop_flip_has_augments_draws_and_pixels(shape, pad: int, flip: bool, dtype: torch.dtype) -> None:
    from advtransfer.scale.bench_train import crop_flip

    x = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(2), dtype=torch.uint8).to(dtype)
    for seed in range(3):
        ours, theirs = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        assert torch.equal(crop_flip(x, ours, pad=pad, flip=flip), augment(x, theirs, pad=pad, flip=flip))
        assert torch.equal(ours.get_state(), theirs.get_state())  # the same draws, so the same later batches
    assert crop_flip(x, torch.Generator(), pad=0, flip=False) is x
    with pytest.raises(ValueError, match="batch"):
        crop_flip(x[0], torch.Generator())


@pytest.mark.parametrize("chunk", [1, 2])
def test_kit_batches_are_the_inline_pipelines_batches_made_ahead(folder: Path, tmp_path: Path, chunk: int) -> None:
    """The order and augmentation of reading, augmenting and converting ``chunk`` batches at a time in the loop,
    made in the prefetch thread and handed out a batch at a time."""
    from advtransfer.scale.bench_train import kit_batches

    cached = cached_image_folder(folder, 16, tmp_path / "cache")
    generator = torch.Generator().manual_seed(3)
    expected = []
    for _epoch in range(3):  # 12 images, batch 5: two batches an epoch (drop_last), a new order each epoch
        order = torch.randperm(len(cached), generator=generator)
        for start in range(0, 10, 5 * chunk):
            idx = order[start:min(start + 5 * chunk, 10)]
            x = augment(cached.images.u8(idx), generator, pad=2).float().div_(255)
            expected += [(x[i:i + 5], cached.labels[idx][i:i + 5]) for i in range(0, len(idx), 5)]
    with kit_batches(cached, None, 5, 16, seed=3, chunk=chunk) as batches:
        got = [next(batches) for _ in range(6)]
        thread = batches._thread
        assert thread.name == "advtransfer-prefetch"
    assert not thread.is_alive()
    for (x, y), (x0, y0) in zip(got, expected, strict=True):
        assert x.dtype == torch.float32 and x.shape == (5, 3, 16, 16) and torch.equal(x, x0) and torch.equal(y, y0)
    images = cached.images.u8(torch.arange(len(cached)))  # an in-memory uint8 tensor gives the same batches
    with kit_batches(images, cached.labels, 5, 16, seed=3, chunk=chunk) as batches:
        assert all(torch.equal(next(batches)[0], x0) for x0, _ in expected)


def test_kit_batches_default_chunk_is_a_few_megabytes(monkeypatch: pytest.MonkeyPatch) -> None:
    from advtransfer.scale import bench_train

    seen = []
    real = bench_train._kit_source

    def spy(read, labels, batch, chunk, generator):
        seen.append(chunk)
        return real(read, labels, batch, chunk, generator)

    monkeypatch.setattr(bench_train, "_kit_source", spy)
    for px in (32, 224):
        bench_train.kit_batches(torch.zeros(64, 3, px, px, dtype=torch.uint8), torch.zeros(64, dtype=torch.long), 64,
                                px, seed=0).close()
    assert seen == [21, 1]  # 4 MiB of uint8: 21 batches of 64 at 32 px, one batch (at least) at 224 px
