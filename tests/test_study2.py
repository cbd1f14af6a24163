"""Study 2 end to end on a miniature config, the as-run clamping defect, and clear errors offline."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from advtransfer import studies
from advtransfer.cli import main
from advtransfer.models.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from advtransfer.results.schema import ROW_COLUMNS
from advtransfer.studies.cifar_at import cell as cell2
from advtransfer.studies.cifar_at.cell import asrun_defective, attack_spec, craft
from advtransfer.studies.cifar_at.grid import Cell
from conftest import copy_run_without_autoattack

REPO = Path(__file__).resolve().parents[1]


def _mini_config(tmp: Path) -> Path:
    """The demo profile, shrunk: fewer images and epochs, the same four experiments and models."""
    text = (REPO / "experiments" / "exp2.toml").read_text()
    head, demo = text.split("[profiles.demo]", 1)
    demo = demo.split("# ------", 1)[0]
    mini = ("[profiles.mini]" + demo).replace("profiles.demo.", "profiles.mini.")
    mini = mini.replace("tiny_per_class = 100", "tiny_per_class = 20").replace("epochs = 20", "epochs = 3")
    mini = mini.replace("per_class = 64", "per_class = 8")
    for epochs in (6, 5, 4, 2):
        mini = mini.replace(f"epochs = {epochs} ", "epochs = 1 ").replace(f"epochs = {epochs}\n", "epochs = 1\n")
    mini = mini.replace("crosscheck_subset = 32", "crosscheck_subset = 8")
    mini = mini.replace('trainings = ["clean", "pgd", "nifgsm", "vmifgsm"]', 'trainings = ["clean", "pgd", "vmifgsm"]')
    path = tmp / "exp2_mini.toml"
    path.write_text(head + mini)
    return path


MINI_GRID = {("1", "basenet"): ("clean", "pgd", "vmifgsm"), ("2", "resnet18_transfer"): ("clean", "pgd"),
             ("3", "resnet18_scratch"): ("clean", "pgd"), ("4", "resnet18_scratch"): ("clean", "pgd"),
             ("4", "basenet"): ("clean", "pgd")}


@pytest.fixture(scope="module")
def mini_run(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("exp2")
    out = tmp / "out"
    assert main(["run", str(_mini_config(tmp)), "--profile", "mini", "--out", str(out), "--device", "cpu"]) == 0
    return out


def test_results_have_a_row_per_setting_model_training_attack_protocol(mini_run: Path) -> None:
    with open(mini_run / "results.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["experiment"] == "exp2"]
    got = {(r["setting"], r["model"], r["training"], r["attack"], r["protocol"]) for r in rows}
    want = {(s, m, t, a, p) for (s, m), ts in MINI_GRID.items()
            for t in ts for a in ("none", "fgsm", "pgd", "nifgsm", "vmifgsm", "autoattack")
            for p in ("intended", "as-run")}
    assert got == want
    for r in rows:
        if r["attack"] in ("nifgsm", "vmifgsm", "autoattack"):
            assert r["backend"] == "torchattacks"  # the only backend that has them
        if r["attack"] == "autoattack":  # at the main eps, per-example flags kept like every attack's
            assert float(r["eps"]) == pytest.approx(8 / 255, abs=1e-6) and r["primary"] == "1"
        if r["protocol"] == "as-run" and r["training"] != "clean" and r["attack"] != "none":
            assert r["threat"] == "transfer" and r["source_model"].endswith("-clean-s0")  # the original's evaluation
        if r["protocol"] == "intended" and r["attack"] != "none":
            assert r["threat"] == "whitebox"
    for setting in (1, 2, 3, 4):  # each figure decodes and draws something: bars, not a blank canvas
        from PIL import Image

        with Image.open(mini_run / "figures" / f"exp2_setting{setting}.png") as im:
            pixels = np.asarray(im.convert("RGB")).astype(int)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 200
        assert (pixels.sum(axis=2) < 600).mean() > 0.01  # a share of coloured or dark pixels (white is 765)
    for cell in (mini_run / "cells").iterdir():
        record = json.loads(cell.read_text())
        assert record["asrun_clamp_defect"] == (record["protocol"] == "as-run" and record["model"] != "basenet")
    report = (mini_run / "report.md").read_text()
    assert "## Study 2" in report
    assert "| protocol | model | training | clean | pgd | fgsm | nifgsm | vmifgsm | autoattack | published" in report
    assert "| 2.1aa |" in report and "| 2.2aa |" in report and "| 2.4aa |" in report


def test_autoattack_rows_keep_flags_and_apgd_is_cross_checked(mini_run: Path) -> None:
    for path in (mini_run / "cells").iterdir():
        doc = json.loads(path.read_text())
        by = {(r["attack"], r["backend"]): r for r in doc["evaluations"]}
        aa, pgd = by[("autoattack", "torchattacks")], by[("pgd", "native")]
        assert len(aa["flags"]) == aa["n"] == pgd["n"] and aa["flags"].count("1") == aa["correct"]
        assert aa["threat"] == pgd["threat"] and aa["source_model"] == pgd["source_model"]  # as PGD's evaluation
        assert doc["num_classes"] == (10 if doc["dataset"] == "cifar10" else 20)
        apgd = [r for r in doc["crosscheck"] if r["attack"].startswith("apgd_ce")]
        assert [r["backends"] for r in apgd] == ["torchattacks vs art"] and apgd[0]["agree"], path.name
        assert apgd[0]["attack"] == "apgd_ce-eps0.0313725-n5-r1"  # the demo's robust_eval.apgd_steps


def test_adversarial_cell_starts_from_the_clean_model_and_rerun_skips(mini_run: Path, capsys) -> None:
    cell = json.loads((mini_run / "cells" / "exp2-e1-intended-basenet-pgd-s0.json").read_text())
    log = cell["training_log"]
    assert log["clean"]["resumed_from_epoch"] == 3  # the clean cell's final checkpoint, not retrained
    assert log["adversarial"]["attack"]["name"] == "pgd" and len(log["adversarial"]["history"]) == 1
    assert all(r["agree"] for r in cell["crosscheck"])


def test_transfer_resnet_keeps_its_pretrained_backbone(mini_run: Path) -> None:
    """The tiny stand-in for ImageNet weights is pretrained once; "transfer" trains fc only. intended: the whole
    backbone, BatchNorm statistics included, is the pretrained one after clean and adversarial training; as-run:
    the weights are, but BatchNorm running statistics moved (the original's unfrozen statistics)."""
    ckpt = mini_run / "checkpoints"
    pretrain = torch.load(max((ckpt / "exp2-resnet18-pretrain").glob("epoch_*.pt")), weights_only=True)
    pre = {k.removeprefix("net."): v for k, v in pretrain["model"].items()}
    for protocol, stats_move in (("intended", False), ("as-run", True)):
        for training in ("clean", "pgd"):
            key = f"exp2-e2-{protocol}-resnet18_transfer-{training}-s0"
            final = torch.load(max((ckpt / key).glob("epoch_*.pt")), weights_only=True)["model"]
            got = {k.removeprefix("net."): v for k, v in final.items()}
            for name, value in pre.items():
                if name.startswith("fc.") or name.endswith("num_batches_tracked"):
                    continue
                moved = not torch.equal(got[name], value)
                if name.endswith(("running_mean", "running_var")):
                    assert moved == stats_move, (key, name)
                else:
                    assert not moved, (key, name)


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "results.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_rerun_with_more_backends_trains_nothing_and_adds_their_rows(mini_run: Path, tmp_path: Path, capsys) -> None:
    """Asking a finished run for the cross-check backends re-evaluates, never retrains: no epoch runs, no
    checkpoint is rewritten, the existing rows stay as they were and FGSM / PGD gain torchattacks and ART rows."""
    out = tmp_path / "more"
    shutil.copytree(mini_run, out, copy_function=os.link)  # hard links: a rewritten file would get a new inode
    checkpoints = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "checkpoints").rglob("*.pt")}
    assert checkpoints
    before = _rows(out)
    capsys.readouterr()
    args = ["run", str(_mini_config(tmp_path)), "--profile", "mini", "--out", str(out), "--device", "cpu"]
    assert main([*args, "--backends", "native,torchattacks,art"]) == 0
    err = capsys.readouterr().err
    assert "  epoch " not in err and "adding torchattacks, art" in err
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "checkpoints").rglob("*.pt")} == checkpoints
    after = _rows(out)
    old = [{c: r[c] for c in ROW_COLUMNS} for r in before]
    assert [{c: r[c] for c in ROW_COLUMNS} for r in after if r["backend"] in ("", "native") or r["attack"] in
            ("nifgsm", "vmifgsm", "autoattack")] == old
    added = {(r["cell"], r["attack"], r["backend"]) for r in after} - {(r["cell"], r["attack"], r["backend"])
                                                                          for r in before}
    cells = {r["cell"] for r in before}
    assert added == {(c, a, b) for c in cells for a in ("fgsm", "pgd") for b in ("torchattacks", "art")}
    # and a second rerun has nothing left to do
    assert main([*args, "--backends", "native,torchattacks,art"]) == 0
    assert capsys.readouterr().err.count("done already, skipped") == len(cells)


