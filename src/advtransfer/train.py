"""Training with per-epoch checkpoints and exact resume.

A killed run resumes from its last checkpoint and ends bit-identical to an uninterrupted one (on CPU): nothing
random depends on what happened before the current epoch. Epoch ``e`` shuffles with its own generator seeded from
``(seed, e)`` and runs dropout under a forked RNG seeded the same way, so the caller's global RNG is never touched
and no RNG state needs saving. The checkpoint holds the model, the optimizer state of the current phase, the epoch
and the history, and a fingerprint of everything that defines the run, so a checkpoint from another config is
never resumed.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from .config import Phase
from .data.images import batches
from .errors import DataError
from .io import atomic_torch_save

# Keras' optimizer defaults (the original ran on Keras): epsilon 1e-7, RMSprop rho 0.9.
KERAS_EPS = 1e-7
KERAS_RMSPROP_RHO = 0.9
SGD_MOMENTUM = 0.9  # study 2

# Test hook: kill this process with SIGKILL right after writing the checkpoint of this epoch (1-based). Used by
# the resume-after-kill test to interrupt a real CLI run at a known point.
KILL_AFTER_EPOCH_ENV = "ADVTRANSFER_KILL_AFTER_EPOCH"


def make_optimizer(phase: Phase, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    if phase.optimizer == "adam":
        return torch.optim.Adam(params, lr=phase.lr, eps=KERAS_EPS)
    if phase.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=phase.lr, alpha=KERAS_RMSPROP_RHO, eps=KERAS_EPS)
    if phase.optimizer == "sgd":
        return torch.optim.SGD(params, lr=phase.lr, momentum=SGD_MOMENTUM, weight_decay=0.0)
    raise ValueError(phase.optimizer)


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct 63-bit seed per (run seed, epoch)."""
    return int(np.random.SeedSequence([seed, epoch, 0xAD7]).generate_state(1, dtype=np.uint64)[0] >> 1)


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


def fit(
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
) -> FitResult:
    """Train ``model`` in place through the phases of ``schedule``, resuming from ``ckpt_dir`` if possible.

    The last epoch's weights are kept (no model selection), as in both original studies. ``stop_after`` ends the
    call after that many total epochs (a simulated interruption, for tests).

    ``adversary(model, x, y, generator)`` turns every training batch into adversarial examples before the step
    (adversarial training on 100% adversarial batches, as study 2's original); its random starts draw from a
    per-epoch generator, so resumed adversarial training is exact too.
    """
    total = sum(p.epochs for p in schedule)
    ckpt_dir = Path(ckpt_dir)
    result = FitResult()
    start_epoch, optimizer, opt_phase = 0, None, -1
    existing = _checkpoints(ckpt_dir)
    if existing:
        epoch_done, path = existing[-1]
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise DataError(f"checkpoint {path} is unreadable ({exc}); delete it to resume from the one before") \
                from None
        if ckpt.get("fingerprint") == fingerprint and epoch_done <= total:
            model.load_state_dict(ckpt["model"])
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
            for _, p in existing:
                p.unlink()
    # channels_last: ~20% faster convolutions on CPU (measured, MobileNetV2 demo width) and the fast path for
    # cuDNN; values are the same, only the layout changes, and the model goes back to the default layout after
    # training so attacks and evaluation see ordinary tensors.
    model.to(device=device, memory_format=torch.channels_last)
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
        order = torch.randperm(len(train_set), generator=torch.Generator().manual_seed(es))
        loss_sum, correct, seen = 0.0, 0, 0
        attack_generator = torch.Generator(device=device).manual_seed(es)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(es)
            model.train()
            for x, y in batches(train_set, batch_size, order, workers=workers):
                x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
                y = y.to(device, non_blocking=True)
                if adversary is not None:
                    x = adversary(model, x, y, attack_generator)  # the model's train mode is restored after
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
        entry = {"epoch": epoch + 1, "phase": phase_idx, "optimizer": phase.optimizer, "lr": phase.lr,
                 "train_loss": loss_sum / max(1, seen), "train_acc": correct / max(1, seen)}
        if val_set is not None and len(val_set):
            entry["val_acc"] = accuracy(model, val_set, eval_batch_size, device, workers)
        entry["seconds"] = round(time.perf_counter() - t0, 3)
        result.history.append(entry)
        atomic_torch_save(ckpt_dir / f"epoch_{epoch + 1:03d}.pt", {
            "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
            "history": result.history, "fingerprint": fingerprint})
        val = f" val_acc {entry['val_acc']:.4f}" if "val_acc" in entry else ""
        log(f"  epoch {epoch + 1}/{total} {phase.optimizer} lr {phase.lr:g}: loss {entry['train_loss']:.4f} "
            f"train_acc {entry['train_acc']:.4f}{val} ({entry['seconds']:.1f}s)")
        if os.environ.get(KILL_AFTER_EPOCH_ENV) == str(epoch + 1):
            os.kill(os.getpid(), signal.SIGKILL)
    result.seconds = time.perf_counter() - t_start
    model.to(memory_format=torch.contiguous_format)
    model.eval()
    return result


def _trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
