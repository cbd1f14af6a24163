"""Study 1's grid: cells (protocol, seed, model) with models ``base_a``, ``bnb``, ``a{N}b`` (the first N blocks
copied from Base A and frozen) and ``a{N}b_plus`` (copied and fine-tuned)."""

from __future__ import annotations

from dataclasses import dataclass

from ..base import Experiment


@dataclass(frozen=True)
class Cell:
    experiment: str
    protocol: str
    seed: int
    model: str  # stable key: base_a, bnb, a4b, a4b_plus, ...
    family: str  # base_a | bnb | anb | anb_plus
    n_blocks: int | None

    @property
    def key(self) -> str:
        return f"{self.experiment}-{self.protocol}-{self.model}-s{self.seed}"

    @property
    def unit(self) -> str:
        """Each cell is its own shard unit. Cells of one seed share Base A; where the profile pretrains it (demo),
        every shard that needs it resumes or computes the same deterministic, atomically checkpointed training, so
        two shards computing it at once only duplicate work (the same holds for the per-seed split manifests)."""
        return self.key


def models_of(blocks: tuple[int, ...]) -> list[tuple[str, str, int | None]]:
    out: list[tuple[str, str, int | None]] = [("base_a", "base_a", None), ("bnb", "bnb", None)]
    for n in blocks:
        out += [(f"a{n}b", "anb", n), (f"a{n}b_plus", "anb_plus", n)]
    return out


def plan(exp: Experiment) -> list[Cell]:
    cfg = exp.cfg
    return [Cell(exp.name, protocol, seed, model, family, n)
            for protocol in cfg.protocols for seed in cfg.seeds for model, family, n in models_of(cfg.blocks)]
