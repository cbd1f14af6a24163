"""The report of a results folder, as Markdown and as one self-contained HTML page.

Sections: the environment; each conclusion of the write-ups judged supported / not supported / inconclusive on the
published numbers and on our as-run and intended results (``claims``); per study, our tables next to the published
numbers and the figures; errata on the originals' defects with how much each protocol moves the numbers; the
cross-check of attack backends; sanity-check flags. Built from the results files only (cell JSONs, results.csv,
figures), so ``advtransfer figures`` can rebuild it without training.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from .claims import judge_all
from .crosscheck import to_markdown, write_tables
from .figures import EXP1_FIGURES, summary_table
from .figures_exp2 import exp2_markdown, exp2_table
from .io import atomic_write_text
from .report_html import markdown_to_html
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
    table = summary_table(out) if (out / "results.csv").is_file() else []
    lines = ["# advtransfer report", ""]
    if every:
        lines += _environment(every)
    lines += _claims(out, _profile_of(out, every))
    if table:
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
    lines += _errata(out, bool(table))
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
    text = "\n".join(lines)
    atomic_write_text(out / "report.html", markdown_to_html(text, out, title="advtransfer report"))
    return atomic_write_text(out / "report.md", text)


def _profile_of(out: Path, every: list[dict]) -> str:
    if every:
        return every[0]["profile"]
    import csv

    path = out / "results.csv"
    if not path.is_file():
        return ""
    with open(path, newline="") as fh:
        return next((row["profile"] for row in csv.DictReader(fh)), "")


def _environment(every: list[dict]) -> list[str]:
    prov = every[0]["provenance"]
    v = prov["versions"]
    commits = sorted({d["provenance"]["git"]["commit"] for d in every})
    devices = sorted({d["provenance"]["device_name"] for d in every})
    rows = [("profile", f"`{every[0]['profile']}`"), ("cells", str(len(every))),
            ("commit", ", ".join(f"`{c}`" for c in commits)
             + (" (uncommitted changes)" if any(d["provenance"]["git"]["dirty"] for d in every) else "")),
            ("device", ", ".join(devices)), ("python", prov["python"]),
            ("CUDA / cuDNN", f"{prov.get('cuda') or '-'} / {prov.get('cudnn') or '-'}"),
            ("platform", prov.get("platform", "-"))]
    rows += [(name, str(version)) for name, version in v.items()]
    return ["## Environment", "", "| | |", "|---|---|", *(f"| {k} | {val} |" for k, val in rows), ""]


def _claims(out: Path, profile: str) -> list[str]:
    judged = judge_all(out)
    if not judged:
        return []
    lines = ["## Claims of the write-ups", "",
             "Each conclusion as the write-up states it, the comparison that tests it, and the verdict on three "
             "sources of numbers: the published run, our `as-run` protocol (the original's defects reproduced) and "
             "our `intended` one (done as described). A comparison is decided by a 95% interval on the difference "
             "of two accuracies (binomial over the test images, or over seeds where that is wider); see "
             "`advtransfer.claims`.", ""]
    if profile != "paper":
        lines += [f"**Profile `{profile}`: our verdicts are about its data (for `demo`, the built-in tiny stand-in), "
                  "not about the write-ups' claims at paper scale.**", ""]
    names = ["published", "as-run", "intended"]
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
    lines += ["", "</details>", ""]
    return lines


def _verdict_cell(verdict: str) -> str:
    return f"**{verdict}**" if verdict in ("supported", "not supported") else verdict


_EXP1_ERRATA = [
    "Nothing was re-initialised: Keras' `MobileNetV2(weights='imagenet')` was built for every model, so BnB and the "
    "non-copied layers of AnB / AnB+ started from ImageNet weights, not from random init.",
    "The 1000-way ImageNet head was kept and trained on 200 classes.",
    "The test set was the per-epoch validation set (model selection on test).",
    "eps 0.01 was given in Keras' [-1, 1] input space: 0.005 in [0, 1] pixel units.",
]
_EXP2_ERRATA = [
    "ResNet attacks ran on ImageNet-normalised tensors that torchattacks clamped to [0, 1]: every below-mean value "
    "was erased and eps was in normalised units (the examples leave the 8/255 ball in pixel space).",
    "Numbers reported after adversarial training were crafted on the *clean* model (a transfer attack), not on "
    "the adversarially trained one (\"white-box\").",
    "The test set doubled as validation; no seeds were set; the PGD step was written 2/225 (a typo for 2/255).",
    "For the transfer ResNet-18, BatchNorm running statistics kept updating while only `fc` was trained.",
]


def _errata(out: Path, has_exp1: bool) -> list[str]:
    exp2 = exp2_table(out)
    if not has_exp1 and not exp2:
        return []
    lines = ["## Errata: defects of the original studies", "",
             "`as-run` reproduces each defect, `intended` fixes it; their difference is how much the defects move "
             "the numbers (all defects of a study together: the protocols switch them as one).", ""]
    if has_exp1:
        lines += ["### Study 1", "", *(f"- {e}" for e in _EXP1_ERRATA), ""]
        table = {(r["protocol"], r["model"]): r for r in summary_table(out)}
        models = list(dict.fromkeys(m for _, m in table))
        if any(p == "as-run" for p, _ in table) and any(p == "intended" for p, _ in table):
            lines += ["| model | natural as-run | natural intended | Δ | FGSM transfer as-run | intended | Δ |",
                      "|---|---|---|---|---|---|---|"]
            for m in models:
                a, i = table.get(("as-run", m)), table.get(("intended", m))
                if a and i:
                    lines.append(f"| {m} | {_fmt(a['natural'])} | {_fmt(i['natural'])} | "
                                 f"{_delta(a['natural'], i['natural'])} | {_fmt(a['transfer'])} | "
                                 f"{_fmt(i['transfer'])} | {_delta(a['transfer'], i['transfer'])} |")
            lines.append("")
    if exp2:
        lines += ["### Study 2", "", *(f"- {e}" for e in _EXP2_ERRATA), "",
                  "PGD accuracy (%) as-run vs intended:", "",
                  "| experiment | model | training | as-run | intended | Δ (as-run − intended) | what differs |",
                  "|---|---|---|---|---|---|---|"]
        for setting in sorted(exp2):
            asrun, intended = exp2[setting].get("as-run", {}), exp2[setting].get("intended", {})
            for key in sorted(set(asrun) & set(intended)):
                a, i = asrun[key].get("pgd"), intended[key].get("pgd")
                if a is None or i is None:
                    continue
                why = [w for w, on in (("crafted on the clean model", key[1] != "clean"),
                                       ("clamped normalised tensors", key[0].startswith("resnet18")),
                                       ("test set as validation", True)) if on]
                lines.append(f"| {setting} | {key[0]} | {key[1]} | {a:.2f} | {i:.2f} | {a - i:+.2f} | "
                             f"{'; '.join(why)} |")
        lines.append("")
    return lines


def _delta(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{a - b:+.4f}"
