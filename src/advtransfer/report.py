"""The Markdown report of a results folder: tables next to the published numbers, cross-check, checks, figures.

Built from the results files only (cell JSONs, results.csv, figures), so ``advtransfer figures`` can rebuild it
without training.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .crosscheck import to_markdown, write_tables
from .figures import EXP1_FIGURES, summary_table
from .figures_exp2 import exp2_markdown
from .io import atomic_write_text
from .results import read_cells


def _fmt(x: float | None, ci: float | None = None) -> str:
    if x is None:
        return "-"
    return f"{x:.4f}" if ci is None else f"{x:.4f} ± {ci:.4f}"


def _pgd_means(cells: list[dict]) -> dict[tuple[str, str], float]:
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for doc in cells:
        for ev in doc.get("evaluations", []):
            if ev["attack"] == "pgd" and ev["threat"] == "whitebox" and ev["primary"] and ev["backend"] == "native":
                acc[(doc["protocol"], doc["model"])].append(ev["accuracy"])
    return {k: float(np.mean(v)) for k, v in acc.items()}


def write_report(out: Path) -> Path:
    out = Path(out)
    every = read_cells(out)
    cells = [c for c in every if c.get("experiment") == "exp1"]
    lines = ["# advtransfer report", ""]
    if every:
        prov = every[0]["provenance"]
        v = prov["versions"]
        lines += [f"Profile `{every[0]['profile']}`; {len(every)} cells; commit `{prov['git']['commit']}`"
                  f"{' (dirty)' if prov['git']['dirty'] else ''}; device {prov['device_name']}; torch {v['torch']}, "
                  f"torchvision {v['torchvision']}, torchattacks {v['torchattacks']}, "
                  f"ART {v['adversarial-robustness-toolbox']}.", ""]
    if cells:
        table = summary_table(out)
        pgd = _pgd_means(cells)
        eps = table[0]["eps"] if table else None
        lines += ["## Study 1: ImageNet-R / MobileNetV2 block transfer under FGSM", "",
                  f"Accuracy on the test split at the main eps {eps:g} (pixel units); mean ± 95% CI over seeds where "
                  "there are several. Published: the original Keras run (natural / FGSM transfer at eps 0.005); "
                  "comparable only in the paper profile.", ""]
        for protocol in dict.fromkeys(r["protocol"] for r in table):
            lines += [f"### protocol `{protocol}`", "",
                      "| model | natural | FGSM transfer (from Base A) | FGSM white-box | PGD white-box | published "
                      "natural | published transfer |", "|---|---|---|---|---|---|---|"]
            for r in (r for r in table if r["protocol"] == protocol):
                lines.append(f"| {r['model']} | {_fmt(r['natural'], r['natural_ci'])} | "
                             f"{_fmt(r['transfer'], r['transfer_ci'])} | {_fmt(r['whitebox'], r['whitebox_ci'])} | "
                             f"{_fmt(pgd.get((protocol, r['model'])))} | {_fmt(r['published_natural'])} | "
                             f"{_fmt(r['published_adversarial'])} |")
            lines.append("")
        lines += ["### Figures", ""]
        for name in EXP1_FIGURES:
            if (out / "figures" / f"{name}.png").is_file():
                lines.append(f"![{name}](figures/{name}.png)")
        lines.append("")
    exp2 = exp2_markdown(out)
    if exp2:
        lines += [exp2, ""]
    if every:
        rows = [row for doc in every for row in doc.get("crosscheck", [])]
        if rows:
            write_tables(rows, out)
            bad = [r for r in rows if not r["agree"]]
            lines += ["## Cross-check of attack backends", "",
                      f"Each model's first test images attacked through native, torchattacks and ART: "
                      f"{len(rows) - len(bad)} of {len(rows)} comparisons agree."
                      + (" **Disagreements are listed below.**" if bad else ""), "",
                      to_markdown(rows, title="Per model and attack").split("\n", 2)[2]]
        flags = [(doc["cell"], f) for doc in every for f in doc.get("checks", [])]
        lines += ["## Sanity checks", ""]
        if flags:
            lines += [f"- `{cell}` **{f['check']}**: {f['detail']}. {f['meaning']}." for cell, f in flags]
        else:
            lines.append("No check flagged a result (white-box at least as strong as transfer, PGD at least as "
                         "strong as FGSM, accuracy falling with eps).")
        lines.append("")
    return atomic_write_text(out / "report.md", "\n".join(lines))
