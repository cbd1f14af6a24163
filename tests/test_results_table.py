"""The must-shows of the results layer, on synthetic cell documents written here.

Study 1 (``imagenet-transfer``, ``exp1``): 2 protocols x 3 seeds x 6 models, each evaluated natural, FGSM transfer
and white-box at the main eps and at a sweep eps, and white-box PGD, through native, torchattacks and ART with
different accuracies per backend. Study 2 (``cifar-at``, ``exp2``): settings 2 and 3, clean and PGD training, FGSM
and PGD through native and torchattacks, NIFGSM and VMIFGSM through torchattacks only.

Expected numbers are computed here from the counts the cells were built with (``estimate`` of each seed's
correct / n), never read back from the kit's table.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import re
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_hex
from matplotlib.container import BarContainer, ErrorbarContainer

import advtransfer.results.store as store_module
import advtransfer.results.table as table_module
from advtransfer import cli, studies, workflow
from advtransfer.errors import DataError, UserError
from advtransfer.reporting.claims import ALPHA
from advtransfer.reporting.outputs import write_outputs
from advtransfer.results.schema import CSV_COLUMNS
from advtransfer.results.stats import SeedResult, difference, estimate, published_estimate
from advtransfer.results.table import Results
from advtransfer.studies.cifar_at import claims as claims2
from advtransfer.studies.cifar_at import figures as figures2
from advtransfer.studies.imagenet_transfer import claims as claims1
from advtransfer.studies.imagenet_transfer import figures as figures1
from advtransfer.studies.imagenet_transfer.published import EXP1_PUBLISHED, PUBLISHED_N

N = 200
SEEDS = (0, 1, 2)
BACKENDS = ("native", "torchattacks", "art")
PROTOCOLS = ("intended", "as-run")
EPS, EPS_SWEEP = 0.005, 0.02

# ------------------------------------------------------------------------------------------------- study 1 ---

MODELS1 = {"base_a": ("base_a", None), "bnb": ("bnb", None), "a4b": ("anb", 4), "a4b_plus": ("anb_plus", 4),
           "a16b": ("anb", 16), "a16b_plus": ("anb_plus", 16)}
ORDER1 = ["base_a", "bnb", "a4b", "a4b_plus", "a16b", "a16b_plus"]  # the figures' and tables' order
DISPLAY1 = {"base_a": "Base A", "bnb": "BnB", "a4b": "A4B", "a4b_plus": "A4B+", "a16b": "A16B", "a16b_plus": "A16B+"}
# kind -> (attack, threat, eps, primary)
KINDS1 = {"natural": ("none", "natural", 0.0, True), "transfer": ("fgsm", "transfer", EPS, True),
          "whitebox": ("fgsm", "whitebox", EPS, True), "pgd": ("pgd", "whitebox", EPS, True),
          "transfer_sweep": ("fgsm", "transfer", EPS_SWEEP, False),
          "whitebox_sweep": ("fgsm", "whitebox", EPS_SWEEP, False)}
BASE1 = {"natural": 112, "transfer": 52, "whitebox": 20, "pgd": 10, "transfer_sweep": 30, "whitebox_sweep": 8}
SHIFT1 = {"base_a": -60, "bnb": 0, "a4b": -6, "a4b_plus": -24, "a16b": -36, "a16b_plus": 16}
SPREAD1 = {"base_a": 1, "bnb": 2, "a4b": 1, "a4b_plus": 5, "a16b": 14, "a16b_plus": 3}  # seed-to-seed spread
BACKEND_SHIFT = {"": 0, "native": 0, "torchattacks": 4, "art": -7}


def _clamp(x: int) -> int:
    return max(0, min(N, x))


def count1(protocol: str, seed: int, model: str, kind: str, backend: str) -> int:
    shift = SHIFT1[model] if kind == "natural" else SHIFT1[model] // 2
    return _clamp(BASE1[kind] + shift + SPREAD1[model] * (seed - 1) + BACKEND_SHIFT[backend]
                  - (8 if protocol == "as-run" else 0))


def flags_of(key: str, correct: int, n: int = N) -> np.ndarray:
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    flags = np.zeros(n, dtype=bool)
    flags[rng.choice(n, correct, replace=False)] = True
    return flags


def _fstr(flags: np.ndarray) -> str:
    return "".join("1" if f else "0" for f in flags)


def images1(protocol: str, seed: int) -> str:
    return f"exp1-{protocol}-s{seed}-test"


def key1(protocol: str, seed: int, model: str) -> str:
    return f"exp1-{protocol}-s{seed}-{model}"


def flags1(protocol: str, seed: int, model: str, kind: str, backend: str) -> np.ndarray:
    return flags_of(f"{key1(protocol, seed, model)}/{kind}/{backend}", count1(protocol, seed, model, kind, backend))


def backends_of(kind: str, backends=BACKENDS) -> tuple[str, ...]:
    return ("",) if kind == "natural" else tuple(backends)


PROVENANCE = {"git": {"commit": "0123abc", "dirty": False}, "device_name": "cpu (test)", "python": "3.12.0",
              "cuda": None, "cudnn": None, "torch_threads": 2, "training_precision": "fp32",
              "platform": "Linux-test", "versions": {"torch": "2.0-test"}}


def cell1(protocol: str, seed: int, model: str, backends=BACKENDS, profile: str = "demo",
          crosscheck: list | None = None, with_study: bool = True) -> dict:
    family, n_blocks = MODELS1[model]
    evaluations = []
    for kind, (attack, threat, eps, primary) in KINDS1.items():
        for backend in backends_of(kind, backends):
            f = flags1(protocol, seed, model, kind, backend)
            evaluations.append({"attack": attack, "threat": threat, "source_model": "base_a" if threat == "transfer"
                                else ("" if threat == "natural" else model), "eps": eps, "backend": backend,
                                "accuracy": float(f.mean()), "correct": int(f.sum()), "n": N, "primary": primary,
                                "flags": _fstr(f)})
    key = key1(protocol, seed, model)
    doc = {"schema": 2, "experiment": "exp1", "profile": profile, "protocol": protocol, "seed": seed,
           "model": model, "family": family, "n_blocks": n_blocks, "cell": key, "backends": list(backends),
           "data": {"dataset": "tiny", "n_test": N, "test_set": images1(protocol, seed)},
           "evaluations": evaluations, "checks": [], "crosscheck": crosscheck or [], "provenance": PROVENANCE}
    if with_study:
        doc["study"] = "imagenet-transfer"
    return doc


def write_cells(out: Path, docs: list[dict]) -> Path:
    (out / "cells").mkdir(parents=True, exist_ok=True)
    for doc in docs:
        (out / "cells" / f"{doc['cell']}.json").write_text(json.dumps(doc), encoding="utf-8")
    return out


def all_cells1(**kw) -> list[dict]:
    return [cell1(p, s, m, **kw) for p in PROTOCOLS for s in SEEDS for m in MODELS1]


def expected1(protocol: str, model: str, kind: str, backend: str = "native", seeds=SEEDS):
    backend = "" if kind == "natural" else backend
    return estimate([SeedResult(s, count1(protocol, s, model, kind, backend), N, images1(protocol, s),
                                flags1(protocol, s, model, kind, backend)) for s in seeds])


# ------------------------------------------------------------------------------------------------- study 2 ---

MODELS2 = {2: "resnet18_transfer", 3: "resnet18_scratch"}
TRAININGS = ("clean", "pgd")
ATTACKS2 = {"none": ("",), "fgsm": ("native", "torchattacks"), "pgd": ("native", "torchattacks"),
            "nifgsm": ("torchattacks",), "vmifgsm": ("torchattacks",)}
SEEDS2 = (0, 1)
EPS2 = 8 / 255
BASE2 = {("clean", "none"): 150, ("clean", "fgsm"): 60, ("clean", "pgd"): 8, ("clean", "nifgsm"): 18,
         ("clean", "vmifgsm"): 12, ("pgd", "none"): 120, ("pgd", "fgsm"): 90, ("pgd", "pgd"): 80,
         ("pgd", "nifgsm"): 82, ("pgd", "vmifgsm"): 78}
ATTACK_COLUMN = {"none": "clean", "fgsm": "fgsm", "pgd": "pgd", "nifgsm": "nifgsm", "vmifgsm": "vmifgsm"}


def count2(setting: int, seed: int, training: str, attack: str, backend: str) -> int:
    scratch = 20 if setting == 3 else 0
    return _clamp(BASE2[(training, attack)] + scratch + 3 * seed + {"": 0, "native": 0, "torchattacks": 9}[backend])


def key2(setting: int, seed: int, training: str) -> str:
    return f"exp2-e{setting}-intended-s{seed}-{MODELS2[setting]}-{training}"


def flags2(setting: int, seed: int, training: str, attack: str, backend: str) -> np.ndarray:
    return flags_of(f"{key2(setting, seed, training)}/{attack}/{backend}",
                    count2(setting, seed, training, attack, backend))


def cell2(setting: int, seed: int, training: str, attacks=ATTACKS2) -> dict:
    evaluations = []
    for attack, backends in attacks.items():
        for backend in backends:
            f = flags2(setting, seed, training, attack, backend)
            evaluations.append({"attack": attack, "threat": "natural" if attack == "none" else "whitebox",
                                "source_model": "" if attack == "none" else key2(setting, seed, training),
                                "eps": 0.0 if attack == "none" else EPS2, "backend": backend,
                                "accuracy": float(f.mean()), "correct": int(f.sum()), "n": N, "primary": True,
                                "flags": _fstr(f)})
    return {"schema": 2, "study": "cifar-at", "experiment": "exp2", "profile": "demo", "protocol": "intended",
            "seed": seed, "model": MODELS2[setting], "family": MODELS2[setting], "setting": setting,
            "training": training, "cell": key2(setting, seed, training), "backends": ["native", "torchattacks"],
            "data": {"data": "tiny", "n_test": N, "test_set": f"exp2-e{setting}-s{seed}-test"},
            "evaluations": evaluations, "checks": [], "crosscheck": [], "provenance": PROVENANCE}


def all_cells2(attacks=ATTACKS2) -> list[dict]:
    return [cell2(st, s, t, attacks) for st in MODELS2 for s in SEEDS2 for t in TRAININGS]


def expected2(setting: int, training: str, attack: str, backend: str):
    return estimate([SeedResult(s, count2(setting, s, training, attack, backend), N, f"exp2-e{setting}-s{s}-test",
                                flags2(setting, s, training, attack, backend)) for s in SEEDS2])


# ---------------------------------------------------------------------------------------- reading the outputs ---


def capture_figures(monkeypatch, module) -> dict[str, object]:
    """Record every figure ``module`` saves (inspected before saving, which clears it)."""
    seen: dict[str, object] = {}
    real = module.save_figure

    def spy(fig, out_dir, stem):
        seen[stem] = figure_numbers(fig)
        return real(fig, out_dir, stem)

    monkeypatch.setattr(module, "save_figure", spy)
    return seen


def figure_numbers(fig) -> dict:
    """Bars (height, error-bar bottom, top) by (axes title, series label, x tick label); error-bar lines by
    (title, label) as (x, y, bottom, top) points; horizontal lines and spans."""
    bars, lines, hlines, spans, notes = {}, {}, {}, {}, {}
    for ax in fig.axes:
        title = ax.get_title()
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        for c in ax.containers:
            if isinstance(c, BarContainer):
                segs = c.errorbar.lines[2][0].get_segments() if c.errorbar is not None else None
                for i, patch in enumerate(c.patches):
                    seg = segs[i] if segs is not None else None
                    bars[(title, c.get_label(), ticks[i])] = (
                        patch.get_height(), None if seg is None else seg[0][1], None if seg is None else seg[1][1])
            elif isinstance(c, ErrorbarContainer) and c.get_label() and not c.get_label().startswith("_"):
                xy = c.lines[0].get_xydata()
                segs = c.lines[2][0].get_segments()
                lines[(title, c.get_label())] = [(x, y, s[0][1], s[1][1]) for (x, y), s in zip(xy, segs)]
        for line in ax.get_lines():
            ys = line.get_ydata()
            if line.get_label() and not line.get_label().startswith("_") and len(ys) == 2 and ys[0] == ys[1]:
                hlines[(title, line.get_label())] = float(ys[0])
        for patch in ax.patches:
            if not isinstance(patch, BarContainer) and patch.get_alpha() is not None and patch.get_alpha() < 0.5:
                spans[(title, to_hex(patch.get_facecolor()))] = (patch.get_y(), patch.get_y() + patch.get_height())
        notes[title] = [t.get_text() for t in ax.texts]
    return {"bars": bars, "lines": lines, "hlines": hlines, "spans": spans, "notes": notes}


def table_rows(md: str, heading: str) -> list[list[str]]:
    """Rows (cells) of the first table after ``heading`` (header and rule dropped)."""
    part = md.split(heading, 1)[1]
    block = []
    started = False
    for ln in part.split("\n"):
        if ln.startswith("|"):
            started = True
            block.append(ln)
        elif started:
            break
    assert block, heading
    return [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in block[2:]]


NUM = r"(-?\d+\.\d+)"
SIDE = re.compile(rf"^(?P<a>.+?) {NUM} \[{NUM}, {NUM}\] vs (?P<b>.+?) {NUM} \[{NUM}, {NUM}\]: (?P<diff>.+)$")


def evidence(md: str) -> dict[str, dict[str, tuple[str, list[tuple[str, str]]]]]:
    """claim id -> source -> (verdict, [(comparison verdict, text)]) from the report's <details> block."""
    block = md.split("<details><summary>The numbers behind each verdict</summary>", 1)[1].split("</details>", 1)[0]
    out: dict[str, dict] = {}
    claim = None
    for line in block.split("\n"):
        if m := re.match(r"^- \*\*(?P<id>[\w.]+)\*\*$", line):
            claim = m.group("id")
            out[claim] = {}
        elif m := re.match(r"^  - (?P<src>[\w-]+): \*\*(?P<v>[a-z ]+)\*\*; (?P<rest>.*)$", line):
            parts = []
            for piece in m.group("rest").split("; "):
                v, _, text = piece.partition(": ")
                parts.append((v, text))
            out[claim][m.group("src")] = (m.group("v"), parts)
    return out


