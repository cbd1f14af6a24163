"""End-to-end runs of the `advtransfer` CLI on study 1 (miniature config, CPU, offline)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from advtransfer.cli import main
from advtransfer.studies.imagenet_transfer.figures import EXP1_FIGURES
from conftest import copy_run_without_autoattack

FAST = ["--device", "cpu"]


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _run(config: Path, out: Path, *extra: str) -> int:
    return main(["run", str(config), "--profile", "mini", "--out", str(out), *FAST, *extra])


def _cli(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "advtransfer.cli", *args], capture_output=True, text=True, check=False,
                          env={**os.environ, **(env or {})}, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def mini_config(tmp_path_factory) -> Path:
    """The shared miniature config with AutoAttack on (the demo's cheap setting) and 4 target classes instead of 3
    (AutoAttack's APGD-T needs at least 4)."""
    from conftest import MINI_EXP1

    path = tmp_path_factory.mktemp("config") / "exp1_mini.toml"
    assert "n_target_classes = 3" in MINI_EXP1 and "[profiles.mini.tiny]" in MINI_EXP1
    path.write_text(MINI_EXP1.replace("n_target_classes = 3", "n_target_classes = 4").replace(
        "[profiles.mini.tiny]", "[profiles.mini.robust_eval]\nautoattack = true\napgd_steps = 5\ntarget_classes = 3\n"
        "fab_steps = 5\nsquare_queries = 50\n[profiles.mini.tiny]"))
    return path


@pytest.fixture(scope="module")
def mini_run(mini_config: Path, tmp_path_factory) -> Path:
    """One uninterrupted run, shared by the tests of this module (they must not modify it)."""
    out = tmp_path_factory.mktemp("run") / "out"
    assert _run(mini_config, out) == 0
    return out


def test_run_writes_cells_results_and_figures(mini_run: Path) -> None:
    rows = _rows(mini_run)
    models = {"base_a", "bnb", "a4b", "a4b_plus", "a16b", "a16b_plus"}
    for protocol in ("intended", "as-run"):
        mine = [r for r in rows if r["protocol"] == protocol]
        assert {r["model"] for r in mine} == models
        for model in models:
            kinds = {(r["threat"], float(r["eps"])) for r in mine if r["model"] == model}
            assert kinds == {("natural", 0.0), ("transfer", 0.03), ("transfer", 0.1), ("whitebox", 0.03),
                             ("whitebox", 0.1)}
    for r in rows:
        assert 0.0 <= float(r["accuracy"]) <= 1.0 and int(r["n"]) > 0
        assert int(r["primary"]) == (r["threat"] == "natural" or float(r["eps"]) == 0.03)
    cell = json.loads((mini_run / "cells" / "exp1-intended-a4b-s0.json").read_text())
    for key in ("config", "provenance", "evaluations", "training_log", "wall_seconds", "seed"):
        assert key in cell
    assert set(cell["provenance"]) >= {"git", "versions", "device_name", "python"}
    assert cell["training_log"]["frozen_features"] == 6 and len(cell["training_log"]["history"]) == 2
    ev = cell["evaluations"][0]
    assert len(ev["flags"]) == ev["n"] and ev["flags"].count("1") == ev["correct"]
    for name in EXP1_FIGURES:
        for ext in ("png", "pdf"):
            assert (mini_run / "figures" / f"{name}.{ext}").stat().st_size > 1000
    assert (mini_run / "manifests" / "exp1-intended-s0.json").is_file()
    # AutoAttack: white-box at the main eps on every model, torchattacks (the only backend with it), flags kept
    aa = [r for r in rows if r["attack"] == "autoattack"]
    assert sorted((r["protocol"], r["model"]) for r in aa) == sorted((p, m) for p in ("intended", "as-run")
                                                                     for m in models)
    assert all((r["threat"], float(r["eps"]), r["backend"], r["primary"]) == ("whitebox", 0.03, "torchattacks", "1")
               for r in aa)
    by = {(e["attack"], e["backend"]): e for e in cell["evaluations"]}
    assert len(by[("autoattack", "torchattacks")]["flags"]) == by[("pgd", "native")]["n"]
    apgd = [r for r in cell["crosscheck"] if r["attack"].startswith("apgd_ce")]
    assert [(r["backends"], r["agree"]) for r in apgd] == [("torchattacks vs art", True)]
    report = (mini_run / "report.md").read_text()
    assert "| PGD white-box | AutoAttack white-box | published natural |" in report and "| 1.3aa |" in report


def test_rerun_skips_finished_cells(mini_config: Path, mini_run: Path, capsys) -> None:
    before = {p.name: p.stat().st_mtime_ns for p in (mini_run / "cells").iterdir()}
    csv_before = (mini_run / "results.csv").read_text()
    capsys.readouterr()
    assert _run(mini_config, mini_run) == 0
    assert "done already, skipped" in capsys.readouterr().err
    assert {p.name: p.stat().st_mtime_ns for p in (mini_run / "cells").iterdir()} == before
    assert (mini_run / "results.csv").read_text() == csv_before


def test_rerun_with_more_backends_trains_nothing_and_adds_their_rows(mini_config: Path, mini_run: Path,
                                                                    tmp_path: Path, capsys) -> None:
    """Asking a finished run for the cross-check backends re-evaluates, never retrains (Base A included): no epoch
    runs, no checkpoint is rewritten, every existing row stays as it was, and each FGSM / PGD evaluation gains a
    torchattacks and an ART row."""
    from advtransfer.results.schema import ROW_COLUMNS

    out = tmp_path / "more"
    shutil.copytree(mini_run, out, copy_function=os.link)  # hard links: a rewritten file would get a new inode
    checkpoints = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "checkpoints").rglob("*.pt")}
    assert any("base_a-pretrain" in str(p) for p in checkpoints)
    before = _rows(out)
    capsys.readouterr()
    assert _run(mini_config, out, "--backends", "native,torchattacks,art") == 0
    err = capsys.readouterr().err
    assert "  epoch " not in err and "ignoring checkpoints" not in err and "adding torchattacks, art" in err
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "checkpoints").rglob("*.pt")} == checkpoints
    after = _rows(out)
    assert [{c: r[c] for c in ROW_COLUMNS} for r in after if r["backend"] in ("", "native")
            or r["attack"] == "autoattack"] == [{c: r[c] for c in ROW_COLUMNS} for r in before]
    native = [(r["cell"], r["attack"], r["threat"], r["eps"]) for r in before if r["backend"] == "native"]
    for backend in ("torchattacks", "art"):
        assert sorted((r["cell"], r["attack"], r["threat"], r["eps"]) for r in after if r["backend"] == backend
                      and r["attack"] != "autoattack") == sorted(native)
    # FGSM has no randomness: the three backends agree example by example (SPEC section 4)
    flags = {}
    for path in (out / "cells").iterdir():
        for ev in json.loads(path.read_text())["evaluations"]:
            if ev["attack"] == "fgsm":
                flags.setdefault((path.name, ev["threat"], ev["eps"]), {})[ev["backend"]] = ev["flags"]
    assert flags and all(len(set(by.values())) == 1 and len(by) == 3 for by in flags.values())


