"""Tests for advtransfer.figures on a small, hand-checkable results fixture.

Fixture: tests/fixtures/exp1_results/results.csv (exp1, profile demo, protocols intended and as-run, seeds 0 and 1,
models base_a, bnb, a4b, a4b_plus, a8b, a8b_plus, FGSM at eps 0.005 (primary) and 0.02, n = 200 per row, plus one
exp2 row that must be ignored) and artifacts/exp1-intended-s0-eps_choice.npz (3x16x16 image, 3 eps), written by
``write_eps_choice`` below (``python tests/test_figures.py`` rewrites it).
"""

from __future__ import annotations

import csv
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from advtransfer import figures
from advtransfer.errors import DataError, UserError
from advtransfer.figures import (
    PUBLISHED_LABEL,
    RESULTS_COLUMNS,
    ci95,
    find_eps_choice,
    load_eps_choice,
    make_figures,
    model_sort_key,
    plot_adversarial_performance,
    plot_transfer_performance,
    read_results,
    summary_table,
)

FIXTURE = Path(__file__).parent / "fixtures" / "exp1_results"
NPZ_NAME = "exp1-intended-s0-eps_choice.npz"
ALL_FILES = [
    "exp1_eps_choice.png",
    "exp1_eps_choice.pdf",
    "exp1_transfer_performance.png",
    "exp1_transfer_performance.pdf",
    "exp1_adversarial_performance.png",
    "exp1_adversarial_performance.pdf",
]
T_975_DF1 = 12.706204736174707  # scipy.stats.t.ppf(0.975, 1)


def write_eps_choice(path: Path, eps=(0.002, 0.005, 0.01), size: int = 16, seed: int = 0) -> None:
    """A tiny eps-choice artefact in the runner's format."""
    rng = np.random.default_rng(seed)
    image = rng.uniform(0.0, 1.0, (3, size, size)).astype(np.float32)
    eps_arr = np.asarray(eps, dtype=np.float32)
    signs = np.sign(rng.standard_normal((3, size, size))).astype(np.float32)
    adversarial = np.stack([np.clip(image + e * signs, 0.0, 1.0) for e in eps_arr]).astype(np.float32)
    names = ["space shuttle", *["space shuttle", "missile", "projectile, missile"][: len(eps)]]
    conf = np.linspace(0.93, 0.4, len(eps) + 1).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path, image=image, eps=eps_arr, adversarial=adversarial, pred_names=np.asarray(names, dtype=np.str_),
        pred_conf=conf, true_name=np.asarray("space shuttle"),
    )  # fmt: skip


@pytest.fixture
def results(tmp_path: Path) -> Path:
    dst = tmp_path / "results"
    shutil.copytree(FIXTURE, dst)
    return dst


def _rewrite_csv(path: Path, edit) -> None:
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames)
        rows = list(reader)
    fields, rows = edit(fields, rows)
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fields, lineterminator="\n", extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _entry(table, protocol, model):
    (e,) = [e for e in table if e["protocol"] == protocol and e["model"] == model]
    return e


# ---------------------------------------------------------------------------------------------------------------
# make_figures
# ---------------------------------------------------------------------------------------------------------------


def test_fixture_is_small_and_complete():
    total = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert total < 200_000
    assert (FIXTURE / "artifacts" / NPZ_NAME).is_file()


def test_make_figures_writes_the_six_files(results: Path):
    paths = make_figures(results)
    out = results / "figures"
    assert [p.name for p in paths] == ALL_FILES
    assert sorted(p.name for p in out.iterdir()) == sorted(ALL_FILES)  # nothing else (no temp files)
    for p in paths:
        assert p.parent == out
        data = p.read_bytes()
        assert len(data) > 1000
        if p.suffix == ".png":
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
        else:
            assert data.startswith(b"%PDF")


def test_make_figures_png_is_150_dpi(results: Path):
    from matplotlib.image import imread

    png = next(p for p in make_figures(results) if p.name == "exp1_transfer_performance.png")
    h, w = imread(png).shape[:2]
    assert (w, h) == (round(5.0 * 2 * 150), round(4.3 * 150))  # two protocols, 5 x 4.3 in each


