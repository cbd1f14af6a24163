"""A data-parallel ``fit()`` for tests/test_scale.py: one rank of ``torchrun --nproc-per-node 2 ddp_fit_worker.py OUT``
(gloo, CPU). :func:`train` is also what the test runs in a single process, so both sides train the same model on
the same data with the same schedule; each rank saves its final weights and histories to ``OUT/rank{R}.pt``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from advtransfer.attacks import AttackSpec, attack
from advtransfer.config.common import Phase
from advtransfer.data.images import TensorImages, subset
from advtransfer.engine import distributed
from advtransfer.engine.train import fit
from advtransfer.models.basenet import basenet
from advtransfer.models.classifier import ImageClassifier

BATCH = 8
# Clean: 45 examples = 5 global batches of 8 (4 + 4 per rank) and an uneven last one of 5 (3 + 2).
# Adversarial: the first 41, so the last global batch has 1 example and rank 1's slice is empty.
N_TRAIN, N_ADV = 45, 41
CLEAN = (Phase("sgd", 0.05, 2),)
ADV = (Phase("sgd", 0.02, 1),)
# No random start: under DDP random starts draw from per-rank generators, not the single process's draws.
PGD = AttackSpec.pgd(eps=8 / 255, step=2 / 255, steps=2, random_start=False)


def data() -> tuple[TensorImages, TensorImages]:
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(N_TRAIN + 16, 3, 32, 32, generator=g), torch.randint(0, 4, (N_TRAIN + 16,), generator=g)
    return TensorImages(x[:N_TRAIN], y[:N_TRAIN]), TensorImages(x[N_TRAIN:], y[N_TRAIN:])


def train(ckpt_root: Path, device: torch.device) -> dict:
    model = ImageClassifier(basenet(4, seed=0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))
    train_set, val_set = data()
    common = dict(batch_size=BATCH, device=device, log=lambda msg: None, eval_batch_size=16)
    clean = fit(model, CLEAN, train_set, val_set, seed=3, ckpt_dir=ckpt_root / "clean", fingerprint="clean",
                **common)
    adv = fit(model, ADV, subset(train_set, np.arange(N_ADV)), val_set, seed=4, ckpt_dir=ckpt_root / "adv",
              fingerprint="adv", adversary=lambda m, x, y, g: attack(m, x, y, PGD, "native", generator=g), **common)
    return {"state": model.state_dict(), "clean": clean.history, "adv": adv.history}


if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    device = distributed.init_from_env("cpu")
    assert device is not None and distributed.world_size() == 2, "start with torchrun --nproc-per-node 2"
    result = train(out / "ckpt", device)
    torch.save(result, out / f"rank{distributed.rank()}.pt")
    distributed.shutdown()
