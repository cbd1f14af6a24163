"""evaluate_model: transfer examples crafted once per source and batch (the cache) change no flag, and a cache is
only consulted for attacks that draw nothing at random."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from advtransfer.attacks import AttackSpec
from advtransfer.data.images import TensorImages
from advtransfer.engine.evaluate import deterministic, evaluate_model

pytestmark = pytest.mark.usefixtures("one_thread")


class Counting(nn.Module):
    """A tiny classifier on [0, 1] images that counts its forward passes."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 4))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.net(x)


def _data(n: int = 40) -> TensorImages:
    g = torch.Generator().manual_seed(3)
    return TensorImages(torch.rand(n, 3, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g))


def _flags(evals) -> dict:
    return {(e.threat, e.attack, e.eps, e.backend): e.flags for e in evals}


def test_deterministic_attacks_are_the_ones_without_random_draws() -> None:
    assert deterministic(AttackSpec.fgsm(0.03))
    assert deterministic(AttackSpec.pgd(0.03, 0.01, 3, random_start=False))
    assert not deterministic(AttackSpec.pgd(0.03, 0.01, 3, random_start=True))
    assert not deterministic(AttackSpec.apgd_ce(0.03, 3))


def test_transfer_cache_gives_the_same_flags_and_crafts_once() -> None:
    data, source = _data(), Counting(0)
    transfer = [AttackSpec.fgsm(0.03), AttackSpec.fgsm(0.1), AttackSpec.pgd(0.03, 0.01, 3, random_start=True)]
    common = dict(transfer=transfer, transfer_source=source, transfer_key="src", batch_size=16,
                  device=torch.device("cpu"), seed=5)
    cache: dict = {}
    for seed in (1, 2):  # two target models sharing one source and one test set, as a split's models do
        target = Counting(seed)
        plain = _flags(evaluate_model(target, "t", data, [], **common))
        calls_without = source.calls
        cached = _flags(evaluate_model(target, "t", data, [], transfer_cache=cache, **common))
        calls_with = source.calls - calls_without
        assert plain.keys() == cached.keys()
        assert all(np.array_equal(plain[k], cached[k]) for k in plain)
        # 3 batches; FGSM: one forward per batch and eps; PGD (random start, never cached): 3 steps + its own
        source.calls = 0
        if seed == 1:
            assert calls_with == calls_without  # the first model fills the cache
        else:
            assert calls_with == calls_without - 2 * 3  # the second reuses both FGSM examples of all 3 batches
    assert sorted({k[2] for k in cache}) == sorted({s.key() for s in transfer if s.name == "fgsm"})
    assert len(cache) == 2 * 3
