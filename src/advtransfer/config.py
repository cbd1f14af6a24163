"""Experiment configs: TOML files under ``experiments/``, validated into frozen dataclasses.

A config file is data, never executed. ``[common]`` is deep-merged with ``[profiles.NAME]`` (tables merge, lists
and scalars replace), and the result is validated here: a bad value raises :class:`ConfigError` naming the key and
the valid values.
"""

from __future__ import annotations

import copy
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

PROTOCOLS = ("intended", "as-run")
OPTIMIZERS = ("adam", "rmsprop", "sgd")
EXP1_DATASETS = ("tiny", "imagenet-r", "imagefolder")
EXP1_BLOCKS = (4, 8, 12, 16)
BASE_A_SOURCES = ("torchvision", "pretrain", "file")
TORCHVISION_WEIGHTS = ("IMAGENET1K_V1", "IMAGENET1K_V2")
NORMALIZATIONS = ("imagenet", "inception")


def experiments_dir() -> Path:
    """The repository's ``experiments/`` folder (configs live beside the package in a source checkout)."""
    return Path(__file__).resolve().parents[2] / "experiments"


@dataclass(frozen=True)
class Phase:
    """One phase of a training schedule: an optimizer, its learning rate and how many epochs it runs."""

    optimizer: str
    lr: float
    epochs: int


@dataclass(frozen=True)
class Split:
    test: float = 0.2  # fraction of the pool held out as the test set
    val: float = 0.1  # intended protocol: fraction of the train part held out for validation


@dataclass(frozen=True)
class TinyData:
    n_source_classes: int = 16
    n_target_classes: int = 8
    source_per_class: int = 96
    target_per_class: int = 150
    seed: int = 0


@dataclass(frozen=True)
class BaseA:
    source: str  # torchvision: ImageNet weights; pretrain: trained by the kit on the tiny source task; file: a path
    weights: str = "IMAGENET1K_V1"
    path: str = ""  # source = "file": a MobileNetV2 state_dict (1000 classes)
    normalization: str = "imagenet"  # inception = mean/std 0.5 (TF-converted weights)
    width_mult: float = 1.0
    stride8: bool = False  # demo: total stride 8 instead of 32, for 32 px images
    schedule: tuple[Phase, ...] = ()


@dataclass(frozen=True)
class Exp1Config:
    """Study 1, one profile, fully resolved."""

    name: str
    profile: str
    protocols: tuple[str, ...]
    seeds: tuple[int, ...]
    dataset: str
    dataset_path: str
    image_size: int
    batch_size: int
    eval_batch_size: int
    blocks: tuple[int, ...]
    eps: float
    eps_sweep: tuple[float, ...]
    figure_eps: tuple[float, ...]
    figure_class: str
    split: Split
    base_a: BaseA
    schedules: dict[str, tuple[Phase, ...]] = field(default_factory=dict)
    tiny: TinyData = TinyData()
    backends: tuple[str, ...] = ("native",)  # attack backends every evaluation runs through
    precision: str = "auto"  # training autocast: auto (bf16 on CUDA and AMX CPUs), fp32, bf16
    compile: bool = False  # train through torch.compile
    pgd_steps: int = 10  # white-box PGD at the main eps: this many steps of eps/4, random start
    crosscheck_subset: int = 64  # test examples per model for the three-backend cross-check (0: off)
    source_file: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def all_eps(self) -> tuple[float, ...]:
        """Every eps evaluated: the sweep plus the main eps, sorted."""
        return tuple(sorted(set(self.eps_sweep) | {self.eps}))


# --------------------------------------------------------------------------------------------------- loading ---


