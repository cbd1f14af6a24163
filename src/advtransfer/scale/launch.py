"""``advtransfer launch``: an experiment's grid as N shard jobs on SLURM (or local subprocesses) through submitit.

Each job runs exactly what ``advtransfer run EXPERIMENT --profile P --shard k/N --out OUT`` runs, in the job's own
Python process (:class:`ShardJob` calls the CLI's ``main``), so a launched run and a hand-run one share one code
path and one results folder layout. The launcher then waits for every job, names each failed shard with its exit
status, error and log file, and only when all succeeded gathers: ``results.csv`` rebuilt from the cell files, the
figures and the report, with ``run``'s exit status (0, or 3 when the attack backends disagree).

- Every job must see ``--out`` and ``--data-root`` (a shared filesystem) and this Python environment.
- A SLURM job that reaches ``--timeout-min`` or is preempted is requeued (submitit's checkpoint protocol) and
  resumes: finished cells are skipped and a cell in progress resumes from its last per-epoch checkpoint.
- A failed launch is resumed by rerunning the same command: only unfinished cells are trained again.

submitit is an optional dependency: ``pip install 'advtransfer[cluster]'``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from ..errors import ConfigError, UserError

INSTALL_HINT = "pip install 'advtransfer[cluster]'"


class ShardJob:
    """One shard, run inside a job. Picklable (by reference to this module). ``threads``: torch's intra-op
    threads (default: SLURM's --cpus-per-task where set, else torch's own default)."""

    def __init__(self, argv: list[str], threads: int | None = None) -> None:
        self.argv = list(argv)
        self.threads = threads

    def __call__(self) -> int:
        threads = self.threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "0")) or None
        if threads:
            os.environ.setdefault("OMP_NUM_THREADS", str(threads))
            import torch

            torch.set_num_threads(threads)
        from ..cli import main

        print(f"advtransfer {' '.join(self.argv)}", file=sys.stderr, flush=True)
        return main(self.argv)

    def checkpoint(self, *args, **kwargs):
        """Called by submitit on timeout or preemption: requeue the same shard (it resumes from its files)."""
        import submitit

        return submitit.helpers.DelayedSubmission(ShardJob(self.argv, self.threads), *args, **kwargs)


def shard_argv(args: argparse.Namespace, experiment: str, out: Path, data_root: Path, k: int, n: int) -> list[str]:
    """The ``advtransfer`` arguments of shard k of n: the same run, one part of the grid."""
    argv = ["run", experiment, "--profile", args.profile, "--out", str(out), "--data-root", str(data_root),
            "--device", args.device, "--shard", f"{k}/{n}"]
    if getattr(args, "backends", None):
        argv += ["--backends", args.backends]
    if getattr(args, "precision", None):
        argv += ["--precision", args.precision]
    if getattr(args, "compile", False):
        argv.append("--compile")
    return argv


def _error_line(job) -> str:
    """The job's last error message: its `advtransfer: error:` line, else the last line of its stderr."""
    try:
        lines = [ln.strip() for ln in Path(job.paths.stderr).read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no log"
    errors = [ln for ln in lines if ln.startswith("advtransfer: error:")]
    return (errors or lines or ["empty log"])[-1]


def _executor(submitit, args: argparse.Namespace, log_dir: Path, name: str, shards: int):
    """(executor, per-shard parameter updates or None). Local jobs get a share of this machine's cores and one GPU
    each (dealt round robin) where it has GPUs; SLURM jobs what the flags ask for."""
    params = {"timeout_min": args.timeout_min, "nodes": 1, "tasks_per_node": 1}
    if args.executor == "local":
        import torch

        n_gpus = torch.cuda.device_count()
        gpus = args.gpus_per_task if args.gpus_per_task is not None else (1 if n_gpus else 0)
        if gpus > n_gpus:
            raise ConfigError(f"--gpus-per-task {gpus}: this machine has {n_gpus} visible GPU(s)")
        executor = submitit.LocalExecutor(folder=log_dir)
        executor.update_parameters(**params, gpus_per_node=gpus)
        threads = args.cpus_per_task or max(1, (os.cpu_count() or 1) // shards)
        per_shard = [{"visible_gpus": tuple(((k * gpus) + j) % n_gpus for j in range(gpus))} if gpus else {}
                     for k in range(shards)]
        return executor, per_shard, threads
    executor = submitit.AutoExecutor(folder=log_dir, cluster="slurm")
    params.update(name=name, gpus_per_node=1 if args.gpus_per_task is None else args.gpus_per_task)
    if args.cpus_per_task:
        params["cpus_per_task"] = args.cpus_per_task
    if args.mem_gb:
        params["mem_gb"] = args.mem_gb
    if args.partition:
        params["slurm_partition"] = args.partition
    executor.update_parameters(**params)
    return executor, None, args.cpus_per_task


def launch(args: argparse.Namespace) -> int:
    try:
        import submitit
    except ImportError:
        raise UserError(f"advtransfer launch needs submitit, an optional dependency: {INSTALL_HINT}") from None
    from ..engine.grid import missing_error
    from ..workflow import Overrides, check_out, finish, load, parse_backends
    from .shards import units

    # bad input fails here, before anything is submitted
    exp = load(args.experiment, args.profile, Overrides(backends=parse_backends(args.backends),
                                                        precision=args.precision, compile=args.compile))
    if args.gpus_per_task is not None and args.gpus_per_task < 0:
        raise ConfigError(f"--gpus-per-task {args.gpus_per_task}; valid: an integer >= 0")
    out = check_out(Path(args.out) if args.out else Path("results") / args.profile).resolve()
    data_root = Path(args.data_root).resolve()
    missing = exp.study.preflight(exp, data_root)
    if missing:  # jobs on compute nodes cannot download: say so before queueing N jobs
        raise missing_error(exp.name, exp.profile, missing)
    experiment = str(Path(args.experiment).resolve()) if Path(args.experiment).is_file() else args.experiment
    n_units = len(units(exp.study.plan(exp), lambda c: c.unit))
    n = min(args.shards, n_units)
    if n < args.shards:
        print(f"advtransfer: the grid has {n_units} independent unit(s): launching {n} shard(s), not {args.shards}",
              file=sys.stderr)
    log_dir = (Path(args.log_dir) if args.log_dir else out / "launch-logs").resolve()
    try:
        executor, per_shard, threads = _executor(submitit, args, log_dir, f"advtransfer-{exp.name}", n)
        shards = [(k, ShardJob(shard_argv(args, experiment, out, data_root, k, n), threads))
                  for k in range(1, n + 1)]
        if per_shard is None:  # SLURM: one array job
            with executor.batch():
                jobs = [(k, executor.submit(job)) for k, job in shards]
        else:
            jobs = []
            for (k, job), extra in zip(shards, per_shard):
                executor.update_parameters(**extra)
                jobs.append((k, executor.submit(job)))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:  # no SLURM here, or sbatch refused
        raise UserError(f"could not submit the jobs to {args.executor} ({str(exc).strip().splitlines()[-1]}); "
                        "run on a SLURM login node (sbatch on PATH) or use --executor local") from None
    print(f"launched {n} shard job(s) of {exp.name} --profile {exp.profile} ({args.executor}) -> {out}")
    for k, job in jobs:
        print(f"  shard {k}/{n}: job {job.job_id}, log {job.paths.stderr}")
    sys.stdout.flush()
    by_job = {id(job): k for k, job in jobs}
    failures = []
    try:
        for job in submitit.helpers.as_completed([job for _, job in jobs],
                                                 poll_frequency=2 if args.executor == "local" else 30):
            k = by_job[id(job)]
            if args.executor == "local":
                job._results_timeout_s = 1  # submitit waits 15 s for a result file on slow shared filesystems
            try:
                code = job.result()
            except submitit.core.utils.FailedJobError as exc:  # a Python exception in the job: its last line
                lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
                failures.append(f"shard {k}/{n} (job {job.job_id}) raised {lines[-1] if lines else '?'}; "
                                f"log {job.paths.stderr}")
                continue
            except Exception:  # no result: killed, out of memory, past its time limit for good, cancelled
                failures.append(f"shard {k}/{n} (job {job.job_id}) ended without a result (state {job.state}: killed, "
                                f"out of memory or out of time?); last log line: {_error_line(job)}; "
                                f"log {job.paths.stderr}")
                continue
            if code in (0, 3):
                print(f"  shard {k}/{n} done (job {job.job_id})", flush=True)
            else:
                failures.append(f"shard {k}/{n} (job {job.job_id}) exited with status {code}: {_error_line(job)}; "
                                f"log {job.paths.stderr}")
    except KeyboardInterrupt:
        print(f"advtransfer: interrupted; the jobs keep running (logs in {log_dir}); when they have finished, "
              f"gather with: advtransfer figures --results {out}", file=sys.stderr)
        return 130
    if failures:
        print(f"advtransfer: error: {len(failures)} of {n} shard(s) failed; finished cells are kept, rerun the same "
              "command to resume:\n- " + "\n- ".join(failures), file=sys.stderr)
        return 1
    return finish(out)  # every shard's cells gathered: results.csv, figures, the report
