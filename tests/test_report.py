"""The report: claims judged with the kit's statistics, the study sections and errata, the environment, cross-check
and sanity sections, and the self-contained HTML page."""

from __future__ import annotations

import base64
import builtins
import json
import math
import pathlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from advtransfer import studies
from advtransfer.reporting import claims as claims_module
from advtransfer.reporting.claims import INCONCLUSIVE, NO_DATA, NOT_SUPPORTED, SUPPORTED, Claim, Comparison
from advtransfer.reporting.html import markdown_to_html
from advtransfer.reporting.outputs import load_results, write_outputs
from advtransfer.reporting.report import build_report
from advtransfer.results.schema import Row
from advtransfer.results.stats import Estimate, SeedResult, Z, difference, estimate, published_estimate
from advtransfer.results.table import Results
from advtransfer.studies.cifar_at.published import EXP2_ATTACK_ORDER, EXP2_PUBLISHED
from advtransfer.studies.imagenet_transfer import report as report1

FIXTURE = Path(__file__).parent / "fixtures" / "exp1_results"


def est(mean: float, variance: float) -> Estimate:
    """An estimate with a given variance (no seeds: compared unpaired)."""
    half = Z * math.sqrt(variance)
    return Estimate(mean, mean - half, mean + half, variance, 1, 1000)


# ------------------------------------------------------------------------------------------------ comparisons ---


def test_comparison_verdicts():
    # each variance 1e-4: the unpaired difference has half-width Z * sqrt(2e-4) = 0.0277
    values = {("a",): est(0.60, 1e-4), ("b",): est(0.50, 1e-4), ("c",): est(0.59, 1e-4)}
    get = values.get
    assert Comparison(("a",), ("b",)).judge(get)[0] == SUPPORTED
    assert Comparison(("b",), ("a",)).judge(get)[0] == NOT_SUPPORTED
    assert Comparison(("a",), ("c",)).judge(get)[0] == INCONCLUSIVE
    assert Comparison(("a",), ("b",), min_gap=0.05).judge(get)[0] == SUPPORTED
    assert Comparison(("a",), ("b",), min_gap=0.20).judge(get)[0] == NOT_SUPPORTED  # the upper bound falls short
    assert Comparison(("a",), ("b",), min_gap=0.12).judge(get)[0] == INCONCLUSIVE  # 0.10 < 0.12 < 0.1277
    assert Comparison(("a",), ("zzz", 1)).judge(get) == (NO_DATA, "zzz/1: no number")
    assert Comparison(("y",), ("zzz", 1)).judge(get) == (NO_DATA, "y and zzz/1: no number")
    _, text = Comparison(("a",), ("b",), min_gap=0.05).judge(get)
    half = Z * math.sqrt(2e-4)
    assert text == (f"{values[('a',)]} vs {values[('b',)]}: +0.100 [{0.1 - half:+.3f}, {0.1 + half:+.3f}], unpaired "
                    "(claim needs > 0.05)")


def _paired(table, seed: int = 0):
    both, only_a, only_b, neither = table
    fa = np.array([True] * (both + only_a) + [False] * (only_b + neither))
    fb = np.array([True] * both + [False] * only_a + [True] * only_b + [False] * neither)
    n = len(fa)
    return (estimate([SeedResult(seed, int(fa.sum()), n, "t", fa)], "A"),
            estimate([SeedResult(seed, int(fb.sum()), n, "t", fb)], "B"))


def test_paired_comparison_needs_mcnemar_to_agree():
    """8 both right, 4 only A, 0 only B, 8 neither: the interval excludes 0 but McNemar's exact p is 0.125."""
    a, b = _paired((8, 4, 0, 8))
    d = difference(a, b)
    assert d.method == "paired" and d.low > 0 and d.p_value == pytest.approx(0.125)
    verdict, text = Comparison(("a",), ("b",)).judge({("a",): a, ("b",): b}.get)
    assert verdict == INCONCLUSIVE
    assert text.endswith("paired: McNemar exact p = 0.125 on 4 vs 0 discordant images")
    # more discordant images: both agree
    a, b = _paired((8, 12, 0, 8))
    assert Comparison(("a",), ("b",)).judge({("a",): a, ("b",): b}.get)[0] == SUPPORTED