def resolve_experiment_path(experiment: str) -> Path:
    """``exp1`` -> ``experiments/exp1.toml``; a path to a ``.toml`` file is used as is."""
    candidate = Path(experiment)
    if candidate.suffix == ".toml":
        if not candidate.is_file():
            raise ConfigError(f"experiment config {candidate} does not exist")
        return candidate
    path = experiments_dir() / f"{experiment}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in experiments_dir().glob("*.toml"))
        raise ConfigError(f"unknown experiment {experiment!r}; valid: {', '.join(known)} (or a path to a .toml file)")
    return path


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_raw(experiment: str, profile: str) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Read a config file and merge ``common`` with the profile; returns (path, [experiment] table, merged)."""
    path = resolve_experiment_path(experiment)
    try:
        doc = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    profiles = doc.get("profiles", {})
    if profile not in profiles:
        raise ConfigError(f"unknown profile {profile!r} for {path.name}; valid: {', '.join(sorted(profiles))}")
    return path, doc.get("experiment", {}), _deep_merge(doc.get("common", {}), profiles[profile])


class _Reader:
    """Typed access to one table with key paths in error messages."""

    def __init__(self, table: dict[str, Any], where: str) -> None:
        self.table, self.where = table, where

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ...) -> Any:
        if key not in self.table:
            if default is ...:
                raise ConfigError(f"{self.where}: missing required key {key!r}")
            return default
        value = self.table[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise ConfigError(f"{self.where}.{key} = {value!r}: expected {name}")
        return value

    def choice(self, key: str, valid: tuple[str, ...], default: Any = ...) -> str:
        value = self.get(key, str, default)
        if value not in valid:
            raise ConfigError(f"{self.where}.{key} = {value!r}; valid: {', '.join(valid)}")
        return value

    def positive(self, key: str, kind: type, default: Any = ...) -> Any:
        value = self.get(key, kind, default)
        if value <= 0:
            raise ConfigError(f"{self.where}.{key} = {value!r}: must be > 0")
        return value

    def fraction(self, key: str, default: Any = ...) -> float:
        value = self.get(key, float, default)
        if not 0.0 < value < 1.0:
            raise ConfigError(f"{self.where}.{key} = {value!r}: must be strictly between 0 and 1")
        return value

    def eps_list(self, key: str, default: Any = ...) -> tuple[float, ...]:
        values = self.get(key, list, default)
        out = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 < float(v) <= 1.0:
                raise ConfigError(f"{self.where}.{key}: {v!r} is not an eps in pixel units (0 < eps <= 1)")
            out.append(float(v))
        return tuple(out)

    def sub(self, key: str) -> _Reader:
        return _Reader(self.get(key, dict, {}), f"{self.where}.{key}")


def _schedule(items: Any, where: str) -> tuple[Phase, ...]:
    if not isinstance(items, list) or not items:
        raise ConfigError(f"{where}: expected a non-empty list of phases ({{optimizer, lr, epochs}})")
    phases = []
    for i, item in enumerate(items):
        r = _Reader(item if isinstance(item, dict) else {}, f"{where}[{i}]")
        phases.append(Phase(r.choice("optimizer", OPTIMIZERS), r.positive("lr", float), r.positive("epochs", int)))
    return tuple(phases)


def load_exp1(experiment: str, profile: str) -> Exp1Config:
    path, meta, raw = load_raw(experiment, profile)
    r = _Reader(raw, f"{path.name}[{profile}]")
    m = _Reader(meta, f"{path.name}[experiment]")
    protocols = tuple(m.get("protocols", list, list(PROTOCOLS)))
    if not protocols or len(set(protocols)) != len(protocols):
        raise ConfigError(f"{path.name}[experiment].protocols = {list(protocols)!r}: a non-empty list without "
                          f"repeats of {', '.join(PROTOCOLS)}")
    for p in protocols:
        if p not in PROTOCOLS:
            raise ConfigError(f"{path.name}[experiment].protocols: {p!r}; valid: {', '.join(PROTOCOLS)}")
    seeds = tuple(r.get("seeds", list, [0]))
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"{r.where}.seeds = {seeds!r}: expected a non-empty list of integers >= 0")
    blocks = tuple(r.get("blocks", list))
    if not blocks or len(set(blocks)) != len(blocks):
        raise ConfigError(f"{r.where}.blocks = {list(blocks)!r}: a non-empty list without repeats of "
                          f"{', '.join(map(str, EXP1_BLOCKS))}")
    for n in blocks:
        if n not in EXP1_BLOCKS:
            raise ConfigError(f"{r.where}.blocks: {n!r}; valid: {', '.join(map(str, EXP1_BLOCKS))}")
    dataset = r.choice("dataset", EXP1_DATASETS)
    dataset_path = r.get("dataset_path", str, "")
    if dataset == "imagefolder" and not dataset_path:
        raise ConfigError(f"{r.where}: dataset = 'imagefolder' needs dataset_path = 'DIR' (an ImageFolder tree)")

    b = r.sub("base_a")
    base_source = b.choice("source", BASE_A_SOURCES)
    if (base_source == "pretrain") != (dataset == "tiny"):
        raise ConfigError(
            f"{b.where}.source = {base_source!r} does not fit dataset {dataset!r}: 'pretrain' (a Base A trained by "
            "the kit on the tiny source task) goes with dataset 'tiny'; real data needs 'torchvision' or 'file'"
        )
    base_a = BaseA(
        source=base_source,
        weights=b.choice("weights", TORCHVISION_WEIGHTS, "IMAGENET1K_V1"),
        path=b.get("path", str, ""),
        normalization=b.choice("normalization", NORMALIZATIONS, "imagenet"),
        width_mult=b.positive("width_mult", float, 1.0),
        stride8=b.get("stride8", bool, False),
        schedule=_schedule(b.table.get("schedule"), f"{b.where}.schedule") if base_source == "pretrain" else (),
    )
    if base_source == "file" and not base_a.path:
        raise ConfigError(f"{b.where}: source = 'file' needs path = 'FILE.pth' (a MobileNetV2 state_dict)")

    schedules_raw = r.get("schedules", dict)
    schedules = {}
    for family in ("bnb", "anb", "anb_plus"):
        if family not in schedules_raw:
            raise ConfigError(f"{r.where}.schedules: missing {family!r} (needed: bnb, anb, anb_plus)")
        schedules[family] = _schedule(schedules_raw[family], f"{r.where}.schedules.{family}")

    s = r.sub("split")
    split = Split(test=s.fraction("test", 0.2), val=s.fraction("val", 0.1))
    t = r.sub("tiny")
    tiny = TinyData(
        n_source_classes=t.positive("n_source_classes", int, 16),
        n_target_classes=t.positive("n_target_classes", int, 8),
        source_per_class=t.positive("source_per_class", int, 96),
        target_per_class=t.positive("target_per_class", int, 150),
        seed=t.get("seed", int, 0),
    )
    if tiny.n_target_classes > tiny.n_source_classes:
        raise ConfigError(f"{t.where}: n_target_classes must be <= n_source_classes (targets are a subset)")

    from .attacks import BACKENDS

    backends = tuple(r.get("backends", list, ["native"]))
    if not backends or any(b not in BACKENDS for b in backends):
        raise ConfigError(f"{r.where}.backends = {list(backends)!r}; valid: {', '.join(BACKENDS)}")
    eps = r.get("eps", float)
    if not 0.0 < eps <= 1.0:
        raise ConfigError(f"{r.where}.eps = {eps!r}: eps is in pixel units on [0, 1] inputs, so 0 < eps <= 1")
    return Exp1Config(
        name=m.get("name", str, path.stem),
        profile=profile,
        protocols=protocols,
        seeds=seeds,
        dataset=dataset,
        dataset_path=dataset_path,
        image_size=r.positive("image_size", int),
        batch_size=r.positive("batch_size", int),
        eval_batch_size=r.positive("eval_batch_size", int, 256),
        blocks=blocks,
        eps=eps,
        eps_sweep=r.eps_list("eps_sweep", []),
        figure_eps=r.eps_list("figure_eps", []),
        figure_class=r.get("figure_class", str, "0"),
        split=split,
        base_a=base_a,
        schedules=schedules,
        tiny=tiny,
        backends=backends,
        precision=r.choice("precision", PRECISIONS, "auto"), compile=r.get("compile", bool, False),
        pgd_steps=r.positive("pgd_steps", int, 10),
        crosscheck_subset=r.get("crosscheck_subset", int, 64),
        source_file=str(path),
    )


# ------------------------------------------------------------------------------------------------- study 2 ---

EXP2_DATA = ("cifar", "tiny", "cifar10-jpg")
EXP2_DATASETS = ("cifar10", "cifar100")
EXP2_MODELS = ("basenet", "resnet18_transfer", "resnet18_scratch")
PRECISIONS = ("auto", "fp32", "bf16")
RESNET_SOURCES = ("torchvision", "pretrain")
EXP2_TRAININGS = ("clean", "pgd", "nifgsm", "vmifgsm", "fgsm_rs")


@dataclass(frozen=True)
class Setting:
    """One of study 2's four experiments: a dataset, its models and their trainings."""

    id: int
    dataset: str
    models: tuple[str, ...]
    trainings: tuple[str, ...]


