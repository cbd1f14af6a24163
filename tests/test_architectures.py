"""Any architecture in study 2: torchvision and timm models by name, pretrained (only the head trained) or from
scratch, resized inside the model, through the study's mini config end to end; names that stay safe file names;
unknown, unadaptable or weightless models refused with one clear line before any work. No downloads: the
pretrained weights are seeded random state_dicts a test saves into the library's cache (TORCH_HOME)."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from advtransfer import studies
from advtransfer.cli import main
from advtransfer.config.reader import SAFE_NAME
from advtransfer.errors import ConfigError
from advtransfer.models import weights, zoo
from advtransfer.results.store import CELL_KEY

pytestmark = pytest.mark.usefixtures("one_thread")
timm = pytest.importorskip("timm")  # the `timm` extra (in `test`, so CI has it)

MOBILENET = "torchvision:mobilenet_v3_small@IMAGENET1K_V1"
TIMM = "timm:test_efficientnet"
TIMM_PRETRAINED = "timm:test_resnet@r160_in1k"


def _random_state(build) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        net = build()
    with torch.no_grad():  # BatchNorm statistics off their init values, so copied ones are recognisable
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return {k: v.clone() for k, v in net.state_dict().items()}


@pytest.fixture
def torch_home(tmp_path: Path, monkeypatch) -> Path:
    home = tmp_path / "torch"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


def save_mobilenet_weights(home: Path, monkeypatch) -> dict[str, torch.Tensor]:
    """Seeded stand-in for torchvision's MobileNetV3-small IMAGENET1K_V1 in the cache, under a name carrying its own
    sha256 prefix (as torchvision's do), which the kit checks before use."""
    state = _random_state(lambda: torchvision.models.mobilenet_v3_small())
    checkpoints = home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True, exist_ok=True)
    tmp = checkpoints / "tmp.pth"
    torch.save(state, tmp)
    path = checkpoints / f"mobilenet_v3_small-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pth"
    tmp.rename(path)
    real = weights.cache_path
    monkeypatch.setattr(weights, "cache_path",
                        lambda model, name: path if (model, name) == ("mobilenet_v3_small", "IMAGENET1K_V1")
                        else real(model, name))
    return state


def save_timm_weights(home: Path) -> dict[str, torch.Tensor]:
    state = _random_state(lambda: timm.create_model("test_resnet", pretrained=False))
    path = zoo.timm_weights_path(zoo.parse(TIMM_PRETRAINED))
    assert path == home / "hub" / "checkpoints" / "timm" / "test_resnet.r160_in1k.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


# ------------------------------------------------------------------------------------------------- names ---


@pytest.mark.parametrize("name, key", [
    (MOBILENET, "torchvision-mobilenet_v3_small-IMAGENET1K_V1"),
    ("torchvision:efficientnet_b0", "torchvision-efficientnet_b0"),
    (TIMM, "timm-test_efficientnet"),
    (TIMM_PRETRAINED, "timm-test_resnet-r160_in1k"),
])
def test_names_map_to_safe_keys_and_back(name: str, key: str) -> None:
    arch = zoo.parse(name)
    assert arch.key == key and zoo.parse(key) == arch and arch.spelled == name and zoo.key_of(name) == key
    assert re.fullmatch(SAFE_NAME.regex, key) and ":" not in key and "@" not in key
    assert CELL_KEY.fullmatch(f"exp2-e999-intended-{key}-vmifgsm-s2147483647")
    assert zoo.key_of("basenet") == "basenet" and zoo.parse("resnet18_scratch") is None


def _settings(tmp_path: Path, models: list[str]) -> Path:
    text = (Path(__file__).resolve().parents[1] / "experiments" / "exp2.toml").read_text()
    head = text.split("[profiles.paper]", 1)[0]
    head = re.sub(r"\[\[common\.settings\]\].*", "", head, flags=re.S)
    path = tmp_path / "exp2_models.toml"
    path.write_text(head + '[[common.settings]]\nid = 5\ndataset = "cifar10"\nmodels = ' + json.dumps(models)
                    + '\ntrainings = ["clean", "pgd"]\n[profiles.paper]\ndata = "cifar"\n')
    return path


def test_config_stores_the_safe_key() -> None:
    exp = studies.load_experiment("exp2", "paper")
    from dataclasses import replace

    s = replace(exp.cfg.settings[0], models=(MOBILENET, "basenet"))
    assert s.models == ("torchvision-mobilenet_v3_small-IMAGENET1K_V1", "basenet")


