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
