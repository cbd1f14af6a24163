"""One study-1 cell: build (or load) the model, train it with resumable checkpoints, evaluate it.

Every model is evaluated on the natural test set, on FGSM examples crafted on Base A (the original's transfer
attack), on white-box FGSM at every eps of the profile, on white-box PGD at the main eps, through each of the
configured attack backends, and on white-box AutoAttack at the main eps (torchattacks, the only backend with it;
``robust_eval``); its first test images are cross-checked through all three backends (APGD-CE: torchattacks vs ART).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from ... import provenance
from ...attacks import AttackSpec, attack, backends_for
from ...attacks.crosscheck import crosscheck as crosscheck_backends
from ...attacks.crosscheck import default_specs
from ...config.reader import to_plain
from ...data.splits import load_or_make_manifest
from ...data.tensor_cache import subset
from ...engine.evaluate import evaluate_model
from ...engine.sanity import check_evaluations
from ...engine.seeds import derived_seed, training_fingerprint
from ...engine.train import fit, resolve_precision
from ...errors import DataError
from ...io import atomic_write_bytes
from ...models import weights
from ...models.classifier import ImageClassifier
from ...models.mobilenet import DEFAULT_ARCH, build_base, transfer_model, wrap
from ...results.schema import flags_to_str
from ..base import Experiment, RunContext
from .data import Task, figure_label, load_task, user_path
from .grid import Cell


def data_inputs(exp: Experiment) -> dict[str, Any]:
    """The settings that define the images a training sees."""
    cfg = exp.cfg
    return {"dataset": cfg.dataset, "dataset_path": cfg.dataset_path, "image_size": cfg.image_size,
            "split": cfg.split, "tiny": cfg.tiny if cfg.dataset == "tiny" else None}


def training_inputs(exp: Experiment, cell: Cell) -> dict[str, Any]:
    """The allow-list of what the cell's training reads (its checkpoint fingerprint): data, Base A (the copied
    blocks), batch size, the family's schedule, compile. Everything else in the config is evaluation."""
    cfg = exp.cfg
    return {**data_inputs(exp), "base_a": cfg.base_a, "batch_size": cfg.batch_size,
            "schedule": getattr(cfg.schedules, cell.family), "compile": cfg.compile, **_arch(exp)}


def _arch(exp: Experiment) -> dict[str, Any]:
    """Base A's architecture, for fingerprints: absent for MobileNetV2, so existing checkpoints keep theirs."""
    return {} if exp.cfg.base_arch == DEFAULT_ARCH else {"base_arch": exp.cfg.base_arch}


def base_a_inputs(exp: Experiment) -> dict[str, Any]:
    """What Base A's pretraining on the tiny source task reads."""
    cfg = exp.cfg
    return {"tiny": cfg.tiny, "image_size": cfg.image_size, "base_a": cfg.base_a, "batch_size": cfg.batch_size,
            "compile": cfg.compile, **_arch(exp)}


def base_a_key(exp: Experiment, seed: int) -> str:
    return f"{exp.name}-base_a-pretrain-s{seed}"


def training_fingerprints(exp: Experiment, cell: Cell) -> dict[str, str]:
    """The checkpoint fingerprint of every training the cell's model goes through, by checkpoint folder."""
    out = {}
    if exp.cfg.base_a.source == "pretrain":
        key = base_a_key(exp, cell.seed)
        out[key] = training_fingerprint(key, **base_a_inputs(exp))
    if cell.family != "base_a":
        out[cell.key] = training_fingerprint(cell.key, **training_inputs(exp, cell))
    return out


def dependencies(exp: Experiment, cell: Cell) -> list[str]:
    """The trainings the cell waits for besides its own (the grid walk defers a cell whose dependency another
    process is training): every checkpoint folder of :func:`training_fingerprints` but the cell's."""
    return [key for key in training_fingerprints(exp, cell) if key != cell.key]


