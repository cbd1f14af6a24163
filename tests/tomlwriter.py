"""A small TOML writer for tests that edit configs (tomllib reads TOML but cannot write it): dicts, lists, strings,
numbers (nan and inf included), booleans and dates; every table written inline under its top-level key."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any


def toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped, everything else as is (UTF-8)."""
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)  # 1e-05, 1e+300, -0.0: all TOML floats
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):  # datetime before date: a datetime is a date
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"no TOML for {type(value).__name__}")


def dumps(doc: dict[str, Any]) -> str:
    """The document with each top-level table as one inline table (``"common" = {...}``)."""
    return "".join(f"{toml_string(k)} = {toml_value(v)}\n" for k, v in doc.items())