def test_claim_combines_its_comparisons():
    values = {("hi",): est(0.8, 1e-4), ("mid",): est(0.6, 1e-4), ("lo",): est(0.4, 1e-4), ("near",): est(0.61, 1e-4)}

    def claim(*pairs):
        return Claim("x", "text", "test", lambda keys: [Comparison((a,), (b,)) for a, b in pairs])

    keys = set(values)
    assert claim(("hi", "mid"), ("mid", "lo")).judge(values.get, keys)[0] == SUPPORTED
    assert claim(("hi", "mid"), ("near", "mid")).judge(values.get, keys)[0] == INCONCLUSIVE
    assert claim(("hi", "mid"), ("lo", "mid"), ("near", "mid")).judge(values.get, keys)[0] == NOT_SUPPORTED
    verdict, lines = claim(("hi", "mid"), ("gone", "mid")).judge(values.get, keys)
    assert verdict == SUPPORTED  # a comparison without numbers is listed and skipped
    assert lines[1] == "no data: gone: no number" and lines[0].startswith("supported: ")
    assert claim(("gone", "mid")).judge(values.get, keys)[0] == NO_DATA
    assert claim().judge(values.get, keys) == (NO_DATA, [])


# ------------------------------------------------------------------------------------- study 2's claims ---


def _exp2_rows(numbers: dict, protocol: str, n: int) -> list[Row]:
    rows = []
    for (setting, model, training), values in numbers.items():
        for attack, pct in zip(EXP2_ATTACK_ORDER, values):
            correct = round(pct / 100 * n)
            clean = attack == "clean"
            rows.append(Row(study="cifar-at", experiment="exp2", profile="paper", protocol=protocol, seed=0,
                            model=model, family=model, n_blocks=None, attack="none" if clean else attack,
                            threat="natural" if clean else "whitebox", source_model="", eps=0.0 if clean else 8 / 255,
                            backend="" if clean else ("torchattacks" if attack in ("nifgsm", "vmifgsm") else "native"),
                            accuracy=correct / n, correct=correct, n=n, primary=True,
                            cell=f"exp2-e{setting}-{protocol}-{model}-{training}", setting=setting, training=training))
    return rows


@pytest.fixture()
def exp2_results() -> Results:
    """as-run: the published numbers themselves on 10,000 images; intended: a run on 200 images where adversarial
    training of the from-scratch ResNet-18 barely helps and the transfer model beats it on clean accuracy."""
    intended = dict(EXP2_PUBLISHED)
    intended[(3, "resnet18_scratch", "pgd")] = (80, 40, 45, 41, 40)
    intended[(3, "resnet18_scratch", "clean")] = (60, 35, 40, 36, 35)
    return Results(_exp2_rows(EXP2_PUBLISHED, "as-run", 10_000) + _exp2_rows(intended, "intended", 200))


def test_study2_claims_on_published_and_on_a_run(exp2_results: Results):
    study = studies.get("cifar-at")
    judged = {j.claim.id: j.verdicts for j in claims_module.judge(study, exp2_results)}
    assert set(judged) == {"2.1", "2.2", "2.3", "2.4", "2.5", "2.1aa", "2.2aa", "2.4aa"}
    for claim in ("2.1aa", "2.2aa", "2.4aa"):  # no AutoAttack rows here (nor in the write-up): no data anywhere
        verdicts = judged.pop(claim)
        assert [v[0] for v in verdicts.values()] == [NO_DATA] * 3, (claim, verdicts)
    for claim, verdicts in judged.items():
        assert list(verdicts) == ["published", "as-run", "intended"]
        # The published numbers support every conclusion of study 2 (that is how the write-up read them) ...
        assert verdicts["published"][0] == SUPPORTED, (claim, verdicts["published"])
        # ... and as-run here holds exactly those numbers on as many images: the same evidence.
        assert verdicts["as-run"] == verdicts["published"], claim
    # The intended run: AT gains 5 points on the from-scratch ResNet-18 (the claim needs 10) on 200 images:
    # inconclusive; scratch clean 60% < transfer 77%: "scratch performs better" is not supported.
    assert judged["2.1"]["intended"][0] == INCONCLUSIVE
    assert judged["2.4"]["intended"][0] == NOT_SUPPORTED
    scratch = estimate([SeedResult(0, 120, 200)], "e3 R18-scratch clean-trained clean")
    transfer = estimate([SeedResult(0, 154, 200)], "e2 R18-transfer clean-trained clean")
    d = difference(scratch, transfer)
    assert d.method == "unpaired" and d.high < 0
    assert f"{NOT_SUPPORTED}: {scratch} vs {transfer}: {d.text()}" in judged["2.4"]["intended"][1]
    assert str(scratch) == f"e3 R18-scratch clean-trained clean 0.6000 [{scratch.low:.4f}, {scratch.high:.4f}]"
    # 2.1's gap: PGD accuracy of the PGD-trained (80/200 correct under PGD: 40%) vs clean-trained (35%)
    line = next(t for t in judged["2.1"]["intended"][1] if "e3 R18-scratch pgd-trained PGD" in t)
    pgd_at, pgd_clean = estimate([SeedResult(0, 80, 200)]), estimate([SeedResult(0, 70, 200)])
    assert line.endswith(f"{difference(pgd_at, pgd_clean).text()} (claim needs > 0.10)")
    # 2.5 has no CIFAR-100 PGD-trained models: those comparisons are listed as no data, the others decide
    assert "no data: 4/resnet18_scratch/pgd/clean: no number" in judged["2.5"]["published"][1]


