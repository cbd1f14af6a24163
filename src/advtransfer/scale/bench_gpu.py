"""The GPU check, ready for the first GPU the kit gets (`advtransfer bench gpu`, `make bench-gpu`).

In at most ``budget`` seconds (default 8 minutes) on one GPU it measures, and writes as JSON and Markdown:

* **train**: images per second of one training step (forward, loss, backward, optimizer step; channels_last, the
  kit's input pipeline: uint8 batches prefetched to the GPU on a side stream and augmented there) of study 1's
  MobileNetV2 (width 1.0, Adam) and study 2's ResNet-18 (SGD) at 224 px, in fp32, bf16 autocast and bf16 through
  ``torch.compile`` (its compile time reported apart), with the share of the step spent waiting for data;
* **attacks**: :func:`advtransfer.scale.bench_attacks.bench_attacks` on MobileNetV2 at 224 px: the ratio of each
  attack's time to steps x (forward + backward), for native, torchattacks and ART;
* **precision**: a short mini training (tiny data, the demo's MobileNetV2 width 0.25) in fp32 and in bf16 from the
  same seed, with natural and FGSM accuracy of each: what bf16 autocast (the ``auto`` default on CUDA) changes;
* **paper cell**: one paper-shaped study-2 cell end to end through the kit's own runner (experiment 3's ResNet-18
  from scratch at 224 px inside the model, batch 128, clean training then PGD-10 adversarial training, then its
  evaluation with every attack), a few hundred steps on the built-in tiny data;
* the device, driver, torch, CUDA and cuDNN versions (and the provenance every cell records).

Every section checks the time left first and is skipped, with the reason recorded, where it would not fit.
:func:`cost_block` turns the JSON into the README's "Cost of a paper run" table: rows the JSON measures say
"measured on DEVICE", the others keep their estimate, labelled as such (``--update-readme README.md``).

On a CPU (or with ``tiny=True``) every size is tiny, so the whole run takes seconds; the tests run it that way and
check the JSON. Tiny numbers say nothing about a paper run, so :func:`cost_block` uses only a non-tiny CUDA run.
Weights are random: a step costs the same whatever the weights.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import provenance
from ..config.common import Phase
from ..engine.train import make_optimizer
from ..errors import UserError
from ..models.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from ..models.mobilenet import build_mobilenet_v2, wrap
from ..models.resnet import resnet18_scratch
from .bench_train import kit_batches, timed_window

__all__ = ["FULL", "TINY", "BenchSizes", "bench_gpu", "cost_block", "format_gpu_tables", "read_result", "update_readme"]

BUDGET_SECONDS = 480.0  # the "at most 8 minutes on one GPU"
MODES = ("fp32", "bf16", "bf16+compile")
BEGIN, END = "<!-- bench-gpu:cost-table -->", "<!-- /bench-gpu:cost-table -->"


@dataclass(frozen=True)
class BenchSizes:
    """Sizes of every section (``--tiny`` or no CUDA: :data:`TINY`)."""

    px: int = 224  # train and attack input size
    batch: int = 128  # train batch (study 1 and study 2 both train with 128)
    steps: int = 40  # timed train steps per model and mode
    warmup: int = 10  # untimed train steps first (cuDNN autotuning, allocator); compile's first call apart
    images: int = 1024  # synthetic uint8 images the train pipeline cycles through
    attack_batch: int = 64
    attack_steps: int = 10  # PGD steps
    attack_repeats: int = 3
    mini_classes: int = 8  # precision: tiny target classes, images per class, px, epochs, batch
    mini_per_class: int = 150
    mini_px: int = 32
    mini_epochs: int = 6
    mini_batch: int = 32
    cell_per_class: int = 640  # paper cell: tiny CIFAR-10 stand-in images per class (10 classes)
    cell_px: int = 224  # ResNet-18's input size inside the model (the paper's resize)
    cell_batch: int = 128
    cell_steps: int = 10  # PGD steps of training and evaluation
    cell_epochs: int = 2  # clean epochs, then as many adversarial ones
    cell_vmi_samples: int = 5  # VMIFGSM's N in the cell's evaluation (the paper's 5)
    compile_backend: str = "inductor"


FULL = BenchSizes()
TINY = BenchSizes(px=32, batch=8, steps=2, warmup=1, images=32, attack_batch=4, attack_steps=2, attack_repeats=1,
                  mini_classes=3, mini_per_class=16, mini_px=16, mini_epochs=1, mini_batch=16, cell_per_class=5,
                  cell_px=16, cell_batch=8, cell_steps=1, cell_epochs=1, cell_vmi_samples=1, compile_backend="eager")
# Seconds each piece may need on a GPU at FULL sizes: generous guesses for an H100-class GPU (no GPU was available
# to measure them; replace them with a first run's times). A piece starts only with its need and the needs of the
# pieces after it left, else it is skipped and the JSON says so. Order: the cheap train modes, attacks, precision,
# the paper cell, then torch.compile (the costliest, the first to go).
NEEDS = {"train": 20.0, "attacks": 45.0, "precision": 45.0, "paper_cell": 180.0, "compile": 150.0}


def _train_models() -> dict[str, tuple[Callable[[], nn.Module], Phase, str]]:
    """name -> (builder, optimizer phase, what it is): the models of the cost table's heavy rows."""
    return {
        "mobilenet_v2": (lambda: wrap(build_mobilenet_v2(200, width_mult=1.0, seed=0), "imagenet"),
                         Phase("adam", 1e-4, 1), "study 1: MobileNetV2 width 1.0, 200 classes, Adam"),
        "resnet18": (lambda: ImageClassifier(resnet18_scratch(10, 0), IMAGENET_MEAN, IMAGENET_STD),
                     Phase("sgd", 1e-3, 1), "study 2: ResNet-18 from scratch, 10 classes, SGD"),
    }