def test_make_figures_custom_out_dir(results: Path, tmp_path: Path):
    out = tmp_path / "elsewhere" / "figs"
    paths = make_figures(results, out)
    assert {p.parent for p in paths} == {out}
    assert not (results / "figures").exists()


def test_make_figures_is_reproducible(results: Path, tmp_path: Path):
    first = {p.name: p.read_bytes() for p in make_figures(results, tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in make_figures(results, tmp_path / "b")}
    again = {p.name: p.read_bytes() for p in make_figures(results, tmp_path / "a")}  # overwrite in place
    assert first.keys() == second.keys() == again.keys()
    for name, data in first.items():
        assert data == second[name] == again[name], name
        if name.endswith(".pdf"):
            assert b"CreationDate" not in data


def test_no_eps_choice_artefact_makes_the_other_four(results: Path):
    shutil.rmtree(results / "artifacts")
    paths = make_figures(results)
    assert [p.name for p in paths] == ALL_FILES[2:]
    assert not (results / "figures" / "exp1_eps_choice.png").exists()


def test_missing_results_csv_is_a_user_error(tmp_path: Path):
    with pytest.raises(UserError) as info:
        make_figures(tmp_path / "nowhere")
    msg = str(info.value)
    assert "no results" in msg
    assert str(tmp_path / "nowhere") in msg
    assert f"advtransfer run exp1 --profile demo --out {tmp_path / 'nowhere'}" in msg
    with pytest.raises(UserError):
        summary_table(tmp_path)


def test_missing_columns_is_a_user_error(results: Path):
    _rewrite_csv(results / "results.csv", lambda f, r: ([c for c in f if c not in ("primary", "eps")], r))
    with pytest.raises(UserError) as info:
        make_figures(results)
    msg = str(info.value)
    assert "missing column(s) eps, primary " in msg


def test_empty_csv_is_a_user_error(results: Path):
    (results / "results.csv").write_text("")
    with pytest.raises(UserError, match="missing column"):
        make_figures(results)


def test_bad_value_is_a_data_error_naming_line_and_column(results: Path):
    def edit(fields, rows):
        rows[3]["accuracy"] = "oops"
        return fields, rows

    _rewrite_csv(results / "results.csv", edit)
    with pytest.raises(DataError, match=r"line 5: bad value in column 'accuracy'"):
        make_figures(results)


def test_no_exp1_rows_returns_empty(results: Path):
    _rewrite_csv(results / "results.csv", lambda f, r: (f, [row for row in r if row["experiment"] != "exp1"]))
    assert make_figures(results) == []
    assert summary_table(results) == []
    assert not (results / "figures").exists()


def test_other_experiments_are_ignored_even_if_malformed(results: Path):
    with (results / "results.csv").open("a") as fh:
        fh.write("exp2,demo,intended,0,x,cifar,,pgd,whitebox,x,not-a-number,native,7,a,b,c,cell\n")
    assert len(make_figures(results)) == 6


def test_corrupt_eps_choice_is_a_data_error(results: Path):
    (results / "artifacts" / NPZ_NAME).write_bytes(b"not a zip")
    with pytest.raises(DataError, match="eps-choice artefact"):
        make_figures(results)


def test_malformed_eps_choice_names_the_problem(tmp_path: Path):
    path = tmp_path / "x-eps_choice.npz"
    np.savez(
        path, image=np.zeros((3, 4, 4), np.float32), eps=np.array([0.01], np.float32),
        adversarial=np.zeros((2, 3, 4, 4), np.float32), pred_names=np.array(["a", "b"]),
        pred_conf=np.array([0.5, 0.5], np.float32), true_name=np.array("a"),
    )  # fmt: skip
    with pytest.raises(DataError, match=r"adversarial has shape \(2, 3, 4, 4\), expected \(1, 3, 4, 4\)"):
        load_eps_choice(path)


def test_load_eps_choice_fixture():
    choice = load_eps_choice(FIXTURE / "artifacts" / NPZ_NAME)
    assert choice.image.shape == (3, 16, 16)
    assert choice.adversarial.shape == (3, 3, 16, 16)
    assert np.allclose(choice.eps, [0.002, 0.005, 0.01])
    assert choice.true_name == "space shuttle"
    assert len(choice.pred_names) == 4 and choice.pred_conf.shape == (4,)
    assert np.abs(choice.adversarial - choice.image).max() <= 0.01 + 1e-6


def test_find_eps_choice_prefers_intended_and_exp1(tmp_path: Path):
    assert find_eps_choice(tmp_path) is None
    art = tmp_path / "artifacts"
    write_eps_choice(art / "exp1-as-run-s0-eps_choice.npz")
    assert find_eps_choice(tmp_path) == art / "exp1-as-run-s0-eps_choice.npz"
    write_eps_choice(art / "exp2-intended-s0-eps_choice.npz")  # another experiment's artefact
    assert find_eps_choice(tmp_path) == art / "exp1-as-run-s0-eps_choice.npz"
    write_eps_choice(art / "exp1-intended-s1-eps_choice.npz")
    write_eps_choice(art / "exp1-intended-s0-eps_choice.npz")
    assert find_eps_choice(tmp_path) == art / "exp1-intended-s0-eps_choice.npz"


# ---------------------------------------------------------------------------------------------------------------
# Aggregation
# ---------------------------------------------------------------------------------------------------------------


def test_read_results_keeps_only_exp1(results: Path):
    rows = read_results(results)
    assert len(rows) == 2 * 2 * 6 * 5  # protocols x seeds x models x evaluations
    assert {r.experiment for r in rows} == {"exp1"}
    r = next(r for r in rows if r.model == "a8b_plus")
    assert r.n_blocks == 8 and r.family == "anb_plus"
    assert next(r for r in rows if r.model == "bnb").n_blocks is None


def test_summary_table_order_and_keys(results: Path):
    table = summary_table(results)
    assert [(e["protocol"], e["model"]) for e in table] == [
        (p, m) for p in ("intended", "as-run") for m in ("base_a", "bnb", "a4b", "a4b_plus", "a8b", "a8b_plus")
    ]
    for e in table:
        assert e["n_seeds"] == 2 and e["seeds"] == ["0", "1"]
        assert e["eps"] == pytest.approx(0.005)
        assert e["profile"] == "demo"


def test_summary_table_means_by_hand(results: Path):
    table = summary_table(results)
    a4b = _entry(table, "intended", "a4b")
    # results.csv: natural 118/200 and 120/200; transfer@0.005 46/200 and 48/200; white-box@0.005 10/200, 12/200.
    # The eps=0.02 rows (primary 0) must not enter.
    assert a4b["natural"] == pytest.approx(0.595)
    assert a4b["transfer"] == pytest.approx(0.235)
    assert a4b["whitebox"] == pytest.approx(0.055)
    assert a4b["transfer_drop"] == pytest.approx((0.595 - 0.235) / 0.595)
    assert (a4b["published_natural"], a4b["published_adversarial"]) == (0.5890, 0.2267)
    assert a4b["published_eps"] == 0.005
    # as-run natural is 6 correct lower: 112/200, 114/200
    assert _entry(table, "as-run", "a4b")["natural"] == pytest.approx(0.565)
    base = _entry(table, "intended", "base_a")
    assert base["natural"] == pytest.approx((40 + 42) / 400)
    assert base["published_adversarial"] is None


def test_ci_for_two_seeds(results: Path):
    a4b = _entry(summary_table(results), "intended", "a4b")
    # sd(0.59, 0.60) = 0.01 / sqrt(2); half-width = t(0.975, 1) * sd / sqrt(2) = 12.7062 * 0.005
    assert a4b["natural_ci"] == pytest.approx(T_975_DF1 * 0.005)
    assert a4b["transfer_ci"] == pytest.approx(T_975_DF1 * 0.005)


def test_ci95():
    mean, half = ci95([0.59, 0.60])
    assert mean == pytest.approx(0.595)
    assert half == pytest.approx(T_975_DF1 * 0.005)
    assert ci95([0.4]) == (0.4, None)
    m, h = ci95([])
    assert math.isnan(m) and h is None
    # n = 3: t(0.975, 2) = 4.302652729911275
    _, half3 = ci95([1.0, 2.0, 3.0])
    assert half3 == pytest.approx(4.302652729911275 * 1.0 / math.sqrt(3))


def test_single_seed_has_no_ci(results: Path):
    _rewrite_csv(results / "results.csv", lambda f, r: (f, [row for row in r if row["seed"] == "0"]))
    a4b = _entry(summary_table(results), "intended", "a4b")
    assert a4b["natural"] == pytest.approx(0.59) and a4b["natural_ci"] is None and a4b["n_seeds"] == 1
    assert len(make_figures(results)) == 6


def test_native_backend_is_preferred(results: Path):
    def edit(fields, rows):
        extra = [dict(row, backend="art", accuracy="0.99") for row in rows if row["threat"] == "transfer"]
        return fields, rows + extra

    _rewrite_csv(results / "results.csv", edit)
    assert _entry(summary_table(results), "intended", "a4b")["transfer"] == pytest.approx(0.235)


def test_mixed_profiles_are_refused(results: Path):
    def edit(fields, rows):
        rows[0]["profile"] = "paper"
        return fields, rows

    _rewrite_csv(results / "results.csv", edit)
    with pytest.raises(DataError, match="mixes"):
        summary_table(results)


def test_several_primary_eps_are_refused(results: Path):
    def edit(fields, rows):
        for row in rows:
            row["primary"] = "1"
        return fields, rows

    _rewrite_csv(results / "results.csv", edit)
    with pytest.raises(DataError, match="several eps as primary"):
        summary_table(results)


def test_model_order():
    models = ["a16b", "a8b_plus", "bnb", "a4b", "a16b_plus", "base_a", "a8b", "a4b_plus", "a12b"]
    assert sorted(models, key=model_sort_key) == [
        "base_a", "bnb", "a4b", "a4b_plus", "a8b", "a8b_plus", "a12b", "a16b", "a16b_plus",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# Published numbers only in the paper profile
# ---------------------------------------------------------------------------------------------------------------


def _labels(fig):
    return [line.get_label() for ax in fig.axes for line in ax.get_lines()]


def test_published_markers_only_in_paper_profile(results: Path):
    demo = summary_table(results)
    assert PUBLISHED_LABEL not in _labels(plot_transfer_performance(demo))
    assert PUBLISHED_LABEL not in _labels(plot_adversarial_performance(demo))

    _rewrite_csv(results / "results.csv", lambda f, r: (f, [dict(row, profile="paper") for row in r]))
    paper = summary_table(results)
    assert PUBLISHED_LABEL in _labels(plot_transfer_performance(paper))
    assert PUBLISHED_LABEL in _labels(plot_adversarial_performance(paper))
    assert len(make_figures(results)) == 6


def test_subplot_per_protocol_intended_first(results: Path):
    fig = plot_transfer_performance(summary_table(results))
    assert [ax.get_title() for ax in fig.axes] == ["protocol: intended", "protocol: as-run"]
    _rewrite_csv(results / "results.csv", lambda f, r: (f, [row for row in r if row["protocol"] == "as-run"]))
    fig = plot_adversarial_performance(summary_table(results))
    assert [ax.get_title() for ax in fig.axes] == ["protocol: as-run"]


def test_module_import_leaves_backend_alone():
    import subprocess

    code = (
        "import matplotlib; before = matplotlib.rcParams._get_backend_or_none() "
        "if hasattr(matplotlib.rcParams, '_get_backend_or_none') else None; "
        "import advtransfer.figures, sys; "
        "assert 'matplotlib.pyplot' not in sys.modules; "
        "after = matplotlib.rcParams._get_backend_or_none() "
        "if hasattr(matplotlib.rcParams, '_get_backend_or_none') else None; "
        "assert before == after, (before, after)"
    )
    src = str(Path(figures.__file__).parents[1])
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": src, "MPLBACKEND": ""})


def test_results_columns_match_fixture_header():
    with (FIXTURE / "results.csv").open() as fh:
        assert tuple(fh.readline().strip().split(",")) == RESULTS_COLUMNS


if __name__ == "__main__":  # rewrite the committed eps-choice artefact
    write_eps_choice(FIXTURE / "artifacts" / NPZ_NAME)
    print("wrote", FIXTURE / "artifacts" / NPZ_NAME)
