"""Study 1's figures, from the results table only (it never trains or attacks anything).

The original write-up's three figures:

* ``exp1_eps_choice``: the clean image, then per eps the perturbation and the adversarial image (from the
  eps-choice artefact a Base A cell writes);
* ``exp1_transfer_performance``: natural accuracy against the number of transferred blocks N;
* ``exp1_adversarial_performance``: natural, FGSM transfer and FGSM white-box accuracy per model at the main eps.

Every number drawn is an :class:`~advtransfer.results.stats.Estimate` of the table (reference backend, mean over
seeds, 95% interval as asymmetric error bars), the same one the report's tables and the claims show.
"""

from __future__ import annotations

import math
import re
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import DataError
from ...reporting.plotting import default_style, error_bars, save_figure
from ...reporting.plotting import new_figure as _new_figure
from ...results.table import Results
from .published import EXP1_PUBLISHED, EXP1_PUBLISHED_EPS

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

# Stable figure stems; each is written as <stem>.png and <stem>.pdf.
EXP1_FIGURES: tuple[str, ...] = ("exp1_eps_choice", "exp1_transfer_performance", "exp1_adversarial_performance")

PUBLISHED_LABEL = "published (Keras, ImageNet-R)"
PROTOCOL_ORDER: tuple[str, ...] = ("intended", "as-run")
THREATS: tuple[str, ...] = ("natural", "transfer", "whitebox")
DATASET_LABELS = {"imagenet-r": "ImageNet-R, 200 classes", "tiny": "built-in tiny target task",
                  "imagefolder": "your image folder"}

_MODEL_RE = re.compile(r"^a(\d+)b(_plus)?$")
_COLOURS = {"natural": "#4C72B0", "transfer": "#DD8452", "whitebox": "#C44E52"}
_FAMILY_STYLE = {  # colour, marker
    "anb": ("#4C72B0", "o"),
    "anb_plus": ("#DD8452", "s"),
    "bnb": ("#55A868", "^"),
    "base_a": ("#8172B3", "D"),
}
_PUBLISHED_COLOUR = "0.45"


# ----------------------------------------------------------------------------------------------------------------
# The numbers: one entry per (protocol, model), from the table
# ----------------------------------------------------------------------------------------------------------------


def model_sort_key(model: str) -> tuple[int, int, int, str]:
    """base_a, bnb, a4b, a4b_plus, a8b, a8b_plus, ... (by N), then anything else alphabetically."""
    if model == "base_a":
        return (0, 0, 0, model)
    if model == "bnb":
        return (1, 0, 0, model)
    m = _MODEL_RE.match(model)
    if m:
        return (2, int(m.group(1)), 1 if m.group(2) else 0, model)
    return (3, 0, 0, model)


def _protocol_sort_key(protocol: str) -> tuple[int, str]:
    return (PROTOCOL_ORDER.index(protocol), "") if protocol in PROTOCOL_ORDER else (len(PROTOCOL_ORDER), protocol)


