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


def _existing_dir(value: str) -> Path:
    return Path(value)


def cmd_run(args: argparse.Namespace) -> int:
    from .config import load_exp1

    cfg = load_exp1(args.experiment, args.profile)
    out = Path(args.out) if args.out else Path("results") / args.profile
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory")
    from . import study1

    figures = study1.run(cfg, out, Path(args.data_root), _device(args.device), download=args.download)
    print(f"results: {out / 'results.csv'}")
    for f in figures:
        print(f"figure:  {f}")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from .figures import make_figures
    from .results import write_results_csv

    results = Path(args.results)
    if not results.is_dir():
        raise UserError(f"--results {results} does not exist; give the --out folder of an `advtransfer run`")
    if (results / "cells").is_dir():
        write_results_csv(results)  # rebuild from the cell files, the source of truth
    for f in make_figures(results):
        print(f"figure: {f}")
    return 0


def cmd_data_fetch(args: argparse.Namespace) -> int:
    from .data import imagenet_r
    from .models import weights

    data_root = Path(args.data_root)
    if args.what in ("imagenet-r", "all"):
        print(f"ImageNet-R ready at {imagenet_r.fetch(data_root, progress=not args.quiet)}")
    if args.what in ("weights", "all"):
        models = [(args.model, args.weights)] if args.what == "weights" else [("mobilenet_v2", "IMAGENET1K_V1")]
        for model, name in models:
            print(f"{model} {name} weights ready at {weights.fetch(model, name, progress=not args.quiet)}")
    return 0


def cmd_data_check(args: argparse.Namespace) -> int:
    from . import study1
    from .config import load_exp1

    cfg = load_exp1(args.experiment, args.profile)
    missing = study1.preflight(cfg, Path(args.data_root))
    if missing:
        raise UserError("missing:\n- " + "\n- ".join(missing))
    print(f"{cfg.name} --profile {cfg.profile}: all data and weights present")
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
    p.add_argument("--download", action="store_true",
                   help="fetch missing datasets and weights first (verified against pinned checksums)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("figures", help="rebuild results.csv and figures from saved results (no training)")
    p.add_argument("--results", required=True, help="a results folder written by `advtransfer run`")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("data", help="fetch or check datasets and weights")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    f = dsub.add_parser("fetch", help="download, verify and extract: imagenet-r, weights, or all")
    f.add_argument("what", choices=("imagenet-r", "weights", "all"))
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
