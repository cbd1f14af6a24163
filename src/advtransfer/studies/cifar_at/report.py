"""Study 2's part of the report: a table per experiment next to the published numbers, its figures, its errata."""

from __future__ import annotations

from pathlib import Path

from ...results.stats import Estimate
from ...results.table import Results
from .figures import PROTOCOL_ORDER, attack_columns, sorted_models, table
from .published import EXP2_ATTACK_ORDER, EXP2_PUBLISHED


def _pct(est: Estimate | None) -> str:
    return "-" if est is None else f"{100 * est.mean:.2f} [{100 * est.low:.2f}, {100 * est.high:.2f}]"


def section(results: Results, figures: list[Path], root: Path) -> list[str]:
    data = table(results)
    if not data:
        return []
    columns = attack_columns(data)
    aa = ("AutoAttack (standard L-inf suite APGD-CE, APGD-T, FAB-T, Square, at the profile's `robust_eval` setting; "
          "beyond the write-up, so no published number) follows each protocol's evaluation as PGD does. "
          if "autoattack" in columns else "")
    lines = ["## Study 2: CIFAR adversarial training, BaseNet and ResNet-18", "",
             "Accuracy (%) on the test split at eps 8/255 (FGSM, PGD, NIFGSM, VMIFGSM): mean over seeds and 95% "
             "interval [low, high] (`advtransfer.results.stats`; the figures and the claims use the same numbers). "
             "`intended`: every model attacked white-box; `as-run`: examples crafted on the clean model, ResNet "
             "attacks clamping normalised tensors, as the original. " + aa + "Published: the original's run "
             "(CIFAR, 100 epochs); comparable only in the paper profile.", ""]
    pngs = {p.stem: p for p in figures if p.suffix == ".png"}
    for setting in sorted(data):
        lines += [f"### Experiment {setting}", "", "| protocol | model | training | "
                  + " | ".join(columns) + " | published (" + " / ".join(EXP2_ATTACK_ORDER) + ") |",
                  "|---|---|---|" + "---|" * (len(columns) + 1)]
        for protocol in [p for p in PROTOCOL_ORDER if p in data[setting]]:
            rows = data[setting][protocol]
            for model, training in sorted_models(rows):
                ours = " | ".join(_pct(rows[(model, training)].get(a)) for a in columns)
                pub = EXP2_PUBLISHED.get((setting, model, training))
                pub_s = " / ".join(f"{v:g}" for v in pub) if pub else "-"
                lines.append(f"| {protocol} | {model} | {training} | {ours} | {pub_s} |")
        lines.append("")
        figure = pngs.get(f"exp2_setting{setting}")
        if figure is not None:
            lines += [f"![experiment {setting}]({figure.relative_to(root).as_posix()})", ""]
    return lines


ERRATA = [
    "ResNet attacks ran on ImageNet-normalised tensors that torchattacks clamped to [0, 1]: every below-mean value "
    "was erased and eps was in normalised units (the examples leave the 8/255 ball in pixel space).",
    "Numbers reported after adversarial training were crafted on the *clean* model (a transfer attack), not on "
    "the adversarially trained one (\"white-box\").",
    "The test set doubled as validation; no seeds were set; the PGD step was written 2/225 (a typo for 2/255).",
    "For the transfer ResNet-18, BatchNorm running statistics kept updating while only `fc` was trained.",
]


def errata(results: Results) -> list[str]:
    data = table(results)
    if not data:
        return []
    lines = ["### Study 2", "", *(f"- {e}" for e in ERRATA)]
    clamped = [c["asrun_clamp_fraction"] for c in results.cells if "asrun_clamp_fraction" in c]
    if clamped:
        lines.append(f"- On these test images the clamp changed {100 * min(clamped):.0f}%"
                     + (f" to {100 * max(clamped):.0f}%" if max(clamped) - min(clamped) > 0.005 else "")
                     + " of the normalised input values before any perturbation "
                     "(`advtransfer.models.resnet.fraction_destroyed`).")
    lines += ["", "PGD accuracy (%) as-run vs intended:", "",
              "| experiment | model | training | as-run | intended | Δ (as-run − intended) | what differs |",
              "|---|---|---|---|---|---|---|"]
    for setting in sorted(data):
        asrun, intended = data[setting].get("as-run", {}), data[setting].get("intended", {})
        for key in sorted(set(asrun) & set(intended)):
            a, i = asrun[key].get("pgd"), intended[key].get("pgd")
            if a is None or i is None:
                continue
            why = [w for w, on in (("crafted on the clean model", key[1] != "clean"),
                                   ("clamped normalised tensors", key[0].startswith("resnet18")),
                                   ("test set as validation", True)) if on]
            lines.append(f"| {setting} | {key[0]} | {key[1]} | {_pct(a)} | {_pct(i)} | "
                         f"{100 * (a.mean - i.mean):+.2f} | {'; '.join(why)} |")
    return [*lines, ""]