def test_rerun_with_autoattack_added_trains_nothing_and_adds_exactly_its_rows(mini_config: Path, mini_run: Path,
                                                                             tmp_path: Path, capsys,
                                                                             monkeypatch) -> None:
    """Cells finished before AutoAttack existed are extended with its rows (per-example flags equal to a fresh
    run's), nothing is trained and no checkpoint is rewritten."""
    from advtransfer import studies
    from advtransfer.studies.imagenet_transfer import cell as cell1

    out = tmp_path / "old"
    checkpoints = copy_run_without_autoattack(mini_run, out)
    exp = studies.load_experiment(str(mini_config), "mini")
    assert not cell1.is_complete(exp, json.loads(next((out / "cells").iterdir()).read_text()))
    # The study must judge completeness by the cell's rule (studies/imagenet_transfer/__init__.py:
    # is_complete = staticmethod(cell.is_complete)); set here so the test holds either way.
    monkeypatch.setattr(type(exp.study), "is_complete", staticmethod(cell1.is_complete))
    capsys.readouterr()
    assert _run(mini_config, out) == 0
    err = capsys.readouterr().err
    assert "  epoch " not in err and "ignoring checkpoints" not in err
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "checkpoints").rglob("*.pt")} == checkpoints
    for path in (mini_run / "cells").iterdir():
        ref, doc = json.loads(path.read_text()), json.loads((out / "cells" / path.name).read_text())
        key = lambda r: (r["threat"], r["attack"], r["eps"], r["backend"])  # noqa: E731
        assert sorted(doc["evaluations"], key=key) == sorted(ref["evaluations"], key=key), path.name
        assert doc["extensions"][-1]["evaluations"] == ["whitebox/autoattack/0.03/torchattacks"]
    assert sorted(_rows(out), key=lambda r: (r["cell"], r["attack"], r["threat"], r["eps"], r["backend"])) == \
        sorted(_rows(mini_run), key=lambda r: (r["cell"], r["attack"], r["threat"], r["eps"], r["backend"]))


