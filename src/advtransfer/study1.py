"""Study 1: ImageNet-R / MobileNetV2 block transfer under FGSM (seed 000), as a grid of independent cells.

Cells are (protocol, seed, model) with models ``base_a``, ``bnb``, ``a{N}b`` (first N blocks copied from Base A and
frozen) and ``a{N}b_plus`` (copied and fine-tuned). Every model is evaluated on the natural test set, on FGSM
examples crafted on Base A (the original's transfer attack) and on white-box FGSM, at every eps of the profile.
See SPEC section 2 for the protocol and ``experiments/exp1.toml`` for the settings.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from . import provenance
from .attacks import AttackSpec, attack
from .cells import Log, derived_seed, fingerprint, stderr_log
from .checks import check_evaluations
from .config import Exp1Config
from .crosscheck import crosscheck as crosscheck_backends
from .crosscheck import default_specs
from .data import imagenet_r, tiny
from .data.images import TensorImages, scan_image_folder
from .data.splits import load_or_make_manifest
from .data.tensor_cache import cached_or_files, subset
from .errors import DataError
from .evaluate import evaluate_model, flags_to_str
from .io import atomic_write_bytes, atomic_write_json
from .models import weights
from .models.classifier import ImageClassifier
from .models.mobilenet import build_mobilenet_v2, transfer_model, wrap
from .results import missing_error, run_grid
from .train import fit, resolve_precision

# ------------------------------------------------------------------------------------------------------ grid ---


@dataclass(frozen=True)
class Cell:
    experiment: str
    protocol: str
    seed: int
    model: str  # stable key: base_a, bnb, a4b, a4b_plus, ...
    family: str  # base_a | bnb | anb | anb_plus
    n_blocks: int | None

    @property
    def key(self) -> str:
        return f"{self.experiment}-{self.protocol}-{self.model}-s{self.seed}"


def models_of(blocks: tuple[int, ...]) -> list[tuple[str, str, int | None]]:
    out: list[tuple[str, str, int | None]] = [("base_a", "base_a", None), ("bnb", "bnb", None)]
    for n in blocks:
        out += [(f"a{n}b", "anb", n), (f"a{n}b_plus", "anb_plus", n)]
    return out


def shard_unit(cell: Cell) -> str:
    """Each cell is its own unit for ``--shard K/N``. Cells of one seed share Base A; where the profile pretrains it
    (demo), every shard that needs it resumes or computes the same deterministic, atomically checkpointed training,
    so two shards computing it at once only duplicate work (the same holds for the per-seed split manifests)."""
    return cell.key


def plan(cfg: Exp1Config) -> list[Cell]:
    return [Cell(cfg.name, protocol, seed, model, family, n)
            for protocol in cfg.protocols for seed in cfg.seeds for model, family, n in models_of(cfg.blocks)]


# ------------------------------------------------------------------------------------------------------ data ---


@dataclass
class Task:
    """The target task (ImageNet-R or its tiny analogue) and how it maps onto Base A's output classes."""

    pool: Dataset
    items: list[str]
    labels: np.ndarray
    class_names: list[str]  # target classes
    source_indices: np.ndarray  # target label j is Base A's output class source_indices[j] (the 200-class mask)
    source_class_names: list[str]
    class_ids: list[str] = field(default_factory=list)  # target class ids: wnids, or "0".."K-1" for tiny data
    source_train: Dataset | None = None  # tiny only: the source task Base A is pretrained on

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def source_num_classes(self) -> int:
        return len(self.source_class_names)


def preflight(cfg: Exp1Config, data_root: Path) -> list[str]:
    """Everything the run needs that is missing, as messages naming the fix (no work done, no network)."""
    missing = []
    if cfg.dataset == "imagenet-r":
        try:
            imagenet_r.check(data_root)
        except DataError as exc:
            missing.append(str(exc))
    elif cfg.dataset == "imagefolder" and not _folder_path(cfg, data_root).is_dir():
        missing.append(f"image folder {_folder_path(cfg, data_root)} (dataset_path in {cfg.source_file}) does not "
                       "exist: point dataset_path at an ImageFolder tree <dir>/<wnid>/<images>")
    if cfg.base_a.source == "torchvision":
        try:
            weights.verify_cached("mobilenet_v2", cfg.base_a.weights)
        except DataError as exc:
            missing.append(str(exc))
    elif cfg.base_a.source == "file" and not Path(cfg.base_a.path).expanduser().is_file():
        missing.append(f"Base A weight file {cfg.base_a.path} (base_a.path in {cfg.source_file}) does not exist")
    return missing