@dataclass
class Context:
    exp: Experiment
    run: RunContext
    workers: int = 0
    _task: Task | None = None
    _base: dict[int, ImageClassifier] = field(default_factory=dict)
    _splits: dict[tuple[str, int], tuple[dict[str, Dataset], str]] = field(default_factory=dict)
    _transfer: dict[tuple[str, int], dict] = field(default_factory=dict)

    @property
    def cfg(self):
        return self.exp.cfg

    @property
    def task(self) -> Task:
        if self._task is None:
            self._task = load_task(self.exp, self.run.data_root)
        return self._task

    def split(self, protocol: str, seed: int) -> tuple[dict[str, Dataset], str]:
        """train / val / test of one protocol and seed, and the name of its test set (a hash of its images)."""
        if (protocol, seed) not in self._splits:
            t, cfg = self.task, self.cfg
            idx = load_or_make_manifest(self.run.out / "manifests" / f"{self.exp.name}-{protocol}-s{seed}.json",
                                        t.items, t.labels, protocol, cfg.split.test, cfg.split.val, seed)
            empty = [k for k in ("train", "test") if len(idx[k]) == 0]
            if empty:
                raise DataError(f"{self.exp.source.name}[{self.exp.profile}]: the {protocol} split of seed {seed} "
                                f"leaves no {' and no '.join(empty)} images ({len(t.items)} images in "
                                f"{t.num_classes} classes, test = {cfg.split.test}, val = {cfg.split.val}); use "
                                "more images per class or other split fractions")
            test_set = hashlib.sha256("\n".join(t.items[i] for i in idx["test"]).encode()).hexdigest()[:16]
            self._splits[(protocol, seed)] = ({k: subset(t.pool, v) for k, v in idx.items()}, test_set)
        return self._splits[(protocol, seed)]

    def base_a(self, seed: int) -> ImageClassifier:
        """Base A with its full source-task head (1000-way for ImageNet), in eval mode."""
        if seed not in self._base:
            self._base[seed] = self._load_base_a(seed)
        return self._base[seed]

    def _load_base_a(self, seed: int) -> ImageClassifier:
        b, t, run, arch = self.cfg.base_a, self.task, self.run, self.cfg.base_arch
        if b.source == "pretrain":
            net = build_base(arch, t.source_num_classes, b.width_mult, b.stride8, seed=derived_seed(seed, "base_a"))
            model = wrap(net, b.normalization)
            key = base_a_key(self.exp, seed)
            run.log(f"[{key}] pretraining Base A on the tiny source task ({len(t.source_train)} images)")
            fit(model, b.schedule, t.source_train, None, seed=seed, batch_size=self.cfg.batch_size,
                ckpt_dir=run.out / "checkpoints" / key,
                fingerprint=training_fingerprint(key, **base_a_inputs(self.exp)), device=run.device, log=run.log,
                precision=self.cfg.precision, compile_model=self.cfg.compile)
            return model.eval()
        state = (weights.load_state_dict(arch, b.weights) if b.source == "torchvision"
                 else weights.load_state_file(user_path(b.path, "base_a.path", self.exp)))
        net = build_base(arch, 1000, b.width_mult)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            what = f"MobileNetV2 (width {b.width_mult})" if arch == DEFAULT_ARCH else arch
            raise DataError(f"Base A weights do not fit torchvision's {what}: "
                            f"{str(exc).splitlines()[0]}") from None
        return wrap(net, b.normalization).to(run.device).eval()

    def transfer_cache(self, cell: Cell, test: Dataset) -> dict | None:
        """The FGSM examples crafted on Base A for one split's test images, shared by every model of the split:
        deterministic, so crafting them once per process changes no number. None (no caching) where they would
        take more than TRANSFER_CACHE_BYTES (ImageNet-R at 224 px: gigabytes)."""
        per_example = test[0][0].numel() * 4 * len(self.cfg.all_eps) * len(self.cfg.backends)
        if len(test) * per_example > TRANSFER_CACHE_BYTES:
            return None
        return self._transfer.setdefault((cell.protocol, cell.seed), {})

    def masked(self, base: ImageClassifier) -> ImageClassifier:
        """Base A scored on the target task through the class mask (shares Base A's weights)."""
        return ImageClassifier(base.net, tuple(base.mean.flatten().tolist()), tuple(base.std.flatten().tolist()),
                               output_indices=torch.as_tensor(self.task.source_indices)).to(self.run.device).eval()


