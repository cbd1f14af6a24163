"""Study 2's grid: cells (setting, protocol, seed, model, training). A clean cell trains a model from its
initialisation; an adversarial-training cell starts from that clean model's final weights."""

from __future__ import annotations

from dataclasses import dataclass

from ..base import Experiment


@dataclass(frozen=True)
class Cell:
    experiment: str
    setting: int
    dataset: str
    protocol: str
    seed: int
    model: str
    training: str  # clean, or the attack used for adversarial training

    @property
    def key(self) -> str:
        return f"{self.experiment}-e{self.setting}-{self.protocol}-{self.model}-{self.training}-s{self.seed}"

    @property
    def clean(self) -> Cell:
        return Cell(self.experiment, self.setting, self.dataset, self.protocol, self.seed, self.model, "clean")

    @property
    def unit(self) -> str:
        """A clean cell and the adversarial-training cells that start from its final checkpoint run in one shard.
        The transfer ResNet's tiny-data backbone pretraining is shared by all units of a run; concurrent shards may
        each compute it (deterministic and checkpointed atomically: duplicated work, not a conflict)."""
        return self.clean.key


def plan(exp: Experiment) -> list[Cell]:
    """Clean cells come before the adversarial-training cells that start from them."""
    cfg = exp.cfg
    return [Cell(exp.name, s.id, s.dataset, protocol, seed, model, training)
            for s in cfg.settings for protocol in cfg.protocols for seed in cfg.seeds for model in s.models
            for training in sorted(s.trainings, key=lambda t: t != "clean")]
