"""The generic config reader (configio.reader) and experiment files (configio.experiment): what they accept, what
they refuse, and the words they refuse it with."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from advtransfer.config.experiment import (
    ExperimentFile,
    deep_merge,
    load_experiment_file,
    resolve_experiment_path,
)
from advtransfer.config.reader import (
    SAFE_NAME,
    AnyKeys,
    Length,
    NonEmpty,
    Pattern,
    Range,
    SafeName,
    Unique,
    check_safe_name,
    describe_kind,
    did_you_mean,
    read,
    short_repr,
    to_plain,
)
from advtransfer.errors import ConfigError, UserError
from budget import examples

# ---------------------------------------------------------------------------------------------------------------------
# Schemas (module level: with postponed annotations, get_type_hints resolves names in the module's globals)

Positive = Annotated[float, Range(0, lo_open=True)]


@dataclass(frozen=True)
class Step:
    optimizer: Literal["adam", "rmsprop", "sgd"]
    lr: Positive
    epochs: Annotated[int, Range(1)] = 1


@dataclass(frozen=True)
class Split:
    test: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.2
    val: Annotated[float, Range(0, 1, hi_open=True)] = 0.1


@dataclass(frozen=True)
class Base:
    source: Literal["pretrain", "scratch"]
    width_mult: Annotated[float, Range(0, lo_open=True)] = 1.0
    stride8: bool = False
    schedule: Annotated[tuple[Step, ...], NonEmpty] = (Step("adam", 1e-3),)


@dataclass(frozen=True)
class Profile:
    eps: Annotated[float, Range(0, 1)]
    learning_rate: float = 0.1
    batch_size: Annotated[int, Range(1)] = 32
    blocks: Annotated[tuple[int, ...], NonEmpty, Unique] = (4,)  # the class itself works as well as Unique()
    seeds: Annotated[tuple[Annotated[int, Range(0)], ...], Length(1, 3)] = (0,)
    eps_sweep: tuple[Annotated[float, Range(0, 1, lo_open=True)], ...] = ()
    split: Split = field(default_factory=Split)
    base_a: Base | None = None
    schedules: dict[str, tuple[Step, ...]] = field(default_factory=dict)
    labels: Annotated[dict[str, str], AnyKeys()] = field(default_factory=dict)
    tag: SafeName = "run"
    note: str | None = None
    figure_class: Annotated[str, Pattern(r"[0-9]+", "a class index such as '3'")] = "0"
    mode: Literal["intended", "as-run", 1, 2] = "intended"


@dataclass(frozen=True)
class Window:
    lo: int
    hi: int

    def validate(self, where: str) -> None:
        if self.lo > self.hi:
            raise ConfigError(f"{where}: lo = {self.lo} must be <= hi = {self.hi}")


@dataclass(frozen=True)
class Ranges:
    a: Annotated[float, Range(0)] = 0.0  # >= 0
    b: Annotated[float, Range(0, lo_open=True)] = 1.0  # > 0
    c: Annotated[float, Range(hi=1)] = 0.0  # <= 1
    d: Annotated[float, Range(hi=1, hi_open=True)] = 0.0  # < 1
    e: Annotated[float, Range(0, 1)] = 0.0  # [0, 1]
    f: Annotated[float, Range(0, 1, lo_open=True, hi_open=True)] = 0.5  # (0, 1)
    g: Annotated[float, Range(0, 1, lo_open=True)] = 0.5  # (0, 1]
    h: Annotated[float, Range(1e-7)] = 1.0


@dataclass(frozen=True)
class Lengths:
    items: Annotated[tuple[int, ...], Length(2, 3)] = (1, 2)
    exact: Annotated[tuple[int, ...], Length(2, 2)] = (1, 2)
    text: Annotated[str, NonEmpty] = "x"
    short: Annotated[str, Length(max=3)] = ""
    table: Annotated[dict[str, int], Length(max=1)] = field(default_factory=dict)
    pair: tuple[int, str] = (0, "")


@dataclass(frozen=True)
class Tree:  # a self-referential schema: deep data stops at the reader's depth limit
    children: tuple[Tree, ...] = ()


@dataclass(frozen=True)
class Nest:  # self-referential through a table of tables
    kids: dict[str, Nest] = field(default_factory=dict)


@dataclass(frozen=True)
class MaybeNote:
    name: str
    note: str | None  # no default: a missing key reads as None
    small: Annotated[Annotated[int, Range(0)] | None, Range(hi=5)] = None  # Annotated, | None, Annotated: peeled


@dataclass(frozen=True)
class NoKeys:
    pass


@dataclass(frozen=True)
class Everything:
    """Every supported annotation, for the property tests."""

    flag: bool = False
    count: int = 0
    ratio: float = 0.0
    text: str = ""
    choice: Literal["a", "b", 3] = "a"
    ints: tuple[int, ...] = ()
    pair: tuple[int, str] = (0, "")
    nums: Annotated[tuple[Annotated[float, Range(0, 1, lo_open=True)], ...], Length(0, 4), Unique()] = ()
    names: Annotated[tuple[SafeName, ...], Unique] = ()
    table: dict[str, int] = field(default_factory=dict)
    free: Annotated[dict[str, float], AnyKeys(), NonEmpty] = field(default_factory=lambda: {"x": 1.0})
    step: Step | None = None
    steps: tuple[Step, ...] = ()
    by_name: dict[str, Step] = field(default_factory=dict)
    window: Window = field(default_factory=lambda: Window(0, 0))
    maybe: Annotated[int, Range(0)] | None = None
    pattern: Annotated[str, Pattern(r"[a-z]*", "lower-case letters")] = ""
    tree: Tree = field(default_factory=Tree)


def cfg(text: str) -> dict:
    return tomllib.loads(text)


def refuse(cls: type, table: object, pattern: str, where: str = "exp1.toml[demo]") -> str:
    """Read must fail with ConfigError matching ``pattern`` (a regex) on one line starting with ``where``."""
    with pytest.raises(ConfigError, match=pattern) as info:
        read(cls, table, where)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(where)
    return message


# ---------------------------------------------------------------------------------------------------------------------
# Keys


def test_reads_a_full_profile():
    p = read(
        Profile,
        cfg(
            """
            eps = 0.03
            learning_rate = 1
            blocks = [4, 8]
            seeds = [0, 1]
            eps_sweep = [0.1, 0.5]
            tag = "cifar10-real-mini"
            [split]
            test = 0.25
            [base_a]
            source = "pretrain"
            width_mult = 0.25
            stride8 = true
            [[base_a.schedule]]
            optimizer = "adam"
            lr = 5e-3
            epochs = 2
            [[schedules.bnb]]
            optimizer = "sgd"
            lr = 3e-3
            [labels]
            "a label with spaces" = "x"
            """
        ),
        "exp1.toml[demo]",
    )
    assert p.eps == 0.03
    assert p.learning_rate == 1.0 and type(p.learning_rate) is float
    assert p.blocks == (4, 8) and isinstance(p.blocks, tuple)
    assert p.split == Split(test=0.25, val=0.1)
    assert p.base_a == Base("pretrain", 0.25, True, (Step("adam", 5e-3, 2),))
    assert p.schedules == {"bnb": (Step("sgd", 3e-3, 1),)}
    assert type(p.schedules) is dict and isinstance(p.schedules["bnb"], tuple)
    assert p.labels == {"a label with spaces": "x"}
    assert p.tag == "cifar10-real-mini"
    assert p.note is None


def test_unknown_key_with_did_you_mean():
    message = refuse(
        Profile,
        {"eps": 0.1, "lerning_rate": 0.1},
        r"^exp1\.toml\[demo\]: unknown key 'lerning_rate'; did you mean 'learning_rate'\? valid keys: base_a, "
        r"batch_size, blocks, eps, ",
    )
    assert message.endswith("split, tag")


def test_unknown_key_without_close_match():
    refuse(
        Step, {"optimizer": "adam", "lr": 1.0, "zzzzzz": 1}, r"unknown key 'zzzzzz'; valid keys: epochs, lr, optimizer$"
    )


def test_unknown_nested_key_names_its_path():
    refuse(
        Profile,
        cfg("eps = 0.1\n[base_a]\nsource = 'pretrain'\nstrde8 = true"),
        r"^exp1\.toml\[demo\]\.base_a: unknown key 'strde8'; did you mean 'stride8'\?",
    )
    refuse(
        Profile,
        cfg("eps = 0.1\n[[schedules.bnb]]\noptimizer = 'adam'\nlr = 1.0\nepoch = 3"),
        r"^exp1\.toml\[demo\]\.schedules\.bnb\[0\]: unknown key 'epoch'; did you mean 'epochs'\?",
    )


def test_missing_required_key():
    refuse(Profile, {}, r"^exp1\.toml\[demo\]: missing required key 'eps'$")
    refuse(Profile, {"eps": 0.1, "base_a": {}}, r"^exp1\.toml\[demo\]\.base_a: missing required key 'source'$")


def test_defaults_and_default_factories():
    p = read(Profile, {"eps": 0.5}, "x")
    assert p == Profile(eps=0.5)
    assert p.split == Split() and p.schedules == {} and p.base_a is None


def test_table_must_be_a_dict():
    refuse(Profile, [1, 2], r"^where: expected a table of keys, got an array \(\[1, 2\]\)$", where="where")
    refuse(Profile, "eps", r"^where: expected a table of keys, got a string", where="where")
    refuse(Profile, {"eps": 0.1, "split": 3}, r"^where\.split: expected a table of keys, got an integer", where="where")


# ---------------------------------------------------------------------------------------------------------------------
# Scalars


def test_bool_is_not_an_int_or_float():
    refuse(Profile, cfg("eps = 0.1\nbatch_size = true"), r"\.batch_size = True: expected an integer, got a boolean$")
    refuse(Profile, cfg("eps = true"), r"\.eps = True: expected a number, got a boolean$")


def test_float_is_not_an_int():
    refuse(
        Profile, cfg("eps = 0.1\nbatch_size = 3.0"), r"\.batch_size = 3\.0: expected an integer, got a float \(write"
    )
    refuse(Profile, cfg("eps = 0.1\nbatch_size = 3.5"), r"\.batch_size = 3\.5: expected an integer, got a float$")


def test_int_is_a_float():
    p = read(Profile, cfg("eps = 1\nlearning_rate = 3"), "x")
    assert p.eps == 1.0 and type(p.eps) is float
    assert type(p.learning_rate) is float


def test_strings_and_numbers_do_not_mix():
    refuse(Profile, cfg("eps = '0.1'"), r"\.eps = '0\.1': expected a number, got a string$")
    refuse(Profile, cfg("eps = 0.1\ntag = 3"), r"\.tag = 3: expected a string, got an integer$")
    refuse(
        Profile, cfg("eps = 0.1\n[base_a]\nsource = 'pretrain'\nstride8 = 1"), r"stride8 = 1: expected true or false"
    )


def test_dates_and_times_are_refused():
    refuse(
        Profile,
        cfg("eps = 1979-05-27T07:32:00Z"),
        r"\.eps = datetime\.datetime\(1979, .*: expected a number, got a date-time$",
    )
    refuse(
        Profile,
        cfg("eps = 0.1\ntag = 1979-05-27"),
        r"\.tag = datetime\.date\(1979, 5, 27\): expected a string, got a date$",
    )
    refuse(
        Profile, cfg("eps = 0.1\nbatch_size = 07:32:00"), r"\.batch_size = datetime\.time\(7, 32\): expected an integer"
    )


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "+inf", "-nan"])
def test_nan_and_inf_are_refused(text):
    value = cfg(f"lr = {text}")["lr"]
    assert not math.isfinite(value)
    refuse(Step, {"optimizer": "adam", "lr": value}, r"^exp1\.toml\[demo\]\.lr = -?(inf|nan): must be a finite number$")
    refuse(Profile, {"eps": 0.1, "learning_rate": value}, r"\.learning_rate = -?(inf|nan): must be a finite number$")


def test_huge_int_for_a_float_is_refused_not_overflowing():
    refuse(Profile, {"eps": 10**400}, r"\.eps = 1000.*\.\.\.: must be a finite number$")


def test_literal_choices():
    refuse(
        Step,
        {"optimizer": "adamw", "lr": 1.0},
        r"^exp1\.toml\[demo\]\.optimizer = 'adamw'; did you mean 'adam'\? valid: 'adam', 'rmsprop', 'sgd'$",
    )
    refuse(Step, {"optimizer": "zzz", "lr": 1.0}, r"\.optimizer = 'zzz'; valid: 'adam', 'rmsprop', 'sgd'$")
    refuse(Step, {"optimizer": 1, "lr": 1.0}, r"\.optimizer = 1; valid: 'adam'")
    assert read(Profile, {"eps": 0.1, "mode": 2}, "x").mode == 2
    assert read(Profile, {"eps": 0.1, "mode": "as-run"}, "x").mode == "as-run"
    refuse(Profile, {"eps": 0.1, "mode": True}, r"\.mode = True; valid: 'intended', 'as-run', 1, 2$")
    refuse(Profile, {"eps": 0.1, "mode": 1.0}, r"\.mode = 1\.0; valid:")


# ---------------------------------------------------------------------------------------------------------------------
# Constraints


@pytest.mark.parametrize(
    ("key", "good", "bad", "message"),
    [
        ("a", [0, 0.0, 5], [-1e-9, -1], r"must be >= 0$"),
        ("b", [1e-12, 3], [0, -1], r"must be > 0$"),
        ("c", [1, -5], [1.0001], r"must be <= 1$"),
        ("d", [0.999], [1, 2], r"must be < 1$"),
        ("e", [0, 1, 0.5], [-0.1, 1.1], r"must be between 0 and 1$"),
        ("f", [0.5, 1e-9], [0, 1], r"must be between 0 and 1 \(exclusive\)$"),
        ("g", [1, 0.5], [0, 1.5], r"must be > 0 and <= 1$"),
        ("h", [1e-7, 1], [1e-8], r"must be >= 1e-07$"),
    ],
)
def test_range_open_and_closed_ends(key, good, bad, message):
    for value in good:
        assert getattr(read(Ranges, {key: value}, "x"), key) == value
    for value in bad:
        refuse(Ranges, {key: value}, rf"^x\.{key} = {re.escape(repr(value))}: {message}", where="x")


def test_range_applies_per_item_and_names_the_index():
    refuse(
        Profile,
        cfg(
            "eps = 0.1\n[base_a]\nsource = 'scratch'\n[[base_a.schedule]]\noptimizer = 'sgd'\nlr = 1.0"
            "\n[[base_a.schedule]]\noptimizer = 'sgd'\nlr = -1.0"
        ),
        r"^exp1\.toml\[demo\]\.base_a\.schedule\[1\]\.lr = -1\.0: must be > 0$",
    )
    refuse(Profile, {"eps": 0.1, "eps_sweep": [0.5, 0.0]}, r"\.eps_sweep\[1\] = 0\.0: must be > 0 and <= 1$")
    refuse(Profile, {"eps": 0.1, "seeds": [0, -3]}, r"\.seeds\[1\] = -3: must be >= 0$")
    refuse(Profile, {"eps": 0.1, "blocks": [4, "8"]}, r"\.blocks\[1\] = '8': expected an integer, got a string$")


def test_length_and_non_empty():
    refuse(Profile, {"eps": 0.1, "blocks": []}, r"\.blocks = \[\]: must not be empty$")
    refuse(Profile, {"eps": 0.1, "seeds": [0, 1, 2, 3]}, r"\.seeds = \[0, 1, 2, 3\]: must have at most 3 items$")
    refuse(Lengths, {"items": [1]}, r"\.items = \[1\]: must have at least 2 items$")
    refuse(Lengths, {"items": [1, 2, 3, 4]}, r"must have at most 3 items$")
    refuse(Lengths, {"exact": [1, 2, 3]}, r"\.exact = \[1, 2, 3\]: must have exactly 2 items$")
    refuse(Lengths, {"exact": [1]}, r"\.exact = \[1\]: must have exactly 2 items$")  # too few: still "exactly"
    refuse(Lengths, {"text": ""}, r"\.text = '': must not be empty$")
    refuse(Lengths, {"short": "abcd"}, r"\.short = 'abcd': must have at most 3 characters$")
    refuse(Lengths, {"table": {"a": 1, "b": 2}}, r"\.table = \{'a': 1, 'b': 2\}: must have at most 1 items$")
    refuse(Lengths, {"pair": [1]}, r"\.pair = \[1\]: must have exactly 2 items$")
    assert read(Lengths, {"items": [1, 2, 3], "pair": [3, "x"]}, "x").pair == (3, "x")
    refuse(
        Profile, {"eps": 0.1, "base_a": {"source": "scratch", "schedule": []}}, r"\.base_a\.schedule = \[\]: must not"
    )


def test_unique():
    refuse(
        Profile, {"eps": 0.1, "blocks": [4, 8, 4]}, r"\.blocks = \[4, 8, 4\]: repeats 4; each value may appear once$"
    )
    refuse(
        Everything, {"nums": [0.5, 1, 1.0]}, r"\.nums = \[0\.5, 1, 1\.0\]: repeats 1\.0; each value may appear once$"
    )
    refuse(Everything, {"names": ["a", "b", "a"]}, r"repeats 'a'")
    assert read(Everything, {"names": ["a", "b"], "nums": [0.1, 0.2]}, "x").nums == (0.1, 0.2)


def test_pattern():
    refuse(Profile, {"eps": 0.1, "figure_class": "cat"}, r"\.figure_class = 'cat': must be a class index such as '3'$")
    assert read(Profile, {"eps": 0.1, "figure_class": "17"}, "x").figure_class == "17"


@pytest.mark.parametrize("bad", ["../x", "a/b", "a\\b", "", ".hidden", "-x", "a" * 65, "a b", "é", "x\n"])
def test_safe_name_refuses(bad):
    message = refuse(Profile, {"eps": 0.1, "tag": bad}, r"\.tag = .*: must be a name of letters, digits")
    assert "no path separators" in message
    with pytest.raises(ConfigError, match=r"^where = .*: must be a name of letters"):
        check_safe_name(bad, "where")


@pytest.mark.parametrize("good", ["exp1", "cifar10-real-mini", "a", "A.b_c-d", "0", "a" * 64])
def test_safe_name_accepts(good):
    assert read(Profile, {"eps": 0.1, "tag": good}, "x").tag == good
    assert check_safe_name(good, "where") == good


def test_check_safe_name_refuses_non_strings():
    with pytest.raises(ConfigError, match=r"^w = 3: expected a string, got an integer$"):
        check_safe_name(3, "w")


def test_dict_keys_are_safe_names_unless_any_keys():
    refuse(
        Profile,
        cfg("eps = 0.1\n[schedules.'../evil']\n"),
        r"^exp1\.toml\[demo\]\.schedules: key '\.\./evil' must be a name of letters",
    )
    p = read(Profile, {"eps": 0.1, "labels": {"../x y": "z", "ok": "w"}}, "x")
    assert p.labels == {"../x y": "z", "ok": "w"}
    refuse(
        Profile, {"eps": 0.1, "labels": {"bad\nkey": 3}}, r"^x\.labels\['bad\\nkey'\] = 3: expected a string", where="x"
    )
    refuse(Profile, {"eps": 0.1, "labels": {"ok": 3}}, r"^x\.labels\.ok = 3: expected a string", where="x")


# ---------------------------------------------------------------------------------------------------------------------
# Composite types


def test_nested_dataclass():
    p = read(Profile, {"eps": 0.1, "split": {"val": 0}}, "x")
    assert p.split == Split(test=0.2, val=0.0)
    refuse(
        Profile,
        {"eps": 0.1, "split": {"test": 1}},
        r"^x\.split\.test = 1: must be between 0 and 1 \(exclusive\)$",
        where="x",
    )


def test_tuple_of_dataclasses_names_the_index():
    refuse(
        Profile,
        {"eps": 0.1, "base_a": {"source": "scratch", "schedule": [{"optimizer": "sgd", "lr": 1}, {"lr": 1}]}},
        r"^x\.base_a\.schedule\[1\]: missing required key 'optimizer'$",
        where="x",
    )
    refuse(
        Profile,
        {"eps": 0.1, "base_a": {"source": "scratch", "schedule": [{"optimizer": "sgd", "lr": 1}, 5]}},
        r"^x\.base_a\.schedule\[1\]: expected a table of keys, got an integer \(5\)$",
        where="x",
    )
    refuse(
        Profile, {"eps": 0.1, "base_a": {"source": "scratch", "schedule": {}}}, r"schedule = \{\}: expected an array"
    )


def test_dict_of_dataclasses():
    p = read(
        Profile,
        {"eps": 0.1, "schedules": {"bnb": [{"optimizer": "adam", "lr": 1}], "anb": []}},
        "x",
    )
    assert p.schedules == {"bnb": (Step("adam", 1.0),), "anb": ()}
    refuse(
        Profile,
        {"eps": 0.1, "schedules": {"bnb": [{"optimizer": "adam", "lr": 0}]}},
        r"^x\.schedules\.bnb\[0\]\.lr = 0: must be > 0$",
        where="x",
    )
    refuse(
        Profile, {"eps": 0.1, "schedules": [1]}, r"^x\.schedules = \[1\]: expected a table, got an array$", where="x"
    )


def test_optional():
    assert read(Profile, {"eps": 0.1}, "x").base_a is None
    assert read(Profile, {"eps": 0.1, "note": "hi"}, "x").note == "hi"
    refuse(Profile, {"eps": 0.1, "note": 3}, r"\.note = 3: expected a string, got an integer$")
    assert read(Everything, {"maybe": 3}, "x").maybe == 3
    refuse(Everything, {"maybe": -3}, r"\.maybe = -3: must be >= 0$")


def test_validate_hook_runs_with_where():
    assert read(Window, {"lo": 1, "hi": 2}, "w") == Window(1, 2)
    refuse(Window, {"lo": 3, "hi": 2}, r"^exp1\.toml\[demo\]: lo = 3 must be <= hi = 2$")
    refuse(Everything, {"window": {"lo": 3, "hi": 2}}, r"^exp1\.toml\[demo\]\.window: lo = 3 must be <= hi = 2$")


def test_self_referential_schema_stops_at_a_depth_limit():
    assert read(Tree, {"children": [{"children": [{}]}]}, "t") == Tree((Tree((Tree(),)),))
    deep: dict = {}
    for _ in range(5000):
        deep = {"children": [deep]}
    with pytest.raises(ConfigError, match=r"nested more than \d+ levels deep$"):
        read(Tree, deep, "t")


def test_deeply_nested_junk_is_a_type_error_at_the_first_level():
    junk: object = 1
    for _ in range(100_000):
        junk = [junk]
    refuse(Profile, {"eps": junk}, r"\.eps = \[\[\[\[.*\.\.\.: expected a number, got an array$")
    refuse(Profile, junk, r"^exp1\.toml\[demo\]: expected a table of keys, got an array")


def test_long_values_are_cut_to_80_characters():
    message = refuse(Profile, {"eps": "x" * 1000}, r"\.eps = 'x+\.\.\.: expected a number")
    shown = message.split(" = ", 1)[1].split(": expected")[0]
    assert len(shown) == 80 and shown.endswith("...")
    assert short_repr(list(range(10**6))).endswith("...")
    assert short_repr((1,)) == "(1,)"


def _cut(text: str) -> str:
    return text if len(text) <= 80 else text[:77] + "..."


_shown_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.lists(inner, max_size=3).map(tuple),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=20)


@settings(max_examples=examples(300), deadline=None)
@given(_shown_values)
def test_property_short_repr_is_repr_cut_to_80_characters(value):
    # The pieces are repr's own, separators and the one-tuple's comma included, so the cut text is repr's.
    assert short_repr(value) == _cut(repr(value))


@pytest.mark.parametrize("value", [
    (), (1,), (1, 2), [], [()], {}, {"a": (1,)}, {1: [2, {3: 4}]}, "x" * 78, "x" * 79, "x" * 80,
    list(range(10**6)), {i: "v" for i in range(10**5)}, ((1,),) * 40,
], ids=repr)
def test_short_repr_matches_repr_at_the_edges(value):
    assert short_repr(value) == _cut(repr(value))
    assert len(short_repr(value)) <= 80


def test_short_repr_stops_at_80_levels():
    deep: object = 0
    for _ in range(200):
        deep = [deep]
    assert short_repr(deep) == "[" * 77 + "..."
    deep_dict: object = 0
    for _ in range(200):
        deep_dict = {"k": deep_dict}
    assert short_repr(deep_dict) == _cut("{'k': " * 20)


class _NotShown:
    def __repr__(self) -> str:
        raise AssertionError("short_repr formatted an item past its first 80 characters")


def test_short_repr_formats_only_what_it_shows():
    # Lazy: items past the cut are never formatted (a huge array costs only its first 80 characters).
    assert short_repr([*range(40), _NotShown()]) == _cut(repr(list(range(40))))
    assert short_repr({"k" * 90: _NotShown()}) == _cut("{" + repr("k" * 90))


@pytest.mark.parametrize("value, kind", [
    (True, "a boolean"), (0, "an integer"), (0.5, "a float"), ("s", "a string"), ([1], "an array"),
    ((1,), "an array"), ({}, "a table"), (dt.datetime(2026, 1, 2, 3, 4), "a date-time"),
    (dt.date(2026, 1, 2), "a date"), (dt.time(3, 4), "a time"), (None, "nothing"), (b"x", "a bytes"), (1j, "a complex"),
])
def test_describe_kind_names_each_toml_kind(value, kind):
    assert describe_kind(value) == kind


def _chain(levels: int, key: str, innermost: dict) -> dict:
    """``levels`` tables, each holding the next one under ``key`` (a list of one for Tree, a table for Nest)."""
    data = innermost
    for _ in range(levels - 1):
        data = {key: [data]} if key == "children" else {key: {"k": data}}
    return data


@pytest.mark.parametrize("schema, key, step", [(Tree, "children", ".children[0]"), (Nest, "kids", ".kids.k")])
def test_depth_limit_is_exactly_64_levels_below_read(schema, key: str, step: str) -> None:
    # Each level is a table (one level) holding an array or table (another), so 33 tables reach depth 64: the
    # innermost may be read, an empty array or table inside it is one level too deep.
    empty = {key: [] if key == "children" else {}}
    assert isinstance(read(schema, _chain(33, key, {}), "t"), schema)
    with pytest.raises(ConfigError) as info:
        read(schema, _chain(33, key, empty), "t")
    assert str(info.value) == "t" + step * 32 + f".{key}: nested more than 64 levels deep"
    assert isinstance(read(schema, _chain(32, key, empty), "t"), schema)


def test_an_optional_key_without_default_reads_as_none_and_keeps_every_constraint() -> None:
    assert read(MaybeNote, {"name": "a"}, "w") == MaybeNote("a", None)
    assert read(MaybeNote, {"name": "a", "note": "n", "small": 3}, "w") == MaybeNote("a", "n", 3)
    refuse(MaybeNote, {"name": "a", "small": 7}, r"^w\.small = 7: must be <= 5$", where="w")
    refuse(MaybeNote, {"name": "a", "small": -1}, r"^w\.small = -1: must be >= 0$", where="w")
    refuse(MaybeNote, {"note": "n"}, r"^w: missing required key 'name'$", where="w")


def test_unknown_key_of_a_table_without_keys_says_none_are_valid() -> None:
    refuse(NoKeys, {"x": 1}, r"^w: unknown key 'x'; valid keys: \(none\)$", where="w")


def test_read_takes_any_supported_annotation_and_checks_it_first() -> None:
    assert read(tuple[int, ...], [1, 2], "w") == (1, 2)
    assert read(dict[str, Tree], {"a": {}}, "w") == {"a": Tree()}
    assert read(tuple[Step, ...], [{"optimizer": "sgd", "lr": 0.1}], "w") == (Step("sgd", 0.1),)
    with pytest.raises(TypeError) as err:
        read(list[int], [1], "w")
    assert str(err.value) == "list[int]: unsupported annotation list[int]"
    with pytest.raises(TypeError) as err:
        read(tuple[int | str, ...], [], "w")  # an empty array: the schema error still comes first
    assert str(err.value) == "unsupported union int | str: only X | None is supported"


def test_unsupported_schema_is_a_type_error():
    @dataclass(frozen=True)
    class Bad:
        x: list[int]

    with pytest.raises(TypeError, match="unsupported annotation"):
        read(Bad, {}, "x")

    @dataclass(frozen=True)
    class BadRange:
        x: Annotated[str, Range(0)]

    with pytest.raises(TypeError, match="Range does not apply"):
        read(BadRange, {"x": "a"}, "x")


def test_config_error_is_a_user_error():
    with pytest.raises(UserError) as info:
        read(Step, {}, "x")
    assert info.value.exit_code == 2 and str(info.value).startswith("x")


# ---------------------------------------------------------------------------------------------------------------------
# did_you_mean and to_plain


def test_did_you_mean():
    assert did_you_mean("lerning_rate", ["learning_rate", "eps"]) == "; did you mean 'learning_rate'?"
    assert did_you_mean("zzz", ["learning_rate", "eps"]) == ""
    assert did_you_mean("x", []) == ""


def test_to_plain_is_json_ready():
    p = read(Profile, cfg("eps = 0.1\n[base_a]\nsource = 'scratch'\n[[schedules.bnb]]\noptimizer = 'sgd'\nlr = 1"), "x")
    plain = to_plain(p)
    assert plain["blocks"] == [4]
    assert plain["base_a"]["schedule"] == [{"optimizer": "adam", "lr": 1e-3, "epochs": 1}]
    assert plain["schedules"] == {"bnb": [{"optimizer": "sgd", "lr": 1.0, "epochs": 1}]}
    assert plain["split"] == {"test": 0.2, "val": 0.1}
    assert plain["note"] is None
    assert json.loads(json.dumps(plain)) == plain
    assert to_plain({"p": Path("/a/b"), "t": (1, (2,))}) == {"p": "/a/b", "t": [1, [2]]}


def test_to_plain_round_trips_through_read():
    p = read(Profile, cfg("eps = 0.1\nseeds = [1, 2]\n[base_a]\nsource = 'scratch'"), "x")
    plain = to_plain(p)
    plain = {k: v for k, v in plain.items() if v is not None}
    assert read(Profile, plain, "x") == p


# ---------------------------------------------------------------------------------------------------------------------
# Property tests: no input built from TOML values escapes as anything but ConfigError, and messages are one line

_scalars = st.one_of(
    st.booleans(),
    st.integers(),
    st.integers(min_value=-3, max_value=5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=0, max_value=1),
    st.text(max_size=8),
    st.sampled_from(["a", "b", "adam", "sgd", "x", "../x", "a/b", "", ".h", "-x"]),
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
    st.dates(),
    st.times(),
)
_keys = st.one_of(
    st.text(max_size=8),
    st.sampled_from(
        [
            "flag",
            "count",
            "ratio",
            "text",
            "choice",
            "ints",
            "pair",
            "nums",
            "names",
            "table",
            "free",
            "step",
            "steps",
            "by_name",
            "window",
            "maybe",
            "pattern",
            "tree",
            "children",
            "optimizer",
            "lr",
            "epochs",
            "lo",
            "hi",
            "x",
            "a",
        ]
    ),
)
_toml_values = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(_keys, children, max_size=6),
    ),
    max_leaves=30,
)
_step = st.fixed_dictionaries(
    {"optimizer": st.sampled_from(["adam", "sgd", "adamw"]), "lr": st.floats(min_value=-1, max_value=1)},
    optional={"epochs": st.integers(-1, 3), "x": _toml_values},
)
_fit = {  # values that often fit Everything's fields, so that reads get past the first key
    "flag": st.booleans(),
    "count": st.integers(),
    "ratio": st.floats(),
    "text": st.text(max_size=5),
    "choice": st.sampled_from(["a", "b", 3, "c", True]),
    "ints": st.lists(st.integers(), max_size=3),
    "pair": st.tuples(st.integers(), st.text(max_size=3)).map(list),
    "nums": st.lists(st.floats(min_value=0, max_value=1), max_size=5),
    "names": st.lists(st.sampled_from(["a", "b", "../x", ""]), max_size=3),
    "table": st.dictionaries(st.sampled_from(["k", "a/b", ""]), st.integers(), max_size=3),
    "free": st.dictionaries(st.text(max_size=4), st.floats(), max_size=3),
    "step": _step,
    "steps": st.lists(_step, max_size=3),
    "by_name": st.dictionaries(st.sampled_from(["k", "a/b"]), _step, max_size=2),
    "window": st.fixed_dictionaries({"lo": st.integers(-2, 2), "hi": st.integers(-2, 2)}),
    "maybe": st.integers(-2, 2),
    "pattern": st.sampled_from(["", "abc", "aB"]),
    "tree": st.recursive(st.just({}), lambda t: st.fixed_dictionaries({"children": st.lists(t, max_size=2)})),
}
_near_tables = st.fixed_dictionaries({}, optional={k: st.one_of(v, _toml_values) for k, v in _fit.items()})
_tables = st.one_of(st.dictionaries(_keys, _toml_values, max_size=8), _near_tables)


def _read_or_config_error(value: object) -> ConfigError | None:
    try:
        result = read(Everything, value, "f.toml[p]")
    except ConfigError as e:
        return e
    assert isinstance(result, Everything)
    return None


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_tables, _toml_values))
def test_property_read_raises_only_config_error(value):
    _read_or_config_error(value)


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tables)
def test_property_messages_are_one_line_and_start_with_where(value):
    error = _read_or_config_error(value)
    if error is not None:
        message = str(error)
        assert len(message.splitlines()) == 1  # no \n, \r, \x85, \u2028, ... anywhere
        assert message.startswith("f.toml[p]")


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=70))
def test_property_safe_name_never_holds_a_path_separator(name):
    try:
        check_safe_name(name, "w")
    except ConfigError as e:
        assert "\n" not in str(e)
        return
    assert "/" not in name and "\\" not in name and not name.startswith((".", "-")) and 1 <= len(name) <= 64
    assert re.fullmatch(SAFE_NAME.regex, name)


# ---------------------------------------------------------------------------------------------------------------------
# Experiment files

EXP = """
[experiment]
study = "imagenet-transfer"
name = "exp1"
title = "A title"
protocols = ["intended", "as-run"]

