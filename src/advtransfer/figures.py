"""Figures and summary numbers for study 1 (ImageNet-R / MobileNetV2 block transfer under FGSM).

Reads only what a run wrote to its results directory (it never trains or attacks anything):

* ``DIR/results.csv``: one row per evaluation (see :data:`RESULTS_COLUMNS`);
* ``DIR/artifacts/*eps_choice.npz``: one clean image, its FGSM versions at several eps and Base A's predictions.

and reproduces the original write-up's three figures (:func:`make_figures`):

* ``exp1_eps_choice``: the clean image, then per eps the perturbation and the adversarial image;
* ``exp1_transfer_performance``: natural accuracy against the number of transferred blocks N;
* ``exp1_adversarial_performance``: natural, FGSM transfer and FGSM white-box accuracy per model at the main eps.

Reading and aggregation (:func:`read_results`, :func:`summarise_exp1`, :func:`summary_table`, :func:`ci95`) are
pure functions, separate from the plotting functions (``plot_*``, which return a matplotlib ``Figure``).
Plotting uses matplotlib's object-oriented ``Figure`` API (no pyplot), so importing or calling this module never
changes the global backend or pyplot state, and figures are freed once saved.
"""

from __future__ import annotations

import csv
import math
import re
import textwrap
import zipfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from advtransfer.errors import DataError, UserError
from advtransfer.published import EXP1_PUBLISHED, EXP1_PUBLISHED_EPS

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = [
    "EXP1_FIGURES",
    "PUBLISHED_LABEL",
    "RESULTS_COLUMNS",
    "EpsChoice",
    "ResultRow",
    "ci95",
    "find_eps_choice",
    "load_eps_choice",
    "make_figures",
    "model_sort_key",
    "plot_adversarial_performance",
    "plot_eps_choice",
    "plot_transfer_performance",
    "read_results",
    "summarise_exp1",
    "summary_table",
]

RESULTS_COLUMNS: tuple[str, ...] = (
    "experiment", "profile", "protocol", "seed", "model", "family", "n_blocks", "attack", "threat",
    "source_model", "eps", "backend", "accuracy", "correct", "n", "primary", "cell",
)  # fmt: skip

# Stable figure stems; each is written as <stem>.png and <stem>.pdf.
EXP1_FIGURES: tuple[str, ...] = ("exp1_eps_choice", "exp1_transfer_performance", "exp1_adversarial_performance")

PUBLISHED_LABEL = "published (Keras, ImageNet-R)"
PROTOCOL_ORDER: tuple[str, ...] = ("intended", "as-run")
THREATS: tuple[str, ...] = ("natural", "transfer", "whitebox")
PREFERRED_BACKEND = "native"
DPI = 150

_RUN_HINT = "advtransfer run exp1 --profile demo --out {dir}"
_MODEL_RE = re.compile(r"^a(\d+)b(_plus)?$")
_OTHER_EXPERIMENT_RE = re.compile(r"exp(\d+)")

_COLOURS = {"natural": "#4C72B0", "transfer": "#DD8452", "whitebox": "#C44E52"}
_FAMILY_STYLE = {  # colour, marker
    "anb": ("#4C72B0", "o"),
    "anb_plus": ("#DD8452", "s"),
    "bnb": ("#55A868", "^"),
    "base_a": ("#8172B3", "D"),
}
_PUBLISHED_COLOUR = "0.45"


# ----------------------------------------------------------------------------------------------------------------
# Reading
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResultRow:
    """One parsed row of ``results.csv``."""

    experiment: str
    profile: str
    protocol: str
    seed: str
    model: str
    family: str
    n_blocks: int | None
    attack: str
    threat: str
    source_model: str
    eps: float
    backend: str
    accuracy: float
    correct: int
    n: int
    primary: bool
    cell: str


def _no_results(results_dir: Path) -> UserError:
    return UserError(
        f"no results found in {results_dir} (there is no {results_dir / 'results.csv'}); "
        f"run `{_RUN_HINT.format(dir=results_dir)}` first"
    )


def _parse_bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("1", "true", "yes"):
        return True
    if t in ("0", "false", "no", ""):
        return False
    raise ValueError(f"expected 0 or 1, got {text!r}")


def _parse_int(text: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"{text!r} is not an integer")
    return int(value)


