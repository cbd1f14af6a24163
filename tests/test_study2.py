"""Study 2 end to end on a miniature config, the as-run clamping defect, and clear errors offline."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from advtransfer.cli import main
from advtransfer.config import load_exp2
from advtransfer.models.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from advtransfer.study2 import Cell, attack_spec, craft

REPO = Path(__file__).resolve().parents[1]


def _mini_config(tmp: Path) -> Path:
    text = (REPO / "experiments" / "exp2.toml").read_text()
    head, demo = text.split("[profiles.demo]", 1)
    demo = demo.split("# ------", 1)[0]
    mini = ("[profiles.mini]" + demo).replace("[[profiles.demo.", "[[profiles.mini.")
    mini = mini.replace("tiny_per_class = 100", "tiny_per_class = 20").replace("epochs = 20", "epochs = 3")
    mini = mini.replace("epochs = 5", "epochs = 1").replace("crosscheck_subset = 32", "crosscheck_subset = 8")
    mini = mini.replace('trainings = ["clean", "pgd", "nifgsm", "vmifgsm"]', 'trainings = ["clean", "pgd", "vmifgsm"]')
    path = tmp / "exp2_mini.toml"
    path.write_text(head + mini)
    return path


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
    want = {(s, "basenet", t, a, p) for s, ts in (("1", ("clean", "pgd", "vmifgsm")), ("4", ("clean", "pgd")))
            for t in ts for a in ("none", "fgsm", "pgd", "nifgsm", "vmifgsm") for p in ("intended", "as-run")}
    assert got == want
    for r in rows:
        if r["attack"] in ("nifgsm", "vmifgsm"):
            assert r["backend"] == "torchattacks"  # the only backend that has them
        if r["protocol"] == "as-run" and r["training"] != "clean" and r["attack"] != "none":
            assert r["threat"] == "transfer" and r["source_model"].endswith("-clean-s0")  # the original's evaluation
        if r["protocol"] == "intended" and r["attack"] != "none":
            assert r["threat"] == "whitebox"
    assert (mini_run / "figures" / "exp2_setting1.png").is_file()
    assert "## Study 2" in (mini_run / "report.md").read_text()


def test_adversarial_cell_starts_from_the_clean_model_and_rerun_skips(mini_run: Path, capsys) -> None:
    cell = json.loads((mini_run / "cells" / "exp2-e1-intended-basenet-pgd-s0.json").read_text())
    log = cell["training_log"]
    assert log["clean"]["resumed_from_epoch"] == 3  # the clean cell's final checkpoint, not retrained
    assert log["adversarial"]["attack"]["name"] == "pgd" and len(log["adversarial"]["history"]) == 1
    assert all(r["agree"] for r in cell["crosscheck"])


def test_asrun_reproduces_the_clamping_defect_and_intended_does_not() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    model = ImageClassifier(net, IMAGENET_MEAN, IMAGENET_STD).eval()
    x, y = torch.rand(8, 3, 12, 12) * 0.5, torch.randint(0, 3, (8,))  # darkish: many below-mean values
    cfg = load_exp2("exp2", "demo")
    spec = attack_spec(cfg, "fgsm")
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
    from advtransfer.study2 import asrun_defective

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
def test_demo_adversarial_training_is_more_robust_under_whitebox_pgd(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert main(["run", "exp2", "--profile", "demo", "--out", str(out), "--device", "cpu"]) == 0
    with open(out / "results.csv", newline="") as fh:
        acc = {(r["setting"], r["training"], r["attack"]): float(r["accuracy"]) for r in csv.DictReader(fh)
               if r["experiment"] == "exp2" and r["protocol"] == "intended" and r["backend"] in ("", "native")}
    assert acc[("1", "clean", "none")] > 0.5  # BaseNet learns the tiny task (chance: 0.1)
    assert acc[("1", "pgd", "pgd")] > acc[("1", "clean", "pgd")] + 0.1