def summarise(results: Results) -> list[dict[str, Any]]:
    """One dict per (protocol, model), ordered by protocol then model: ``natural``, ``transfer`` (FGSM crafted on
    Base A), ``whitebox`` (FGSM) at the main eps, ``pgd`` and ``autoattack`` (white-box at the main eps), each an
    Estimate or
    None; ``eps`` (the main eps), ``n_seeds``, ``family``, ``n_blocks``, ``profile``, ``transfer_drop``
    ((natural - transfer) / natural), and the published pair."""
    families: dict[str, tuple[str, int | None]] = {}
    for r in results.rows:
        families.setdefault(r.model, (r.family, r.n_blocks))
    entries: dict[tuple[str, str], dict[str, Any]] = {}
    main_eps: dict[tuple[str, str, str], set[float]] = {}
    for key, est in results.reference.items():
        if key.threat == "natural":
            kind = "natural"
        elif key.primary and key.threat in ("transfer", "whitebox") and key.attack == "fgsm":
            kind = key.threat
            main_eps.setdefault((key.protocol, key.model, kind), set()).add(key.eps)
        elif key.primary and key.threat == "whitebox" and key.attack == "pgd":
            kind = "pgd"
        elif key.primary and key.threat == "whitebox" and key.attack == "autoattack":
            kind = "autoattack"
        else:
            continue
        entry = entries.setdefault((key.protocol, key.model), {"protocol": key.protocol, "model": key.model})
        entry[kind] = est
        if kind in ("transfer", "whitebox"):
            entry["eps"] = key.eps
    for (protocol, model, kind), eps_set in main_eps.items():
        if len(eps_set) > 1:
            raise DataError(f"the results flag several eps as primary for {protocol}/{model}/{kind}: "
                            f"{', '.join(f'{e:g}' for e in sorted(eps_set))}; exactly one eps must be primary")
    table = []
    for (protocol, model) in sorted(entries, key=lambda pm: (_protocol_sort_key(pm[0]), model_sort_key(pm[1]))):
        e = entries[(protocol, model)]
        for kind in (*THREATS, "pgd", "autoattack"):
            e.setdefault(kind, None)
        e.setdefault("eps", None)
        e["family"], e["n_blocks"] = families.get(model, ("", None))
        e["profile"] = results.profile
        e["n_seeds"] = max((x.n_seeds for x in (e[k] for k in (*THREATS, "pgd", "autoattack")) if x is not None),
                           default=0)
        nat, adv = e["natural"], e["transfer"]
        e["transfer_drop"] = (nat.mean - adv.mean) / nat.mean if nat is not None and adv is not None and nat.mean \
            else None
        pub = EXP1_PUBLISHED.get(model)
        e["published_natural"] = pub[0] if pub else None
        e["published_adversarial"] = pub[1] if pub else None
        e["published_eps"] = EXP1_PUBLISHED_EPS
        table.append(e)
    return table


def _mean(est) -> float | None:
    return None if est is None else est.mean


def dataset_label(results: Results) -> str:
    datasets = {str((c.get("data") or {}).get("dataset", "")) for c in results.cells} - {""}
    return ", ".join(DATASET_LABELS.get(d, d) for d in sorted(datasets)) or "target task"


# ----------------------------------------------------------------------------------------------------------------
# The eps-choice artefact
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpsChoice:
    image: np.ndarray  # (3, H, W) in [0, 1]
    eps: np.ndarray  # (k,) pixel units
    adversarial: np.ndarray  # (k, 3, H, W) in [0, 1]
    pred_names: list[str]  # k + 1: clean first
    pred_conf: np.ndarray  # (k + 1,)
    true_name: str
    path: Path


def find_eps_choice(results: Results, results_dir: Path) -> Path | None:
    """The eps-choice artefact to plot: the one a Base A cell of these results recorded (the intended protocol's
    first, by cell key), else, for results read from results.csv alone, the first ``artifacts/EXPERIMENT-*
    eps_choice.npz`` of these results' experiments (intended first). None if there is none."""
    recorded = sorted((c.get("protocol") != "intended", c["cell"], c["artifacts"]["eps_choice"]) for c in results.cells
                      if isinstance(c.get("artifacts"), dict) and c["artifacts"].get("eps_choice"))
    if recorded:
        return Path(results_dir) / recorded[0][2]
    art = Path(results_dir) / "artifacts"
    experiments = {r.experiment for r in results.rows}
    found = sorted(p for p in art.glob("*eps_choice.npz")
                   if p.is_file() and any(p.name.startswith(f"{e}-") for e in experiments)) if art.is_dir() else []
    intended = [p for p in found if "intended" in p.name]
    return (intended or found or [None])[0]


