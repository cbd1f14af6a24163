"""One study-2 cell: build the model, train it (clean, then adversarially for adversarial-training cells) with
resumable checkpoints, evaluate it on clean test images and under FGSM, PGD, NIFGSM, VMIFGSM and AutoAttack.

White-box in ``intended``; in ``as-run`` crafted on the clean model (the original's transfer evaluation), with the
original's clamping of ImageNet-normalised tensors for ResNet (and every other ImageNet-normalised architecture).
AutoAttack follows each protocol's evaluation exactly as PGD does, so the two compare like for like; in as-run's
defective path it starts from the clamped normalised tensor (every torchattacks attack clamps its output to [0, 1],
and AutoAttack returns the examples it cannot fool unchanged).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ... import provenance
from ...attacks import AttackSpec, attack
from ...attacks import backends_for as able_backends
from ...attacks.crosscheck import crosscheck, default_specs
from ...config.common import Phase
from ...config.reader import to_plain
from ...data import tiny
from ...data.images import TensorImages, batches, subset
from ...data.splits import stratified_split
from ...engine.evaluate import attack_generator
from ...engine.sanity import check_evaluations
from ...engine.seeds import derived_seed, training_fingerprint
from ...engine.train import fit, resolve_precision
from ...errors import DataError
from ...models import weights, zoo
from ...models.basenet import basenet
from ...models.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from ...models.resnet import asrun_attack_input, clamp_defect, fraction_destroyed, resnet18_scratch, resnet18_transfer
from ...results.schema import flags_to_str
from ..base import Experiment, RunContext
from .config import ModelSchedule
from .data import Data, load_data
from .grid import Cell

EVAL_ATTACKS = ("fgsm", "pgd", "nifgsm", "vmifgsm")  # the write-up's; AutoAttack is added where it applies
CIFAR_CLASSES = {"cifar10": 10, "cifar100": 100}


def attack_spec(exp: Experiment, name: str, n_classes: int | None = None) -> AttackSpec:
    """The study's attacks with the original's settings (eps 8/255, step 2/255, 10 steps, VMI N=5, beta=1.5), and
    AutoAttack at eps with the profile's ``robust_eval`` setting (``n_classes``: the model's classes)."""
    cfg = exp.cfg
    if name == "autoattack":
        if n_classes is None:
            raise ValueError("autoattack needs the model's number of classes")
        return cfg.robust_eval.spec(cfg.eps, n_classes)
    if name == "fgsm":
        return AttackSpec.fgsm(cfg.eps)
    if name == "pgd":
        return AttackSpec.pgd(cfg.eps, cfg.step, cfg.steps, random_start=True)
    if name == "fgsm_rs":  # Wong et al. 2020: step 1.25 eps from a uniform random start
        return AttackSpec("fgsm_rs", cfg.eps, step=min(1.0, 1.25 * cfg.eps), random_start=True)
    if name == "nifgsm":
        return AttackSpec(name, cfg.eps, step=cfg.step, steps=cfg.steps, decay=cfg.decay)
    return AttackSpec(name, cfg.eps, step=cfg.step, steps=cfg.steps, decay=cfg.decay, n_samples=cfg.vmi_samples,
                      beta=cfg.vmi_beta)


def backends_for(backends: tuple[str, ...], spec: AttackSpec) -> tuple[str, ...]:
    """The given backends that implement ``spec`` (NIFGSM, VMIFGSM and AutoAttack exist only in torchattacks)."""
    return able_backends(backends, spec)


def num_classes(exp: Experiment, dataset: str) -> int:
    """The number of classes of a setting's dataset (tiny data: the profile's stand-in class count)."""
    return getattr(exp.cfg.tiny_classes, dataset) if exp.cfg.data == "tiny" else CIFAR_CLASSES[dataset]


def eval_attacks(exp: Experiment, dataset: str) -> tuple[str, ...]:
    """The attacks every model of a setting on ``dataset`` is evaluated under: the write-up's, and AutoAttack
    where ``robust_eval`` enables it and the task has at least 4 classes."""
    return EVAL_ATTACKS + (("autoattack",) if exp.cfg.robust_eval.applies(num_classes(exp, dataset)) else ())


def wanted_evaluations(exp: Experiment, dataset: str) -> set[tuple[str, str]]:
    """(attack, backend) of every evaluation the config asks of a model on ``dataset`` (natural accuracy aside)."""
    n = num_classes(exp, dataset)
    return {(name, b) for name in eval_attacks(exp, dataset)
            for b in backends_for(exp.cfg.backends, attack_spec(exp, name, n))}


def is_complete(exp: Experiment, doc: dict[str, Any]) -> bool:
    """Whether a finished cell has every evaluation ``exp`` asks for: every backend, and every attack (a run
    finished before AutoAttack was added, or with ``robust_eval.autoattack = false``, is extended, not skipped)."""
    have = {(r["attack"], r["backend"]) for r in doc.get("evaluations", [])}
    return set(exp.backends) <= set(doc.get("backends", exp.backends)) and \
        wanted_evaluations(exp, str(doc.get("dataset", "cifar10"))) <= have


def training_backend(spec: AttackSpec) -> str:
    """The backend adversarial training crafts its batches with: native where it has the attack, else
    torchattacks; fixed, so choosing evaluation backends (``--backends``) never changes (or retrains) a model."""
    return backends_for(("native",), spec)[0]


# ---------------------------------------------------------------------------------------------- fingerprints ---


def data_inputs(exp: Experiment, cell: Cell) -> dict[str, Any]:
    """The settings that define the images a training sees (and, intended, its validation split)."""
    cfg = exp.cfg
    return {"data": cfg.data, "dataset": cell.dataset,
            "tiny": (cfg.tiny_per_class, getattr(cfg.tiny_classes, cell.dataset)) if cfg.data == "tiny" else None,
            "train_per_class": cfg.train_per_class, "val": cfg.val if cell.protocol == "intended" else None}


def model_inputs(exp: Experiment, cell: Cell) -> dict[str, Any]:
    cfg = exp.cfg
    arch = zoo.parse(cell.model)
    if arch is not None:  # torchvision / timm: resized inside as ResNet-18; the key names the pretrained weights
        return {"model": cell.model, "backbone": arch.weights, "resnet_input_size": cfg.resnet_input_size}
    backbone = cfg.resnet_pretrained if cell.model == "resnet18_transfer" else None
    resize = cfg.resnet_input_size if cell.model.startswith("resnet18") else None
    return {"model": cell.model, "backbone": backbone, "resnet_input_size": resize}


def clean_training_inputs(exp: Experiment, cell: Cell, schedule: tuple[Phase, ...]) -> dict[str, Any]:
    """The allow-list of what a clean training reads (its checkpoint fingerprint)."""
    return {**data_inputs(exp, cell), **model_inputs(exp, cell), "batch_size": exp.cfg.batch_size,
            "schedule": schedule, "compile": exp.cfg.compile}


def adversarial_training_inputs(exp: Experiment, cell: Cell, clean_schedule: tuple[Phase, ...],
                                schedule: tuple[Phase, ...], spec: AttackSpec) -> dict[str, Any]:
    """What an adversarial training reads: its clean model's inputs, its schedule and its attack."""
    # spec.identity(): the attack's own fields only, so the fields APGD and AutoAttack added to AttackSpec leave
    # every existing adversarial-training fingerprint as it was (tests/test_fingerprints.py pins them).
    return {**clean_training_inputs(exp, cell.clean, clean_schedule), "adversarial_schedule": schedule,
            "attack": spec.identity(), "backend": training_backend(spec)}


