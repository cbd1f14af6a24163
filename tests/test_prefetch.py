"""advtransfer.data.prefetch: batches prepared in a background thread, same batches in the same order, and fit()
bit-identical with and without it on CPU. Fast; the CUDA path runs only where a GPU is visible."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from advtransfer.config.common import Phase
from advtransfer.data import prefetch as prefetch_module
from advtransfer.data.images import FileImages, TensorImages
from advtransfer.data.prefetch import Prefetcher, prefetch
from advtransfer.engine import train
from advtransfer.errors import DataError

pytestmark = pytest.mark.usefixtures("one_thread")


class Source:
    """Batches i = 0..n-1 (a tensor filled with i, and i itself), logging which thread asked for each."""

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.threads: list[str] = []
        self.asked = threading.Event()
        self.closed = False

    def __iter__(self):
        try:
            for i in range(self.n):
                self.threads.append(threading.current_thread().name)
                self.asked.set()
                if i == self.fail_at:
                    raise DataError(f"cannot read image {i}")
                yield torch.full((2, 3, 4, 4), float(i)), torch.tensor([i, i]), i
        finally:
            self.closed = True


def _wait(condition, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_same_batches_in_the_same_order() -> None:
    got = list(prefetch(Source(7)))
    want = list(Source(7))
    assert len(got) == 7
    for (x, y, i), (x0, y0, i0) in zip(got, want):
        assert torch.equal(x, x0) and torch.equal(y, y0) and i == i0  # non-tensor items pass through


def test_first_batch_in_the_callers_thread_then_the_background_thread() -> None:
    source = Source(4)
    it = prefetch(source)
    assert source.threads == []  # nothing is read before the caller's first next()
    next(it)
    assert source.threads[0] == threading.current_thread().name
    list(it)
    assert set(source.threads[1:]) == {"advtransfer-prefetch"}


def test_the_next_batch_is_made_while_the_caller_works_and_the_queue_is_bounded() -> None:
    source = Source(50)
    it = prefetch(source, depth=1)
    next(it)
    # Without another next(), the thread reads ahead: batch 1 into the queue, batch 2 made and waiting for room.
    assert _wait(lambda: len(source.threads) >= 3)
    time.sleep(0.3)
    assert len(source.threads) == 3  # depth 1: never more than depth + 1 batches ahead of the caller
    next(it)
    assert _wait(lambda: len(source.threads) == 4)
    it.close()


def test_the_first_batch_draws_from_the_global_rng_where_it_would_without_prefetch() -> None:
    """A DataLoader iterator draws its base seed from the global RNG when created: at the caller's first next()."""
    def starts_with_a_draw():
        seed = torch.empty((), dtype=torch.int64).random_()  # what DataLoader.__iter__ does
        for i in range(3):
            yield torch.tensor([i]), seed

    def run(wrap) -> list[torch.Tensor]:
        torch.manual_seed(0)
        it = wrap(starts_with_a_draw())
        torch.manual_seed(1)  # fit() seeds dropout after building the iterator, before the loop
        draws = []
        for _x, seed in it:
            draws.append(seed.clone())
            draws.append(torch.rand(2))  # dropout in the step
        return draws

    plain, ahead = run(iter), run(prefetch)
    assert len(plain) == len(ahead) == 6
    assert all(torch.equal(a, b) for a, b in zip(plain, ahead))


