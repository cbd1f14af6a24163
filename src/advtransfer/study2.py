"""Study 2: CIFAR-10/100 adversarial training of BaseNet and ResNet-18, pretrained vs scratch (seed 001).

A grid of independent cells (setting, protocol, seed, model, training). A clean cell trains a model from its
initialisation; an adversarial-training cell starts from that clean model's final weights and trains on 100%
adversarial batches. Every model is evaluated on clean test images and under FGSM, PGD, NIFGSM and VMIFGSM:
white-box in ``intended``; in ``as-run`` crafted on the clean model (the original's transfer evaluation), with the
original's clamping of ImageNet-normalised tensors for ResNet. See SPEC section 3 and ``experiments/exp2.toml``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import provenance
from .attacks import AttackSpec, attack, backend_module
from .cells import Log, derived_seed, fingerprint, stderr_log
from .checks import check_evaluations
from .config import Exp2Config, Phase
from .crosscheck import crosscheck, default_specs
from .data import cifar, tiny
from .data.images import TensorImages, subset
from .data.splits import stratified_split
from .errors import DataError
from .evaluate import flags_to_str
from .io import atomic_write_json
from .models import weights
from .models.basenet import basenet
from .models.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from .models.resnet import resnet18_scratch, resnet18_transfer
from .results import missing_error, run_grid
from .train import fit, resolve_precision

EVAL_ATTACKS = ("fgsm", "pgd", "nifgsm", "vmifgsm")


@dataclass(frozen=True)
class Cell:
    experiment: str
    setting: int
    dataset: str
    protocol: str
    seed: int
    model: str
    training: str  # clean, or the attack used for adversarial training

    @property
    def key(self) -> str:
        return f"{self.experiment}-e{self.setting}-{self.protocol}-{self.model}-{self.training}-s{self.seed}"

    @property
    def clean(self) -> Cell:
        return Cell(self.experiment, self.setting, self.dataset, self.protocol, self.seed, self.model, "clean")


def shard_unit(cell: Cell) -> str:
    """Cells that must run in one shard (``--shard K/N``): a clean cell and the adversarial-training cells that
    start from its final checkpoint (same setting, protocol, seed and model). The transfer ResNet's tiny-data
    backbone pretraining is shared by all units of a run; concurrent shards may each compute it (deterministic and
    checkpointed atomically: duplicated work, not a conflict)."""
    return cell.clean.key


def plan(cfg: Exp2Config) -> list[Cell]:
    """Clean cells come before the adversarial-training cells that start from them."""
    return [Cell(cfg.name, s.id, s.dataset, protocol, seed, model, training)
            for s in cfg.settings for protocol in cfg.protocols for seed in cfg.seeds for model in s.models
            for training in sorted(s.trainings, key=lambda t: t != "clean")]


def attack_spec(cfg: Exp2Config, name: str) -> AttackSpec:
    """The study's attacks with the original's settings (eps 8/255, step 2/255, 10 steps, VMI N=5, beta=1.5)."""
    if name == "fgsm":
        return AttackSpec.fgsm(cfg.eps)
    if name == "pgd":
        return AttackSpec.pgd(cfg.eps, cfg.step, cfg.steps, random_start=True)
    if name == "fgsm_rs":  # Wong et al. 2020: step 1.25 eps from a uniform random start
        return AttackSpec("fgsm_rs", cfg.eps, step=min(1.0, 1.25 * cfg.eps), random_start=True)
    return AttackSpec(name, cfg.eps, step=cfg.step, steps=cfg.steps, decay=cfg.decay, n_samples=cfg.vmi_samples,
                      beta=cfg.vmi_beta)


def backends_for(cfg: Exp2Config, spec: AttackSpec) -> tuple[str, ...]:
    """The configured backends that implement ``spec`` (NIFGSM and VMIFGSM exist only in torchattacks)."""
    able = tuple(b for b in cfg.backends if spec.name in backend_module(b).SUPPORTED)
    return able or ("torchattacks",)


# ------------------------------------------------------------------------------------------------------ data ---


@dataclass
class Data:
    train: TensorImages
    test: TensorImages
    num_classes: int


def preflight(cfg: Exp2Config, data_root: Path) -> list[str]:
    missing = []
    datasets = sorted({s.dataset for s in cfg.settings})
    if cfg.data == "cifar":
        for name in datasets:
            try:
                cifar.check_cifar(name, data_root)
            except DataError as exc:
                missing.append(str(exc))
    elif cfg.data == "cifar10-jpg":
        root = Path(data_root) / "cifar10-jpg"
        if not (root / "train").is_dir() or not (root / "test").is_dir():
            missing.append(f"the CIFAR-10 JPEG folders {root}/train and {root}/test are missing: "
                           f"`advtransfer data fetch cifar10-jpg --data-root {data_root} --source "
                           "../shared/data/cifar10-jpg` unpacks and verifies them")
    if needs_imagenet_weights(cfg):
        try:
            weights.verify_cached("resnet18", cfg.resnet_pretrained.weights)
        except DataError as exc:
            missing.append(str(exc))
    return missing


def needs_imagenet_weights(cfg: Exp2Config) -> bool:
    return cfg.resnet_pretrained.source == "torchvision" and any("resnet18_transfer" in s.models
                                                                    for s in cfg.settings)


def load_data(cfg: Exp2Config, dataset: str, data_root: Path, setting: int) -> Data:
    if cfg.data == "tiny":
        # A stand-in for CIFAR: the tiny "photo" task with as many classes as the profile gives the dataset,
        # split 80/20 once with a fixed seed as CIFAR's official train/test split is fixed.
        n_classes = cfg.tiny_classes.get(dataset, 10)
        spec = tiny.TinySpec(n_source_classes=n_classes, n_target_classes=1, image_size=32,
                             source_per_class=cfg.tiny_per_class, seed=100 + setting)
        images, labels = tiny.make_source(spec)
        pool = TensorImages(images, labels)
        parts = stratified_split(labels.numpy(), test=0.2, val=0.0, seed=0)
        return Data(subset(pool, np.sort(np.concatenate([parts["train"], parts["val"]]))), subset(pool, parts["test"]),
                    n_classes)
    if cfg.data == "cifar10-jpg":
        root = Path(data_root) / "cifar10-jpg"
        cache = Path(data_root) / "cache"  # decoded once into the tensor cache, read from it afterwards
        train = cifar.load_image_folder_split(root / "train", limit_per_class=cfg.train_per_class, seed=0,
                                              cache_dir=cache)
        test = cifar.load_image_folder_split(root / "test", cache_dir=cache)
        return Data(train, test, len(train.classes))
    train, test = cifar.load_cifar(dataset, data_root, train=True), cifar.load_cifar(dataset, data_root, train=False)
    if cfg.train_per_class:
        idx = stratified_split(train.labels.numpy(), test=0.5, val=0.0, seed=0)["train"]
        train = subset(train, idx[: cfg.train_per_class * len(cifar.class_names(dataset))])
    return Data(train, test, len(cifar.class_names(dataset)))


# ---------------------------------------------------------------------------------------------------- models ---


def build_model(cfg: Exp2Config, cell: Cell, num_classes: int,
                backbone: Mapping[str, torch.Tensor] | None = None) -> ImageClassifier:
    """A fresh model for the cell (random init; the transfer ResNet gets ``backbone``, its pretrained weights)."""
    seed = derived_seed(cell.seed, f"e{cell.setting}/{cell.model}")
    if cell.model == "basenet":
        # BaseNet sees [0, 1] pixels (mean 0, std 1): the original fed it ToTensor() images, no normalisation.
        return ImageClassifier(basenet(num_classes, seed=seed, wide=cell.dataset == "cifar100"), (0.0, 0.0, 0.0),
                               (1.0, 1.0, 1.0))
    if cell.model == "resnet18_scratch":
        net = resnet18_scratch(num_classes, seed, input_size=cfg.resnet_input_size)
    else:
        if backbone is None:
            raise ValueError("resnet18_transfer needs its pretrained backbone's state_dict")
        net = resnet18_transfer(num_classes, backbone, seed=seed,
                                freeze_bn_stats=cell.protocol == "intended", input_size=cfg.resnet_input_size)
    return ImageClassifier(net, IMAGENET_MEAN, IMAGENET_STD)


def asrun_defective(cell: Cell) -> bool:
    """The original's clamping defect hit the ResNets, whose normalisation lived outside the model."""
    return cell.protocol == "as-run" and cell.model.startswith("resnet18")