def test_rerun_with_autoattack_added_trains_nothing_and_adds_exactly_its_rows(mini_run: Path, tmp_path: Path,
                                                                             capsys, monkeypatch) -> None:
    """A run finished before AutoAttack existed (its cells without AutoAttack rows) is extended, not skipped: no epoch
    runs, no checkpoint is rewritten, every other row stays, and the AutoAttack rows are those a fresh run writes
    (each evaluation has its own random stream)."""
    out = tmp_path / "old"
    checkpoints = copy_run_without_autoattack(mini_run, out)
    exp = studies.load_experiment(str(_mini_config(tmp_path)), "mini")
    old_doc = json.loads(next((out / "cells").iterdir()).read_text())
    assert not cell2.is_complete(exp, old_doc)  # the study's completeness rule asks for AutoAttack
    # The study must judge completeness by the cell's rule (studies/cifar_at/__init__.py:
    # is_complete = staticmethod(cell.is_complete)); set here so the test holds either way.
    monkeypatch.setattr(type(exp.study), "is_complete", staticmethod(cell2.is_complete))
    capsys.readouterr()
    args = ["run", str(_mini_config(tmp_path)), "--profile", "mini", "--out", str(out), "--device", "cpu"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "  epoch " not in err and "ignoring checkpoints" not in err
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in (out / "checkpoints").rglob("*.pt")} == checkpoints
    after, fresh = _rows(out), _rows(mini_run)
    key = lambda r: (r["cell"], r["attack"], r["backend"])  # noqa: E731
    assert sorted(({c: r[c] for c in ROW_COLUMNS} for r in after), key=key) == \
        sorted(({c: r[c] for c in ROW_COLUMNS} for r in fresh), key=key)
    for path in (out / "cells").iterdir():
        doc, ref = json.loads(path.read_text()), json.loads((mini_run / "cells" / path.name).read_text())
        flags = {(r["attack"], r["backend"]): r["flags"] for r in doc["evaluations"]}
        want = {(r["attack"], r["backend"]): r["flags"] for r in ref["evaluations"]}
        assert flags == want, path.name  # example by example
        assert doc["extensions"][-1]["evaluations"] == ["autoattack/torchattacks"]
    assert main(args) == 0 and capsys.readouterr().err.count("done already, skipped") == len(MINI_CELLS)