@dataclass(frozen=True)
class ResnetPretrained:
    """Where the "transfer" ResNet-18's backbone comes from."""

    source: str  # torchvision: ImageNet weights (IMAGENET1K_V1); pretrain: trained by the kit on a tiny source task
    weights: str = "IMAGENET1K_V1"
    classes: int = 16  # pretrain: classes and images per class of the tiny source task (its own seed)
    per_class: int = 64
    seed: int = 7
    schedule: tuple[Phase, ...] = ()


@dataclass(frozen=True)
class Exp2Config:
    name: str
    profile: str
    protocols: tuple[str, ...]
    seeds: tuple[int, ...]
    data: str
    batch_size: int
    eval_batch_size: int
    eps: float
    step: float
    steps: int
    decay: float
    vmi_samples: int
    vmi_beta: float
    val: float
    crosscheck_subset: int
    backends: tuple[str, ...]
    resnet_input_size: int | None
    clean_schedule: tuple[Phase, ...]
    adv_schedule: tuple[Phase, ...]
    settings: tuple[Setting, ...]
    # Per-model overrides of clean_schedule / adv_schedule ({"clean": ..., "adversarial": ...}); the demo trains
    # ResNet-18 for fewer epochs than BaseNet.
    model_schedules: dict[str, dict[str, tuple[Phase, ...]]] = field(default_factory=dict)
    resnet_pretrained: ResnetPretrained = ResnetPretrained("torchvision")
    tiny_per_class: int = 60
    tiny_classes: dict[str, int] = field(default_factory=dict)
    train_per_class: int | None = None
    precision: str = "auto"
    compile: bool = False
    source_file: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_exp2(experiment: str, profile: str) -> Exp2Config:
    from .attacks import BACKENDS

    path, meta, raw = load_raw(experiment, profile)
    r = _Reader(raw, f"{path.name}[{profile}]")
    m = _Reader(meta, f"{path.name}[experiment]")
    protocols = tuple(m.get("protocols", list, list(PROTOCOLS)))
    if not protocols or any(p not in PROTOCOLS for p in protocols) or len(set(protocols)) != len(protocols):
        raise ConfigError(f"{path.name}[experiment].protocols = {list(protocols)!r}; valid: {', '.join(PROTOCOLS)}")
    seeds = tuple(r.get("seeds", list, [0]))
    if not seeds or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise ConfigError(f"{r.where}.seeds = {seeds!r}: expected a non-empty list of integers >= 0")
    backends = tuple(r.get("backends", list, ["native"]))
    if not backends or any(b not in BACKENDS for b in backends):
        raise ConfigError(f"{r.where}.backends = {list(backends)!r}; valid: {', '.join(BACKENDS)}")
    settings = []
    for i, item in enumerate(r.get("settings", list)):
        s = _Reader(item if isinstance(item, dict) else {}, f"{r.where}.settings[{i}]")
        models = tuple(s.get("models", list))
        trainings = tuple(s.get("trainings", list))
        for model in models:
            if model not in EXP2_MODELS:
                raise ConfigError(f"{s.where}.models: {model!r}; valid: {', '.join(EXP2_MODELS)}")
        for training in trainings:
            if training not in EXP2_TRAININGS:
                raise ConfigError(f"{s.where}.trainings: {training!r}; valid: {', '.join(EXP2_TRAININGS)}")
        if "clean" not in trainings:
            raise ConfigError(f"{s.where}.trainings must include 'clean' (adversarial training starts from it)")
        settings.append(Setting(s.positive("id", int), s.choice("dataset", EXP2_DATASETS), models, trainings))
    if not settings:
        raise ConfigError(f"{r.where}.settings: at least one experiment is needed")
    eps = r.get("eps", float)
    if not 0.0 < eps <= 1.0:
        raise ConfigError(f"{r.where}.eps = {eps!r}: eps is in pixel units on [0, 1] inputs, so 0 < eps <= 1")
    tiny_classes = r.get("tiny_classes", dict, {"cifar10": 10, "cifar100": 20})
    resize = r.get("resnet_input_size", int, 224)
    data = r.choice("data", EXP2_DATA)
    p = r.sub("resnet_pretrained")
    source = p.choice("source", RESNET_SOURCES, "torchvision")
    if (source == "pretrain") != (data == "tiny"):
        raise ConfigError(
            f"{p.where}.source = {source!r} does not fit data {data!r}: 'pretrain' (a ResNet-18 trained by the kit "
            "on a tiny source task) goes with data 'tiny'; real data needs 'torchvision'")
    model_schedules: dict[str, dict[str, tuple[Phase, ...]]] = {}
    ms = r.sub("model_schedules")
    for model, table in ms.table.items():
        if model not in EXP2_MODELS:
            raise ConfigError(f"{ms.where}: {model!r}; valid: {', '.join(EXP2_MODELS)}")
        t = _Reader(table if isinstance(table, dict) else {}, f"{ms.where}.{model}")
        for kind in t.table:
            if kind not in ("clean", "adversarial"):
                raise ConfigError(f"{t.where}: {kind!r}; valid: clean, adversarial")
        model_schedules[model] = {kind: _schedule(t.get(kind, list), f"{t.where}.{kind}") for kind in t.table}
    resnet_pretrained = ResnetPretrained(
        source=source, weights=p.choice("weights", ("IMAGENET1K_V1",), "IMAGENET1K_V1"),
        classes=p.positive("classes", int, 16), per_class=p.positive("per_class", int, 64),
        seed=p.get("seed", int, 7),
        schedule=_schedule(p.get("schedule", list), f"{p.where}.schedule") if source == "pretrain" else ())
    return Exp2Config(
        name=m.get("name", str, path.stem), profile=profile, protocols=protocols, seeds=seeds,
        data=data, batch_size=r.positive("batch_size", int),
        eval_batch_size=r.positive("eval_batch_size", int, 256), eps=eps, step=r.positive("step", float),
        steps=r.positive("steps", int), decay=r.get("decay", float, 1.0), vmi_samples=r.positive("vmi_samples", int, 5),
        vmi_beta=r.positive("vmi_beta", float, 1.5), val=r.fraction("val", 0.1),
        crosscheck_subset=r.get("crosscheck_subset", int, 64), backends=backends,
        resnet_input_size=resize if resize > 0 else None,
        clean_schedule=_schedule(r.get("clean_schedule", list), f"{r.where}.clean_schedule"),
        adv_schedule=_schedule(r.get("adv_schedule", list), f"{r.where}.adv_schedule"),
        settings=tuple(settings), model_schedules=model_schedules, resnet_pretrained=resnet_pretrained,
        tiny_per_class=r.positive("tiny_per_class", int, 60),
        tiny_classes={k: int(v) for k, v in tiny_classes.items()},
        train_per_class=r.get("train_per_class", int, 0) or None, source_file=str(path),
        precision=r.choice("precision", PRECISIONS, "auto"), compile=r.get("compile", bool, False),
    )