def verdict_of(d, min_gap: float = 0.0) -> str:
    """The documented rule, restated: supported when the interval lies above zero (paired: and McNemar's p < 0.05)
    and the difference reaches the claim's gap; not supported when even the upper bound falls short."""
    if d.low > 0 and (d.p_value is None or d.p_value < ALPHA) and d.diff >= min_gap:
        return "supported"
    if d.high < max(min_gap, 1e-12):
        return "not supported"
    return "inconclusive"


def check_evidence(ev, sources_expected, min_gaps: dict[str, float]) -> set:
    """Every comparison of every claim: both sides' numbers and the difference equal those computed here.
    ``sources_expected``: source -> {label: Estimate}. Returns the labels checked per source."""
    checked = set()
    for claim_id, by_source in ev.items():
        for source, (verdict, parts) in by_source.items():
            if source not in sources_expected:
                continue
            expected = sources_expected[source]
            decided = []
            for v, text in parts:
                if v == "no data":
                    decided.append(v)
                    continue
                m = SIDE.match(text)
                assert m, text
                gap = min_gaps.get(claim_id, 0.0)
                sides = []
                for label, mean, low, high in ((m.group("a"), *m.groups()[1:4]), (m.group("b"), *m.groups()[5:8])):
                    assert label in expected, (claim_id, source, label)
                    est = expected[label]
                    assert f"{mean} [{low}, {high}]" == est.text(), (claim_id, source, label)
                    sides.append(est)
                    checked.add((source, label))
                d = difference(*sides)
                tail = f" (claim needs > {gap:.2f})" if gap else ""
                assert m.group("diff") == d.text() + tail, (claim_id, source, text)
                assert v == verdict_of(d, gap), (claim_id, source, text)
                decided.append(v)
            real = [v for v in decided if v != "no data"]
            want = ("no data" if not real else "not supported" if "not supported" in real
                    else "supported" if all(v == "supported" for v in real) else "inconclusive")
            assert verdict == want, (claim_id, source)
    return checked


