"""Per-example correctness on natural and adversarial inputs.

Flags (one bool per test example) are kept, not only means: they make backends comparable example by example and
let a report recompute any aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .attacks import AttackSpec, attack
from .data.images import batches


@dataclass(frozen=True)
class Evaluation:
    """One row of results: which attack, crafted on which model, at which eps."""

    attack: str  # "none" (natural) or an attack name
    threat: str  # natural | transfer | whitebox
    source_model: str  # the model the examples were crafted on ("" for natural)
    eps: float
    backend: str
    flags: np.ndarray  # bool per example: correctly classified

    @property
    def correct(self) -> int:
        return int(self.flags.sum())

    @property
    def accuracy(self) -> float:
        return float(self.flags.mean()) if len(self.flags) else float("nan")


def evaluate_model(
    model: nn.Module,
    model_key: str,
    dataset: Dataset,
    whitebox: list[AttackSpec],
    *,
    transfer: list[AttackSpec] = (),
    transfer_source: nn.Module | None = None,
    transfer_key: str = "",
    backends: tuple[str, ...] = ("native",),
    batch_size: int,
    device: torch.device,
    seed: int = 0,
    workers: int = 0,
) -> list[Evaluation]:
    """Natural accuracy, then per backend: each ``whitebox`` spec crafted on ``model`` itself and, with a
    ``transfer_source``, each ``transfer`` spec crafted on it and classified by ``model``. One pass over the data;
    random starts draw from a generator seeded with ``seed``, so reruns give the same flags."""
    model.eval()
    if transfer_source is not None:
        transfer_source.eval()
    flags: dict[tuple[str, str, str, float, str], list[np.ndarray]] = {}
    generator = torch.Generator(device="cpu").manual_seed(seed)

    def add(key: tuple[str, str, str, float, str], ok: torch.Tensor) -> None:
        flags.setdefault(key, []).append(ok.cpu().numpy())

    def correct(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x).argmax(1) == y

    for x, y in batches(dataset, batch_size, workers=workers):
        x, y = x.to(device), y.to(device)
        add(("natural", "", "none", 0.0, ""), correct(x, y))
        for backend in backends:
            for spec in whitebox:
                adv = attack(model, x, y, spec, backend, generator=generator)
                add(("whitebox", model_key, spec.name, spec.eps, backend), correct(adv, y))
            if transfer_source is not None:
                for spec in transfer:
                    adv = attack(transfer_source, x, y, spec, backend, generator=generator)
                    add(("transfer", transfer_key, spec.name, spec.eps, backend), correct(adv, y))
    return [Evaluation(name, threat, source, eps, backend, np.concatenate(parts).astype(bool))
            for (threat, source, name, eps, backend), parts in flags.items()]


def flags_to_str(flags: np.ndarray) -> str:
    return "".join("1" if f else "0" for f in flags.tolist())


def flags_from_str(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")
