"""Batches prepared ahead: the next batch is read, converted (and moved to the GPU) while the current step runs.

Why: a training step that waits for its data leaves the CPU core or the GPU idle for that time. Measured with
``advtransfer bench train`` (BaseNet, cifar10-jpg, 1 torch thread, a 2-core machine busy with other jobs): reading,
augmenting and converting in the training loop left 11% of the step waiting for data; made ahead in this thread, a
chunk of batches at a time (``split``), 3% (README, "Speed and scale").

The GIL: the caller's step holds it between its many short kernels, and CPython hands it to a waiting thread only
every few milliseconds, so on a busy machine every hand-over between the two threads can cost the caller a
millisecond or more. With one small batch per hand-over (BaseNet at 32 px: a 6 ms step) that was 6-8% of the step;
handing over chunks of 16-32 batches and splitting them in the caller's thread (views, no copy) makes it rare.

:func:`prefetch` wraps any iterable of batches (tuples whose tensors are the batch; other items, such as fit()'s
global batch size, pass through unchanged):

* **CPU**: a background thread takes batches from the source (and applies ``transform``) while the caller computes;
  a bounded queue (``depth`` batches) keeps memory bounded. Torch's kernels release the GIL, so reading the memory
  map, augmenting and converting overlap the step on a second core.
* **CUDA** (``device`` a CUDA device): the thread also copies each tensor into pinned memory and sends it to the
  GPU on a side stream (``non_blocking``), runs ``transform`` there (augmentation on the device), and records an
  event; the caller's stream waits for that event before using the batch, and the tensors are marked as used by it
  (``record_stream``), so the caching allocator never reuses their memory too early.

Same batches, same order, same values: one thread takes the batches from the source in order, and the queue hands
them over in that order. The first batch is taken in the caller's thread, at the caller's first ``next()``, as it
would be without prefetching: whatever a source does when it starts (a ``DataLoader`` iterator draws its base seed
from the global RNG when it is created) happens at the same point of the caller's RNG stream. Sources must not draw
from the global RNG after their first batch (none of the kit's do: they index tensors, read a memory map, or run a
``DataLoader`` over a fixed batch order; augmentation takes an explicit generator). An exception in the source
reaches the caller at the batch where it happened; ``close()`` (or leaving a ``with`` block, or dropping the
iterator) stops the thread.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch

__all__ = ["Prefetcher", "prefetch"]

_ITEM, _DONE, _ERROR = "item", "done", "error"
_POLL_SECONDS = 0.1  # how often a blocked producer checks whether the consumer has gone


def prefetch(batches: Iterable, *, device: torch.device | str | None = None,
             transform: Callable[..., tuple] | None = None, memory_format: torch.memory_format | None = None,
             depth: int = 2, split: int | None = None) -> Prefetcher:
    """``batches``, each prepared in a background thread while the caller works on the one before.

    ``device``: a CUDA device moves every tensor there (pinned memory, side stream) before ``transform``; None or a
    CPU device leaves them where they are. ``transform(*batch) -> batch``: applied in the thread, after the move
    (e.g. augmentation and the uint8 -> float conversion, on the GPU where there is one). ``memory_format``: the
    layout of each batch's first tensor when it is 4-D (``torch.channels_last``: the layout the kit trains in, so
    the step's own conversion becomes a no-op). ``depth``: batches kept ready (memory: ``depth + 2`` batches at
    most, one in use, ``depth`` queued, one being made). ``split``: the source's items are chunks of several
    batches, handed out as batches of ``split`` along the first dimension of their tensors (views, in order; the
    last may be smaller), so the hand-over between the threads, and the GIL it needs, happens once a chunk.
    """
    return Prefetcher(batches, device=device, transform=transform, memory_format=memory_format, depth=depth,
                      split=split)


class Prefetcher(Iterator):
    """The iterator :func:`prefetch` returns; ``wait_seconds``: time the caller spent blocked in ``next()``."""

    def __init__(self, batches: Iterable, *, device: torch.device | str | None = None,
                 transform: Callable[..., tuple] | None = None, memory_format: torch.memory_format | None = None,
                 depth: int = 2, split: int | None = None) -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth {depth}: at least 1")
        if split is not None and split < 1:
            raise ValueError(f"prefetch split {split}: at least 1")
        self._split = split
        self._ready: deque[tuple] = deque()  # batches of the current chunk (split)
        self._source = iter(batches)
        self.device = torch.device(device) if device is not None else None
        cuda = self.device is not None and self.device.type == "cuda"
        stream = torch.cuda.Stream(self.device) if cuda else None
        self._stage = _Stage(self.device if cuda else None, stream, transform, memory_format)
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        self.wait_seconds = 0.0

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> tuple:
        if self._ready:
            return self._ready.popleft()
        if self._split is None:
            return self._next_item()
        while not self._ready:  # an empty chunk adds nothing: take the next
            chunk = self._next_item()
            n = next(len(t) for t in chunk if isinstance(t, torch.Tensor))
            self._ready.extend(tuple(t[i:i + self._split] if isinstance(t, torch.Tensor) else t for t in chunk)
                               for i in range(0, n, self._split))
        return self._ready.popleft()

    def _next_item(self) -> tuple:
        if self._finished:
            raise StopIteration
        if self._thread is None:
            # The first batch in the caller's thread, at the caller's first next() (see the module docstring).
            try:
                batch = self._stage(next(self._source))
            except StopIteration:
                self._finished = True
                raise
            self._thread = threading.Thread(target=_produce, args=(self._source, self._stage, self._queue,
                                                                   self._stop), name="advtransfer-prefetch",
                                            daemon=True)
            self._thread.start()
            return _hand_over(batch, self.device)
        t0 = time.perf_counter()
        kind, payload = self._queue.get()
        self.wait_seconds += time.perf_counter() - t0
        if kind == _ITEM:
            return _hand_over(payload, self.device)
        self._finished = True
        self._join()
        if kind == _ERROR:
            raise payload
        raise StopIteration

    def close(self) -> None:
        """Stop the background thread (it finishes the batch it is making) and release the source."""
        self._finished = True
        self._stop.set()
        self._join()
        close = getattr(self._source, "close", None)
        if close is not None and (self._thread is None or not self._thread.is_alive()):
            close()

    def _join(self) -> None:
        if self._thread is None:
            return
        while self._thread.is_alive():
            try:  # a producer blocked on a full queue gets room to notice the stop
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=_POLL_SECONDS)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        stop = getattr(self, "_stop", None)  # absent if __init__ refused its arguments
        if stop is not None:
            stop.set()  # the thread holds no reference to this object, so dropping it ends the thread


class _Stage:
    """One batch made ready: moved to the device (CUDA: pinned memory, side stream), transformed, laid out."""

    def __init__(self, device: torch.device | None, stream: Any, transform: Callable[..., tuple] | None,
                 memory_format: torch.memory_format | None) -> None:
        self.device, self.stream, self.transform, self.memory_format = device, stream, transform, memory_format

    def __call__(self, batch: Any) -> tuple[tuple, Any]:
        batch = tuple(batch)
        if self.stream is None:
            return self._finish(batch), None
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            moved = tuple(t.pin_memory().to(self.device, non_blocking=True)
                          if isinstance(t, torch.Tensor) and t.device.type == "cpu" else t for t in batch)
            ready = self._finish(moved)
            event = torch.cuda.Event()
            event.record(self.stream)
        return ready, event

    def _finish(self, batch: tuple) -> tuple:
        if self.transform is not None:
            batch = tuple(self.transform(*batch))
        if self.memory_format is not None and batch and isinstance(batch[0], torch.Tensor) and batch[0].ndim == 4:
            batch = (batch[0].contiguous(memory_format=self.memory_format), *batch[1:])
        return batch


def _hand_over(staged: tuple[tuple, Any], device: torch.device | None) -> tuple:
    batch, event = staged
    if event is not None:  # CUDA: the caller's stream waits for the copy and transform, then owns the tensors
        current = torch.cuda.current_stream(device)
        current.wait_event(event)
        for t in batch:
            if isinstance(t, torch.Tensor) and t.is_cuda:
                t.record_stream(current)
    return batch


def _produce(source: Iterator, stage: _Stage, out: queue.Queue, stop: threading.Event) -> None:
    """The background thread: every later batch of ``source``, staged, into ``out`` in order; then done, or the
    exception. Holds no reference to the Prefetcher, so an abandoned one is collected and sets ``stop``."""

    def put(message: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                out.put(message, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    try:
        for batch in source:
            if stop.is_set() or not put((_ITEM, stage(batch))):
                return
        put((_DONE, None))
    except BaseException as exc:  # handed to the consumer, which raises it at this batch
        put((_ERROR, exc))
