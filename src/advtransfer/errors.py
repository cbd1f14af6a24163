"""Errors meant for people.

Anything the user can fix (missing data or weights, a bad config value, a corrupt file, a path that does not exist)
raises :class:`UserError` with one message that says what is wrong and how to fix it. The CLI prints that message
and exits non-zero, without a traceback. Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; its message is shown as is."""

    exit_code = 2


class ConfigError(UserError):
    """A config file or value is invalid; the message names the valid values."""


class DataError(UserError):
    """A dataset, weight file or download is missing, corrupt or unsafe; the message names the fix."""


class OutputError(UserError):
    """Writing into the output folder failed (no space, read-only, permission, a path that is a file); files
    written before are intact and no temporary file is left behind."""


class TrainingDiverged(UserError):
    """A training produced a non-finite loss or parameter; nothing of that cell is recorded."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM (e.g. SLURM ending a job); handled like Ctrl-C: finished work is kept."""