def pretrain_inputs(exp: Experiment) -> dict[str, Any]:
    """What the tiny-data stand-in for ImageNet ResNet-18 (the transfer model's backbone) reads."""
    cfg = exp.cfg
    return {"pretrained": cfg.resnet_pretrained, "resnet_input_size": cfg.resnet_input_size,
            "batch_size": cfg.batch_size, "compile": cfg.compile}


def schedules_of(exp: Experiment, cell: Cell) -> tuple[tuple[Phase, ...], tuple[Phase, ...]]:
    """(clean, adversarial) training schedules: the model's own where the profile sets them (the write-up's three
    models), else the common ones (torchvision / timm models)."""
    own = getattr(exp.cfg.model_schedules, cell.model, None) or ModelSchedule()
    return own.clean or exp.cfg.clean_schedule, own.adversarial or exp.cfg.adv_schedule


def training_fingerprints(exp: Experiment, cell: Cell) -> dict[str, str]:
    """The checkpoint fingerprint of every training the cell's model goes through, by checkpoint folder."""
    clean_schedule, adv_schedule = schedules_of(exp, cell)
    out = {}
    if cell.model == "resnet18_transfer" and exp.cfg.resnet_pretrained.source == "pretrain":
        key = pretrain_key(exp)
        out[key] = training_fingerprint(key, **pretrain_inputs(exp))
    out[cell.clean.key] = training_fingerprint(cell.clean.key, **clean_training_inputs(exp, cell.clean,
                                                                                      clean_schedule))
    if cell.training != "clean":
        inputs = adversarial_training_inputs(exp, cell, clean_schedule, adv_schedule, attack_spec(exp, cell.training))
        out[cell.key] = training_fingerprint(cell.key, **inputs)
    return out