def craft(model: ImageClassifier, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, backend: str,
          generator: torch.Generator, defective: bool) -> torch.Tensor:
    """Adversarial examples in pixel space. ``defective`` reproduces the original ResNet attack: normalise outside
    the model, attack the normalised tensor (eps in normalised units) and clamp it to [0, 1] as torchattacks does,
    which wipes every below-mean value; the result is mapped back so ``model`` sees exactly that tensor."""
    if not defective:
        return attack(model, x, y, spec, backend, generator=generator)
    z = (x - model.mean) / model.std
    adv_z = attack(model.net, z, y, spec, backend, generator=generator, check_against=z.clamp(0.0, 1.0))
    return adv_z * model.std + model.mean


# ---------------------------------------------------------------------------------------------------- a cell ---


@dataclass
class Context:
    cfg: Exp2Config
    out: Path
    data_root: Path
    device: torch.device
    log: Log = stderr_log
    _data: dict[tuple[int, str], Data] = field(default_factory=dict)
    _splits: dict[tuple[int, str, int], dict[str, TensorImages]] = field(default_factory=dict)
    _backbone: dict[str, torch.Tensor] | None = None

    def data(self, cell: Cell) -> dict[str, TensorImages]:
        """train / val / test for the cell's protocol: intended carves val from train; as-run validates on test."""
        if (cell.setting, cell.dataset) not in self._data:
            self._data[(cell.setting, cell.dataset)] = load_data(self.cfg, cell.dataset, self.data_root, cell.setting)
        d = self._data[(cell.setting, cell.dataset)]
        key = (cell.setting, cell.protocol, cell.seed)
        if key not in self._splits:
            if cell.protocol == "intended":
                parts = stratified_split(d.train.labels.numpy(), test=self.cfg.val, val=0.0, seed=cell.seed)
                self._splits[key] = {"train": subset(d.train, parts["train"]), "val": subset(d.train, parts["test"]),
                                     "test": d.test}
            else:
                self._splits[key] = {"train": d.train, "val": d.test, "test": d.test}
        return self._splits[key]

    def num_classes(self, cell: Cell) -> int:
        self.data(cell)
        return self._data[(cell.setting, cell.dataset)].num_classes

    def backbone(self) -> dict[str, torch.Tensor]:
        """The transfer ResNet's pretrained weights: torchvision's ImageNet ones, or (tiny data) a ResNet-18 the kit
        pretrains on a tiny source task of its own seed, standing in for ImageNet; checkpointed like any training."""
        if self._backbone is None:
            p = self.cfg.resnet_pretrained
            if p.source == "torchvision":
                self._backbone = weights.load_state_dict("resnet18", p.weights)
            else:
                spec = tiny.TinySpec(n_source_classes=p.classes, n_target_classes=1, image_size=32,
                                     source_per_class=p.per_class, seed=p.seed)
                source = TensorImages(*tiny.make_source(spec))
                key = f"{self.cfg.name}-resnet18-pretrain"
                net = resnet18_scratch(p.classes, derived_seed(p.seed, key), input_size=self.cfg.resnet_input_size)
                model = ImageClassifier(net, IMAGENET_MEAN, IMAGENET_STD).to(self.device)
                self.log(f"[{key}] pretraining the stand-in for ImageNet ResNet-18 on a tiny {p.classes}-class "
                         f"source task ({len(source)} images)")
                fit(model, p.schedule, source, None, seed=derived_seed(p.seed, key), batch_size=self.cfg.batch_size,
                    ckpt_dir=self.out / "checkpoints" / key, device=self.device, log=self.log,
                    fingerprint=fingerprint(key, p, self.cfg.resnet_input_size, self.cfg.batch_size),
                    precision=self.cfg.precision, compile_model=self.cfg.compile)
                self._backbone = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        return self._backbone

    def schedules(self, cell: Cell) -> tuple[tuple[Phase, ...], tuple[Phase, ...]]:
        """(clean, adversarial) training schedules: the model's own where the profile sets them, else the common."""
        own = self.cfg.model_schedules.get(cell.model, {})
        return own.get("clean", self.cfg.clean_schedule), own.get("adversarial", self.cfg.adv_schedule)

    def trained(self, cell: Cell) -> tuple[ImageClassifier, dict]:
        """The cell's model, trained (or resumed from its checkpoints); clean first for adversarial cells."""
        cfg, data = self.cfg, self.data(cell)
        backbone = self.backbone() if cell.model == "resnet18_transfer" else None
        model = build_model(cfg, cell, self.num_classes(cell), backbone).to(self.device)
        common = dict(batch_size=cfg.batch_size, device=self.device, log=self.log, eval_batch_size=cfg.eval_batch_size,
                      precision=cfg.precision, compile_model=cfg.compile)
        clean, (clean_schedule, adv_schedule) = cell.clean, self.schedules(cell)
        result = fit(model, clean_schedule, data["train"], data["val"], seed=derived_seed(cell.seed, clean.key),
                     ckpt_dir=self.out / "checkpoints" / clean.key,
                     fingerprint=fingerprint(clean.key, _train_cfg(cfg), clean_schedule), **common)
        info = {"clean": {"history": result.history, "resumed_from_epoch": result.resumed_from}}
        if cell.training != "clean":
            spec = attack_spec(cfg, cell.training)
            backend = backends_for(cfg, spec)[0]
            defective = asrun_defective(cell)

            def adversary(m, x, y, generator):
                return craft(m, x, y, spec, backend, generator, defective)

            self.log(f"[{cell.key}] adversarial training with {spec.key()} ({backend}) from the clean model")
            result = fit(model, adv_schedule, data["train"], data["val"], seed=derived_seed(cell.seed, cell.key),
                         ckpt_dir=self.out / "checkpoints" / cell.key,
                         fingerprint=fingerprint(cell.key, _train_cfg(cfg), clean_schedule, adv_schedule),
                         adversary=adversary, **common)
            info["adversarial"] = {"attack": spec.to_dict(), "backend": backend, "history": result.history,
                                   "resumed_from_epoch": result.resumed_from}
        return model.eval(), info


