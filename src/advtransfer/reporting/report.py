"""The report of a results folder, as Markdown and as one self-contained HTML page.

Built from the results table alone (:class:`~advtransfer.results.table.Results`, which carries the cell documents)
and the figures just drawn: the report reads nothing from disk itself. Sections: the environment; each registered
study's claims judged on the published numbers and on our protocols; per study its tables and figures; errata on
the originals' defects; the cross-check of attack backends; the sanity-check flags.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..attacks.crosscheck import to_markdown
from ..results.table import Results
from ..studies.base import Study
from . import claims as claims_module
from .claims import PUBLISHED, SUPPORTED
from .curves import curves_section


def build_report(results: Results, studies: Mapping[str, Study], figures: Mapping[str, list[Path]],
                 root: Path, curves: list[Path] = ()) -> str:
    """The report's Markdown. ``studies``: the studies of ``results`` by name (those whose plug-in is missing are
    named in a note); ``figures``: each study's figure files; ``curves``: the training-curve figures; ``root``:
    the folder links are relative to."""
    lines = ["# advtransfer report", ""]
    if results.cells:
        lines += environment(results.cells)
    names = [n for n in results.studies if n]
    missing = [n for n in names if n not in studies]
    if missing:
        lines += [f"Results of study {', '.join(f'`{n}`' for n in missing)} are in this folder but the study is not "
                  "registered here (install its plug-in); they are in results.csv and left out below.", ""]
    present = [(n, studies[n], results.only(n)) for n in names if n in studies]
    lines += _claims([j for _, study, part in present for j in claims_module.judge(study, part)], present,
                     results.profile)
    for name, study, part in present:
        lines += study.report_section(part, list(figures.get(name, [])), root)
    lines += curves_section(list(curves), root)
    errata = [line for _, study, part in present for line in study.errata(part)]
    if errata:
        lines += ["## Errata: defects of the original studies", "",
                  "`as-run` reproduces each defect, `intended` fixes it; their difference is how much the defects "
                  "move the numbers (all defects of a study together: the protocols switch them as one).", "",
                  *errata]
    if results.cells:
        lines += _crosscheck(results) + _sanity(results)
    return "\n".join(lines)


def environment(cells: tuple[dict[str, Any], ...]) -> list[str]:
    provs = [c["provenance"] for c in cells if isinstance(c.get("provenance"), dict)]
    if not provs:
        return []
    prov = provs[0]
    commits = sorted({str((p.get("git") or {}).get("commit")) for p in provs})
    devices = sorted({str(p.get("device_name")) for p in provs})
    dirty = any((p.get("git") or {}).get("dirty") for p in provs)
    rows = [("profile", f"`{cells[0].get('profile', '')}`"), ("cells", str(len(cells))),
            ("commit", ", ".join(f"`{c}`" for c in commits) + (" (uncommitted changes)" if dirty else "")),
            ("device", ", ".join(devices)), ("python", str(prov.get("python", "-"))),
            ("CUDA / cuDNN", f"{prov.get('cuda') or '-'} / {prov.get('cudnn') or '-'}"),
            ("torch threads", ", ".join(sorted({str(p.get("torch_threads", "-")) for p in provs}))),
            ("training precision", ", ".join(sorted({str(p.get("training_precision", "-")) for p in provs}))),
            ("platform", str(prov.get("platform", "-")))]
    rows += [(name, str(version)) for name, version in (prov.get("versions") or {}).items()]
    return ["## Environment", "", "| | |", "|---|---|", *(f"| {k} | {val} |" for k, val in rows), ""]


def _verdict_cell(verdict: str) -> str:
    return f"**{verdict}**" if verdict in (SUPPORTED, "not supported") else verdict


def _claims(judged: list[claims_module.Judged], present, profile: str) -> list[str]:
    if not judged:
        return []
    lines = ["## Claims of the write-ups", "",
             "Each conclusion as the write-up states it, the comparison that tests it, and the verdict on each "
             "source of numbers: the published run, our `as-run` protocol (the original's defects reproduced) and "
             "our `intended` one (done as described). A comparison is decided by the 95% interval of the difference "
             "of two accuracies: an exact McNemar test and interval where both were measured on the same test "
             "images, otherwise the two accuracies' intervals combined; each side shows the mean and interval of "
             "the tables below (`advtransfer.results.stats`, `advtransfer.reporting.claims`).", ""]
    if profile != "paper":
        lines += [f"**Profile `{profile}`: our verdicts are about its data (for `demo`, the built-in tiny stand-in), "
                  "not about the write-ups' claims at paper scale.**", ""]
    names = list(dict.fromkeys(n for j in judged for n in j.verdicts))
    names.sort(key=lambda n: n != PUBLISHED)
    lines += ["| # | claim | test | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    for j in judged:
        verdicts = " | ".join(_verdict_cell(j.verdicts.get(n, ("-", []))[0]) for n in names)
        lines.append(f"| {j.claim.id} | {j.claim.text} | {j.claim.test} | {verdicts} |")
    lines += ["", "<details><summary>The numbers behind each verdict</summary>", ""]
    for j in judged:
        lines.append(f"- **{j.claim.id}**")
        for name in names:
            if name in j.verdicts:
                verdict, evidence = j.verdicts[name]
                lines.append(f"  - {name}: **{verdict}**; " + "; ".join(evidence))
    return [*lines, "", "</details>", ""]


def _crosscheck(results: Results) -> list[str]:
    rows = results.crosscheck_rows
    if not rows:
        return []
    bad = results.disagreements
    return ["## Cross-check of attack backends", "",
            f"Each model's first test images attacked through native, torchattacks and ART: {len(rows) - len(bad)} "
            f"of {len(rows)} comparisons agree." + (" **Disagreements are listed below.**" if bad else ""), "",
            to_markdown(rows, title="Per model and attack").split("\n", 2)[2]]


def _sanity(results: Results) -> list[str]:
    flags = results.sanity_flags
    lines = ["## Sanity checks", ""]
    if flags:
        lines += [f"- `{cell}` **{f['check']}**: {f['detail']}. {f['meaning']}." for cell, f in flags]
    else:
        lines.append("No check flagged a result (white-box at least as strong as transfer, PGD at least as "
                     "strong as FGSM, accuracy falling with eps).")
    return [*lines, ""]
