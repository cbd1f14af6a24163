"""An experiment file: ``[experiment]`` (which study, its name and title), ``[common]`` and ``[profiles.NAME]``.

A profile's table is ``[common]`` deep-merged with ``[profiles.NAME]`` (:meth:`ExperimentFile.profile_table`); the
study then reads that table into its own dataclass with :func:`.reader.read`. This module checks only the file's
shape: UTF-8, valid TOML, known sections, safe names. Every message is one line that starts with the file name.
"""

from __future__ import annotations

import copy
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigError
from .reader import SAFE_NAME, SafeName, check_safe_name, describe_kind, did_you_mean, short_repr

__all__ = ["ExperimentFile", "deep_merge", "load_experiment_file", "resolve_experiment_path"]

SECTIONS = ("experiment", "common", "profiles")
_RESERVED = ("study", "name", "title")
DOTTED_PATH = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"  # module:attribute


@dataclass(frozen=True)
class ExperimentFile:
    """One experiment file, its shape checked; the profiles' contents are the study's to read."""

    path: Path
    study: str  # a study's registry name (legacy integers 1 / 2 kept as "1" / "2"), or "module:Class", a study of
    # the user's own (see advtransfer.studies)
    name: SafeName  # [experiment] name, or the file stem
    title: str  # [experiment] title, or the name
    meta: dict = field(hash=False)  # the rest of [experiment] (study-specific keys such as protocols), unvalidated
    profiles: tuple[str, ...]  # in file order
    common: dict = field(hash=False)  # [common], possibly empty
    raw_profiles: dict = field(hash=False)  # profile name -> its [profiles.NAME] table, unmerged

    def profile_table(self, profile: str) -> dict:
        """``[common]`` deep-merged with ``[profiles.<profile>]`` (a fresh dict); ConfigError for an unknown one."""
        if profile not in self.raw_profiles:
            raise ConfigError(
                f"{self.path.name}: unknown profile {short_repr(profile)}{did_you_mean(profile, self.profiles) or ';'} "
                f"valid profiles: {', '.join(self.profiles)}"
            )
        return deep_merge(self.common, self.raw_profiles[profile])

    def profile_where(self, profile: str) -> str:
        """The ``where`` to read a profile's table with: ``exp1.toml[demo]``."""
        return f"{self.path.name}[{profile}]"


def deep_merge(base: dict, over: dict) -> dict:
    """A new dict: ``base`` with ``over`` on top; tables merge recursively, lists and scalars replace.

    Neither input is modified, and the result shares no mutable value with them.
    """
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _valid_names(search_dir: Path) -> list[str]:
    try:
        stems = [p.stem for p in search_dir.glob("*.toml") if p.is_file()]
    except OSError:
        return []
    return sorted(s for s in stems if re.fullmatch(SAFE_NAME.regex, s))


def resolve_experiment_path(experiment: str, search_dir: Path) -> Path:
    """The file of ``experiment``: a path if it ends in ``.toml``, else the name of ``search_dir/<name>.toml``."""
    if isinstance(experiment, str) and experiment.endswith(".toml"):
        path = Path(experiment).expanduser()
        if not path.exists():
            raise ConfigError(f"experiment config {path} does not exist")
        if not path.is_file():
            raise ConfigError(f"experiment config {path} is not a regular file")
        return path
    if not isinstance(experiment, str) or not re.fullmatch(SAFE_NAME.regex, experiment):
        raise ConfigError(
            f"experiment {short_repr(experiment)}: an experiment name must be {SAFE_NAME.what}; "
            f"for a file elsewhere give its path ending in .toml"
        )
    path = search_dir / f"{experiment}.toml"
    if path.is_file():
        return path
    valid = _valid_names(search_dir)
    if not valid:
        raise ConfigError(
            f"unknown experiment {experiment!r}: there are no experiment configs (*.toml) in {search_dir}; "
            f"give a path ending in .toml"
        )
    raise ConfigError(
        f"unknown experiment {experiment!r}{did_you_mean(experiment, valid) or ';'} valid: {', '.join(valid)} "
        f"(the .toml files in {search_dir}), or a path ending in .toml"
    )