# ---------------------------------------------------------------------------------------------- the device ---


def _nvidia_smi_driver() -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def device_info(device: torch.device) -> dict:
    info: dict = {"type": device.type, "name": provenance.device_name(device), "torch": torch.__version__,
                  "cuda": torch.version.cuda,
                  "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
                  "driver": None, "capability": None, "memory_gib": None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(driver=_nvidia_smi_driver(), capability=f"{props.major}.{props.minor}",
                    memory_gib=round(props.total_memory / 2**30, 1), multiprocessors=props.multi_processor_count)
    return info


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# --------------------------------------------------------------------------------------------------- train ---


def _train_step(model: nn.Module, phase: Phase, device: torch.device, mode: str, backend: str) -> Callable:
    """fit()'s step: channels_last, autocast (bf16 modes), cross-entropy in fp32, fused optimizer, ``loss.item()``."""
    model.to(device=device, memory_format=torch.channels_last).train()
    optimizer = make_optimizer(phase, [p for p in model.parameters() if p.requires_grad])
    forward = torch.compile(model, backend=backend) if mode.endswith("+compile") else model
    bf16 = mode.startswith("bf16")

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = forward(x.contiguous(memory_format=torch.channels_last))
            loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def _bench_train(device: torch.device, sizes: BenchSizes, modes: tuple[str, ...], fits: Callable[[str], bool],
                 log: Callable[[str], None], skipped: list) -> list:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (sizes.images, 3, sizes.px, sizes.px), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 10, (sizes.images,), generator=g)
    rows = []
    for name, (build, phase, what) in _train_models().items():
        for mode in modes:
            if not fits("compile" if mode.endswith("compile") else "train"):
                skipped.append({"section": f"train {name} {mode}", "reason": "not enough of the time budget left"})
                continue
            torch.manual_seed(0)
            step = _train_step(build(), phase, device, mode, sizes.compile_backend)
            with kit_batches(images, labels, sizes.batch, sizes.px, seed=0, device=device) as batches:
                t0 = time.perf_counter()
                step(*next(batches))  # torch.compile (and cuDNN's autotuning) happen here
                _sync(device)
                first = time.perf_counter() - t0
                w = timed_window(batches, step, sizes.warmup, sizes.steps)
            rows.append({"model": name, "what": what, "mode": mode, "px": sizes.px, "batch": sizes.batch,
                         "steps": sizes.steps, "img_per_s": w["images"] / w["seconds"],
                         "ms_per_step": 1e3 * w["seconds"] / sizes.steps,
                         "data_wait_share": w["wait_seconds"] / w["seconds"], "first_step_seconds": first,
                         "compile_backend": sizes.compile_backend if mode.endswith("compile") else None})
            log(f"train {name} {mode}: {rows[-1]['img_per_s']:.0f} img/s, data wait "
                f"{rows[-1]['data_wait_share']:.1%} (first step {first:.1f} s)")
            del step
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return rows