# ---------------------------------------------------------------------------------------------- fixtures ---


@pytest.fixture(scope="module")
def study1(tmp_path_factory):
    """The study-1 folder after write_outputs, with the figures' numbers as drawn."""
    out = write_cells(tmp_path_factory.mktemp("study1"), all_cells1())
    with pytest.MonkeyPatch.context() as mp:
        seen = capture_figures(mp, figures1)
        outputs = write_outputs(out)
    return out, outputs, seen


@pytest.fixture(scope="module")
def study2(tmp_path_factory):
    out = write_cells(tmp_path_factory.mktemp("study2"), all_cells2())
    with pytest.MonkeyPatch.context() as mp:
        seen = capture_figures(mp, figures2)
        outputs = write_outputs(out)
    return out, outputs, seen


# ------------------------------------------------------------------------------ 1. figure = table = claims ---


def test_study1_reference_backend_is_native_and_others_are_kept(study1):
    _, outputs, _ = study1
    results = outputs.results
    assert results.studies == ["imagenet-transfer"]
    for key in results.reference:
        assert results.reference_backend(key) == ("" if key.threat == "natural" else "native")
    a4b = results.find(protocol="intended", model="a4b", attack="fgsm", threat="transfer", eps=EPS)
    (key,) = a4b
    for backend in BACKENDS:
        est = results.by_backend[(key, backend)]
        want = expected1("intended", "a4b", "transfer", backend)
        assert (est.mean, est.low, est.high) == pytest.approx((want.mean, want.low, want.high), abs=1e-12)
    assert len({results.by_backend[(key, b)].mean for b in BACKENDS}) == 3  # the backends differ


def test_study1_summarise_numbers(study1):
    _, outputs, _ = study1
    table = figures1.summarise(outputs.results)
    assert [(e["protocol"], e["model"]) for e in table] == [(p, m) for p in ("intended", "as-run") for m in ORDER1]
    for e in table:
        for kind in ("natural", "transfer", "whitebox", "pgd"):
            want = expected1(e["protocol"], e["model"], kind)
            got = e[kind]
            assert (got.mean, got.low, got.high) == pytest.approx((want.mean, want.low, want.high), abs=1e-12)
            assert got.n_seeds == 3 and got.n == 3 * N
        assert e["eps"] == EPS and e["n_seeds"] == 3
        nat, tr = expected1(e["protocol"], e["model"], "natural"), expected1(e["protocol"], e["model"], "transfer")
        assert e["transfer_drop"] == pytest.approx((nat.mean - tr.mean) / nat.mean)
    # the seed spread of A16B widens its interval beyond the binomial floor
    a16b = next(e for e in table if e["model"] == "a16b" and e["protocol"] == "intended")["natural"]
    assert a16b.variance > sum(s.accuracy * (1 - s.accuracy) / s.n for s in a16b.seeds) / 9