def dependencies(exp: Experiment, cell: Cell) -> list[str]:
    """The trainings the cell waits for besides its own (the grid walk defers a cell whose dependency another
    process is training): every checkpoint folder of :func:`training_fingerprints` but the cell's."""
    return [key for key in training_fingerprints(exp, cell) if key != cell.key]


def pretrain_key(exp: Experiment) -> str:
    return f"{exp.name}-resnet18-pretrain"


# ---------------------------------------------------------------------------------------------------- models ---


def build_model(exp: Experiment, cell: Cell, num_classes: int,
                backbone: Mapping[str, torch.Tensor] | None = None) -> ImageClassifier:
    """A fresh model for the cell (random init; the transfer ResNet gets ``backbone``, its pretrained weights)."""
    cfg = exp.cfg
    seed = derived_seed(cell.seed, f"e{cell.setting}/{cell.model}")
    arch = zoo.parse(cell.model)
    if arch is not None:
        net = zoo.build(arch, num_classes, seed, input_size=cfg.resize, freeze_bn_stats=cell.protocol == "intended")
        mean, std = zoo.normalization(arch)
        return ImageClassifier(net, mean, std)
    if cell.model == "basenet":
        # BaseNet sees [0, 1] pixels (mean 0, std 1): the original fed it ToTensor() images, no normalisation.
        return ImageClassifier(basenet(num_classes, seed=seed, wide=cell.dataset == "cifar100"), (0.0, 0.0, 0.0),
                               (1.0, 1.0, 1.0))
    if cell.model == "resnet18_scratch":
        net = resnet18_scratch(num_classes, seed, input_size=cfg.resize)
    else:
        if backbone is None:
            raise ValueError("resnet18_transfer needs its pretrained backbone's state_dict")
        net = resnet18_transfer(num_classes, backbone, seed=seed,
                                freeze_bn_stats=cell.protocol == "intended", input_size=cfg.resize)
    return ImageClassifier(net, IMAGENET_MEAN, IMAGENET_STD)


def asrun_defective(cell: Cell) -> bool:
    """The original's clamping defect hit the ResNets, whose normalisation lived outside the model (and so, in
    the original's pipeline, would every other ImageNet-normalised architecture: torchvision and timm models)."""
    return cell.protocol == "as-run" and (cell.model.startswith("resnet18") or zoo.parse(cell.model) is not None)


