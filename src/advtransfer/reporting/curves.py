"""Training curves of every study, from the per-epoch history each cell's document keeps (nothing is retrained).

A cell's ``training_log`` holds one or more ``history`` lists (study 1: the model's training; study 2: the clean
training, then the adversarial one that continues from it), each a list of epochs with ``train_loss``,
``train_acc`` and, where the cell validated, ``val_acc``. :func:`histories` finds them whatever their nesting;
:func:`make_curves` draws one figure per experiment, ``figures/curves_<experiment>.{png,pdf}``: loss and accuracy
against the epoch, a panel per protocol, a line per model (and training), the mean over seeds.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..results.table import Results
from .plotting import default_style, new_figure, save_figure


def histories(log: Any, prefix: str = "") -> list[tuple[str, list[dict]]]:
    """(phase label, epochs) of every history in a cell's training log, in order (clean before adversarial)."""
    if not isinstance(log, dict):
        return []
    found = []
    if isinstance(log.get("history"), list) and log["history"]:
        found.append((prefix, [e for e in log["history"] if isinstance(e, dict)]))
    for key, value in log.items():
        if isinstance(value, dict):
            found += histories(value, f"{prefix}/{key}" if prefix else key)
    return found


def _series(cells: tuple[dict, ...]) -> dict[str, dict[str, dict[str, list[list[float]]]]]:
    """experiment -> protocol -> line label -> metric -> one list of per-epoch values per seed."""
    out: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(list))))
    for doc in cells:
        phases = histories(doc.get("training_log"))
        if not phases:
            continue
        epochs = [e for _, phase in phases for e in phase]  # phases continue one another (adversarial after clean)
        label = "/".join(str(doc[k]) for k in ("setting", "model", "training") if doc.get(k) not in (None, ""))
        for metric in ("train_loss", "train_acc", "val_acc"):
            values = [float(e[metric]) if isinstance(e.get(metric), (int, float)) else np.nan for e in epochs]
            if not all(np.isnan(values)):
                out[doc["experiment"]][doc["protocol"]][label][metric].append(values)
    return out


def _mean(runs: list[list[float]]) -> np.ndarray:
    width = max(len(r) for r in runs)
    padded = np.full((len(runs), width), np.nan)
    for i, r in enumerate(runs):
        padded[i, : len(r)] = r
    with np.errstate(all="ignore"):
        return np.nanmean(padded, axis=0)


def make_curves(results: Results, out_dir: Path) -> list[Path]:
    """One curves figure per experiment with training histories; their paths (PNG then PDF)."""
    from matplotlib.ticker import MaxNLocator

    written: list[Path] = []
    data = _series(results.cells)
    with default_style():
        for experiment in sorted(data):
            protocols = sorted(data[experiment], key=lambda p: (p != "intended", p))
            fig = new_figure(5.0 * len(protocols), 6.0)
            axes = fig.subplots(2, len(protocols), squeeze=False, sharex="col")
            for col, protocol in enumerate(protocols):
                lines = data[experiment][protocol]
                colours = dict(zip(sorted(lines), [f"C{i % 10}" for i in range(len(lines))]))
                for label in sorted(lines):
                    metrics = lines[label]
                    for metric, ax, style in (("train_loss", axes[0][col], "-"), ("train_acc", axes[1][col], "-"),
                                              ("val_acc", axes[1][col], "--")):
                        if metric in metrics:
                            y = _mean(metrics[metric])
                            ax.plot(np.arange(1, len(y) + 1), y, style, color=colours[label], linewidth=1.2,
                                    label=label if metric != "val_acc" else None)
                axes[0][col].set_title(f"protocol: {protocol}", fontsize=9)
                axes[0][col].set_ylabel("training loss")
                axes[1][col].set_ylabel("accuracy (solid: train, dashed: val)")
                axes[1][col].set_xlabel("epoch")
                axes[1][col].set_ylim(0, 1)
                for ax in axes[:, col]:
                    ax.grid(alpha=0.3)
                    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
                axes[0][col].legend(fontsize=6, ncol=2, loc="upper right")
            seeds = max((len(runs) for p in data[experiment].values() for m in p.values() for runs in m.values()),
                        default=1)
            fig.suptitle(f"{experiment}: training curves (mean of {seeds} seed{'s' if seeds > 1 else ''})",
                         fontsize=10)
            written += save_figure(fig, out_dir, f"curves_{experiment}")
    return written


def curves_section(figures: list[Path], root: Path) -> list[str]:
    pngs = [p for p in figures if p.suffix == ".png"]
    if not pngs:
        return []
    return ["## Training curves", "", "Loss and accuracy per epoch of every training, from the histories in the "
            "cell files (mean over seeds; study 2's adversarial training continues after its clean epochs).", "",
            *(f"![{p.stem}]({p.relative_to(root).as_posix()})" for p in pngs), ""]
