"""Independent cells on every core or GPU of one machine: ``advtransfer run|reproduce-all --jobs N``.

N worker processes walk the same grid in plan order; each takes the next cell no other worker holds (the cell
locks of :mod:`advtransfer.engine.grid`) and waits where the grid has a dependency: a shared pretraining (Base A,
the transfer backbone) or a clean model an adversarial training starts from is trained once, under its training
lock, and every worker that needs it resumes from its final checkpoint. So the work is shared out dynamically,
nothing is computed twice, and a cell's result does not depend on which worker computed it: with the same
number of torch threads per worker, results.csv is byte-identical to ``--jobs 1`` on CPU. On CUDA each worker gets
one GPU (``CUDA_VISIBLE_DEVICES``), dealt round robin.

A failing worker (a diverged training, a missing file) stops the others; its one-line error is the command's.
Ctrl-C or SIGTERM stops every worker, each keeping its last checkpoint; rerunning the command resumes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

from ..errors import UserError
from ..results import store
from ..studies.base import Cell, Experiment, RunContext
from . import logs
from .grid import check_inputs, run_experiment, stderr_log
from .progress import bar
from .tensorboard import check_available
from .tensorboard import tensorboard as event_files

JOBS_ENV = "ADVTRANSFER_JOBS"  # the default of --jobs (the test suite sets 1)


def default_jobs() -> int:
    """The number of GPUs on a CUDA machine, else the number of CPU cores (ADVTRANSFER_JOBS overrides)."""
    if os.environ.get(JOBS_ENV, "").strip():
        try:
            return max(1, int(os.environ[JOBS_ENV]))
        except ValueError:
            raise UserError(f"{JOBS_ENV}={os.environ[JOBS_ENV]!r} is not a number of jobs; set it to an integer "
                            ">= 1 or unset it") from None
    import torch

    return torch.cuda.device_count() or os.cpu_count() or 1


def default_threads(jobs: int) -> int:
    """Each worker's share of the CPU cores."""
    return max(1, (os.cpu_count() or 1) // jobs)


Plan = Sequence[tuple[Experiment, Sequence[Cell]]]


def run_jobs(plan: Plan, out: Path, data_root: Path, device: str, *, jobs: int, threads: int | None = None,
             download: bool = False, device_obj=None, log_file: Path | None = None, quiet: bool = False,
             tensorboard: bool = False) -> None:
    """Run every experiment's cells of ``plan``: in this process for ``jobs == 1`` (``device_obj``, the resolved
    device, is used as is), else in ``jobs`` worker processes."""
    for exp, _ in plan:  # downloads and the one message for missing data happen once, here
        check_inputs(exp, data_root, download)
    if tensorboard:
        check_available()
    if jobs == 1:
        import torch

        saved = torch.get_num_threads()
        if threads:  # for this run only: a library caller's (or a test's) thread count is restored afterwards
            torch.set_num_threads(threads)
        try:
            run = RunContext(Path(out), Path(data_root), device_obj, _log_for(None))
            with event_files(out) if tensorboard else nullcontext():
                for exp, cells in plan:
                    run_experiment(exp, run, cells=cells)
        finally:
            torch.set_num_threads(saved)
        return
    threads = threads or default_threads(jobs)
    gpus = _gpu_count() if device in ("auto", "cuda") else 0
    ctx = mp.get_context("spawn")  # a fresh interpreter per worker: no forked torch or CUDA state
    errors = ctx.Queue()
    workers = [ctx.Process(target=_worker, name=f"advtransfer-w{k}",
                           args=(list(plan), str(out), str(data_root), device, threads, k,
                                 (k - 1) % gpus if gpus else None, errors, log_file, quiet, tensorboard))
               for k in range(1, jobs + 1)]
    stderr_log(f"running {sum(len(c) for _, c in plan)} cell(s) in {jobs} worker processes, {threads} torch "
               f"thread(s) each" + (f", one GPU each ({gpus} visible)" if gpus else ""))
    for w in workers:
        w.start()
    keys = [c.key for _, cells in plan for c in cells]
    try:
        with bar(len(keys), "cells", "cell") as advance:
            _wait(workers, errors, lambda: sum(store.cell_path(out, k).is_file() for k in keys), advance)
    except BaseException:
        for w in workers:
            if w.is_alive():
                w.terminate()  # SIGTERM: the worker stops like Ctrl-C, keeping its checkpoints
        for w in workers:
            w.join(timeout=60)
        raise


def _gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def _wait(workers: list, errors, done=lambda: 0, advance=lambda n: None) -> None:
    shown, last = 0, 0.0
    while any(w.is_alive() for w in workers):
        failed = [w for w in workers if w.exitcode not in (None, 0)]
        if failed:
            break
        if time.monotonic() - last > 1.0:  # the parent's bar follows the cell files the workers write
            now, last = done(), time.monotonic()
            advance(now - shown)
            shown = now
        time.sleep(0.2)
    for w in workers:
        if w.exitcode not in (None, 0):
            message = None
            while not errors.empty():
                message = errors.get()
            raise UserError(message or f"worker {w.name} ended with status {w.exitcode}; rerun the command to resume "
                                       "(finished cells and checkpoints are kept)")
    for w in workers:
        w.join()


def _log_for(worker: int | None):
    if worker is None:
        return stderr_log
    return lambda msg: stderr_log(f"w{worker} {msg}")


def _worker(plan: list, out: str, data_root: str, device: str, threads: int, index: int, gpu: int | None,
            errors, log_file: Path | None = None, quiet: bool = False, tensorboard: bool = False) -> None:
    """One worker: the same grid walk as a single process, with its share of threads (and its GPU)."""
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    import signal

    from ..errors import Terminated

    def terminate(signum, frame):
        raise Terminated()

    signal.signal(signal.SIGTERM, terminate)
    import torch

    torch.set_num_threads(threads)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    run = RunContext(Path(out), Path(data_root), torch.device(device), _log_for(index))
    try:
        with logs.console(quiet), logs.to_file(log_file) if log_file else nullcontext(), \
                event_files(out) if tensorboard else nullcontext():
            for exp, cells in plan:
                run_experiment(exp, run, cells=cells)
    except UserError as exc:
        errors.put(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the checkpoint of the last epoch is kept; the parent says so
        sys.exit(130)