def craft(model: ImageClassifier, x: torch.Tensor, y: torch.Tensor, spec: AttackSpec, backend: str,
          generator: torch.Generator, defective: bool) -> torch.Tensor:
    """Adversarial examples in pixel space. ``defective`` reproduces the original ResNet attack: normalise outside
    the model (:func:`~advtransfer.models.resnet.asrun_attack_input`), attack the normalised tensor (eps in
    normalised units) and clamp it to [0, 1] as torchattacks does (:func:`~advtransfer.models.resnet.clamp_defect`,
    which wipes every below-mean value); the result is mapped back so ``model`` sees exactly that tensor."""
    if not defective:
        return attack(model, x, y, spec, backend, generator=generator)
    mean, std = model.mean.flatten(), model.std.flatten()
    z = asrun_attack_input(x, mean, std)
    if spec.name in ("apgd_ce", "autoattack"):  # they return what they cannot fool unchanged: start it clamped
        z = clamp_defect(z)
    adv_z = attack(model.net, z, y, spec, backend, generator=generator, check_against=clamp_defect(z))
    return adv_z * model.std + model.mean


# ---------------------------------------------------------------------------------------------------- a cell ---


@dataclass
class Context:
    exp: Experiment
    run: RunContext
    _data: dict[tuple[int, str], Data] = field(default_factory=dict)
    _splits: dict[tuple[int, str, int], dict[str, TensorImages]] = field(default_factory=dict)
    _backbone: dict[str, torch.Tensor] | None = None

    @property
    def cfg(self):
        return self.exp.cfg

    def dataset(self, cell: Cell) -> Data:
        if (cell.setting, cell.dataset) not in self._data:
            self._data[(cell.setting, cell.dataset)] = load_data(self.exp, cell.dataset, self.run.data_root,
                                                                 cell.setting)
        return self._data[(cell.setting, cell.dataset)]

    def data(self, cell: Cell) -> dict[str, TensorImages]:
        """train / val / test for the cell's protocol: intended carves val from train; as-run validates on test."""
        d = self.dataset(cell)
        key = (cell.setting, cell.protocol, cell.seed)
        if key not in self._splits:
            if cell.protocol == "intended":
                parts = stratified_split(d.train.labels.numpy(), test=self.cfg.val, val=0.0, seed=cell.seed)
                self._splits[key] = {"train": subset(d.train, parts["train"]), "val": subset(d.train, parts["test"]),
                                     "test": d.test}
            else:
                self._splits[key] = {"train": d.train, "val": d.test, "test": d.test}
            empty = [k for k in ("train", "test") if len(self._splits[key][k]) == 0]
            if empty:
                raise DataError(f"{self.exp.source.name}[{self.exp.profile}]: experiment {cell.setting} "
                                f"({cell.protocol}, seed {cell.seed}) has no {' and no '.join(empty)} images; use "
                                "more images per class or a smaller val fraction")
        return self._splits[key]

    def backbone(self) -> dict[str, torch.Tensor]:
        """The transfer ResNet's pretrained weights: torchvision's ImageNet ones, or (tiny data) a ResNet-18 the kit
        pretrains on a tiny source task of its own seed, standing in for ImageNet; checkpointed like any training."""
        if self._backbone is None:
            p, run = self.cfg.resnet_pretrained, self.run
            if p.source == "torchvision":
                self._backbone = weights.load_state_dict("resnet18", p.weights)
            else:
                spec = tiny.TinySpec(n_source_classes=p.classes, n_target_classes=1, image_size=32,
                                     source_per_class=p.per_class, seed=p.seed)
                source = TensorImages(*tiny.make_source(spec))
                key = pretrain_key(self.exp)
                net = resnet18_scratch(p.classes, derived_seed(p.seed, key), input_size=self.cfg.resize)
                model = ImageClassifier(net, IMAGENET_MEAN, IMAGENET_STD).to(run.device)
                run.log(f"[{key}] pretraining the stand-in for ImageNet ResNet-18 on a tiny {p.classes}-class "
                        f"source task ({len(source)} images)")
                fit(model, p.schedule, source, None, seed=derived_seed(p.seed, key), batch_size=self.cfg.batch_size,
                    ckpt_dir=run.out / "checkpoints" / key, device=run.device, log=run.log,
                    fingerprint=training_fingerprint(key, **pretrain_inputs(self.exp)),
                    precision=self.cfg.precision, compile_model=self.cfg.compile)
                self._backbone = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        return self._backbone

    def trained(self, cell: Cell) -> tuple[ImageClassifier, dict]:
        """The cell's model, trained (or resumed from its checkpoints); clean first for adversarial cells."""
        exp, cfg, run, data = self.exp, self.cfg, self.run, self.data(cell)
        backbone = self.backbone() if cell.model == "resnet18_transfer" else None
        model = build_model(exp, cell, self.dataset(cell).num_classes, backbone).to(run.device)
        common = dict(batch_size=cfg.batch_size, device=run.device, log=run.log, eval_batch_size=cfg.eval_batch_size,
                      precision=cfg.precision, compile_model=cfg.compile)
        clean, (clean_schedule, adv_schedule) = cell.clean, schedules_of(exp, cell)
        fingerprints = training_fingerprints(exp, cell)
        result = fit(model, clean_schedule, data["train"], data["val"], seed=derived_seed(cell.seed, clean.key),
                     ckpt_dir=run.out / "checkpoints" / clean.key, fingerprint=fingerprints[clean.key], **common)
        info = {"clean": {"history": result.history, "resumed_from_epoch": result.resumed_from}}
        if cell.training != "clean":
            spec = attack_spec(exp, cell.training)
            backend = training_backend(spec)
            defective = asrun_defective(cell)

            def adversary(m, x, y, generator):
                return craft(m, x, y, spec, backend, generator, defective)

            run.log(f"[{cell.key}] adversarial training with {spec.key()} ({backend}) from the clean model")
            result = fit(model, adv_schedule, data["train"], data["val"], seed=derived_seed(cell.seed, cell.key),
                         ckpt_dir=run.out / "checkpoints" / cell.key, fingerprint=fingerprints[cell.key],
                         adversary=adversary, **common)
            info["adversarial"] = {"attack": spec.to_dict(), "backend": backend, "history": result.history,
                                   "resumed_from_epoch": result.resumed_from}
        return model.eval(), info


