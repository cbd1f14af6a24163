"""The cell store: one JSON document per cell under ``OUT/cells/``, written atomically by one writer.

A cell's document is written once, when the cell is complete (or rewritten whole when it gains evaluations, e.g.
a rerun with more attack backends); a reader never sees half a file. Everything else in a results folder
(results.csv, figures, the report) is derived from these documents and can be rebuilt from them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..io import atomic_write_json
from .schema import SCHEMA_VERSION

CELLS_DIR = "cells"
# A cell key names its result file and checkpoint folder: letters, digits, '.', '_', '-', no path separator,
# short enough for any file system (an experiment name is at most 64 characters; the rest is the study's).
CELL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def check_cell_keys(keys: Iterable[str], where: str) -> None:
    """Refuse, before any work, a plan whose cell keys are unsafe as file names or not unique."""
    seen: set[str] = set()
    for key in keys:
        if not isinstance(key, str) or not CELL_KEY.fullmatch(key):
            raise ConfigError(f"{where}: cell key {key!r} is not a safe file name (letters, digits, '.', '_', '-', at "
                              "most 200 characters, not starting with '.' or '-'); shorten the experiment name")
        if key in seen:
            raise ConfigError(f"{where}: two cells have the key {key!r}; every cell needs its own (a repeated "
                              "setting, model or seed?)")
        seen.add(key)


def cell_path(out: Path, key: str) -> Path:
    """``OUT/cells/KEY.json``; the key is checked to be a safe name, so the file stays inside ``OUT``."""
    check_cell_keys([key], "cell store")
    return Path(out) / CELLS_DIR / f"{key}.json"


def write_cell(out: Path, key: str, doc: dict[str, Any]) -> Path:
    return atomic_write_json(cell_path(out, key), {**doc, "schema": SCHEMA_VERSION, "cell": key})


def read_cell(path: Path) -> dict[str, Any]:
    """One cell document; a file that is not one is a :class:`DataError` naming it."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"result file {path} is unreadable or corrupt ({type(exc).__name__}); delete it and rerun "
                        "to recompute that cell") from None
    if not isinstance(doc, dict) or "cell" not in doc or "evaluations" not in doc:
        raise DataError(f"result file {path} is not a cell result of this kit; delete it and rerun to recompute "
                        "that cell")
    return doc


def load_cell(out: Path, key: str) -> dict[str, Any] | None:
    """The finished cell's document, or None when there is none. A corrupt document counts as none: the cell is
    recomputed and its file replaced."""
    path = cell_path(out, key)
    if not path.is_file():
        return None
    try:
        return read_cell(path)
    except DataError:
        return None


def cell_files(out: Path) -> list[Path]:
    return sorted((Path(out) / CELLS_DIR).glob("*.json"))


def read_cells(out: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every cell document of a results folder, in file-name order, each read once."""
    return [(path, read_cell(path)) for path in cell_files(out)]