def _parse_row(raw: dict[str, str]) -> ResultRow:
    """Parse one exp1 row; raises ValueError naming the bad column."""

    def field(name: str) -> str:
        value = raw.get(name)
        return "" if value is None else value.strip()

    def parsed(name: str, fn):
        try:
            return fn(field(name))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"column {name!r}: {exc}") from None

    n_blocks_text = field("n_blocks")
    accuracy = parsed("accuracy", float)
    if not (0.0 <= accuracy <= 1.0) or math.isnan(accuracy):
        raise ValueError(f"column 'accuracy': {accuracy} is not in [0, 1]")
    eps = parsed("eps", float) if field("eps") else 0.0
    return ResultRow(
        experiment=field("experiment"),
        profile=field("profile"),
        protocol=field("protocol"),
        seed=field("seed"),
        model=field("model"),
        family=field("family"),
        n_blocks=parsed("n_blocks", _parse_int) if n_blocks_text else None,
        attack=field("attack"),
        threat=field("threat"),
        source_model=field("source_model"),
        eps=eps,
        backend=field("backend"),
        accuracy=accuracy,
        correct=parsed("correct", _parse_int) if field("correct") else 0,
        n=parsed("n", _parse_int) if field("n") else 0,
        primary=parsed("primary", _parse_bool),
        cell=field("cell"),
    )


def read_results(results_dir: Path | str, experiment: str = "exp1") -> list[ResultRow]:
    """Read ``results_dir/results.csv`` and return the parsed rows of one experiment (others are ignored).

    Raises :class:`UserError` if the file is missing (naming the command that makes it) or lacks columns (naming
    them), and :class:`DataError` for a value that does not parse (naming file, line and column).
    """
    results_dir = Path(results_dir)
    path = results_dir / "results.csv"
    if not path.is_file():
        raise _no_results(results_dir)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            header = [h.strip() for h in (reader.fieldnames or [])]
            missing = [c for c in RESULTS_COLUMNS if c not in header]
            if missing:
                raise UserError(
                    f"{path} is malformed: missing column(s) {', '.join(missing)} "
                    f"(expected {','.join(RESULTS_COLUMNS)}); "
                    f"rerun `{_RUN_HINT.format(dir=results_dir)}` to rewrite it"
                )
            reader.fieldnames = header
            rows: list[ResultRow] = []
            for raw in reader:
                if (raw.get("experiment") or "").strip() != experiment:
                    continue
                try:
                    rows.append(_parse_row(raw))
                except ValueError as exc:
                    raise DataError(f"{path} line {reader.line_num}: bad value in {exc}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a UTF-8 CSV file ({exc})") from None
    except csv.Error as exc:
        raise DataError(f"{path} is not a valid CSV file ({exc})") from None
    return rows


# ----------------------------------------------------------------------------------------------------------------
# Aggregation (pure)
# ----------------------------------------------------------------------------------------------------------------


def ci95(values) -> tuple[float, float | None]:
    """Mean and half-width of the 95% t confidence interval, ``t(0.975, n-1) * sd / sqrt(n)`` (sample sd).

    Returns ``(nan, None)`` for no values and ``(value, None)`` for one value.
    """
    v = np.asarray(list(values), dtype=float)
    if v.size == 0:
        return math.nan, None
    mean = float(v.mean())
    if v.size == 1:
        return mean, None
    from scipy.stats import t  # slow import: only when needed

    sd = float(v.std(ddof=1))
    return mean, float(t.ppf(0.975, v.size - 1) * sd / math.sqrt(v.size))


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


def _seed_sort_key(seed: str) -> tuple[int, Any]:
    try:
        return (0, int(seed))
    except ValueError:
        return (1, seed)


def _pick_backend(backends: set[str]) -> str:
    return PREFERRED_BACKEND if PREFERRED_BACKEND in backends else min(backends)


