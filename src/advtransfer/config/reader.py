"""One generic reader: TOML tables into frozen dataclasses, refusing anything it does not know.

:func:`read` builds an instance of a frozen dataclass from the dict that :mod:`tomllib` produced. The dataclass's
annotations are the schema; supported (recursively):

* ``bool``, ``int``, ``float`` (an int is accepted and converted; every float must be finite), ``str``;
* ``typing.Literal[...]`` of str / int choices;
* ``tuple[T, ...]`` (from a TOML array) and fixed ``tuple[A, B]``;
* ``dict[str, T]`` (from a TOML table; keys must be :data:`SAFE_NAME` unless the dict is annotated with
  :class:`AnyKeys`);
* nested frozen dataclasses (from a TOML table);
* ``X | None`` (the key may be absent; absence gives the field's default, or None without one);
* ``Annotated[T, *constraints]`` with :class:`Range`, :class:`Length`, :class:`Unique`, :class:`Pattern` checked
  after ``T`` is read.

Anything else in a table is refused with one :class:`~advtransfer.errors.ConfigError` whose one-line message starts
with the key path (``exp1.toml[demo].base_a.schedule[1].lr = -1.0: must be > 0``), shows the bad value and says what
is valid. For any input built from TOML values, :func:`read` raises nothing but ConfigError. An unsupported annotation
in the schema is a programming error and raises TypeError the first time the class is read.

After a dataclass is built, its ``validate(self, where)`` method, if it has one, runs the cross-field checks.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import PurePath
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from ..errors import ConfigError

T = TypeVar("T")

__all__ = [
    "SAFE_NAME",
    "AnyKeys",
    "Length",
    "NonEmpty",
    "Pattern",
    "Range",
    "SafeName",
    "Unique",
    "check_safe_name",
    "describe_kind",
    "did_you_mean",
    "read",
    "short_repr",
    "to_plain",
]


# ---------------------------------------------------------------------------------------------------------------------
# Constraints (metadata of typing.Annotated)


@dataclass(frozen=True)
class Range:
    """Numeric bounds; an open bound excludes its end point."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False

    def describe(self) -> str:
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            if not self.lo_open and not self.hi_open:
                return f"must be between {_num(lo)} and {_num(hi)}"
            if self.lo_open and self.hi_open:
                return f"must be between {_num(lo)} and {_num(hi)} (exclusive)"
            return f"must be {'>' if self.lo_open else '>='} {_num(lo)} and {'<' if self.hi_open else '<='} {_num(hi)}"
        if lo is not None:
            return f"must be {'>' if self.lo_open else '>='} {_num(lo)}"
        if hi is not None:
            return f"must be {'<' if self.hi_open else '<='} {_num(hi)}"
        return "any number"

    def admits(self, x: float) -> bool:
        if self.lo is not None and (x <= self.lo if self.lo_open else x < self.lo):
            return False
        return not (self.hi is not None and (x >= self.hi if self.hi_open else x > self.hi))


@dataclass(frozen=True)
class Length:
    """For tuples, dicts and strings: the least and the most number of items (characters for a string)."""

    min: int = 0
    max: int | None = None


NonEmpty = Length(1)


@dataclass(frozen=True)
class Unique:
    """Tuple items must not repeat."""


@dataclass(frozen=True)
class Pattern:
    """A string must fullmatch ``regex``; ``what`` names the valid values in the message ("must be {what}")."""

    regex: str
    what: str


@dataclass(frozen=True)
class AnyKeys:
    """On a ``dict[str, T]``: its keys are free-form strings, not checked against :data:`SAFE_NAME`."""


SAFE_NAME = Pattern(
    r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}",
    "a name of letters, digits, '.', '_' or '-' (no path separators, at most 64 characters, "
    "not starting with '.' or '-')",
)
SafeName = Annotated[str, SAFE_NAME]

_MAX_DEPTH = 64  # levels of tables/arrays read below one call of read(); only a self-referential schema gets near it
_REPR_LIMIT = 80