def test_study1_figures_draw_the_table_numbers(study1):
    _, outputs, seen = study1
    assert [p.name for p in outputs.figures] == [f"{s}.{x}" for s in figures1.EXP1_FIGURES[1:] for x in ("png", "pdf")]
    adv = seen["exp1_adversarial_performance"]
    series = {"natural": "natural", "transfer": "FGSM transfer (from Base A)", "whitebox": "FGSM white-box"}
    assert len(adv["bars"]) == 2 * 6 * 3
    for protocol in PROTOCOLS:
        title = f"protocol: {protocol}"
        for model in ORDER1:
            for kind, label in series.items():
                want = expected1(protocol, model, kind)
                height, bottom, top = adv["bars"][(title, label, DISPLAY1[model])]
                assert height == pytest.approx(want.mean, abs=1e-12)
                assert (bottom, top) == pytest.approx((want.low, want.high), abs=1e-12)
        drops = []
        for m in ORDER1:
            nat, tr = expected1(protocol, m, "natural").mean, expected1(protocol, m, "transfer").mean
            drops.append(f"{-100 * (nat - tr) / nat:+.0f}%")
        assert adv["notes"][title] == drops  # the relative drop written above each group
    tp = seen["exp1_transfer_performance"]
    for protocol in PROTOCOLS:
        title = f"protocol: {protocol}"
        for label, models in (("AnB (frozen)", ("a4b", "a16b")), ("AnB+ (fine-tuned)", ("a4b_plus", "a16b_plus"))):
            points = tp["lines"][(title, label)]
            assert [p[0] for p in points] == [4, 16]
            for (_, y, bottom, top), model in zip(points, models):
                want = expected1(protocol, model, "natural")
                assert (y, bottom, top) == pytest.approx((want.mean, want.low, want.high), abs=1e-12)
        for label, model, colour in (("BnB (target, scratch)", "bnb", "#55a868"),
                                     ("Base A (source)", "base_a", "#8172b3")):
            want = expected1(protocol, model, "natural")
            assert tp["hlines"][(title, label)] == pytest.approx(want.mean, abs=1e-12)
            assert tp["spans"][(title, colour)] == pytest.approx((want.low, want.high), abs=1e-12)


def test_study1_report_table_rows(study1):
    out, _, _ = study1
    md = (out / "report.md").read_text()
    for protocol in PROTOCOLS:
        rows = table_rows(md, f"### protocol `{protocol}`")
        assert [r[0] for r in rows] == ORDER1
        for row in rows:
            model = row[0]
            want = [expected1(protocol, model, k).text() for k in ("natural", "transfer", "whitebox", "pgd")]
            pub = EXP1_PUBLISHED[model]
            assert row[1:] == [*want, f"{pub[0]:.4f}", "-" if pub[1] is None else f"{pub[1]:.4f}"]
    # the errata table (as-run vs intended) shows the same estimates
    part = md.split("| model | natural as-run |", 1)[1]
    for model in ORDER1:
        a, i = expected1("as-run", model, "natural"), expected1("intended", model, "natural")
        ta, ti = expected1("as-run", model, "transfer"), expected1("intended", model, "transfer")
        assert (f"| {model} | {a.text()} | {i.text()} | {a.mean - i.mean:+.4f} | {ta.text()} | {ti.text()} | "
                f"{ta.mean - ti.mean:+.4f} |") in part


def test_study1_claim_evidence_shows_the_table_numbers(study1):
    out, _, _ = study1
    md = (out / "report.md").read_text()
    ev = evidence(md)
    assert set(ev) == {"1.1", "1.2", "1.3", "1.3w", "1.3aa", "1.4", "1.5"}
    ours = {p: {claims1.label((m, k)): expected1(p, m, k) for m in MODELS1 for k in ("natural", "transfer", "whitebox")}
            for p in PROTOCOLS}
    published = {}
    for m, (nat, tr) in EXP1_PUBLISHED.items():
        published[claims1.label((m, "natural"))] = published_estimate(nat, PUBLISHED_N)
        if tr is not None:
            published[claims1.label((m, "transfer"))] = published_estimate(tr, PUBLISHED_N)
    checked = check_evidence(ev, {**ours, "published": published}, {})
    # every model compared in a claim was checked in both protocols, in natural and FGSM transfer accuracy
    for p in PROTOCOLS:
        for m in ("bnb", "a4b", "a4b_plus", "a16b", "a16b_plus"):
            assert (p, claims1.label((m, "natural"))) in checked
            assert (p, claims1.label((m, "transfer"))) in checked
        for m in ("bnb", "a4b_plus", "a16b_plus"):
            assert (p, claims1.label((m, "whitebox"))) in checked
    # same test images, flags kept: our comparisons are paired, the published ones are not
    assert all("paired: McNemar exact p" in t for p in PROTOCOLS for _, t in ev["1.1"][p][1])
    assert all(t.endswith(", unpaired") for v, t in ev["1.5"]["published"][1])
    assert {p: ev["1.1"][p][0] for p in PROTOCOLS} == {"intended": "not supported", "as-run": "not supported"}
    assert {p: ev["1.5"][p][0] for p in (*PROTOCOLS, "published")} == dict.fromkeys((*PROTOCOLS, "published"),
                                                                                     "supported")


def test_study1_claims_table_matches_the_evidence(study1):
    out, _, _ = study1
    md = (out / "report.md").read_text()
    ev = evidence(md)
    head = md.split("## Claims of the write-ups", 1)[1].split("<details>", 1)[0]
    header = next(ln for ln in head.split("\n") if ln.startswith("| # |"))
    names = [c.strip() for c in header.strip("|").split("|")][3:]
    assert names == ["published", "as-run", "intended"]
    for line in head.split("\n"):
        if m := re.match(r"^\| (1\.\d+w?) \|", line):
            cells = [c.strip().strip("*") for c in line.strip().strip("|").split("|")][3:]
            assert cells == [ev[m.group(1)][n][0] for n in names]


def test_study2_reference_backend_rule(study2):
    _, outputs, _ = study2
    results = outputs.results
    backends = {(k.attack): results.reference_backend(k) for k in results.reference}
    assert backends == {"none": "", "fgsm": "native", "pgd": "native", "nifgsm": "torchattacks",
                        "vmifgsm": "torchattacks"}


def _reference2(attack: str) -> str:
    return {"none": "", "fgsm": "native", "pgd": "native", "nifgsm": "torchattacks", "vmifgsm": "torchattacks"}[attack]


