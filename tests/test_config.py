"""Study 1 configs: the shipped profiles load with SPEC's protocol, and every bad value is a ConfigError that
names the key and the valid values.

Bad configs are the shipped ``experiments/exp1.toml`` read with tomllib, changed in one place and written back
with a tiny TOML writer (inline tables only), so each test differs from a known-good config in exactly one value.
"""

from __future__ import annotations

import copy
import json
import math
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advtransfer.config import Phase, load_exp1
from advtransfer.errors import ConfigError, UserError

EXP1 = Path(__file__).resolve().parents[1] / "experiments" / "exp1.toml"


# -------------------------------------------------------------------------------------------- TOML writer


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        assert math.isfinite(value)
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def dumps(doc: dict[str, Any]) -> str:
    """Each top-level table as one inline table: ``experiment = {...}``, ``common = {...}``, ``profiles = ...``."""
    return "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in doc.items())


def exp1_doc() -> dict[str, Any]:
    return tomllib.loads(EXP1.read_text())


def write_config(tmp_path: Path, change: Callable[[dict[str, Any]], object] | None = None,
                 name: str = "exp1_test.toml") -> str:
    doc = copy.deepcopy(exp1_doc())
    if change is not None:
        change(doc)
    path = tmp_path / name
    path.write_text(dumps(doc))
    return str(path)


def test_toml_writer_round_trips() -> None:
    doc = exp1_doc()
    assert tomllib.loads(dumps(doc)) == doc


# ------------------------------------------------------------------------------------------ shipped profiles


def test_paper_profile_is_the_spec_protocol() -> None:
    cfg = load_exp1("exp1", "paper")
    assert cfg.name == "exp1" and cfg.profile == "paper"
    assert cfg.protocols == ("intended", "as-run")
    assert cfg.dataset == "imagenet-r"
    assert cfg.image_size == 224
    assert cfg.batch_size == 128
    assert cfg.eps == 0.005
    assert cfg.blocks == (4, 8, 12, 16)
    assert cfg.schedules["bnb"] == (Phase("adam", 1e-4, 4),)
    assert cfg.schedules["anb"] == (Phase("adam", 1e-4, 4),)
    assert cfg.schedules["anb_plus"] == (Phase("adam", 1e-4, 2), Phase("rmsprop", 1e-5, 2))
    assert cfg.base_a.source == "torchvision"
    assert cfg.base_a.weights == "IMAGENET1K_V1"
    assert cfg.base_a.width_mult == 1.0 and not cfg.base_a.stride8
    assert cfg.base_a.schedule == ()  # nothing to pretrain
    assert (cfg.split.test, cfg.split.val) == (0.2, 0.1)
    assert cfg.figure_eps == (0.005, 0.05, 0.075)
    assert cfg.figure_class == "n04266014"
    assert cfg.eps in cfg.all_eps and list(cfg.all_eps) == sorted(set(cfg.all_eps))
    assert all(0 < e <= 1 for e in cfg.all_eps)


def test_demo_profile_loads() -> None:
    cfg = load_exp1("exp1", "demo")
    assert cfg.dataset == "tiny"
    assert cfg.image_size == 32
    assert cfg.blocks == (4, 8, 12, 16)
    assert 0 < cfg.eps <= 1
    assert cfg.base_a.source == "pretrain"
    assert cfg.base_a.width_mult == 0.25 and cfg.base_a.stride8
    assert cfg.base_a.schedule and all(isinstance(p, Phase) for p in cfg.base_a.schedule)
    assert set(cfg.schedules) == {"bnb", "anb", "anb_plus"}
    assert [p.optimizer for p in cfg.schedules["anb_plus"]] == ["adam", "rmsprop"]
    assert cfg.tiny.n_target_classes <= cfg.tiny.n_source_classes
    # [common] deep-merged with the profile: lists replace, tables merge.
    assert cfg.figure_eps == (0.03, 0.1, 0.2)
    assert (cfg.split.test, cfg.split.val) == (0.2, 0.1)
    assert cfg.eval_batch_size == 256