def missing_weights(exp: Experiment) -> list[str]:
    """Pretrained torchvision / timm weights the settings need that are not in the cache (one message each)."""
    archs = {zoo.parse(m) for s in exp.cfg.settings for m in s.models} - {None}
    return [msg for arch in sorted(archs, key=lambda a: a.key) if (msg := zoo.missing_weights(arch))]


def make_runner(exp: Experiment, run: RunContext):
    missing = missing_weights(exp)
    if missing:  # before any cell runs: one message naming each missing file and how to fetch it
        raise DataError(f"cannot run {exp.name} --profile {exp.profile}: "
                        f"{'one thing is' if len(missing) == 1 else f'{len(missing)} things are'} missing.\n- "
                        + "\n- ".join(missing))
    ctx = Context(exp, run)
    return lambda cell, existing: run_cell(ctx, cell, existing)


def _evaluations(ctx: Context, cell: Cell, done: set[tuple[str, str]]) -> list[tuple[str, AttackSpec, str]]:
    """(attack, spec, backend) of every evaluation the config asks for that is not in ``done``."""
    out, n = [], ctx.dataset(cell).num_classes
    for name in eval_attacks(ctx.exp, cell.dataset):
        spec = attack_spec(ctx.exp, name, n)
        out += [(name, spec, b) for b in backends_for(ctx.cfg.backends, spec) if (name, b) not in done]
    return out