def test_published_sources_are_the_write_ups_numbers():
    study = studies.get("cifar-at")
    published = study.published()
    key = (2, "resnet18_transfer", "clean", "fgsm")
    want = published_estimate(0.1876, 10_000)
    assert (published[key].mean, published[key].low, published[key].high) == (want.mean, want.low, want.high)
    assert published[key].label == "e2 R18-transfer clean-trained FGSM"
    s1 = studies.get("imagenet-transfer").published()
    assert s1[("a4b_plus", "transfer")].mean == pytest.approx(0.2592, abs=1 / 6000)
    assert ("bnb", "transfer") not in s1  # the write-up gives none


# ------------------------------------------------------------------------------------- the report from disk ---


@pytest.fixture()
def fixture_report(tmp_path: Path) -> tuple[Path, str, str]:
    out = tmp_path / "r"
    shutil.copytree(FIXTURE, out)
    outputs = write_outputs(out)
    assert outputs.csv is None  # results.csv alone: read, not rewritten
    return out, outputs.report.read_text(), outputs.report_html.read_text()


def _claims_table(md: str) -> dict[str, list[str]]:
    table = md.split("## Claims of the write-ups", 1)[1].split("<details>", 1)[0]
    header = next(ln for ln in table.splitlines() if ln.startswith("| # |"))
    names = [c.strip() for c in header.strip().strip("|").split("|")][3:]
    rows = {}
    for line in table.splitlines():
        if re.match(r"^\| \d\.\d", line):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[cells[0]] = dict(zip(names, cells[3:]))
    return rows


def test_report_from_the_old_format_fixture_claims(fixture_report):
    _, md, _ = fixture_report
    rows = _claims_table(md)
    assert set(rows) == {"1.1", "1.2", "1.3", "1.3w", "1.3aa", "1.4", "1.5", "2.1", "2.1aa", "2.2", "2.2aa", "2.3",
                         "2.4", "2.4aa", "2.5"}
    for claim in ("1.3aa", "2.1aa", "2.2aa", "2.4aa"):  # the fixture predates AutoAttack, as the write-ups do
        assert rows[claim]["published"] == "no data", claim
    assert list(rows["1.1"]) == ["published", "as-run", "intended"]
    # Published study 1: A4B+ .5965 vs BnB .5907 on 6,000 images is within noise; A4B .2267 vs A16B .0558 is not.
    assert rows["1.1"]["published"] == "inconclusive" and rows["1.5"]["published"] == "**supported**"
    assert rows["1.3w"]["published"] == "no data"  # the original never attacked white-box
    # ours on 2 x 200 images of the demo profile: nothing is decided
    for claim in ("1.1", "1.2", "1.3", "1.3w", "1.4", "1.5"):
        assert (rows[claim]["as-run"], rows[claim]["intended"]) == ("inconclusive", "inconclusive"), claim
    # study 2 is present only through one row without a setting: its claims are judged on the published numbers
    for claim in ("2.1", "2.2", "2.3", "2.4", "2.5"):
        assert rows[claim] == {"published": "**supported**", "as-run": "-", "intended": "-"}, claim
    assert "Profile `demo`: our verdicts are about its data" in md
    # the evidence: A4B vs A8B under FGSM transfer, intended (46+48 vs 38+40 of 400), unpaired (no flags in a csv)
    a4b = estimate([SeedResult(0, 46, 200), SeedResult(1, 48, 200)], "A4B transfer")
    a8b = estimate([SeedResult(0, 38, 200), SeedResult(1, 40, 200)], "A8B transfer")
    assert f"  - intended: **inconclusive**; inconclusive: {a4b} vs {a8b}: {difference(a4b, a8b).text()}" in md


