"""Everything a results folder derives from its cells, written from one results table: results.csv, the
cross-check tables, every study's figures and the report (Markdown and HTML)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .. import studies
from ..attacks.crosscheck import write_tables
from ..errors import ConfigError
from ..io import atomic_write_text
from ..results.table import Results
from .curves import make_curves
from .html import markdown_to_html
from .report import build_report


@dataclass(frozen=True)
class Outputs:
    results: Results
    csv: Path | None
    figures: list[Path]
    report: Path
    report_html: Path


def load_results(out: Path) -> Results:
    """The results of a folder: from its cell documents (or results.csv alone), studies resolved by the registry."""
    return Results.load(out, studies.study_of_experiment)


def write_outputs(out: Path, results: Results | None = None) -> Outputs:
    """Write results.csv (when the table comes from cells), crosscheck.{json,md}, the figures of every study in
    the results and report.{md,html}, all from one table (built here when not given)."""
    out = Path(out)
    results = load_results(out) if results is None else results
    csv = results.write_csv(out) if results.cells else None
    if results.crosscheck_rows:
        write_tables(results.crosscheck_rows, out)
    known = {}
    for name in results.studies:
        try:
            known[name] = studies.get(name)
        except ConfigError:  # a study whose plug-in is not installed here: its rows stay in results.csv
            continue
    figures = {name: study.figures(results.only(name), out, out / "figures") for name, study in known.items()}
    curves = make_curves(results, out / "figures")
    text = build_report(results, known, figures, out, curves)
    html = atomic_write_text(out / "report.html", markdown_to_html(text, out, title="advtransfer report"))
    md = atomic_write_text(out / "report.md", text)
    return Outputs(results, csv, [p for paths in figures.values() for p in paths] + curves, md, html)
