"""The ``advtransfer`` command line: thin wrappers over the package (run, figures, data).

Problems the user can fix raise :class:`~advtransfer.errors.UserError`; ``main`` prints its message as one
``advtransfer: error: ...`` block and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path

from .errors import ConfigError, Terminated, UserError
from .scale.shards import SHARD_FORM, parse_shard, select_cells, shard_cells

DATA_ROOT_ENV = "ADVTRANSFER_DATA"


def _default_data_root() -> Path:
    return Path(os.environ.get(DATA_ROOT_ENV, "data"))


def _device(name: str):
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is visible to PyTorch; use --device cpu or auto")
    return torch.device(name)


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive integer")
    return n


def _int_list(value: str) -> list[int]:
    try:
        out = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        out = []
    if not out or min(out) < 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a comma-separated list of integers >= 0")
    return out


def _eps(value: str) -> float:
    try:
        eps = float(value)
    except ValueError:
        eps = -1.0
    if not 0.0 < eps <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r}: eps is in pixel units on [0, 1] inputs, 0 < eps <= 1")
    return eps


def _overrides(args: argparse.Namespace):
    from .workflow import Overrides, parse_backends

    return Overrides(backends=parse_backends(getattr(args, "backends", None)),
                     precision=getattr(args, "precision", None), compile=getattr(args, "compile", False))


def _out(args: argparse.Namespace) -> Path:
    from .workflow import check_out

    return check_out(Path(args.out) if args.out else Path("results") / args.profile)


def cmd_run(args: argparse.Namespace) -> int:
    from .workflow import finish, finish_shard, load

    shard = parse_shard(args.shard) if args.shard else None
    exp = load(args.experiment, args.profile, _overrides(args))
    out = _out(args)
    cells = exp.study.plan(exp)
    if args.cells:
        cells = select_cells(cells, args.cells)
    if shard:
        cells = shard_cells(cells, shard, lambda c: c.unit)
    _run_plan([(exp, cells)], out, args)
    from .engine import distributed

    if not distributed.is_main():
        return 0
    if shard:
        return finish_shard(out, cells, shard)
    return finish(out)


def _run_plan(plan, out: Path, args: argparse.Namespace) -> None:
    """Every (experiment, cells) of ``plan``: data-parallel under torchrun, else in ``--jobs`` processes."""
    from .engine import distributed, logs
    from .engine.grid import run_experiment
    from .engine.jobs import default_jobs, run_jobs

    with distributed.session(args.device) as ddp_device:  # under torchrun: data-parallel, rank 0 writes
        if ddp_device is not None:
            if args.download:
                raise ConfigError("--download under torchrun: fetch first (advtransfer data fetch ...), then start "
                                  "the data-parallel run")
            if args.jobs not in (None, 1):
                raise ConfigError(f"--jobs {args.jobs} under torchrun: every rank already works on the same cell; "
                                  "use --jobs 1 (or no torchrun)")
            run = _context(out, args, ddp_device)
            for exp, cells in plan:
                run_experiment(exp, run, download=False, cells=cells)
            return
        jobs = args.jobs or default_jobs()
        with logs.to_file(logs.log_file_path(out, args.command)) as log_file:
            run_jobs(plan, out, Path(args.data_root), args.device, jobs=jobs, threads=args.threads,
                     download=args.download, device_obj=_device(args.device) if jobs == 1 else None,
                     log_file=log_file, quiet=args.quiet, tensorboard=args.tensorboard)


def _context(out: Path, args: argparse.Namespace, ddp_device):
    from .engine import distributed
    from .engine.grid import stderr_log
    from .studies.base import RunContext

    # Progress lines from rank 0 only (every rank runs the same cells under torchrun).
    log = stderr_log if distributed.is_main() else (lambda msg: None)
    return RunContext(out, Path(args.data_root), ddp_device or _device(args.device), log)


def _shard_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shard", metavar="K/N",
                   help=f"run only shard K of N ({SHARD_FORM}); shards share --out, then `advtransfer figures "
                        "--results OUT` gathers")


def _runtime_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"),
                   help="training autocast (default: the config's, auto = bf16 on CUDA, fp32 on a CPU)")
    p.add_argument("--compile", action="store_true", help="train through torch.compile (GPU runs)")


def _jobs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--jobs", type=_positive_int,
                   help="worker processes sharing the grid's independent cells (default: the number of GPUs on "
                        "CUDA, of CPU cores on CPU; env ADVTRANSFER_JOBS)")
    p.add_argument("--threads", type=_positive_int,
                   help="torch threads per worker (default: the CPU cores divided by --jobs); results are "
                        "bit-identical across --jobs for the same --threads")
    p.add_argument("--quiet", action="store_true", help="no progress lines or bars on the console (errors only; "
                                                        "the run's log file in OUT/logs/ has everything)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write TensorBoard event files of every training to OUT/tensorboard/ (needs the "
                        "tensorboard extra: pip install 'advtransfer[tensorboard]')")


def cmd_reproduce_all(args: argparse.Namespace) -> int:
    """Every registered experiment of the profile into one folder, then figures and the report; finished cells
    are skipped, so rerunning after an interruption resumes."""
    from .engine import distributed
    from .engine.grid import missing_error
    from .workflow import finish, finish_shard, reproduce_all_experiments, shard_plan

    shard = parse_shard(args.shard) if args.shard else None
    names = [n.strip() for n in args.experiments.split(",") if n.strip()] if args.experiments else None
    experiments = reproduce_all_experiments(args.profile, names, _overrides(args))
    out = _out(args)
    data_root = Path(args.data_root)
    if not args.download:  # say everything that is missing before hours of the first experiment
        missing = [m for exp in experiments for m in exp.study.preflight(exp, data_root)]
        if missing:
            raise missing_error("reproduce-all", args.profile, list(dict.fromkeys(missing)), [])
    selected = shard_plan(experiments, shard)
    for exp, cells in zip(experiments, selected):
        print(f"== {exp.name} ({exp.study.name}) --profile {args.profile}{f' --shard {shard}' if shard else ''}: "
              f"{len(cells)} cell(s) -> {out}", file=sys.stderr, flush=True)
    _run_plan(list(zip(experiments, selected)), out, args)
    if not distributed.is_main():
        return 0
    if shard:
        return finish_shard(out, [c for cells in selected for c in cells], shard)
    return finish(out)


def cmd_launch(args: argparse.Namespace) -> int:
    from .scale.launch import launch

    return launch(args)


def cmd_figures(args: argparse.Namespace) -> int:
    from .reporting.outputs import write_outputs
    from .workflow import outputs_lock

    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"--results {results} does not exist; give the --out folder of an `advtransfer run`")
    with outputs_lock(results):
        outputs = write_outputs(results)  # results.csv rebuilt from the cell files, the source of truth
    for f in outputs.figures:
        print(f"figure: {f}")
    print(f"report: {outputs.report} and {outputs.report_html}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .engine.status import folder_status, format_status

    print(format_status(Path(args.results), folder_status(Path(args.results))))
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from .data import imagenet_r
    from .models import weights

    data_root = Path(args.data_root)
    if args.what in ("cifar10", "cifar100"):
        from .data.cifar import fetch_cifar

        print(f"{args.what} ready at {fetch_cifar(args.what, data_root)}")
        return 0
    if args.what == "cifar10-jpg":
        from .data.cifar import prepare_cifar10_jpg

        source = Path(args.source)
        if not source.is_dir():
            raise UserError(f"--source {source} does not exist: give the folder holding cifar10-jpg-train.tar.gz, "
                            "cifar10-jpg-test.tar.gz and SHA256SUMS")
        print(f"cifar10-jpg ready at {prepare_cifar10_jpg(source, data_root)}")
        return 0
    if args.what in ("imagenet-r", "all"):
        print(f"ImageNet-R ready at {imagenet_r.fetch(data_root, progress=not args.quiet)}")
    if args.what in ("weights", "all"):
        models = [(args.model, args.weights)] if args.what == "weights" else [("mobilenet_v2", "IMAGENET1K_V1")]
        for model, name in models:
            print(f"{model} {name} weights ready at {weights.fetch(model, name, progress=not args.quiet)}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from .workflow import load

    exp = load(args.experiment, args.profile)
    missing = exp.study.preflight(exp, Path(args.data_root))
    if missing:
        raise UserError("missing:\n- " + "\n- ".join(missing))
    print(f"{exp.name} --profile {exp.profile}: all data and weights present")
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    import torch

    from .attacks.crosscheck import crosscheck, default_specs, to_markdown, write_tables
    from .engine.reference_models import REFERENCE_MODELS, reference_model

    names = REFERENCE_MODELS if args.model == "all" else (args.model,)
    rows = []
    for name in names:
        print(f"training the reference model {name} on the tiny data ...", file=sys.stderr)
        model, x, y = reference_model(name, seed=args.seed, device=torch.device("cpu"))
        for row in crosscheck(model, x[: args.n], y[: args.n], default_specs(args.eps, args.steps), seed=args.seed):
            rows.append({"model": name, **row})
    json_path, md_path = write_tables(rows, Path(args.out))
    print(to_markdown(rows))
    print(f"written: {json_path}, {md_path}")
    bad = [r for r in rows if not r["agree"]]
    if bad:
        print(f"advtransfer: error: {len(bad)} backend comparison(s) disagree: "
              + "; ".join(f"{r['model']} {r['attack']} {r['backends']}" for r in bad), file=sys.stderr)
        return 1
    return 0


def cmd_bench_attacks(args: argparse.Namespace) -> int:
    import json

    import torch

    from .attacks import AttackSpec
    from .engine.reference_models import reference_model
    from .io import atomic_write_json
    from .scale.bench_attacks import bench_attacks, format_attack_table

    model, x, y = reference_model(args.model, device=torch.device("cpu"))
    x, y = x[: args.batch], y[: args.batch]
    specs = [AttackSpec.fgsm(args.eps), AttackSpec.pgd(args.eps, args.eps / 4, args.steps, random_start=False)]
    result = {"model": args.model, **bench_attacks(model, x, y, specs, repeats=args.repeats)}
    print(format_attack_table(result))
    if args.json:
        atomic_write_json(Path(args.json), result)
        print(f"written: {args.json}")
    else:
        print(json.dumps(result, indent=1))
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    from .io import atomic_write_json
    from .scale.bench_train import MODELS, bench_train, format_train_table

    models = list(MODELS) if args.model == "all" else [m.strip() for m in args.model.split(",") if m.strip()]
    data = Path(args.data) if args.data else _default_data_root() / "cifar10-jpg" / "test"
    result = bench_train(data, models, batch=args.batch, steps=args.steps, warmup=args.warmup, rounds=args.rounds,
                         size=args.size, workers=args.workers or None, limit=args.limit,
                         cache_dir=Path(args.cache_dir) if args.cache_dir else None, threads=args.threads,
                         log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_train_table(result))
    if args.json:
        atomic_write_json(Path(args.json), result)
        print(f"written: {args.json}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse with the kit's one-line errors (argparse prints its usage block and the error on two lines)."""

    def error(self, message: str):
        self.exit(2, f"advtransfer: error: {message}; see `{self.prog} --help`\n")


