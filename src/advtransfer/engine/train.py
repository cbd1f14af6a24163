"""Training with per-epoch checkpoints and exact resume.

A killed run resumes from its last checkpoint and ends bit-identical to an uninterrupted one (on CPU): nothing
random depends on what happened before the current epoch. Epoch ``e`` shuffles with its own generator seeded from
``(seed, e)`` and runs dropout under a forked RNG seeded the same way, so the caller's global RNG is never touched
and no RNG state needs saving. The checkpoint holds the model, the optimizer state of the current phase, the epoch
and the history, and a fingerprint of everything that defines the run, so a checkpoint from another config is
never resumed.
"""

from __future__ import annotations

import math
import os
import re
import signal
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from ..config.common import PRECISIONS, Phase
from ..data.images import TensorImages, batches
from ..data.prefetch import prefetch
from ..errors import DataError, TrainingDiverged
from ..io import atomic_torch_save
from . import distributed
from .locks import training_lock

# Keras' optimizer defaults (the original ran on Keras): epsilon 1e-7, RMSprop rho 0.9.
KERAS_EPS = 1e-7
KERAS_RMSPROP_RHO = 0.9
SGD_MOMENTUM = 0.9  # study 2

# Test hook: kill this process with SIGKILL (or ADVTRANSFER_KILL_SIGNAL) right after writing the checkpoint of this
# epoch (1-based). Used by the resume-after-kill tests to interrupt a real CLI run at a known point.
KILL_AFTER_EPOCH_ENV = "ADVTRANSFER_KILL_AFTER_EPOCH"
KILL_SIGNAL_ENV = "ADVTRANSFER_KILL_SIGNAL"  # the signal of that test hook: KILL (default) or TERM

# Called with (training name, the epoch's history entry) after every epoch of every training, where a command set
# it (advtransfer.engine.tensorboard); a context variable, so the studies' code calling fit() stays unchanged.
EPOCH_HOOK: ContextVar[Callable[[str, dict], None] | None] = ContextVar("advtransfer_epoch_hook", default=None)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto``: bf16 autocast on CUDA, fp32 on a CPU. The precision changes every trained number, so it is never
    decided by which CPU a run lands on: an AMX CPU that chose bf16 by itself (this kit until December 2026) gave
    the demo other numbers than the CPU beside it, and on this project's AMX machine bf16 made the demo's small
    models slower and broke its study-2 pattern (``--precision bf16`` opts in; ``advtransfer bench train``
    measures it). Measured on this project's AVX-512 CPU without AMX: bf16 made a MobileNetV2 step 6x slower."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    return "bf16" if device.type == "cuda" else "fp32"


def make_optimizer(phase: Phase, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    # fused=True: one kernel over all parameters instead of a Python loop; on 2 CPU cores Adam's step over
    # ResNet-18's 11M parameters drops from 36 ms to 6 ms (a sixth of a batch-32 training step). RMSprop has no
    # fused implementation in torch 2.14.
    if phase.optimizer == "adam":
        return torch.optim.Adam(params, lr=phase.lr, eps=KERAS_EPS, fused=True)
    if phase.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=phase.lr, alpha=KERAS_RMSPROP_RHO, eps=KERAS_EPS, foreach=True)
    if phase.optimizer == "sgd":
        return torch.optim.SGD(params, lr=phase.lr, momentum=SGD_MOMENTUM, weight_decay=0.0, fused=True)
    raise ValueError(phase.optimizer)


def epoch_seed(seed: int, epoch: int, rank: int | None = None) -> int:
    """A distinct 63-bit seed per (run seed, epoch), and per rank under DDP (``rank`` given)."""
    entropy = [seed, epoch, 0xAD7] + ([] if rank is None else [rank])
    return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)
    resumed_from: int = 0  # epochs loaded from a checkpoint instead of trained in this call
    seconds: float = 0.0