def fetch_missing(cfg: Exp1Config, data_root: Path) -> list[str]:
    """Download (verified) what ``preflight`` finds missing; returns why each failed download failed."""
    failures = []
    steps = []
    if cfg.dataset == "imagenet-r" and not imagenet_r.root(data_root).is_dir():
        steps.append(("ImageNet-R", lambda: imagenet_r.fetch(data_root)))
    if cfg.base_a.source == "torchvision":
        steps.append((f"MobileNetV2 {cfg.base_a.weights}", lambda: weights.fetch("mobilenet_v2", cfg.base_a.weights)))
    for name, step in steps:
        try:
            step()
        except DataError as exc:
            failures.append(f"{name}: {str(exc).split('. ')[0]}")
    return failures


def _folder_path(cfg: Exp1Config, data_root: Path) -> Path:
    path = Path(cfg.dataset_path).expanduser()
    return path if path.is_absolute() else Path(data_root) / path


def load_task(cfg: Exp1Config, data_root: Path) -> Task:
    if cfg.dataset == "tiny":
        spec = tiny.TinySpec(n_source_classes=cfg.tiny.n_source_classes, n_target_classes=cfg.tiny.n_target_classes,
                             image_size=cfg.image_size, source_per_class=cfg.tiny.source_per_class,
                             target_per_class=cfg.tiny.target_per_class, seed=cfg.tiny.seed)
        images, labels = tiny.make_target(spec)
        mask = tiny.target_classes(spec)
        names = tiny.class_names(spec)
        return Task(TensorImages(images, labels), [f"tiny-target/{i}" for i in range(len(labels))], labels.numpy(),
                    [names[i] for i in mask], mask, names, [str(j) for j in range(len(mask))],
                    TensorImages(*tiny.make_source(spec)))
    folder = imagenet_r.check(data_root) if cfg.dataset == "imagenet-r" else _folder_path(cfg, data_root)
    class_dirs, files, labels = scan_image_folder(folder)
    indices, wnids = imagenet_r.classes()
    by_wnid = dict(zip(wnids, indices.tolist()))
    unknown = [c for c in class_dirs if c not in by_wnid]
    if unknown:
        raise DataError(f"{folder}: class folders {unknown[:3]} are not ImageNet-R wnids; Base A scores the target "
                        "task through the ImageNet-R class mask, so class folders must be named by wnid "
                        "(n01443537, ...)")
    source_names = list(torchvision_categories())
    mask = np.array([by_wnid[c] for c in class_dirs], dtype=np.int64)
    # Decoded and resized once into a uint8 cache under the data root, keyed by the files and the size; every epoch
    # and every later run reads it through a memory map (same pixels as decoding each file).
    pool = cached_or_files(Path(data_root) / "cache", folder, files, labels, cfg.image_size, classes=class_dirs,
                           log=stderr_log)
    return Task(pool, [str(f.relative_to(folder)) for f in files], labels,
                [source_names[i] for i in mask], mask, source_names, class_dirs)


def torchvision_categories() -> list[str]:
    import torchvision

    return torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]


def figure_label(cfg: Exp1Config, task: Task) -> int:
    """Target label of the eps-choice image class (the original used a space shuttle); label 0 if absent."""
    return task.class_ids.index(cfg.figure_class) if cfg.figure_class in task.class_ids else 0


# ---------------------------------------------------------------------------------------------------- models ---


