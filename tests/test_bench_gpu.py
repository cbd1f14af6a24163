"""`advtransfer bench gpu` (advtransfer.scale.bench_gpu): a tiny run on CPU end to end (every section, the JSON's
keys and values, the Markdown), the time budget, and the README's cost table generated from a JSON."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch

from advtransfer.cli import main
from advtransfer.scale import bench_gpu
from advtransfer.scale.bench_gpu import BEGIN, END, MODES, TINY, cost_block, update_readme

pytestmark = pytest.mark.usefixtures("one_thread")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, one_thread) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bench-gpu") / "gpu.json"
    assert main(["bench", "gpu", "--device", "cpu", "--json", str(out)]) == 0
    return json.loads(out.read_text()), out


def test_tiny_run_writes_every_section(tiny_run: tuple[dict, Path]) -> None:
    result, out = tiny_run
    assert result["benchmark"] == "bench gpu" and result["tiny"] is True and result["skipped"] == []
    assert result["sizes"] == {**bench_gpu.asdict(TINY)}
    assert 0 < result["seconds"] < result["budget_seconds"] == 480
    device = result["device"]
    assert device["type"] == "cpu" and device["torch"] == torch.__version__ and device["cuda"] == torch.version.cuda
    assert set(device) >= {"name", "driver", "cudnn", "capability", "memory_gib"}
    assert result["provenance"]["device"] == "cpu" and "image_packages" in result["provenance"]
    assert out.with_suffix(".md").read_text().startswith("# bench gpu: ")


def test_tiny_run_trains_both_models_in_every_mode(tiny_run: tuple[dict, Path]) -> None:
    rows = tiny_run[0]["train"]
    assert [(r["model"], r["mode"]) for r in rows] == [
        ("mobilenet_v2", "fp32"), ("mobilenet_v2", "bf16"), ("resnet18", "fp32"), ("resnet18", "bf16"),
        ("mobilenet_v2", "bf16+compile"), ("resnet18", "bf16+compile")]  # compile last: the first to be skipped
    for r in rows:
        assert r["px"] == TINY.px and r["batch"] == TINY.batch and r["steps"] == TINY.steps
        assert r["img_per_s"] > 0 and 0 <= r["data_wait_share"] <= 1 and r["first_step_seconds"] > 0
        assert r["ms_per_step"] == pytest.approx(1e3 * r["batch"] / r["img_per_s"])
        assert r["compile_backend"] == ("eager" if r["mode"] == "bf16+compile" else None)


def test_tiny_run_measures_attack_ratios_for_every_backend(tiny_run: tuple[dict, Path]) -> None:
    attacks = tiny_run[0]["attacks"]
    assert attacks["model"] == "mobilenet_v2" and attacks["batch"] == TINY.attack_batch
    assert attacks["input_shape"] == [3, TINY.px, TINY.px] and attacks["forward_backward_ms"] > 0
    got = {(r["attack"].split("-")[0], r["backend"]): r for r in attacks["rows"]}
    assert set(got) == {(a, b) for a in ("fgsm", "pgd") for b in ("native", "torchattacks", "art")}
    for (name, _), r in got.items():
        assert r["steps"] == (1 if name == "fgsm" else TINY.attack_steps)
        assert r["ratio_to_bound"] == pytest.approx(r["ms_per_batch"] / (r["steps"] * attacks["forward_backward_ms"]))


def test_tiny_run_compares_bf16_with_fp32(tiny_run: tuple[dict, Path]) -> None:
    p = tiny_run[0]["precision"]
    for precision in ("fp32", "bf16"):
        assert 0 <= p[precision]["natural_acc"] <= 1 and 0 <= p[precision]["fgsm_acc"] <= 1
        assert p[precision]["seconds"] > 0 and p[precision]["final_train_loss"] > 0
    assert p["natural_acc_diff"] == pytest.approx(p["bf16"]["natural_acc"] - p["fp32"]["natural_acc"])
    assert p["fgsm_acc_diff"] == pytest.approx(p["bf16"]["fgsm_acc"] - p["fp32"]["fgsm_acc"])
    assert p["epochs"] == TINY.mini_epochs


def test_tiny_run_computes_a_paper_shaped_cell_end_to_end(tiny_run: tuple[dict, Path]) -> None:
    cell = tiny_run[0]["paper_cell"]
    assert cell["config"]["input_px"] == TINY.cell_px and cell["config"]["pgd_steps"] == TINY.cell_steps
    assert [c["training"] for c in cell["cells"]] == ["clean", "pgd"]
    for c in cell["cells"]:
        assert c["epochs"] == TINY.cell_epochs and c["n_train"] > 0 and c["img_per_s"] > 0
        assert {"none", "fgsm", "pgd"} <= set(c["accuracy"]) and all(0 <= a <= 1 for a in c["accuracy"].values())
    assert cell["steps_per_epoch"] == -(-cell["cells"][0]["n_train"] // TINY.cell_batch)
    assert cell["clean_img_per_s"] == cell["cells"][0]["img_per_s"]
    assert cell["adversarial_img_per_s"] == cell["cells"][1]["img_per_s"]


def test_the_budget_skips_pieces_and_names_them(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each piece runs only with its own time and that of the pieces after it left; torch.compile goes first."""
    calls = []
    for section in ("_bench_attack_ratios", "_bench_precision", "_bench_paper_cell"):
        monkeypatch.setattr(bench_gpu, section, lambda *args, s=section: calls.append(s) or {"ran": s})
    monkeypatch.setattr(bench_gpu, "_train_models", lambda: {"m": (lambda: torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(3 * TINY.px * TINY.px, 10)), bench_gpu.Phase("sgd", 1e-3, 1), "tiny")})
    needs = {"train": 1.0, "attacks": 1.0, "precision": 1.0, "paper_cell": 1.0, "compile": 1e6}
    monkeypatch.setattr(bench_gpu, "NEEDS", needs)
    result = bench_gpu.bench_gpu(device=torch.device("cpu"), tiny=False, sizes=TINY, budget=600, log=lambda m: None)
    assert [r["mode"] for r in result["train"]] == list(MODES[:2])
    assert calls == ["_bench_attack_ratios", "_bench_precision", "_bench_paper_cell"]
    assert result["skipped"] == [{"section": "train m bf16+compile", "reason": "not enough of the time budget left"}]
    calls.clear()
    nothing = bench_gpu.bench_gpu(device=torch.device("cpu"), tiny=True, budget=0, log=lambda m: None)
    assert calls == [] and nothing["train"] == [] and nothing["attacks"] is None and nothing["paper_cell"] is None
    assert [s["section"] for s in nothing["skipped"]] == [
        "train m fp32", "train m bf16", "attacks", "precision", "paper_cell", "train m bf16+compile"]


