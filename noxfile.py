"""nox sessions: `nox -l` lists them, `nox -s tests` is the default (CPU, offline)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def _install(session: nox.Session, extras: str = "test") -> None:
    # One install definition for everything (tools/install.sh): exact torch pins, torchattacks without its
    # stale requests pin, then the package in editable mode.
    session.run("bash", "tools/install.sh", "python", extras, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite on CPU, offline (pass pytest arguments after --, e.g. -- -m 'not slow')."""
    _install(session)
    session.run("python", "-m", "pytest", *(session.posargs or ["-q"]), env={"CUDA_VISIBLE_DEVICES": ""})


@nox.session
def figures(session: nox.Session) -> None:
    """Rebuild results.csv and figures from saved results, no training (-- RESULTS_DIR, default results/demo)."""
    _install(session)
    results = session.posargs[0] if session.posargs else "results/demo"
    session.run("advtransfer", "figures", "--results", results)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff on the package, tests and noxfile."""
    session.install("ruff")
    session.run("ruff", "check", "src", "tests", "noxfile.py")


@nox.session
def bench(session: nox.Session) -> None:
    """Attack benchmark: ms per batch per backend and the ratio to steps x (forward + backward); JSON to
    results/bench/ (-- extra arguments go to `advtransfer bench attacks`)."""
    _install(session)
    session.run("advtransfer", "bench", "attacks", "--json", "results/bench/attacks.json", *session.posargs)
