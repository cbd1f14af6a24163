"""What the commands do, independent of argparse: load experiments with command-line overrides, run their grids,
gather the outputs and decide the exit status. The CLI and the SLURM launcher both call these."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import studies
from .attacks import BACKENDS
from .engine.grid import LOCKS_DIR
from .engine.locks import FileLock
from .errors import ConfigError, UserError
from .reporting.outputs import Outputs, write_outputs
from .results.table import Results
from .scale.shards import Shard, shard_cells, units
from .studies.base import Cell, Experiment


@dataclass(frozen=True)
class Overrides:
    """Command-line settings that replace the config's: attack backends, training precision, torch.compile."""

    backends: tuple[str, ...] | None = None
    precision: str | None = None
    compile: bool = False

    def apply(self, exp: Experiment) -> Experiment:
        changes: dict = {}
        if self.backends is not None:
            changes["backends"] = self.backends
        if self.precision:
            changes["precision"] = self.precision
        if self.compile:
            changes["compile"] = True
        return exp.with_settings(**changes)


def parse_backends(text: str | None) -> tuple[str, ...] | None:
    """``--backends native,torchattacks``: a non-empty comma-separated list of known backends, without repeats."""
    if text is None:
        return None
    backends = tuple(b.strip() for b in text.split(","))
    if not text.strip() or any(b not in BACKENDS for b in backends) or len(set(backends)) != len(backends):
        raise ConfigError(f"--backends {text!r}; valid: a comma-separated list of {', '.join(BACKENDS)} without "
                          "repeats, e.g. --backends native,torchattacks,art")
    return backends


def load(experiment: str, profile: str, overrides: Overrides = Overrides()) -> Experiment:
    return overrides.apply(studies.load_experiment(experiment, profile))


def reproduce_all_experiments(profile: str, names: Sequence[str] | None = None,
                              overrides: Overrides = Overrides()) -> list[Experiment]:
    """The experiments ``reproduce-all`` runs: ``names`` if given, else every registered study's experiments that
    have ``profile`` (an experiment without it is skipped with a note; none having it is an error)."""
    if names:
        return [load(n, profile, overrides) for n in names]
    from .config.experiment import load_experiment_file

    chosen, skipped, known = [], [], set()
    for study in studies.all_studies():
        for name in study.experiments:
            file = load_experiment_file(name, studies.experiments_dir())
            known |= set(file.profiles)
            if profile in file.profiles:
                chosen.append(load(name, profile, overrides))
            else:
                skipped.append(name)
    if not chosen:
        raise ConfigError(f"reproduce-all --profile {profile!r}: no registered experiment has that profile; valid: "
                          f"{', '.join(sorted(known)) or 'none'}")
    for name in skipped:
        print(f"reproduce-all: {name} has no profile {profile!r}, skipped", file=sys.stderr)
    return chosen


SPECIAL_FILE_SYSTEMS = ("/proc", "/sys", "/dev")


def check_out(out: Path) -> Path:
    """The output folder, checked before any work: a folder (or a path where one can be created), writable, not
    on a special file system. Nothing is created here (a run that fails its preflight leaves no empty folder)."""
    out = Path(out)
    resolved = out.resolve()
    if any(resolved == Path(fs) or Path(fs) in resolved.parents for fs in SPECIAL_FILE_SYSTEMS):
        raise UserError(f"--out {out} is on the special file system {resolved.parts[0]}{resolved.parts[1]}; give a "
                        "folder on a disk")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} exists and is not a directory; give a folder (it is created if missing)")
    existing = next(p for p in [resolved, *resolved.parents] if p.exists())
    if not existing.is_dir():
        raise UserError(f"--out {out}: {existing} is a file, so no folder can be created under it; give another "
                        "--out")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "it" if existing == resolved else f"its parent {existing}"
        raise UserError(f"--out {out}: {where} is not writable (read-only file system or permissions); give "
                        "another --out")
    return out


def shard_plan(experiments: Sequence[Experiment], shard: Shard | None) -> list[list[Cell]]:
    """Each experiment's cells of ``shard`` (all without one). One round robin over the units of every
    experiment, so shards stay balanced across experiments."""
    selected, offset = [], 0
    for exp in experiments:
        grid = exp.study.plan(exp)
        selected.append(shard_cells(grid, shard, lambda c: c.unit, offset) if shard else grid)
        offset += len(units(grid, lambda c: c.unit))
    return selected


def outputs_lock(out: Path) -> FileLock:
    """Held while results.csv, figures and the report are rebuilt, so that of several processes finishing
    together (shards, two runs of one command) the last to rebuild reads every cell the others wrote."""
    return FileLock(Path(out) / LOCKS_DIR / "outputs.lock", "results.csv, figures and report")


def finish(out: Path) -> int:
    """After a run: results.csv, figures and the report from one table; exit status 3 if the attack backends
    disagreed on any cell of the folder."""
    with outputs_lock(out):
        outputs = write_outputs(out, Results.from_cells(out, studies.study_of_experiment))
    _print_outputs(out, outputs)
    return _status(outputs.results, out)


def finish_shard(out: Path, cells: Sequence[Cell], shard: Shard) -> int:
    """The end of one shard: ``results.csv`` rebuilt from every cell file in ``out`` (figures and the report wait
    for the gather, as concurrent shards would write them at once); exit status 3 if the attack backends
    disagreed on one of this shard's cells."""
    with outputs_lock(out):
        results = Results.from_cells(out, studies.study_of_experiment)
        results.write_csv(out)
    print(f"shard {shard}: {len(cells)} cell(s) finished in {out}; results: {out / 'results.csv'}")
    print(f"when all {shard.count} shards have finished, gather figures and the report: "
          f"advtransfer figures --results {out}")
    return _status(results.select(c.key for c in cells), out)


def _print_outputs(out: Path, outputs: Outputs) -> None:
    if outputs.csv is not None:
        print(f"results: {outputs.csv}")
    for f in outputs.figures:
        print(f"figure:  {f}")
    print(f"report:  {outputs.report} and {outputs.report_html}")


def _status(results: Results, out: Path) -> int:
    bad = results.disagreements
    if bad:
        print(f"advtransfer: error: the attack backends disagree in {len(bad)} comparison(s) (see "
              f"{out / 'crosscheck.md'}): " + "; ".join(f"{r['cell']} {r['attack']} {r['backends']}" for r in bad),
              file=sys.stderr)
    return results.exit_status()