def _pct(est) -> str:
    return f"{100 * est.mean:.2f} [{100 * est.low:.2f}, {100 * est.high:.2f}]"


def test_study2_table_figure_and_claims_agree(study2):
    out, outputs, seen = study2
    data = figures2.table(outputs.results)
    assert set(data) == {2, 3}
    for setting, model in MODELS2.items():
        rows = data[setting]["intended"]
        assert set(rows) == {(model, t) for t in TRAININGS}
        for training in TRAININGS:
            for attack in ATTACKS2:
                got = rows[(model, training)][ATTACK_COLUMN[attack]]
                want = expected2(setting, training, attack, _reference2(attack))
                assert (got.mean, got.low, got.high) == pytest.approx((want.mean, want.low, want.high), abs=1e-12)
    # figures: one per setting, bars in %, error bars the interval
    assert [p.name for p in outputs.figures] == ["exp2_setting2.png", "exp2_setting2.pdf", "exp2_setting3.png",
                                                 "exp2_setting3.pdf"]
    for setting, model in MODELS2.items():
        bars = seen[f"exp2_setting{setting}"]["bars"]
        assert len(bars) == 2 * 5
        for training in TRAININGS:
            for attack in ATTACKS2:
                want = expected2(setting, training, attack, _reference2(attack))
                height, bottom, top = bars[("protocol: intended (white-box)", ATTACK_COLUMN[attack],
                                            f"{model}\n{training}")]
                assert (height, bottom, top) == pytest.approx((100 * want.mean, 100 * want.low, 100 * want.high),
                                                              abs=1e-9)
    # the report's table
    md = (out / "report.md").read_text()
    for setting, model in MODELS2.items():
        rows = table_rows(md, f"### Experiment {setting}")
        assert [(r[0], r[1], r[2]) for r in rows] == [("intended", model, t) for t in TRAININGS]
        for row in rows:
            want = [_pct(expected2(setting, row[2], a, _reference2(a)))
                    for a in ("none", "pgd", "fgsm", "nifgsm", "vmifgsm")]
            assert row[3:8] == want
    # the claims' evidence
    ours = {"intended": {claims2.label((st, MODELS2[st], t, ATTACK_COLUMN[a])): expected2(st, t, a, _reference2(a))
                         for st in MODELS2 for t in TRAININGS for a in ATTACKS2}}
    ev = evidence(md)
    checked = check_evidence(ev, ours, {"2.1": 0.10, "2.3": 0.05})
    labels = {label for _, label in checked}
    assert {claims2.label((2, "resnet18_transfer", "clean", "fgsm")), claims2.label((2, "resnet18_transfer", "clean",
            "pgd")), claims2.label((3, "resnet18_scratch", "pgd", "pgd")),
            claims2.label((3, "resnet18_scratch", "clean", "clean"))} <= labels
    assert ev["2.3"]["intended"][0] != "no data"


def test_study2_with_only_torchattacks_fgsm_and_pgd_still_shown(tmp_path, monkeypatch):
    only_ta = {"none": ("",), "fgsm": ("torchattacks",), "pgd": ("torchattacks",), "nifgsm": ("torchattacks",),
               "vmifgsm": ("torchattacks",)}
    out = write_cells(tmp_path, all_cells2(only_ta))
    seen = capture_figures(monkeypatch, figures2)
    outputs = write_outputs(out)
    results = outputs.results
    assert {results.reference_backend(k) for k in results.reference if k.attack in ("fgsm", "pgd")} == {"torchattacks"}
    for setting, model in MODELS2.items():
        bars = seen[f"exp2_setting{setting}"]["bars"]
        for training in TRAININGS:
            for attack in ("fgsm", "pgd"):
                want = expected2(setting, training, attack, "torchattacks")
                height, bottom, top = bars[("protocol: intended (white-box)", attack, f"{model}\n{training}")]
                assert not math.isnan(height)
                assert (height, bottom, top) == pytest.approx((100 * want.mean, 100 * want.low, 100 * want.high),
                                                              abs=1e-9)
    md = (out / "report.md").read_text()
    ev = evidence(md)
    ours = {"intended": {claims2.label((st, MODELS2[st], t, ATTACK_COLUMN[a])): expected2(st, t, a, backends[0])
                         for st in MODELS2 for t in TRAININGS for a, backends in only_ta.items()}}
    checked = check_evidence(ev, ours, {"2.1": 0.10, "2.3": 0.05})
    assert ("intended", claims2.label((2, "resnet18_transfer", "clean", "fgsm"))) in checked
    for claim in ("2.1", "2.2", "2.3", "2.4"):
        assert ev[claim]["intended"][0] != "no data", claim


def test_backend_missing_for_a_seed_is_not_the_reference(tmp_path):
    """Native ran for seeds 0 and 1 only: torchattacks, which ran for every seed, is the reference."""
    docs = [cell1("intended", s, m, backends=BACKENDS if s != 2 else ("torchattacks", "art"))
            for s in SEEDS for m in ("bnb", "a4b")]
    results = Results.from_cells(write_cells(tmp_path, docs))
    (key,) = results.find(model="a4b", attack="fgsm", threat="transfer", eps=EPS)
    assert results.reference_backend(key) == "torchattacks"
    want = expected1("intended", "a4b", "transfer", "torchattacks")
    assert results.reference[key].mean == pytest.approx(want.mean)
    assert results.by_backend[(key, "native")].n_seeds == 2  # still in the table, with its two seeds
    (nat,) = results.find(model="a4b", threat="natural")
    assert results.reference_backend(nat) == ""


# --------------------------------------------------------------------------- 2. one parse, one read per cell ---


def _count_reads(monkeypatch) -> dict[str, list]:
    calls: dict[str, list] = {"csv": [], "cell": []}
    real_parse, real_read = table_module._parse_csv, store_module.read_cell

    def parse(path, study_of):
        calls["csv"].append(Path(path))
        return real_parse(path, study_of)

    def read(path):
        calls["cell"].append(Path(path))
        return real_read(path)

    monkeypatch.setattr(table_module, "_parse_csv", parse)
    monkeypatch.setattr(store_module, "read_cell", read)
    return calls