[common]
seeds = [0]
blocks = [4, 16]
[common.split]
test = 0.25
val = 0.2
[common.base_a]
source = "pretrain"
stride8 = false

[profiles.demo]
eps = 0.03
blocks = [4]
[profiles.demo.split]
val = 0.1
[profiles.demo.base_a]
width_mult = 0.25

[profiles.full]
eps = 0.1
"""


def write(tmp_path: Path, text: str | bytes, name: str = "exp1.toml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_loads_an_experiment_by_name_and_by_path(tmp_path):
    path = write(tmp_path, EXP)
    ef = load_experiment_file("exp1", tmp_path)
    assert isinstance(ef, ExperimentFile)
    assert ef.path == path and ef.study == "imagenet-transfer" and ef.name == "exp1" and ef.title == "A title"
    assert ef.meta == {"protocols": ["intended", "as-run"]}
    assert ef.profiles == ("demo", "full")
    assert ef.common["seeds"] == [0]
    assert ef.raw_profiles["full"] == {"eps": 0.1}
    assert load_experiment_file(str(path), Path("/nonexistent")) == ef
    assert ef.profile_where("demo") == "exp1.toml[demo]"


def test_profile_table_deep_merges(tmp_path):
    write(tmp_path, EXP)
    ef = load_experiment_file("exp1", tmp_path)
    table = ef.profile_table("demo")
    assert table == {
        "seeds": [0],
        "blocks": [4],  # a list replaces
        "split": {"test": 0.25, "val": 0.1},  # tables merge
        "base_a": {"source": "pretrain", "stride8": False, "width_mult": 0.25},
        "eps": 0.03,
    }
    table["split"]["test"] = 0.9  # a fresh dict: the file's tables are untouched
    assert ef.common["split"]["test"] == 0.25
    assert ef.profile_table("full")["blocks"] == [4, 16]


def test_unknown_profile_with_did_you_mean(tmp_path):
    write(tmp_path, EXP)
    ef = load_experiment_file("exp1", tmp_path)
    with pytest.raises(
        ConfigError, match=r"^exp1\.toml: unknown profile 'dmeo'; did you mean 'demo'\? valid profiles: demo, full$"
    ):
        ef.profile_table("dmeo")
    with pytest.raises(ConfigError, match=r"^exp1\.toml: unknown profile 'zzzz'; valid profiles: demo, full$"):
        ef.profile_table("zzzz")


def test_deep_merge_semantics():
    base = {"a": {"x": 1, "y": [1, 2], "z": {"deep": 1}}, "b": 1, "c": {"t": 1}}
    over = {"a": {"y": [3], "z": {"more": 2}}, "b": {"now": "table"}, "c": 5, "d": [{"e": 1}]}
    merged = deep_merge(base, over)
    assert merged == {
        "a": {"x": 1, "y": [3], "z": {"deep": 1, "more": 2}},
        "b": {"now": "table"},
        "c": 5,
        "d": [{"e": 1}],
    }
    assert base == {"a": {"x": 1, "y": [1, 2], "z": {"deep": 1}}, "b": 1, "c": {"t": 1}}  # inputs untouched
    merged["d"][0]["e"] = 2
    assert over["d"] == [{"e": 1}]
    assert deep_merge({}, {}) == {}


def test_legacy_integer_study_and_defaults(tmp_path):
    write(tmp_path, "[experiment]\nstudy = 2\n[profiles.mini]\n", name="exp2.toml")
    ef = load_experiment_file("exp2", tmp_path)
    assert ef.study == "2" and ef.name == "exp2" and ef.title == "exp2"
    assert ef.common == {} and ef.meta == {} and ef.profile_table("mini") == {}


def test_the_kits_own_experiment_files_load():
    experiments = Path(__file__).resolve().parent.parent / "experiments"
    if not experiments.is_dir():
        pytest.skip("no experiments/ folder")
    for path in sorted(experiments.glob("*.toml")):
        ef = load_experiment_file(path.stem, experiments)
        assert ef.profiles
        for profile in ef.profiles:
            assert isinstance(ef.profile_table(profile), dict)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("[comon]\n", r"^exp1\.toml: unknown section 'comon'; did you mean 'common'\? valid sections: experiment, "),
        ("zzz = 1\n", r"^exp1\.toml: unknown section 'zzz'; valid sections"),
        ("[profiles.a]\n", r"^exp1\.toml: missing section \[experiment\]"),
        ("experiment = 3\n", r"^exp1\.toml: 'experiment' must be a table \(\[experiment\]\), got an integer"),
        ("[experiment]\nname = 'x'\n", r"^exp1\.toml\[experiment\]: missing required key 'study'$"),
        ("[experiment]\nstudy = '../x'\n",
         r"^exp1\.toml\[experiment\]\.study = '\.\./x': must be the name of a registered study"),
        ("[experiment]\nstudy = true\n",
         r"^exp1\.toml\[experiment\]\.study = True: must be the name of a registered study"),
        ("[experiment]\nstudy = 1.5\n", r"^exp1\.toml\[experiment\]\.study = 1\.5: must be"),
        ("[experiment]\nstudy = 1\nname = 'a/b'\n", r"^exp1\.toml\[experiment\]\.name = 'a/b': must be a name of"),
        ("[experiment]\nstudy = 1\nname = 3\n", r"^exp1\.toml\[experiment\]\.name = 3: expected a string"),
        ("[experiment]\nstudy = 1\ntitle = 3\n", r"^exp1\.toml\[experiment\]\.title = 3: expected a string"),
        ("[experiment]\nstudy = 1\n", r"^exp1\.toml: no profiles; add at least one \[profiles\.NAME\] table$"),
        ("[experiment]\nstudy = 1\n[profiles]\n", r"^exp1\.toml: no profiles"),
        ("[experiment]\nstudy = 1\ncommon = 3\n[profiles.a]\n", None),  # common inside [experiment] is meta
        (
            "[experiment]\nstudy = 1\n[profiles]\ndemo = 3\n",
            r"^exp1\.toml\[profiles\.demo\]: a profile must be a table",
        ),
        ("[experiment]\nstudy = 1\n[profiles.'../up']\n", r"^exp1\.toml\[profiles\]: profile name '\.\./up' must be a"),
        ("[experiment]\nstudy = 1\ncommon = 1\n[profiles.a]\n[common]\n", None),
        ("common = [1]\n[experiment]\nstudy = 1\n[profiles.a]\n", r"^exp1\.toml: 'common' must be a table"),
    ],
)
def test_experiment_file_shape(tmp_path, text, pattern):
    write(tmp_path, text)
    if pattern is None:
        load_experiment_file("exp1", tmp_path)
        return
    with pytest.raises(ConfigError, match=pattern) as info:
        load_experiment_file("exp1", tmp_path)
    assert "\n" not in str(info.value)


def test_bad_utf8_is_refused(tmp_path):
    path = write(tmp_path, b"[experiment]\nstudy = 'caf\xe9'\n")
    with pytest.raises(ConfigError, match=r"exp1\.toml is not UTF-8 text \(invalid .* at byte 25\); save it as UTF-8$"):
        load_experiment_file("exp1", tmp_path)
    assert str(path).endswith("exp1.toml")


def test_utf8_byte_order_mark_is_fine(tmp_path):
    write(tmp_path, b"\xef\xbb\xbf[experiment]\nstudy = 1\n[profiles.a]\n")
    assert load_experiment_file("exp1", tmp_path).study == "1"


def test_invalid_toml_is_refused(tmp_path):
    write(tmp_path, "[experiment]\nstudy = \n")
    with pytest.raises(
        ConfigError, match=r"exp1\.toml is not valid TOML: Invalid value \(at line 2, column 9\)$"
    ) as info:
        load_experiment_file("exp1", tmp_path)
    assert "\n" not in str(info.value)


def test_unreadable_path_is_a_config_error(tmp_path):
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match=r"experiment config .*dir\.toml is not a regular file$"):
        load_experiment_file(str(tmp_path / "dir.toml"), tmp_path)
    with pytest.raises(ConfigError, match=r"experiment config .*missing\.toml does not exist$"):
        load_experiment_file(str(tmp_path / "missing.toml"), tmp_path)


@pytest.mark.parametrize("name", ["../x", "a/b", "..", ".", "", "/etc/passwd", "-rf", "a\\b", "x" * 65])
def test_path_traversal_names_are_refused(tmp_path, name):
    with pytest.raises(
        ConfigError, match=r"an experiment name must be a name of letters.*give its path ending in \.toml$"
    ):
        resolve_experiment_path(name, tmp_path)


def test_unknown_experiment_name_lists_the_valid_ones(tmp_path):
    write(tmp_path, EXP, name="exp1.toml")
    write(tmp_path, EXP, name="exp2.toml")
    write(tmp_path, EXP, name="not safe.toml")
    with pytest.raises(ConfigError, match=r"^unknown experiment 'exp3'; did you mean 'exp[12]'\? valid: exp1, exp2 \("):
        resolve_experiment_path("exp3", tmp_path)
    with pytest.raises(ConfigError, match=r"^unknown experiment 'zzzz'; valid: exp1, exp2 \(the \.toml files in "):
        resolve_experiment_path("zzzz", tmp_path)
    with pytest.raises(ConfigError, match=r"no experiment configs \(\*\.toml\) in "):
        resolve_experiment_path("exp1", tmp_path / "empty")
    assert resolve_experiment_path("exp2", tmp_path) == tmp_path / "exp2.toml"


def test_unsafe_file_stem_needs_a_name(tmp_path):
    path = write(tmp_path, "[experiment]\nstudy = 1\n[profiles.a]\n", name="my exp.toml")
    with pytest.raises(ConfigError, match=r"^my exp\.toml\[experiment\]: the file name 'my exp' is not a usable"):
        load_experiment_file(str(path), tmp_path)
    path.write_text("[experiment]\nstudy = 1\nname = 'mine'\n[profiles.a]\n")
    assert load_experiment_file(str(path), tmp_path).name == "mine"


@dataclass(frozen=True)
class _BadInner:
    y: list[int]


@dataclass(frozen=True)
class _ExtrasInner:
    z: Annotated[str, Range(0)]


@dataclass(frozen=True)
class _OuterOfBad:
    inner: _BadInner


@dataclass(frozen=True)
class _OuterOfExtras:
    inner: _ExtrasInner


@dataclass(frozen=True)
class _SelfTwice:
    a: tuple[_BadInner, ...]
    b: _BadInner


@pytest.mark.parametrize("annotation, message", [
    (Literal[1.5], "S.x: Literal choices must be str or int, got typing.Literal[1.5]"),
    (tuple[()], "S.x: a tuple needs its item type, tuple[T, ...]"),
    (tuple, "S.x: unsupported annotation <class 'tuple'>"),
    (tuple[list[int], ...], "S.x[]: unsupported annotation list[int]"),
    (dict[int, int], "S.x: dict keys must be str, got <class 'int'>"),
    (dict[str, list[int]], "S.x[]: unsupported annotation list[int]"),
    (int | str, "unsupported union int | str: only X | None is supported"),
])
def test_unsupported_schema_messages_name_the_field_and_the_rule(annotation, message: str) -> None:
    """A bad schema is a TypeError before any data is read, its message the field's path and the rule broken."""
    cls = dataclass(frozen=True)(type("S", (), {"__annotations__": {"x": annotation}}))
    with pytest.raises(TypeError) as err:
        read(cls, {}, "x")
    assert str(err.value) == message


