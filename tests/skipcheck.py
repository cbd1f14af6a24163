"""pytest plugin: with ADVTRANSFER_STRICT_SKIPS=1 (set by `.ci/run`), a test that skips for a reason not on
tests/skip_allowlist.txt (a missing browser, an optional extra, data the checkout should have) fails the run, so
CI tests what the README says the suite tests. Loaded by tests/conftest.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

STRICT_SKIPS_ENV = "ADVTRANSFER_STRICT_SKIPS"
SKIP_ALLOWLIST = Path(os.environ.get("ADVTRANSFER_SKIP_ALLOWLIST", Path(__file__).with_name("skip_allowlist.txt")))
_skipped: list[tuple[str, str]] = []


def allowed_skip_reasons(path: Path = SKIP_ALLOWLIST) -> list[str]:
    """The allow-list's reasons: one per line, a substring of the skip message; '#' starts a comment."""
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def unexpected_skips(skipped: list[tuple[str, str]], allowed: list[str]) -> list[tuple[str, str]]:
    return [(nodeid, reason) for nodeid, reason in skipped if not any(a in reason for a in allowed)]


def pytest_runtest_logreport(report) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        _skipped.append((report.nodeid, reason))


def pytest_sessionfinish(session, exitstatus) -> None:
    if os.environ.get(STRICT_SKIPS_ENV) != "1" or hasattr(session.config, "workerinput"):
        return  # only where asked, and only in the controller (xdist workers report to it)
    bad = unexpected_skips(_skipped, allowed_skip_reasons())
    if bad:
        lines = "\n".join(f"  {nodeid}: {reason}" for nodeid, reason in bad)
        session.config.get_terminal_writer().line(
            f"{STRICT_SKIPS_ENV}=1: {len(bad)} skip(s) not on {SKIP_ALLOWLIST.name}:\n{lines}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