@pytest.mark.parametrize("models, message", [
    (["resnet50"], "settings[0].models[0] = 'resnet50'; valid: 'basenet', 'resnet18_transfer', 'resnet18_scratch', "
                   "or 'torchvision:NAME' (scratch), 'torchvision:NAME@WEIGHTS'"),
    (["torchvision:resnet5"], "settings[0].models[0] = 'torchvision:resnet5': 'resnet5' is not a torchvision "
                              "classification model; did you mean 'resnet50'?"),
    (["torchvision:resnet18@IMAGENET1K_V9"], "unknown weights 'IMAGENET1K_V9' for resnet18; valid: IMAGENET1K_V1"),
    (["torchvision:squeezenet1_0@IMAGENET1K_V1"], "models[0] = 'torchvision:squeezenet1_0@IMAGENET1K_V1': cannot "
                                                  "adapt this pretrained model to the task's classes: its classifier's "
                                                  "last weighted layer is a Conv2d, not a Linear head"),
    (["timm:no_such_net"], "'no_such_net' is not a timm model"),
    (["timm:test_resnet@in22k"], "timm has no pretrained tag 'in22k' for test_resnet; valid: r160_in1k"),
    (["torchvision:Mobile"], "= 'torchvision:Mobile'; valid: 'basenet'"),
    (["torchvision:mobilenet_v3_small", "torchvision-mobilenet_v3_small"],
     "models: 'torchvision:mobilenet_v3_small' appears twice"),
], ids=["builtin", "unknown-torchvision", "unknown-weights", "no-linear-head", "unknown-timm", "unknown-tag",
        "bad-syntax", "repeated"])
def test_bad_model_names_are_refused_with_one_line(tmp_path: Path, models: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        studies.load_experiment(str(_settings(tmp_path, models)), "paper")
    text = str(info.value)
    assert len(text.splitlines()) == 1 and text.startswith("exp2_models.toml[paper]")
    assert message in text


def test_unadaptable_model_is_refused_by_the_cli_before_any_work(tmp_path: Path) -> None:
    config = _settings(tmp_path, ["torchvision:squeezenet1_0@IMAGENET1K_V1"])
    result = subprocess.run([sys.executable, "-m", "advtransfer.cli", "run", str(config), "--profile", "paper",
                             "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=300,
                            check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("advtransfer: error: ") and "squeezenet1_0" in lines[0]
    assert "not a Linear head the grid can replace" in lines[0] and not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------- building ---


def test_scratch_models_are_seeded_resized_and_leave_the_global_rng() -> None:
    for name in ("torchvision:mobilenet_v3_small", TIMM):
        arch = zoo.parse(name)
        state = torch.get_rng_state()
        a, b = zoo.build(arch, 7, 3, input_size=16), zoo.build(arch, 7, 3, input_size=16)
        assert torch.equal(torch.get_rng_state(), state)
        assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))
        c = zoo.build(arch, 7, 4, input_size=16)
        assert not all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), c.state_dict().values()))
        assert all(p.requires_grad for p in a.parameters())
        assert a.resize.size == 16 and a.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize("name", [MOBILENET, TIMM_PRETRAINED])
def test_pretrained_models_train_only_their_new_head(name: str, torch_home: Path, monkeypatch) -> None:
    arch = zoo.parse(name)
    state = save_mobilenet_weights(torch_home, monkeypatch) if arch.library == "torchvision" \
        else save_timm_weights(torch_home)
    assert zoo.missing_weights(arch) is None
    for freeze, stats_move in ((True, False), (False, True)):  # intended: BatchNorm frozen; as-run: it moves
        model = zoo.build(arch, 5, 0, input_size=24, freeze_bn_stats=freeze)
        head = zoo.head_of(model)
        assert isinstance(head, nn.Linear) and head.out_features == 5
        assert [p for p in model.parameters() if p.requires_grad] == list(head.parameters())
        before = {k: v.clone() for k, v in model.net.state_dict().items()}
        copied = {k: v for k, v in before.items() if k in state and state[k].shape == v.shape}
        assert all(torch.equal(v, state[k]) for k, v in copied.items()) and len(copied) >= len(state) - 2
        opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
        model.train()
        for _ in range(2):
            opt.zero_grad()
            F.cross_entropy(model(torch.rand(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3])).backward()
            opt.step()
        after = model.net.state_dict()
        prefix = next(n for n, m in model.net.named_modules() if m is head) + "."
        for k, v in before.items():
            if k.endswith("num_batches_tracked"):
                continue
            moved = not torch.equal(after[k], v)
            want = k.startswith(prefix) or (stats_move and k.endswith(("running_mean", "running_var")))
            assert moved == want, (name, freeze, k)
    assert zoo.normalization(arch)[0] == ((0.485, 0.456, 0.406) if arch.library == "torchvision" else (0.5,) * 3)


