"""Property: any mutation of a shipped experiment config is refused cleanly or loads into a sound experiment.

Each example takes ``experiments/exp1.toml`` or ``experiments/exp2.toml`` (parsed with tomllib), one of its profiles,
and applies one to three mutations drawn by Hypothesis at random depths: rename a key (a letter added, dropped or
changed, or a new name), delete a key or array item, replace a value with a random TOML value (integers of any size,
floats with nan / inf / huge, booleans, strings such as ``"../x"``, arrays, tables, dates and times) or with one of
the same kind (a nearby number, an array with an item dropped or repeated), wrap a value in an array (once, or up to
150 levels deep in arrays or tables), or insert a key (unknown, or a real field of either study's schema). The result
is written back as TOML (by the small writer below: tomllib has no writer) and loaded with
:func:`advtransfer.studies.load_experiment`.

Either the load is refused with a :class:`ConfigError` whose message is one line starting with the file name, or it
succeeds, and then the study's plan has unique cell keys that are safe names and its preflight returns messages. No
other exception may escape.

``ADVTRANSFER_CONFIG_EXAMPLES=5000 pytest tests/test_config_properties.py`` searches harder than the default.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import math
import os
import string
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from advtransfer.config.reader import to_plain
from advtransfer.errors import ConfigError
from advtransfer.results.store import CELL_KEY
from advtransfer.studies import load_experiment
from advtransfer.studies.cifar_at.config import Exp2Config
from advtransfer.studies.imagenet_transfer.config import Exp1Config
from tomlwriter import dumps

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
DOCS = {name: tomllib.loads((EXPERIMENTS / f"{name}.toml").read_text(encoding="utf-8")) for name in ("exp1", "exp2")}
CASES = [(name, profile) for name, doc in DOCS.items() for profile in doc["profiles"]]
MAX_EXAMPLES = int(os.environ.get("ADVTRANSFER_CONFIG_EXAMPLES", "250"))

Path_ = tuple[str | int, ...]  # keys and array indices from the document's root


# ------------------------------------------------------------------------------------------------- TOML writer


def comparable(value: Any) -> Any:
    """``value`` with nan made equal to itself (for checking that the writer round-trips)."""
    if isinstance(value, float) and math.isnan(value):
        return "<nan>"
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    return value


def test_writer_round_trips_the_shipped_configs_and_odd_values() -> None:
    for doc in DOCS.values():
        assert tomllib.loads(dumps(doc)) == doc
    odd = {
        "": [math.nan, math.inf, -math.inf, 1e308, 5e-324, -0.0, 2**64, -(10**30)],
        'q"\\\n\t\x7f\x00é☃': ["../x", "", {"nested": {"deeper": [[], {}]}}],
        "when": [dt.date(1, 1, 1), dt.datetime(2024, 2, 29, 23, 59, 59, 999999), dt.time(0, 0),
                 dt.datetime(1999, 12, 31, 0, 0, tzinfo=dt.UTC), dt.time(12, 30, 1, 5)],
    }
    assert comparable(tomllib.loads(dumps({"t": odd}))["t"]) == comparable(odd)


# -------------------------------------------------------------------------------------------------- strategies


def _field_names(cls: type, seen: set[type] | None = None) -> set[str]:
    """Every field name of a schema, nested dataclasses included (to insert real keys in the wrong places)."""
    seen = set() if seen is None else seen
    if cls in seen:
        return set()
    seen.add(cls)
    names = set()
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        names.add(f.name)
        stack = [hints[f.name]]
        while stack:
            tp = stack.pop()
            if dataclasses.is_dataclass(tp) and isinstance(tp, type):
                names |= _field_names(tp, seen)
            stack.extend(a for a in typing.get_args(tp) if a is not Ellipsis and not isinstance(a, str | int))
    return names


FIELD_NAMES = sorted(_field_names(Exp1Config) | _field_names(Exp2Config) | {"study", "name", "title"})

# Strings that get past a check (choices of the schemas) or that must not (names that would become paths).
SPECIAL_STRINGS = [
    "adam", "sgd", "rmsprop", "adamw", "tiny", "imagenet-r", "imagefolder", "cifar", "cifar10", "cifar100",
    "cifar10-jpg", "pretrain", "torchvision", "file", "IMAGENET1K_V1", "IMAGENET1K_V2", "imagenet", "inception",
    "native", "torchattacks", "art", "intended", "as-run", "auto", "fp32", "bf16", "clean", "pgd", "nifgsm",
    "vmifgsm", "fgsm_rs", "basenet", "resnet18_transfer", "resnet18_scratch", "imagenet-transfer", "cifar-at", "1",
    "2", "demo", "paper", "exp1", "exp2", "0", "n04266014",
    "../x", "a/b", "a\\b", "/etc/passwd", "..", ".", "", ".hidden", "-x", " ", "a b", "x" * 64, "y" * 65, "a\nb",
    "\u2028", "\x00", "é", "~", "~/w.pth", "~advtransfer-no-such-user/w.pth", "z" * 300, "/" + "z" * 300,
    "C:\\x", "no_such_module_zz:Study",
    "advtransfer.studies.cifar_at:CifarAdversarialTraining", "advtransfer.errors:ConfigError",
]
texts = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
strings = st.one_of(texts, st.sampled_from(SPECIAL_STRINGS))
keys = st.one_of(texts, st.sampled_from(FIELD_NAMES), st.sampled_from(SPECIAL_STRINGS))
scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-3, max_value=300),
    st.sampled_from([2**31, 2**63 - 1, 2**63, 2**64, 10**30, 10**400, -(2**63)]),
    st.floats(),  # nan, inf, -inf, subnormals, +-1e308 included
    st.floats(min_value=0, max_value=1),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 5e-324, 0.0, -0.0, 1e3, 1e-9]),
    strings,
    st.dates(),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.times(),
)
toml_values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)),
    max_leaves=12,
)


def _paths(node: Any, prefix: Path_ = ()) -> list[Path_]:
    """The path of every key and array item under ``node``, parents before children."""
    out: list[Path_] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _relevant(path: Path_, profile: str) -> bool:
    """Keys that can change what ``profile`` loads: all but the contents of other profiles."""
    return not (len(path) > 2 and path[0] == "profiles" and path[1] != profile)


def _get(doc: dict[str, Any], path: Path_) -> Any:
    node: Any = doc
    for key in path:
        node = node[key]
    return node


def _renamed(old: str) -> st.SearchStrategy[str]:
    letter = st.sampled_from(string.ascii_lowercase + "_-.")
    at = st.integers(0, max(len(old) - 1, 0))
    return st.one_of(
        letter.map(lambda c: old + c),  # appended
        at.map(lambda i: old[:i] + old[i + 1:]),  # one deleted
        st.tuples(at, letter).map(lambda t: old[:t[0]] + t[1] + old[t[0] + 1:]),  # one changed
        st.just(old.upper()),
        keys,
    )


def _tweaked(value: Any) -> st.SearchStrategy[Any]:
    """A value of the same kind as ``value``, often still valid (so that more examples load and get planned)."""
    if isinstance(value, bool):
        return st.just(not value)
    if isinstance(value, int):
        return st.one_of(st.integers(-2, 2 * abs(value) + 2), st.integers())
    if isinstance(value, float):
        return st.one_of(st.floats(0, 2 * abs(value) + 1e-3), st.floats())
    if isinstance(value, str):
        return strings
    if isinstance(value, list) and value:
        at = st.integers(0, len(value) - 1)
        return st.one_of(
            at.map(lambda i: value[:i] + value[i + 1:]),  # one item dropped
            at.map(lambda i: [*value, copy.deepcopy(value[i])]),  # one item repeated
            st.just(value[::-1]),
            st.just([]),
        )
    return st.just(value)


def _nested(value: Any, depth: int, table: bool) -> Any:
    for _ in range(depth):
        value = {"a": value} if table else [value]
    return value


MUTATIONS = ("rename", "delete", "replace", "tweak", "wrap", "nest", "insert")


def mutate(data: st.DataObject, doc: dict[str, Any], profile: str) -> str:
    """Apply one random mutation to ``doc`` in place; return what it did (for the failure report)."""
    kind = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    paths = [p for p in _paths(doc) if _relevant(p, profile)]
    if kind == "insert":
        tables = [()] + [p for p in paths if isinstance(_get(doc, p), dict)]
        at = data.draw(st.sampled_from(tables), label="into")
        key = data.draw(keys, label="key")
        value = data.draw(toml_values, label="value")
        _get(doc, at)[key] = value
        return f"insert {at}[{key!r}] = {value!r}"
    if kind == "rename":
        paths = [p for p in paths if isinstance(p[-1], str)]
    if not paths:
        return "nothing to mutate"
    path = data.draw(st.sampled_from(paths), label="at")
    parent, key = _get(doc, path[:-1]), path[-1]
    if kind == "rename":
        new = data.draw(_renamed(key), label="to")
        parent[new] = parent.pop(key)
        return f"rename {path} to {new!r}"
    if kind == "delete":
        del parent[key]
        return f"delete {path}"
    if kind == "replace":
        parent[key] = data.draw(toml_values, label="value")
        return f"replace {path} with {parent[key]!r}"
    if kind == "tweak":
        parent[key] = data.draw(_tweaked(parent[key]), label="value")
        return f"tweak {path} to {parent[key]!r}"
    if kind == "nest":  # deeper than the reader's 64 levels, well short of the known RecursionError (see below)
        depth = data.draw(st.integers(2, 150), label="depth")
        table = data.draw(st.booleans(), label="in tables")
        parent[key] = _nested(parent[key], depth, table)
        return f"nest {path} {depth} levels deep in {'tables' if table else 'arrays'}"
    parent[key] = [parent[key]]
    return f"wrap {path} in an array"


# Not drawn: nesting deeper than a few hundred levels (tomllib's own recursion limit; refused by a test below).


# -------------------------------------------------------------------------------------------------- the property


@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), data=st.data())
def test_mutated_config_is_refused_cleanly_or_loads(tmp_path: Path, case: tuple[str, str],
                                                   data: st.DataObject) -> None:
    name, profile = case
    doc = copy.deepcopy(DOCS[name])
    for _ in range(data.draw(st.sampled_from([1, 1, 1, 2, 3]), label="mutations")):
        note(mutate(data, doc, profile))
    text = dumps(doc)
    assert comparable(tomllib.loads(text)) == comparable(doc)  # the writer, not the loader, is under test here
    path = tmp_path / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    note(text)

    try:
        exp = load_experiment(str(path), profile)
    except ConfigError as exc:
        message = str(exc)
        assert message and len(message.splitlines()) == 1, repr(message)
        assert message.startswith(f"{name}.toml"), message
        event("refused")
        return

    event("loaded")
    keys = [cell.key for cell in exp.study.plan(exp)]
    assert keys, "a valid experiment has cells"
    assert len(set(keys)) == len(keys), sorted(k for k in keys if keys.count(k) > 1)
    for key in keys:
        assert CELL_KEY.fullmatch(key), key
    messages = exp.study.preflight(exp, tmp_path / "data")
    assert isinstance(messages, list) and all(isinstance(m, str) and m for m in messages), messages
    json.dumps(to_plain(exp.cfg), allow_nan=False)  # what a run records as config-{name}.json


# ------------------------------------------------------------------- cases the property search found (fixed in src)


def _write(tmp_path: Path, name: str, change: dict[tuple[str, ...], Any]) -> str:
    doc = copy.deepcopy(DOCS[name])
    for keys_, value in change.items():
        _get(doc, keys_[:-1])[keys_[-1]] = value
    path = tmp_path / f"{name}.toml"
    path.write_text(dumps(doc), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("study", ["imagenet-transfe", "0", "no_such_module_zz:Study", "advtransfer.errors:UserError"])
def test_unknown_study_message_starts_with_the_file(tmp_path: Path, study: str) -> None:
    path = _write(tmp_path, "exp1", {("experiment", "study"): study})
    with pytest.raises(ConfigError, match=r"^exp1\.toml\[experiment\]\.study"):
        load_experiment(path, "demo")


@pytest.mark.parametrize(("name", "change"), [
    ("exp1", {("experiment", "name"): "n" * 64}),
    ("exp2", {("experiment", "name"): "n" * 40}),
    ("exp1", {("common", "seeds"): [10**300]}),  # a 325-character key: longer than a file name may be
    ("exp2", {("common", "seeds"): [10**30]}),
], ids=["exp1-name", "exp2-name", "exp1-seed", "exp2-seed"])
def test_cell_keys_are_safe_file_names_or_refused(tmp_path: Path, name: str,
                                                       change: dict[tuple[str, ...], Any]) -> None:
    path = _write(tmp_path, name, change)
    try:
        exp = load_experiment(path, "paper")
    except ConfigError as exc:
        assert str(exc).startswith(f"{name}.toml[")  # refusing it is a fix too
        return
    keys = [cell.key for cell in exp.study.plan(exp)]
    assert all(CELL_KEY.fullmatch(k) for k in keys), max(keys, key=len)


@pytest.mark.parametrize("change", [
    {("profiles", "paper", "base_a"): {"source": "file", "path": "~advtransfer-no-such-user/a.pth"}},
    {("profiles", "paper", "dataset"): "imagefolder",
     ("profiles", "paper", "dataset_path"): "~advtransfer-no-such-user/d"},
    {("profiles", "paper", "base_a"): {"source": "file", "path": "z" * 300}},
    {("profiles", "paper", "dataset"): "imagefolder", ("profiles", "paper", "dataset_path"): "/" + "z" * 300},
], ids=["base_a.path-home", "dataset_path-home", "base_a.path-long", "dataset_path-long"])
def test_preflight_of_an_unusable_path_is_a_message(tmp_path: Path,
                                                              change: dict[tuple[str, ...], Any]) -> None:
    exp = load_experiment(_write(tmp_path, "exp1", change), "paper")
    messages = exp.study.preflight(exp, tmp_path / "data")
    assert messages and all(isinstance(m, str) for m in messages)


@pytest.mark.parametrize("new", [
    "eval_batch_size = " + "[" * 1000 + "]" * 1000,  # tomllib.loads
    "eval_batch_size = " + "{a = " * 1000 + "1" + "}" * 1000,  # tomllib.loads
    "eval_batch_size." + ".".join(["a"] * 1000) + " = 1",  # tomllib is fine; deep_merge's deepcopy is not
], ids=["arrays", "inline-tables", "dotted-keys"])
def test_deeply_nested_toml_is_refused(tmp_path: Path, new: str) -> None:
    text = (EXPERIMENTS / "exp1.toml").read_text(encoding="utf-8")
    assert "eval_batch_size = 256" in text
    path = tmp_path / "exp1.toml"
    path.write_text(text.replace("eval_batch_size = 256", new, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^exp1\.toml"):
        load_experiment(str(path), "demo")
