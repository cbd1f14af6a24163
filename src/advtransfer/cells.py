"""What both studies' grids share: per-model seeds, checkpoint fingerprints and the default progress log."""

from __future__ import annotations

import hashlib
import json
import sys
import zlib
from collections.abc import Callable

Log = Callable[[str], None]


def stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def fingerprint(*parts: object) -> str:
    """A checkpoint's identity: a checkpoint whose fingerprint differs is never resumed from (stale settings)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def derived_seed(seed: int, name: str) -> int:
    """A per-model seed: different models of one run get different random inits, reproducibly."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**31)