# ---------------------------------------------------------------------------------------------------------------------
# Message helpers


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``valid`` (difflib, cutoff 0.6), or ``""`` when none is close."""
    if not isinstance(name, str):
        return ""
    match = difflib.get_close_matches(name, [v for v in valid if isinstance(v, str)], n=1, cutoff=0.6)
    return f"; did you mean {match[0]!r}?" if match else ""


def check_safe_name(value: object, where: str) -> str:
    """``value`` if it is a str matching :data:`SAFE_NAME`, else ConfigError."""
    if not isinstance(value, str):
        raise ConfigError(f"{where} = {short_repr(value)}: expected a string, got {describe_kind(value)}")
    if not re.fullmatch(SAFE_NAME.regex, value):
        raise ConfigError(f"{where} = {short_repr(value)}: must be {SAFE_NAME.what}")
    return value


def _num(x: float) -> str:
    """A bound as people write it: 0 rather than 0.0, 1e-07 kept exact."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e16:
        return str(int(x))
    return repr(x)


def _repr_pieces(value: object, depth: int) -> Iterator[str]:
    """repr(value) in pieces, lazily (so a huge or deeply nested value costs only what is shown)."""
    if depth > _REPR_LIMIT:
        yield "..."
    elif isinstance(value, list | tuple):
        opening, closing = ("[", "]") if isinstance(value, list) else ("(", ",)" if len(value) == 1 else ")")
        yield opening
        for i, item in enumerate(value):
            if i:
                yield ", "
            yield from _repr_pieces(item, depth + 1)
        yield closing
    elif isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            if i:
                yield ", "
            yield from _repr_pieces(key, depth + 1)
            yield ": "
            yield from _repr_pieces(item, depth + 1)
        yield "}"
    else:
        yield repr(value)


def short_repr(value: object) -> str:
    """repr(value) on one line, cut to 80 characters with '...'."""
    out: list[str] = []
    n = 0
    for piece in _repr_pieces(value, 0):
        out.append(piece)
        n += len(piece)
        if n > _REPR_LIMIT:
            break
    text = "".join(out)
    return text if len(text) <= _REPR_LIMIT else text[: _REPR_LIMIT - 3] + "..."


def describe_kind(value: object) -> str:
    """What kind of TOML value this is, for "got ..."."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, dt.datetime):
        return "a date-time"
    if isinstance(value, dt.date):
        return "a date"
    if isinstance(value, dt.time):
        return "a time"
    if value is None:
        return "nothing"
    return f"a {type(value).__name__}"


def _type_error(where: str, value: object, expected: str) -> ConfigError:
    return ConfigError(f"{where} = {short_repr(value)}: expected {expected}, got {describe_kind(value)}")


# ---------------------------------------------------------------------------------------------------------------------
# Schema inspection


def _is_dataclass_type(tp: object) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


@functools.cache
def _fields(cls: type) -> tuple[tuple[dataclasses.Field, Any], ...]:
    """(field, resolved annotation) for each init field of ``cls``, the schema checked once."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = tuple((f, hints[f.name]) for f in dataclasses.fields(cls) if f.init)
    for f, tp in out:
        _check_annotation(tp, f"{cls.__qualname__}.{f.name}", set())
    return out


def _unwrap(tp: Any) -> tuple[Any, tuple[object, ...], bool]:
    """(base type, Annotated metadata, optional?) with Annotated and ``| None`` peeled off (in any order)."""
    meta: tuple[object, ...] = ()
    optional = False
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            # Unique and AnyKeys carry no settings: the class itself is accepted for an instance
            meta += tuple(m() if m is Unique or m is AnyKeys else m for m in tp.__metadata__)
            tp = tp.__origin__
        elif origin is Union or origin is types.UnionType:
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                raise TypeError(f"unsupported union {tp!r}: only X | None is supported")
            optional = True
            tp = args[0]
        else:
            return tp, meta, optional


