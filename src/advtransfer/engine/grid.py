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
from . import distributed, logs
from .locks import FileLock, training_lock
from .progress import bar

LOCKS_DIR = "locks"


def stderr_log(msg: str) -> None:
    """A progress line: through the ``advtransfer`` logger (console and the run's log file) when a command set it
    up, else straight to stderr (the kit used as a library)."""
    if logs.LOGGER.handlers:
        logs.log(msg)
    else:
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


def cell_lock(out: Path, key: str, log) -> FileLock:
    return FileLock(Path(out) / LOCKS_DIR / f"{key}.lock", key, log)


def run_experiment(exp: Experiment, run: RunContext, *, download: bool = False,
                   cells: Sequence[Cell] | None = None) -> list[Cell]:
    """Run every unfinished cell of ``exp`` (or of ``cells``, a selection of its plan in plan order); return the
    cells of this call. A cell another live process is computing (its lock is held) is skipped with a note: that
    process writes it."""
    grid = list(exp.study.plan(exp) if cells is None else cells)
    store.check_cell_keys((c.key for c in grid), f"{exp.source.name}[{exp.profile}]")
    check_inputs(exp, run.data_root, download)
    if distributed.is_main():
        atomic_write_json(Path(run.out) / f"config-{exp.name}.json",
                          {"study": exp.study.name, "experiment": exp.name, "profile": exp.profile,
                           "source": str(exp.source), "config": to_plain(exp.cfg)})
    runner = exp.study.runner(exp, run)
    busy, deferred = [], []
    needs = {cell.key: exp.study.dependencies(exp, cell) for cell in grid}
    needed_by: dict[str, list[str]] = {}
    for key, deps in needs.items():
        for dep in deps:
            needed_by.setdefault(dep, []).append(key)
    with bar(len(grid), f"{exp.name} cells", "cell") as progress:
        for i, cell in enumerate(grid, 1):
            # A cell whose pretraining or clean model another process (a --jobs worker, a shard) is training now
            # waits for it at the end of the walk, not here: other cells keep this process busy meanwhile. Each
            # cell's result does not depend on when it is computed, so results stay byte-identical.
            training = distributed.on_main(lambda cell=cell: _training_elsewhere(run, cell, needs, needed_by))
            if training is not None:
                run.log(f"[{cell.key}] needs {training[0]}, which {training[1]} is training: deferred "
                        f"({i}/{len(grid)})")
                deferred.append((i, cell))
                continue
            _run_cell(exp, run, runner, cell, i, len(grid), busy)
            progress(1)
        for i, cell in deferred:
            _run_cell(exp, run, runner, cell, i, len(grid), busy)
            progress(1)
    if busy:
        run.log(f"{len(busy)} cell(s) were being computed by other processes and were skipped; results.csv, figures "
                "and the report are rebuilt by whichever process finishes last (or by `advtransfer figures`)")
    return grid


def _run_cell(exp: Experiment, run: RunContext, runner, cell: Cell, i: int, n: int, busy: list[str]) -> None:
    """One cell of the grid walk: skipped when done or held by another process, else computed and written."""
    lock = cell_lock(run.out, cell.key, run.log)
    status = distributed.on_main(lambda: _status(exp, run, cell.key, lock))
    if status == "done":
        run.log(f"[{cell.key}] done already, skipped ({i}/{n})")
        return
    if status == "busy":
        run.log(f"[{cell.key}] being computed by {lock.describe()}, skipped ({i}/{n}): that process "
                "writes its result")
        busy.append(cell.key)
        return
    try:
        existing = store.load_cell(run.out, cell.key) if status == "extend" else None
        distributed.barrier()  # every rank has read the old document before rank 0 replaces it
        if existing is not None:
            have = ", ".join(existing.get("backends", [])) or "none"
            missing = ", ".join(b for b in exp.backends if b not in existing.get("backends", []))
            run.log(f"[{cell.key}] cell {i}/{n}: finished with backends {have}; adding "
                    f"{missing or 'missing evaluations'}")
        else:
            run.log(f"[{cell.key}] cell {i}/{n}")
        doc = runner(cell, existing)
        if distributed.is_main():
            store.write_cell(run.out, cell.key, {**doc, "study": exp.study.name, "experiment": exp.name,
                                                 "profile": exp.profile})
        distributed.barrier()
    finally:
        lock.release()


def _training_elsewhere(run: RunContext, cell: Cell, needs: dict[str, list[str]],
                        needed_by: dict[str, list[str]]) -> tuple[str, str] | None:
    """(training, holder) where another live process is training something the cell needs, or None (also for a
    cell already done: it is skipped at once). Either the training's own lock is held, or the lock of another cell
    that needs the same training (a cell takes its lock a moment before its first training starts)."""
    if store.cell_path(run.out, cell.key).is_file():
        return None
    for key in needs[cell.key]:
        lock = training_lock(Path(run.out) / "checkpoints" / key)
        if lock.busy():
            return key, lock.describe()
        for other in [*needed_by.get(key, []), *([key] if key in needs else [])]:  # the cell it is named after
            if other != cell.key:
                other_lock = cell_lock(run.out, other, run.log)
                if other_lock.busy() and not store.cell_path(run.out, other).is_file():
                    return key, f"{other_lock.describe()} (cell {other})"
    return None


def _status(exp: Experiment, run: RunContext, key: str, lock: FileLock) -> str:
    """done / new / extend (the cell's lock taken), or busy (another live process holds it)."""
    doc = store.load_cell(run.out, key)
    if doc is not None and exp.study.is_complete(exp, doc):  # the common case of a rerun: no lock needed
        return "done"
    if not lock.acquire():
        return "busy"
    path = store.cell_path(run.out, key)
    doc = store.load_cell(run.out, key)  # again, now that no other process can be writing it
    if doc is None:
        if path.exists():
            run.log(f"[{key}] {path} is corrupt or not a cell result of this kit: recomputing the cell")
        return "new"
    if exp.study.is_complete(exp, doc):
        lock.release()
        return "done"
    return "extend"
