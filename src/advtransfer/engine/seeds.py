"""Seeds and checkpoint fingerprints, shared by every study's grid."""

from __future__ import annotations

import hashlib
import json
import zlib
from typing import Any


def derived_seed(seed: int, name: str) -> int:
    """A per-model (per-purpose) seed: different models of one run get different random inits, reproducibly."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


def _plain(obj: Any) -> Any:
    from ..config.reader import to_plain

    return to_plain(obj)


def training_fingerprint(cell: str, **reads: Any) -> str:
    """The identity of one training: a checkpoint whose fingerprint differs is never resumed from.

    ``reads`` is an allow-list: exactly the settings this training reads (data, model, schedule, protocol fields
    that change it; the seed and protocol are part of ``cell``), passed by keyword by the study. Evaluation-only
    settings (attacks, eps, backends, figures, cross-check, evaluation batch size) are never part of it, so
    changing them never retrains. The precision is added by :func:`advtransfer.engine.train.fit`.
    """
    text = json.dumps([cell, _plain(reads)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()
