"""Each conclusion of the two write-ups, stated as a testable comparison and judged on three sources of numbers.

A claim is a list of comparisons ("A16B+ natural accuracy > BnB natural accuracy"). Each comparison is decided
with a two-sided 95% interval on the difference of two accuracies: the binomial standard error of each accuracy
(its n test images) or, with several seeds, the seed-to-seed standard error if that is larger. A comparison is
*supported* when the interval lies on the claimed side (and the difference reaches the claim's ``min_gap``, for
claims that say "highly" or "much"), *not supported* when it lies on the other side or the gap is clearly below
``min_gap``, *inconclusive* otherwise. A claim is supported when all its comparisons are, not supported when any
is not, inconclusive otherwise; comparisons without numbers are listed and skipped ("no data" if none is left).

Sources: the published numbers (one run; n = the original test set sizes), and our ``as-run`` and ``intended``
results. Verdicts on the demo profile are about the tiny stand-in data, not about the write-ups' claims at scale.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .published import EXP1_PUBLISHED, EXP2_ATTACK_ORDER, EXP2_PUBLISHED

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NO_DATA = "supported", "not supported", "inconclusive", "no data"
PUBLISHED_N = {1: 6000, 2: 10000}  # test images: ImageNet-R 20% of 30,000; the CIFAR test sets


@dataclass(frozen=True)
class Estimate:
    p: float  # accuracy in [0, 1]
    se: float  # standard error
    label: str = ""

    def __str__(self) -> str:
        return f"{self.label} {self.p:.3f}"


Lookup = Callable[[tuple], Estimate | None]


@dataclass(frozen=True)
class Comparison:
    """``left > right`` (by at least ``min_gap``), with the keys a study's lookup understands."""

    left: tuple
    right: tuple
    min_gap: float = 0.0

    def judge(self, get: Lookup) -> tuple[str, str]:
        a, b = get(self.left), get(self.right)
        if a is None or b is None:
            missing = " and ".join(_name(k) for k, v in ((self.left, a), (self.right, b)) if v is None)
            return NO_DATA, f"{missing}: no number"
        diff, half = a.p - b.p, 1.96 * math.hypot(a.se, b.se)
        text = f"{a} vs {b}: {diff:+.3f} ± {half:.3f}"
        if self.min_gap:
            text += f" (claim needs > {self.min_gap:.2f})"
        if diff - half > 0 and diff >= self.min_gap:  # surely positive, and as large as the claim says
            return SUPPORTED, text
        if diff + half < max(self.min_gap, 1e-12):  # even the upper bound falls short (or is below zero)
            return NOT_SUPPORTED, text
        return INCONCLUSIVE, text


@dataclass(frozen=True)
class Claim:
    id: str
    study: int
    text: str  # the write-up's words
    test: str  # how the kit tests it
    comparisons: Callable[[set], list[Comparison]]  # from the keys present in a source

    def judge(self, get: Lookup, keys: set) -> tuple[str, list[str]]:
        results = [c.judge(get) for c in self.comparisons(keys)]
        decided = [v for v, _ in results if v != NO_DATA]
        lines = [f"{v}: {t}" for v, t in results]
        if not decided:
            return NO_DATA, lines
        if NOT_SUPPORTED in decided:
            return NOT_SUPPORTED, lines
        return (SUPPORTED if all(v == SUPPORTED for v in decided) else INCONCLUSIVE), lines


def _name(key: tuple) -> str:
    return "/".join(str(k) for k in key)


# ------------------------------------------------------------------------------------------------- study 1 ---
# Keys: (model, kind) with kind natural, transfer (FGSM crafted on Base A) or whitebox (FGSM), at the main eps.


def _blocks(keys: set, plus: bool) -> list[int]:
    suffix = "b_plus" if plus else "b"
    return sorted({int(m[1:-len(suffix)]) for m, _ in keys if m.startswith("a") and m.endswith(suffix)
                   and m[1:-len(suffix)].isdigit()})


def _model(n: int, plus: bool) -> str:
    return f"a{n}b_plus" if plus else f"a{n}b"


def _vs_bnb(kind: str, plus: bool, better: bool) -> Callable[[set], list[Comparison]]:
    def comparisons(keys: set) -> list[Comparison]:
        out = []
        for n in _blocks(keys, plus):
            m = (_model(n, plus), kind)
            out.append(Comparison(m, ("bnb", kind)) if better else Comparison(("bnb", kind), m))
        ns = _blocks(keys, plus)
        if len(ns) > 1:  # the trend with N: first against last
            lo, hi = (_model(ns[0], plus), kind), (_model(ns[-1], plus), kind)
            out.append(Comparison(hi, lo) if better else Comparison(lo, hi))
        return out
    return comparisons


def _best(keys: set) -> list[Comparison]:
    models = sorted({m for m, _ in keys if m not in ("base_a",)})
    ns = _blocks(keys, plus=True)
    if not ns:
        return []
    top = _model(ns[-1], True)
    return [Comparison((top, kind), (m, kind)) for kind in ("natural", "transfer") for m in models if m != top]