def test_config_from_path_equals_named_experiment(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    for profile in ("paper", "demo"):
        from_path = load_exp1(path, profile).to_dict()
        named = load_exp1("exp1", profile).to_dict()
        from_path.pop("source_file"), named.pop("source_file")
        assert from_path == named


def test_unknown_profile_lists_profiles() -> None:
    with pytest.raises(ConfigError) as info:
        load_exp1("exp1", "huge")
    message = str(info.value)
    assert "huge" in message and "demo" in message and "paper" in message


def test_unknown_experiment_lists_experiments() -> None:
    with pytest.raises(ConfigError) as info:
        load_exp1("exp99", "paper")
    message = str(info.value)
    assert "exp99" in message and "exp1" in message


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_exp1(str(tmp_path / "nope.toml"), "paper")


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[experiment\nname = 'x'\n")
    with pytest.raises(ConfigError, match="TOML"):
        load_exp1(str(path), "paper")


def test_config_error_is_a_user_error() -> None:
    assert issubclass(ConfigError, UserError)


# --------------------------------------------------------------------------------------------------- bad values


def _set(*keys: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        table = doc
        for key in keys[:-1]:
            table = table.setdefault(key, {})
        table[keys[-1]] = value

    return change


def _delete(*keys: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        table = doc
        for key in keys[:-1]:
            table = table[key]
        del table[keys[-1]]

    return change


def _bad_optimizer(doc: dict[str, Any]) -> None:
    doc["common"]["schedules"]["bnb"][0]["optimizer"] = "adamw"


def _bad_lr(doc: dict[str, Any]) -> None:
    doc["common"]["schedules"]["anb"][0]["lr"] = -1e-4


def _bad_epochs(doc: dict[str, Any]) -> None:
    doc["common"]["schedules"]["anb_plus"][1]["epochs"] = 0


BAD = [
    # id, profile, change, words the message must contain (the key, then the valid values)
    ("blocks", "paper", _set("profiles", "paper", "blocks", value=[5]), ["blocks", "5", "4, 8, 12, 16"]),
    ("blocks-demo", "demo", _set("common", "blocks", value=[4, 6]), ["blocks", "6", "4, 8, 12, 16"]),
    ("eps>1", "paper", _set("profiles", "paper", "eps", value=2), ["eps", "0 < eps <= 1"]),
    ("eps0", "paper", _set("profiles", "paper", "eps", value=0.0), ["eps", "0 < eps <= 1"]),
    ("eps-string", "paper", _set("profiles", "paper", "eps", value="0.005"), ["eps", "float"]),
    ("eps-sweep", "paper", _set("profiles", "paper", "eps_sweep", value=[0.01, 3]), ["eps_sweep", "0 < eps <= 1"]),
    ("optimizer", "paper", _bad_optimizer, ["optimizer", "adamw", "adam, rmsprop, sgd"]),
    ("lr", "paper", _bad_lr, ["lr", "> 0"]),
    ("epochs", "paper", _bad_epochs, ["epochs", "> 0"]),
    ("dataset", "paper", _set("profiles", "paper", "dataset", value="foo"),
     ["dataset", "foo", "tiny, imagenet-r, imagefolder"]),
    ("protocols", "paper", _set("experiment", "protocols", value=["bogus"]),
     ["protocols", "bogus", "intended, as-run"]),
    ("imagefolder-no-path", "paper", _set("profiles", "paper", "dataset", value="imagefolder"), ["dataset_path"]),
    ("pretrain-with-real-data", "paper", _set("profiles", "paper", "base_a", "source", value="pretrain"),
     ["source", "pretrain", "tiny", "torchvision", "file"]),
    ("torchvision-with-tiny", "demo", _set("profiles", "demo", "base_a", "source", value="torchvision"),
     ["source", "torchvision", "tiny", "pretrain"]),
    ("base-source", "paper", _set("profiles", "paper", "base_a", "source", value="hub"),
     ["source", "hub", "torchvision, pretrain, file"]),
    ("base-weights", "paper", _set("profiles", "paper", "base_a", "weights", value="IMAGENET1K_V3"),
     ["weights", "IMAGENET1K_V1, IMAGENET1K_V2"]),
    ("base-file-no-path", "paper", _set("profiles", "paper", "base_a", "source", value="file"), ["path"]),
    ("normalization", "paper", _set("profiles", "paper", "base_a", "normalization", value="caffe"),
     ["normalization", "imagenet, inception"]),
    ("missing-family", "paper", _delete("common", "schedules", "anb_plus"), ["schedules", "anb_plus"]),
    ("empty-schedule", "paper", _set("common", "schedules", "bnb", value=[]), ["schedules.bnb"]),
    ("seeds", "paper", _set("common", "seeds", value=[-1]), ["seeds"]),
    ("split", "paper", _set("common", "split", "test", value=1.5), ["split.test", "between 0 and 1"]),
    ("batch", "paper", _set("profiles", "paper", "batch_size", value=0), ["batch_size", "> 0"]),
    ("missing-eps", "paper", _delete("profiles", "paper", "eps"), ["eps", "missing"]),
    ("tiny-targets", "demo", _set("profiles", "demo", "tiny", "n_target_classes", value=32), ["n_target_classes"]),
]


@pytest.mark.parametrize(("profile", "change", "words"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_value_is_config_error_naming_key_and_valid_values(tmp_path: Path, profile: str,
                                                               change: Callable[[dict[str, Any]], None],
                                                               words: list[str]) -> None:
    path = write_config(tmp_path, change)
    with pytest.raises(ConfigError) as info:
        load_exp1(path, profile)
    message = str(info.value)
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_imagefolder_with_path_loads(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["profiles"]["paper"]["dataset"] = "imagefolder"
        doc["profiles"]["paper"]["dataset_path"] = "/data/renditions"

    cfg = load_exp1(write_config(tmp_path, change), "paper")
    assert (cfg.dataset, cfg.dataset_path) == ("imagefolder", "/data/renditions")


def test_base_a_from_file_loads(tmp_path: Path) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["profiles"]["paper"]["base_a"].update(source="file", path="base_a.pth", normalization="inception")

    cfg = load_exp1(write_config(tmp_path, change), "paper")
    assert (cfg.base_a.source, cfg.base_a.path, cfg.base_a.normalization) == ("file", "base_a.pth", "inception")


def test_integer_eps_is_accepted_as_float(tmp_path: Path) -> None:
    cfg = load_exp1(write_config(tmp_path, _set("profiles", "paper", "eps", value=1)), "paper")
    assert cfg.eps == 1.0 and isinstance(cfg.eps, float)


def test_pretrain_base_a_without_schedule_is_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, _delete("profiles", "demo", "base_a", "schedule"))
    with pytest.raises(ConfigError, match=r"base_a\.schedule"):
        load_exp1(path, "demo")


# ------------------------------------------------------------------------------------------------- study 2 ---


def _exp2_variant(tmp_path: Path, old: str, new: str) -> Path:
    text = (Path(__file__).resolve().parents[1] / "experiments" / "exp2.toml").read_text()
    assert old in text
    path = tmp_path / "exp2.toml"
    path.write_text(text.replace(old, new, 1))
    return path


def test_exp2_demo_runs_all_four_experiments_with_model_schedules() -> None:
    from advtransfer.config import load_exp2

    cfg = load_exp2("exp2", "demo")
    assert [s.id for s in cfg.settings] == [1, 2, 3, 4]
    assert {m for s in cfg.settings for m in s.models} == {"basenet", "resnet18_transfer", "resnet18_scratch"}
    assert cfg.resnet_pretrained.source == "pretrain" and cfg.resnet_pretrained.schedule
    assert cfg.model_schedules["resnet18_scratch"]["clean"][0].epochs < cfg.clean_schedule[0].epochs
    paper = load_exp2("exp2", "paper")
    assert paper.resnet_pretrained.source == "torchvision" and paper.resnet_pretrained.weights == "IMAGENET1K_V1"
    assert paper.model_schedules == {} and paper.resnet_input_size == 224


@pytest.mark.parametrize("old, new, expected", [
    ('[profiles.demo.model_schedules.resnet18_scratch]', '[profiles.demo.model_schedules.resnet50]',
     "'resnet50'; valid: basenet, resnet18_transfer, resnet18_scratch"),
    ('clean = [{ optimizer = "adam", lr = 1e-3, epochs = 4 }]',
     'warmup = [{ optimizer = "adam", lr = 1e-3, epochs = 4 }]',
     "'warmup'; valid: clean, adversarial"),
    ('[profiles.paper]\ndata = "cifar"',
     '[profiles.paper]\ndata = "cifar"\nresnet_pretrained = { source = "pretrain" }',
     "'pretrain' (a ResNet-18 trained by the kit on a tiny source task) goes with data 'tiny'"),
    ('source = "pretrain"\nclasses = 16', 'source = "timm"\nclasses = 16', "valid: torchvision, pretrain"),
])
def test_exp2_bad_values_name_the_valid_ones(tmp_path: Path, old: str, new: str, expected: str) -> None:
    from advtransfer.config import load_exp2

    path = _exp2_variant(tmp_path, old, new)
    profile = "paper" if "profiles.paper" in old else "demo"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_exp2(str(path), profile)