IMAGENET_R_CLASSES = 200
TRANSFER_CACHE_BYTES = 256 * 2**20


def num_classes(exp: Experiment, doc: dict[str, Any] | None = None) -> int | None:
    """The model's number of outputs: recorded in the cell document, else the task's classes from the config (None
    for an image folder, whose class count only its files know)."""
    if doc and isinstance(doc.get("num_classes"), int):
        return doc["num_classes"]
    cfg = exp.cfg
    return cfg.tiny.n_target_classes if cfg.dataset == "tiny" else IMAGENET_R_CLASSES if \
        cfg.dataset == "imagenet-r" else None


def eval_specs(exp: Experiment, n_classes: int | None) -> tuple[list[AttackSpec], AttackSpec, AttackSpec | None]:
    """FGSM at every eps, white-box PGD at the main eps (eps/4 steps, random start), and white-box AutoAttack at
    the main eps where ``robust_eval`` applies to a model of ``n_classes`` (None: unknown, taken to apply)."""
    cfg = exp.cfg
    fgsm = [AttackSpec.fgsm(eps) for eps in cfg.all_eps]
    pgd = AttackSpec.pgd(cfg.eps, cfg.eps / 4, cfg.pgd_steps, random_start=True)
    n = 1000 if n_classes is None else n_classes
    aa = cfg.robust_eval.spec(cfg.eps, n) if cfg.robust_eval.applies(n) else None
    return fgsm, pgd, aa


def is_complete(exp: Experiment, doc: dict[str, Any]) -> bool:
    """Whether a finished cell has every evaluation ``exp`` asks for: every backend of FGSM and PGD, and
    AutoAttack (a cell finished before AutoAttack was added is extended, not skipped)."""
    fgsm, pgd, aa = eval_specs(exp, num_classes(exp, doc))
    wanted = {(s.name, b) for s in [*fgsm[:1], pgd, *([aa] if aa else [])] for b in backends_for(exp.cfg.backends, s)}
    have = {(r["attack"], r["backend"]) for r in doc.get("evaluations", [])}
    return set(exp.backends) <= set(doc.get("backends", exp.backends)) and wanted <= have


def make_runner(exp: Experiment, run: RunContext):
    workers = 0 if exp.cfg.dataset == "tiny" else min(8, os.cpu_count() or 1)
    ctx = Context(exp, run, workers)
    return lambda cell, existing: run_cell(ctx, cell, existing)


