"""Training-step throughput with two input pipelines on the same images and the same model (issue 6).

One training step = what :func:`advtransfer.engine.train.fit` does per batch: channels_last input, forward,
cross-entropy, backward, optimizer step, ``loss.item()``. The two pipelines feed it the same images with the same
augmentation (random crop with S/8 pixels of zero padding, random horizontal flip):

* ``plain``: torchvision ``ImageFolder`` + ``transforms`` (PIL decode, ``Resize((S, S))``, ``RandomCrop``,
  ``RandomHorizontalFlip``, ``ToTensor``) + ``DataLoader(num_workers=W, shuffle=True)``; W defaults to the CPU
  count (2 on the development machines: one decoding process per core, the usual advice). ``--workers 1,2,3``
  measures each W in every round and takes the speedup against the fastest, so the comparison does not hang on
  one choice of W.
* ``kit``: the images decoded once into the uint8 tensor cache (:mod:`advtransfer.data.tensor_cache`), then a
  memory-mapped read, the same augmentation on the uint8 images (:func:`crop_flip`: the distribution of
  :func:`~advtransfer.data.tensor_cache.augment`, as one gather) and the float conversion, a chunk of batches at a
  time, in a prefetch thread of the training process (:mod:`advtransfer.data.prefetch`) that makes the next batches
  while the current step runs (:func:`kit_batches`).
  Building the cache is a one-off cost, reported apart and not counted in the kit's images per second.

Both pipelines train one model (and optimizer) per model name, so they do the same arithmetic. Each pipeline is
timed in windows of ``warmup`` untimed steps then ``steps`` timed ones, in the order plain, kit, kit, plain, ...
(rounds alternate the order, so drift in machine load hits both alike). A plain window starts a fresh
DataLoader (its worker start-up falls in the warm-up) and shuts its workers down at the end, so they never steal
CPU from the kit's window; a kit window likewise stops its prefetch thread. ``data wait`` is the time blocked on
the next batch (``next()`` of the DataLoader, or of the kit's prefetcher: what its thread had not finished while the
step ran) over the window's time. On 2 cores the plain pipeline costs twice: as that wait, and as a slower step,
since its worker processes take CPU from the training process; so compare images per second, not only the wait.
On a machine shared with other jobs, ``--threads 1``: a 2-thread pool whose second thread is descheduled spins at
every operation (measured here under load: BaseNet's step 4x slower, ResNet-18's 4x).

Models (``--size`` applies to study 1): study 1's MobileNetV2 is torchvision's, width 1.0, ImageNet normalisation
inside, Adam lr 1e-4 (study 1's schedule); study 2's BaseNet and ResNet-18 (from scratch, no resize layer) at 32 px,
SGD lr 1e-3 momentum 0.9 (study 2's schedule). Weights are random: a step costs the same whatever the weights.
"""

from __future__ import annotations

import gc
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import provenance
from ..config.common import Phase
from ..data.prefetch import Prefetcher, prefetch
from ..data.tensor_cache import CachedImages, load_or_build
from ..engine.train import make_optimizer
from ..errors import ConfigError, DataError
from ..models.basenet import basenet
from ..models.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from ..models.mobilenet import build_mobilenet_v2, wrap
from ..models.resnet import resnet18_scratch

__all__ = ["CHUNK_BYTES", "MODELS", "bench_train", "crop_flip", "format_train_table", "kit_batches", "timed_window"]


@dataclass(frozen=True)
class BenchModel:
    study: int
    phase: Phase  # the study's optimizer and learning rate
    fixed_px: int | None  # input size; None: --size
    build: Callable[[int], nn.Module]  # num_classes -> model taking [0, 1] images

    def input_px(self, size: int) -> int:
        return self.fixed_px or size


MODELS: dict[str, BenchModel] = {
    "mobilenet_v2": BenchModel(1, Phase("adam", 1e-4, 1), None,
                               lambda k: wrap(build_mobilenet_v2(k, width_mult=1.0, seed=0), "imagenet")),
    "basenet": BenchModel(2, Phase("sgd", 1e-3, 1), 32,
                          lambda k: ImageClassifier(basenet(k, seed=0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))),
    "resnet18": BenchModel(2, Phase("sgd", 1e-3, 1), 32,
                           lambda k: ImageClassifier(resnet18_scratch(k, 0), IMAGENET_MEAN, IMAGENET_STD)),
}


