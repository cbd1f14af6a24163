"""Study 2's figures and tables, from ``results.csv`` only: accuracy per attack for each model and training, one
figure per sub-experiment (setting) with a panel per protocol, and the published numbers beside ours."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

from .figures import ci95
from .io import atomic_write_bytes
from .published import EXP2_ATTACK_ORDER, EXP2_PUBLISHED

PROTOCOL_ORDER = ("intended", "as-run")
TRAINING_ORDER = ("clean", "pgd", "nifgsm", "vmifgsm", "fgsm_rs")


def _collect(results_dir: Path) -> dict:
    """setting -> protocol -> (model, training) -> attack -> [accuracy in %, one per seed]."""
    path = Path(results_dir) / "results.csv"
    acc: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    if not path.is_file():
        return {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("experiment") != "exp2" or not row.get("setting") or row["backend"] not in ("", "native",
                                                                                               "torchattacks"):
                continue
            if row["backend"] == "torchattacks" and row["attack"] in ("fgsm", "pgd"):
                continue  # native is the reference for these two
            attack = "clean" if row["attack"] == "none" else row["attack"]
            acc[int(row["setting"])][row["protocol"]][(row["model"], row["training"])][attack].append(
                100 * float(row["accuracy"]))
    return acc


def _reduce(results_dir: Path, fn) -> dict:
    return {s: {p: {k: {a: fn(v) for a, v in d.items()} for k, d in by_model.items()}
                for p, by_model in by_protocol.items()} for s, by_protocol in _collect(results_dir).items()}


def exp2_table(results_dir: Path) -> dict[int, dict[str, dict[tuple[str, str], dict[str, float]]]]:
    """setting -> protocol -> (model, training) -> attack ('clean', 'pgd', ...) -> accuracy in %, mean over seeds.

    FGSM and PGD come from the native backend when several backends ran (the cross-check covers the others)."""
    return _reduce(results_dir, lambda v: float(np.mean(v)))


def exp2_intervals(results_dir: Path) -> dict[int, dict[str, dict[tuple[str, str], dict[str, float | None]]]]:
    """Like :func:`exp2_table`, the 95% t-interval half-width over seeds (None with one seed)."""
    return _reduce(results_dir, lambda v: ci95(v)[1])


def _profile(results_dir: Path) -> str:
    with open(Path(results_dir) / "results.csv", newline="") as fh:
        return next((r["profile"] for r in csv.DictReader(fh) if r.get("experiment") == "exp2"), "")


def _sorted_models(keys) -> list[tuple[str, str]]:
    return sorted(keys, key=lambda k: (k[0], TRAINING_ORDER.index(k[1]) if k[1] in TRAINING_ORDER else 99))


def make_exp2_figures(results_dir: Path, out_dir: Path | None = None) -> list[Path]:
    table = exp2_table(results_dir)
    if not table:
        return []
    from matplotlib.figure import Figure

    intervals = exp2_intervals(results_dir)
    n_seeds = max((len(v) for by_p in _collect(results_dir).values() for by_m in by_p.values()
                   for d in by_m.values() for v in d.values()), default=1)
    out_dir = Path(out_dir) if out_dir else Path(results_dir) / "figures"
    paper = _profile(results_dir) == "paper"
    written = []
    for setting in sorted(table):
        protocols = [p for p in PROTOCOL_ORDER if p in table[setting]]
        fig = Figure(figsize=(5.5 * len(protocols), 4.2), layout="constrained")
        axes = fig.subplots(1, len(protocols), squeeze=False, sharey=True)[0]
        for ax, protocol in zip(axes, protocols):
            rows = table[setting][protocol]
            keys = _sorted_models(rows)
            width = 0.8 / len(EXP2_ATTACK_ORDER)
            cis = intervals[setting][protocol]
            for j, attack in enumerate(EXP2_ATTACK_ORDER):
                xs = np.arange(len(keys)) + (j - (len(EXP2_ATTACK_ORDER) - 1) / 2) * width
                err = [cis[k].get(attack) for k in keys]
                ax.bar(xs, [rows[k].get(attack, np.nan) for k in keys], width, label=attack,
                       yerr=[np.nan if e is None else e for e in err] if any(e is not None for e in err) else None,
                       capsize=2, error_kw={"elinewidth": 0.8})
                if paper:
                    pub = [EXP2_PUBLISHED.get((setting, k[0] if k[0] != "basenet" or setting != 4 else "basenet100",
                                               k[1]), (np.nan,) * 5)[j] for k in keys]
                    ax.scatter(xs, pub, marker="_", color="k", s=80, zorder=3,
                               label="published" if j == 0 else None)
            ax.set_xticks(np.arange(len(keys)), [f"{m}\n{t}" for m, t in keys], fontsize=8)
            ax.set_title(f"protocol: {protocol}" + (" (attacks crafted on the clean model)"
                                                    if protocol == "as-run" else " (white-box)"), fontsize=9)
            ax.set_ylim(0, 100)
            ax.grid(axis="y", alpha=0.3)
        axes[0].set_ylabel("accuracy (%)")
        axes[-1].legend(fontsize=7, loc="upper right")
        fig.suptitle(f"Study 2, experiment {setting}: accuracy under attack (eps 8/255), clean vs adversarial "
                     "training" + (f"\n(mean of {n_seeds} seeds, 95% CI)" if n_seeds > 1 else ""))
        for ext in ("png", "pdf"):
            import io

            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=150, metadata={"CreationDate": None} if ext == "pdf" else None)
            written.append(atomic_write_bytes(out_dir / f"exp2_setting{setting}.{ext}", buf.getvalue()))
    return written


def exp2_markdown(results_dir: Path) -> str:
    table = exp2_table(results_dir)
    if not table:
        return ""
    lines = ["## Study 2: CIFAR adversarial training, BaseNet and ResNet-18", "",
             "Accuracy (%) on the test split at eps 8/255 (FGSM, PGD, NIFGSM, VMIFGSM). `intended`: every model "
             "attacked white-box; `as-run`: examples crafted on the clean model, ResNet attacks clamping "
             "normalised tensors, as the original. Published: the original's run (CIFAR, 100 epochs); comparable "
             "only in the paper profile.", ""]
    intervals = exp2_intervals(results_dir)
    if any(ci is not None for by_p in intervals.values() for by_m in by_p.values() for d in by_m.values()
           for ci in d.values()):
        lines += ["Several seeds: mean ± 95% CI half-width (t-interval over seeds).", ""]
    for setting in sorted(table):
        lines += [f"### Experiment {setting}", "", "| protocol | model | training | "
                  + " | ".join(EXP2_ATTACK_ORDER) + " | published (" + " / ".join(EXP2_ATTACK_ORDER) + ") |",
                  "|---|---|---|" + "---|" * (len(EXP2_ATTACK_ORDER) + 1)]
        for protocol in [p for p in PROTOCOL_ORDER if p in table[setting]]:
            rows = table[setting][protocol]
            for model, training in _sorted_models(rows):
                cis = intervals[setting][protocol][(model, training)]
                ours = " | ".join(f"{rows[(model, training)].get(a, float('nan')):.2f}"
                                  + (f" ± {cis[a]:.2f}" if cis.get(a) is not None else "") for a in EXP2_ATTACK_ORDER)
                pub_key = (setting, "basenet100" if (model == "basenet" and setting == 4) else model, training)
                pub = EXP2_PUBLISHED.get(pub_key)
                pub_s = " / ".join(f"{v:g}" for v in pub) if pub else "-"
                lines.append(f"| {protocol} | {model} | {training} | {ours} | {pub_s} |")
        lines += ["", f"![experiment {setting}](figures/exp2_setting{setting}.png)", ""]
    return "\n".join(lines)