# ------------------------------------------------------------------------------------------------- attacks ---


def _bench_attack_ratios(device: torch.device, sizes: BenchSizes) -> dict:
    from ..attacks import AttackSpec
    from .bench_attacks import bench_attacks

    torch.manual_seed(0)
    model = wrap(build_mobilenet_v2(200, width_mult=1.0, seed=0), "imagenet").to(device)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(sizes.attack_batch, 3, sizes.px, sizes.px, generator=g).to(device)
    y = torch.randint(0, 200, (sizes.attack_batch,), generator=g).to(device)
    eps = 8 / 255
    specs = [AttackSpec.fgsm(eps), AttackSpec.pgd(eps, eps / 4, sizes.attack_steps, random_start=False)]
    return {"model": "mobilenet_v2", "px": sizes.px,
            **bench_attacks(model, x, y, specs, repeats=sizes.attack_repeats)}


# ----------------------------------------------------------------------------------------------- precision ---


def _bench_precision(device: torch.device, sizes: BenchSizes, tmp: Path) -> dict:
    from ..attacks import AttackSpec, attack
    from ..data.images import TensorImages
    from ..data.tiny import TinySpec, make_target
    from ..engine.train import accuracy, fit

    spec = TinySpec(n_source_classes=max(2 * sizes.mini_classes, 4), n_target_classes=sizes.mini_classes,
                    image_size=sizes.mini_px, target_per_class=sizes.mini_per_class, seed=0)
    x, y = make_target(spec)
    cut = int(0.8 * len(y))
    train, test = TensorImages(x[:cut], y[:cut]), (x[cut:], y[cut:])
    eps = 0.03
    out = {"data": f"tiny target task, {sizes.mini_classes} classes, {len(y)} images at {sizes.mini_px} px "
                   f"({cut} train, {len(y) - cut} test)",
           "model": "MobileNetV2 width 0.25, stride 8 (study 1's demo)", "epochs": sizes.mini_epochs,
           "batch": sizes.mini_batch, "fgsm_eps": eps}
    for precision in ("fp32", "bf16"):
        model = wrap(build_mobilenet_v2(sizes.mini_classes, width_mult=0.25, stride8=True, seed=0), "imagenet")
        t0 = time.perf_counter()
        history = fit(model, (Phase("adam", 3e-3, sizes.mini_epochs),), train, None, seed=0,
                      batch_size=sizes.mini_batch, ckpt_dir=tmp / f"mini-{precision}", fingerprint="bench-gpu-mini",
                      device=device, log=lambda msg: None, precision=precision).history
        seconds = time.perf_counter() - t0
        xt, yt = test[0].to(device), test[1].to(device)
        adv = attack(model, xt, yt, AttackSpec.fgsm(eps), "native")
        out[precision] = {"natural_acc": accuracy(model, TensorImages(xt.cpu(), yt.cpu()), 256, device),
                          "fgsm_acc": accuracy(model, TensorImages(adv.detach().cpu(), yt.cpu()), 256, device),
                          "final_train_loss": history[-1]["train_loss"], "seconds": seconds}
    out["natural_acc_diff"] = out["bf16"]["natural_acc"] - out["fp32"]["natural_acc"]
    out["fgsm_acc_diff"] = out["bf16"]["fgsm_acc"] - out["fp32"]["fgsm_acc"]
    return out


