"""Config pieces every study shares: training phases, protocols, precisions and attack backends."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from .reader import NonEmpty, Range, Unique

PROTOCOLS = ("intended", "as-run")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
PRECISIONS = ("auto", "fp32", "bf16")

Protocol = Literal["intended", "as-run"]
Precision = Literal["auto", "fp32", "bf16"]
Backend = Literal["native", "torchattacks", "art"]

Protocols = Annotated[tuple[Protocol, ...], NonEmpty, Unique]
Backends = Annotated[tuple[Backend, ...], NonEmpty, Unique]
Seeds = Annotated[tuple[Annotated[int, Range(0, 2**31 - 1)], ...], NonEmpty, Unique]
PositiveInt = Annotated[int, Range(1)]
NonNegativeInt = Annotated[int, Range(0)]
PositiveFloat = Annotated[float, Range(0, lo_open=True)]
Fraction = Annotated[float, Range(0, 1, lo_open=True, hi_open=True)]
Eps = Annotated[float, Range(0, 1, lo_open=True)]  # pixel units on [0, 1] inputs


@dataclass(frozen=True)
class Phase:
    """One phase of a training schedule: an optimizer, its learning rate (per step) and its number of epochs."""

    optimizer: Literal["adam", "rmsprop", "sgd"]
    lr: Annotated[float, Range(0, 10, lo_open=True)]
    epochs: PositiveInt


Schedule = Annotated[tuple[Phase, ...], NonEmpty]