def _anb_trend_under_attack(keys: set) -> list[Comparison]:
    ns = _blocks(keys, plus=False)
    return [Comparison((_model(ns[0], False), "transfer"), (_model(ns[-1], False), "transfer"))] if len(ns) > 1 else []


# ------------------------------------------------------------------------------------------------- study 2 ---
# Keys: (setting, model, training, attack) with attack clean, fgsm, pgd, nifgsm or vmifgsm.


def _at_helps(keys: set) -> list[Comparison]:
    out = []
    for setting, model in sorted({(s, m) for s, m, t, _ in keys if t == "pgd" and m != "resnet18_transfer"}):
        out.append(Comparison((setting, model, "pgd", "pgd"), (setting, model, "clean", "pgd"), min_gap=0.10))
    return out


def _transfer_more_vulnerable(keys: set) -> list[Comparison]:
    return [Comparison((3, "resnet18_scratch", t, "pgd"), (2, "resnet18_transfer", t, "pgd"))
            for t in ("clean", "pgd")]


def _fgsm_weak_on_pretrained(keys: set) -> list[Comparison]:
    return [Comparison((2, "resnet18_transfer", "clean", "fgsm"), (2, "resnet18_transfer", "clean", "pgd"),
                       min_gap=0.05)]


def _scratch_better(keys: set) -> list[Comparison]:
    return [Comparison((3, "resnet18_scratch", "clean", "clean"), (2, "resnet18_transfer", "clean", "clean")),
            Comparison((3, "resnet18_scratch", "pgd", "pgd"), (2, "resnet18_transfer", "pgd", "pgd"))]


def _more_classes_lower(keys: set) -> list[Comparison]:
    return [Comparison((small, model, t, "clean"), (4, model, t, "clean"))
            for model, small in (("resnet18_scratch", 3), ("basenet", 1)) for t in ("clean", "pgd")]


CLAIMS: tuple[Claim, ...] = (
    Claim("1.1", 1, "Models that trained on transferable features and allow for fine tuning perform better than the "
          "base model. And the performance get improved as transferable features increase.",
          "natural accuracy: every AnB+ > BnB; AnB+ at the largest N > at the smallest N",
          _vs_bnb("natural", True, True)),
    Claim("1.2", 1, "Models that trained on transferable features and do not allow for fine tuning perform worse than "
          "the base model. And the performance degrades as transferable features increase.",
          "natural accuracy: every AnB < BnB; AnB at the smallest N > at the largest N",
          _vs_bnb("natural", False, False)),
    Claim("1.3", 1, "Transfer learning and Fine tuning render us more robust models that can hold the model "
          "performance when feeding with adversarial examples.",
          "FGSM accuracy (crafted on Base A, as the original): every AnB+ > BnB; AnB+ at the largest N > smallest",
          _vs_bnb("transfer", True, True)),
    Claim("1.3w", 1, "(the same claim, under white-box FGSM: beyond the original, which only attacked Base A)",
          "white-box FGSM accuracy: every AnB+ > BnB; AnB+ at the largest N > smallest",
          _vs_bnb("whitebox", True, True)),
    Claim("1.4", 1, "The model with all transferable blocks weights and is allowed for fine tuning has the best "
          "performance and hold its performance the most when facing adversarial attacks.",
          "A16B+ (largest N) > every other model in natural and in FGSM (transfer) accuracy", _best),
    Claim("1.5", 1, "The models generated by transfer learning but are not allowed with fine-tuning have a degraded "
          "performance as more blocks are frozen.",
          "FGSM (transfer) accuracy: AnB at the smallest N > at the largest N", _anb_trend_under_attack),
    Claim("2.1", 2, "Adversarial Training is highly effective on model from scratch with white-box attack",
          "PGD accuracy of every from-scratch model: PGD-trained > clean-trained by more than 10 points "
          "(as-run and published: crafted on the clean model, not white-box)", _at_helps),
    Claim("2.2", 2, "Transfer learning model is much more vulnerable to adversarial attacks",
          "PGD accuracy, clean-trained and PGD-trained: ResNet-18 scratch (exp. 3) > transfer (exp. 2)",
          _transfer_more_vulnerable),
    Claim("2.3", 2, "FGSM attack is weak on pretrained models",
          "clean-trained transfer ResNet-18 (exp. 2): FGSM accuracy > PGD accuracy by > 5 points",
          _fgsm_weak_on_pretrained),
    Claim("2.4", 2, "Training models from scratch without pretrained layers have a better performance and are more "
          "robust to adversarial attacks",
          "ResNet-18 scratch > transfer: clean accuracy of the clean models, PGD accuracy of the PGD-trained ones",
          _scratch_better),
    Claim("2.5", 2, "Training models from scratch with larger classes have relatively lower accuracy with or without "
          "adversarial training due to the increasing level of task complexity",
          "clean accuracy, clean-trained and PGD-trained: CIFAR-10 (exp. 3 ResNet-18, exp. 1 BaseNet) > CIFAR-100 "
          "(exp. 4)", _more_classes_lower),
)