def _check_annotation(tp: Any, name: str, seen: set[type]) -> None:
    """TypeError unless the reader supports ``tp``; run once per class so a bad schema fails whatever the data."""
    base, meta, _ = _unwrap(tp)
    origin = get_origin(base)
    if base in (bool, int, float, str):
        kind = base
    elif origin is Literal:
        if not all(type(c) in (str, int, bool) for c in get_args(base)):
            raise TypeError(f"{name}: Literal choices must be str or int, got {base!r}")
        kind = Literal
    elif origin is tuple:
        args = get_args(base)
        if not args:
            raise TypeError(f"{name}: a tuple needs its item type, tuple[T, ...]")
        for a in args:
            if a is not Ellipsis:
                _check_annotation(a, f"{name}[]", seen)
        kind = tuple
    elif origin is dict:
        key, item = get_args(base)
        if key is not str:
            raise TypeError(f"{name}: dict keys must be str, got {key!r}")
        _check_annotation(item, f"{name}[]", seen)
        kind = dict
    elif _is_dataclass_type(base):
        if base not in seen:
            seen.add(base)
            hints = typing.get_type_hints(base, include_extras=True)
            for f in dataclasses.fields(base):
                if f.init:
                    _check_annotation(hints[f.name], f"{base.__qualname__}.{f.name}", seen)
        kind = "dataclass"
    else:
        raise TypeError(f"{name}: unsupported annotation {tp!r}")
    fits = {
        Range: (int, float),
        Length: (tuple, dict, str),
        Unique: (tuple,),
        Pattern: (str,),
        AnyKeys: (dict,),
    }
    for m in meta:
        allowed = fits.get(type(m))
        if allowed is not None and kind not in allowed:
            raise TypeError(f"{name}: {type(m).__name__} does not apply to {base!r}")


# ---------------------------------------------------------------------------------------------------------------------
# Reading


def read(cls: type[T], table: object, where: str) -> T:
    """An instance of the frozen dataclass ``cls`` from ``table`` (a dict from tomllib); ConfigError for anything else.

    ``where`` starts every message and names the table, e.g. ``"exp1.toml[demo]"``; nested keys extend it
    (``exp1.toml[demo].base_a.lr``). ``cls`` may also be any other supported annotation (``tuple[int, ...]``).
    """
    if _is_dataclass_type(cls):
        _fields(cls)  # check the schema before any data
    else:
        _check_annotation(cls, repr(cls), set())
    return _read(cls, table, where, 0)


def _read(tp: Any, value: object, where: str, depth: int) -> Any:
    if depth > _MAX_DEPTH:
        raise ConfigError(f"{where}: nested more than {_MAX_DEPTH} levels deep")
    base, meta, optional = _unwrap(tp)
    if value is None and optional:
        return None
    result = _read_base(base, value, where, depth, any_keys=any(isinstance(m, AnyKeys) for m in meta))
    for m in meta:
        _apply(m, result, value, where)
    return result


def _read_base(tp: Any, value: object, where: str, depth: int, any_keys: bool) -> Any:
    if tp is bool:
        if type(value) is not bool:
            raise _type_error(where, value, "true or false")
        return value
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            hint = " (write it without a decimal point)" if isinstance(value, float) and value.is_integer() else ""
            raise ConfigError(f"{where} = {short_repr(value)}: expected an integer, got {describe_kind(value)}{hint}")
        return int(value)
    if tp is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _type_error(where, value, "a number")
        try:
            x = float(value)
        except OverflowError:
            x = math.inf
        if not math.isfinite(x):
            raise ConfigError(f"{where} = {short_repr(value)}: must be a finite number")
        return x
    if tp is str:
        if not isinstance(value, str):
            raise _type_error(where, value, "a string")
        return str(value)
    origin = get_origin(tp)
    if origin is Literal:
        choices = get_args(tp)
        for c in choices:
            if type(value) is type(c) and value == c:
                return c
        close = did_you_mean(value, [c for c in choices if isinstance(c, str)]) if isinstance(value, str) else ""
        valid = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{where} = {short_repr(value)}{close or ';'} valid: {valid}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise _type_error(where, value, "an array")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_read(args[0], item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where} = {short_repr(value)}: must have exactly {len(args)} items")
        return tuple(_read(a, item, f"{where}[{i}]", depth + 1) for i, (a, item) in enumerate(zip(args, value)))
    if origin is dict:
        if not isinstance(value, dict):
            raise _type_error(where, value, "a table")
        item_tp = get_args(tp)[1]
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ConfigError(f"{where}: key {short_repr(key)} is not a string")
            if re.fullmatch(SAFE_NAME.regex, key):
                sub = f"{where}.{key}"
            elif any_keys:
                sub = f"{where}[{short_repr(key)}]"
            else:
                raise ConfigError(f"{where}: key {short_repr(key)} must be {SAFE_NAME.what}")
            out[key] = _read(item_tp, item, sub, depth + 1)
        return out
    if _is_dataclass_type(tp):
        return _read_dataclass(tp, value, where, depth)
    raise TypeError(f"{where}: unsupported annotation {tp!r}")  # unreachable after _check_annotation