MINI_CELLS = [f"{s}-{m}-{t}-{p}" for (s, m), ts in MINI_GRID.items() for t in ts for p in ("intended", "as-run")]


def test_killed_run_resumes_to_the_same_results(mini_run: Path, tmp_path: Path) -> None:
    """SIGKILL after the second epoch of the first clean training; the rerun resumes there and ends with the
    uninterrupted run's results.csv, byte for byte."""
    out = tmp_path / "killed"
    args = [sys.executable, "-m", "advtransfer.cli", "run", str(_mini_config(tmp_path)), "--profile", "mini",
            "--out", str(out), "--device", "cpu"]
    env = {**os.environ, "ADVTRANSFER_KILL_AFTER_EPOCH": "2"}
    killed = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (out / "cells").exists()
    resumed = subprocess.run(args, capture_output=True, text=True, check=False, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from epoch_002.pt" in resumed.stderr
    assert (out / "results.csv").read_text() == (mini_run / "results.csv").read_text()


def test_asrun_reproduces_the_clamping_defect_and_intended_does_not() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = ImageClassifier(net, IMAGENET_MEAN, IMAGENET_STD).eval()
    x, y = torch.rand(8, 3, 12, 12) * 0.5, torch.randint(0, 3, (8,))  # darkish: many below-mean values
    spec = attack_spec(studies.load_experiment("exp2", "demo"), "fgsm")
    gen = torch.Generator().manual_seed(0)
    intended = craft(model, x, y, spec, "native", gen, defective=False)
    assert (intended - x).abs().max() <= spec.eps + 1e-6
    asrun = craft(model, x, y, spec, "native", gen, defective=True)
    z = (asrun - model.mean) / model.std
    assert z.min() >= -1e-6 and z.max() <= 1 + 1e-6  # the normalised tensor was clamped to [0, 1] ...
    far_below_mean = (x - model.mean) / model.std < -spec.eps  # beyond the reach of one step
    assert far_below_mean.any() and torch.allclose(z[far_below_mean], torch.zeros(()), atol=1e-5)  # ... erased
    assert (asrun - x).abs().max() > 10 * spec.eps  # far outside the eps ball in pixel space: the defect
    resnet_cell = Cell("exp2", 2, "cifar10", "as-run", 0, "resnet18_scratch", "pgd")
    assert asrun_defective(resnet_cell) and not asrun_defective(Cell("exp2", 2, "cifar10", "intended", 0,
                                                                      "resnet18_scratch", "pgd"))
    assert not asrun_defective(Cell("exp2", 1, "cifar10", "as-run", 0, "basenet", "pgd"))


def test_paper_profile_offline_fails_with_one_clear_message(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "advtransfer.cli", "run", "exp2", "--profile", "paper", "--out",
                             str(tmp_path / "o"), "--data-root", str(tmp_path / "nodata")], capture_output=True,
                            text=True, check=False, timeout=120, env={"TORCH_HOME": str(tmp_path / "th"),
                                                                      "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    err = result.stderr
    assert "cannot run exp2 --profile paper: 3 things are missing" in err
    assert "advtransfer data fetch cifar10 --data-root" in err and "advtransfer data fetch cifar100" in err
    assert "resnet18" in err and "advtransfer data fetch weights --model resnet18" in err


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["intended", "as-run"])  # one protocol per test: two xdist workers share them
def test_demo_adversarial_training_is_more_robust_under_whitebox_pgd(protocol: str, tmp_path: Path) -> None:
    """intended: white-box PGD; as-run: PGD crafted on the clean model (the original's evaluation). Either way the
    PGD-trained model keeps more than 10 points more accuracy than the clean one (the claim's own margin)."""
    out = tmp_path / "demo"
    assert main(["run", "exp2", "--profile", "demo", "--out", str(out), "--device", "cpu",
                 "--cells", f"exp2-*-{protocol}-*"]) == 0
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["protocol"] for r in rows} == {protocol}
    acc = {(r["setting"], r["model"], r["training"], r["attack"]): float(r["accuracy"])
           for r in rows if r["experiment"] == "exp2" and r["backend"] in ("", "native")}
    for setting, model in (("1", "basenet"), ("2", "resnet18_transfer"), ("3", "resnet18_scratch"),
                           ("4", "resnet18_scratch"), ("4", "basenet")):
        assert acc[(setting, model, "clean", "none")] > 0.5, (setting, model)  # learns (chance: 0.1 or 0.05)
    for setting, model in (("1", "basenet"), ("3", "resnet18_scratch"), ("4", "resnet18_scratch")):
        # adversarial training of a fully trainable model buys white-box robustness
        assert acc[(setting, model, "pgd", "pgd")] > acc[(setting, model, "clean", "pgd")] + 0.1, (setting, model)