def _opt(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def summarise_exp1(rows: list[ResultRow]) -> list[dict[str, Any]]:
    """Aggregate parsed exp1 rows to one dict per (protocol, model), ordered by protocol then model.

    Natural accuracy comes from ``threat == "natural"`` rows; transfer and white-box accuracy from FGSM rows with
    ``primary`` set. Rows of the same seed are averaged first (one value per seed); when one evaluation was run
    by several backends, the ``native`` one is used (else the alphabetically first). Missing numbers are ``None``.
    Keys: protocol, model, family, n_blocks, profile, eps (main FGSM eps in pixel units), seeds (list),
    n_seeds, natural / natural_ci, transfer / transfer_ci, whitebox / whitebox_ci (``*_ci`` is the 95% CI
    half-width, None with one seed), transfer_drop ((natural - transfer) / natural), published_natural,
    published_adversarial (published FGSM transfer accuracy at ``published_eps``), published_eps.
    """
    if not rows:
        return []
    profiles = sorted({r.profile for r in rows})
    if len(profiles) > 1:
        raise DataError(
            f"results.csv mixes exp1 results of profiles {', '.join(profiles)}; averaging them would be "
            "meaningless: write each profile to its own --out directory"
        )
    profile = profiles[0]

    # (protocol, model, threat, eps) -> backend -> seed -> [accuracy]
    groups: dict[tuple, dict[str, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list))
    )
    family: dict[str, str] = {}
    n_blocks: dict[str, int | None] = {}
    primary_eps: dict[tuple[str, str, str], set[float]] = defaultdict(set)
    for r in rows:
        family.setdefault(r.model, r.family)
        if r.n_blocks is not None or r.model not in n_blocks:
            n_blocks[r.model] = r.n_blocks
        if r.threat == "natural" or r.attack == "none":
            key = (r.protocol, r.model, "natural", 0.0)
        elif r.primary and r.threat in ("transfer", "whitebox") and r.attack == "fgsm":  # the original's attack
            key = (r.protocol, r.model, r.threat, r.eps)
            primary_eps[(r.protocol, r.model, r.threat)].add(r.eps)
        else:
            continue
        groups[key][r.backend][r.seed].append(r.accuracy)

    for (protocol, model, threat), eps_set in primary_eps.items():
        if len(eps_set) > 1:
            raise DataError(
                f"results.csv flags several eps as primary for exp1 {protocol}/{model}/{threat}: "
                f"{', '.join(f'{e:g}' for e in sorted(eps_set))}; exactly one eps per experiment must be primary"
            )

    # (protocol, model, threat) -> (seed -> value, eps)
    per_seed: dict[tuple[str, str, str], tuple[dict[str, float], float]] = {}
    for (protocol, model, threat, eps), by_backend in groups.items():
        chosen = by_backend[_pick_backend(set(by_backend))]
        per_seed[(protocol, model, threat)] = ({s: float(np.mean(v)) for s, v in chosen.items()}, eps)

    table: list[dict[str, Any]] = []
    pairs = sorted(
        {(p, m) for (p, m, _t) in per_seed}, key=lambda pm: (_protocol_sort_key(pm[0]), model_sort_key(pm[1]))
    )
    for protocol, model in pairs:
        entry: dict[str, Any] = {
            "protocol": protocol,
            "model": model,
            "family": family.get(model, ""),
            "n_blocks": n_blocks.get(model),
            "profile": profile,
        }
        seeds: set[str] = set()
        eps_main: float | None = None
        for threat in THREATS:
            values, eps = per_seed.get((protocol, model, threat), ({}, None))
            seeds |= set(values)
            mean, half = ci95(values[s] for s in sorted(values, key=_seed_sort_key))
            entry[threat] = _opt(mean)
            entry[f"{threat}_ci"] = half
            if threat != "natural" and eps is not None and eps_main is None:
                eps_main = eps
        entry["eps"] = eps_main
        entry["seeds"] = sorted(seeds, key=_seed_sort_key)
        entry["n_seeds"] = len(seeds)
        nat, adv = entry["natural"], entry["transfer"]
        entry["transfer_drop"] = (nat - adv) / nat if nat and adv is not None else None
        pub = EXP1_PUBLISHED.get(model)
        entry["published_natural"] = pub[0] if pub else None
        entry["published_adversarial"] = pub[1] if pub else None
        entry["published_eps"] = EXP1_PUBLISHED_EPS
        table.append(entry)
    return table


def summary_table(results_dir: Path | str) -> list[dict[str, Any]]:
    """Per (protocol, model): mean natural / transfer / white-box accuracy at the main eps, and the published pair.

    See :func:`summarise_exp1` for the keys. Empty when ``results.csv`` has no exp1 rows.
    """
    return summarise_exp1(read_results(results_dir, "exp1"))


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