def _training_config(cfg: Exp1Config) -> dict:
    """The config entries that change training (not eps, figures, or the grid), for checkpoint fingerprints."""
    d = cfg.to_dict()
    for key in ("eps", "eps_sweep", "figure_eps", "figure_class", "eval_batch_size", "seeds", "blocks", "protocols",
                "source_file", "profile"):
        d.pop(key, None)
    return d


@dataclass
class Context:
    cfg: Exp1Config
    out: Path
    data_root: Path
    device: torch.device
    log: Log = stderr_log
    workers: int = 0
    _task: Task | None = None
    _base: dict[int, ImageClassifier] = field(default_factory=dict)
    _splits: dict[tuple[str, int], dict[str, Dataset]] = field(default_factory=dict)

    @property
    def task(self) -> Task:
        if self._task is None:
            self._task = load_task(self.cfg, self.data_root)
        return self._task

    def split(self, protocol: str, seed: int) -> dict[str, Dataset]:
        if (protocol, seed) not in self._splits:
            t = self.task
            idx = load_or_make_manifest(self.out / "manifests" / f"{self.cfg.name}-{protocol}-s{seed}.json",
                                        t.items, t.labels, protocol, self.cfg.split.test, self.cfg.split.val, seed)
            self._splits[(protocol, seed)] = {k: subset(t.pool, v) for k, v in idx.items()}
        return self._splits[(protocol, seed)]

    def base_a(self, seed: int) -> ImageClassifier:
        """Base A with its full source-task head (1000-way for ImageNet), in eval mode."""
        if seed not in self._base:
            self._base[seed] = self._load_base_a(seed)
        return self._base[seed]

    def _load_base_a(self, seed: int) -> ImageClassifier:
        b = self.cfg.base_a
        t = self.task
        if b.source == "pretrain":
            net = build_mobilenet_v2(t.source_num_classes, b.width_mult, b.stride8,
                                     seed=derived_seed(seed, "base_a"))
            model = wrap(net, b.normalization)
            key = f"{self.cfg.name}-base_a-pretrain-s{seed}"
            self.log(f"[{key}] pretraining Base A on the tiny source task ({len(t.source_train)} images)")
            fit(model, b.schedule, t.source_train, None, seed=seed, batch_size=self.cfg.batch_size,
                ckpt_dir=self.out / "checkpoints" / key, fingerprint=fingerprint(key, _training_config(self.cfg)),
                device=self.device, log=self.log, precision=self.cfg.precision, compile_model=self.cfg.compile)
            return model.eval()
        state = (weights.load_state_dict("mobilenet_v2", b.weights) if b.source == "torchvision"
                 else weights.load_state_file(Path(b.path).expanduser()))
        net = build_mobilenet_v2(1000, b.width_mult)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise DataError(f"Base A weights do not fit torchvision's MobileNetV2 (width {b.width_mult}): "
                            f"{str(exc).splitlines()[0]}") from None
        return wrap(net, b.normalization).to(self.device).eval()

    def masked(self, base: ImageClassifier) -> ImageClassifier:
        """Base A scored on the target task through the class mask (shares Base A's weights)."""
        return ImageClassifier(base.net, tuple(base.mean.flatten().tolist()), tuple(base.std.flatten().tolist()),
                               output_indices=torch.as_tensor(self.task.source_indices)).to(self.device).eval()


# ---------------------------------------------------------------------------------------------------- a cell ---