@pytest.mark.parametrize("outer, message", [
    (_OuterOfBad, "_BadInner.y: unsupported annotation list[int]"),
    (_OuterOfExtras, "_ExtrasInner.z: Range does not apply to <class 'str'>"),  # Annotated kept inside dataclasses
    (_SelfTwice, "_BadInner.y: unsupported annotation list[int]"),
])
def test_nested_dataclass_schemas_are_checked_before_any_data(outer, message: str) -> None:
    with pytest.raises(TypeError) as err:
        read(outer, {}, "x")  # the data lacks every key: the schema error still comes first
    assert str(err.value) == message


@pytest.mark.parametrize("bounds, text", [
    (Range(0, 1), "must be between 0 and 1"),
    (Range(0, 1, lo_open=True, hi_open=True), "must be between 0 and 1 (exclusive)"),
    (Range(0, 1, lo_open=True), "must be > 0 and <= 1"),
    (Range(0, 1, hi_open=True), "must be >= 0 and < 1"),
    (Range(0.5), "must be >= 0.5"),
    (Range(2.0, lo_open=True), "must be > 2"),
    (Range(hi=1e16), "must be <= 1e+16"),  # whole floats print as integers only below 1e16
    (Range(hi=3, hi_open=True), "must be < 3"),
    (Range(), "any number"),
])
def test_range_describes_itself_in_words(bounds: Range, text: str) -> None:
    assert bounds.describe() == text