def test_run_exits_3_when_the_cross_check_finds_a_backend_disagreeing(tmp_path: Path, capsys, monkeypatch) -> None:
    """README: "a disagreement makes `advtransfer run` exit with status 3". ART's FGSM is sabotaged to return the
    clean images (inside the eps ball and [0, 1], so only the comparison with the native FGSM can catch it)."""
    from advtransfer.attacks import art_backend

    real = art_backend.run

    def broken(model, x, y, spec, generator=None):
        return x.clone() if spec.name == "fgsm" else real(model, x, y, spec, generator=generator)

    monkeypatch.setattr(art_backend, "run", broken)
    out = tmp_path / "out"
    assert main(["run", str(_mini_config(tmp_path)), "--profile", "mini", "--out", str(out), "--device", "cpu",
                 "--cells", "exp2-e1-intended-basenet-clean-s0"]) == 3
    err = capsys.readouterr().err
    assert "advtransfer: error: the attack backends disagree in 1 comparison(s)" in err
    assert "exp2-e1-intended-basenet-clean-s0 fgsm-eps0.0313725 native vs art" in err
    table = (out / "crosscheck.md").read_text()
    assert table.count("**NO**") == 1 and "native vs torchattacks" in table
    assert json.loads((out / "crosscheck.json").read_text())["all_agree"] is False