def load_eps_choice(path: Path | str) -> EpsChoice:
    """Load and validate an eps-choice artefact; :class:`DataError` if it is unreadable or malformed."""
    path = Path(path)
    fix = "delete it and rerun `advtransfer run exp1` to rewrite it"
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [
                k for k in ("image", "eps", "adversarial", "pred_names", "pred_conf", "true_name") if k not in z
            ]
            if missing:
                raise DataError(f"eps-choice artefact {path} lacks array(s) {', '.join(missing)}; {fix}")
            image = np.asarray(z["image"], dtype=np.float32)
            eps = np.asarray(z["eps"], dtype=np.float32).reshape(-1)
            adversarial = np.asarray(z["adversarial"], dtype=np.float32)
            pred_names = [str(s) for s in np.asarray(z["pred_names"]).reshape(-1)]
            pred_conf = np.asarray(z["pred_conf"], dtype=np.float32).reshape(-1)
            true_arr = np.asarray(z["true_name"]).reshape(-1)
    except DataError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"cannot read eps-choice artefact {path} ({exc}); {fix}") from None
    k = eps.shape[0]
    problems = []
    if image.ndim != 3 or image.shape[0] != 3:
        problems.append(f"image has shape {image.shape}, expected (3, H, W)")
    elif adversarial.shape != (k, *image.shape):
        problems.append(f"adversarial has shape {adversarial.shape}, expected {(k, *image.shape)}")
    if len(pred_names) != k + 1:
        problems.append(f"pred_names has {len(pred_names)} entries, expected {k + 1}")
    if pred_conf.shape[0] != k + 1:
        problems.append(f"pred_conf has {pred_conf.shape[0]} entries, expected {k + 1}")
    if true_arr.size != 1:
        problems.append(f"true_name has {true_arr.size} entries, expected 1")
    if problems:
        raise DataError(f"eps-choice artefact {path} is malformed: {'; '.join(problems)}; {fix}")
    return EpsChoice(image, eps, adversarial, pred_names, pred_conf, str(true_arr[0]), path)


def _hwc(chw: np.ndarray) -> np.ndarray:
    return np.clip(np.transpose(chw, (1, 2, 0)), 0.0, 1.0)


def _wrap(text: str, width: int = 24) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


# ----------------------------------------------------------------------------------------------------------------
# Plotting (each returns a Figure; nothing global is touched)
# ----------------------------------------------------------------------------------------------------------------


def _fmt_eps(e: float) -> str:
    return f"{float(e):.6g}"


def plot_eps_choice(choice: EpsChoice) -> Figure:
    """Clean image, then per eps the perturbation (0.5 + delta / (2 eps), clipped) and the adversarial image."""
    k = choice.eps.shape[0]
    ncols = 1 + 2 * k
    fig = _new_figure(1.75 * ncols, 2.5)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    fs = 7
    axes[0].imshow(_hwc(choice.image), interpolation="nearest")
    axes[0].set_title(
        f"clean (true: {_wrap(choice.true_name, 18)})\n"
        f"pred: {_wrap(choice.pred_names[0])} (conf {float(choice.pred_conf[0]):.2f})",
        fontsize=fs,
    )
    for i in range(k):
        e = float(choice.eps[i])
        delta = choice.adversarial[i] - choice.image
        shown = 0.5 + delta / (2 * e) if e > 0 else np.full_like(delta, 0.5)
        ax_p, ax_a = axes[1 + 2 * i], axes[2 + 2 * i]
        ax_p.imshow(_hwc(shown), interpolation="nearest")
        ax_p.set_title(f"perturbation\neps={_fmt_eps(e)} (pixel) / {_fmt_eps(2 * e)} in [-1,1]", fontsize=fs)
        ax_a.imshow(_hwc(choice.adversarial[i]), interpolation="nearest")
        ax_a.set_title(
            f"adversarial eps={_fmt_eps(e)}\npred: {_wrap(choice.pred_names[i + 1])} "
            f"(conf {float(choice.pred_conf[i + 1]):.2f})",
            fontsize=fs,
        )
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle("FGSM on Base A (MobileNetV2): choice of eps", fontsize=9)
    return fig