def _cpus() -> int:
    """CPUs this process may run on (respects taskset and cgroup-pinned affinity)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _pad(px: int) -> int:
    return px // 8  # CIFAR's usual 4 pixels at 32 px, scaled with the image


# ------------------------------------------------------------------------------------------------ pipelines ---


def _plain_dataset(root: Path, px: int, indices: np.ndarray):
    from torch.utils.data import Subset
    from torchvision import datasets, transforms

    tf = transforms.Compose([
        transforms.Resize((px, px), interpolation=transforms.InterpolationMode.BILINEAR),  # as the kit's decode
        transforms.RandomCrop(px, padding=_pad(px)),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
    ])
    return Subset(datasets.ImageFolder(str(root), transform=tf), indices.tolist())


def _plain_batches(dataset, batch: int, workers: int, seed: int) -> tuple[Iterator, Callable[[], None]]:
    """Endless shuffled batches from a fresh DataLoader, and a function that shuts its workers down."""
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch, shuffle=True, drop_last=True, num_workers=workers,
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(seed))
    state = {"it": iter(loader)}

    def gen():
        while True:
            try:
                yield next(state["it"])
            except StopIteration:  # next epoch (persistent workers: no restart)
                state["it"] = iter(loader)

    def close() -> None:
        it = state.pop("it", None)
        if it is not None and hasattr(it, "_shutdown_workers"):
            it._shutdown_workers()  # join the workers now, not whenever the garbage collector runs
        gc.collect()

    return gen(), close


def _kit_source(read_u8: Callable[[torch.Tensor], torch.Tensor], labels: torch.Tensor, batch: int, chunk: int,
                generator: torch.Generator) -> Iterator:
    """Endless shuffled uint8 chunks of ``chunk`` batches each (one permutation per epoch, drop_last per batch as
    the plain DataLoader; the last chunk of an epoch may hold fewer batches); ``read_u8(indices)``: e.g. the tensor
    cache's memory-mapped read."""
    n = len(labels)
    usable = n - n % batch
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, usable, batch * chunk):
            idx = order[start:min(start + batch * chunk, usable)]
            yield read_u8(idx), labels[idx]


def crop_flip(x: torch.Tensor, generator: torch.Generator, *, pad: int = 4, flip: bool = True) -> torch.Tensor:
    """:func:`~advtransfer.data.tensor_cache.augment` (random crop with ``pad`` pixels of zero padding, then a random
    horizontal flip) with the same draws from ``generator`` and the same pixels, as one gather: the flip is folded
    into each image's column index, instead of a strided window gather, a flipped copy of the whole batch and a
    select. 2.4x faster on a (64, 3, 32, 32) uint8 batch (0.20 ms vs 0.49 ms, 1 thread, development machine); on
    x's device (the draws on the generator's, as augment)."""
    if x.ndim != 4:
        raise ValueError(f"crop_flip expects a (B, C, H, W) batch, got shape {tuple(x.shape)}")
    if pad <= 0 and not flip:
        return x
    n, c, h, w = x.shape
    gdev, dev = generator.device, x.device
    rows = torch.arange(h, device=dev).expand(n, h)
    cols = torch.arange(w, device=dev).expand(n, w)
    if pad > 0:
        offsets = torch.randint(0, 2 * pad + 1, (2, n), generator=generator, device=gdev).to(dev)
        rows, cols = rows + offsets[0][:, None], cols + offsets[1][:, None]
        x = F.pad(x, (pad, pad, pad, pad))
    if flip:
        mask = (torch.rand(n, generator=generator, device=gdev) < 0.5).to(dev)
        cols = torch.where(mask[:, None], cols.flip(1), cols)  # output column j reads window column w - 1 - j
    index = (rows[:, :, None] * (w + 2 * max(pad, 0)) + cols[:, None, :]).view(n, 1, h * w).expand(n, c, h * w)
    return x.reshape(n, c, -1).gather(2, index).view(n, c, h, w)