def _train_cfg(cfg: Exp2Config) -> dict:
    d = cfg.to_dict()
    for key in ("seeds", "protocols", "settings", "crosscheck_subset", "backends", "eval_batch_size", "source_file",
                "profile"):
        d.pop(key, None)
    return d


def run_cell(ctx: Context, cell: Cell) -> dict:
    cfg, t0 = ctx.cfg, time.perf_counter()
    data = ctx.data(cell)
    model, training = ctx.trained(cell)
    # intended: every model is attacked white-box; as-run: examples crafted on the clean model (transfer), as the
    # original reported its post-adversarial-training numbers.
    if cell.protocol == "as-run" and cell.training != "clean":
        source, source_key = ctx.trained(cell.clean)[0], cell.clean.key
    else:
        source, source_key = model, cell.key
    threat = "whitebox" if source is model else "transfer"
    defective = asrun_defective(cell)
    generator = torch.Generator().manual_seed(derived_seed(cell.seed, f"{cell.key}/eval"))
    flags: dict[tuple[str, str], list[np.ndarray]] = {}
    from .data.images import batches

    for x, y in batches(data["test"], cfg.eval_batch_size):
        x, y = x.to(ctx.device), y.to(ctx.device)
        with torch.no_grad():
            flags.setdefault(("none", ""), []).append((model(x).argmax(1) == y).cpu().numpy())
        for name in EVAL_ATTACKS:
            spec = attack_spec(cfg, name)
            for backend in backends_for(cfg, spec):
                adv = craft(source, x, y, spec, backend, generator, defective)
                with torch.no_grad():
                    flags.setdefault((name, backend), []).append((model(adv).argmax(1) == y).cpu().numpy())
    records = []
    for (name, backend), parts in flags.items():
        ok = np.concatenate(parts).astype(bool)
        records.append({"attack": name, "threat": "natural" if name == "none" else threat,
                        "source_model": "" if name == "none" else source_key, "eps": 0.0 if name == "none" else cfg.eps,
                        "backend": backend, "accuracy": float(ok.mean()), "correct": int(ok.sum()), "n": len(ok),
                        "primary": True, "flags": flags_to_str(ok)})
    checks = [f.to_dict() for f in check_evaluations(cell.key, records)]
    cross = []
    if cfg.crosscheck_subset > 0:
        n = min(cfg.crosscheck_subset, len(data["test"]))
        x, y = data["test"].images[:n].to(ctx.device), data["test"].labels[:n].to(ctx.device)
        cross = [{"model": f"e{cell.setting}/{cell.model}/{cell.training}", "cell": cell.key, **row}
                 for row in crosscheck(model, x, y, default_specs(cfg.eps, cfg.steps),
                                       seed=derived_seed(cell.seed, f"{cell.key}/crosscheck"))]
    summary = ", ".join(f"{r['attack']} {r['accuracy']:.3f}" for r in records if r["backend"] in ("", "native",
                                                                                                   "torchattacks"))
    ctx.log(f"[{cell.key}] {threat}: {summary}")
    return {
        "experiment": cfg.name, "profile": cfg.profile, "protocol": cell.protocol, "seed": cell.seed,
        "setting": cell.setting, "dataset": cell.dataset, "model": cell.model, "family": cell.model,
        "training": cell.training, "n_blocks": None, "backends": list(cfg.backends), "evaluations": records,
        "checks": checks, "crosscheck": cross, "training_log": training,
        "data": {"data": cfg.data, "n_train": len(data["train"]), "n_val": len(data["val"]),
                 "n_test": len(data["test"])},
        "asrun_clamp_defect": defective, "config": cfg.to_dict(),
        "provenance": provenance.collect(ctx.device, resolve_precision(cfg.precision, ctx.device)),
        "wall_seconds": round(time.perf_counter() - t0, 3),
    }


