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
    specs: list[AttackSpec],
    *,
    transfer_source: nn.Module | None,
    transfer_key: str,
    batch_size: int,
    device: torch.device,
    backend: str = "native",
    workers: int = 0,
) -> list[Evaluation]:
    """Natural accuracy, then for each spec: white-box (crafted on ``model``) and, if ``transfer_source`` is given,
    transfer (crafted on it, then classified by ``model``). One pass over the data; both models in eval mode."""
    model.eval()
    if transfer_source is not None:
        transfer_source.eval()
    flags: dict[tuple[str, str, float], list[np.ndarray]] = {}

    def add(key: tuple[str, str, float], pred_ok: torch.Tensor) -> None:
        flags.setdefault(key, []).append(pred_ok.cpu().numpy())

    def correct(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(x).argmax(1) == y

    for x, y in batches(dataset, batch_size, workers=workers):
        x, y = x.to(device), y.to(device)
        add(("natural", "", 0.0), correct(x, y))
        for spec in specs:
            add(("whitebox", model_key, spec.eps), correct(attack(model, x, y, spec, backend), y))
            if transfer_source is not None:
                add(("transfer", transfer_key, spec.eps), correct(attack(transfer_source, x, y, spec, backend), y))
    out = []
    names = {spec.eps: spec.name for spec in specs}
    for (threat, source, eps), parts in flags.items():
        out.append(Evaluation("none" if threat == "natural" else names[eps], threat, source, eps,
                              "" if threat == "natural" else backend, np.concatenate(parts).astype(bool)))
    return out


def flags_to_str(flags: np.ndarray) -> str:
    return "".join("1" if f else "0" for f in flags.tolist())


def flags_from_str(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")
