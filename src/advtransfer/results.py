"""Results: one JSON per cell (atomic, with provenance), and ``results.csv`` aggregated from them.

A cell is the unit of work (experiment, protocol, model, seed). Its JSON is written once, atomically, when the cell
is complete; a rerun skips every cell whose JSON exists. ``results.csv`` is always rebuilt from the cell files, so
it can never disagree with them.
"""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from . import distributed
from .errors import DataError
from .figures import RESULTS_COLUMNS, ci95
from .io import atomic_write_json, atomic_write_text

SCHEMA_VERSION = 1
# The figures' columns, then study 2's: its sub-experiment (1-4) and how the model was trained (clean, or the
# attack used for adversarial training). Empty for study 1.
# Then the seed statistics of the row's group (the same evaluation of the same model over every seed of the run):
# how many seeds, their mean accuracy and the 95% t-interval half-width (empty with one seed), repeated on each
# seed's row so the file stays one row per evaluation.
CSV_COLUMNS = (*RESULTS_COLUMNS, "setting", "training", "n_seeds", "seed_mean", "seed_ci95")
_GROUP = ("experiment", "protocol", "setting", "model", "training", "attack", "threat", "eps", "backend", "primary")


def cell_path(out: Path, cell: str) -> Path:
    return Path(out) / "cells" / f"{cell}.json"


def is_done(out: Path, cell: str, backends: tuple[str, ...] = ("native",)) -> bool:
    """Finished, and evaluated with every requested backend (asking for a new backend re-evaluates the cell; its
    training resumes from the final checkpoint, so nothing is retrained)."""
    path = cell_path(out, cell)
    if not path.is_file():
        return False
    try:
        done = json.loads(path.read_text()).get("backends", ["native"])
    except json.JSONDecodeError:
        return False  # a corrupt result is recomputed
    return set(backends) <= set(done)


def write_cell(out: Path, cell: str, doc: dict[str, Any]) -> Path:
    return atomic_write_json(cell_path(out, cell), {"schema": SCHEMA_VERSION, "cell": cell, **doc})


def read_cells(out: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted((Path(out) / "cells").glob("*.json")):
        try:
            docs.append(json.loads(path.read_text()))
        except json.JSONDecodeError:
            raise DataError(f"result file {path} is corrupt: delete it and rerun to recompute that cell") from None
    return docs


def rows_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The tidy rows (one per evaluation) of one cell document."""
    rows = []
    for ev in doc.get("evaluations", []):
        rows.append({
            "experiment": doc["experiment"], "profile": doc["profile"], "protocol": doc["protocol"],
            "seed": doc["seed"], "model": doc["model"], "family": doc["family"],
            "n_blocks": "" if doc.get("n_blocks") is None else doc["n_blocks"],
            "attack": ev["attack"], "threat": ev["threat"], "source_model": ev["source_model"], "eps": ev["eps"],
            "backend": ev["backend"], "accuracy": f"{ev['accuracy']:.6f}", "correct": ev["correct"], "n": ev["n"],
            "primary": int(ev["primary"]), "cell": doc["cell"], "setting": doc.get("setting", ""),
            "training": doc.get("training", ""),
        })
    return rows


def with_seed_statistics(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple, list[float]] = defaultdict(list)
    for r in rows:
        groups[tuple(str(r[k]) for k in _GROUP)].append(float(r["accuracy"]))
    out = []
    for r in rows:
        values = groups[tuple(str(r[k]) for k in _GROUP)]
        mean, half = ci95(values)
        out.append({**r, "n_seeds": len(values), "seed_mean": f"{mean:.6f}",
                    "seed_ci95": "" if half is None else f"{half:.6f}"})
    return out


def write_results_csv(out: Path) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(with_seed_statistics([row for doc in read_cells(out) for row in rows_of(doc)]))
    return atomic_write_text(Path(out) / "results.csv", buf.getvalue())


def missing_error(experiment: str, profile: str, missing: list[str], failures: list[str] = ()) -> DataError:
    """One message for everything a run lacks (each item names its fix), plus why downloads failed, if tried."""
    tried = "\nDownload attempts failed:\n- " + "\n- ".join(failures) if failures else ""
    return DataError("cannot run {} --profile {}: {} missing.\n- {}{}".format(
        experiment, profile, "one thing is" if len(missing) == 1 else f"{len(missing)} things are",
        "\n- ".join(missing), tried))


def run_grid(out: Path, grid: list, backends: tuple[str, ...], run_cell, log) -> None:
    """Run every cell of ``grid`` (objects with a ``key``) not already done, writing each result atomically as it
    finishes, then rebuild ``results.csv``. A killed run loses at most the cell in progress (which resumes from its
    checkpoints).

    Safe for concurrent shards writing into one ``out`` (each cell file and ``results.csv`` is replaced
    atomically; ``results.csv`` holds whatever cells exist when it is rebuilt). Under torchrun every rank runs each
    cell (training is data-parallel), rank 0 decides what is done and alone writes files; the others wait."""
    for i, cell in enumerate(grid, 1):
        if distributed.on_main(lambda cell=cell: is_done(out, cell.key, backends)):
            log(f"[{cell.key}] done already, skipped ({i}/{len(grid)})")
            continue
        log(f"[{cell.key}] cell {i}/{len(grid)}")
        doc = run_cell(cell)
        if distributed.is_main():
            write_cell(out, cell.key, doc)
        distributed.barrier()
    if distributed.is_main():
        write_results_csv(out)
    distributed.barrier()