# ------------------------------------------------------------------------------------------------- sources ---


class Source:
    """Accuracies of one study from one source, looked up by the study's keys."""

    def __init__(self, name: str, values: dict[tuple, Estimate]) -> None:
        self.name, self.values = name, values

    def get(self, key: tuple) -> Estimate | None:
        return self.values.get(key)

    @property
    def keys(self) -> set:
        return set(self.values)


def _estimate(label: str, per_seed: list[tuple[float, int]]) -> Estimate:
    accs = np.array([a for a, _ in per_seed])
    p = float(accs.mean())
    n = sum(n for _, n in per_seed)
    se = math.sqrt(max(p * (1 - p), 0.25 / max(n, 1)) / max(n, 1))  # 0.25/n keeps p = 0 or 1 from claiming certainty
    if len(accs) > 1:
        se = max(se, float(accs.std(ddof=1)) / math.sqrt(len(accs)))
    return Estimate(p, se, label)


def published_sources() -> dict[int, Source]:
    n1, n2 = PUBLISHED_N[1], PUBLISHED_N[2]
    v1: dict[tuple, Estimate] = {}
    for model, (natural, transfer) in EXP1_PUBLISHED.items():
        v1[(model, "natural")] = _estimate(_label1(model, "natural"), [(natural, n1)])
        if transfer is not None:
            v1[(model, "transfer")] = _estimate(_label1(model, "transfer"), [(transfer, n1)])
    v2: dict[tuple, Estimate] = {}
    for (setting, model, training), numbers in EXP2_PUBLISHED.items():
        model = "basenet" if model == "basenet100" else model
        for attack, pct in zip(EXP2_ATTACK_ORDER, numbers):
            v2[(setting, model, training, attack)] = _estimate(_label2(setting, model, training, attack),
                                                               [(pct / 100, n2)])
    return {1: Source("published", v1), 2: Source("published", v2)}


def _label1(model: str, kind: str) -> str:
    pretty = "BnB" if model == "bnb" else model.replace("_plus", "+").upper().replace("BASE_A", "Base A")
    return f"{pretty} {kind}"


def _label2(setting: int, model: str, training: str, attack: str) -> str:
    short = {"basenet": "BaseNet", "resnet18_scratch": "R18-scratch", "resnet18_transfer": "R18-transfer"}
    return f"e{setting} {short.get(model, model)} {training}-trained {attack.upper() if attack != 'clean' else 'clean'}"


def result_sources(results_dir: Path) -> dict[tuple[int, str], Source]:
    """(study, protocol) -> Source, from ``results.csv``: FGSM/PGD from the native backend, NIFGSM/VMIFGSM from
    torchattacks; study 1 at the main eps (``primary`` rows)."""
    path = Path(results_dir) / "results.csv"
    if not path.is_file():
        return {}
    groups: dict[tuple[int, str], dict[tuple, dict[str, tuple[float, int]]]] = defaultdict(lambda: defaultdict(dict))
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["backend"] not in ("", "native") and not (r["backend"] == "torchattacks"
                                                          and r["attack"] in ("nifgsm", "vmifgsm")):
                continue
            if r["experiment"] == "exp1":
                if r["primary"] != "1" or r["attack"] not in ("none", "fgsm"):
                    continue
                kind = "natural" if r["attack"] == "none" else r["threat"]
                key, study = (r["model"], kind), 1
            elif r["experiment"] == "exp2" and r.get("setting"):
                attack = "clean" if r["attack"] == "none" else r["attack"]
                key, study = (int(r["setting"]), r["model"], r["training"], attack), 2
            else:
                continue
            groups[(study, r["protocol"])][key][r["seed"]] = (float(r["accuracy"]), int(r["n"]))
    out = {}
    for (study, protocol), by_key in groups.items():
        label = _label1 if study == 1 else _label2
        out[(study, protocol)] = Source(protocol, {k: _estimate(label(*k), list(seeds.values()))
                                                   for k, seeds in by_key.items()})
    return out


@dataclass(frozen=True)
class Judged:
    claim: Claim
    verdicts: dict[str, tuple[str, list[str]]]  # source name -> (verdict, evidence lines)


def judge_all(results_dir: Path) -> list[Judged]:
    """Every claim of the studies present in ``results_dir``, judged on the published numbers and on our as-run
    and intended results."""
    ours = result_sources(results_dir)
    published = published_sources()
    studies = sorted({s for s, _ in ours})
    judged = []
    for claim in CLAIMS:
        if claim.study not in studies:
            continue
        sources = [published[claim.study]] + [ours[(claim.study, p)] for p in ("as-run", "intended")
                                              if (claim.study, p) in ours]
        judged.append(Judged(claim, {s.name: claim.judge(s.get, s.keys) for s in sources}))
    return judged
