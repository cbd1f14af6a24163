"""What a result is: the cell document a study writes, and the typed row of ``results.csv`` built from it.

A cell document (one JSON file per cell, see :mod:`.store`) carries the cell's identity (``study``,
``experiment``, ``profile``, ``protocol``, ``seed``, ``model``, ``family``, and where the study has them
``n_blocks``, ``setting``, ``training``), its ``evaluations`` (one record per attack x threat x eps x backend, with
per-example flags), and everything else a report shows (provenance, training log, checks, cross-check rows).
:func:`rows_of` turns one document into typed :class:`Row` objects; :data:`CSV_COLUMNS` is the file's header.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import DataError

SCHEMA_VERSION = 2

# The columns of results.csv, in order. The first block is one evaluation of one cell; the last block is the
# aggregate over seeds of the row's evaluation (same study, experiment, protocol, setting, model, training,
# attack, threat, eps, backend): the number of seeds, their mean accuracy and its 95% interval
# (:func:`advtransfer.results.stats.estimate`), repeated on each seed's row so the file stays one row per
# evaluation.
ROW_COLUMNS: tuple[str, ...] = (
    "experiment", "profile", "protocol", "seed", "model", "family", "n_blocks", "attack", "threat",
    "source_model", "eps", "backend", "accuracy", "correct", "n", "primary", "cell", "setting", "training",
)  # fmt: skip
AGGREGATE_COLUMNS: tuple[str, ...] = ("n_seeds", "seed_mean", "ci95_low", "ci95_high", "study")
CSV_COLUMNS: tuple[str, ...] = ROW_COLUMNS + AGGREGATE_COLUMNS

# Evaluation records in a cell document: the keys each one must have.
RECORD_KEYS = ("attack", "threat", "source_model", "eps", "backend", "accuracy", "correct", "n", "primary")


@dataclass(frozen=True)
class Row:
    """One evaluation of one cell: a line of results.csv, plus (in memory) its per-example flags."""

    study: str
    experiment: str
    profile: str
    protocol: str
    seed: int
    model: str
    family: str
    n_blocks: int | None
    attack: str  # "none" for natural accuracy
    threat: str  # natural | transfer | whitebox
    source_model: str  # the model the examples were crafted on ("" for natural)
    eps: float
    backend: str
    accuracy: float
    correct: int
    n: int
    primary: bool  # the study's main eps (natural rows: always)
    cell: str
    setting: int | None = None
    training: str = ""
    test_set: str = field(default="", compare=False)  # names the test images; equal strings: the same images
    flags: np.ndarray | None = field(default=None, compare=False, repr=False)

    def csv_fields(self) -> dict[str, str]:
        return {
            "experiment": self.experiment, "profile": self.profile, "protocol": self.protocol,
            "seed": str(self.seed), "model": self.model, "family": self.family,
            "n_blocks": "" if self.n_blocks is None else str(self.n_blocks), "attack": self.attack,
            "threat": self.threat, "source_model": self.source_model, "eps": repr(float(self.eps)),
            "backend": self.backend, "accuracy": f"{self.accuracy:.6f}", "correct": str(self.correct),
            "n": str(self.n), "primary": str(int(self.primary)), "cell": self.cell,
            "setting": "" if self.setting is None else str(self.setting), "training": self.training,
            "study": self.study,
        }


def evaluation_record(*, attack: str, threat: str, source_model: str, eps: float, backend: str,
                      flags: np.ndarray, primary: bool) -> dict[str, Any]:
    """One evaluation as a cell document stores it (accuracy and counts derived from the flags)."""
    flags = np.asarray(flags, dtype=bool)
    return {"attack": attack, "threat": threat, "source_model": source_model, "eps": float(eps),
            "backend": backend, "accuracy": float(flags.mean()) if len(flags) else math.nan,
            "correct": int(flags.sum()), "n": len(flags), "primary": bool(primary), "flags": flags_to_str(flags)}


def flags_to_str(flags: np.ndarray) -> str:
    return "".join("1" if f else "0" for f in np.asarray(flags, dtype=bool).tolist())


def flags_from_str(text: str) -> np.ndarray:
    return np.frombuffer(text.encode(), dtype=np.uint8) == ord("1")


def _int_or_none(value: Any) -> int | None:
    return None if value is None or value == "" else int(value)


def rows_of(doc: Mapping[str, Any], study: str | None = None, where: str = "") -> list[Row]:
    """The typed rows of one cell document. ``study``: the registry name when the document predates the
    ``study`` field. A document missing what a row needs is a :class:`DataError` naming ``where``."""
    try:
        name = str(doc.get("study") or study or "")
        base = dict(study=name, experiment=str(doc["experiment"]), profile=str(doc["profile"]),
                    protocol=str(doc["protocol"]), seed=int(doc["seed"]), model=str(doc["model"]),
                    family=str(doc.get("family", doc["model"])), n_blocks=_int_or_none(doc.get("n_blocks")),
                    cell=str(doc["cell"]), setting=_int_or_none(doc.get("setting")),
                    training=str(doc.get("training", "") or ""),
                    test_set=str((doc.get("data") or {}).get("test_set", "")))
        rows = []
        for ev in doc.get("evaluations", []):
            flags = flags_from_str(ev["flags"]) if isinstance(ev.get("flags"), str) else None
            rows.append(Row(**base, attack=str(ev["attack"]), threat=str(ev["threat"]),
                            source_model=str(ev["source_model"]), eps=float(ev["eps"]), backend=str(ev["backend"]),
                            accuracy=float(ev["accuracy"]), correct=int(ev["correct"]), n=int(ev["n"]),
                            primary=bool(ev["primary"]), flags=flags))
        return rows
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"result file {where or doc.get('cell', '?')} does not hold a cell result of this kit "
                        f"({type(exc).__name__}: {exc}); delete it and rerun to recompute that cell") from None