def run_cell(ctx: Context, cell: Cell, existing: dict | None = None) -> dict:
    """The cell's result document. With ``existing`` (the cell's earlier document, lacking some backends), the
    model is resumed from its final checkpoint (nothing is trained) and only the missing backends are evaluated."""
    cfg, run, t0 = ctx.cfg, ctx.run, time.perf_counter()
    data, test_set = ctx.split(cell.protocol, cell.seed)
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
            seed=derived_seed(cell.seed, cell.model), arch=cfg.base_arch).to(run.device)
        # intended: validation carved from train; as-run: the test set doubles as validation (the original's defect;
        # no selection is made on it, the last epoch is kept, but the numbers it logged came from the test set).
        val = data["val"] if intended else data["test"]
        schedule = getattr(cfg.schedules, cell.family)
        run.log(f"[{cell.key}] training {cell.model} ({cell.protocol}): {len(data['train'])} train, "
                f"{len(val)} {'val' if intended else 'test-as-val'}, "
                f"{sum(p.numel() for p in model.trainable_parameters())} trainable parameters")
        result = fit(model, schedule, data["train"], val, seed=derived_seed(cell.seed, cell.model),
                     batch_size=cfg.batch_size, ckpt_dir=run.out / "checkpoints" / cell.key,
                     fingerprint=training_fingerprints(ctx.exp, cell)[cell.key], device=run.device,
                     log=run.log, eval_batch_size=cfg.eval_batch_size, workers=ctx.workers, precision=cfg.precision,
                     compile_model=cfg.compile)
        training = {"history": result.history, "resumed_from_epoch": result.resumed_from,
                    "seconds": round(result.seconds, 3),
                    "schedule": [p.__dict__ for p in schedule], "frozen_features": model.frozen_features}
    done = list(existing.get("backends", [])) if existing else []
    backends = [b for b in cfg.backends if b not in done]
    have = {(r["threat"], r["attack"], r["eps"], r["backend"]) for r in existing["evaluations"]} if existing else set()
    records = _evaluate(ctx, cell, model, base_masked, data["test"], have, natural=existing is None)
    added = [f"{r['threat']}/{r['attack']}/{r['eps']:g}/{r['backend']}" for r in records]
    if existing is not None:
        records = list(existing["evaluations"]) + records
    checks = [f.to_dict() for f in check_evaluations(cell.model, records)]
    for flag in checks:
        run.log(f"[{cell.key}] CHECK {flag['check']}: {flag['detail']}")
    natural = next(r["accuracy"] for r in records if r["threat"] == "natural")
    adv = next(r["accuracy"] for r in records if r["threat"] == "transfer" and r["primary"])
    run.log(f"[{cell.key}] natural {natural:.4f}, FGSM transfer (eps {cfg.eps:g}) {adv:.4f}")
    device_info = provenance.collect(run.device, resolve_precision(cfg.precision, run.device))
    if existing is not None:  # training, cross-check and artefacts are the finished cell's; only rows were added
        extension = {"backends": backends, "evaluations": added, "provenance": device_info,
                     "wall_seconds": round(time.perf_counter() - t0, 3)}
        return {**existing, "backends": done + backends, "evaluations": records, "checks": checks,
                "extensions": [*existing.get("extensions", []), extension]}
    cross = _crosscheck(ctx, cell, model, data["test"])
    artifacts = {}
    if cell.family == "base_a" and cfg.figure_eps:
        artifacts["eps_choice"] = str(write_eps_choice(ctx, cell, base, data["test"]).relative_to(run.out))
    return {
        "protocol": cell.protocol, "seed": cell.seed, "model": cell.model, "family": cell.family,
        "n_blocks": cell.n_blocks, "num_classes": outputs_of(model, data["test"], run.device),
        "metrics": {"natural_accuracy": natural, "fgsm_transfer_accuracy": adv},
        "backends": backends, "evaluations": records, "checks": checks, "crosscheck": cross,
        "training_log": training, "artifacts": artifacts,
        "data": {"dataset": cfg.dataset, "n_train": len(data["train"]), "n_val": len(data["val"]),
                 "n_test": len(data["test"]), "test_set": test_set,
                 "manifest": f"manifests/{ctx.exp.name}-{cell.protocol}-s{cell.seed}.json"},
        "config": to_plain(ctx.exp.cfg), "provenance": device_info,
        "wall_seconds": round(time.perf_counter() - t0, 3),
    }


