"""The results table: built once per command from the cell documents (or, without them, from results.csv), and
aggregated once. Figures, tables, claims, the report and the exit status all read this one object.

Aggregation: the rows of one *evaluation* (same study, experiment, protocol, setting, model, training, attack,
threat, eps and primary flag) over seeds become one :class:`~advtransfer.results.stats.Estimate` per backend.

The backend rule: several attack backends can produce the same evaluation (``--backends native,torchattacks,art``).
Everything downstream of the table (figures, study tables, claims) uses one of them, the **reference backend**:
the first of :data:`BACKEND_PREFERENCE` that produced the evaluation for every one of its seeds (native, the
kit's own and the fast path; torchattacks where native lacks the attack, e.g. NIFGSM/VMIFGSM; ART last). The other
backends' rows stay in results.csv, and the cross-check compares all of them on every model.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import DataError, UserError
from ..io import atomic_write_text
from . import store
from .schema import CSV_COLUMNS, ROW_COLUMNS, Row, rows_of
from .stats import Estimate, SeedResult, estimate

BACKEND_PREFERENCE = ("native", "torchattacks", "art")
CROSSCHECK_DISAGREES = 3  # exit status of a run whose attack backends disagree

# Columns a results.csv must have to be read back (older files lack setting / training / study).
_REQUIRED_CSV = tuple(c for c in ROW_COLUMNS if c not in ("setting", "training"))


class EvalKey(NamedTuple):
    """One evaluation of one model, over seeds and backends."""

    study: str
    experiment: str
    protocol: str
    setting: int | None
    model: str
    training: str
    attack: str
    threat: str
    eps: float
    primary: bool


def eval_key(row: Row) -> EvalKey:
    return EvalKey(row.study, row.experiment, row.protocol, row.setting, row.model, row.training, row.attack,
                   row.threat, row.eps, row.primary)


def _backend_rank(backend: str) -> int:
    return BACKEND_PREFERENCE.index(backend) if backend in BACKEND_PREFERENCE else len(BACKEND_PREFERENCE)


class Results:
    """Rows (typed, with flags when built from cells) and the cell documents of one results folder."""

    def __init__(self, rows: Iterable[Row], cells: Iterable[dict[str, Any]] = (), source: Path | None = None):
        self.rows: tuple[Row, ...] = tuple(rows)
        self.cells: tuple[dict[str, Any], ...] = tuple(cells)
        self.source = source
        for (_study, experiment), profiles in self._profiles.items():
            if len(profiles) > 1:
                raise DataError(f"{source or 'the results'} mix {experiment} results of profiles "
                                f"{', '.join(sorted(profiles))}; averaging them would be meaningless: write each "
                                "profile to its own --out folder")

    # -------------------------------------------------------------------------------------------- building ---

    @classmethod
    def from_cells(cls, out: Path, study_of: Callable[[str], str] | None = None) -> Results:
        """From ``OUT/cells/*.json`` (each read once). ``study_of(experiment)`` names the study of documents
        written before cells recorded it."""
        rows, docs = [], []
        for path, doc in store.read_cells(out):
            study = doc.get("study") or (study_of(str(doc.get("experiment", ""))) if study_of else "")
            rows += rows_of(doc, study, where=str(path))
            docs.append({**doc, "study": study})
        return cls(rows, docs, Path(out))

    @classmethod
    def from_csv(cls, out: Path, study_of: Callable[[str], str] | None = None) -> Results:
        """From ``OUT/results.csv`` alone (no flags, no cell documents), parsed once."""
        path = Path(out) / "results.csv"
        return cls(_parse_csv(path, study_of), (), Path(out))

    @classmethod
    def load(cls, out: Path, study_of: Callable[[str], str] | None = None) -> Results:
        """From the cell documents where the folder has them (the source of truth), else from results.csv."""
        out = Path(out)
        if store.cell_files(out):
            return cls.from_cells(out, study_of)
        if (out / "results.csv").is_file():
            return cls.from_csv(out, study_of)
        raise UserError(f"no results in {out} (no cells/*.json and no results.csv): run `advtransfer run "
                        f"EXPERIMENT --profile PROFILE --out {out}` first")

    def only(self, study: str) -> Results:
        """The rows and cells of one study."""
        return Results([r for r in self.rows if r.study == study], [c for c in self.cells if c.get("study") == study],
                       self.source)

    def select(self, keys: Iterable[str]) -> Results:
        """The rows and cells of the given cell keys."""
        wanted = set(keys)
        return Results([r for r in self.rows if r.cell in wanted], [c for c in self.cells if c.get("cell") in wanted],
                       self.source)

    @property
    def studies(self) -> list[str]:
        return list(dict.fromkeys([r.study for r in self.rows] + [c.get("study", "") for c in self.cells]))

    @cached_property
    def _profiles(self) -> dict[tuple[str, str], set[str]]:
        out: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in self.rows:
            out[(r.study, r.experiment)].add(r.profile)
        return out

    @property
    def profile(self) -> str:
        """The profile of these results ("" when empty; the first when experiments differ)."""
        for profiles in self._profiles.values():
            return sorted(profiles)[0]
        return next((str(c.get("profile", "")) for c in self.cells), "")

    def __bool__(self) -> bool:
        return bool(self.rows)

    # ----------------------------------------------------------------------------------------- aggregating ---

    @cached_property
    def by_backend(self) -> dict[tuple[EvalKey, str], Estimate]:
        """Every evaluation per backend, aggregated over seeds."""
        groups: dict[tuple[EvalKey, str], list[SeedResult]] = defaultdict(list)
        for r in self.rows:
            groups[(eval_key(r), r.backend)].append(SeedResult(r.seed, r.correct, r.n, r.test_set, r.flags))
        return {k: estimate(v) for k, v in groups.items()}

    @cached_property
    def _reference(self) -> dict[EvalKey, tuple[str, Estimate]]:
        seeds: dict[EvalKey, set[int]] = defaultdict(set)
        for r in self.rows:
            seeds[eval_key(r)].add(r.seed)
        chosen: dict[EvalKey, tuple[tuple, str, Estimate]] = {}
        for (key, backend), est in self.by_backend.items():
            complete = {s.seed for s in est.seeds} >= seeds[key]  # a backend that ran for every seed comes first
            rank = (not complete, _backend_rank(backend), backend)
            if key not in chosen or rank < chosen[key][0]:
                chosen[key] = (rank, backend, est)
        return {k: (backend, est) for k, (_, backend, est) in chosen.items()}

    @cached_property
    def reference(self) -> dict[EvalKey, Estimate]:
        """Every evaluation through its reference backend (see the module docstring)."""
        return {k: est for k, (_, est) in self._reference.items()}

    def reference_backend(self, key: EvalKey) -> str:
        return self._reference[key][0] if key in self._reference else ""

    def find(self, **match: Any) -> dict[EvalKey, Estimate]:
        """Reference estimates whose key fields equal ``match`` (e.g. ``model="bnb", threat="natural"``)."""
        return {k: e for k, e in self.reference.items() if all(getattr(k, f) == v for f, v in match.items())}

    def one(self, **match: Any) -> Estimate | None:
        """The single reference estimate matching ``match`` (None when there is none; the first in eps order when
        several match)."""
        found = self.find(**match)
        return found[min(found, key=lambda k: (k.eps, k))] if found else None

    # ------------------------------------------------------------------------------------------ writing ---

    def csv_text(self) -> str:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            est = self.by_backend[(eval_key(r), r.backend)]
            writer.writerow({**r.csv_fields(), "n_seeds": est.n_seeds, "seed_mean": f"{est.mean:.6f}",
                             "ci95_low": f"{est.low:.6f}", "ci95_high": f"{est.high:.6f}"})
        return buf.getvalue()

    def write_csv(self, out: Path) -> Path:
        return atomic_write_text(Path(out) / "results.csv", self.csv_text())

    # ------------------------------------------------------------------------ cross-check, checks, status ---

    @property
    def crosscheck_rows(self) -> list[dict[str, Any]]:
        return [row for doc in self.cells for row in doc.get("crosscheck", [])]

    @property
    def disagreements(self) -> list[dict[str, Any]]:
        return [r for r in self.crosscheck_rows if not r.get("agree", True)]

    @property
    def sanity_flags(self) -> list[tuple[str, dict[str, str]]]:
        return [(doc["cell"], flag) for doc in self.cells for flag in doc.get("checks", [])]

    def exit_status(self) -> int:
        """0, or 3 when the attack backends disagree on any cell of these results."""
        return CROSSCHECK_DISAGREES if self.disagreements else 0


# ------------------------------------------------------------------------------------------------ reading ---


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes"):
        return True
    if t in ("0", "false", "no", ""):
        return False
    raise ValueError(f"expected 0 or 1, got {text!r}")


def _parse_int(text: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"{text!r} is not an integer")
    return int(value)


_REQUIRED = object()  # a column that must not be empty


def _row_from_csv(raw: dict[str, str], study_of: Callable[[str], str] | None) -> Row:
    def get(name: str) -> str:
        return (raw.get(name) or "").strip()

    def parsed(name: str, fn, empty: Any = _REQUIRED):
        text = get(name)
        if text == "" and empty is not _REQUIRED:
            return empty
        try:
            return fn(text)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {name!r}: {exc}") from None

    accuracy = parsed("accuracy", float)
    n = parsed("n", _parse_int)
    if (math.isnan(accuracy) and n != 0) or not (math.isnan(accuracy) or 0.0 <= accuracy <= 1.0):
        raise ValueError(f"column 'accuracy': {accuracy} is not in [0, 1]")
    experiment = get("experiment")
    return Row(
        study=get("study") or (study_of(experiment) if study_of else ""), experiment=experiment,
        profile=get("profile"), protocol=get("protocol"), seed=parsed("seed", _parse_int), model=get("model"),
        family=get("family"), n_blocks=parsed("n_blocks", _parse_int, empty=None), attack=get("attack"),
        threat=get("threat"), source_model=get("source_model"), eps=parsed("eps", float, empty=0.0),
        backend=get("backend"), accuracy=accuracy, correct=parsed("correct", _parse_int),
        n=n, primary=parsed("primary", _parse_bool), cell=get("cell"),
        setting=parsed("setting", _parse_int, empty=None), training=get("training"),
    )


def _parse_csv(path: Path, study_of: Callable[[str], str] | None) -> list[Row]:
    """Rows of a results.csv; a missing file, missing columns or a bad value is one error naming the fix."""
    if not path.is_file():
        raise UserError(f"no results found: there is no {path}; run `advtransfer run EXPERIMENT --profile PROFILE "
                        f"--out {path.parent}` first")
    rows = []
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in _REQUIRED_CSV if c not in header]
            if missing:
                raise UserError(f"{path} is malformed: missing column(s) {', '.join(missing)}; rebuild it from the "
                                f"cell files with `advtransfer figures --results {path.parent}`, or rerun the "
                                "experiment")
            reader.fieldnames = header
            for raw in reader:
                try:
                    row = _row_from_csv(raw, study_of)
                except ValueError as exc:
                    raise DataError(f"{path} line {reader.line_num}: bad value in {exc}") from None
                rows.append(row)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a UTF-8 CSV file ({exc.reason})") from None
    except csv.Error as exc:
        raise DataError(f"{path} is not a valid CSV file ({exc})") from None
    return rows
