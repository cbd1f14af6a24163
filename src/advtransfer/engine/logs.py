"""Logging: the ``advtransfer`` logger (stdlib logging), the console and one log file per run.

Everything the kit reports while it works (cells started and skipped, epochs, evaluations, checks) is an INFO
record of the ``advtransfer`` logger. The console shows the message alone at INFO (WARNING under ``--quiet``); the
run's log file, ``OUT/logs/<command>-<date>-<time>-<pid>.log``, has every record with its time, level and
process, and the worker processes of ``--jobs`` append to the same file. A progress bar (tqdm) sits below the
console lines when stderr is a terminal; without one (CI, SLURM logs) there are only the plain lines.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LOGGER = logging.getLogger("advtransfer")
LOGS_DIR = "logs"
FILE_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(message)s"


def log(msg: str) -> None:
    """An INFO line: on the console (unless --quiet) and in the run's log file."""
    LOGGER.info(msg)


def interactive() -> bool:
    """Progress bars only where a person watches: stderr is a terminal and the console is not quiet."""
    return sys.stderr.isatty() and LOGGER.getEffectiveLevel() <= logging.INFO and not _quiet


_quiet = False


@contextmanager
def console(quiet: bool = False) -> Iterator[None]:
    """Show the kit's records on stderr for the duration of a command (INFO, or WARNING with ``quiet``)."""
    global _quiet
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.setLevel(logging.WARNING if quiet else logging.INFO)
    previous_level, previous_quiet = LOGGER.level, _quiet
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    _quiet = quiet
    try:
        yield
    finally:
        LOGGER.removeHandler(handler)
        LOGGER.setLevel(previous_level)
        _quiet = previous_quiet


def log_file_path(out: Path, command: str) -> Path:
    return Path(out) / LOGS_DIR / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"


@contextmanager
def to_file(path: Path) -> Iterator[Path]:
    """Append every record to ``path`` (created with its folder on the first record, so a command refused before
    any work leaves no log file behind)."""
    handler = _LazyFileHandler(Path(path))
    handler.setFormatter(logging.Formatter(FILE_FORMAT))
    handler.setLevel(logging.DEBUG)
    LOGGER.addHandler(handler)
    if LOGGER.level == logging.NOTSET or LOGGER.level > logging.INFO:
        LOGGER.setLevel(logging.INFO)
    try:
        yield path
    finally:
        LOGGER.removeHandler(handler)
        handler.close()


class _LazyFileHandler(logging.FileHandler):
    def __init__(self, path: Path) -> None:
        super().__init__(path, mode="a", encoding="utf-8", delay=True)

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()
