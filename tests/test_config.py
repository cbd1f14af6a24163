"""The shipped experiment configs (``experiments/exp1.toml``, ``experiments/exp2.toml``): every profile loads with
SPEC's protocol, and every bad value is one :class:`ConfigError` line that names the key path and what is valid.

Bad configs are copies of the shipped files written to ``tmp_path`` with one edit: either the parsed TOML changed in
one place and written back with a tiny TOML writer (inline tables only), or the text itself edited (for what only
the text shows: section headers, ``inf`` / ``nan`` spelt as in TOML). Each test differs from a known-good config in
exactly one place. The copies keep the shipped file names, so messages start with ``exp1.toml[PROFILE]``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advtransfer import cli
from advtransfer.config.common import Phase
from advtransfer.config.reader import SAFE_NAME, to_plain
from advtransfer.errors import ConfigError, UserError
from advtransfer.studies import experiments_dir, get, load_experiment
from advtransfer.studies.cifar_at.config import Exp2Config, ModelSchedule, ModelSchedules, Setting, TinyClasses
from advtransfer.studies.imagenet_transfer.config import Exp1Config
from tomlwriter import dumps

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
SHIPPED = {"exp1": ("paper", "demo"), "exp2": ("paper", "demo", "cifar10-real-mini", "cifar10-jpg-paper")}
SHIPPED_PROFILES = [(exp, profile) for exp, profiles in SHIPPED.items() for profile in profiles]

Doc = dict[str, Any]
Change = Callable[[Doc], object]


# -------------------------------------------------------------------------------------------------- TOML writer


def shipped_text(exp: str) -> str:
    return (EXPERIMENTS / f"{exp}.toml").read_text(encoding="utf-8")


def shipped_doc(exp: str) -> Doc:
    return tomllib.loads(shipped_text(exp))


def write_config(tmp_path: Path, change: Change | None = None, exp: str = "exp1") -> str:
    """A copy of ``experiments/{exp}.toml`` at ``tmp_path/{exp}.toml``, ``change`` applied to its parsed TOML."""
    doc = copy.deepcopy(shipped_doc(exp))
    if change is not None:
        change(doc)
    path = tmp_path / f"{exp}.toml"
    path.write_text(dumps(doc), encoding="utf-8")
    return str(path)


def edit_config(tmp_path: Path, exp: str, old: str, new: str) -> str:
    """A copy of ``experiments/{exp}.toml`` with the first ``old`` in its text replaced by ``new``."""
    text = shipped_text(exp)
    assert old in text, f"{old!r} is not in {exp}.toml"
    path = tmp_path / f"{exp}.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return str(path)


def _container(doc: Doc, keys: tuple[str | int, ...]) -> Any:
    node: Any = doc
    for key in keys[:-1]:
        node = node[key] if isinstance(key, int) else node.setdefault(key, {})
    return node


def _set(*keys: str | int, value: Any) -> Change:
    def change(doc: Doc) -> None:
        _container(doc, keys)[keys[-1]] = value

    return change


def _delete(*keys: str | int) -> Change:
    def change(doc: Doc) -> None:
        del _container(doc, keys)[keys[-1]]

    return change


def _rename(*keys: str | int, to: str) -> Change:
    def change(doc: Doc) -> None:
        table = _container(doc, keys)
        table[to] = table.pop(keys[-1])

    return change


def _both(*changes: Change) -> Change:
    def change(doc: Doc) -> None:
        for c in changes:
            c(doc)

    return change


def words(first: str, *rest: str) -> str:
    """A pattern: the message starts with ``first`` and then contains each of ``rest``, in order."""
    return "^" + ".*".join(re.escape(w) for w in (first, *rest))


def assert_refused(path: str, profile: str, pattern: str) -> str:
    """``load_experiment(path, profile)`` is refused with one ConfigError line matching ``pattern``."""
    with pytest.raises(ConfigError, match=pattern) as info:
        load_experiment(path, profile)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    return message


@pytest.mark.parametrize("exp", sorted(SHIPPED))
def test_toml_writer_round_trips(exp: str) -> None:
    doc = shipped_doc(exp)
    assert tomllib.loads(dumps(doc)) == doc
    odd = {"a": [math.inf, -math.inf, 1e300, -0.0, "../x", {"b": True}], "c": {}}
    back = tomllib.loads(dumps({"t": odd}))["t"]
    assert back == odd
    assert math.isnan(tomllib.loads(dumps({"t": {"x": math.nan}}))["t"]["x"])


# ---------------------------------------------------------------------------------------------- shipped profiles


@pytest.mark.parametrize(("exp", "profile"), SHIPPED_PROFILES)
def test_every_shipped_profile_loads_and_plans(exp: str, profile: str, tmp_path: Path) -> None:
    e = load_experiment(exp, profile)
    assert (e.name, e.profile, e.source) == (exp, profile, EXPERIMENTS / f"{exp}.toml")
    assert e.study is get({"exp1": "imagenet-transfer", "exp2": "cifar-at"}[exp])
    assert isinstance(e.cfg, {"exp1": Exp1Config, "exp2": Exp2Config}[exp])
    keys = [cell.key for cell in e.study.plan(e)]
    assert keys and len(set(keys)) == len(keys)
    assert all(re.fullmatch(SAFE_NAME.regex, k) for k in keys), keys
    assert all(k.startswith(f"{exp}-") for k in keys)
    assert all(isinstance(m, str) for m in e.study.preflight(e, tmp_path))  # messages, never an exception
    json.dumps(to_plain(e.cfg), allow_nan=False)  # what a run writes as config-{name}.json


def test_mini_fixture_loads_and_its_misspelling_is_refused(mini_exp1: Path) -> None:
    exp = load_experiment(str(mini_exp1), "mini")
    assert exp.name == "exp1" and exp.cfg.blocks == (4, 16) and exp.cfg.tiny.n_source_classes == 6
    keys = [cell.key for cell in exp.study.plan(exp)]
    assert len(keys) == len(set(keys)) == 2 * 1 * 6  # protocols x seeds x (base_a, bnb, a4b, a4b_plus, a16b, ...)
    mini_exp1.write_text(mini_exp1.read_text().replace("pgd_steps = 2", "pgd_step = 2"))
    assert_refused(str(mini_exp1), "mini", words("exp1_mini.toml[mini]: unknown key 'pgd_step'; did you mean "
                                                 "'pgd_steps'?", "valid keys: "))


def test_experiments_dir_is_the_shipped_folder() -> None:
    assert experiments_dir() == EXPERIMENTS


def test_paper_profile_is_the_spec_protocol() -> None:
    exp = load_experiment("exp1", "paper")
    assert exp.name == "exp1" and exp.profile == "paper" and exp.study.name == "imagenet-transfer"
    assert exp.title == "ImageNet-R / MobileNetV2 block transfer under FGSM"
    cfg = exp.cfg
    assert cfg.protocols == ("intended", "as-run")
    assert cfg.dataset == "imagenet-r"
    assert cfg.image_size == 224
    assert cfg.batch_size == 128
    assert cfg.eps == 0.005
    assert cfg.blocks == (4, 8, 12, 16)
    assert cfg.schedules.bnb == (Phase("adam", 1e-4, 4),)
    assert cfg.schedules.anb == (Phase("adam", 1e-4, 4),)
    assert cfg.schedules.anb_plus == (Phase("adam", 1e-4, 2), Phase("rmsprop", 1e-5, 2))
    assert cfg.base_a.source == "torchvision"
    assert cfg.base_a.weights == "IMAGENET1K_V1"
    assert cfg.base_a.width_mult == 1.0 and not cfg.base_a.stride8
    assert cfg.base_a.schedule == ()  # nothing to pretrain
    assert (cfg.split.test, cfg.split.val) == (0.2, 0.1)
    assert cfg.figure_eps == (0.005, 0.05, 0.075)
    assert cfg.figure_class == "n04266014"
    assert cfg.eps in cfg.all_eps and list(cfg.all_eps) == sorted(set(cfg.all_eps))
    assert all(0 < e <= 1 for e in cfg.all_eps)
    assert cfg.backends == ("native",) and exp.backends == ("native",)
    assert cfg.seeds == (0,)


def test_demo_profile_loads() -> None:
    cfg = load_experiment("exp1", "demo").cfg
    assert cfg.dataset == "tiny"
    assert cfg.image_size == 32
    assert cfg.blocks == (4, 8, 12, 16)
    assert 0 < cfg.eps <= 1
    assert cfg.base_a.source == "pretrain"
    assert cfg.base_a.width_mult == 0.25 and cfg.base_a.stride8
    assert cfg.base_a.schedule and all(isinstance(p, Phase) for p in cfg.base_a.schedule)
    assert {f.name for f in dataclasses.fields(cfg.schedules)} == {"bnb", "anb", "anb_plus"}
    assert [p.optimizer for p in cfg.schedules.anb_plus] == ["adam", "rmsprop"]
    assert cfg.tiny.n_target_classes <= cfg.tiny.n_source_classes
    # [common] deep-merged with the profile: lists replace, tables merge, scalars override.
    assert cfg.figure_eps == (0.03, 0.1, 0.2)
    assert cfg.seeds == (0,)  # one seed keeps `make demo` within 5 minutes
    # robust_eval: the profile's cheap settings merged over [common]'s switch
    assert cfg.robust_eval.autoattack and (cfg.robust_eval.target_classes, cfg.robust_eval.apgd_steps) == (1, 5)
    assert (cfg.split.test, cfg.split.val) == (0.2, 0.1)
    assert cfg.eval_batch_size == 256
    assert (cfg.pgd_steps, cfg.crosscheck_subset) == (5, 16)
    assert cfg.protocols == ("intended", "as-run")  # from [experiment]


def test_profile_merges_common_tables_key_by_key(tmp_path: Path) -> None:
    path = write_config(tmp_path, _both(_set("profiles", "demo", "split", value={"val": 0.3}),
                                        _set("common", "tiny", value={"seed": 5, "n_source_classes": 12}),
                                        _delete("profiles", "demo", "tiny", "seed")))
    cfg = load_experiment(path, "demo").cfg
    assert (cfg.split.test, cfg.split.val) == (0.2, 0.3)  # test from [common.split], val from the profile
    # seed from [common.tiny], n_source_classes from the profile's [tiny] (which wins key by key)
    assert (cfg.tiny.seed, cfg.tiny.n_source_classes) == (5, 16)


@pytest.mark.parametrize(("exp", "profile"), SHIPPED_PROFILES)
def test_config_from_path_equals_named_experiment(tmp_path: Path, exp: str, profile: str) -> None:
    from_path = load_experiment(write_config(tmp_path, exp=exp), profile)
    named = load_experiment(exp, profile)
    assert from_path.cfg == named.cfg
    assert to_plain(from_path.cfg) == to_plain(named.cfg)
    assert (from_path.name, from_path.study, from_path.title) == (named.name, named.study, named.title)
    assert from_path.source == tmp_path / f"{exp}.toml"


def test_unknown_profile_lists_profiles() -> None:
    with pytest.raises(ConfigError, match=r"^exp1\.toml: unknown profile 'huge'; valid profiles: paper, demo$"):
        load_experiment("exp1", "huge")
    with pytest.raises(ConfigError, match=r"^exp2\.toml: unknown profile 'dmeo'; did you mean 'demo'\? valid "
                                          r"profiles: paper, demo, cifar10-real-mini, cifar10-jpg-paper$"):
        load_experiment("exp2", "dmeo")


def test_unknown_experiment_lists_experiments() -> None:
    with pytest.raises(ConfigError, match=r"^unknown experiment 'exp99'; did you mean 'exp[12]'\? valid: exp1, exp2 "
                                          r"\(the \.toml files in .*experiments\), or a path ending in \.toml$"):
        load_experiment("exp99", "paper")


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^experiment config .*nope\.toml does not exist$"):
        load_experiment(str(tmp_path / "nope.toml"), "paper")


def test_invalid_toml(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[experiment\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"broken\.toml is not valid TOML: "):
        load_experiment(str(path), "paper")


def test_config_error_is_a_user_error() -> None:
    assert issubclass(ConfigError, UserError)


@pytest.mark.parametrize(("exp", "study"), [("exp1", 1), ("exp1", "1"), ("exp2", 2), ("exp2", "2")])
def test_legacy_study_numbers_are_aliases(tmp_path: Path, exp: str, study: int | str) -> None:
    path = write_config(tmp_path, _set("experiment", "study", value=study), exp=exp)
    assert load_experiment(path, "demo").cfg == load_experiment(exp, "demo").cfg


def test_unknown_study_is_refused_with_did_you_mean(tmp_path: Path) -> None:
    path = write_config(tmp_path, _set("experiment", "study", value="imagenet-transfe"))
    assert_refused(path, "demo", words("exp1.toml[experiment].study: unknown study 'imagenet-transfe'",
                                       "did you mean 'imagenet-transfer'",
                                       "registered: cifar-at, imagenet-transfer"))
    path = write_config(tmp_path, _set("experiment", "study", value="../x"))
    assert_refused(path, "demo", words("exp1.toml[experiment].study = '../x': must be the name of a",
                                       "no path separators"))


def test_study_given_as_module_and_class_loads(tmp_path: Path) -> None:
    path = write_config(tmp_path, _set("experiment", "study", value="advtransfer.studies.cifar_at:"
                                                                     "CifarAdversarialTraining"), exp="exp2")
    exp = load_experiment(path, "demo")
    assert exp.study is get("cifar-at") and exp.cfg == load_experiment("exp2", "demo").cfg


# ------------------------------------------------------------------------------------------------ study 1: values


def _schedule(lr: float = 1e-4, epochs: int = 4, optimizer: str = "adam") -> list[dict[str, Any]]:
    return [{"optimizer": optimizer, "lr": lr, "epochs": epochs}]


BAD1 = [
    # id, profile, change, the message's start (the key path) and then what it must name (bad value, valid values)
    ("blocks", "paper", _set("profiles", "paper", "blocks", value=[5]), ["[paper].blocks[0] = 5", "4, 8, 12, 16"]),
    ("blocks-demo", "demo", _set("common", "blocks", value=[4, 6]), ["[demo].blocks[1] = 6", "4, 8, 12, 16"]),
    ("blocks-repeat", "paper", _set("common", "blocks", value=[4, 4]), ["[paper].blocks = [4, 4]", "repeats 4"]),
    ("blocks-empty", "paper", _set("common", "blocks", value=[]), ["[paper].blocks = []", "must not be empty"]),
    ("eps>1", "paper", _set("profiles", "paper", "eps", value=2), ["[paper].eps = 2", "must be > 0 and <= 1"]),
    ("eps0", "paper", _set("profiles", "paper", "eps", value=0.0), ["[paper].eps = 0.0", "must be > 0 and <= 1"]),
    ("eps-string", "paper", _set("profiles", "paper", "eps", value="0.005"),
     ["[paper].eps = '0.005'", "expected a number, got a string"]),
    ("eps-sweep", "paper", _set("profiles", "paper", "eps_sweep", value=[0.01, 3]),
     ["[paper].eps_sweep[1] = 3", "must be > 0 and <= 1"]),
    ("optimizer", "paper", _set("common", "schedules", "bnb", 0, "optimizer", value="adamw"),
     ["[paper].schedules.bnb[0].optimizer = 'adamw'", "did you mean 'adam'?", "valid: 'adam', 'rmsprop', 'sgd'"]),
    ("lr", "paper", _set("common", "schedules", "anb", 0, "lr", value=-1e-4),
     ["[paper].schedules.anb[0].lr = -0.0001", "must be > 0 and <= 10"]),
    ("lr-1e3", "demo", _set("profiles", "demo", "base_a", "schedule", 0, "lr", value=1e3),
     ["[demo].base_a.schedule[0].lr = 1000.0", "must be > 0 and <= 10"]),
    ("epochs", "paper", _set("common", "schedules", "anb_plus", 1, "epochs", value=0),
     ["[paper].schedules.anb_plus[1].epochs = 0", "must be >= 1"]),
    ("epochs-float", "paper", _set("common", "schedules", "anb_plus", 1, "epochs", value=2.0),
     ["[paper].schedules.anb_plus[1].epochs = 2.0", "expected an integer", "without a decimal point"]),
    ("dataset", "paper", _set("profiles", "paper", "dataset", value="foo"),
     ["[paper].dataset = 'foo'", "valid: 'tiny', 'imagenet-r', 'imagefolder'"]),
    ("protocols", "paper", _set("experiment", "protocols", value=["bogus"]),
     ["[paper].protocols[0] = 'bogus'", "valid: 'intended', 'as-run'"]),
    ("protocols-empty", "paper", _set("experiment", "protocols", value=[]),
     ["[paper].protocols = []", "must not be empty"]),
    ("imagefolder-no-path", "paper", _set("profiles", "paper", "dataset", value="imagefolder"),
     ["[paper]: dataset = 'imagefolder' needs dataset_path = 'DIR'"]),
    # A Base A to pretrain needs a schedule (checked first), and then tiny data.
    ("pretrain-without-schedule", "paper", _set("profiles", "paper", "base_a", "source", value="pretrain"),
     ["[paper].base_a: source = 'pretrain' needs a schedule"]),
    ("pretrain-with-real-data", "paper", _set("profiles", "paper", "base_a", value={
        "source": "pretrain", "schedule": _schedule()}),
     ["[paper].base_a.source = 'pretrain' does not fit dataset 'imagenet-r'", "tiny", "'torchvision' or 'file'"]),
    ("torchvision-with-tiny", "demo", _set("profiles", "demo", "base_a", "source", value="torchvision"),
     ["[demo].base_a.source = 'torchvision' does not fit dataset 'tiny'", "'pretrain'"]),
    ("base-source", "paper", _set("profiles", "paper", "base_a", "source", value="hub"),
     ["[paper].base_a.source = 'hub'", "valid: 'torchvision', 'pretrain', 'file'"]),
    ("base-weights", "paper", _set("profiles", "paper", "base_a", "weights", value="IMAGENET1K_V3"),
     ["[paper].base_a.weights = 'IMAGENET1K_V3'", "valid: 'IMAGENET1K_V1', 'IMAGENET1K_V2'"]),
    ("base-file-no-path", "paper", _set("profiles", "paper", "base_a", "source", value="file"),
     ["[paper].base_a: source = 'file' needs path = 'FILE.pth'"]),
    ("normalization", "paper", _set("profiles", "paper", "base_a", "normalization", value="caffe"),
     ["[paper].base_a.normalization = 'caffe'", "valid: 'imagenet', 'inception'"]),
    ("width", "paper", _set("profiles", "paper", "base_a", "width_mult", value=8),
     ["[paper].base_a.width_mult = 8", "must be between 0.05 and 4"]),
    ("missing-family", "paper", _delete("common", "schedules", "anb_plus"),
     ["[paper].schedules: missing required key 'anb_plus'"]),
    ("empty-schedule", "paper", _set("common", "schedules", "bnb", value=[]),
     ["[paper].schedules.bnb = []", "must not be empty"]),
    ("seeds", "paper", _set("common", "seeds", value=[-1]),
     ["[paper].seeds[0] = -1", "must be between 0 and 2147483647"]),
    ("seeds-repeat", "paper", _set("common", "seeds", value=[0, 1, 0]),
     ["[paper].seeds = [0, 1, 0]", "repeats 0; each value may appear once"]),
    ("split", "paper", _set("common", "split", "test", value=1.5),
     ["[paper].split.test = 1.5", "must be between 0 and 1 (exclusive)"]),
    ("batch", "paper", _set("profiles", "paper", "batch_size", value=0),
     ["[paper].batch_size = 0", "must be between 1 and 65536"]),
    ("batch-bool", "paper", _set("profiles", "paper", "batch_size", value=True),
     ["[paper].batch_size = True", "expected an integer, got a boolean"]),
    ("missing-eps", "paper", _delete("profiles", "paper", "eps"), ["[paper]: missing required key 'eps'"]),
    ("tiny-targets", "demo", _set("profiles", "demo", "tiny", "n_target_classes", value=32),
     ["[demo].tiny: n_target_classes = 32 must be <= n_source_classes = 16"]),
    ("one-class", "demo", _set("profiles", "demo", "tiny", "n_source_classes", value=1),
     ["[demo].tiny.n_source_classes = 1", "must be between 2 and 100000"]),
    ("backends-empty", "paper", _set("common", "backends", value=[]), ["[paper].backends = []", "must not be empty"]),
    ("backends-unknown", "paper", _set("common", "backends", value=["nativ"]),
     ["[paper].backends[0] = 'nativ'", "did you mean 'native'?", "valid: 'native', 'torchattacks', 'art'"]),
    ("crosscheck-negative", "demo", _set("profiles", "demo", "crosscheck_subset", value=-1),
     ["[demo].crosscheck_subset = -1", "must be >= 0"]),
    ("pgd-steps", "paper", _set("common", "pgd_steps", value=0), ["[paper].pgd_steps = 0", "must be >= 1"]),
    ("precision", "paper", _set("common", "precision", value="fp16"),
     ["[paper].precision = 'fp16'", "valid: 'auto', 'fp32', 'bf16'"]),
    ("title", "paper", _set("experiment", "title", value=3), ["[experiment].title = 3", "expected a string"]),
]


@pytest.mark.parametrize(("profile", "change", "message"), [b[1:] for b in BAD1], ids=[b[0] for b in BAD1])
def test_bad_value_is_config_error_naming_key_and_valid_values(tmp_path: Path, profile: str, change: Change,
                                                               message: list[str]) -> None:
    assert_refused(write_config(tmp_path, change), profile, words("exp1.toml" + message[0], *message[1:]))


def test_imagefolder_with_path_loads(tmp_path: Path) -> None:
    def change(doc: Doc) -> None:
        doc["profiles"]["paper"]["dataset"] = "imagefolder"
        doc["profiles"]["paper"]["dataset_path"] = "/data/renditions"

    cfg = load_experiment(write_config(tmp_path, change), "paper").cfg
    assert (cfg.dataset, cfg.dataset_path) == ("imagefolder", "/data/renditions")


def test_base_a_from_file_loads(tmp_path: Path) -> None:
    def change(doc: Doc) -> None:
        doc["profiles"]["paper"]["base_a"].update(source="file", path="base_a.pth", normalization="inception")

    cfg = load_experiment(write_config(tmp_path, change), "paper").cfg
    assert (cfg.base_a.source, cfg.base_a.path, cfg.base_a.normalization) == ("file", "base_a.pth", "inception")


def test_integer_eps_is_accepted_as_float(tmp_path: Path) -> None:
    cfg = load_experiment(write_config(tmp_path, _set("profiles", "paper", "eps", value=1)), "paper").cfg
    assert cfg.eps == 1.0 and isinstance(cfg.eps, float)


def test_pretrain_base_a_without_schedule_is_config_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, _delete("profiles", "demo", "base_a", "schedule"))
    assert_refused(path, "demo", words("exp1.toml[demo].base_a: source = 'pretrain' needs a schedule",
                                       "[[...base_a.schedule]]"))


# ------------------------------------------------------------------------------------------------ study 2: values


def test_exp2_demo_runs_all_four_experiments_with_model_schedules() -> None:
    cfg = load_experiment("exp2", "demo").cfg
    assert [s.id for s in cfg.settings] == [1, 2, 3, 4]
    assert all(isinstance(s, Setting) for s in cfg.settings)
    assert {m for s in cfg.settings for m in s.models} == {"basenet", "resnet18_transfer", "resnet18_scratch"}
    assert cfg.resnet_pretrained.source == "pretrain" and cfg.resnet_pretrained.schedule
    assert cfg.model_schedules.resnet18_scratch.clean[0].epochs < cfg.clean_schedule[0].epochs
    assert cfg.model_schedules.resnet18_transfer == ModelSchedule(clean=(Phase("adam", 3e-3, 6),),
                                                                  adversarial=(Phase("adam", 1e-3, 2),))
    assert cfg.model_schedules.basenet == ModelSchedule()  # not given: clean_schedule / adv_schedule apply
    assert cfg.tiny_classes == TinyClasses(cifar10=10, cifar100=20)
    assert cfg.resnet_input_size == 16 and cfg.resize == 16
    assert cfg.train_per_class == 0  # 0: every training image
    paper = load_experiment("exp2", "paper").cfg
    assert paper.resnet_pretrained.source == "torchvision" and paper.resnet_pretrained.weights == "IMAGENET1K_V1"
    assert paper.model_schedules == ModelSchedules() and paper.resnet_input_size == 224 and paper.resize == 224
    assert paper.clean_schedule == (Phase("sgd", 1e-3, 100),) and paper.adv_schedule == (Phase("sgd", 1e-3, 100),)
    assert (paper.eps, paper.step, paper.steps) == (0.0313725, 0.0078431, 10)
    mini = load_experiment("exp2", "cifar10-real-mini").cfg
    assert mini.data == "cifar10-jpg" and mini.train_per_class == 500
    assert [(s.id, s.models, s.trainings) for s in mini.settings] == [(1, ("basenet",), ("clean", "pgd"))]


def test_exp2_resnet_input_size_zero_means_no_resize(tmp_path: Path) -> None:
    cfg = load_experiment(write_config(tmp_path, _set("common", "resnet_input_size", value=0), exp="exp2"),
                          "paper").cfg
    assert cfg.resnet_input_size == 0 and cfg.resize is None


BAD2 = [
    ("duplicate-id", "paper", _set("common", "settings", 3, "id", value=3),
     ["[paper].settings: id 3 appears 2 times", "each experiment needs its own id"]),
    ("duplicate-id-demo", "demo", _set("profiles", "demo", "settings", 1, "id", value=1),
     ["[demo].settings: id 1 appears 2 times"]),
    ("models-empty", "paper", _set("common", "settings", 0, "models", value=[]),
     ["[paper].settings[0].models = []", "must not be empty"]),
    ("trainings-empty", "demo", _set("profiles", "demo", "settings", 2, "trainings", value=[]),
     ["[demo].settings[2].trainings = []", "must not be empty"]),
    ("trainings-without-clean", "paper", _set("common", "settings", 1, "trainings", value=["pgd"]),
     ["[paper].settings[1].trainings = ['pgd'] must include 'clean'"]),
    ("settings-empty", "paper", _set("common", "settings", value=[]), ["[paper].settings = []", "must not be empty"]),
    ("model", "paper", _set("common", "settings", 0, "models", value=["resnet50"]),
     ["[paper].settings[0].models[0] = 'resnet50'", "valid: 'basenet', 'resnet18_transfer', 'resnet18_scratch'"]),
    ("training", "paper", _set("common", "settings", 0, "trainings", value=["clean", "pgdd"]),
     ["[paper].settings[0].trainings[1] = 'pgdd'", "did you mean 'pgd'?",
      "valid: 'clean', 'pgd', 'nifgsm', 'vmifgsm', 'fgsm_rs'"]),
    ("models-repeat", "paper", _set("common", "settings", 3, "models", value=["basenet", "basenet"]),
     ["[paper].settings[3].models = ['basenet', 'basenet']", "repeats 'basenet'"]),
    ("setting-id", "paper", _set("common", "settings", 0, "id", value=0),
     ["[paper].settings[0].id = 0", "must be between 1 and 999"]),
    ("setting-dataset", "paper", _set("common", "settings", 0, "dataset", value="cifar1000"),
     ["[paper].settings[0].dataset = 'cifar1000'", "valid: 'cifar10', 'cifar100'"]),
    ("backends-empty", "paper", _set("common", "backends", value=[]), ["[paper].backends = []", "must not be empty"]),
    ("backends-repeat", "paper", _set("common", "backends", value=["art", "art"]),
     ["[paper].backends = ['art', 'art']", "repeats 'art'"]),
    ("crosscheck-negative", "paper", _set("common", "crosscheck_subset", value=-1),
     ["[paper].crosscheck_subset = -1", "must be >= 0"]),
    ("seeds-repeat", "demo", _set("common", "seeds", value=[1, 1]),
     ["[demo].seeds = [1, 1]", "repeats 1; each value may appear once"]),
    ("seeds-empty", "demo", _set("common", "seeds", value=[]), ["[demo].seeds = []", "must not be empty"]),
    ("one-class", "demo", _set("profiles", "demo", "tiny_classes", "cifar10", value=1),
     ["[demo].tiny_classes.cifar10 = 1", "must be between 2 and 1000"]),
    ("one-source-class", "demo", _set("profiles", "demo", "resnet_pretrained", "classes", value=1),
     ["[demo].resnet_pretrained.classes = 1", "must be between 2 and 1000"]),
    ("lr-1e3", "paper", _set("common", "clean_schedule", 0, "lr", value=1e3),
     ["[paper].clean_schedule[0].lr = 1000.0", "must be > 0 and <= 10"]),
    ("lr-1e3-model", "demo", _set("profiles", "demo", "model_schedules", "resnet18_scratch", "adversarial", 0, "lr",
                                  value=1e3),
     ["[demo].model_schedules.resnet18_scratch.adversarial[0].lr = 1000.0", "must be > 0 and <= 10"]),
    ("model-schedule-empty", "demo", _set("profiles", "demo", "model_schedules", "resnet18_scratch", "clean",
                                          value=[]),
     ["[demo].model_schedules.resnet18_scratch.clean = []", "must not be empty"]),
    ("model-schedules-model", "demo", _rename("profiles", "demo", "model_schedules", "resnet18_scratch",
                                              to="resnet50"),
     ["[demo].model_schedules: unknown key 'resnet50'", "valid keys: basenet, resnet18_scratch, resnet18_transfer"]),
    ("model-schedules-kind", "demo", _rename("profiles", "demo", "model_schedules", "resnet18_scratch", "clean",
                                             to="warmup"),
     ["[demo].model_schedules.resnet18_scratch: unknown key 'warmup'", "valid keys: adversarial, clean"]),
    ("pretrain-with-real-data", "paper", _set("profiles", "paper", "resnet_pretrained", value={
        "source": "pretrain", "schedule": [{"optimizer": "adam", "lr": 1e-3, "epochs": 4}]}),
     ["[paper].resnet_pretrained.source = 'pretrain' does not fit data 'cifar'",
      "'pretrain' (a ResNet-18 trained by the kit on a tiny source task) goes with data 'tiny'"]),
    ("pretrain-without-schedule", "paper", _set("profiles", "paper", "resnet_pretrained", value={"source": "pretrain"}),
     ["[paper].resnet_pretrained: source = 'pretrain' needs a schedule"]),
    ("resnet-source", "demo", _set("profiles", "demo", "resnet_pretrained", "source", value="timm"),
     ["[demo].resnet_pretrained.source = 'timm'", "valid: 'torchvision', 'pretrain'"]),
    ("resnet-input-size", "paper", _set("common", "resnet_input_size", value=-1),
     ["[paper].resnet_input_size = -1", "must be between 0 and 1024"]),
    ("train-per-class", "paper", _set("profiles", "paper", "train_per_class", value=-5),
     ["[paper].train_per_class = -5", "must be >= 0"]),
    ("step>1", "paper", _set("common", "step", value=2), ["[paper].step = 2", "must be > 0 and <= 1"]),
    ("data", "paper", _set("profiles", "paper", "data", value="cifar100"),
     ["[paper].data = 'cifar100'", "valid: 'cifar', 'tiny', 'cifar10-jpg'"]),
    ("vmi-beta", "paper", _set("common", "vmi_beta", value=0), ["[paper].vmi_beta = 0", "must be > 0 and <= 100"]),
    ("missing-steps", "paper", _delete("common", "steps"), ["[paper]: missing required key 'steps'"]),
]


@pytest.mark.parametrize(("profile", "change", "message"), [b[1:] for b in BAD2], ids=[b[0] for b in BAD2])
def test_exp2_bad_value_names_key_and_valid_values(tmp_path: Path, profile: str, change: Change,
                                                   message: list[str]) -> None:
    assert_refused(write_config(tmp_path, change, exp="exp2"), profile, words("exp2.toml" + message[0], *message[1:]))


# --------------------------------------------------------------------- misspellings: refused, with the right name


MISSPELT = [
    # The old loader ignored unknown keys silently; the redesign refuses them, suggesting the closest valid name.
    ("exp1", "demo", "eval_batch_size = 256", "eval_batch_sise = 256",
     ["exp1.toml[demo]: unknown key 'eval_batch_sise'; did you mean 'eval_batch_size'?", "valid keys: backends, ",
      "eval_batch_size"]),
    ("exp2", "paper", "eval_batch_size = 256", "eval_batch_sise = 256",
     ["exp2.toml[paper]: unknown key 'eval_batch_sise'; did you mean 'eval_batch_size'?", "valid keys: ",
      "adv_schedule, backends, batch_size, clean_schedule, compile, crosscheck_subset, data, decay, eps, "
      "eval_batch_size"]),
    ("exp1", "demo", "width_mult = 0.25", "widht_mult = 0.25",
     ["exp1.toml[demo].base_a: unknown key 'widht_mult'; did you mean 'width_mult'?",
      "valid keys: normalization, path, schedule, source, stride8, weights, width_mult"]),
    ("exp1", "paper", "[common.split]\ntest = 0.2", "[common.split]\ntets = 0.2",
     ["exp1.toml[paper].split: unknown key 'tets'; did you mean 'test'?", "valid keys: test, val"]),
    ("exp1", "demo", "[[profiles.demo.base_a.schedule]]\noptimizer", "[[profiles.demo.base_a.schedule]]\noptimiser",
     ["exp1.toml[demo].base_a.schedule[0]: unknown key 'optimiser'; did you mean 'optimizer'?",
      "valid keys: epochs, lr, optimizer"]),
    ("exp2", "demo", "per_class = 64", "per_clas = 64",
     ["exp2.toml[demo].resnet_pretrained: unknown key 'per_clas'; did you mean 'per_class'?",
      "valid keys: classes, per_class, schedule, seed, source, weights"]),
    ("exp2", "demo", "tiny_classes = { cifar10 = 10,", "tiny_classes = { cifar_10 = 10,",
     ["exp2.toml[demo].tiny_classes: unknown key 'cifar_10'; did you mean 'cifar10'?",
      "valid keys: cifar10, cifar100"]),
    ("exp2", "demo", "[profiles.demo.model_schedules.resnet18_scratch]\nclean",
     "[profiles.demo.model_schedules.resnet18_scratch]\nclen",
     ["exp2.toml[demo].model_schedules.resnet18_scratch: unknown key 'clen'; did you mean 'clean'?",
      "valid keys: adversarial, clean"]),
    ("exp2", "paper", '[[common.settings]]\nid = 1\ndataset = "cifar10"\nmodels',
     '[[common.settings]]\nid = 1\ndataset = "cifar10"\nmodel',
     ["exp2.toml[paper].settings[0]: unknown key 'model'; did you mean 'models'?",
      "valid keys: dataset, id, models, trainings"]),
    # sections
    ("exp1", "demo", "[common]\n", "[comon]\n",
     ["exp1.toml: unknown section 'comon'; did you mean 'common'?", "valid sections: experiment, common, profiles"]),
    ("exp2", "demo", "[common]\n", "[comon]\n",
     ["exp2.toml: unknown section 'comon'; did you mean 'common'?", "valid sections: experiment, common, profiles"]),
    ("exp1", "paper", "[experiment]\n", "[experimnet]\n",
     ["exp1.toml: unknown section 'experimnet'; did you mean 'experiment'?", "valid sections: "]),
    ("exp2", "paper", "[profiles.paper]\n", "[profile.paper]\n",
     ["exp2.toml: unknown section 'profile'; did you mean 'profiles'?", "valid sections: "]),
    ("exp1", "demo", "[profiles.demo.tiny]", "[profiles.demo.tinyy]",
     ["exp1.toml[demo]: unknown key 'tinyy'; did you mean 'tiny'?", "valid keys: ", "split, tiny"]),
    ("exp2", "demo", "[profiles.demo.resnet_pretrained]", "[profiles.demo.resnet_pretrainde]",
     ["exp2.toml[demo]: unknown key 'resnet_pretrainde'; did you mean 'resnet_pretrained'?", "valid keys: "]),
    ("exp1", "paper", "[[common.schedules.anb_plus]]", "[[common.schedules.anbplus]]",
     ["exp1.toml[paper].schedules: unknown key 'anbplus'; did you mean 'anb_plus'?", "valid keys: anb, anb_plus, bnb"]),
    ("exp2", "demo", "[[profiles.demo.clean_schedule]]", "[[profiles.demo.clean_schedules]]",
     ["exp2.toml[demo]: unknown key 'clean_schedules'; did you mean 'clean_schedule'?"]),
]


@pytest.mark.parametrize(("exp", "profile", "old", "new", "message"), MISSPELT,
                         ids=[f"{m[0]}-{m[3].split()[0]}" for m in MISSPELT])
def test_misspelt_key_or_section_is_refused_with_did_you_mean(tmp_path: Path, exp: str, profile: str, old: str,
                                                              new: str, message: list[str]) -> None:
    assert_refused(edit_config(tmp_path, exp, old, new), profile, words(*message))


def test_misspelt_profile_is_refused_with_did_you_mean() -> None:
    with pytest.raises(ConfigError, match=r"^exp1\.toml: unknown profile 'dem'; did you mean 'demo'\? valid profiles: "
                                          r"paper, demo$"):
        load_experiment("exp1", "dem")


# ---------------------------------------------------------------------------- non-finite numbers, anywhere


NON_FINITE = [
    ("exp1", "paper", "[[common.schedules.bnb]]\noptimizer = \"adam\"\nlr = 1e-4",
     "[[common.schedules.bnb]]\noptimizer = \"adam\"\nlr = inf", "exp1.toml[paper].schedules.bnb[0].lr = inf"),
    ("exp1", "paper", "optimizer = \"rmsprop\"\nlr = 1e-5", "optimizer = \"rmsprop\"\nlr = nan",
     "exp1.toml[paper].schedules.anb_plus[1].lr = nan"),
    ("exp1", "demo", "lr = 5e-3", "lr = -inf", "exp1.toml[demo].base_a.schedule[0].lr = -inf"),
    ("exp1", "paper", "eps = 0.005 ", "eps = nan ", "exp1.toml[paper].eps = nan"),
    ("exp1", "demo", "eps = 0.03\n", "eps = +inf\n", "exp1.toml[demo].eps = inf"),
    ("exp1", "paper", "eps_sweep = [0.001,", "eps_sweep = [-nan,", "exp1.toml[paper].eps_sweep[0] = nan"),
    ("exp1", "paper", "figure_eps = [0.005, 0.05,", "figure_eps = [0.005, inf,",
     "exp1.toml[paper].figure_eps[1] = inf"),
    ("exp1", "paper", "test = 0.2 ", "test = nan ", "exp1.toml[paper].split.test = nan"),
    ("exp1", "paper", "width_mult = 1.0", "width_mult = 1e999", "exp1.toml[paper].base_a.width_mult = inf"),
    ("exp2", "demo", "step = 0.0156863", "step = -inf", "exp2.toml[demo].step = -inf"),
    ("exp2", "paper", "step = 0.0078431", "step = -inf", "exp2.toml[paper].step = -inf"),
    ("exp2", "paper", "eps = 0.0313725", "eps = nan", "exp2.toml[paper].eps = nan"),
    ("exp2", "paper", "decay = 1.0", "decay = inf", "exp2.toml[paper].decay = inf"),
    ("exp2", "demo", "vmi_beta = 1.5", "vmi_beta = nan", "exp2.toml[demo].vmi_beta = nan"),
    ("exp2", "paper", "val = 0.1", "val = -nan", "exp2.toml[paper].val = nan"),
    ("exp2", "paper", "[[common.clean_schedule]]\noptimizer = \"sgd\"\nlr = 1e-3",
     "[[common.clean_schedule]]\noptimizer = \"sgd\"\nlr = inf", "exp2.toml[paper].clean_schedule[0].lr = inf"),
    ("exp2", "demo", "[[profiles.demo.adv_schedule]]\noptimizer = \"adam\"\nlr = 1e-3",
     "[[profiles.demo.adv_schedule]]\noptimizer = \"adam\"\nlr = nan", "exp2.toml[demo].adv_schedule[0].lr = nan"),
    ("exp2", "demo", "clean = [{ optimizer = \"adam\", lr = 3e-3", "clean = [{ optimizer = \"adam\", lr = nan",
     "exp2.toml[demo].model_schedules.resnet18_transfer.clean[0].lr = nan"),
    ("exp2", "demo", "adversarial = [{ optimizer = \"adam\", lr = 1e-3, epochs = 2 }]\n[[",
     "adversarial = [{ optimizer = \"adam\", lr = -inf, epochs = 2 }]\n[[",
     "exp2.toml[demo].model_schedules.resnet18_scratch.adversarial[0].lr = -inf"),
    ("exp2", "demo", "[[profiles.demo.resnet_pretrained.schedule]]\noptimizer = \"adam\"\nlr = 1e-3",
     "[[profiles.demo.resnet_pretrained.schedule]]\noptimizer = \"adam\"\nlr = inf",
     "exp2.toml[demo].resnet_pretrained.schedule[0].lr = inf"),
]


@pytest.mark.parametrize(("exp", "profile", "old", "new", "where"), NON_FINITE,
                         ids=[f"{n[0]}-{n[1]}-{n[4].split('].', 1)[1]}" for n in NON_FINITE])
def test_non_finite_number_is_refused(tmp_path: Path, exp: str, profile: str, old: str, new: str,
                                      where: str) -> None:
    assert_refused(edit_config(tmp_path, exp, old, new), profile, words(where + ": must be a finite number") + "$")


def test_non_finite_integer_key_is_a_type_error(tmp_path: Path) -> None:
    path = edit_config(tmp_path, "exp1", "batch_size = 128", "batch_size = inf")
    assert_refused(path, "paper", words("exp1.toml[paper].batch_size = inf: expected an integer, got a float"))
    path = edit_config(tmp_path, "exp2", "steps = 10", "steps = nan")
    assert_refused(path, "paper", words("exp2.toml[paper].steps = nan: expected an integer, got a float"))


# ------------------------------------------------------------------------------------------ wrongly nested values


NESTED = [
    # a table where a number is expected
    ("exp1", "paper", _set("profiles", "paper", "eps", value={"value": 0.005}),
     ["exp1.toml[paper].eps = {'value': 0.005}: expected a number, got a table"]),
    ("exp1", "paper", _set("common", "schedules", "bnb", 0, "lr", value={"lr": 1e-4}),
     ["exp1.toml[paper].schedules.bnb[0].lr = {'lr': 0.0001}: expected a number, got a table"]),
    ("exp2", "paper", _set("common", "batch_size", value={"n": 128}),
     ["exp2.toml[paper].batch_size = {'n': 128}: expected an integer, got a table"]),
    ("exp2", "demo", _set("profiles", "demo", "tiny_classes", "cifar100", value={"n": 20}),
     ["exp2.toml[demo].tiny_classes.cifar100 = {'n': 20}: expected an integer, got a table"]),
    # a list where a table is expected
    ("exp1", "paper", _set("common", "split", value=[0.2, 0.1]),
     ["exp1.toml[paper].split: expected a table of keys, got an array ([0.2, 0.1])"]),
    ("exp1", "demo", _set("profiles", "demo", "base_a", value=[{"source": "pretrain"}]),
     ["exp1.toml[demo].base_a: expected a table of keys, got an array"]),
    ("exp2", "demo", _set("profiles", "demo", "tiny_classes", value=[10, 20]),
     ["exp2.toml[demo].tiny_classes: expected a table of keys, got an array ([10, 20])"]),
    ("exp2", "demo", _set("profiles", "demo", "model_schedules", value=[{"clean": []}]),
     ["exp2.toml[demo].model_schedules: expected a table of keys, got an array"]),
    # a number where a table is expected
    ("exp1", "demo", _set("profiles", "demo", "tiny", value=16),
     ["exp1.toml[demo].tiny: expected a table of keys, got an integer (16)"]),
    ("exp2", "demo", _set("profiles", "demo", "tiny_classes", value=10),
     ["exp2.toml[demo].tiny_classes: expected a table of keys, got an integer (10)"]),
    # a list of numbers where a list of tables is expected
    ("exp1", "paper", _set("common", "schedules", "bnb", value=[1, 2]),
     ["exp1.toml[paper].schedules.bnb[0]: expected a table of keys, got an integer (1)"]),
    ("exp2", "paper", _set("common", "settings", value=[1, 2, 3]),
     ["exp2.toml[paper].settings[0]: expected a table of keys, got an integer (1)"]),
    ("exp2", "demo", _set("profiles", "demo", "model_schedules", "resnet18_transfer", "clean", value=[3e-3, 6]),
     ["exp2.toml[demo].model_schedules.resnet18_transfer.clean[0]: expected a table of keys, got a float (0.003)"]),
    # a table where a list (of tables, or of numbers) is expected
    ("exp1", "paper", _set("common", "schedules", "bnb", value={"optimizer": "adam", "lr": 1e-4, "epochs": 4}),
     ["exp1.toml[paper].schedules.bnb = {'optimizer': 'adam', 'lr': 0.0001, 'epochs': 4}: expected an array, "
      "got a table"]),
    ("exp2", "demo", _set("profiles", "demo", "model_schedules", "resnet18_scratch", "clean",
                          value={"optimizer": "adam", "lr": 1e-3, "epochs": 4}),
     ["exp2.toml[demo].model_schedules.resnet18_scratch.clean = {", "expected an array, got a table"]),
    ("exp1", "paper", _set("common", "blocks", value={"a": 4}),
     ["exp1.toml[paper].blocks = {'a': 4}: expected an array, got a table"]),
    # a list where a scalar is expected, and a list of lists
    ("exp2", "paper", _set("common", "steps", value=[10]),
     ["exp2.toml[paper].steps = [10]: expected an integer, got an array"]),
    ("exp1", "paper", _set("common", "seeds", value=[[0]]),
     ["exp1.toml[paper].seeds[0] = [0]: expected an integer, got an array"]),
    ("exp2", "paper", _set("common", "settings", 0, "models", value=[["basenet"]]),
     ["exp2.toml[paper].settings[0].models[0] = ['basenet']: expected a string, got an array"]),
]


@pytest.mark.parametrize(("exp", "profile", "change", "message"), NESTED,
                         ids=[f"{n[0]}-{n[1]}-{i}" for i, n in enumerate(NESTED)])
def test_wrongly_nested_value_is_refused(tmp_path: Path, exp: str, profile: str, change: Change,
                                         message: list[str]) -> None:
    assert_refused(write_config(tmp_path, change, exp=exp), profile, words(*message))


# --------------------------------------------------------------------------- names that end up in paths


@pytest.mark.parametrize("exp", sorted(SHIPPED))
@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", ".hidden", "", "/abs", "x" * 65])
def test_experiment_name_that_is_not_a_safe_name_is_refused(tmp_path: Path, exp: str, name: str) -> None:
    path = write_config(tmp_path, _set("experiment", "name", value=name), exp=exp)
    assert_refused(path, "demo", words(f"{exp}.toml[experiment].name = {name!r}: must be a name of letters, digits",
                                       "no path separators"))


@pytest.mark.parametrize("exp", sorted(SHIPPED))
@pytest.mark.parametrize("profile", ["a/b", "../demo", ".demo", "-demo", "de mo"])
def test_profile_name_that_is_not_a_safe_name_is_refused(tmp_path: Path, exp: str, profile: str) -> None:
    path = write_config(tmp_path, _rename("profiles", "demo", to=profile), exp=exp)
    assert_refused(path, "paper", words(f"{exp}.toml[profiles]: profile name {profile!r} must be a name of letters",
                                        "no path separators"))


@pytest.mark.parametrize("experiment", ["../exp1", "../experiments/exp1", "exp1/..", "/etc/passwd", ".exp1",
                                        "experiments/exp2"])
def test_experiment_argument_with_a_path_separator_is_refused(experiment: str) -> None:
    with pytest.raises(ConfigError, match=words(f"experiment {experiment!r}: an experiment name must be a name of",
                                                "for a file elsewhere give its path ending in .toml") + "$"):
        load_experiment(experiment, "demo")


def test_profile_argument_with_a_path_separator_is_an_unknown_profile() -> None:
    with pytest.raises(ConfigError, match=r"^exp1\.toml: unknown profile '\.\./demo'; did you mean 'demo'\?"):
        load_experiment("exp1", "../demo")


def test_table_key_with_a_path_separator_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, _rename("profiles", "demo", "model_schedules", "resnet18_scratch", to="../x"),
                        exp="exp2")
    assert_refused(path, "demo", words("exp2.toml[demo].model_schedules: unknown key '../x'", "valid keys: basenet"))


# --------------------------------------------------------------------------------------------------------- CLI


CLI_BAD = [
    ("exp1", "demo", _set("common", "eval_batch_sise", value=256),
     "exp1.toml[demo]: unknown key 'eval_batch_sise'; did you mean 'eval_batch_size'?"),
    ("exp1", "paper", _set("common", "schedules", "bnb", 0, "lr", value=math.inf),
     "exp1.toml[paper].schedules.bnb[0].lr = inf: must be a finite number"),
    ("exp2", "demo", _set("profiles", "demo", "settings", 3, "id", value=2),
     "exp2.toml[demo].settings: id 2 appears 2 times"),
    ("exp2", "paper", _set("experiment", "name", value="../x"),
     "exp2.toml[experiment].name = '../x': must be a name of letters"),
]


@pytest.mark.parametrize(("exp", "profile", "change", "start"), CLI_BAD, ids=[c[3].split(":")[0] for c in CLI_BAD])
def test_cli_run_with_a_bad_config_is_one_error_line_and_writes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        exp: str, profile: str, change: Change, start: str) -> None:
    config = write_config(tmp_path, change, exp=exp)
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    status = cli.main(["run", config, "--profile", profile, "--out", str(out), "--data-root", str(tmp_path / "data")])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith(f"advtransfer: error: {start}")
    assert len(captured.err.splitlines()) == 1 and captured.err.endswith("\n"), captured.err
    assert "Traceback" not in captured.err + captured.out
    assert captured.out == ""
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{exp}.toml"]  # no results/, data/ or anything else


@pytest.mark.parametrize(("argv", "start"), [
    (["run", "../exp1", "--profile", "demo"], "advtransfer: error: experiment '../exp1': an experiment name must be"),
    (["run", "exp1", "--profile", "dmeo"], "advtransfer: error: exp1.toml: unknown profile 'dmeo'; did you mean"),
    (["run", "exp3", "--profile", "demo"], "advtransfer: error: unknown experiment 'exp3'; did you mean"),
])
def test_cli_run_with_a_bad_experiment_or_profile(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch, argv: list[str],
                                                  start: str) -> None:
    out = tmp_path / "out"
    monkeypatch.chdir(tmp_path)
    assert cli.main([*argv, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(start) and len(captured.err.splitlines()) == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists() and list(tmp_path.iterdir()) == []