def _evaluate(ctx: Context, cell: Cell, model, base_masked, test: Dataset, done: set[tuple[str, str, float, str]],
              natural: bool) -> list[dict]:
    """Every evaluation the config asks for that ``done`` (threat, attack, eps, backend) lacks."""
    cfg, run = ctx.cfg, ctx.run
    n_classes = outputs_of(model, test, run.device)
    fgsm, pgd, aa = eval_specs(ctx.exp, n_classes)
    whitebox = [*fgsm, pgd, *([aa] if aa else [])]
    if aa is None and cfg.robust_eval.autoattack:
        run.log(f"[{cell.key}] no AutoAttack: {cfg.robust_eval.skip_reason(n_classes)}")
    run.log(f"[{cell.key}] evaluating on {len(test)} test images ({', '.join(cfg.backends)}; what the cell lacks): "
            f"natural, FGSM transfer from base_a and white-box at eps {', '.join(f'{e:g}' for e in cfg.all_eps)}, "
            f"white-box {pgd.key()}" + (f", white-box {aa.key()} (torchattacks)" if aa else ""))
    evals = evaluate_model(model, cell.model, test, whitebox, transfer=fgsm,
                           transfer_source=None if cell.family == "base_a" else base_masked,
                           transfer_key="base_a", backends=cfg.backends, batch_size=cfg.eval_batch_size,
                           device=run.device, seed=derived_seed(cell.seed, f"{cell.model}/eval"), workers=ctx.workers,
                           natural=natural, done=done, transfer_cache=ctx.transfer_cache(cell, test))
    records = []
    for ev in evals:
        rec = {"attack": ev.attack, "threat": ev.threat, "source_model": ev.source_model, "eps": ev.eps,
               "backend": ev.backend, "accuracy": ev.accuracy, "correct": ev.correct, "n": len(ev.flags),
               "primary": ev.threat == "natural" or ev.eps == cfg.eps, "flags": flags_to_str(ev.flags)}
        records.append(rec)
        if cell.family == "base_a" and ev.threat == "whitebox" and ev.attack == "fgsm":
            records.append({**rec, "threat": "transfer", "source_model": "base_a"})  # Base A's own attack
    return records


def outputs_of(model, dataset: Dataset, device: torch.device) -> int:
    """The model's number of logits (as-run models keep Base A's source-task head: more than the task's classes)."""
    with torch.no_grad():
        return int(model(dataset[0][0][None].to(device)).shape[1])


def _crosscheck(ctx: Context, cell: Cell, model, test: Dataset) -> list[dict]:
    cfg = ctx.cfg
    if cfg.crosscheck_subset <= 0 or cell.seed != cfg.seeds[0]:
        # The first seed's models only: every (protocol, model) is still checked once; another seed's model is
        # the same architecture under the same attacks, so a second check tests the backends on nothing new.
        return []
    x, y = _first(test, cfg.crosscheck_subset)
    specs = default_specs(cfg.eps, cfg.pgd_steps, cfg.robust_eval.crosscheck_steps(cfg.pgd_steps))
    rows = [{"model": cell.model, "cell": cell.key, **row}
            for row in crosscheck_backends(model, x.to(ctx.run.device), y.to(ctx.run.device), specs,
                                           seed=derived_seed(cell.seed, f"{cell.model}/crosscheck"))]
    for row in rows:
        if not row["agree"]:
            ctx.run.log(f"[{cell.key}] CROSSCHECK DISAGREES: {row['attack']} {row['backends']}: {row['criterion']} "
                        f"fails (max abs diff {row['max_abs_diff']:.2e}, accuracy {row['accuracy']})")
    return rows


def _first(dataset: Dataset, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n examples (a fixed subset: the same for every model of a split)."""
    xs, ys = zip(*(dataset[i] for i in range(min(n, len(dataset)))))
    return torch.stack(xs), torch.as_tensor(ys)


def write_eps_choice(ctx: Context, cell: Cell, base: ImageClassifier, test: Dataset) -> Path:
    """The original's eps-choice figure data: one test image of ``figure_class`` that Base A classifies correctly
    (so the figure shows what the attack does, not a mistake Base A made anyway; the first of the class if it
    gets none right), its FGSM versions at each ``figure_eps`` crafted on Base A's full (source-task) head, and
    Base A's top prediction for each."""
    label = figure_label(ctx.exp, ctx.task)
    labels = np.asarray(test.labels) if hasattr(test, "labels") else None
    candidates = np.flatnonzero(labels == label).tolist() if labels is not None else []
    device = ctx.run.device
    pos = candidates[0] if candidates else 0
    for i in candidates:
        xi, yi = test[i]
        with torch.no_grad():
            if int(base(xi.unsqueeze(0).to(device)).argmax(1)) == int(ctx.task.source_indices[int(yi)]):
                pos = i
                break
    x, y = test[pos]
    x = x.unsqueeze(0).to(device)
    y_src = torch.as_tensor([int(ctx.task.source_indices[int(y)])], device=device)
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
    return atomic_write_bytes(ctx.run.out / "artifacts" / f"{cell.key}-eps_choice.npz", buf.getvalue())