def run_cell(ctx: Context, cell: Cell) -> dict:
    cfg, t0 = ctx.cfg, time.perf_counter()
    data = ctx.split(cell.protocol, cell.seed)
    base = ctx.base_a(cell.seed)
    base_masked = ctx.masked(base)
    training: dict | None = None
    if cell.family == "base_a":
        model = base_masked
    else:
        intended = cell.protocol == "intended"
        model = transfer_model(
            base, cell.n_blocks, trainable_copy=cell.family == "anb_plus", num_classes=ctx.task.num_classes,
            reinit_rest=intended, width_mult=cfg.base_a.width_mult, stride8=cfg.base_a.stride8,
            seed=derived_seed(cell.seed, cell.model)).to(ctx.device)
        # intended: validation carved from train; as-run: the test set doubles as validation (the original's defect;
        # no selection is made on it, the last epoch is kept, but the numbers it logged came from the test set).
        val = data["val"] if intended else data["test"]
        schedule = cfg.schedules[cell.family]
        ctx.log(f"[{cell.key}] training {cell.model} ({cell.protocol}): {len(data['train'])} train, "
                f"{len(val)} {'val' if intended else 'test-as-val'}, "
                f"{sum(p.numel() for p in model.trainable_parameters())} trainable parameters")
        result = fit(model, schedule, data["train"], val, seed=derived_seed(cell.seed, cell.model),
                     batch_size=cfg.batch_size, ckpt_dir=ctx.out / "checkpoints" / cell.key,
                     fingerprint=fingerprint(cell.key, _training_config(cfg)), device=ctx.device, log=ctx.log,
                     eval_batch_size=cfg.eval_batch_size, workers=ctx.workers, precision=cfg.precision,
                     compile_model=cfg.compile)
        training = {"history": result.history, "resumed_from_epoch": result.resumed_from,
                    "seconds": round(result.seconds, 3),
                    "schedule": [p.__dict__ for p in schedule], "frozen_features": model.frozen_features}
    fgsm = [AttackSpec.fgsm(eps) for eps in cfg.all_eps]
    pgd = AttackSpec.pgd(cfg.eps, cfg.eps / 4, cfg.pgd_steps, random_start=True)
    ctx.log(f"[{cell.key}] evaluating on {len(data['test'])} test images ({', '.join(cfg.backends)}): natural, FGSM "
            f"transfer from base_a and white-box at eps {', '.join(f'{e:g}' for e in cfg.all_eps)}, white-box "
            f"{pgd.key()}")
    evals = evaluate_model(model, cell.model, data["test"], [*fgsm, pgd], transfer=fgsm,
                           transfer_source=None if cell.family == "base_a" else base_masked,
                           transfer_key="base_a", backends=cfg.backends, batch_size=cfg.eval_batch_size,
                           device=ctx.device, seed=derived_seed(cell.seed, f"{cell.model}/eval"), workers=ctx.workers)
    records = []
    for ev in evals:
        rec = {"attack": ev.attack, "threat": ev.threat, "source_model": ev.source_model, "eps": ev.eps,
               "backend": ev.backend, "accuracy": ev.accuracy, "correct": ev.correct, "n": len(ev.flags),
               "primary": ev.threat == "natural" or ev.eps == cfg.eps, "flags": flags_to_str(ev.flags)}
        records.append(rec)
        if cell.family == "base_a" and ev.threat == "whitebox" and ev.attack == "fgsm":
            records.append({**rec, "threat": "transfer", "source_model": "base_a"})  # Base A's own attack
    checks = [f.to_dict() for f in check_evaluations(cell.model, records)]
    for flag in checks:
        ctx.log(f"[{cell.key}] CHECK {flag['check']}: {flag['detail']}")
    cross = []
    if cfg.crosscheck_subset > 0:
        x, y = _first(data["test"], cfg.crosscheck_subset)
        cross = [{"model": cell.model, "cell": cell.key, **row}
                 for row in crosscheck_backends(model, x.to(ctx.device), y.to(ctx.device),
                                                default_specs(cfg.eps, cfg.pgd_steps),
                                                seed=derived_seed(cell.seed, f"{cell.model}/crosscheck"))]
        for row in cross:
            if not row["agree"]:
                ctx.log(f"[{cell.key}] CROSSCHECK DISAGREES: {row['attack']} {row['backends']}: {row['criterion']} "
                        f"fails (max abs diff {row['max_abs_diff']:.2e}, accuracy {row['accuracy']})")
    artifacts = {}
    if cell.family == "base_a" and cfg.figure_eps:
        artifacts["eps_choice"] = str(write_eps_choice(ctx, cell, base, data["test"]).relative_to(ctx.out))
    natural = next(r["accuracy"] for r in records if r["threat"] == "natural")
    adv = next(r["accuracy"] for r in records if r["threat"] == "transfer" and r["primary"])
    ctx.log(f"[{cell.key}] natural {natural:.4f}, FGSM transfer (eps {cfg.eps:g}) {adv:.4f}")
    return {
        "experiment": cfg.name, "profile": cfg.profile, "protocol": cell.protocol, "seed": cell.seed,
        "model": cell.model, "family": cell.family, "n_blocks": cell.n_blocks,
        "metrics": {"natural_accuracy": natural, "fgsm_transfer_accuracy": adv},
        "backends": list(cfg.backends), "evaluations": records, "checks": checks, "crosscheck": cross,
        "training_log": training, "artifacts": artifacts,
        "data": {"dataset": cfg.dataset, "n_train": len(data["train"]), "n_val": len(data["val"]),
                 "n_test": len(data["test"]), "manifest": f"manifests/{cfg.name}-{cell.protocol}-s{cell.seed}.json"},
        "config": cfg.to_dict(),
        "provenance": provenance.collect(ctx.device, resolve_precision(cfg.precision, ctx.device)),
        "wall_seconds": round(time.perf_counter() - t0, 3),
    }