def test_missing_weights_name_the_file_and_the_fetch_command(torch_home: Path) -> None:
    tv = zoo.missing_weights(zoo.parse(MOBILENET))
    assert str(torch_home / "hub" / "checkpoints" / "mobilenet_v3_small-047dcff4.pth") in tv
    assert "weights.fetch('mobilenet_v3_small', 'IMAGENET1K_V1')" in tv
    tm = zoo.missing_weights(zoo.parse(TIMM_PRETRAINED))
    assert str(torch_home / "hub" / "checkpoints" / "timm" / "test_resnet.r160_in1k.pth") in tm
    assert "timm.create_model('test_resnet.r160_in1k', pretrained=True)" in tm
    assert zoo.missing_weights(zoo.parse(TIMM)) is None  # scratch: nothing to fetch


# ------------------------------------------------------------------------------------------- end to end ---


def _mini(tmp_path: Path, models: list[str]) -> Path:
    """Study 2's mini config (tests/test_study2.py), its four settings replaced by one with these models."""
    from test_study2 import _mini_config

    text = _mini_config(tmp_path).read_text()
    head, mini = text.split("[profiles.mini]", 1)
    mini = re.sub(r"\[\[profiles\.mini\.settings\]\].*", "", mini, flags=re.S)
    path = tmp_path / "exp2_arch.toml"
    path.write_text(head + "[profiles.mini]" + mini + '[[profiles.mini.settings]]\nid = 5\ndataset = "cifar10"\n'
                    f"models = {json.dumps(models)}\ntrainings = [\"clean\", \"pgd\"]\n")
    return path


def test_missing_pretrained_weights_stop_the_run_before_any_cell(tmp_path: Path, torch_home: Path, capsys) -> None:
    config = _mini(tmp_path, [MOBILENET])
    assert main(["run", str(config), "--profile", "mini", "--out", str(tmp_path / "out"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.startswith("advtransfer: error: cannot run exp2 --profile mini: one thing")
    assert "mobilenet_v3_small-047dcff4.pth" in err and "weights.fetch('mobilenet_v3_small'" in err
    assert not (tmp_path / "out" / "cells").exists() and not (tmp_path / "out" / "checkpoints").exists()


def test_torchvision_and_timm_models_run_through_the_mini_config(tmp_path: Path, torch_home: Path,
                                                                  monkeypatch) -> None:
    state = save_mobilenet_weights(torch_home, monkeypatch)
    config = _mini(tmp_path, [MOBILENET, TIMM])
    out = tmp_path / "out"
    assert main(["run", str(config), "--profile", "mini", "--out", str(out), "--device", "cpu"]) == 0
    with open(out / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    keys = ("torchvision-mobilenet_v3_small-IMAGENET1K_V1", "timm-test_efficientnet")
    got = {(r["model"], r["training"], r["protocol"], r["attack"]) for r in rows}
    assert got == {(m, t, p, a) for m in keys for t in ("clean", "pgd") for p in ("intended", "as-run")
                   for a in ("none", "fgsm", "pgd", "nifgsm", "vmifgsm", "autoattack")}
    assert {p.stem for p in (out / "cells").iterdir()} == {f"exp2-e5-{p}-{m}-{t}-s0" for m in keys
                                                            for p in ("intended", "as-run") for t in ("clean", "pgd")}
    assert (out / "figures" / "exp2_setting5.png").is_file()
    for protocol, stats_move in (("intended", False), ("as-run", True)):
        cell = json.loads((out / "cells" / f"exp2-e5-{protocol}-{keys[0]}-pgd-s0.json").read_text())
        assert cell["asrun_clamp_defect"] == (protocol == "as-run")  # normalised outside, as the original's ResNet
        assert all(r["agree"] for r in cell["crosscheck"])
        ckpt = out / "checkpoints" / f"exp2-e5-{protocol}-{keys[0]}-pgd-s0"
        final = torch.load(max(ckpt.glob("epoch_*.pt")), weights_only=True)["model"]
        got_state = {k.removeprefix("net.net."): v for k, v in final.items() if k.startswith("net.net.")}
        for name, value in state.items():  # the pretrained backbone is kept; only classifier.3 (the head) trains
            if name.startswith("classifier.3.") or name.endswith("num_batches_tracked"):
                continue
            moved = not torch.equal(got_state[name], value)
            assert moved == (stats_move and name.endswith(("running_mean", "running_var"))), (protocol, name)
