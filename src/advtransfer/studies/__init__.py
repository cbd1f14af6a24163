"""The study registry: every study the kit can run, found by name.

A study registers itself with ``@register`` on its :class:`~advtransfer.studies.base.Study` subclass (as timm's
``@register_model`` registers a model). The registry finds studies in three places, in this order:

1. the kit's own study packages (:data:`BUILTIN_PACKAGES`), imported when the registry is first used;
2. the ``advtransfer.studies`` entry point group: an installed package that declares
   ``[project.entry-points."advtransfer.studies"] my-study = "my_pkg.study"`` is imported, and its module's
   ``@register`` makes the study known (so a user extends the kit without forking it);
3. a dotted path in an experiment config, ``[experiment] study = "my_pkg.study:MyStudy"`` (module, colon,
   attribute): the module is imported from ``sys.path`` and the attribute, a Study subclass or instance, is
   registered under its ``name``.

The CLI, ``reproduce-all``, shards, the launcher and the report iterate over :func:`all_studies`; nothing outside a
study package names a study.
"""

from __future__ import annotations

import importlib
from importlib import metadata
from pathlib import Path
from typing import TypeVar

from ..config.experiment import load_experiment_file
from ..config.reader import SAFE_NAME, did_you_mean
from ..errors import ConfigError
from .base import Cell, CellRunner, Experiment, RunContext, Study

__all__ = ["BUILTIN_PACKAGES", "ENTRY_POINT_GROUP", "Cell", "CellRunner", "Experiment", "RunContext", "Study",
           "all_studies", "experiments_dir", "get", "load_experiment", "register", "study_of_experiment"]

ENTRY_POINT_GROUP = "advtransfer.studies"
BUILTIN_PACKAGES = ("advtransfer.studies.imagenet_transfer", "advtransfer.studies.cifar_at")

_REGISTRY: dict[str, Study] = {}
_ALIASES: dict[str, str] = {}
_discovered = False

S = TypeVar("S", bound=type[Study])


def experiments_dir() -> Path:
    """The kit's ``experiments/`` folder (beside the package in a source checkout, where configs live)."""
    return Path(__file__).resolve().parents[3] / "experiments"


def register(cls: S) -> S:
    """Class decorator: register an instance of a :class:`Study` subclass under its ``name``."""
    _add(cls())
    return cls


def _add(study: Study) -> Study:
    import re

    name = getattr(study, "name", None)
    if not isinstance(name, str) or not re.fullmatch(SAFE_NAME.regex, name):
        raise ValueError(f"a study's name must be {SAFE_NAME.what}; got {name!r}")
    current = _REGISTRY.get(name)
    if current is not None and type(current) is not type(study):
        raise ValueError(f"two studies are registered as {name!r}: {type(current).__qualname__} and "
                         f"{type(study).__qualname__}")
    _REGISTRY[name] = study
    for alias in study.aliases:
        _ALIASES[alias] = name
    return study


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    for package in BUILTIN_PACKAGES:
        importlib.import_module(package)
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            loaded = ep.load()
        except Exception as exc:  # a broken plug-in must not take the kit down: say which one and why
            raise ConfigError(f"the study plug-in {ep.name!r} ({ep.value}, entry point group {ENTRY_POINT_GROUP}) "
                              f"failed to import: {type(exc).__name__}: {exc}") from None
        _register_loaded(loaded, ep.value)


def _register_loaded(obj: object, where: str) -> Study | None:
    if isinstance(obj, Study):
        return _add(obj)
    if isinstance(obj, type) and issubclass(obj, Study):
        existing = _REGISTRY.get(getattr(obj, "name", ""))
        return existing if existing is not None and type(existing) is obj else _add(obj())
    return None  # a module: its @register decorators have run on import


def _from_dotted_path(path: str) -> Study:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"study {path!r}: cannot import module {module_name!r} ({type(exc).__name__}: {exc}); "
                          "put it on PYTHONPATH or install it") from None
    obj = getattr(module, attribute, None)
    study = _register_loaded(obj, path) if obj is not None else None
    if study is None:
        raise ConfigError(f"study {path!r}: {module_name}.{attribute} is not a Study subclass or instance "
                          "(advtransfer.studies.Study)")
    return study


def get(name: str) -> Study:
    """The study registered as ``name`` (or an alias), or loaded from a ``module:attribute`` path."""
    _discover()
    if ":" in name:
        return _from_dotted_path(name)
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise ConfigError(f"unknown study {name!r}{did_you_mean(name, _REGISTRY) or ';'} registered: "
                          f"{', '.join(sorted(_REGISTRY))} (or 'module:Class' for a study of your own)")
    return _REGISTRY[name]


def all_studies() -> list[Study]:
    _discover()
    return list(_REGISTRY.values())


def load_experiment(experiment: str, profile: str) -> Experiment:
    """An experiment config (a name under ``experiments/`` or a path to a ``.toml`` file) at one profile,
    validated by its study's schema."""
    file = load_experiment_file(experiment, experiments_dir())
    try:
        study = get(file.study)
    except ConfigError as exc:
        raise ConfigError(f"{file.path.name}[experiment].study: {exc}") from None
    cfg = study.load_config(file, profile)
    return Experiment(study, file.name, file.title, profile, file.path, cfg)


def study_of_experiment(experiment: str) -> str:
    """The study of a shipped experiment name (for result files written before cells recorded their study)."""
    for study in all_studies():
        if experiment in study.experiments:
            return study.name
    return ""
