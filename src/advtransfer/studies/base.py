"""What a study is to the kit: the :class:`Study` base class, the :class:`Experiment` it runs, and the context a
run gives it.

A study is one package that subclasses :class:`Study` and registers an instance (``@register``, see
:mod:`advtransfer.studies`). It provides, for one experiment config (a TOML file whose ``[experiment] study``
names it):

- ``config_class``: the frozen dataclass its profile tables are read into (one generic reader refuses unknown
  keys, wrong types, non-finite numbers and unsafe names before any work);
- ``plan``: its cells (objects with a ``key``, the stable name of the cell's result file, and a ``unit``: cells
  that share work and must land in the same shard);
- ``preflight`` / ``fetch``: what the run lacks (messages naming the fix) and how to download it;
- ``runner``: a callable computing one cell's result document (resuming from checkpoints, and extending an
  existing document with missing evaluations, e.g. a new attack backend);
- ``figures``, ``report_section``, ``errata``: figures and Markdown from the results table only;
- ``published``, ``claim_key`` and ``claims``: the write-up's numbers and conclusions, judged by
  :mod:`advtransfer.reporting.claims` on the published numbers and on each protocol of ours.

Everything has a default except ``config_class``, ``plan`` and ``runner``, so a minimal study is small.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ..config.experiment import ExperimentFile, deep_merge
from ..config.reader import read
from ..errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from ..reporting.claims import Claim
    from ..results.stats import Estimate
    from ..results.table import EvalKey, Results

Log = Callable[[str], None]


class Cell(Protocol):
    """What the kit needs of a study's cell: a stable key (its result file's name) and its shard unit."""

    @property
    def key(self) -> str: ...

    @property
    def unit(self) -> str: ...


@dataclass(frozen=True)
class Experiment:
    """One experiment config file at one profile, validated: the study that runs it and its config."""

    study: Study
    name: str  # [experiment] name: the prefix of every cell key
    title: str
    profile: str
    source: Path  # the TOML file
    cfg: Any  # an instance of study.config_class

    def with_settings(self, **changes: Any) -> Experiment:
        """The experiment with config fields replaced (command-line overrides such as ``--backends``); a field
        the study does not have is a clear error."""
        if not changes:
            return self
        fields = getattr(type(self.cfg), "__dataclass_fields__", {})
        unknown = [k for k in changes if k not in fields]
        if unknown:
            flags = ", ".join(f"--{k.replace('_', '-')}" for k in unknown)
            raise ConfigError(f"{flags}: study {self.study.name!r} ({self.source.name}) has no such setting")
        return replace(self, cfg=replace(self.cfg, **changes))

    @property
    def backends(self) -> tuple[str, ...]:
        """The attack backends evaluations must have run through (empty for studies without backends)."""
        return tuple(getattr(self.cfg, "backends", ()))


@dataclass(frozen=True)
class RunContext:
    """Where and how a run computes its cells."""

    out: Path
    data_root: Path
    device: torch.device
    log: Log


CellRunner = Callable[[Any, "dict[str, Any] | None"], "dict[str, Any]"]


class Study:
    """Base class of the kit's studies (see the module docstring); subclass, set the class attributes, register
    an instance."""

    name: ClassVar[str]  # the registry name, [experiment] study = NAME in a config
    title: ClassVar[str] = ""
    aliases: ClassVar[tuple[str, ...]] = ()  # other names accepted in configs
    config_class: ClassVar[type]
    # The experiment configs `reproduce-all` runs: names under the kit's experiments/ folder, or paths to .toml files.
    experiments: ClassVar[tuple[str, ...]] = ()
    claims: ClassVar[tuple[Claim, ...]] = ()
    claim_columns: ClassVar[tuple[str, ...]] = ()  # order of the sources in the claims table (protocols)
    # One paper-shaped cell for `advtransfer bench gpu`: a config's TOML text with the placeholders {batch}, {steps},
    # {px}, {epochs}, {per_class} and {vmi}, and a profile "bench" (None: the study offers none).
    bench_cell: ClassVar[str | None] = None

    # ---------------------------------------------------------------------------------------------- config ---

    def load_config(self, file: ExperimentFile, profile: str) -> Any:
        """The profile's config: ``[experiment]``'s study-specific keys (e.g. ``protocols``), then ``[common]``
        and ``[profiles.PROFILE]`` deep-merged, read into ``config_class``."""
        table = deep_merge(file.meta, file.profile_table(profile))
        return read(self.config_class, table, file.profile_where(profile))

    # ----------------------------------------------------------------------------------------------- a run ---

    def plan(self, exp: Experiment) -> list[Cell]:
        raise NotImplementedError

    def preflight(self, exp: Experiment, data_root: Path) -> list[str]:
        """Everything the run needs that is missing, one message each naming the fix (no work, no network)."""
        return []

    def fetch(self, exp: Experiment, data_root: Path) -> list[str]:
        """Download what ``preflight`` finds missing; returns why each failed download failed."""
        return []

    def runner(self, exp: Experiment, run: RunContext) -> CellRunner:
        """``runner(cell, existing)`` computes the cell's result document. ``existing`` is the cell's earlier
        document when it lacks evaluations the experiment asks for (``is_complete`` is false): keep what it has
        and add only what is missing."""
        raise NotImplementedError

    def dependencies(self, exp: Experiment, cell: Cell) -> list[str]:
        """The trainings (checkpoint folder names) ``cell`` needs besides its own: a shared pretraining, the clean
        model an adversarial training starts from. A worker that finds one of them being trained by another
        process computes other cells first instead of waiting (default: none)."""
        return []

    def is_complete(self, exp: Experiment, doc: dict[str, Any]) -> bool:
        """Whether a finished cell's document has everything ``exp`` asks for (default: every attack backend)."""
        return set(exp.backends) <= set(doc.get("backends", exp.backends))

    # -------------------------------------------------------------------------------------------- results ---

    def figures(self, results: Results, root: Path, out_dir: Path) -> list[Path]:
        """Write this study's figures from ``results`` (its rows only) into ``out_dir`` (normally
        ``root/figures``; ``root`` is the results folder, for artefacts a cell wrote); return their paths."""
        return []

    def report_section(self, results: Results, figures: list[Path], root: Path) -> list[str]:
        """Markdown lines of this study's part of the report (figure paths relative to ``root``). The default: one
        table of every evaluation's reference estimate."""
        lines = [f"## {self.title or self.name}", "", "Accuracy with 95% interval (kit's statistics convention, "
                 "`advtransfer.results.stats`).", "",
                 "| experiment | protocol | model | attack | threat | eps | accuracy | seeds |",
                 "|---|---|---|---|---|---|---|---|"]
        for key, est in sorted(results.reference.items(), key=lambda kv: tuple(map(str, kv[0]))):
            lines.append(f"| {key.experiment} | {key.protocol} | {key.model} | {key.attack} | {key.threat} | "
                         f"{key.eps:g} | {est.text()} | {est.n_seeds} |")
        lines.append("")
        lines += [f"![{p.stem}]({p.relative_to(root).as_posix()})" for p in figures if p.suffix == ".png"]
        return [*lines, ""]

    def errata(self, results: Results) -> list[str]:
        """Markdown lines on the original study's defects and how much they move the numbers."""
        return []

    def published(self) -> dict[tuple, Estimate]:
        """The write-up's numbers, by claim key (:meth:`claim_key`)."""
        return {}

    def claim_key(self, key: EvalKey) -> tuple | None:
        """The key under which claims look up an evaluation (None: claims do not use it)."""
        return None

    def claim_label(self, claim_key: tuple) -> str:
        """How claim evidence names a claim key."""
        return "/".join(map(str, claim_key))