def test_same_seed_same_results_and_resume_after_kill(mini_config: Path, mini_run: Path, tmp_path: Path) -> None:
    """A run killed (SIGKILL) after its first epoch resumes and ends with the same results as an uninterrupted one;
    the uninterrupted reference also shows that the same seed gives the same numbers and per-example flags."""
    out = tmp_path / "killed"
    args = ["run", str(mini_config), "--profile", "mini", "--out", str(out), *FAST]
    killed = _cli(*args, env={"ADVTRANSFER_KILL_AFTER_EPOCH": "1"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "cells").exists()  # killed inside Base A's pretraining, before any cell finished
    assert any((out / "checkpoints").rglob("epoch_001.pt"))
    resumed = _cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from epoch_001.pt" in resumed.stderr
    assert (out / "results.csv").read_text() == (mini_run / "results.csv").read_text()
    for ref in (mini_run / "cells").iterdir():
        a, b = json.loads(ref.read_text()), json.loads((out / "cells" / ref.name).read_text())
        assert a["evaluations"] == b["evaluations"], ref.name


def test_paper_profile_without_data_fails_fast_with_one_message(tmp_path: Path) -> None:
    result = _cli("run", "exp1", "--profile", "paper", "--out", str(tmp_path / "out"), "--data-root",
                  str(tmp_path / "nodata"), env={"TORCH_HOME": str(tmp_path / "torch")})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    err = result.stderr
    assert err.startswith("advtransfer: error: cannot run exp1 --profile paper: 2 things are missing")
    assert "advtransfer data fetch imagenet-r" in err and str(tmp_path / "nodata" / "imagenet-r") in err
    assert "advtransfer data fetch weights" in err and "mobilenet_v2-b0353104.pth" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, expected", [
    (["run", "exp1", "--profile", "nope"], "unknown profile 'nope'"),
    (["run", "nope", "--profile", "demo"], "unknown experiment 'nope'"),
    (["figures", "--results", "/nonexistent/dir"], "does not exist"),
    (["data", "check", "exp1", "--profile", "paper", "--data-root", "/nonexistent"], "ImageNet-R is not under"),
])
def test_bad_input_gives_one_clear_message(args, expected, capsys, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_bad_config_value_names_the_valid_ones(mini_exp1: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(mini_exp1.read_text().replace("blocks = [4, 16]", "blocks = [5]"))
    assert main(["run", str(bad), "--profile", "mini", "--out", str(tmp_path / "o")]) == 2
    assert "valid: 4, 8, 12, 16" in capsys.readouterr().err


def test_figures_command_rebuilds_from_saved_results(mini_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(mini_run, copy, ignore=shutil.ignore_patterns("figures", "results.csv", "checkpoints"))
    assert main(["figures", "--results", str(copy)]) == 0
    assert (copy / "results.csv").read_text() == (mini_run / "results.csv").read_text()
    names = sorted(p.name for p in (copy / "figures").iterdir())
    expected = [*EXP1_FIGURES, "curves_exp1"]  # the study's figures and the training curves
    assert names == sorted(f"{stem}.{ext}" for stem in expected for ext in ("pdf", "png"))
    assert names == sorted(p.name for p in (mini_run / "figures").iterdir())


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["intended", "as-run"])  # one protocol per test: two xdist workers share them
def test_demo_profile_learns_and_fgsm_hurts(protocol: str, tmp_path: Path) -> None:
    """The shipped demo profile: trained models beat chance (1/8) by a wide margin; FGSM lowers accuracy."""
    out = tmp_path / "demo"
    assert main(["run", "exp1", "--profile", "demo", "--out", str(out), "--cells", f"exp1-{protocol}-*", *FAST]) == 0
    rows = _rows(out)
    assert {r["protocol"] for r in rows} == {protocol}
    assert {r["seed"] for r in rows} == {"0"}  # one seed keeps `make demo` within 5 minutes
    for model in ("bnb", "a4b", "a4b_plus", "a8b", "a8b_plus", "a12b", "a12b_plus", "a16b", "a16b_plus"):
        # Each pattern with a margin from the test's n (the model's test images), so it is a statistic of the
        # demo, not a coin flip on a few hundred images.
        mine = [r for r in rows if r["model"] == model and int(r["primary"]) == 1]
        acc = {(threat, attack): sum(int(r["correct"]) for r in mine if (r["threat"], r["attack"]) == (threat, attack))
               / sum(int(r["n"]) for r in mine if (r["threat"], r["attack"]) == (threat, attack))
               for threat, attack in (("natural", "none"), ("whitebox", "fgsm"), ("transfer", "fgsm"))}
        n = sum(int(r["n"]) for r in mine if r["threat"] == "natural")
        assert n == 240, (model, n)  # 20% of 8 classes x 150 images
        natural = acc[("natural", "none")]
        assert natural > 0.4, (protocol, model, acc)  # chance is 1/8
        # Attacks lower accuracy: white-box FGSM clearly; the transfer attack from Base A (which a model trained
        # from scratch shares nothing with) at least never helps beyond what n test images can show: a
        # 3-sigma margin for the difference of two accuracies on the same n images.
        margin = 3 * (2 * natural * (1 - natural) / n) ** 0.5 + 1 / n
        assert acc[("whitebox", "fgsm")] < natural - margin, (protocol, model, acc, margin)
        assert acc[("transfer", "fgsm")] <= natural + margin, (protocol, model, acc, margin)
    # One seed: every row's interval is over its test images, and holds its accuracy.
    assert all(r["n_seeds"] == "1" and float(r["ci95_low"]) <= float(r["accuracy"]) <= float(r["ci95_high"])
               and 0.0 <= float(r["ci95_low"]) and float(r["ci95_high"]) <= 1.0 for r in rows)
    assert all(abs(float(r["seed_mean"]) - float(r["accuracy"])) < 1e-6 for r in rows)


def test_block_transfer_on_another_torchvision_architecture(mini_config: Path, tmp_path: Path) -> None:
    """Base A as MobileNetV3-small (``base_arch``): N counts entries of its ``features``; AnB-4 copies and freezes
    features[:4] of the kit-pretrained Base A, and every model is evaluated as MobileNetV2's are."""
    import torch

    config = tmp_path / "exp1_v3.toml"
    config.write_text(mini_config.read_text().replace('protocols = ["intended", "as-run"]', 'protocols = ["intended"]')
                      .replace("blocks = [4, 16]", "blocks = [4]").replace("width_mult = 0.25\nstride8 = true\n", "")
                      .replace("[profiles.mini]\n", '[profiles.mini]\nbase_arch = "mobilenet_v3_small"\n'))
    out = tmp_path / "out"
    assert _run(config, out) == 0
    rows = _rows(out)
    assert {r["model"] for r in rows} == {"base_a", "bnb", "a4b", "a4b_plus"}
    assert {r["attack"] for r in rows} == {"none", "fgsm", "pgd", "autoattack"}
    cell = json.loads((out / "cells" / "exp1-intended-a4b-s0.json").read_text())
    assert cell["training_log"]["frozen_features"] == 4
    base = torch.load(max((out / "checkpoints" / "exp1-base_a-pretrain-s0").glob("epoch_*.pt")), weights_only=True)
    a4b = torch.load(max((out / "checkpoints" / "exp1-intended-a4b-s0").glob("epoch_*.pt")), weights_only=True)
    copied = [k for k in base["model"] if k.startswith("net.features.") and int(k.split(".")[2]) < 4]
    assert copied and all(torch.equal(a4b["model"][k], base["model"][k]) for k in copied)
    assert not torch.equal(a4b["model"]["net.features.4.block.0.0.weight"],
                           base["model"]["net.features.4.block.0.0.weight"])


def test_bring_your_own_data_and_weights_end_to_end(mini_config: Path, tmp_path: Path) -> None:
    """README "Bring your own data": an ImageFolder tree named by ImageNet-R wnids (`dataset = "imagefolder"`) and a
    MobileNetV2 state_dict of one's own (`base_a.source = "file"`), run through the CLI: the images are decoded from
    the JPEGs, Base A is the file (AnB-4's frozen blocks are its tensors, bit for bit) and every model is scored."""
    import numpy as np
    import torch
    import torchvision
    from PIL import Image

    from advtransfer.data import imagenet_r

    wnids = imagenet_r.classes()[1][:3]
    folder = tmp_path / "renditions"
    rng = np.random.default_rng(0)
    for c, wnid in enumerate(wnids):
        (folder / wnid).mkdir(parents=True)
        for i in range(12):
            pixels = np.clip(np.full((40, 40, 3), 50 + 70 * c) + rng.integers(-30, 30, (40, 40, 3)), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(folder / wnid / f"{i:03d}.jpg", quality=90)
    torch.manual_seed(0)
    state = torchvision.models.mobilenet_v2(width_mult=0.25).state_dict()
    weights_file = tmp_path / "my_base_a.pth"
    torch.save(state, weights_file)

    text = mini_config.read_text().replace('protocols = ["intended", "as-run"]', 'protocols = ["intended"]')
    text = text.replace("blocks = [4, 16]", "blocks = [4]").replace('dataset = "tiny"\nimage_size = 16',
                                                                   'dataset = "imagefolder"\nimage_size = 32')
    text = text.replace('figure_class = "0"', f'figure_class = "{wnids[1]}"\ndataset_path = "{folder}"')
    text = text.replace('source = "pretrain"\nwidth_mult = 0.25\nstride8 = true\n',
                        f'source = "file"\npath = "{weights_file}"\nwidth_mult = 0.25\n')
    text = text.replace("robust_eval]\nautoattack = true", "robust_eval]\nautoattack = false")
    head, _, rest = text.partition("[[profiles.mini.base_a.schedule]]")
    text = head + rest.split("\n", 4)[4]  # a Base A from a file has no pretraining schedule
    config = tmp_path / "mine.toml"
    config.write_text(text)
    out = tmp_path / "out"
    assert _run(config, out, "--data-root", str(tmp_path / "data")) == 0

    rows = _rows(out)
    assert {r["model"] for r in rows} == {"base_a", "bnb", "a4b", "a4b_plus"}
    n_test = {int(r["n"]) for r in rows}
    assert n_test == {9}  # 36 images, 25% of them the stratified test split
    assert not (out / "checkpoints" / "exp1-base_a-pretrain-s0").exists()  # the file is Base A: nothing pretrained
    cell = json.loads((out / "cells" / "exp1-intended-a4b-s0.json").read_text())
    frozen = cell["training_log"]["frozen_features"]
    a4b = torch.load(max((out / "checkpoints" / "exp1-intended-a4b-s0").glob("epoch_*.pt")), weights_only=True)
    copied = [k for k in state if k.startswith("features.") and int(k.split(".")[1]) < frozen]
    assert frozen == 6 and copied
    assert all(torch.equal(a4b["model"]["net." + k], state[k]) for k in copied)
    assert list((tmp_path / "data" / "cache").iterdir())  # the decoded JPEGs are cached under --data-root