CHUNK_BYTES = 4 << 20  # uint8 bytes the kit pipeline reads and augments at once (21 batches of 64 at 32 px)


def kit_batches(images: CachedImages | torch.Tensor, labels: torch.Tensor | None, batch: int, px: int, seed: int,
                device: torch.device | str = "cpu", chunk: int | None = None) -> Prefetcher:
    """Endless shuffled, augmented float batches (on ``device``) of ``images`` (the tensor cache, or an in-memory
    uint8 (N, 3, S, S) tensor with its ``labels``), prepared by :func:`~advtransfer.data.prefetch.prefetch` while the
    step runs: the uint8 read, the augmentation (:func:`crop_flip`) and the float conversion in its thread on a CPU;
    on CUDA the uint8 chunk (4x smaller than float) goes to the GPU on a side stream and is augmented and converted
    there. ``chunk`` batches are made at once (default: :data:`CHUNK_BYTES` of uint8, at least one batch) and handed
    out one by one: on a busy 2-core machine the two threads' GIL hand-overs, once a batch, cost more than the work
    (measured, BaseNet: 6-8% of the step waiting with one batch at a time, 3-4% with 16-32). ``close()`` it after
    use, so its thread stops. The layout stays NCHW: the step converts to channels_last, as it does for the plain
    pipeline's batches."""
    device = torch.device(device)
    if isinstance(images, CachedImages):
        read_u8, labels = images.images.u8, images.labels
    else:
        read_u8 = images.__getitem__
    if chunk is None:
        chunk = max(1, CHUNK_BYTES // (batch * 3 * px * px))
    order_gen = torch.Generator().manual_seed(seed)
    # CPU: one generator for the order and the augmentation, drawn in turn by the one producing thread; CUDA: the
    # augmentation draws on the device.
    aug_gen = order_gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(seed)
    pad = _pad(px)

    def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return crop_flip(x, aug_gen, pad=pad).div(255.0), y  # uint8 / 255 -> float32, as load_image

    return prefetch(_kit_source(read_u8, labels, batch, chunk, order_gen), device=device, transform=transform,
                    split=batch)


def timed_window(batches: Iterator, step: Callable, warmup: int, steps: int) -> dict:
    """``warmup`` untimed steps, then ``steps`` timed ones: images, seconds, and seconds blocked in ``next()``."""
    for _ in range(warmup):
        step(*next(batches))
    wait, seen = 0.0, 0
    t_start = time.perf_counter()
    for _ in range(steps):
        t0 = time.perf_counter()
        x, y = next(batches)
        wait += time.perf_counter() - t0
        step(x, y)
        seen += len(y)
    seconds = time.perf_counter() - t_start
    return {"images": seen, "seconds": seconds, "wait_seconds": wait}


def _train_step(model: nn.Module, phase: Phase) -> Callable[[torch.Tensor, torch.Tensor], float]:
    model.to(memory_format=torch.channels_last).train()
    optimizer = make_optimizer(phase, [p for p in model.parameters() if p.requires_grad])

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        logits = model(x.contiguous(memory_format=torch.channels_last))
        loss = F.cross_entropy(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def _summary(windows: list[dict]) -> dict:
    images = sum(w["images"] for w in windows)
    seconds = sum(w["seconds"] for w in windows)
    wait = sum(w["wait_seconds"] for w in windows)
    steps = sum(w["steps"] for w in windows)
    return {"img_per_s": images / seconds, "data_wait_share": wait / seconds, "ms_per_step": 1e3 * seconds / steps,
            "windows_img_per_s": [w["images"] / w["seconds"] for w in windows]}


# ---------------------------------------------------------------------------------------------------- bench ---


def bench_train(data: Path, models: list[str], *, batch: int = 64, steps: int = 30, warmup: int = 5, rounds: int = 2,
                size: int = 96, workers: Sequence[int] | None = None, limit: int | None = None,
                cache_dir: Path | None = None, threads: int | None = None,
                log: Callable[[str], None] = print) -> dict:
    """Images per second of one training step per model and pipeline (see the module docstring).

    ``workers``: the plain pipeline's DataLoader worker counts to measure (default: the CPU count); with several,
    each is measured in every round and the speedup is taken against the fastest. ``threads``: torch's intra-op
    threads in the training process for the run (restored after); default: torch's own.
    """
    saved_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _bench_train(data, models, batch=batch, steps=steps, warmup=warmup, rounds=rounds, size=size,
                            workers=workers, limit=limit, cache_dir=cache_dir, log=log)
    finally:
        torch.set_num_threads(saved_threads)


def _bench_train(data: Path, models: list[str], *, batch: int, steps: int, warmup: int, rounds: int, size: int,
                 workers: Sequence[int] | None, limit: int | None, cache_dir: Path | None,
                 log: Callable[[str], None]) -> dict:
    from torchvision import datasets

    data = Path(data)
    if not data.is_dir():
        raise DataError(f"--data {data} does not exist: give an ImageFolder tree <dir>/<class>/<images>, e.g. "
                        "`advtransfer data fetch cifar10-jpg --data-root DIR` then --data DIR/cifar10-jpg/test")
    unknown = [m for m in models if m not in MODELS]
    if unknown or not models:
        raise ConfigError(f"--model {','.join(unknown) or '(none)'}; valid: all or a comma-separated list of "
                          f"{', '.join(MODELS)}")
    worker_counts = [_cpus()] if not workers else list(dict.fromkeys(workers))
    if any(w < 0 for w in worker_counts):
        raise ConfigError(f"--workers {','.join(map(str, worker_counts))}: DataLoader worker counts are >= 0")
    folder = datasets.ImageFolder(str(data))
    n_all = len(folder.samples)
    if limit is not None and limit < n_all:
        indices = np.sort(np.random.default_rng(0).choice(n_all, size=limit, replace=False))
    else:
        indices = np.arange(n_all)
    if len(indices) < batch:
        raise ConfigError(f"--batch {batch} is larger than the {len(indices)} images of {data}")
    files = [Path(folder.samples[i][0]) for i in indices]
    labels = np.asarray([folder.samples[i][1] for i in indices], dtype=np.int64)

    tmp = None
    if cache_dir is None:  # a fresh cache every run, so its build time is measured
        tmp = tempfile.TemporaryDirectory(prefix="advtransfer-bench-")
        cache_dir = Path(tmp.name)
    try:
        caches: dict[int, CachedImages] = {}
        cache_rows = []
        for px in sorted({MODELS[m].input_px(size) for m in models}):
            path = Path(cache_dir) / f"bench-{data.name}-{len(indices)}-{px}px.bin"
            cached = load_or_build(path, data, files, labels, px, classes=folder.classes, log=log)
            caches[px] = cached
            cache_rows.append({"input_px": px, "path": str(path), "built": cached.built,
                               "build_seconds": round(cached.build_seconds, 3),
                               "build_img_per_s": len(indices) / cached.build_seconds if cached.built else None,
                               "megabytes": round(path.stat().st_size / 1e6, 2)})
        rows = []
        for name in models:
            spec = MODELS[name]
            px = spec.input_px(size)
            model = spec.build(len(folder.classes))
            step = _train_step(model, spec.phase)
            plain_ds = _plain_dataset(data, px, indices)
            pipelines = [*(f"plain-{w}" for w in worker_counts), "kit"]
            windows: dict[str, list[dict]] = {p: [] for p in pipelines}
            for r in range(rounds):
                for pipeline in (pipelines if r % 2 == 0 else pipelines[::-1]):
                    if pipeline == "kit":
                        with kit_batches(caches[px], None, batch, px, seed=r) as batches:
                            w = timed_window(batches, step, warmup, steps)
                    else:
                        batches, close = _plain_batches(plain_ds, batch, int(pipeline.split("-")[1]), seed=r)
                        try:
                            w = timed_window(batches, step, warmup, steps)
                        finally:
                            close()
                    windows[pipeline].append({**w, "steps": steps})
                    log(f"{name} {px}px round {r + 1}/{rounds} {pipeline}: {w['images'] / w['seconds']:.1f} img/s, "
                        f"data wait {w['wait_seconds'] / w['seconds']:.0%}")
            kit = _summary(windows["kit"])
            plain_all = [{"workers": w, **_summary(windows[f"plain-{w}"])} for w in worker_counts]
            plain = max(plain_all, key=lambda p: p["img_per_s"])
            rows.append({"model": name, "study": spec.study, "input_px": px, "augment_pad": _pad(px),
                         "optimizer": f"{spec.phase.optimizer} lr {spec.phase.lr:g}",
                         "parameters": sum(p.numel() for p in model.parameters()),
                         "plain": plain, "plain_by_workers": plain_all, "kit": kit,
                         "speedup": kit["img_per_s"] / plain["img_per_s"],
                         "speedup_by_workers": {str(p["workers"]): kit["img_per_s"] / p["img_per_s"]
                                                for p in plain_all}})
    finally:
        if tmp is not None:
            tmp.cleanup()
    return {
        "benchmark": "train-step throughput: plain DataLoader vs tensor cache",
        "data": str(data), "n_images": len(indices), "n_classes": len(folder.classes), "batch": batch,
        "steps": steps, "warmup": warmup, "rounds": rounds, "mobilenet_size": size,
        "plain_pipeline": f"torchvision ImageFolder + transforms (PIL decode, Resize, RandomCrop, "
                          f"RandomHorizontalFlip, ToTensor) + DataLoader(num_workers="
                          f"{'|'.join(map(str, worker_counts))}, shuffle=True)",
        "kit_pipeline": "tensor cache (uint8 memmap) + tensor augment (crop + flip, one gather) + float, made a chunk "
                        "of batches at a time in a prefetch thread of the training process while the step runs",
        "plain_workers": worker_counts, "cpu_count": _cpus(), "torch_threads": torch.get_num_threads(),
        "cache": cache_rows, "rows": rows, "provenance": provenance.collect(torch.device("cpu")),
    }


def format_train_table(result: dict) -> str:
    lines = [f"train step, batch {result['batch']}, {result['rounds']} x {result['steps']} timed steps per pipeline "
             f"after {result['warmup']} warm-up steps, {result['n_images']} images of {result['data']}",
             f"plain: {result['plain_pipeline']}", f"kit:   {result['kit_pipeline']}",
             f"torch threads {result['torch_threads']}, CPUs {result['cpu_count']}"]
    for c in result["cache"]:
        built = (f"built in {c['build_seconds']:.1f} s ({c['build_img_per_s']:.0f} img/s)" if c["built"]
                 else "reused")
        lines.append(f"cache {c['input_px']} px (one-off, not in kit img/s): {built}, {c['megabytes']:.1f} MB")
    lines.append(f"{'model':<14} {'study':>5} {'px':>4}  {'pipeline':<20} {'img/s':>9} {'data wait':>9} "
                 f"{'ms/step':>8} {'kit speedup':>11}")
    for r in result["rows"]:
        k = r["kit"]
        head = f"{r['model']:<14} {r['study']:>5} {r['input_px']:>4}"
        for p in r["plain_by_workers"]:
            best = " (best plain)" if len(r["plain_by_workers"]) > 1 and p == r["plain"] else ""
            name = f"plain, {p['workers']} worker{'s' if p['workers'] != 1 else ''}"
            lines.append(f"{head}  {name:<20} {p['img_per_s']:>9.1f} {p['data_wait_share']:>9.0%} "
                         f"{p['ms_per_step']:>8.1f} {k['img_per_s'] / p['img_per_s']:>10.2f}x{best}")
            head = " " * len(head)
        lines.append(f"{head}  {'kit (tensor cache)':<20} {k['img_per_s']:>9.1f} {k['data_wait_share']:>9.0%} "
                     f"{k['ms_per_step']:>8.1f}")
    return "\n".join(lines)