def test_an_error_in_the_source_reaches_the_caller_at_its_batch() -> None:
    it = prefetch(Source(5, fail_at=2))
    assert [i for _x, _y, i in (next(it), next(it))] == [0, 1]
    with pytest.raises(DataError, match="cannot read image 2"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_close_stops_the_thread_and_closes_the_source() -> None:
    source = Source(1000)
    with prefetch(source, depth=2) as it:
        next(it)
        next(it)
        thread = it._thread
    assert not thread.is_alive() and source.closed
    assert len(source.threads) < 10


def test_a_dropped_prefetcher_ends_its_thread() -> None:
    source = Source(1000)
    it = prefetch(source, depth=1)
    next(it)
    thread = it._thread
    del it
    assert _wait(lambda: not thread.is_alive())


def test_transform_and_memory_format_are_applied_in_the_thread() -> None:
    seen = []

    def transform(x, y, i):
        seen.append(threading.current_thread().name)
        return x * 2, y, i

    out = list(prefetch(Source(3), transform=transform, memory_format=torch.channels_last))
    assert [float(x.max()) for x, _y, _i in out] == [0.0, 2.0, 4.0]
    assert all(x.is_contiguous(memory_format=torch.channels_last) for x, _y, _i in out)
    assert seen[1:] == ["advtransfer-prefetch"] * 2


def test_empty_source_and_bad_depth_or_split() -> None:
    assert list(prefetch(iter(()))) == []
    with pytest.raises(ValueError, match="depth"):
        Prefetcher([], depth=0)
    with pytest.raises(ValueError, match="split"):
        Prefetcher([], split=0)


def test_split_hands_out_chunks_as_batches_in_order() -> None:
    """A chunk crosses between the threads once and is cut into batches (views) in the caller's thread."""
    chunks = [(torch.arange(10.0), torch.arange(10), "a"), (torch.arange(0.0), torch.arange(0), "empty"),
              (torch.arange(10.0, 14.0), torch.arange(10, 14), "b")]
    got = list(prefetch(iter(chunks), split=4))
    assert [x.tolist() for x, _y, _tag in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [10, 11, 12, 13]]
    assert [y.tolist() for _x, y, _tag in got] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9], [10, 11, 12, 13]]
    assert [tag for _x, _y, tag in got] == ["a", "a", "a", "b"]  # the empty chunk adds nothing
    chunk = torch.arange(8.0)
    first, second = prefetch(iter([(chunk,)]), split=4)
    assert first[0].data_ptr() == chunk.data_ptr() and second[0].data_ptr() == chunk.data_ptr() + 16  # views


def test_wait_seconds_counts_the_time_blocked() -> None:
    def slow():
        for i in range(3):
            time.sleep(0.05)
            yield (torch.tensor([i]),)

    it = prefetch(slow())
    list(it)
    assert it.wait_seconds > 0.05  # two batches made in the thread while the caller did nothing


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_arrive_on_the_device_with_the_same_values() -> None:
    device = torch.device("cuda")
    got = list(prefetch(Source(5), device=device, transform=lambda x, y, i: (x.float() / 2, y, i),
                        memory_format=torch.channels_last))
    for (x, y, i), (x0, y0, i0) in zip(got, Source(5)):
        assert x.is_cuda and y.is_cuda and i == i0
        assert torch.equal(x.cpu(), x0 / 2) and torch.equal(y.cpu(), y0)


# ----------------------------------------------------------------------------------------------------- fit ---


def _model() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 10 * 10, 3))


def _jpegs(root: Path, n: int = 24) -> FileImages:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        paths.append(root / f"{i:02d}.jpg")
        Image.fromarray(rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)).save(paths[-1])
    return FileImages(paths, np.arange(n) % 3, 12)


def _tensors() -> TensorImages:
    g = torch.Generator().manual_seed(0)
    return TensorImages(torch.rand(40, 3, 12, 12, generator=g), torch.randint(0, 3, (40,), generator=g))


def _fit(dataset, ckpt: Path) -> dict[str, torch.Tensor]:
    model = _model()
    train.fit(model, (Phase("adam", 1e-2, 2),), dataset, None, seed=5, batch_size=8, ckpt_dir=ckpt,
              fingerprint="t", device=torch.device("cpu"), log=lambda msg: None)
    return model.state_dict()


@pytest.mark.parametrize("kind", ["files", "tensors"])
def test_fit_with_and_without_prefetch_gives_identical_weights(kind: str, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Same batches in the same order, and dropout's draws untouched: bit-identical on CPU. Image files go through
    a DataLoader, whose iterator draws from the global RNG when it starts."""
    dataset = _jpegs(tmp_path) if kind == "files" else _tensors()
    calls = []

    def spy(batches, **kwargs):
        calls.append(kwargs)
        return prefetch(batches, **kwargs)

    monkeypatch.setattr(train, "prefetch", spy)
    ahead = _fit(dataset, tmp_path / "a")
    assert calls == [{"device": torch.device("cpu"), "memory_format": torch.channels_last}] * 2  # one per epoch
    monkeypatch.setattr(train, "prefetch", lambda batches, **kwargs: iter(batches))
    plain = _fit(dataset, tmp_path / "b")
    assert plain.keys() == ahead.keys()
    for key in plain:
        assert torch.equal(plain[key], ahead[key]), key
    assert not torch.equal(_model().state_dict()["4.weight"], ahead["4.weight"])  # it did train


def test_module_exports() -> None:
    assert prefetch_module.__all__ == ["Prefetcher", "prefetch"]

