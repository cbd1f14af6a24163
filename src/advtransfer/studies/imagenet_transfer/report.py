"""Study 1's part of the report: its table next to the published numbers, its figures, and its errata."""

from __future__ import annotations

from pathlib import Path

from ...results.table import Results
from .figures import summarise


def _fmt(est) -> str:
    return "-" if est is None else est.text()


def _fmt_number(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def section(results: Results, figures: list[Path], root: Path) -> list[str]:
    table = summarise(results)
    if not table:
        return []
    eps = next((r["eps"] for r in table if r["eps"] is not None), None)
    lines = ["## Study 1: ImageNet-R / MobileNetV2 block transfer under FGSM", "",
             f"Accuracy on the test split at the main eps {'-' if eps is None else f'{eps:g}'} (pixel units): mean "
             "over seeds and 95% interval "
             "[low, high] (`advtransfer.results.stats`; the figures and the claims use the same numbers). Published: "
             "the original Keras run (natural / FGSM transfer at eps 0.005); comparable only in the paper profile.",
             ""]
    aa = any(r["autoattack"] is not None for r in table)  # the column appears where the results have it
    if aa:
        lines += ["AutoAttack: the standard L-inf suite (APGD-CE, APGD-T, FAB-T, Square) white-box at the main eps, "
                  "at the profile's `robust_eval` setting; beyond the original, which published no such number.", ""]
    for protocol in dict.fromkeys(r["protocol"] for r in table):
        lines += [f"### protocol `{protocol}`", "",
                  "| model | natural | FGSM transfer (from Base A) | FGSM white-box | PGD white-box | "
                  + ("AutoAttack white-box | " if aa else "") + "published natural | published transfer |",
                  "|---|---|---|---|---|---|---|" + ("---|" if aa else "")]
        for r in (r for r in table if r["protocol"] == protocol):
            lines.append(f"| {r['model']} | {_fmt(r['natural'])} | {_fmt(r['transfer'])} | {_fmt(r['whitebox'])} | "
                         f"{_fmt(r['pgd'])} | " + (f"{_fmt(r['autoattack'])} | " if aa else "")
                         + f"{_fmt_number(r['published_natural'])} | {_fmt_number(r['published_adversarial'])} |")
        lines.append("")
    pngs = [p for p in figures if p.suffix == ".png"]
    if pngs:
        lines += ["### Figures", "", *(f"![{p.stem}]({p.relative_to(root).as_posix()})" for p in pngs), ""]
    return lines


ERRATA = [
    "Nothing was re-initialised: Keras' `MobileNetV2(weights='imagenet')` was built for every model, so BnB and the "
    "non-copied layers of AnB / AnB+ started from ImageNet weights, not from random init.",
    "The 1000-way ImageNet head was kept and trained on 200 classes.",
    "The test set was the per-epoch validation set (model selection on test).",
    "eps 0.01 was given in Keras' [-1, 1] input space: 0.005 in [0, 1] pixel units.",
]


def _delta(a, b) -> str:
    return "-" if a is None or b is None else f"{a.mean - b.mean:+.4f}"


def errata(results: Results) -> list[str]:
    table = summarise(results)
    if not table:
        return []
    lines = ["### Study 1", "", *(f"- {e}" for e in ERRATA), ""]
    by = {(r["protocol"], r["model"]): r for r in table}
    if any(p == "as-run" for p, _ in by) and any(p == "intended" for p, _ in by):
        lines += ["| model | natural as-run | natural intended | Δ | FGSM transfer as-run | intended | Δ |",
                  "|---|---|---|---|---|---|---|"]
        for m in dict.fromkeys(m for _, m in by):
            a, i = by.get(("as-run", m)), by.get(("intended", m))
            if a and i:
                lines.append(f"| {m} | {_fmt(a['natural'])} | {_fmt(i['natural'])} | "
                             f"{_delta(a['natural'], i['natural'])} | {_fmt(a['transfer'])} | "
                             f"{_fmt(i['transfer'])} | {_delta(a['transfer'], i['transfer'])} |")
        lines.append("")
    return lines