def test_figures_command_reads_each_cell_once(tmp_path, monkeypatch, capsys):
    docs = [cell1(p, s, m) for p in PROTOCOLS for s in SEEDS for m in ("base_a", "bnb", "a4b_plus")]
    out = write_cells(tmp_path / "r", docs)
    Results.from_cells(out).write_csv(out)  # an earlier results.csv: the cells stay the source of truth
    calls = _count_reads(monkeypatch)
    assert cli.main(["figures", "--results", str(out)]) == 0
    assert len(calls["csv"]) <= 1
    assert sorted(calls["cell"]) == sorted((out / "cells").glob("*.json"))
    assert len(calls["cell"]) == len(docs) == len(set(calls["cell"]))
    printed = capsys.readouterr().out
    assert f"report: {out / 'report.md'} and {out / 'report.html'}" in printed
    assert (out / "figures" / "exp1_adversarial_performance.png").is_file()


def test_figures_command_on_results_csv_alone_parses_it_once(tmp_path, monkeypatch):
    docs = [cell1("intended", s, m) for s in SEEDS for m in ("bnb", "a4b", "a4b_plus")]
    out = write_cells(tmp_path / "r", docs)
    Results.from_cells(out).write_csv(out)
    for path in (out / "cells").glob("*.json"):
        path.unlink()
    (out / "cells").rmdir()
    calls = _count_reads(monkeypatch)
    assert cli.main(["figures", "--results", str(out)]) == 0
    assert calls["csv"] == [out / "results.csv"]
    assert calls["cell"] == []
    assert "| a4b_plus | " + expected1("intended", "a4b_plus", "natural").text() in (out / "report.md").read_text()


# ------------------------------------------------------------------------------------ 3. the exit status ---


def _crosscheck_row(cell: str, agree: bool) -> dict:
    return {"model": "a4b", "cell": cell, "attack": "fgsm_eps0.005", "random_start": False,
            "backends": "native vs art", "max_abs_diff": 0.0 if agree else 0.25, "frac_pixels_differing":
            0.0 if agree else 0.4, "accuracy": {"native": 0.5, "art": 0.5 if agree else 0.75},
            "seconds": {"native": 0.01, "art": 0.02}, "n": 8, "criterion": "max abs difference <= 1e-06",
            "agree": agree}


def _exit_folder(tmp_path: Path, disagree: bool) -> tuple[Path, str]:
    bad = key1("intended", 1, "a4b")
    docs = [cell1("intended", s, m, crosscheck=[_crosscheck_row(key1("intended", s, m),
                                                                 not (disagree and key1("intended", s, m) == bad))])
            for s in SEEDS for m in ("bnb", "a4b")]
    return write_cells(tmp_path / "r", docs), bad


def test_backend_disagreement_makes_exit_status_3(tmp_path, capsys):
    out, bad = _exit_folder(tmp_path, disagree=True)
    results = Results.from_cells(out)
    assert [r["cell"] for r in results.disagreements] == [bad]
    assert results.exit_status() == 3
    assert workflow.finish(out) == 3
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if ln.startswith("advtransfer: error:")]
    assert len(errors) == 1
    assert f"{bad} fgsm_eps0.005 native vs art" in errors[0]
    assert str(out / "crosscheck.md") in errors[0]
    assert "**NO**" in (out / "crosscheck.md").read_text()
    assert "5 of 6 comparisons agree. **Disagreements are listed below.**" in (out / "report.md").read_text()


def test_no_disagreement_exit_status_0(tmp_path, capsys):
    out, _ = _exit_folder(tmp_path, disagree=False)
    assert Results.from_cells(out).exit_status() == 0
    assert workflow.finish(out) == 0
    captured = capsys.readouterr()
    assert "advtransfer: error" not in captured.err
    assert f"results: {out / 'results.csv'}" in captured.out
    assert "6 of 6 comparisons agree." in (out / "report.md").read_text()


# ------------------------------------------------------------------------------------------ 4. results.csv ---


def test_results_csv_columns_rows_and_aggregates(tmp_path):
    docs = all_cells1()
    out = write_cells(tmp_path, docs)
    results = Results.from_cells(out)
    path = results.write_csv(out)
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = tuple(reader.fieldnames)
        rows = list(reader)
    assert header == CSV_COLUMNS
    assert len(rows) == sum(len(d["evaluations"]) for d in docs) == 2 * 3 * 6 * (1 + 5 * 3)
    # each row is one evaluation of one cell, as the cell document has it
    by_cell = {d["cell"]: d for d in docs}
    for row in rows:
        doc = by_cell[row["cell"]]
        assert (row["study"], row["experiment"], row["profile"], row["protocol"], row["seed"], row["model"]) == (
            "imagenet-transfer", "exp1", "demo", doc["protocol"], str(doc["seed"]), doc["model"])
        ev = next(e for e in doc["evaluations"] if (e["attack"], e["threat"], repr(float(e["eps"])), e["backend"])
                  == (row["attack"], row["threat"], row["eps"], row["backend"]))
        assert (row["correct"], row["n"], row["accuracy"], row["primary"]) == (
            str(ev["correct"]), str(N), f"{ev['accuracy']:.6f}", str(int(ev["primary"])))
    # the aggregate columns: estimate() over the seeds of the row's evaluation and backend
    groups = defaultdict(list)
    for row in rows:
        groups[tuple(row[c] for c in ("study", "experiment", "protocol", "setting", "model", "training", "attack",
                                      "threat", "eps", "primary", "backend"))].append(row)
    assert len(groups) == 2 * 6 * (1 + 5 * 3)
    for members in groups.values():
        est = estimate([SeedResult(int(r["seed"]), int(r["correct"]), int(r["n"])) for r in members])
        for r in members:
            assert (r["n_seeds"], r["seed_mean"], r["ci95_low"], r["ci95_high"]) == (
                "3", f"{est.mean:.6f}", f"{est.low:.6f}", f"{est.high:.6f}")


def test_results_csv_round_trip_keeps_the_reference_estimates(tmp_path):
    out = write_cells(tmp_path, [cell1("intended", s, m) for s in SEEDS for m in MODELS1])
    from_cells = Results.from_cells(out)
    from_cells.write_csv(out)
    from_csv = Results.from_csv(out)
    assert set(from_csv.reference) == set(from_cells.reference)
    for key, est in from_cells.reference.items():
        again = from_csv.reference[key]
        assert from_csv.reference_backend(key) == from_cells.reference_backend(key)
        assert (again.mean, again.low, again.high) == pytest.approx((est.mean, est.low, est.high), abs=1e-12)
    assert all(r.flags is None for r in from_csv.rows)  # results.csv keeps no flags: comparisons become unpaired
    a, b = (from_csv.one(model=m, threat="natural") for m in ("a4b_plus", "bnb"))
    assert difference(a, b).method == "unpaired"
    a, b = (from_cells.one(model=m, threat="natural") for m in ("a4b_plus", "bnb"))
    assert difference(a, b).method == "paired"
    assert io.StringIO(from_cells.csv_text()).readline().strip() == ",".join(CSV_COLUMNS)