def _by_protocol(table: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for entry in sorted(table, key=lambda e: (_protocol_sort_key(e["protocol"]), model_sort_key(e["model"]))):
        out.setdefault(entry["protocol"], []).append(entry)
    return out


def _is_paper(table: list[dict[str, Any]]) -> bool:
    return bool(table) and all(e.get("profile") == "paper" for e in table)


def _n_seeds_text(entries: list[dict[str, Any]]) -> str:
    n = max((e["n_seeds"] for e in entries), default=0)
    return "1 seed, 95% interval" if n == 1 else f"mean of {n} seeds, 95% interval"


def _hollow(ax, x, y, marker: str, label: str | None) -> None:
    ax.plot(
        x, y, linestyle="none", marker=marker, markersize=8, markerfacecolor="none",
        markeredgecolor=_PUBLISHED_COLOUR, markeredgewidth=1.3, label=label, zorder=5,
    )  # fmt: skip


def plot_transfer_performance(table: list[dict[str, Any]], show_published: bool | None = None,
                              ylabel: str = "ImageNet-R, 200 classes") -> Figure:
    """Natural accuracy against N, one subplot per protocol: AnB and AnB+ lines, BnB dashed, Base A dotted.

    ``show_published`` defaults to "the profile is paper"; published numbers are then hollow grey markers.
    """
    if show_published is None:
        show_published = _is_paper(table)
    groups = _by_protocol(table)
    fig = _new_figure(5.0 * max(1, len(groups)), 4.3)
    axes = fig.subplots(1, max(1, len(groups)), squeeze=False, sharey=True)[0]
    all_n = sorted(
        {e["n_blocks"] for e in table if e["family"] in ("anb", "anb_plus") and e["n_blocks"] is not None}
    )
    published_labelled = False
    for ax, (protocol, entries) in zip(axes, groups.items()):
        for fam, name in (("anb", "AnB (frozen)"), ("anb_plus", "AnB+ (fine-tuned)")):
            pts = sorted(
                (
                    e
                    for e in entries
                    if e["family"] == fam and e["n_blocks"] is not None and e["natural"] is not None
                ),
                key=lambda e: e["n_blocks"],
            )
            if not pts:
                continue
            colour, marker = _FAMILY_STYLE[fam]
            x = [e["n_blocks"] for e in pts]
            y = [e["natural"].mean for e in pts]
            ax.errorbar(
                x, y, yerr=error_bars(e["natural"] for e in pts), color=colour, marker=marker, capsize=3,
                label=name,
            )  # fmt: skip
        for fam, name, ls in (("bnb", "BnB (target, scratch)", "--"), ("base_a", "Base A (source)", ":")):
            e = next((e for e in entries if e["family"] == fam and e["natural"] is not None), None)
            if e is None:
                continue
            colour, _marker = _FAMILY_STYLE[fam]
            ax.axhline(e["natural"].mean, color=colour, linestyle=ls, linewidth=1.6, label=name)
            ax.axhspan(e["natural"].low, e["natural"].high, color=colour, alpha=0.12)
        if show_published:
            for e in entries:
                pub = e["published_natural"]
                if pub is None:
                    continue
                _colour, marker = _FAMILY_STYLE.get(e["family"], ("k", "o"))
                xs = [e["n_blocks"]] if e["family"] in ("anb", "anb_plus") else all_n
                if not xs or xs == [None]:
                    continue
                if not published_labelled:  # one legend entry, a hollow circle, for all published markers
                    _hollow(ax, [], [], "o", PUBLISHED_LABEL)
                    published_labelled = True
                _hollow(ax, xs, [pub] * len(xs), marker, None)
        ax.set_title(f"protocol: {protocol}", fontsize=10)
        ax.set_xlabel("N (blocks transferred from Base A)")
        if all_n:
            ax.set_xticks(all_n)
            pad = max(1.0, 0.15 * (all_n[-1] - all_n[0]))
            ax.set_xlim(all_n[0] - pad, all_n[-1] + pad)
        ax.set_ylim(0.0, 1.0)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel(f"natural accuracy ({ylabel})")
    handles, labels = _legend_entries(axes)
    order = ["AnB (frozen)", "AnB+ (fine-tuned)", "BnB (target, scratch)", "Base A (source)", PUBLISHED_LABEL]
    ranked = sorted(zip(handles, labels), key=lambda hl: order.index(hl[1]) if hl[1] in order else len(order))
    if ranked:
        fig.legend(*zip(*ranked), loc="outside lower center", ncol=min(5, len(ranked)), fontsize=8, frameon=False)
    fig.suptitle(f"Transfer performance of MobileNetV2 blocks ({_n_seeds_text(table)})", fontsize=11)
    return fig


def plot_adversarial_performance(table: list[dict[str, Any]], show_published: bool | None = None) -> Figure:
    """Grouped bars per model (natural, FGSM transfer, FGSM white-box at the main eps), one subplot per protocol,
    with the relative drop of transfer accuracy ``(nat - adv) / nat`` above each group."""
    if show_published is None:
        show_published = _is_paper(table)
    groups = _by_protocol(table)
    n_models = max((len(v) for v in groups.values()), default=1)
    fig = _new_figure(max(5.0, 0.95 * n_models + 1.5) * max(1, len(groups)), 4.5)
    axes = fig.subplots(1, max(1, len(groups)), squeeze=False, sharey=True)[0]
    width = 0.27
    eps_values = sorted({e["eps"] for e in table if e["eps"] is not None})
    pub_adv_comparable = any(math.isclose(e, EXP1_PUBLISHED_EPS, rel_tol=1e-6) for e in eps_values)
    published_labelled = False
    ymax = 1.0
    for ax, (protocol, entries) in zip(axes, groups.items()):
        x = np.arange(len(entries), dtype=float)
        for j, (threat, name) in enumerate(
            (("natural", "natural"), ("transfer", "FGSM transfer (from Base A)"), ("whitebox", "FGSM white-box"))
        ):
            heights = [e[threat].mean if e[threat] is not None else 0.0 for e in entries]
            ax.bar(
                x + (j - 1) * width, heights, width, color=_COLOURS[threat], label=name,
                yerr=error_bars(e[threat] for e in entries), capsize=2, error_kw={"linewidth": 0.8},
            )  # fmt: skip
        for i, e in enumerate(entries):
            top = max(
                [e[t].high if e[t] is not None else 0.0 for t in THREATS]
                + ([e["published_natural"] or 0.0] if show_published else [])
            )
            ymax = max(ymax, top + 0.1)
            if e["transfer_drop"] is not None:
                ax.annotate(
                    f"{-100 * e['transfer_drop']:+.0f}%",
                    (x[i], top), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom", fontsize=7,
                )  # fmt: skip
            if show_published:
                if e["published_natural"] is not None:
                    _hollow(ax, [x[i] - width], [e["published_natural"]], "o",
                            None if published_labelled else PUBLISHED_LABEL)  # fmt: skip
                    published_labelled = True
                if e["published_adversarial"] is not None and pub_adv_comparable:
                    _hollow(ax, [x[i]], [e["published_adversarial"]], "o",
                            None if published_labelled else PUBLISHED_LABEL)  # fmt: skip
                    published_labelled = True
        ax.set_xticks(x, [_display_model(e["model"]) for e in entries], fontsize=8)
        ax.set_title(f"protocol: {protocol}", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    for ax in axes:
        ax.set_ylim(0.0, ymax)
    axes[0].set_ylabel("accuracy")
    handles, labels = _legend_entries(axes)
    ranked = sorted(zip(handles, labels), key=lambda hl: hl[1] == PUBLISHED_LABEL)  # published last
    if ranked:
        fig.legend(*zip(*ranked), loc="outside lower center", ncol=len(ranked), fontsize=8, frameon=False)
    eps_text = (
        ", ".join(f"eps={_fmt_eps(e)} (pixel) / {_fmt_eps(2 * e)} in [-1,1]" for e in eps_values) or "no FGSM"
    )
    fig.suptitle(
        f"FGSM robustness at {eps_text} ({_n_seeds_text(table)}); % = relative drop of transfer accuracy",
        fontsize=10,
    )
    return fig


def _legend_entries(axes) -> tuple[list, list[str]]:
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    return handles, labels


def _display_model(model: str) -> str:
    if model == "base_a":
        return "Base A"
    if model == "bnb":
        return "BnB"
    m = _MODEL_RE.match(model)
    if m:
        return f"A{m.group(1)}B" + ("+" if m.group(2) else "")
    return model


# ----------------------------------------------------------------------------------------------------------------
# Entry point
# ----------------------------------------------------------------------------------------------------------------


def make_figures(results: Results, results_dir: Path, out_dir: Path) -> list[Path]:
    """Write study 1's figures and return their paths (PNG then PDF per figure); [] without study-1 rows."""
    table = summarise(results)
    if not table:
        return []
    choice_path = find_eps_choice(results, results_dir)
    choice = load_eps_choice(choice_path) if choice_path is not None else None  # DataError before any writing
    written: list[Path] = []
    with default_style():
        if choice is not None:
            written += save_figure(plot_eps_choice(choice), out_dir, EXP1_FIGURES[0])
        written += save_figure(plot_transfer_performance(table, ylabel=dataset_label(results)), out_dir,
                               EXP1_FIGURES[1])
        written += save_figure(plot_adversarial_performance(table), out_dir, EXP1_FIGURES[2])
    return written
