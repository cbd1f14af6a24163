"""The report: the claims table judged on a results fixture, the errata, and the self-contained HTML page."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pytest

from advtransfer.claims import CLAIMS, INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Comparison, Estimate, judge_all
from advtransfer.figures import RESULTS_COLUMNS
from advtransfer.published import EXP2_ATTACK_ORDER, EXP2_PUBLISHED
from advtransfer.report import write_report
from advtransfer.report_html import markdown_to_html

FIXTURE = Path(__file__).parent / "fixtures" / "exp1_results"


def _write_exp2_results(path: Path, numbers: dict, protocol: str, n: int) -> list[dict]:
    rows = []
    for (setting, model, training), values in numbers.items():
        for attack, pct in zip(EXP2_ATTACK_ORDER, values):
            backend = "torchattacks" if attack in ("nifgsm", "vmifgsm") else ("" if attack == "clean" else "native")
            rows.append({"experiment": "exp2", "profile": "paper", "protocol": protocol, "seed": 0,
                         "model": "basenet" if model == "basenet100" else model, "family": model, "n_blocks": "",
                         "attack": "none" if attack == "clean" else attack, "threat": "natural" if attack == "clean"
                         else "whitebox", "source_model": "", "eps": 0.0314, "backend": backend,
                         "accuracy": pct / 100, "correct": round(pct / 100 * n), "n": n, "primary": 1, "cell": "x",
                         "setting": setting, "training": training})
    return rows


@pytest.fixture()
def exp2_results(tmp_path: Path) -> Path:
    """as-run: the published numbers themselves; intended: a run where adversarial training of the from-scratch
    ResNet-18 barely helps and the transfer model beats it on clean accuracy (200 test images)."""
    intended = dict(EXP2_PUBLISHED)
    intended[(3, "resnet18_scratch", "pgd")] = (80, 40, 45, 41, 40)
    intended[(3, "resnet18_scratch", "clean")] = (60, 35, 40, 36, 35)
    rows = (_write_exp2_results(tmp_path, EXP2_PUBLISHED, "as-run", 10000)
            + _write_exp2_results(tmp_path, intended, "intended", 200))
    with open(tmp_path / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=[*RESULTS_COLUMNS, "setting", "training"])
        writer.writeheader()
        writer.writerows(rows)
    return tmp_path


def test_comparison_verdicts() -> None:
    get = {"a": Estimate(0.60, 0.01), "b": Estimate(0.50, 0.01), "c": Estimate(0.59, 0.01)}.get
    assert Comparison("a", "b").judge(get)[0] == SUPPORTED
    assert Comparison("b", "a").judge(get)[0] == NOT_SUPPORTED
    assert Comparison("a", "c").judge(get)[0] == INCONCLUSIVE
    assert Comparison("a", "b", min_gap=0.05).judge(get)[0] == SUPPORTED
    assert Comparison("a", "b", min_gap=0.20).judge(get)[0] == NOT_SUPPORTED  # even the upper bound falls short
    assert Comparison("a", "b", min_gap=0.12).judge(get)[0] == INCONCLUSIVE
    assert Comparison("a", "zzz").judge(get)[0] == "no data"


def test_study2_claims_on_published_and_on_a_run(exp2_results: Path) -> None:
    judged = {j.claim.id: j.verdicts for j in judge_all(exp2_results)}
    assert set(judged) == {c.id for c in CLAIMS if c.study == 2}
    for claim, verdicts in judged.items():
        # The published numbers support every conclusion of study 2 (that is how the write-up read them) ...
        assert verdicts["published"][0] == SUPPORTED, (claim, verdicts["published"])
        assert verdicts["as-run"][0] == SUPPORTED, claim  # ... and as-run here holds exactly those numbers.
    # The intended run: AT gains 5 points on the from-scratch ResNet-18 (needs 10): inconclusive at n = 200;
    # scratch clean 60% < transfer 77%: "scratch performs better" is not supported.
    assert judged["2.1"]["intended"][0] == INCONCLUSIVE
    assert judged["2.4"]["intended"][0] == NOT_SUPPORTED
    assert any("e3 R18-scratch clean-trained clean 0.600 vs e2 R18-transfer clean-trained clean 0.770" in line
               for line in judged["2.4"]["intended"][1])


def test_report_from_a_results_fixture_has_claims_table_errata_and_html(tmp_path: Path) -> None:
    out = tmp_path / "r"
    shutil.copytree(FIXTURE, out)
    from advtransfer.figures import make_figures

    make_figures(out)
    write_report(out)
    md = (out / "report.md").read_text()
    table = md.split("## Claims of the write-ups", 1)[1].split("<details>", 1)[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[4:7]]
            for line in table.splitlines() if re.match(r"^\| 1\.\d", line)}
    assert set(rows) == {"1.1", "1.2", "1.3", "1.3w", "1.4", "1.5"}
    # Published study 1: A4B+ .5965 vs BnB .5907 on 6,000 images is within noise; A4B .2267 vs A16B .0558 is not.
    assert rows["1.1"][0] == "inconclusive" and rows["1.5"][0] == "**supported**"
    assert rows["1.3w"][0] == "no data"  # the original never attacked white-box
    assert "Profile `demo`: our verdicts are about its data" in md
    assert "## Errata: defects of the original studies" in md and "Nothing was re-initialised" in md
    assert "| bnb | 0.5650 | 0.5950 | -0.0300 |" in md  # as-run vs intended natural accuracy
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.count("<table>") >= 4
    assert page.count('src="data:image/png;base64,') == 3  # every figure inlined: the page is self-contained
    assert not re.search(r'(src|href)="https?:', page)
    assert '<strong class="v-supported">supported</strong>' in page


def test_markdown_to_html_escapes_and_nests(tmp_path: Path) -> None:
    page = markdown_to_html("# T <x>\n\n- a `<b>`\n  - nested **bold**\n- c\n\n![gone](figures/none.png)\n",
                            tmp_path, "t")
    assert "<h1>T &lt;x&gt;</h1>" in page
    assert "<ul><li>a <code>&lt;b&gt;</code></li><ul><li>nested <strong>bold</strong></li></ul><li>c</li></ul>" in page
    assert "figure figures/none.png is missing" in page