def test_report_from_the_old_format_fixture_sections(fixture_report):
    _, md, _ = fixture_report
    assert "## Environment" not in md  # no cell documents: no provenance, cross-check or sanity sections
    assert "## Cross-check of attack backends" not in md and "## Sanity checks" not in md
    study1 = md.split("## Study 1: ImageNet-R / MobileNetV2 block transfer under FGSM", 1)[1]
    assert "at the main eps 0.005 (pixel units)" in study1
    a4b = estimate([SeedResult(0, 118, 200), SeedResult(1, 120, 200)])
    a4b_tr = estimate([SeedResult(0, 46, 200), SeedResult(1, 48, 200)])
    a4b_wb = estimate([SeedResult(0, 10, 200), SeedResult(1, 12, 200)])
    assert f"| a4b | {a4b.text()} | {a4b_tr.text()} | {a4b_wb.text()} | - | 0.5890 | 0.2267 |" in study1
    assert "| a4b | 0.5950 [0.5462, 0.6420] |" in study1
    assert [ln for ln in study1.splitlines() if ln.startswith("![")] == [
        f"![{s}](figures/{s}.png)" for s in ("exp1_eps_choice", "exp1_transfer_performance",
                                            "exp1_adversarial_performance")]
    assert "## Errata: defects of the original studies" in md and "Nothing was re-initialised" in md
    bnb_asrun = estimate([SeedResult(0, 112, 200), SeedResult(1, 114, 200)])
    bnb_intended = estimate([SeedResult(0, 118, 200), SeedResult(1, 120, 200)])
    assert f"| bnb | {bnb_asrun.text()} | {bnb_intended.text()} | -0.0300 |" in md
    assert "| bnb | 0.5650 [0.5160, 0.6127] | 0.5950 [0.5462, 0.6420] | -0.0300 |" in md
    # study 2's only row has no setting: no study 2 section and no study 2 errata
    assert "## Study 2" not in md and "### Study 2" not in md


def test_report_html_is_self_contained(fixture_report):
    out, md, page = fixture_report
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>advtransfer report</title>" in page
    assert page.count("<table>") == md.count("\n|---") == 4  # claims, two protocols, errata
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(images) == 3  # every figure inlined: the page is self-contained
    assert [base64.b64decode(i) for i in images] == [(out / "figures" / f"{s}.png").read_bytes() for s in
                                                     ("exp1_eps_choice", "exp1_transfer_performance",
                                                      "exp1_adversarial_performance")]
    assert not re.search(r'(src|href)="?(https?:|//)', page)
    assert '<strong class="v-supported">supported</strong>' in page
    assert "<details><summary>The numbers behind each verdict</summary>" in page
    assert "<h2>Study 1: ImageNet-R / MobileNetV2 block transfer under FGSM</h2>" in page


# ----------------------------------------------------------------------------------- the report from cells ---

N = 40
PROVENANCE = {"git": {"commit": "feedbee", "dirty": True}, "device_name": "Test CPU <x86>", "python": "3.12.1",
              "cuda": None, "cudnn": None, "torch_threads": 4, "training_precision": "bf16",
              "platform": "Linux-test", "versions": {"torch": "2.5.0", "torchattacks": "3.5.1"}}


def _cell(model: str, family: str, n_blocks, natural: int, transfer: int, whitebox: int, seed: int = 0,
          checks=(), crosscheck=()) -> dict:
    def rec(attack, threat, eps, correct, backend="native"):
        flags = np.zeros(N, dtype=bool)
        flags[:correct] = True
        return {"attack": attack, "threat": threat, "source_model": "", "eps": eps, "backend": backend,
                "accuracy": correct / N, "correct": correct, "n": N, "primary": True,
                "flags": "".join("1" if f else "0" for f in flags)}

    key = f"exp1-intended-s{seed}-{model}"
    return {"schema": 2, "study": "imagenet-transfer", "experiment": "exp1", "profile": "paper",
            "protocol": "intended", "seed": seed, "model": model, "family": family, "n_blocks": n_blocks,
            "cell": key, "data": {"dataset": "imagenet-r", "test_set": f"t{seed}"},
            "evaluations": [rec("none", "natural", 0.0, natural, ""), rec("fgsm", "transfer", 0.005, transfer),
                            rec("fgsm", "whitebox", 0.005, whitebox)],
            "checks": list(checks), "crosscheck": list(crosscheck), "provenance": PROVENANCE}