# ---------------------------------------------------------------------------------------------- paper cell ---


def _bench_paper_cell(device: torch.device, sizes: BenchSizes, tmp: Path) -> dict:
    import json

    from .. import studies
    from ..engine.grid import run_experiment
    from ..studies.base import RunContext
    from ..workflow import load

    # The cell comes from the first registered study that offers one (Study.bench_cell), so no study is named here.
    template = next((s.bench_cell for s in studies.all_studies() if s.bench_cell), None)
    if template is None:
        return {"skipped": "no registered study offers a paper-shaped bench cell (Study.bench_cell)"}
    config = tmp / "paper_cell.toml"
    config.write_text(template.format(batch=sizes.cell_batch, steps=sizes.cell_steps, px=sizes.cell_px,
                                      epochs=sizes.cell_epochs, per_class=sizes.cell_per_class,
                                      vmi=sizes.cell_vmi_samples))
    exp = load(str(config), "bench")
    out = tmp / "paper_cell"
    t0 = time.perf_counter()
    run_experiment(exp, RunContext(out, tmp / "data", device, lambda msg: None))
    seconds = time.perf_counter() - t0
    cells = []
    for path in sorted((out / "cells").glob("*.json")):
        cell = json.loads(path.read_text())
        # training_log: {"clean": {"history": [...]}, "adversarial": {...}}; the PGD cell resumes the clean one.
        part = "clean" if cell["training"] == "clean" else "adversarial"
        history = (cell.get("training_log") or {}).get(part, {}).get("history") or []
        train_seconds = sum(float(e.get("seconds", 0.0)) for e in history)  # each epoch with its validation
        n_train = int(cell["data"]["n_train"])
        cells.append({"key": path.stem, "training": cell["training"], "wall_seconds": cell["wall_seconds"],
                      "epochs": len(history), "n_train": n_train, "train_seconds": train_seconds,
                      "img_per_s": n_train * len(history) / train_seconds if train_seconds else None,
                      "accuracy": {e["attack"]: e["accuracy"] for e in cell["evaluations"] if e.get("primary")}})
    by_training = {c["training"]: c for c in cells}
    n_train = cells[0]["n_train"] if cells else 0
    return {"config": {"model": exp.cfg.settings[0].models[0], "input_px": sizes.cell_px, "batch": sizes.cell_batch,
                       "pgd_steps": sizes.cell_steps, "epochs_clean": sizes.cell_epochs,
                       "epochs_adversarial": sizes.cell_epochs, "tiny_per_class": sizes.cell_per_class},
            "steps_per_epoch": -(-n_train // sizes.cell_batch), "seconds": seconds, "cells": cells,
            "clean_img_per_s": (by_training.get("clean") or {}).get("img_per_s"),
            "adversarial_img_per_s": (by_training.get("pgd") or {}).get("img_per_s")}


# --------------------------------------------------------------------------------------------------- bench ---


def bench_gpu(*, device: torch.device | None = None, tiny: bool | None = None, budget: float = BUDGET_SECONDS,
              sizes: BenchSizes | None = None, log: Callable[[str], None] = print) -> dict:
    """Every section of the module docstring on ``device`` (default: CUDA if visible, else CPU); ``tiny``
    (default: no CUDA) uses :data:`TINY` sizes, ``sizes`` any others."""
    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if tiny is None:
        tiny = device.type != "cuda"
    sizes = sizes or (TINY if tiny else FULL)
    start = time.perf_counter()

    def left() -> float:
        return budget - (time.perf_counter() - start)

    needs = NEEDS if not tiny else dict.fromkeys(NEEDS, 0.0)
    order = list(NEEDS)

    def fits(piece: str) -> bool:
        """Whether ``piece`` and the pieces after it (compile aside: it goes first) fit in the time left."""
        later = [p for p in order[order.index(piece) + 1:] if p != "compile"]
        return left() >= needs[piece] + sum(needs[p] for p in later)

    skipped: list[dict] = []
    result: dict = {"benchmark": "bench gpu", "tiny": tiny, "budget_seconds": budget, "sizes": asdict(sizes),
                    "device": device_info(device)}
    log(f"bench gpu on {result['device']['name']} ({device}), budget {budget:.0f} s{', tiny sizes' if tiny else ''}")
    saved_benchmark = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = device.type == "cuda"  # fixed shapes: let cuDNN pick its fastest kernels
    try:
        with tempfile.TemporaryDirectory(prefix="advtransfer-bench-gpu-") as tmp:
            result["train"] = _bench_train(device, sizes, MODES[:2], fits, log, skipped)
            for section, fn in (("attacks", lambda: _bench_attack_ratios(device, sizes)),
                                ("precision", lambda: _bench_precision(device, sizes, Path(tmp))),
                                ("paper_cell", lambda: _bench_paper_cell(device, sizes, Path(tmp)))):
                result[section] = None
                if not fits(section):
                    skipped.append({"section": section, "reason": "not enough of the time budget left"})
                    continue
                t0 = time.perf_counter()
                result[section] = fn()
                log(f"{section}: {time.perf_counter() - t0:.1f} s")
            result["train"] += _bench_train(device, sizes, MODES[2:], fits, log, skipped)
    finally:
        torch.backends.cudnn.benchmark = saved_benchmark
    result["skipped"] = skipped
    result["seconds"] = time.perf_counter() - start
    result["provenance"] = provenance.collect(device)
    return result


# ------------------------------------------------------------------------------------------------- tables ---


def format_gpu_tables(result: dict) -> str:
    """The JSON as Markdown: device, train, attacks, precision, paper cell, skipped sections."""
    d = result["device"]
    lines = [f"# bench gpu: {d['name']} ({d['type']}{', tiny sizes' if result['tiny'] else ''})", "",
             f"driver {d.get('driver') or '-'}, torch {d['torch']}, CUDA {d.get('cuda') or '-'}, cuDNN "
             f"{d.get('cudnn') or '-'}, capability {d.get('capability') or '-'}, memory "
             f"{d.get('memory_gib') or '-'} GiB; {result['seconds']:.0f} s of a {result['budget_seconds']:.0f} s "
             "budget", ""]
    if result.get("train"):
        lines += ["| model | mode | px | batch | img/s | ms/step | data wait | first step (s) |",
                  "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['mode']} | {r['px']} | {r['batch']} | {r['img_per_s']:.0f} | "
                  f"{r['ms_per_step']:.1f} | {r['data_wait_share']:.1%} | {r['first_step_seconds']:.1f} |"
                  for r in result["train"]]
        lines.append("")
    if result.get("attacks"):
        a = result["attacks"]
        lines += [f"Attacks on {a['model']} at {a['px']} px, batch {a['batch']}: one forward+backward "
                  f"{a['forward_backward_ms']:.1f} ms.", "", "| attack | backend | ms/batch | x steps x (fwd+bwd) |",
                  "|---|---|---|---|"]
        lines += [f"| {r['attack']} | {r['backend']} | {r['ms_per_batch']:.1f} | {r['ratio_to_bound']:.2f} |"
                  for r in a["rows"]]
        lines.append("")
    if result.get("precision"):
        p = result["precision"]
        lines += [f"Precision ({p['model']}, {p['data']}, {p['epochs']} epochs): natural accuracy fp32 "
                  f"{p['fp32']['natural_acc']:.3f} / bf16 {p['bf16']['natural_acc']:.3f}, FGSM (eps "
                  f"{p['fgsm_eps']}) {p['fp32']['fgsm_acc']:.3f} / {p['bf16']['fgsm_acc']:.3f}.", ""]
    if result.get("paper_cell"):
        c = result["paper_cell"]
        cfg = c["config"]
        rates = ", ".join(f"{k.split('_')[0]} {v:.0f} img/s" for k, v in
                          (("clean_img_per_s", c["clean_img_per_s"]), ("adversarial_img_per_s",
                                                                       c["adversarial_img_per_s"])) if v)
        lines += [f"Paper-shaped cell ({cfg['model']} at {cfg['input_px']} px, batch {cfg['batch']}, PGD-"
                  f"{cfg['pgd_steps']}, {c['steps_per_epoch']} steps per epoch, {cfg['epochs_clean']} + "
                  f"{cfg['epochs_adversarial']} epochs): {c['seconds']:.0f} s end to end; {rates or '-'}.", ""]
    for s in result.get("skipped", []):
        lines.append(f"- skipped {s['section']}: {s['reason']}")
    return "\n".join(lines).rstrip() + "\n"


@dataclass(frozen=True)
class Workload:
    """A row of the README's cost table: what it is, and how a bench gpu JSON measures it (if it does)."""

    name: str
    passes: str
    cpu: str
    estimate: str  # hours or minutes, the estimate without a GPU measurement
    estimate_hours: float
    units: float = 0.0  # images (fwd+bwd+step each) the measured rate divides; 0: not measured by bench gpu
    rate: Callable[[dict], tuple[float, str] | None] | None = None


def _best_train(model: str) -> Callable[[dict], tuple[float, str] | None]:
    def rate(result: dict) -> tuple[float, str] | None:
        rows = [r for r in result.get("train") or [] if r["model"] == model]
        if not rows:
            return None
        best = max(rows, key=lambda r: r["img_per_s"])
        return best["img_per_s"], f"{best['img_per_s']:,.0f} img/s, {best['mode']}"
    return rate


def _adversarial_rate(result: dict) -> tuple[float, str] | None:
    cell = result.get("paper_cell") or {}
    if cell.get("adversarial_img_per_s"):
        return cell["adversarial_img_per_s"], (f"{cell['adversarial_img_per_s']:,.0f} adversarial-training img/s "
                                               "in the paper-shaped cell")
    train = _best_train("resnet18")(result)
    if train is None:
        return None
    return train[0] / 11, f"{train[0]:,.0f} img/s train step / 11 passes"


WORKLOADS = (
    Workload("study 1: 18 MobileNetV2 trainings, 4 epochs x 24,000 images at 224 px, + evaluation", "~2 M fwd+bwd",
             "171 img/s at 96 px (~6x less at 224 px)", "~10 min (~4,000-7,000 img/s)", 10 / 60, 2e6,
             _best_train("mobilenet_v2")),
    Workload("study 2: BaseNet, clean + 3 AT methods x 100 epochs x 50,000, PGD 10 steps", "~60 M (tiny model)",
             "10,600 img/s at 32 px", "~15 min", 15 / 60),
    Workload("study 2: ResNet-18 at 224 px, 3 PGD-AT trainings x 2 protocols x 100 epochs x 50,000 x 11 passes",
             "~330 M fwd+bwd", "523 img/s at 32 px (~49x the FLOPs at 224 px)", "~9-10 h (~10,000 img/s)", 9.5,
             3e7, _adversarial_rate),
    Workload("study 2: ResNet-18 clean trainings (scratch and fc-only) and evaluation", "~35 M", "", "~1 h", 1.0,
             3.5e7, _best_train("resnet18")),
)


def _wrap(text: str) -> str:
    """A paragraph wrapped as the README's are (120 columns, never inside a word or `code`)."""
    import textwrap

    return textwrap.fill(text, width=120, break_long_words=False, break_on_hyphens=False)


def _hours(h: float) -> str:
    return f"~{h * 60:.0f} min" if h < 1 else f"~{h:.1f} h"


def _measures(result: dict | None) -> bool:
    """Whether a JSON's numbers may stand for a paper run: a non-tiny run on CUDA."""
    return bool(result) and result["device"]["type"] == "cuda" and not result["tiny"]


def cost_block(result: dict | None) -> str:
    """The README's cost table and its summary, between the markers :func:`update_readme` replaces. Rows that
    ``result`` measures (a non-tiny CUDA run) say "measured on DEVICE"; the others keep their estimates."""
    measured = _measures(result)
    device = result["device"]["name"] if measured else None
    head = ("**Cost of a paper run (estimates, labelled as such).** No GPU was available to this project yet, so these "
            "are estimates from the CPU measurements above and published GPU throughput, not measurements:"
            if not measured else
            f"**Cost of a paper run (measured on {device}, {result['device'].get('memory_gib')} GiB, driver "
            f"{result['device'].get('driver') or '-'}, torch {result['device']['torch']}).** `advtransfer bench gpu` "
            "measured the rows that say so (`--update-readme` wrote this table from its JSON); the others are "
            "estimates, labelled as such:")
    last = f"measured on {device} (1 GPU)" if measured else "estimate, 1 GPU (H100-class, bf16, channels_last)"
    lines = [BEGIN, _wrap(head), "",
             f"| workload (`reproduce-all --profile paper`) | image-passes | per-step cost measured here (2-core CPU) "
             f"| {last} |", "|---|---|---|---|"]
    total, n_measured, pgd_hours = 0.0, 0, None
    for w in WORKLOADS:
        got = w.rate(result) if measured and w.rate is not None else None
        if got:
            hours = w.units / got[0] / 3600
            cell = f"{_hours(hours)} ({got[1]})"
            n_measured += 1
        else:
            hours = w.estimate_hours
            cell = w.estimate if not measured else f"estimate: {w.estimate}"
        if "PGD-AT" in w.name:
            pgd_hours = hours
        total += hours
        lines.append(f"| {w.name} | {w.passes} | {w.cpu} | {cell} |")
    per_cell = (pgd_hours or 0) / 6
    source = (f"{n_measured} of {len(WORKLOADS)} rows measured on {device}" if measured else "estimates")
    summary = (f"So `reproduce-all --profile paper` is roughly {total:.0f} GPU-hours ({source}), dominated by "
               "ResNet-18 adversarial training at 224 px; with N GPUs and `--shard`, the wall time falls to about "
               f"{total:.0f}/N hours until N reaches the six ResNet-18 PGD-AT cells ({_hours(per_cell)} each), beyond "
               "which `torchrun` inside each of those cells is what shortens it further.")
    lines += ["", _wrap(summary), END]
    return "\n".join(lines)


def update_readme(readme: Path, result: dict) -> None:
    """Replace the block between the cost-table markers of ``readme`` with :func:`cost_block` of ``result``."""
    readme = Path(readme)
    try:
        text = readme.read_text()
    except OSError as exc:
        raise UserError(f"--update-readme {readme}: cannot read it ({exc.strerror})") from None
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), flags=re.DOTALL)
    if len(pattern.findall(text)) != 1:
        raise UserError(f"--update-readme {readme}: expected one cost table between the lines {BEGIN} and {END} "
                        "(README.md, section Speed and scale, has them)")
    if not _measures(result):
        raise UserError(f"--update-readme {readme}: this run was on {result['device']['type']}"
                        f"{' with tiny sizes' if result['tiny'] else ''}; only a full run on a CUDA device measures "
                        "a paper run (run `advtransfer bench gpu` on a GPU without --tiny)")
    from ..io import atomic_write_text

    atomic_write_text(readme, pattern.sub(lambda _m: cost_block(result), text))


def read_result(path: Path) -> dict:
    """A bench gpu JSON written earlier (``--from-json``); UserError if it is not one."""
    import json

    try:
        result = json.loads(Path(path).read_text())
        if not (isinstance(result, dict) and result.get("benchmark") == "bench gpu" and "type" in result["device"]
                and isinstance(result["tiny"], bool)):
            raise ValueError("no benchmark, device or tiny field of a bench gpu result")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"--from-json {path}: not a readable `advtransfer bench gpu` JSON ({exc})") from None
    return result


def sizes_with(base: BenchSizes, **changes: int) -> BenchSizes:
    """``base`` with the given sizes replaced (the CLI's --px, --batch, --steps)."""
    return replace(base, **{k: v for k, v in changes.items() if v is not None})