# -------------------------------------------------------------------------------------- cells: edge cases ---


def test_cells_without_a_study_field_are_resolved_by_the_registry(tmp_path):
    out = write_cells(tmp_path, [cell1("intended", 0, m, with_study=False) for m in ("bnb", "a4b")])
    assert Results.from_cells(out).studies == [""]
    results = Results.from_cells(out, studies.study_of_experiment)
    assert results.studies == ["imagenet-transfer"]
    assert {r.study for r in results.rows} == {"imagenet-transfer"}
    assert all(c["study"] == "imagenet-transfer" for c in results.cells)


def test_corrupt_cell_file_is_one_data_error_naming_it(tmp_path):
    out = write_cells(tmp_path, [cell1("intended", 0, "bnb")])
    bad = out / "cells" / "exp1-intended-s0-zzz.json"
    bad.write_text("{not json")
    with pytest.raises(DataError) as info:
        Results.load(out)
    assert str(info.value) == (f"result file {bad} is unreadable or corrupt (JSONDecodeError); delete it and rerun "
                               "to recompute that cell")


def test_cell_missing_a_field_is_one_data_error_naming_it(tmp_path):
    doc = cell1("intended", 0, "bnb")
    del doc["seed"]
    out = write_cells(tmp_path, [doc])
    with pytest.raises(DataError) as info:
        Results.load(out)
    path = out / "cells" / f"{doc['cell']}.json"
    assert str(info.value) == (f"result file {path} does not hold a cell result of this kit (KeyError: 'seed'); "
                               "delete it and rerun to recompute that cell")


def test_cells_of_two_profiles_are_refused(tmp_path):
    out = write_cells(tmp_path, [cell1("intended", 0, "bnb"), cell1("intended", 1, "bnb", profile="paper")])
    with pytest.raises(DataError) as info:
        Results.load(out)
    assert str(info.value) == (f"{out} mix exp1 results of profiles demo, paper; averaging them would be "
                               "meaningless: write each profile to its own --out folder")


# ------------------------------------------------------------------------------------ results.csv: parsing ---


def test_results_csv_round_trip_keeps_every_field_of_both_studies(tmp_path):
    """results.csv read back gives the rows it was written from, field by field (study 1: families, blocks, source
    models, sweep eps; study 2: settings and trainings), the per-example flags and test-set names aside."""
    for name, docs in (("s1", all_cells1()), ("s2", all_cells2())):
        out = write_cells(tmp_path / name, docs)
        from_cells = Results.from_cells(out)
        from_cells.write_csv(out)
        from_csv = Results.from_csv(out)
        assert from_csv.rows == from_cells.rows and len(from_csv.rows) > 50
        fields = {f: {getattr(r, f) for r in from_csv.rows} for f in ("family", "n_blocks", "source_model", "cell",
                                                                       "setting", "training", "eps")}
        assert all(len(values) > 1 for f, values in fields.items() if (f in ("setting", "training")) == (name == "s2"))


def _csv_with(tmp_path: Path, **changes: str) -> Path:
    """A one-row results.csv of study 1 with some columns of the row replaced."""
    out = write_cells(tmp_path / "src", [cell1("intended", 0, "a4b")])
    row = next(csv.DictReader(io.StringIO(Results.from_cells(out).csv_text())))
    row.update(changes)
    target = tmp_path / "run"
    target.mkdir()
    with open(target / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(CSV_COLUMNS))
        writer.writeheader()
        writer.writerow(row)
    return target


@pytest.mark.parametrize("text, value", [("1", True), ("true", True), (" TRUE ", True), ("Yes", True), ("0", False),
                                         ("false", False), ("False", False), ("no", False), ("NO", False)])
def test_primary_column_reads_the_usual_spellings_of_a_boolean(tmp_path, text: str, value: bool):
    assert Results.from_csv(_csv_with(tmp_path, primary=text)).rows[0].primary is value


@pytest.mark.parametrize("changes, problem", [
    ({"primary": "maybe"}, "column 'primary': expected 0 or 1, got 'maybe'"),
    ({"seed": "1.5"}, "column 'seed': '1.5' is not an integer"),
    ({"accuracy": "1.5"}, "column 'accuracy': 1.5 is not in [0, 1]"),
    ({"accuracy": "-0.1"}, "column 'accuracy': -0.1 is not in [0, 1]"),
    ({"accuracy": "nan", "n": "1"}, "column 'accuracy': nan is not in [0, 1]"),
    ({"eps": "wide"}, "column 'eps': could not convert string to float: 'wide'"),
])
def test_bad_value_in_results_csv_is_one_error_naming_line_and_column(tmp_path, changes, problem: str):
    run = _csv_with(tmp_path, **changes)
    with pytest.raises(DataError) as err:
        Results.from_csv(run)
    assert str(err.value) == f"{run / 'results.csv'} line 2: bad value in {problem}"


def test_results_csv_edge_values_are_accepted(tmp_path):
    assert Results.from_csv(_csv_with(tmp_path / "a", accuracy="1.0")).rows[0].accuracy == 1.0
    empty = Results.from_csv(_csv_with(tmp_path / "b", accuracy="nan", n="0", correct="0")).rows[0]
    assert math.isnan(empty.accuracy) and empty.n == 0  # an evaluation on no images: nan, not an error
    blank = Results.from_csv(_csv_with(tmp_path / "c", eps="", n_blocks="", setting="", primary="")).rows[0]
    assert (blank.eps, blank.n_blocks, blank.setting, blank.primary) == (0.0, None, None, False)


