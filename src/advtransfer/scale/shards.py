"""Splitting a grid across processes: ``--shard K/N`` (one of N disjoint parts) and ``--cells GLOB``.

A grid is a list of cells in plan order. Cells that share work form one *unit* and always land in the same shard:
study 2's clean cell and the adversarial-training cells that start from its checkpoint (same setting, protocol,
seed and model); in study 1 each cell is its own unit. The rule is deterministic and needs no coordination: the
i-th unit in plan order (0-based) belongs to shard ``i mod N + 1``. Shards are therefore disjoint, their union is
the grid, and their sizes differ by at most one unit. Every shard writes its cells' JSON files (atomically) into
the same results folder, so ``advtransfer figures --results DIR`` gathers them once all shards are done.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TypeVar

from ..errors import ConfigError, UserError

C = TypeVar("C")
SHARD_FORM = "K/N with 1 <= K <= N (e.g. --shard 2/4: the second of four disjoint parts of the grid)"


@dataclass(frozen=True)
class Shard:
    index: int  # K, 1-based
    count: int  # N

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ConfigError(f"--shard {text!r}; valid: {SHARD_FORM}")
    return Shard(int(m.group(1)), int(m.group(2)))


def units(grid: Sequence[C], unit_of: Callable[[C], str]) -> list[str]:
    """The grid's unit keys in order of first appearance."""
    return list(dict.fromkeys(unit_of(c) for c in grid))


def shard_cells(grid: Sequence[C], shard: Shard, unit_of: Callable[[C], str], offset: int = 0) -> list[C]:
    """The cells of ``shard``, in plan order. ``offset``: units of grids that come before this one (``reproduce-all``
    deals the units of its experiments out as one sequence, so the shards stay balanced across experiments)."""
    mine = {u for i, u in enumerate(units(grid, unit_of)) if (i + offset) % shard.count == shard.index - 1}
    return [c for c in grid if unit_of(c) in mine]


def select_cells(grid: Sequence[C], patterns: str, key: Callable[[C], str] = lambda c: c.key) -> list[C]:
    """The cells whose key matches one of the comma-separated shell patterns (``fnmatch``, case-sensitive)."""
    globs = [p.strip() for p in patterns.split(",") if p.strip()]
    chosen = [c for c in grid if any(fnmatchcase(key(c), g) for g in globs)]
    if not chosen:
        examples = ", ".join(key(c) for c in list(grid)[:3])
        raise UserError(f"--cells {patterns!r} matches none of the {len(grid)} cells of the grid; cell keys look "
                        f"like {examples} (shell patterns: * ? [...], comma-separated)")
    return chosen