def run(cfg: Exp2Config, out: Path, data_root: Path, device: torch.device, *, download: bool = False,
        log: Log = stderr_log, cells: list[Cell] | None = None) -> None:
    """Run every unfinished cell of the grid (or of ``cells``, a selection of it in plan order), then rebuild
    ``results.csv`` (figures and report: the caller)."""
    missing, failures = preflight(cfg, data_root), []
    if missing and download:
        for name in sorted({s.dataset for s in cfg.settings}) if cfg.data == "cifar" else []:
            try:
                cifar.fetch_cifar(name, data_root)
            except DataError as exc:
                failures.append(f"{name}: {str(exc).split('. ')[0]}")
        if needs_imagenet_weights(cfg):
            try:
                weights.fetch("resnet18", cfg.resnet_pretrained.weights)
            except DataError as exc:
                failures.append(f"ResNet-18 IMAGENET1K_V1: {str(exc).split('. ')[0]}")
        missing = preflight(cfg, data_root)
    if missing:
        raise missing_error(cfg.name, cfg.profile, missing, failures)
    out = Path(out)
    atomic_write_json(out / f"config-{cfg.name}.json", cfg.to_dict())
    ctx = Context(cfg, out, Path(data_root), device, log)
    run_grid(out, plan(cfg) if cells is None else cells, cfg.backends, lambda cell: run_cell(ctx, cell), log)