def _write(out: Path, docs) -> Path:
    (out / "cells").mkdir(parents=True)
    for doc in docs:
        (out / "cells" / f"{doc['cell']}.json").write_text(json.dumps(doc))
    return out


def test_report_from_cells_has_environment_crosscheck_and_sanity(tmp_path: Path):
    flag = {"check": "whitebox >= transfer", "model": "a4b_plus", "detail": "white-box 0.500 > transfer <b>0.2</b>",
            "meaning": "the white-box attack is weaker than a transfer attack"}
    cross = {"model": "a4b_plus", "cell": "exp1-intended-s0-a4b_plus", "attack": "fgsm_eps0.005",
             "random_start": False, "backends": "native vs torchattacks", "max_abs_diff": 0.0,
             "frac_pixels_differing": 0.0, "accuracy": {"native": 0.5, "torchattacks": 0.5},
             "seconds": {"native": 0.01, "torchattacks": 0.02}, "n": 8,
             "criterion": "max abs difference <= 1e-06", "agree": True}
    docs = [_cell("bnb", "bnb", None, 20, 8, 2), _cell("a4b_plus", "anb_plus", 4, 30, 12, 20, checks=[flag],
                                                       crosscheck=[cross])]
    out = _write(tmp_path / "r", docs)
    outputs = write_outputs(out)
    md = outputs.report.read_text()
    env = md.split("## Environment", 1)[1].split("##", 1)[0]
    for row in ("| profile | `paper` |", "| cells | 2 |", "| commit | `feedbee` (uncommitted changes) |",
                "| device | Test CPU <x86> |", "| training precision | bf16 |", "| torch threads | 4 |",
                "| torch | 2.5.0 |", "| torchattacks | 3.5.1 |", "| CUDA / cuDNN | - / - |"):
        assert row in env, row
    assert "Profile `paper`" not in md  # the paper profile: no warning about the data
    assert "## Cross-check of attack backends" in md and "1 of 1 comparisons agree." in md
    assert "| a4b_plus | fgsm_eps0.005 | native vs torchattacks | 0.00e+00 |" in md
    assert ("- `exp1-intended-s0-a4b_plus` **whitebox >= transfer**: white-box 0.500 > transfer <b>0.2</b>. the "
            "white-box attack is weaker than a transfer attack.") in md
    # A4B+ natural 30/40 vs BnB 20/40 on the same images (flags): a paired comparison, from the table's numbers
    a4b_plus = outputs.results.one(model="a4b_plus", threat="natural")
    bnb = outputs.results.one(model="bnb", threat="natural")
    d = difference(a4b_plus.labelled("A4B+ natural"), bnb.labelled("BnB natural"))
    assert d.method == "paired" and d.discordant == (10, 0)
    assert f"supported: A4B+ natural {a4b_plus.text()} vs BnB natural {bnb.text()}: {d.text()}" in md
    # from cells, results.csv and the cross-check tables are written too
    assert (out / "results.csv").is_file() and (out / "crosscheck.md").is_file()
    page = outputs.report_html.read_text()
    assert "Test CPU &lt;x86&gt;" in page and "Test CPU <x86>" not in page
    assert "transfer &lt;b&gt;0.2&lt;/b&gt;" in page and "<b>0.2</b>" not in page  # data is escaped, never markup
    assert "<h2>Sanity checks</h2>" in page


def test_build_report_reads_nothing_from_disk(tmp_path: Path, monkeypatch):
    docs = [_cell("bnb", "bnb", None, 20, 8, 2), _cell("a4b_plus", "anb_plus", 4, 30, 12, 20)]
    results = Results.from_cells(_write(tmp_path / "r", docs))
    study = studies.get("imagenet-transfer")

    def refuse(*args, **kwargs):
        raise AssertionError(f"build_report read a file: {args}")

    monkeypatch.setattr(builtins, "open", refuse)
    monkeypatch.setattr(pathlib.Path, "read_text", refuse)
    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    monkeypatch.setattr(pathlib.Path, "open", refuse)
    figures = [tmp_path / "r" / "figures" / "exp1_transfer_performance.png"]
    md = build_report(results, {"imagenet-transfer": study}, {"imagenet-transfer": figures}, tmp_path / "r")
    assert "![exp1_transfer_performance](figures/exp1_transfer_performance.png)" in md
    assert "## Claims of the write-ups" in md and "| bnb | 0.5000 [" in md


