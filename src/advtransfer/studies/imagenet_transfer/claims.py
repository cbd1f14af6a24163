"""Study 1's conclusions as testable comparisons.

Claim keys: ``(model, kind)`` with kind ``natural``, ``transfer`` (FGSM crafted on Base A, the original's attack),
``whitebox`` (FGSM on the model itself) or ``autoattack`` (white-box AutoAttack), at the main eps. The white-box
claim 1.3w is judged under AutoAttack too (1.3aa), beside it in the claims table.
"""

from __future__ import annotations

from collections.abc import Callable

from ...reporting.claims import Claim, Comparison
from ...results.stats import Estimate, published_estimate
from ...results.table import EvalKey
from .published import EXP1_PUBLISHED, PUBLISHED_N


def claim_key(key: EvalKey) -> tuple | None:
    if key.threat == "natural":
        return (key.model, "natural")
    if key.primary and key.attack == "fgsm" and key.threat in ("transfer", "whitebox"):
        return (key.model, key.threat)
    if key.primary and key.attack == "autoattack" and key.threat == "whitebox":
        return (key.model, "autoattack")
    return None


def label(claim_key: tuple) -> str:
    model, kind = claim_key
    pretty = "BnB" if model == "bnb" else model.replace("_plus", "+").upper().replace("BASE_A", "Base A")
    return f"{pretty} {kind}"


def published() -> dict[tuple, Estimate]:
    out: dict[tuple, Estimate] = {}
    for model, (natural, transfer) in EXP1_PUBLISHED.items():
        out[(model, "natural")] = published_estimate(natural, PUBLISHED_N, label((model, "natural")))
        if transfer is not None:
            out[(model, "transfer")] = published_estimate(transfer, PUBLISHED_N, label((model, "transfer")))
    return out


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


CLAIMS: tuple[Claim, ...] = (
    Claim("1.1", "Models that trained on transferable features and allow for fine tuning perform better than the "
          "base model. And the performance get improved as transferable features increase.",
          "natural accuracy: every AnB+ > BnB; AnB+ at the largest N > at the smallest N",
          _vs_bnb("natural", True, True)),
    Claim("1.2", "Models that trained on transferable features and do not allow for fine tuning perform worse than "
          "the base model. And the performance degrades as transferable features increase.",
          "natural accuracy: every AnB < BnB; AnB at the smallest N > at the largest N",
          _vs_bnb("natural", False, False)),
    Claim("1.3", "Transfer learning and Fine tuning render us more robust models that can hold the model "
          "performance when feeding with adversarial examples.",
          "FGSM accuracy (crafted on Base A, as the original): every AnB+ > BnB; AnB+ at the largest N > smallest",
          _vs_bnb("transfer", True, True)),
    Claim("1.3w", "(the same claim, under white-box FGSM: beyond the original, which only attacked Base A)",
          "white-box FGSM accuracy: every AnB+ > BnB; AnB+ at the largest N > smallest",
          _vs_bnb("whitebox", True, True)),
    Claim("1.3aa", "(the same claim, under white-box AutoAttack: the evaluation of record since 2020)",
          "white-box AutoAttack accuracy: every AnB+ > BnB; AnB+ at the largest N > smallest",
          _vs_bnb("autoattack", True, True)),
    Claim("1.4", "The model with all transferable blocks weights and is allowed for fine tuning has the best "
          "performance and hold its performance the most when facing adversarial attacks.",
          "A16B+ (largest N) > every other model in natural and in FGSM (transfer) accuracy", _best),
    Claim("1.5", "The models generated by transfer learning but are not allowed with fine-tuning have a degraded "
          "performance as more blocks are frozen.",
          "FGSM (transfer) accuracy: AnB at the smallest N > at the largest N", _anb_trend_under_attack),
)
