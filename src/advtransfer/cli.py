"""The ``advtransfer`` command line: thin wrappers over the package (run, figures, data).

Problems the user can fix raise :class:`~advtransfer.errors.UserError`; ``main`` prints its message as one
``advtransfer: error: ...`` block and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import ConfigError, UserError

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


def _eps(value: str) -> float:
    try:
        eps = float(value)
    except ValueError:
        eps = -1.0
    if not 0.0 < eps <= 1.0:
        raise argparse.ArgumentTypeError(f"{value!r}: eps is in pixel units on [0, 1] inputs, 0 < eps <= 1")
    return eps


def _load(experiment: str, profile: str):
    """(study module, validated config) for an experiment of either study ([experiment] study = 1 or 2)."""
    from . import study1, study2
    from .config import load_exp1, load_exp2, load_raw

    _, meta, _ = load_raw(experiment, profile)
    if meta.get("study", 1) == 2:
        return study2, load_exp2(experiment, profile)
    return study1, load_exp1(experiment, profile)


def cmd_run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    module, cfg = _load(args.experiment, args.profile)
    if args.backends:
        from .attacks import BACKENDS

        backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
        if not backends or any(b not in BACKENDS for b in backends):
            raise ConfigError(f"--backends {args.backends!r}; valid: a comma-separated list of {', '.join(BACKENDS)}")
        cfg = replace(cfg, backends=backends)
    out = Path(args.out) if args.out else Path("results") / args.profile
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    module.run(cfg, out, Path(args.data_root), _device(args.device), download=args.download)
    figures = _figures_and_report(out)
    print(f"results: {out / 'results.csv'}")
    for f in figures:
        print(f"figure:  {f}")
    print(f"report:  {out / 'report.md'}")
    crosscheck_file = out / "crosscheck.json"
    if crosscheck_file.is_file():
        import json

        bad = [r for r in json.loads(crosscheck_file.read_text())["rows"] if not r["agree"]]
        if bad:
            print(f"advtransfer: error: the attack backends disagree in {len(bad)} comparison(s) (see "
                  f"{out / 'crosscheck.md'}): " + "; ".join(f"{r['cell']} {r['attack']} {r['backends']}" for r in bad),
                  file=sys.stderr)
            return 3
    return 0


def _figures_and_report(out: Path) -> list[Path]:
    """Every figure the results in ``out`` support (each study's module skips what is not there), then the report."""
    from .figures import make_figures
    from .figures_exp2 import make_exp2_figures
    from .report import write_report

    figures = make_figures(out) + make_exp2_figures(out)
    write_report(out)
    return figures


def cmd_figures(args: argparse.Namespace) -> int:
    from .figures import make_figures
    from .results import write_results_csv

    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"--results {results} does not exist; give the --out folder of an `advtransfer run`")
    if (results / "cells").is_dir():
        write_results_csv(results)  # rebuild from the cell files, the source of truth
        figures = _figures_and_report(results)
        print(f"report: {results / 'report.md'}")
    else:
        figures = make_figures(results)
    for f in figures:
        print(f"figure: {f}")
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
    module, cfg = _load(args.experiment, args.profile)
    missing = module.preflight(cfg, Path(args.data_root))
    if missing:
        raise UserError("missing:\n- " + "\n- ".join(missing))
    print(f"{cfg.name} --profile {cfg.profile}: all data and weights present")
    return 0


def cmd_crosscheck(args: argparse.Namespace) -> int:
    import torch

    from .crosscheck import crosscheck, default_specs, to_markdown, write_tables
    from .models.zoo import REFERENCE_MODELS, reference_model

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
    from .bench import bench_attacks, format_attack_table
    from .io import atomic_write_json
    from .models.zoo import reference_model

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="advtransfer", description=__doc__.splitlines()[0])
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
    p.set_defaults(func=cmd_run)

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"advtransfer: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("advtransfer: interrupted; finished cells and checkpoints are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