def test_unregistered_study_is_named_and_left_out(tmp_path: Path):
    row = Row(study="my-study", experiment="mine", profile="demo", protocol="p", seed=0, model="m", family="m",
              n_blocks=None, attack="none", threat="natural", source_model="", eps=0.0, backend="", accuracy=0.5,
              correct=1, n=2, primary=True, cell="mine-p-s0-m")
    results = Results([row])
    md = build_report(results, {}, {}, tmp_path)
    assert ("Results of study `my-study` are in this folder but the study is not registered here (install its "
            "plug-in); they are in results.csv and left out below.") in md
    outputs = write_outputs(tmp_path, results)  # the registry does not know it: no figures, no error
    assert outputs.figures == [] and outputs.csv is None
    assert "`my-study`" in outputs.report.read_text()


def test_load_results_prefers_cells_over_results_csv(tmp_path: Path):
    out = _write(tmp_path / "r", [_cell("bnb", "bnb", None, 20, 8, 2)])
    (out / "results.csv").write_text("not,a,results,file\n")  # stale or broken: the cells are the truth
    results = load_results(out)
    assert [r.model for r in results.rows] == ["bnb", "bnb", "bnb"] and len(results.cells) == 1


def test_study1_section_without_fgsm_rows():
    row = Row(study="imagenet-transfer", experiment="exp1", profile="demo", protocol="intended", seed=0,
              model="bnb", family="bnb", n_blocks=None, attack="none", threat="natural", source_model="", eps=0.0,
              backend="", accuracy=0.5, correct=100, n=200, primary=True, cell="exp1-intended-s0-bnb")
    lines = report1.section(Results([row]), [], Path("."))
    assert any(line.startswith("| bnb | 0.5000 [") for line in lines)


# ------------------------------------------------------------------------------------------------ the HTML ---


def test_markdown_to_html_escapes_and_nests(tmp_path: Path):
    page = markdown_to_html("# T <x>\n\n- a `<b>`\n  - nested **bold**\n- c\n\n![gone](figures/none.png)\n",
                            tmp_path, "t <&>")
    assert "<title>t &lt;&amp;&gt;</title>" in page
    assert "<h1>T &lt;x&gt;</h1>" in page
    flat = page.replace("\n", "")
    assert "<ul><li>a <code>&lt;b&gt;</code><ul><li>nested <strong>bold</strong></li></ul></li><li>c</li></ul>" in flat
    assert "<p><em>figure figures/none.png is missing</em></p>" in page


def test_markdown_to_html_tables_details_and_images(tmp_path: Path):
    from PIL import Image

    (tmp_path / "figures").mkdir()
    png = tmp_path / "figures" / "f.png"
    Image.new("RGB", (4, 3), (76, 114, 176)).save(png)
    text = "\n".join([
        "| model | verdict |", "|---|---|", "| <script>alert(1)</script> | **supported** |",
        "| a | **not supported** |", "", "<details><summary>More</summary>", "", "- x *y* & z", "", "</details>",
        "", "![a \"fig\"](figures/f.png)", "", "para one", "continues <i>", "",
    ])
    page = markdown_to_html(text, tmp_path, "t").replace("\n", "")
    assert "<thead><tr><th>model</th><th>verdict</th></tr></thead>" in page
    assert "<td>&lt;script&gt;alert(1)&lt;/script&gt;</td>" in page and "<script>" not in page
    assert '<td><strong class="v-supported">supported</strong></td>' in page
    assert '<td><strong class="v-not-supported">not supported</strong></td>' in page
    assert "<details><summary>More</summary>" in page and "</details>" in page
    assert "<li>x <em>y</em> &amp; z</li>" in page
    data = base64.b64encode(png.read_bytes()).decode()
    assert f'<img class="figure" alt="a &quot;fig&quot;" src="data:image/png;base64,{data}">' in page
    assert "<p>para onecontinues &lt;i&gt;</p>" in page  # one paragraph (the soft break is a newline)
    assert not re.search(r'src="(?!data:)', page)
