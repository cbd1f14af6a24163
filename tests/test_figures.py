"""Study 1's figures (:mod:`advtransfer.studies.imagenet_transfer.figures`) on a small, hand-checkable fixture.

Fixture: tests/fixtures/exp1_results/results.csv, in the *old* format (no study / setting / training columns, which
the kit still reads): exp1, profile demo, protocols intended and as-run, seeds 0 and 1, models base_a, bnb, a4b,
a4b_plus, a8b, a8b_plus, FGSM at eps 0.005 (primary) and 0.02, n = 200 per row, plus one exp2 row (study 2) that
study 1 must ignore; and artifacts/exp1-intended-s0-eps_choice.npz (3x16x16 image, 3 eps), written by
``write_eps_choice`` below (``python tests/test_figures.py`` rewrites it).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from advtransfer import studies
from advtransfer.errors import DataError, UserError
from advtransfer.reporting import plotting
from advtransfer.reporting.outputs import load_results
from advtransfer.results.schema import CSV_COLUMNS, ROW_COLUMNS
from advtransfer.results.stats import SeedResult, estimate, wilson
from advtransfer.results.table import Results
from advtransfer.studies.imagenet_transfer import figures
from advtransfer.studies.imagenet_transfer.figures import (
    EXP1_FIGURES,
    PUBLISHED_LABEL,
    find_eps_choice,
    load_eps_choice,
    make_figures,
    model_sort_key,
    plot_adversarial_performance,
    plot_transfer_performance,
    summarise,
)

FIXTURE = Path(__file__).parent / "fixtures" / "exp1_results"
NPZ_NAME = "exp1-intended-s0-eps_choice.npz"
ALL_FILES = [f"{stem}.{ext}" for stem in EXP1_FIGURES for ext in ("png", "pdf")]
STUDY = "imagenet-transfer"
T_975_DF1 = 12.706204736174707  # scipy.stats.t.ppf(0.975, 1): the old two-seed interval's multiplier


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
def results_dir(tmp_path: Path) -> Path:
    dst = tmp_path / "results"
    shutil.copytree(FIXTURE, dst)
    return dst


def load(folder: Path) -> Results:
    """The folder's table (read from its old-format results.csv), study 1's rows only."""
    return Results.from_csv(folder, study_of=studies.study_of_experiment).only(STUDY)


def figs(folder: Path, out_dir: Path | None = None) -> list[Path]:
    return make_figures(load(folder), folder, out_dir or folder / "figures")


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


def _bars(fig) -> dict[tuple[str, str, str], tuple[float, float, float]]:
    """(axes title, series, tick label) -> (height, error-bar bottom, top) of every bar drawn."""
    from matplotlib.container import BarContainer

    out = {}
    for ax in fig.axes:
        ticks = [t.get_text() for t in ax.get_xticklabels()]
        for c in ax.containers:
            if isinstance(c, BarContainer):
                segs = c.errorbar.lines[2][0].get_segments()
                for i, patch in enumerate(c.patches):
                    out[(ax.get_title(), c.get_label(), ticks[i])] = (patch.get_height(), segs[i][0][1], segs[i][1][1])
    return out


def _png_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.load()  # decodes the whole image: a truncated file fails here
        assert im.mode in ("RGBA", "RGB")
        return im.size


# ---------------------------------------------------------------------------------------------------------------
# The old-format fixture is still read
# ---------------------------------------------------------------------------------------------------------------


def test_fixture_is_small_and_complete():
    total = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert total < 200_000
    assert (FIXTURE / "artifacts" / NPZ_NAME).is_file()


def test_fixture_is_in_the_old_format_and_still_read():
    with (FIXTURE / "results.csv").open() as fh:
        header = tuple(fh.readline().strip().split(","))
    assert header == ROW_COLUMNS[:17]  # up to "cell": no setting, training or aggregate columns
    assert not {"study", "setting", "training", "ci95_low", "ci95_high"} & set(header)
    assert set(header) < set(CSV_COLUMNS)
    results = Results.from_csv(FIXTURE, study_of=studies.study_of_experiment)
    assert len(results.rows) == 2 * 2 * 6 * 5 + 1
    assert results.studies == [STUDY, "cifar-at"]  # from the experiment names, by the study registry
    assert {r.study for r in results.rows if r.experiment == "exp1"} == {STUDY}
    (exp2,) = [r for r in results.rows if r.experiment == "exp2"]
    assert (exp2.study, exp2.setting, exp2.training, exp2.model) == ("cifar-at", None, "", "resnet_at")
    assert results.profile == "demo" and results.cells == ()
    r = next(r for r in results.rows if r.model == "a8b_plus")
    assert r.n_blocks == 8 and r.family == "anb_plus" and r.flags is None
    assert next(r for r in results.rows if r.model == "bnb").n_blocks is None
    # without a registry the study stays unnamed, and no study's figures would pick the rows up
    assert Results.from_csv(FIXTURE).studies == [""]
    # load_results: the same table through the CLI's path (no cells/ here, so results.csv)
    assert load_results(FIXTURE).rows == results.rows


# ---------------------------------------------------------------------------------------------------------------
# make_figures
# ---------------------------------------------------------------------------------------------------------------


def test_make_figures_writes_the_six_files(results_dir: Path):
    paths = figs(results_dir)
    out = results_dir / "figures"
    assert [p.name for p in paths] == ALL_FILES
    assert sorted(p.name for p in out.iterdir()) == sorted(ALL_FILES)  # nothing else (no temp files)
    for p in paths:
        assert p.parent == out
        data = p.read_bytes()
        assert len(data) > 1000
        assert data.startswith(b"\x89PNG\r\n\x1a\n" if p.suffix == ".png" else b"%PDF")


def test_figure_pngs_decode_at_150_dpi_with_the_expected_size(results_dir: Path):
    paths = {p.name: p for p in figs(results_dir)}
    dpi = plotting.DPI
    assert dpi == 150
    # two protocols side by side, 5 x 4.3 in each
    assert _png_size(paths["exp1_transfer_performance.png"]) == (round(5.0 * 2 * dpi), round(4.3 * dpi))
    # six models: max(5, 0.95 * 6 + 1.5) = 7.2 in per protocol, 4.5 in high
    assert _png_size(paths["exp1_adversarial_performance.png"]) == (round(7.2 * 2 * dpi), round(4.5 * dpi))
    # clean image + (perturbation, adversarial) per eps: 7 columns of 1.75 in, 2.5 in high
    w, h = _png_size(paths["exp1_eps_choice.png"])
    assert abs(w - 1.75 * 7 * dpi) <= 1 and h == round(2.5 * dpi)
    with Image.open(paths["exp1_adversarial_performance.png"]) as im:
        pixels = np.asarray(im.convert("RGB")).astype(int)
    # the natural-accuracy bars' colour (#4C72B0) is drawn
    assert (np.abs(pixels - np.array([76, 114, 176])).max(axis=2) < 8).sum() > 1000


def test_make_figures_custom_out_dir(results_dir: Path, tmp_path: Path):
    out = tmp_path / "elsewhere" / "figs"
    paths = figs(results_dir, out)
    assert {p.parent for p in paths} == {out}
    assert [p.name for p in paths] == ALL_FILES
    assert not (results_dir / "figures").exists()


def test_the_study_object_draws_the_same_figures(results_dir: Path, tmp_path: Path):
    study = studies.get(STUDY)
    paths = study.figures(load(results_dir), results_dir, tmp_path / "via-study")
    direct = figs(results_dir, tmp_path / "direct")
    assert [p.name for p in paths] == [p.name for p in direct] == ALL_FILES
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in direct]


def test_make_figures_is_reproducible(results_dir: Path, tmp_path: Path):
    first = {p.name: p.read_bytes() for p in figs(results_dir, tmp_path / "a")}
    second = {p.name: p.read_bytes() for p in figs(results_dir, tmp_path / "b")}
    again = {p.name: p.read_bytes() for p in figs(results_dir, tmp_path / "a")}  # overwrite in place
    assert first.keys() == second.keys() == again.keys()
    for name, data in first.items():
        assert data == second[name] == again[name], name
        if name.endswith(".pdf"):
            assert b"CreationDate" not in data


def test_figure_content_follows_the_data(results_dir: Path, tmp_path: Path):
    before = {p.name: p.read_bytes() for p in figs(results_dir, tmp_path / "before")}

    def edit(fields, rows):
        for row in rows:
            if (row["protocol"], row["model"], row["threat"]) == ("intended", "a4b", "natural"):
                row["correct"], row["accuracy"] = "180", "0.9"
        return fields, rows

    _rewrite_csv(results_dir / "results.csv", edit)
    after = {p.name: p.read_bytes() for p in figs(results_dir, tmp_path / "after")}
    assert after["exp1_transfer_performance.png"] != before["exp1_transfer_performance.png"]
    assert after["exp1_adversarial_performance.png"] != before["exp1_adversarial_performance.png"]
    assert after["exp1_eps_choice.png"] == before["exp1_eps_choice.png"]  # not drawn from the table
    height = _bars(plot_adversarial_performance(summarise(load(results_dir))))[
        ("protocol: intended", "natural", "A4B")][0]
    assert height == pytest.approx(0.9)


def test_no_eps_choice_artefact_makes_the_other_four(results_dir: Path):
    shutil.rmtree(results_dir / "artifacts")
    paths = figs(results_dir)
    assert [p.name for p in paths] == ALL_FILES[2:]
    assert not (results_dir / "figures" / "exp1_eps_choice.png").exists()


def test_no_study1_rows_returns_empty(results_dir: Path):
    _rewrite_csv(results_dir / "results.csv", lambda f, r: (f, [row for row in r if row["experiment"] != "exp1"]))
    assert figs(results_dir) == []
    assert summarise(load(results_dir)) == []
    assert not (results_dir / "figures").exists()


def test_other_studies_rows_are_ignored(results_dir: Path):
    everything = Results.from_csv(results_dir, study_of=studies.study_of_experiment)
    assert any(r.model == "resnet_at" for r in everything.rows)
    table = summarise(load(results_dir))
    assert "resnet_at" not in {e["model"] for e in table}
    assert len(table) == 12


# ---------------------------------------------------------------------------------------------------------------
# Malformed results: one error naming the file, the line and the column
# ---------------------------------------------------------------------------------------------------------------


def test_missing_results_is_a_user_error(tmp_path: Path):
    nowhere = tmp_path / "nowhere"
    with pytest.raises(UserError) as info:
        load_results(nowhere)
    assert str(info.value) == (f"no results in {nowhere} (no cells/*.json and no results.csv): run `advtransfer run "
                               f"EXPERIMENT --profile PROFILE --out {nowhere}` first")
    with pytest.raises(UserError) as info:
        Results.from_csv(nowhere)
    assert str(info.value) == (f"no results found: there is no {nowhere / 'results.csv'}; run `advtransfer run "
                               f"EXPERIMENT --profile PROFILE --out {nowhere}` first")


def test_missing_columns_is_a_user_error(results_dir: Path):
    _rewrite_csv(results_dir / "results.csv", lambda f, r: ([c for c in f if c not in ("primary", "eps")], r))
    with pytest.raises(UserError) as info:
        load(results_dir)
    path = results_dir / "results.csv"
    assert str(info.value) == (f"{path} is malformed: missing column(s) eps, primary; rebuild it from the cell "
                               f"files with `advtransfer figures --results {results_dir}`, or rerun the experiment")
    assert not isinstance(info.value, DataError)


def test_empty_csv_is_a_user_error(results_dir: Path):
    (results_dir / "results.csv").write_text("")
    with pytest.raises(UserError) as info:
        load(results_dir)
    assert f"{results_dir / 'results.csv'} is malformed: missing column(s) experiment, profile, protocol, " \
           "seed," in str(info.value)


@pytest.mark.parametrize(("column", "value", "why"), [
    ("accuracy", "oops", "could not convert string to float: 'oops'"),
    ("accuracy", "1.5", "1.5 is not in [0, 1]"),
    ("accuracy", "nan", "nan is not in [0, 1]"),
    ("seed", "1.5", "'1.5' is not an integer"),
    ("correct", "", "could not convert string to float: ''"),
    ("primary", "maybe", "expected 0 or 1, got 'maybe'"),
    ("eps", "tiny", "could not convert string to float: 'tiny'"),
])
def test_bad_value_is_a_data_error_naming_line_and_column(results_dir: Path, column: str, value: str, why: str):
    def edit(fields, rows):
        rows[3][column] = value  # line 5: the header is line 1
        return fields, rows

    _rewrite_csv(results_dir / "results.csv", edit)
    with pytest.raises(DataError) as info:
        load(results_dir)
    assert str(info.value) == f"{results_dir / 'results.csv'} line 5: bad value in column '{column}': {why}"


def test_a_bad_value_in_another_studys_row_is_still_an_error(results_dir: Path):
    """The table is built once for every study, so a malformed row anywhere is reported (with its line)."""
    with (results_dir / "results.csv").open("a") as fh:
        fh.write("exp2,demo,intended,0,x,cifar,,pgd,whitebox,x,not-a-number,native,0.5,1,2,1,cell\n")
    with pytest.raises(DataError) as info:
        load(results_dir)
    assert str(info.value) == (f"{results_dir / 'results.csv'} line 123: bad value in column 'eps': could not "
                               "convert string to float: 'not-a-number'")


def test_non_utf8_csv_is_a_data_error(results_dir: Path):
    path = results_dir / "results.csv"
    path.write_bytes(path.read_bytes() + b"exp1,demo,\xff\xfe\n")
    with pytest.raises(DataError) as info:
        load(results_dir)
    assert str(info.value) == f"{path} is not a UTF-8 CSV file (invalid start byte)"


def test_mixed_profiles_are_refused(results_dir: Path):
    def edit(fields, rows):
        rows[0]["profile"] = "paper"
        return fields, rows

    _rewrite_csv(results_dir / "results.csv", edit)
    with pytest.raises(DataError) as info:
        load(results_dir)
    assert str(info.value) == (f"{results_dir} mix exp1 results of profiles demo, paper; averaging them would be "
                               "meaningless: write each profile to its own --out folder")


def test_several_primary_eps_are_refused(results_dir: Path):
    _rewrite_csv(results_dir / "results.csv", lambda f, r: (f, [dict(row, primary="1") for row in r]))
    with pytest.raises(DataError) as info:
        summarise(load(results_dir))
    assert str(info.value) == ("the results flag several eps as primary for intended/base_a/transfer: 0.005, 0.02; "
                               "exactly one eps must be primary")


def test_corrupt_eps_choice_is_a_data_error(results_dir: Path):
    path = results_dir / "artifacts" / NPZ_NAME
    path.write_bytes(b"not a zip")
    with pytest.raises(DataError) as info:
        figs(results_dir)
    msg = str(info.value)
    assert msg.startswith(f"cannot read eps-choice artefact {path} (")
    assert msg.endswith("); delete it and rerun `advtransfer run exp1` to rewrite it")
    assert not (results_dir / "figures").exists()  # the artefact is checked before anything is written


def test_eps_choice_lacking_arrays_names_them(tmp_path: Path):
    path = tmp_path / "x-eps_choice.npz"
    np.savez(path, image=np.zeros((3, 4, 4), np.float32), eps=np.array([0.01], np.float32))
    with pytest.raises(DataError) as info:
        load_eps_choice(path)
    assert str(info.value) == (f"eps-choice artefact {path} lacks array(s) adversarial, pred_names, pred_conf, "
                               "true_name; delete it and rerun `advtransfer run exp1` to rewrite it")


def test_malformed_eps_choice_names_the_problem(tmp_path: Path):
    path = tmp_path / "x-eps_choice.npz"
    np.savez(
        path, image=np.zeros((3, 4, 4), np.float32), eps=np.array([0.01], np.float32),
        adversarial=np.zeros((2, 3, 4, 4), np.float32), pred_names=np.array(["a", "b", "c"]),
        pred_conf=np.array([0.5, 0.5], np.float32), true_name=np.array("a"),
    )  # fmt: skip
    with pytest.raises(DataError) as info:
        load_eps_choice(path)
    assert str(info.value) == (f"eps-choice artefact {path} is malformed: adversarial has shape (2, 3, 4, 4), "
                               "expected (1, 3, 4, 4); pred_names has 3 entries, expected 2; delete it and rerun "
                               "`advtransfer run exp1` to rewrite it")


def test_load_eps_choice_fixture():
    choice = load_eps_choice(FIXTURE / "artifacts" / NPZ_NAME)
    assert choice.image.shape == (3, 16, 16)
    assert choice.adversarial.shape == (3, 3, 16, 16)
    assert np.allclose(choice.eps, [0.002, 0.005, 0.01])
    assert choice.true_name == "space shuttle"
    assert choice.pred_names == ["space shuttle", "space shuttle", "missile", "projectile, missile"]
    assert choice.pred_conf.shape == (4,)
    assert np.abs(choice.adversarial - choice.image).max() <= 0.01 + 1e-6


def test_find_eps_choice_from_results_csv_prefers_intended_and_the_experiment(tmp_path: Path):
    results = load(FIXTURE)  # rows of exp1, no cells
    assert find_eps_choice(results, tmp_path) is None
    art = tmp_path / "artifacts"
    write_eps_choice(art / "exp1-as-run-s0-eps_choice.npz")
    assert find_eps_choice(results, tmp_path) == art / "exp1-as-run-s0-eps_choice.npz"
    write_eps_choice(art / "exp2-intended-s0-eps_choice.npz")  # another experiment's artefact
    assert find_eps_choice(results, tmp_path) == art / "exp1-as-run-s0-eps_choice.npz"
    write_eps_choice(art / "exp1-intended-s1-eps_choice.npz")
    write_eps_choice(art / "exp1-intended-s0-eps_choice.npz")
    assert find_eps_choice(results, tmp_path) == art / "exp1-intended-s0-eps_choice.npz"


def test_find_eps_choice_uses_the_artefact_a_cell_recorded(tmp_path: Path):
    write_eps_choice(tmp_path / "artifacts" / "exp1-intended-s0-zzz-eps_choice.npz")  # not recorded: ignored
    cells = [{"cell": "exp1-as-run-s0-base_a", "protocol": "as-run",
              "artifacts": {"eps_choice": "artifacts/exp1-as-run-s0-base_a-eps_choice.npz"}},
             {"cell": "exp1-intended-s1-base_a", "protocol": "intended",
              "artifacts": {"eps_choice": "artifacts/exp1-intended-s1-base_a-eps_choice.npz"}},
             {"cell": "exp1-intended-s0-bnb", "protocol": "intended", "artifacts": {}}]
    results = Results(load(FIXTURE).rows, cells)
    assert find_eps_choice(results, tmp_path) == tmp_path / "artifacts" / "exp1-intended-s1-base_a-eps_choice.npz"
    results = Results(load(FIXTURE).rows, cells[:1])
    assert find_eps_choice(results, tmp_path) == tmp_path / "artifacts" / "exp1-as-run-s0-base_a-eps_choice.npz"


# ---------------------------------------------------------------------------------------------------------------
# The numbers: summarise
# ---------------------------------------------------------------------------------------------------------------


def test_summarise_order_and_keys(results_dir: Path):
    table = summarise(load(results_dir))
    assert [(e["protocol"], e["model"]) for e in table] == [
        (p, m) for p in ("intended", "as-run") for m in ("base_a", "bnb", "a4b", "a4b_plus", "a8b", "a8b_plus")
    ]
    for e in table:
        assert e["n_seeds"] == 2
        assert e["eps"] == pytest.approx(0.005)
        assert e["profile"] == "demo"
        assert e["pgd"] is None  # the fixture has no PGD rows for study 1
        for kind in ("natural", "transfer", "whitebox"):
            assert [s.seed for s in e[kind].seeds] == [0, 1] and e[kind].n == 400


def test_summarise_means_by_hand(results_dir: Path):
    table = summarise(load(results_dir))
    a4b = _entry(table, "intended", "a4b")
    # results.csv: natural 118/200 and 120/200; transfer@0.005 46/200 and 48/200; white-box@0.005 10/200, 12/200.
    # The eps=0.02 rows (primary 0) must not enter.
    assert a4b["natural"].mean == pytest.approx(0.595)
    assert a4b["transfer"].mean == pytest.approx(0.235)
    assert a4b["whitebox"].mean == pytest.approx(0.055)
    assert a4b["transfer_drop"] == pytest.approx((0.595 - 0.235) / 0.595)
    assert (a4b["published_natural"], a4b["published_adversarial"]) == (0.5890, 0.2267)
    assert a4b["published_eps"] == 0.005
    # as-run natural is 6 correct lower: 112/200, 114/200
    assert _entry(table, "as-run", "a4b")["natural"].mean == pytest.approx(0.565)
    base = _entry(table, "intended", "base_a")
    assert base["natural"].mean == pytest.approx((40 + 42) / 400)
    assert base["published_adversarial"] is None


def test_two_seed_interval_by_hand(results_dir: Path):
    """A4B natural, 118/200 and 120/200: Wilson at the effective n of the larger of the binomial and the seed
    variance; not the old t-interval (12.7 x the seeds' standard error)."""
    nat = _entry(summarise(load(results_dir)), "intended", "a4b")["natural"]
    binomial = (0.59 * 0.41 / 200 + 0.60 * 0.40 / 200) / 4
    seed = np.var([0.59, 0.60], ddof=1) / 2
    variance = max(binomial, seed)
    assert nat.variance == pytest.approx(variance)
    assert (nat.low, nat.high) == pytest.approx(wilson(0.595, 0.595 * 0.405 / variance), abs=1e-12)
    assert nat.text() == "0.5950 [0.5462, 0.6420]"
    assert nat == estimate([SeedResult(0, 118, 200), SeedResult(1, 120, 200)])
    old_half = T_975_DF1 * 0.005
    assert nat.high - nat.mean < old_half and nat.mean - nat.low < old_half


def test_single_seed_interval_is_wilson(results_dir: Path):
    _rewrite_csv(results_dir / "results.csv", lambda f, r: (f, [row for row in r if row["seed"] == "0"]))
    a4b = _entry(summarise(load(results_dir)), "intended", "a4b")
    assert a4b["n_seeds"] == 1
    assert (a4b["natural"].mean, a4b["natural"].low, a4b["natural"].high) == pytest.approx(
        (0.59, *wilson(0.59, 200)), abs=1e-12)
    assert len(figs(results_dir)) == 6


def test_native_backend_is_preferred(results_dir: Path):
    def edit(fields, rows):
        extra = [dict(row, backend="art", accuracy="0.99", correct="198") for row in rows
                 if row["threat"] == "transfer"]
        return fields, rows + extra

    _rewrite_csv(results_dir / "results.csv", edit)
    results = load(results_dir)
    transfer = _entry(summarise(results), "intended", "a4b")["transfer"]
    assert transfer.mean == pytest.approx(0.235)
    (key,) = [k for k in results.reference if (k.protocol, k.model, k.threat, k.eps) == ("intended", "a4b",
                                                                                          "transfer", 0.005)]
    assert results.reference_backend(key) == "native"
    assert results.by_backend[(key, "art")].mean == pytest.approx(0.99)  # kept in the table, not drawn


def test_model_order():
    models = ["a16b", "a8b_plus", "bnb", "a4b", "a16b_plus", "base_a", "a8b", "a4b_plus", "a12b", "zeta"]
    assert sorted(models, key=model_sort_key) == [
        "base_a", "bnb", "a4b", "a4b_plus", "a8b", "a8b_plus", "a12b", "a16b", "a16b_plus", "zeta",
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------
# What the plots draw
# ---------------------------------------------------------------------------------------------------------------


def test_adversarial_bars_and_error_bars_are_the_estimates(results_dir: Path):
    table = summarise(load(results_dir))
    bars = _bars(plot_adversarial_performance(table))
    names = {"natural": "natural", "transfer": "FGSM transfer (from Base A)", "whitebox": "FGSM white-box"}
    ticks = {"base_a": "Base A", "bnb": "BnB", "a4b": "A4B", "a4b_plus": "A4B+", "a8b": "A8B", "a8b_plus": "A8B+"}
    assert len(bars) == 2 * 6 * 3
    for e in table:
        for kind, name in names.items():
            est = e[kind]
            assert bars[(f"protocol: {e['protocol']}", name, ticks[e["model"]])] == pytest.approx(
                (est.mean, est.low, est.high), abs=1e-12)


def test_transfer_performance_draws_natural_accuracy_with_intervals(results_dir: Path):
    from matplotlib.container import ErrorbarContainer

    table = summarise(load(results_dir))
    fig = plot_transfer_performance(table)
    ax = fig.axes[0]  # intended
    lines = {c.get_label(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}
    assert set(lines) == {"AnB (frozen)", "AnB+ (fine-tuned)"}
    for label, models in (("AnB (frozen)", ("a4b", "a8b")), ("AnB+ (fine-tuned)", ("a4b_plus", "a8b_plus"))):
        xy = lines[label].lines[0].get_xydata()
        segs = lines[label].lines[2][0].get_segments()
        for (x, y), seg, model, n in zip(xy, segs, models, (4, 8)):
            est = _entry(table, "intended", model)["natural"]
            assert (x, y, seg[0][1], seg[1][1]) == pytest.approx((n, est.mean, est.low, est.high), abs=1e-12)
    bnb = next(line for line in ax.get_lines() if line.get_label() == "BnB (target, scratch)")
    assert bnb.get_ydata()[0] == pytest.approx(_entry(table, "intended", "bnb")["natural"].mean)


def _labels(fig):
    return [line.get_label() for ax in fig.axes for line in ax.get_lines()]


def test_published_markers_only_in_paper_profile(results_dir: Path):
    demo = summarise(load(results_dir))
    assert PUBLISHED_LABEL not in _labels(plot_transfer_performance(demo))
    assert PUBLISHED_LABEL not in _labels(plot_adversarial_performance(demo))
    assert PUBLISHED_LABEL in _labels(plot_adversarial_performance(demo, show_published=True))

    _rewrite_csv(results_dir / "results.csv", lambda f, r: (f, [dict(row, profile="paper") for row in r]))
    paper = summarise(load(results_dir))
    assert {e["profile"] for e in paper} == {"paper"}
    assert PUBLISHED_LABEL in _labels(plot_transfer_performance(paper))
    fig = plot_adversarial_performance(paper)
    assert PUBLISHED_LABEL in _labels(fig)
    # the hollow markers sit at the published numbers: natural for every model, FGSM transfer where published
    ax = fig.axes[0]
    ys = sorted(round(float(y), 4) for line in ax.get_lines() if line.get_marker() == "o"
                for y in line.get_ydata())
    assert ys == sorted([0.2070, 0.5907, 0.5890, 0.5965, 0.5727, 0.5963, 0.2267, 0.2592, 0.1932, 0.2583])
    assert PUBLISHED_LABEL not in _labels(plot_adversarial_performance(paper, show_published=False))
    assert len(figs(results_dir)) == 6


def test_subplot_per_protocol_intended_first(results_dir: Path):
    fig = plot_transfer_performance(summarise(load(results_dir)))
    assert [ax.get_title() for ax in fig.axes] == ["protocol: intended", "protocol: as-run"]
    assert "mean of 2 seeds, 95% interval" in fig.get_suptitle()
    _rewrite_csv(results_dir / "results.csv", lambda f, r: (f, [row for row in r if row["protocol"] == "as-run"]))
    fig = plot_adversarial_performance(summarise(load(results_dir)))
    assert [ax.get_title() for ax in fig.axes] == ["protocol: as-run"]
    assert "eps=0.005 (pixel) / 0.01 in [-1,1]" in fig.get_suptitle()


def test_module_import_leaves_backend_alone():
    code = (
        "import matplotlib; before = matplotlib.rcParams._get_backend_or_none() "
        "if hasattr(matplotlib.rcParams, '_get_backend_or_none') else None; "
        "import advtransfer.studies.imagenet_transfer.figures, advtransfer.studies.cifar_at.figures, "
        "advtransfer.reporting.plotting, sys; "
        "assert 'matplotlib.pyplot' not in sys.modules; "
        "after = matplotlib.rcParams._get_backend_or_none() "
        "if hasattr(matplotlib.rcParams, '_get_backend_or_none') else None; "
        "assert before == after, (before, after)"
    )
    src = str(Path(figures.__file__).parents[3])
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": src, "MPLBACKEND": ""})


def test_error_bars_helper():
    a = estimate([SeedResult(0, 50, 100)])
    below, above = plotting.error_bars([a, None])
    assert below == pytest.approx([a.mean - a.low, 0.0]) and above == pytest.approx([a.high - a.mean, 0.0])
    assert plotting.error_bars([None, None]) is None


if __name__ == "__main__":  # rewrite the committed eps-choice artefact
    write_eps_choice(FIXTURE / "artifacts" / NPZ_NAME)
    print("wrote", FIXTURE / "artifacts" / NPZ_NAME)