def find_eps_choice(results_dir: Path | str) -> Path | None:
    """The eps-choice artefact to plot: under ``results_dir/artifacts``, files named ``*eps_choice.npz``
    (sorted by relative path, artefacts of other experiments such as ``exp2-...`` left out), the first whose
    name contains ``intended``, else the first. None if there is none."""
    art = Path(results_dir) / "artifacts"
    if not art.is_dir():
        return None
    found = []
    for p in art.rglob("*eps_choice.npz"):
        if not p.is_file():
            continue
        rel = p.relative_to(art).as_posix()
        if any(m.group(1).lstrip("0") != "1" for m in _OTHER_EXPERIMENT_RE.finditer(rel)):
            continue
        found.append(rel)
    if not found:
        return None
    found.sort()
    intended = [rel for rel in found if "intended" in Path(rel).name]
    return art / (intended[0] if intended else found[0])


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


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


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
    return "1 seed" if n == 1 else f"mean of {n} seeds, 95% CI"


def _hollow(ax, x, y, marker: str, label: str | None) -> None:
    ax.plot(
        x, y, linestyle="none", marker=marker, markersize=8, markerfacecolor="none",
        markeredgecolor=_PUBLISHED_COLOUR, markeredgewidth=1.3, label=label, zorder=5,
    )  # fmt: skip


def plot_transfer_performance(table: list[dict[str, Any]], show_published: bool | None = None) -> Figure:
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
            y = [e["natural"] for e in pts]
            yerr = [e["natural_ci"] or 0.0 for e in pts]
            ax.errorbar(
                x, y, yerr=yerr if any(yerr) else None, color=colour, marker=marker, capsize=3, label=name,
            )  # fmt: skip
        for fam, name, ls in (("bnb", "BnB (target, scratch)", "--"), ("base_a", "Base A (source)", ":")):
            e = next((e for e in entries if e["family"] == fam and e["natural"] is not None), None)
            if e is None:
                continue
            colour, _marker = _FAMILY_STYLE[fam]
            ax.axhline(e["natural"], color=colour, linestyle=ls, linewidth=1.6, label=name)
            if e["natural_ci"]:
                ax.axhspan(
                    e["natural"] - e["natural_ci"], e["natural"] + e["natural_ci"], color=colour, alpha=0.12
                )
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
    axes[0].set_ylabel("natural accuracy (ImageNet-R, 200 classes)")
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
            heights = [e[threat] if e[threat] is not None else 0.0 for e in entries]
            errs = [e[f"{threat}_ci"] or 0.0 for e in entries]
            ax.bar(
                x + (j - 1) * width, heights, width, color=_COLOURS[threat], label=name,
                yerr=errs if any(errs) else None, capsize=2, error_kw={"linewidth": 0.8},
            )  # fmt: skip
        for i, e in enumerate(entries):
            top = max(
                [(e[t] or 0.0) + (e[f"{t}_ci"] or 0.0) for t in THREATS]
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


def _save(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    paths = []
    try:
        for ext in ("png", "pdf"):
            path = out_dir / f"{stem}.{ext}"
            tmp = out_dir / f".{stem}.tmp.{ext}"
            metadata = {"CreationDate": None} if ext == "pdf" else None
            fig.savefig(tmp, format=ext, dpi=DPI, metadata=metadata)
            tmp.replace(path)
            paths.append(path)
    finally:
        fig.clear()
    return paths


def make_figures(results_dir: Path | str, out_dir: Path | str | None = None) -> list[Path]:
    """Write study 1's figures from a results directory and return their paths (PNG then PDF per figure).

    Files, in ``out_dir`` (default ``results_dir/figures``): ``exp1_eps_choice`` (only if an eps-choice artefact
    exists), ``exp1_transfer_performance`` and ``exp1_adversarial_performance``, each ``.png`` (150 dpi) and
    ``.pdf``. Returns [] if ``results.csv`` holds no exp1 rows. Reads only ``results.csv`` and the artefacts.
    """
    results_dir = Path(results_dir)
    rows = read_results(results_dir, "exp1")  # UserError if missing or malformed
    table = summarise_exp1(rows)
    if not table:
        return []
    out = Path(out_dir) if out_dir is not None else results_dir / "figures"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the figure directory {out} ({exc}); pass another --out") from None

    choice_path = find_eps_choice(results_dir)
    choice = load_eps_choice(choice_path) if choice_path is not None else None  # DataError before any writing

    from matplotlib import style

    written: list[Path] = []
    # matplotlib's default style (the user's matplotlibrc ignored, the backend untouched), restored on exit
    with style.context("default"):
        if choice is not None:
            written += _save(plot_eps_choice(choice), out, EXP1_FIGURES[0])
        written += _save(plot_transfer_performance(table), out, EXP1_FIGURES[1])
        written += _save(plot_adversarial_performance(table), out, EXP1_FIGURES[2])
    return written