def _read_dataclass(cls: type[T], table: object, where: str, depth: int) -> T:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of keys, got {describe_kind(table)} ({short_repr(table)})")
    fields = _fields(cls)
    names = [f.name for f, _ in fields]
    for key in table:
        if key not in names:
            valid = ", ".join(sorted(names)) or "(none)"
            close = did_you_mean(key, names) or ";"
            raise ConfigError(f"{where}: unknown key {short_repr(key)}{close} valid keys: {valid}")
    kwargs: dict[str, Any] = {}
    for f, tp in fields:
        if f.name in table:
            kwargs[f.name] = _read(tp, table[f.name], f"{where}.{f.name}", depth + 1)
        elif f.default is not dataclasses.MISSING:
            kwargs[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kwargs[f.name] = f.default_factory()
        elif _unwrap(tp)[2]:
            kwargs[f.name] = None
        else:
            raise ConfigError(f"{where}: missing required key {f.name!r}")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(where)
    return obj


def _apply(constraint: object, result: Any, raw: object, where: str) -> None:
    """Check one Annotated constraint on the value read; ``raw`` (what the file said) is shown in the message."""
    shown = short_repr(raw)
    if isinstance(constraint, Range):
        if not constraint.admits(result):
            raise ConfigError(f"{where} = {shown}: {constraint.describe()}")
    elif isinstance(constraint, Length):
        n = len(result)
        unit = "characters" if isinstance(result, str) else "items"
        lo, hi = constraint.min, constraint.max
        if n < lo:
            if lo == 1:
                raise ConfigError(f"{where} = {shown}: must not be empty")
            exact = lo == hi
            raise ConfigError(f"{where} = {shown}: must have {'exactly' if exact else 'at least'} {lo} {unit}")
        if hi is not None and n > hi:
            exact = lo == hi
            raise ConfigError(f"{where} = {shown}: must have {'exactly' if exact else 'at most'} {hi} {unit}")
    elif isinstance(constraint, Unique):
        hashed: set[tuple[type, Any]] = set()
        unhashable: list[Any] = []  # tables (dicts) among the items
        for item in result:
            try:
                key = (type(item), item)
                repeated = key in hashed
                hashed.add(key)
            except TypeError:
                repeated = any(type(item) is type(u) and item == u for u in unhashable)
                unhashable.append(item)
            if repeated:
                raise ConfigError(f"{where} = {shown}: repeats {short_repr(item)}; each value may appear once")
    elif isinstance(constraint, Pattern):
        if not re.fullmatch(constraint.regex, result):
            raise ConfigError(f"{where} = {shown}: must be {constraint.what}")


# ---------------------------------------------------------------------------------------------------------------------
# Writing


def to_plain(obj: object) -> object:
    """Dataclass instances, tuples, lists and dicts as nested dicts and lists of plain values (for JSON).

    Like :func:`dataclasses.asdict`, but tuples become lists and paths become strings.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_plain(v) for v in obj]
    if isinstance(obj, PurePath):
        return str(obj)
    return obj