def cmd_bench_gpu(args: argparse.Namespace) -> int:
    from .io import atomic_write_json, atomic_write_text
    from .scale.bench_gpu import FULL, TINY, bench_gpu, format_gpu_tables, read_result, sizes_with, update_readme

    if args.from_json:
        if not args.update_readme:
            raise UserError("--from-json only feeds --update-readme; give --update-readme FILE too")
        result = read_result(Path(args.from_json))
    else:
        device = _device(args.device)
        tiny = args.tiny or device.type != "cuda"
        sizes = sizes_with(TINY if tiny else FULL, px=args.px, batch=args.batch, steps=args.steps)
        result = bench_gpu(device=device, tiny=tiny, budget=float(args.budget), sizes=sizes,
                           log=lambda msg: print(msg, file=sys.stderr, flush=True))
        tables = format_gpu_tables(result)
        print(tables)
        if args.json:
            json_path = Path(args.json)
            atomic_write_json(json_path, result)
            atomic_write_text(json_path.with_suffix(".md"), tables)
            print(f"written: {json_path}, {json_path.with_suffix('.md')}")
    if args.update_readme:
        update_readme(Path(args.update_readme), result)
        print(f"rewritten: the cost table of {args.update_readme}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="advtransfer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def data_root_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-root", default=str(_default_data_root()),
                       help=f"where datasets live (env {DATA_ROOT_ENV}, default ./data)")

    p = sub.add_parser("run", help="run an experiment's cells (finished cells are skipped), then results.csv and "
                                   "figures")
    p.add_argument("experiment", help="experiment name (exp1) or path to a .toml config")
    p.add_argument("--profile", required=True, help="profile in the config: demo, paper, ...")
    p.add_argument("--out", help="results folder (default results/PROFILE)")
    data_root_arg(p)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--backends", help="attack backends of every evaluation, comma-separated (default: the config's; "
                                      "native, torchattacks, art)")
    p.add_argument("--download", action="store_true",
                   help="fetch missing datasets and weights first (verified against pinned checksums)")
    _runtime_args(p)
    _jobs_args(p)
    _shard_arg(p)
    p.add_argument("--cells", metavar="GLOB",
                   help="run only the cells whose key matches this shell pattern (comma-separated for several), "
                        "e.g. 'exp2-e1-intended-basenet-*'")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("reproduce-all", help="every registered study's experiments of a profile into one folder, "
                                             "then figures and the report (resumable)")
    p.add_argument("--profile", default="paper", help="demo (tiny data, CPU, minutes) or paper (default)")
    p.add_argument("--experiments", metavar="A,B",
                   help="comma-separated experiment names or .toml paths (default: every registered study's "
                        "experiments that have the profile)")
    p.add_argument("--out", help="results folder (default results/PROFILE)")
    data_root_arg(p)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--backends", help="attack backends of every evaluation, comma-separated (default: each config's)")
    p.add_argument("--download", action="store_true",
                   help="fetch missing datasets and weights first (verified against pinned checksums)")
    _runtime_args(p)
    _jobs_args(p)
    _shard_arg(p)
    p.set_defaults(func=cmd_reproduce_all)

    p = sub.add_parser("launch", help="run an experiment as N shard jobs through submitit (SLURM, or local "
                                      "subprocesses), wait for them, then gather results.csv, figures and the report")
    p.add_argument("experiment", help="experiment name (exp1) or path to a .toml config")
    p.add_argument("--profile", required=True, help="profile in the config: demo, paper, ...")
    p.add_argument("--shards", type=_positive_int, required=True, help="number of jobs (shard k/N each)")
    p.add_argument("--executor", default="slurm", choices=("slurm", "local"),
                   help="slurm (sbatch, default) or local (subprocesses on this machine)")
    p.add_argument("--out", help="results folder (default results/PROFILE); must be visible to every job")
    data_root_arg(p)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--backends", help="attack backends of every evaluation, comma-separated (default: the config's)")
    p.add_argument("--partition", help="SLURM partition")
    p.add_argument("--gpus-per-task", type=int, help="GPUs per job (default: slurm 1; local: 1 if this machine has "
                                                     "GPUs, shards dealt over them round robin, else 0)")
    p.add_argument("--cpus-per-task", type=_positive_int, help="CPU cores per job (also its torch threads)")
    p.add_argument("--timeout-min", type=_positive_int, default=24 * 60,
                   help="wall-clock limit per job in minutes (default 1440); a job that reaches it is requeued and "
                        "resumes from its checkpoints (SLURM)")
    p.add_argument("--mem-gb", type=float, help="memory per job in GB (SLURM)")
    p.add_argument("--log-dir", help="submitit's folder for job scripts and logs (default OUT/launch-logs)")
    _runtime_args(p)
    p.set_defaults(func=cmd_launch)

    p = sub.add_parser("status", help="what a results folder holds: cells done, running (last epoch), stopped, "
                                      "pending, and the time left")
    p.add_argument("results", help="a results folder (the --out of a run)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("figures", help="rebuild results.csv and figures from saved results (no training)")
    p.add_argument("--results", required=True, help="a results folder written by `advtransfer run`")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("crosscheck", help="FGSM and PGD through native, torchattacks and ART on one model and batch; "
                                          "exits 1 if they disagree")
    p.add_argument("--model", default="all", choices=("all", "small-cnn", "mobilenet-demo"))
    p.add_argument("--n", type=_positive_int, default=128, help="examples in the batch (<= 256)")
    p.add_argument("--eps", type=_eps, default=8 / 255, help="pixel units (default 8/255)")
    p.add_argument("--steps", type=_positive_int, default=10, help="PGD steps (step size eps/4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="results/crosscheck", help="folder for crosscheck.json and crosscheck.md")
    p.set_defaults(func=cmd_crosscheck)

    p = sub.add_parser("bench", help="benchmarks (measured, never asserted)")
    bsub = p.add_subparsers(dest="bench_command", required=True, metavar="WHAT")
    b = bsub.add_parser("attacks", help="ms per batch of each attack and backend, and the ratio to steps x "
                                        "(forward + backward)")
    b.add_argument("--model", default="mobilenet-demo", choices=("small-cnn", "mobilenet-demo"))
    b.add_argument("--batch", type=_positive_int, default=128)
    b.add_argument("--eps", type=_eps, default=8 / 255)
    b.add_argument("--steps", type=_positive_int, default=10)
    b.add_argument("--repeats", type=_positive_int, default=5)
    b.add_argument("--json", help="write the result as JSON to this file")
    b.set_defaults(func=cmd_bench_attacks)
    b = bsub.add_parser("train", help="images per second of a training step per model: plain ImageFolder + "
                                      "DataLoader vs the kit's tensor cache + tensor augmentation, same images")
    b.add_argument("--data", help=f"an ImageFolder tree (default: ${DATA_ROOT_ENV} or ./data, then "
                                  "cifar10-jpg/test; `advtransfer data fetch cifar10-jpg` unpacks it)")
    b.add_argument("--model", default="all",
                   help="all (default) or a comma-separated list of mobilenet_v2 (study 1), basenet, resnet18")
    b.add_argument("--batch", type=_positive_int, default=64)
    b.add_argument("--steps", type=_positive_int, default=30, help="timed steps per window")
    b.add_argument("--warmup", type=int, default=5, help="untimed steps at the start of every window")
    b.add_argument("--rounds", type=_positive_int, default=2,
                   help="windows per pipeline, alternating which pipeline goes first")
    b.add_argument("--size", type=_positive_int, default=96,
                   help="input px of study 1's MobileNetV2 (width 1.0); study 2's models run at 32 px")
    b.add_argument("--workers", type=_int_list, help="DataLoader workers of the plain pipeline, or a comma-separated "
                                                   "list to measure each and compare against the fastest "
                                                   "(default: the CPU count)")
    b.add_argument("--threads", type=_positive_int,
                   help="torch threads of the training process (default: torch's, the CPU count); 1 on a machine "
                        "shared with other jobs, where spinning thread pools distort every timing")
    b.add_argument("--limit", type=_positive_int, help="use this many images (a seeded random subset)")
    b.add_argument("--cache-dir", help="keep the tensor caches here and reuse them (default: a temporary folder, "
                                       "so the build time is measured)")
    b.add_argument("--json", help="write the result as JSON to this file")
    b.set_defaults(func=cmd_bench_train)
    b = bsub.add_parser("gpu", help="the GPU check, <= 8 min on one GPU: train img/s (MobileNetV2, ResNet-18, 224 px, "
                                    "fp32/bf16/compile), attack ratios, bf16 vs fp32 accuracy, a paper-shaped cell; "
                                    "tiny sizes on a CPU")
    b.add_argument("--json", help="write the result as JSON to this file, and its tables as Markdown beside it (.md)")
    b.add_argument("--update-readme", metavar="FILE",
                   help="rewrite the cost table of FILE (README.md, between its bench-gpu markers) from the result")
    b.add_argument("--from-json", metavar="FILE", help="measure nothing: take the result from this JSON of an "
                                                        "earlier run (with --update-readme)")
    b.add_argument("--tiny", action="store_true", help="tiny sizes (the default without CUDA): seconds, any device")
    b.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    b.add_argument("--budget", type=_positive_int, default=480,
                   help="seconds for the whole run (default 480); pieces that would not fit are skipped and named")
    b.add_argument("--px", type=_positive_int, help="train and attack input px (default 224; tiny 32)")
    b.add_argument("--batch", type=_positive_int, help="train batch (default 128; tiny 8)")
    b.add_argument("--steps", type=_positive_int, help="timed train steps per model and mode (default 40; tiny 2)")
    b.set_defaults(func=cmd_bench_gpu)

    p = sub.add_parser("data", help="fetch or check datasets and weights")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    f = dsub.add_parser("fetch", help="download (or unpack), verify and extract: imagenet-r, weights, all (both), "
                                      "cifar10, cifar100, cifar10-jpg (from local tarballs, see --source)")
    f.add_argument("what", choices=("imagenet-r", "weights", "all", "cifar10", "cifar100", "cifar10-jpg"))
    f.add_argument("--source", default="../shared/data/cifar10-jpg",
                   help="cifar10-jpg: folder with the tarballs and SHA256SUMS")
    data_root_arg(f)
    f.add_argument("--model", default="mobilenet_v2", choices=("mobilenet_v2", "resnet18"))
    f.add_argument("--weights", default="IMAGENET1K_V1", choices=("IMAGENET1K_V1", "IMAGENET1K_V2"))
    f.add_argument("--quiet", action="store_true", help="no progress bar")
    f.set_defaults(func=cmd_data_fetch)
    c = dsub.add_parser("check", help="say what an experiment profile needs that is missing")
    c.add_argument("experiment")
    c.add_argument("--profile", required=True)
    data_root_arg(c)
    c.set_defaults(func=cmd_data_check)
    return parser


def _terminate(signum, frame) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed as one line
        return int(exc.code or 0)
    # SLURM and container runtimes stop a job with SIGTERM (then SIGKILL after a grace period): handled like
    # Ctrl-C, so the cell in progress keeps its last checkpoint and the message says how to resume.
    previous = signal.signal(signal.SIGTERM, _terminate) if threading.current_thread() is threading.main_thread() \
        else None
    from .engine import logs

    try:
        with logs.console(getattr(args, "quiet", False)):
            return args.func(args)
    except UserError as exc:
        print(f"advtransfer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:
        how = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"advtransfer: {how}; finished cells and checkpoints are kept, rerun the same command to resume",
              file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