def run_cell(ctx: Context, cell: Cell, existing: dict | None = None) -> dict:
    """The cell's result document. With ``existing`` (the cell's earlier document, lacking some backends), the
    model is resumed from its final checkpoints (nothing is trained) and only the missing evaluations are run."""
    cfg, run, t0 = ctx.cfg, ctx.run, time.perf_counter()
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
    seed = derived_seed(cell.seed, f"{cell.key}/eval")
    done = {(r["attack"], r["backend"]) for r in existing["evaluations"]} if existing else set()
    todo = _evaluations(ctx, cell, done)
    skipped = ctx.cfg.robust_eval.skip_reason(ctx.dataset(cell).num_classes)
    if skipped and ctx.cfg.robust_eval.autoattack:
        run.log(f"[{cell.key}] no AutoAttack: {skipped}")
    generators = {(name, b): attack_generator(seed, threat, b, spec) for name, spec, b in todo}
    flags: dict[tuple[str, str], list[np.ndarray]] = {}
    for x, y in batches(data["test"], cfg.eval_batch_size):
        x, y = x.to(run.device), y.to(run.device)
        if existing is None:
            with torch.no_grad():
                flags.setdefault(("none", ""), []).append((model(x).argmax(1) == y).cpu().numpy())
        for name, spec, backend in todo:
            adv = craft(source, x, y, spec, backend, generators[(name, backend)], defective)
            with torch.no_grad():
                flags.setdefault((name, backend), []).append((model(adv).argmax(1) == y).cpu().numpy())
    records = list(existing["evaluations"]) if existing else []
    for (name, backend), parts in flags.items():
        ok = np.concatenate(parts).astype(bool)
        records.append({"attack": name, "threat": "natural" if name == "none" else threat,
                        "source_model": "" if name == "none" else source_key, "eps": 0.0 if name == "none" else cfg.eps,
                        "backend": backend, "accuracy": float(ok.mean()), "correct": int(ok.sum()), "n": len(ok),
                        "primary": True, "flags": flags_to_str(ok)})
    checks = [f.to_dict() for f in check_evaluations(cell.key, records)]
    summary = ", ".join(f"{r['attack']} {r['accuracy']:.3f}" for r in records
                        if r["backend"] in ("", "native", "torchattacks"))
    run.log(f"[{cell.key}] {threat}: {summary}")
    backends = list(dict.fromkeys([*(existing or {}).get("backends", []), *cfg.backends]))
    device_info = provenance.collect(run.device, resolve_precision(cfg.precision, run.device))
    if existing is not None:  # training and cross-check are the finished cell's; only rows were added
        extension = {"evaluations": [f"{name}/{b}" for name, _, b in todo], "provenance": device_info,
                     "wall_seconds": round(time.perf_counter() - t0, 3)}
        return {**existing, "backends": backends, "evaluations": records, "checks": checks,
                "extensions": [*existing.get("extensions", []), extension]}
    cross = []
    if cfg.crosscheck_subset > 0 and cell.seed == cfg.seeds[0]:  # the first seed's models: as study 1's cells
        n = min(cfg.crosscheck_subset, len(data["test"]))
        x, y = data["test"].images[:n].to(run.device), data["test"].labels[:n].to(run.device)
        specs = default_specs(cfg.eps, cfg.steps, cfg.robust_eval.crosscheck_steps(cfg.steps))
        cross = [{"model": f"e{cell.setting}/{cell.model}/{cell.training}", "cell": cell.key, **row}
                 for row in crosscheck(model, x, y, specs, seed=derived_seed(cell.seed, f"{cell.key}/crosscheck"))]
        for row in cross:
            if not row["agree"]:
                run.log(f"[{cell.key}] CROSSCHECK DISAGREES: {row['attack']} {row['backends']}: {row['criterion']} "
                        f"fails (accuracy {row['accuracy']})")
    doc = {
        "protocol": cell.protocol, "seed": cell.seed, "setting": cell.setting, "dataset": cell.dataset,
        "model": cell.model, "family": cell.model, "training": cell.training, "n_blocks": None,
        "num_classes": ctx.dataset(cell).num_classes,
        "backends": backends, "evaluations": records, "checks": checks, "crosscheck": cross,
        "training_log": training,
        "data": {"data": cfg.data, "n_train": len(data["train"]), "n_val": len(data["val"]),
                 "n_test": len(data["test"]), "test_set": ctx.dataset(cell).test_set},
        "asrun_clamp_defect": defective, "config": to_plain(cfg), "provenance": device_info,
        "wall_seconds": round(time.perf_counter() - t0, 3),
    }
    if defective:  # how much of the test images the original's clamp of normalised tensors destroyed
        doc["asrun_clamp_fraction"] = round(fraction_destroyed(data["test"].images), 6)
    return doc
