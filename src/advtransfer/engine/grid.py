"""Running an experiment's grid: every cell not yet finished, each result written atomically as it completes.

One loop for every study (the study supplies the plan and a cell runner). A killed run loses at most the cell in
progress, which resumes from its checkpoints. A finished cell whose document lacks something the experiment now
asks for (another attack backend) is *extended*: the study's runner gets the old document, trains nothing
(training resumes from its final checkpoint) and adds only the missing evaluations.

Safe for concurrent shards writing into one ``out`` (each cell file is replaced atomically). Under torchrun every
rank runs each cell (training is data-parallel); rank 0 decides what is done and alone writes files.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from ..config.reader import to_plain
from ..errors import DataError
from ..io import atomic_write_json
from ..results import store
from ..studies.base import Cell, Experiment, RunContext
from . import distributed


def stderr_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def missing_error(experiment: str, profile: str, missing: Sequence[str], failures: Sequence[str] = ()) -> DataError:
    """One message for everything a run lacks (each item names its fix), plus why downloads failed, if tried."""
    tried = "\nDownload attempts failed:\n- " + "\n- ".join(failures) if failures else ""
    return DataError("cannot run {} --profile {}: {} missing.\n- {}{}".format(
        experiment, profile, "one thing is" if len(missing) == 1 else f"{len(missing)} things are",
        "\n- ".join(missing), tried))


def check_inputs(exp: Experiment, data_root: Path, download: bool) -> None:
    """Raise one error naming everything ``exp`` lacks (after trying to download it, with ``download``)."""
    missing, failures = exp.study.preflight(exp, data_root), []
    if missing and download:
        failures = exp.study.fetch(exp, data_root)
        missing = exp.study.preflight(exp, data_root)
    if missing:
        raise missing_error(exp.name, exp.profile, missing, failures)


def run_experiment(exp: Experiment, run: RunContext, *, download: bool = False,
                   cells: Sequence[Cell] | None = None) -> list[Cell]:
    """Run every unfinished cell of ``exp`` (or of ``cells``, a selection of its plan in plan order); return the
    cells of this call."""
    grid = list(exp.study.plan(exp) if cells is None else cells)
    store.check_cell_keys((c.key for c in grid), f"{exp.source.name}[{exp.profile}]")
    check_inputs(exp, run.data_root, download)
    if distributed.is_main():
        atomic_write_json(Path(run.out) / f"config-{exp.name}.json",
                          {"study": exp.study.name, "experiment": exp.name, "profile": exp.profile,
                           "source": str(exp.source), "config": to_plain(exp.cfg)})
    runner = exp.study.runner(exp, run)
    for i, cell in enumerate(grid, 1):
        status = distributed.on_main(lambda cell=cell: _status(exp, run.out, cell.key))
        if status == "done":
            run.log(f"[{cell.key}] done already, skipped ({i}/{len(grid)})")
            continue
        existing = store.load_cell(run.out, cell.key) if status == "extend" else None
        distributed.barrier()  # every rank has read the old document before rank 0 replaces it
        if existing is not None:
            have = ", ".join(existing.get("backends", [])) or "none"
            run.log(f"[{cell.key}] cell {i}/{len(grid)}: finished with backends {have}; adding "
                    f"{', '.join(b for b in exp.backends if b not in existing.get('backends', []))}")
        else:
            run.log(f"[{cell.key}] cell {i}/{len(grid)}")
        doc = runner(cell, existing)
        if distributed.is_main():
            store.write_cell(run.out, cell.key, {**doc, "study": exp.study.name, "experiment": exp.name,
                                                 "profile": exp.profile})
        distributed.barrier()
    return grid


def _status(exp: Experiment, out: Path, key: str) -> str:
    doc = store.load_cell(out, key)
    if doc is None:
        return "new"
    return "done" if exp.study.is_complete(exp, doc) else "extend"