def test_describe_kind_and_did_you_mean_edges():
    from advtransfer.config.reader import describe_kind

    assert describe_kind(object()) == "a object"  # each TOML kind: test_describe_kind_names_each_toml_kind
    assert did_you_mean(3, ["three"]) == ""  # a non-string key has no spelling to correct
    assert did_you_mean("epz", ["eps", "epochs"]) == "; did you mean 'eps'?"


@dataclass(frozen=True)
class _Tables:
    items: Annotated[tuple[dict[str, int], ...], Unique] = ()


def test_unique_compares_tables_by_value():
    """Tables (dicts) cannot be hashed: they are compared with the ones before them, by value."""
    assert read(_Tables, {"items": [{"a": 1}, {"a": 2}, {"b": 1}]}, "x").items == ({"a": 1}, {"a": 2}, {"b": 1})
    refuse(_Tables, {"items": [{"a": 1}, {"b": 2}, {"a": 1}]},
           r"\.items = \[\{'a': 1\}, \{'b': 2\}, \{'a': 1\}\]: repeats \{'a': 1\}; each value may appear once$")


def test_fixed_tuple_items_and_table_keys_are_named_in_errors():
    refuse(Lengths, {"pair": [3, 4]}, r"\.pair\[1\] = 4: expected a string, got an integer$")
    refuse(Lengths, {"table": {1: 2}}, r"\.table: key 1 is not a string$")