def _parse(path: Path) -> dict:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read experiment config {path}: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark, as some Windows editors write, is fine
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        first = (str(e).splitlines() or ["parse error"])[0]
        raise ConfigError(f"{path} is not valid TOML: {first}") from None
    except RecursionError:
        raise ConfigError(f"{path.name}: arrays or tables nested too deeply for TOML's parser; an experiment config "
                          f"needs at most {MAX_DEPTH} levels") from None
    if _depth(doc) > MAX_DEPTH:
        raise ConfigError(f"{path.name}: arrays or tables nested more than {MAX_DEPTH} levels deep; no experiment "
                          "config needs that many")
    return doc


MAX_DEPTH = 32  # the kit's schemas nest a few levels; anything deeper is a mistake (and recursion would fail)


def _depth(doc: object) -> int:
    """The nesting depth of TOML values (tables and arrays), computed without recursion."""
    deepest, stack = 0, [(doc, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth + 1)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _table(doc: dict, section: str, file: str) -> dict:
    value = doc.get(section, {})
    if not isinstance(value, dict):
        raise ConfigError(
            f"{file}: {section!r} must be a table ([{section}]), got {describe_kind(value)} ({short_repr(value)})"
        )
    return value


def load_experiment_file(experiment: str, search_dir: Path) -> ExperimentFile:
    """Resolve ``experiment`` (:func:`resolve_experiment_path`), read it and check its shape."""
    path = resolve_experiment_path(experiment, search_dir)
    doc = _parse(path)
    file = path.name
    for key in doc:
        if key not in SECTIONS:
            raise ConfigError(
                f"{file}: unknown section {short_repr(key)}{did_you_mean(key, SECTIONS) or ';'} "
                f"valid sections: {', '.join(SECTIONS)}"
            )

    if "experiment" not in doc:
        raise ConfigError(f"{file}: missing section [experiment] (with study = the study it runs)")
    exp = _table(doc, "experiment", file)
    where = f"{file}[experiment]"
    if "study" not in exp:
        raise ConfigError(f"{where}: missing required key 'study'")
    study = exp["study"]
    if isinstance(study, int) and not isinstance(study, bool) and study >= 0:
        study = str(study)  # legacy: study = 1 / 2
    elif not isinstance(study, str) or not (re.fullmatch(SAFE_NAME.regex, study) or re.fullmatch(DOTTED_PATH, study)):
        raise ConfigError(
            f"{where}.study = {short_repr(study)}: must be the name of a registered study ({SAFE_NAME.what}), "
            "or 'module:Class' for a study of your own"
        )
    if "name" in exp:
        name = check_safe_name(exp["name"], f"{where}.name")
    elif re.fullmatch(SAFE_NAME.regex, path.stem):
        name = path.stem
    else:
        raise ConfigError(
            f"{where}: the file name {path.stem!r} is not a usable experiment name ({SAFE_NAME.what}); "
            f'set name = "..." in [experiment] or rename the file'
        )
    title = exp.get("title", name)
    if not isinstance(title, str):
        raise ConfigError(f"{where}.title = {short_repr(title)}: expected a string, got {describe_kind(title)}")
    meta = {k: v for k, v in exp.items() if k not in _RESERVED}

    common = _table(doc, "common", file)
    profiles_table = _table(doc, "profiles", file)
    for pname, ptable in profiles_table.items():
        if not re.fullmatch(SAFE_NAME.regex, pname):
            raise ConfigError(f"{file}[profiles]: profile name {short_repr(pname)} must be {SAFE_NAME.what}")
        if not isinstance(ptable, dict):
            raise ConfigError(
                f"{file}[profiles.{pname}]: a profile must be a table ([profiles.{pname}]), "
                f"got {describe_kind(ptable)} ({short_repr(ptable)})"
            )
    if not profiles_table:
        raise ConfigError(f"{file}: no profiles; add at least one [profiles.NAME] table")

    return ExperimentFile(
        path=path,
        study=study,
        name=name,
        title=title,
        meta=meta,
        profiles=tuple(profiles_table),
        common=common,
        raw_profiles=dict(profiles_table),
    )