def test_results_csv_missing_columns_not_utf8_or_not_csv(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    path = run / "results.csv"
    path.write_text("experiment,profile\nexp1,demo\n")
    with pytest.raises(UserError) as err:
        Results.from_csv(run)
    missing = ", ".join(c for c in CSV_COLUMNS if c not in ("experiment", "profile", "setting", "training",
                                                             "n_seeds", "seed_mean", "ci95_low", "ci95_high",
                                                             "study"))
    assert str(err.value) == (f"{path} is malformed: missing column(s) {missing}; rebuild it from the cell files "
                              f"with `advtransfer figures --results {run}`, or rerun the experiment")
    path.write_bytes(b"experiment\xff\n")
    with pytest.raises(DataError) as err:
        Results.from_csv(run)
    assert str(err.value) == f"{path} is not a UTF-8 CSV file (invalid start byte)"
    path.write_text(",".join(CSV_COLUMNS) + "\n" + "x" * 200_000 + "\n")  # beyond the csv module's field limit
    with pytest.raises(DataError) as err:
        Results.from_csv(run)
    assert str(err.value) == f"{path} is not a valid CSV file (field larger than field limit (131072))"


def test_reference_backend_of_an_unknown_evaluation_is_empty(tmp_path):
    results = Results.from_cells(write_cells(tmp_path, [cell1("intended", 0, "a4b")]))
    key = next(iter(results.reference))
    assert results.reference_backend(key._replace(model="nowhere")) == ""


def test_one_picks_the_lowest_eps_first_and_none_when_nothing_matches(tmp_path):
    results = Results.from_cells(write_cells(tmp_path, [cell1("intended", s, "a4b") for s in SEEDS]))
    assert results.one(model="nowhere") is None
    natural = results.one(model="a4b", threat="natural")
    assert natural is not None and results.one(model="a4b") == natural  # eps 0 before every attack's eps
    fgsm = {k: e for k, e in results.find(model="a4b", attack="fgsm").items()}
    first = min(fgsm, key=lambda k: (k.eps, k.threat))
    assert (first.eps, first.threat) == (EPS, "transfer") and results.one(model="a4b", attack="fgsm") == fgsm[first]
    for key in results.find(model="a4b"):  # fully specified: exactly that evaluation
        assert results.one(**{f: getattr(key, f) for f in ("model", "attack", "threat", "eps")}) == \
            results.reference[key]


def test_results_csv_without_a_study_column_and_without_results(tmp_path):
    run = _csv_with(tmp_path, study="")
    results = Results.from_csv(run)
    assert results.source == run and results.rows[0].study == ""  # no registry given: the study stays unknown
    assert Results.from_csv(run, lambda experiment: f"study-of-{experiment}").rows[0].study == "study-of-exp1"
    empty = tmp_path / "empty"
    with pytest.raises(UserError) as err:
        Results.from_csv(empty)
    assert str(err.value) == (f"no results found: there is no {empty / 'results.csv'}; run `advtransfer run "
                              f"EXPERIMENT --profile PROFILE --out {empty}` first")


def test_load_prefers_cells_and_only_keeps_one_study_with_its_cells(tmp_path):
    both = write_cells(tmp_path / "both", [cell1("intended", 0, "a4b"), cell2(2, 0, "clean")])
    loaded = Results.load(both, lambda experiment: "from-the-registry")
    assert loaded.source == both and len(loaded.cells) == 2  # the cell documents, not results.csv
    study1 = loaded.only("imagenet-transfer")
    assert study1.source == both and {r.study for r in study1.rows} == {"imagenet-transfer"}
    assert [c["cell"] for c in study1.cells] == [c["cell"] for c in loaded.cells if c["study"] == "imagenet-transfer"]
    assert len(study1.cells) == 1 and study1.rows
    unnamed = write_cells(tmp_path / "unnamed", [cell1("intended", 0, "a4b", with_study=False)])
    assert {r.study for r in Results.load(unnamed, lambda experiment: "from-the-registry").rows} == \
        {"from-the-registry"}  # the registry passed to load reaches the cells
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError) as err:
        Results.load(empty)
    assert str(err.value) == (f"no results in {empty} (no cells/*.json and no results.csv): run `advtransfer run "
                              f"EXPERIMENT --profile PROFILE --out {empty}` first")


def test_claim_sources_in_the_study_order_and_other_protocols_last(tmp_path):
    from advtransfer.reporting.claims import judge, sources

    study = studies.get("imagenet-transfer")
    docs = [cell1(p, 0, m) for p in ("intended", "as-run", "a-custom") for m in ("bnb", "a4b", "a4b_plus")]
    results = Results.from_cells(write_cells(tmp_path, docs))
    assert list(sources(study, results)) == ["published", "as-run", "intended", "a-custom"]
    judged = judge(study, results)
    assert judged and {j.study for j in judged} == {"imagenet-transfer"}
    assert all(list(j.verdicts) == ["published", "as-run", "intended", "a-custom"] for j in judged)
    assert judge(study, Results([])) == []  # no results of this study: no claims judged


def test_cells_keep_their_own_study_and_experiments_stay_apart(tmp_path):
    out = write_cells(tmp_path / "a", [cell1("intended", 0, "a4b")])
    registry = Results.from_cells(out, lambda experiment: "not-this-one")
    assert {r.study for r in registry.rows} == {"imagenet-transfer"}  # a cell's own study wins over the registry
    copy = cell1("intended", 0, "a4b")
    copy["experiment"], copy["cell"] = "exp1-copy", copy["cell"].replace("exp1", "exp1-copy", 1)
    two = Results.from_cells(write_cells(tmp_path / "b", [cell1("intended", 0, "a4b"), copy]))
    assert len(two.reference) == 2 * len(registry.reference)  # same model and attack, two experiments: two keys
    assert "\r" not in two.csv_text()


def test_the_same_evaluation_in_two_studies_keeps_its_own_numbers(tmp_path):
    rows = Results.from_cells(write_cells(tmp_path, [cell1("intended", 0, "a4b")])).rows
    other = [dataclasses.replace(r, study="another-study", correct=_clamp(r.correct + 17)) for r in rows]
    both = Results([*rows, *other])
    for r in both.rows:  # each row's aggregate is its own study's (one seed: the row's own accuracy)
        assert both.by_backend[(table_module.eval_key(r), r.backend)].mean == pytest.approx(r.correct / r.n)
    assert len(both.reference) == 2 * len(Results(rows).reference)
    assert {k.study for k in both.reference} == {"imagenet-transfer", "another-study"}


def test_mixed_profiles_without_a_folder_name_the_results(tmp_path):
    rows = Results.from_cells(write_cells(tmp_path, [cell1("intended", 0, "a4b")])).rows
    other = [dataclasses.replace(r, profile="paper") for r in rows]
    with pytest.raises(DataError) as err:
        Results([*rows, *other])
    assert str(err.value).startswith("the results mix exp1 results of profiles demo, paper; averaging them")
