"""Study 2's figures and tables, from the results table only: accuracy per attack for each model and training,
one figure per sub-experiment (setting) with a panel per protocol, the published numbers beside ours.

Every number is an :class:`~advtransfer.results.stats.Estimate` of the table (reference backend, mean over seeds,
95% interval), the same one the report's tables and the claims show; figures draw it in %.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ...reporting.plotting import default_style, error_bars, new_figure, save_figure
from ...results.stats import Estimate
from ...results.table import Results
from .published import EXP2_ATTACK_ORDER, EXP2_PUBLISHED

PROTOCOL_ORDER = ("intended", "as-run")
TRAINING_ORDER = ("clean", "pgd", "nifgsm", "vmifgsm", "fgsm_rs")
EXTRA_ATTACKS = ("autoattack",)  # beyond the write-up: drawn and tabulated where the results have them

Table = dict[int, dict[str, dict[tuple[str, str], dict[str, Estimate]]]]


def table(results: Results) -> Table:
    """setting -> protocol -> (model, training) -> attack ('clean', 'pgd', ...) -> Estimate (accuracy in [0, 1])."""
    out: Table = {}
    for key, est in results.reference.items():
        if key.setting is None:
            continue
        attack = "clean" if key.attack == "none" else key.attack
        out.setdefault(key.setting, {}).setdefault(key.protocol, {}).setdefault(
            (key.model, key.training), {})[attack] = est
    return out


def attack_columns(data: Table) -> tuple[str, ...]:
    """The write-up's attacks (clean first, as its tables), then AutoAttack where any model has it."""
    present = {a for s in data.values() for p in s.values() for m in p.values() for a in m}
    return EXP2_ATTACK_ORDER + tuple(a for a in EXTRA_ATTACKS if a in present)


def sorted_models(keys) -> list[tuple[str, str]]:
    return sorted(keys, key=lambda k: (k[0], TRAINING_ORDER.index(k[1]) if k[1] in TRAINING_ORDER else 99))


def _percent(est: Estimate | None) -> Estimate | None:
    return None if est is None else Estimate(100 * est.mean, 100 * est.low, 100 * est.high, est.variance, est.n_seeds,
                                            est.n)


def make_figures(results: Results, out_dir: Path) -> list[Path]:
    data = table(results)
    if not data:
        return []
    n_seeds = max((e.n_seeds for s in data.values() for p in s.values() for m in p.values() for e in m.values()),
                  default=1)
    paper = results.profile == "paper"
    attacks = attack_columns(data)
    written: list[Path] = []
    with default_style():
        for setting in sorted(data):
            protocols = [p for p in PROTOCOL_ORDER if p in data[setting]]
            fig = new_figure(5.5 * len(protocols), 4.2)
            axes = fig.subplots(1, len(protocols), squeeze=False, sharey=True)[0]
            for ax, protocol in zip(axes, protocols):
                rows = data[setting][protocol]
                keys = sorted_models(rows)
                width = 0.8 / len(attacks)
                for j, attack in enumerate(attacks):
                    xs = np.arange(len(keys)) + (j - (len(attacks) - 1) / 2) * width
                    ests = [_percent(rows[k].get(attack)) for k in keys]
                    ax.bar(xs, [np.nan if e is None else e.mean for e in ests], width, label=attack,
                           yerr=error_bars(ests), capsize=2, error_kw={"elinewidth": 0.8})
                    if paper and attack in EXP2_ATTACK_ORDER:  # the write-up published no AutoAttack numbers
                        pub = [EXP2_PUBLISHED.get((setting, k[0], k[1]), (np.nan,) * 5)[j] for k in keys]
                        ax.scatter(xs, pub, marker="_", color="k", s=80, zorder=3,
                                   label="published" if j == 0 else None)
                ax.set_xticks(np.arange(len(keys)), [f"{m}\n{t}" for m, t in keys], fontsize=8)
                ax.set_title(f"protocol: {protocol}" + (" (attacks crafted on the clean model)"
                                                        if protocol == "as-run" else " (white-box)"), fontsize=9)
                ax.set_ylim(0, 100)
                ax.grid(axis="y", alpha=0.3)
            axes[0].set_ylabel("accuracy (%)")
            axes[-1].legend(fontsize=7, loc="upper right")
            seeds = f"mean of {n_seeds} seeds, 95% interval" if n_seeds > 1 else "1 seed, 95% interval"
            fig.suptitle(f"Study 2, experiment {setting}: accuracy under attack (eps 8/255), clean vs adversarial "
                         f"training\n({seeds})")
            written += save_figure(fig, out_dir, f"exp2_setting{setting}")
    return written