# ---------------------------------------------------------------------------------------------- README ---


def _cuda_result(tiny_result: dict) -> dict:
    """A JSON as a full CUDA run would write it (the numbers chosen here, so the expected times are exact)."""
    result = json.loads(json.dumps(tiny_result))
    result["tiny"] = False
    result["device"].update(type="cuda", name="NVIDIA H200", memory_gib=139.8, driver="580.95.05")
    rates = {("mobilenet_v2", "fp32"): 2000.0, ("mobilenet_v2", "bf16"): 4000.0, ("resnet18", "fp32"): 3500.0,
             ("resnet18", "bf16"): 7000.0, ("mobilenet_v2", "bf16+compile"): 5000.0,
             ("resnet18", "bf16+compile"): 6000.0}
    for r in result["train"]:
        r["img_per_s"] = rates[(r["model"], r["mode"])]
    result["paper_cell"]["adversarial_img_per_s"] = 500.0
    return result


def _block(text: str) -> str:
    return text[text.index(BEGIN):text.index(END) + len(END)]


def test_the_readme_cost_table_is_the_generated_one() -> None:
    """No GPU measurement yet: README.md holds cost_block's estimate table, character for character."""
    assert _block((REPO / "README.md").read_text()) == cost_block(None)


def test_update_readme_writes_the_measured_rows_and_keeps_the_estimates(tiny_run: tuple[dict, Path],
                                                                         tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    original = (REPO / "README.md").read_text()
    readme.write_text(original)
    source = tmp_path / "gpu.json"
    source.write_text(json.dumps(_cuda_result(tiny_run[0])))
    assert main(["bench", "gpu", "--from-json", str(source), "--update-readme", str(readme)]) == 0
    text = readme.read_text()
    before, after = original.split(BEGIN)[0], original.split(END)[1]
    assert text.startswith(before) and text.endswith(after)  # only the block changed
    block = _block(text)
    assert "measured on NVIDIA H200" in block and "(estimates, labelled as such)" not in block
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in block.splitlines()
             if line.startswith("| study")]
    rows = {c[0]: c[-1] for c in cells}
    # 2e6 images / 5,000 img/s (the fastest MobileNetV2 mode) = 400 s; 3e7 PGD-AT images / 500 img/s = 16.7 h;
    # 3.5e7 / 7,000 img/s (ResNet-18 bf16) = 1.4 h; BaseNet is not measured: its estimate stays, labelled.
    assert rows[next(k for k in rows if "MobileNetV2" in k)] == "~7 min (5,000 img/s, bf16+compile)"
    assert rows[next(k for k in rows if "PGD-AT" in k)].startswith("~16.7 h (500 adversarial-training img/s")
    assert rows[next(k for k in rows if "clean trainings" in k)] == "~1.4 h (7,000 img/s, bf16)"
    assert rows[next(k for k in rows if "BaseNet" in k)] == "estimate: ~15 min"
    assert "roughly 18 GPU-hours (3 of 4 rows measured on NVIDIA H200)" in re.sub(r"\s+", " ", block)
    assert "(~2.8 h each)" in re.sub(r"\s+", " ", block)


def test_update_readme_refuses_a_tiny_or_cpu_run_and_a_readme_without_markers(tiny_run: tuple[dict, Path],
                                                                               tmp_path: Path, capsys) -> None:
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text())
    before = readme.read_text()
    assert main(["bench", "gpu", "--from-json", str(tiny_run[1]), "--update-readme", str(readme)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("advtransfer: error: --update-readme") and "tiny sizes" in err and len(err.splitlines()) == 1
    assert readme.read_text() == before
    readme.write_text("# no table here\n")
    with pytest.raises(bench_gpu.UserError, match="expected one cost table between"):
        update_readme(readme, _cuda_result(tiny_run[0]))


@pytest.mark.parametrize(("args", "message"), [
    (["--from-json", "x.json"], "--from-json only feeds --update-readme"),
    (["--from-json", "nowhere.json", "--update-readme", "README.md"], "not a readable `advtransfer bench gpu` JSON"),
])
def test_bad_input_is_one_message(args: list[str], message: str, tmp_path: Path, capsys,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench", "gpu", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("advtransfer: error: ") and message in err and "Traceback" not in err