def _checkpoints(ckpt_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for p in ckpt_dir.glob("epoch_*.pt"):
        m = re.fullmatch(r"epoch_(\d+)\.pt", p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def _phase_of(schedule: tuple[Phase, ...], epoch: int) -> int:
    """Index of the phase that runs 0-based ``epoch``."""
    end = 0
    for i, phase in enumerate(schedule):
        end += phase.epochs
        if epoch < end:
            return i
    raise IndexError(epoch)


def accuracy(model: nn.Module, dataset: Dataset, batch_size: int, device: torch.device, workers: int = 0) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in batches(dataset, batch_size, workers=workers):
            correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    return correct / max(1, len(dataset))


def fit(model: nn.Module, schedule: tuple[Phase, ...], train_set: Dataset, val_set: Dataset | None, *,
        ckpt_dir: Path, log: Callable[[str], None] = print, **options) -> FitResult:
    """Train ``model`` in place through ``schedule``, resuming from ``ckpt_dir``; see :func:`train` for every
    option. One process at a time trains into a checkpoint folder: another process that needs the same training
    (a shared pretraining, or the same command started twice) waits for it, then resumes from its final
    checkpoint instead of training again."""
    if not distributed.is_main():  # under torchrun rank 0 holds the lock for every rank
        return fit_unlocked(model, schedule, train_set, val_set, ckpt_dir=ckpt_dir, log=log, **options)
    with training_lock(ckpt_dir, log):
        return fit_unlocked(model, schedule, train_set, val_set, ckpt_dir=ckpt_dir, log=log, **options)


def fit_unlocked(
    model: nn.Module,
    schedule: tuple[Phase, ...],
    train_set: Dataset,
    val_set: Dataset | None,
    *,
    seed: int,
    batch_size: int,
    ckpt_dir: Path,
    fingerprint: str,
    device: torch.device,
    workers: int = 0,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
    eval_batch_size: int = 256,
    adversary: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    precision: str = "fp32",
    compile_model: bool = False,
    sync_batchnorm: bool = True,
) -> FitResult:
    """Train ``model`` in place through the phases of ``schedule``, resuming from ``ckpt_dir`` if possible.

    The last epoch's weights are kept (no model selection), as in both original studies. ``stop_after`` ends the
    call after that many total epochs (a simulated interruption, for tests).

    ``adversary(model, x, y, generator)`` turns every training batch into adversarial examples before the step
    (adversarial training on 100% adversarial batches, as study 2's original); its random starts draw from a
    per-epoch generator, so resumed adversarial training is exact too.

    ``precision``: ``fp32``, ``bf16`` (autocast for the training forward and loss; weights, optimizer state,
    attacks and evaluation stay fp32) or ``auto`` (see :func:`resolve_precision`). A precision other than fp32 is
    part of the checkpoint fingerprint, so a run never resumes across precisions. ``compile_model``: train through
    ``torch.compile(model)`` (same weights; worth it on a GPU for long runs, not on a CPU for gradient work).

    Data-parallel (inside a process group of W > 1 ranks, see :mod:`advtransfer.distributed`): every rank draws the
    same seeded order and takes its contiguous slice of each global batch (``torch.tensor_split``: sizes differ by
    at most one), so the global batch stays ``batch_size``. The training forward/backward runs through
    ``DistributedDataParallel``; each rank's loss is the *sum* of its examples' losses times W / (global batch
    size), and DDP averages gradients over the W ranks, so the step equals the single-process mean loss over the
    global batch, uneven last batch included. ``adversary`` crafts each rank's slice. Only rank 0 writes
    checkpoints (the others wait at a barrier); validation runs on every rank (deterministic, identical weights).
    Equal to a single-process run up to float summation order (tested: BaseNet, gloo, 2 ranks) for models without
    dropout or BatchNorm and adversaries without random starts: under DDP, dropout masks and random starts draw
    from per-rank seeds (deterministic for a given W, but not the single process's draws). BatchNorm: with
    ``sync_batchnorm`` (default) BatchNorm layers become ``SyncBatchNorm`` for training on CUDA, whose statistics
    over the global batch equal a single process's up to float rounding, and are swapped back afterwards; on CPU
    (gloo) PyTorch has no SyncBatchNorm, so BatchNorm normalises with per-rank statistics and running statistics
    follow rank 0 (DDP broadcasts buffers): close to, not equal to, a single-process run.
    """
    precision = resolve_precision(precision, device)
    if precision != "fp32":
        fingerprint = f"{fingerprint}/{precision}"
    total = sum(p.epochs for p in schedule)
    ckpt_dir = Path(ckpt_dir)
    result = FitResult()
    start_epoch, optimizer, opt_phase = 0, None, -1
    existing = _checkpoints(ckpt_dir)
    if existing:
        epoch_done, path = existing[-1]
        ckpt = _read_checkpoint(path)
        if ckpt["fingerprint"] == fingerprint and epoch_done <= total:
            try:
                model.load_state_dict(ckpt["model"])
            except RuntimeError as exc:
                raise _bad_checkpoint(path, str(exc).splitlines()[0]) from None
            result.history = list(ckpt["history"])
            start_epoch = result.resumed_from = epoch_done
            phase_idx = _phase_of(schedule, epoch_done - 1)
            if epoch_done < total and _phase_of(schedule, epoch_done) == phase_idx:
                optimizer = make_optimizer(schedule[phase_idx], _trainable(model))
                optimizer.load_state_dict(ckpt["optimizer"])
                opt_phase = phase_idx
            log(f"  resumed from {path.name} ({epoch_done}/{total} epochs done)")
        else:
            log(f"  ignoring checkpoints in {ckpt_dir}: they belong to another configuration")
            distributed.barrier()  # every rank has read them before rank 0 deletes them
            if distributed.is_main():
                for _, p in existing:
                    p.unlink()
    # channels_last: ~20% faster convolutions on CPU (measured, MobileNetV2 demo width) and the fast path for
    # cuDNN; values are the same, only the layout changes, and the model goes back to the default layout after
    # training so attacks and evaluation see ordinary tensors.
    model.to(device=device, memory_format=torch.channels_last)
    ddp, world, rank = distributed.active(), distributed.world_size(), distributed.rank()
    swapped_bn: list[tuple[nn.Module, str, nn.Module]] = []
    if ddp:
        if sync_batchnorm and device.type == "cuda":
            swapped_bn = _to_sync_batchnorm(model)
        elif _has_batchnorm(model):
            log("  DDP on CPU: BatchNorm uses per-rank batch statistics (PyTorch has no SyncBatchNorm on CPU); "
                "results are close to, not equal to, a single-process run")
        # DDP broadcasts rank 0's parameters and buffers on construction, so every rank starts identical.
        trainer: nn.Module = DistributedDataParallel(model)  # single-device module: device_ids not needed
    else:
        trainer = model
    forward = torch.compile(trainer) if compile_model else trainer
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    t_start = time.perf_counter()
    for epoch in range(start_epoch, total):
        if stop_after is not None and epoch >= stop_after:
            break
        phase_idx = _phase_of(schedule, epoch)
        phase = schedule[phase_idx]
        if opt_phase != phase_idx:
            optimizer, opt_phase = make_optimizer(phase, _trainable(model)), phase_idx
        t0 = time.perf_counter()
        es = epoch_seed(seed, epoch)
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(es))  # the same on every rank
        loss_sum, correct, seen = 0.0, 0, 0
        rs = epoch_seed(seed, epoch, rank) if ddp else es  # dropout and random starts: per rank under DDP
        attack_generator = torch.Generator(device=device).manual_seed(rs)
        if ddp:
            loader = _rank_batches(train_set, batch_size, order, rank, world, workers)
        else:
            loader = ((x, y, len(y)) for x, y in batches(train_set, batch_size, order, workers=workers))
        # The next batch is read (and sent to the GPU on a side stream) while this step runs: same batches, order and
        # values; the first one is taken at the loop's first next(), inside fork_rng (advtransfer.data.prefetch).
        loader = prefetch(loader, device=device, memory_format=torch.channels_last)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(rs)
            model.train()
            for x, y, n_global in loader:
                x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                y = y.to(device, non_blocking=True)
                if adversary is not None and len(y):
                    x = adversary(model, x, y, attack_generator)  # the model's train mode is restored after
                with autocast:
                    logits = forward(x)
                    if ddp:  # sum over this rank's slice, scaled so DDP's gradient average is the global mean
                        local_sum = F.cross_entropy(logits.float(), y, reduction="sum")
                        loss = local_sum * (world / n_global)
                    else:
                        loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += local_sum.item() if ddp else loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
        if ddp:
            loss_sum, correct, seen = distributed.all_reduce_sum([loss_sum, correct, seen], device)
            correct, seen = int(correct), int(seen)
        _check_health(model, loss_sum, ckpt_dir.name, epoch + 1, total, phase, precision)
        entry = {"epoch": epoch + 1, "phase": phase_idx, "optimizer": phase.optimizer, "lr": phase.lr,
                 "train_loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen)}
        if val_set is not None and len(val_set):
            entry["val_acc"] = accuracy(model, val_set, eval_batch_size, device, workers)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        result.history.append(entry)
        if (hook := EPOCH_HOOK.get()) is not None:  # e.g. TensorBoard event files (--tensorboard)
            hook(ckpt_dir.name, entry)
        if distributed.is_main():
            atomic_torch_save(ckpt_dir / f"epoch_{epoch + 1:03d}.pt", {
                "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                "history": result.history, "fingerprint": fingerprint})
            # Only the newest checkpoint is kept (resume needs nothing older): a ResNet-18 checkpoint with Adam
            # state is 129 MB, and keeping every epoch made the study-2 demo write 4.8 GB.
            for done, older in _checkpoints(ckpt_dir):
                if done < epoch + 1:
                    older.unlink(missing_ok=True)
        distributed.barrier()  # the checkpoint exists before any rank goes on
        val = f" val_acc {entry['val_acc']:.4f}" if "val_acc" in entry else ""
        log(f"  epoch {epoch + 1}/{total} {phase.optimizer} lr {phase.lr:g}: loss {entry['train_loss']:.4f} "
            f"train_acc {entry['train_acc']:.4f}{val} ({entry['seconds']:.1f}s)")
        if os.environ.get(KILL_AFTER_EPOCH_ENV) == str(epoch + 1):
            os.kill(os.getpid(), getattr(signal, f"SIG{os.environ.get(KILL_SIGNAL_ENV, 'KILL')}"))
    result.seconds = time.perf_counter() - t_start
    del forward, trainer
    for parent, name, bn in swapped_bn:  # the original BatchNorm modules share the trained tensors
        setattr(parent, name, bn)
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return result


def _bad_checkpoint(path: Path, reason: str) -> DataError:
    return DataError(f"checkpoint {path} is unreadable or not a checkpoint of this kit ({reason}); delete it: the "
                     "training then starts again from its first epoch (only the newest checkpoint is kept)")


def _read_checkpoint(path: Path) -> dict:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged or foreign file: all mean the same here
        raise _bad_checkpoint(path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") \
            from None
    missing = [k for k in ("model", "optimizer", "history", "fingerprint")
               if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise _bad_checkpoint(path, f"missing {', '.join(missing)}")
    return ckpt


def _check_health(model: nn.Module, loss_sum: float, name: str, epoch: int, total: int, phase: Phase,
                  precision: str) -> None:
    """A non-finite loss or weight stops the training with one message naming the cell, epoch and likely cause
    (checked once an epoch: the loss sum is on the host already, the weights cost one pass over them)."""
    if math.isfinite(loss_sum) and all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        return
    cause = f"lower the learning rate in the config's schedule (now {phase.optimizer} lr {phase.lr:g})"
    if precision != "fp32":
        cause += " or train in fp32 (--precision fp32)"
    raise TrainingDiverged(f"training {name} diverged in epoch {epoch}/{total}: the loss or a weight became NaN or "
                           f"infinite; {cause}. Nothing of this cell is recorded; finished cells are kept")


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def _rank_batches(dataset: Dataset, batch_size: int, order: torch.Tensor, rank: int, world: int,
                  workers: int = 0):
    """This rank's contiguous slice of each global batch of ``order``, with the global batch's size. Only the
    slice is loaded. A slice is empty when a global batch has fewer examples than ranks (its rank still takes part
    in the step, with zero loss)."""
    slices, sizes = [], []
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        slices.append(torch.tensor_split(chunk, world)[rank])
        sizes.append(len(chunk))
    if isinstance(dataset, TensorImages):
        for idx, n in zip(slices, sizes):
            yield dataset.images[idx], dataset.labels[idx], n
        return
    loaded = iter(DataLoader(dataset, batch_sampler=[s.tolist() for s in slices if len(s)], num_workers=workers))
    empty = None
    for idx, n in zip(slices, sizes):
        if len(idx):
            x, y = next(loaded)
            empty = (x[:0], y[:0])
        else:
            if empty is None:
                x0, y0 = dataset[int(order[0])]
                empty = (torch.as_tensor(x0)[None][:0], torch.as_tensor([y0])[:0])
            x, y = empty
        yield x, y, n


def _has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _to_sync_batchnorm(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    """Swap every BatchNorm layer for a SyncBatchNorm sharing its parameters and buffers (in place); returns
    (parent, name, original) to swap them back after training, when the originals hold the trained values."""
    swapped = []
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm):
                sync = nn.SyncBatchNorm.convert_sync_batchnorm(child)
                sync.train(child.training)
                setattr(parent, name, sync)
                swapped.append((parent, name, child))
    return swapped
