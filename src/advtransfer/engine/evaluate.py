"""Per-example correctness on natural and adversarial inputs.

Flags (one bool per test example) are kept, not only means: they make backends comparable example by example and
let the report test differences between models on the same images (McNemar).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from ..attacks import AttackSpec, attack, backends_for
from ..data.images import batches
from .seeds import derived_seed


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


def deterministic(spec: AttackSpec) -> bool:
    """Whether the attack draws nothing at random (no random start, no sampled neighbours): the same model and
    batch give the same examples."""
    return spec.name in ("fgsm", "pgd", "nifgsm") and not spec.random_start


def attack_generator(seed: int, threat: str, backend: str, spec: AttackSpec) -> torch.Generator:
    """The random stream of one (threat, backend, attack) evaluation: its own, so adding a backend or an attack
    to a run never changes another evaluation's random starts."""
    return torch.Generator(device="cpu").manual_seed(derived_seed(seed, f"{threat}/{backend}/{spec.key()}"))


def evaluate_model(
    model: nn.Module,
    model_key: str,
    dataset: Dataset,
    whitebox: Sequence[AttackSpec],
    *,
    transfer: Sequence[AttackSpec] = (),
    transfer_source: nn.Module | None = None,
    transfer_key: str = "",
    backends: Sequence[str] = ("native",),
    batch_size: int,
    device: torch.device,
    seed: int = 0,
    workers: int = 0,
    natural: bool = True,
    done: Collection[tuple[str, str, float, str]] = (),
    transfer_cache: dict | None = None,
) -> list[Evaluation]:
    """Natural accuracy (unless ``natural`` is false), then per backend: each ``whitebox`` spec crafted on ``model``
    itself and, with a ``transfer_source``, each ``transfer`` spec crafted on it and classified by ``model``. One
    pass over the data; random starts draw from per-evaluation generators seeded from ``seed``, so reruns give
    the same flags.

    Each spec runs through the ``backends`` that implement it, or, where none does, through the one backend that
    has it (:func:`advtransfer.attacks.backends_for`: AutoAttack through torchattacks). ``done``: evaluations to
    skip, as ``(threat, attack name, eps, backend)`` (those an earlier run of the cell already has).

    ``transfer_cache``: a dict kept by the caller across models that share ``transfer_source`` and ``dataset``;
    transfer examples of attacks without a random start are crafted once and reused from it (they depend only on
    the source, the batch and the spec), so the flags are the same with or without it."""
    model.eval()
    if transfer_source is not None:
        transfer_source.eval()
    flags: dict[tuple[str, str, str, float, str], list[np.ndarray]] = {}
    plan: list[tuple[str, str, nn.Module, AttackSpec, str, torch.Generator]] = []
    groups = [("whitebox", model_key, model, whitebox)]
    if transfer_source is not None:
        groups.append(("transfer", transfer_key, transfer_source, transfer))
    every = [*backends, *(b for *_, specs in groups for spec in specs for b in backends_for(backends, spec))]
    for backend in dict.fromkeys(every):  # the given backends first, in order, then fallbacks
        for threat, key, source, specs in groups:
            plan += [(threat, key, source, spec, backend, attack_generator(seed, threat, backend, spec))
                     for spec in specs if backend in backends_for(backends, spec)
                     and (threat, spec.name, spec.eps, backend) not in done]

    def correct(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return (model(x).argmax(1) == y).cpu().numpy()

    for index, (x, y) in enumerate(batches(dataset, batch_size, workers=workers)):
        x, y = x.to(device), y.to(device)
        if natural:
            flags.setdefault(("natural", "", "none", 0.0, ""), []).append(correct(x, y))
        for threat, source_key, source, spec, backend, generator in plan:
            cached = transfer_cache is not None and threat == "transfer" and deterministic(spec)
            key = (index, batch_size, spec.key(), backend)
            if cached and key in transfer_cache:
                adv = transfer_cache[key].to(device)
            else:
                adv = attack(source, x, y, spec, backend, generator=generator)
                if cached:
                    transfer_cache[key] = adv.detach().cpu()
            flags.setdefault((threat, source_key, spec.name, spec.eps, backend), []).append(correct(adv, y))
    return [Evaluation(name, threat, source, eps, backend, np.concatenate(parts).astype(bool))
            for (threat, source, name, eps, backend), parts in flags.items()]