def _first(dataset: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n examples (a fixed subset: the same for every model of a split)."""
    xs, ys = zip(*(dataset[i] for i in range(min(n, len(dataset)))))
    return torch.stack(xs), torch.as_tensor(ys)


def write_eps_choice(ctx: Context, cell: Cell, base: ImageClassifier, test: Dataset) -> Path:
    """The original's eps-choice figure data: one test image of ``figure_class``, its FGSM versions at each
    ``figure_eps`` crafted on Base A's full (source-task) head, and Base A's top prediction for each."""
    label = figure_label(ctx.cfg, ctx.task)
    labels = test.labels if hasattr(test, "labels") else None
    pos = int(np.flatnonzero(np.asarray(labels) == label)[0]) if labels is not None and (
        np.asarray(labels) == label).any() else 0
    x, y = test[pos]
    x = x.unsqueeze(0).to(ctx.device)
    y_src = torch.as_tensor([int(ctx.task.source_indices[int(y)])], device=ctx.device)
    eps = list(ctx.cfg.figure_eps)
    adv = [attack(base, x, y_src, AttackSpec.fgsm(e)) for e in eps]
    names, confs = [], []
    with torch.no_grad():
        for img in [x, *adv]:
            p = F.softmax(base(img), dim=1)[0]
            names.append(ctx.task.source_class_names[int(p.argmax())])
            confs.append(float(p.max()))
    buf = io.BytesIO()
    np.savez(buf, image=x[0].cpu().numpy().astype(np.float32), eps=np.asarray(eps, dtype=np.float32),
             adversarial=torch.cat(adv).cpu().numpy().astype(np.float32), pred_names=np.asarray(names),
             pred_conf=np.asarray(confs, dtype=np.float32),
             true_name=np.asarray(ctx.task.source_class_names[int(y_src)]))
    return atomic_write_bytes(ctx.out / "artifacts" / f"{cell.key}-eps_choice.npz", buf.getvalue())


# ------------------------------------------------------------------------------------------------------- run ---


def run(cfg: Exp1Config, out: Path, data_root: Path, device: torch.device, *, download: bool = False,
        log: Log = stderr_log, cells: list[Cell] | None = None) -> None:
    """Run every unfinished cell of the grid, then rebuild ``results.csv`` (figures and report: the caller)."""
    missing, failures = preflight(cfg, data_root), []
    if missing and download:
        failures = fetch_missing(cfg, data_root)
        missing = preflight(cfg, data_root)
    if missing:
        raise missing_error(cfg.name, cfg.profile, missing, failures)
    out = Path(out)
    atomic_write_json(out / f"config-{cfg.name}.json", cfg.to_dict())
    workers = 0 if cfg.dataset == "tiny" else min(8, os.cpu_count() or 1)
    ctx = Context(cfg, out, Path(data_root), device, log, workers)
    run_grid(out, plan(cfg) if cells is None else cells, cfg.backends, lambda cell: run_cell(ctx, cell), log)
