"""The cross-check, the evaluation checks and the attack benchmark (structure only: speed is never asserted)."""

from __future__ import annotations

import json

import pytest
import torch

from advtransfer.attacks import AttackSpec
from advtransfer.attacks.crosscheck import crosscheck, default_specs, random_start_tolerance, to_markdown
from advtransfer.cli import main
from advtransfer.engine.reference_models import reference_model
from advtransfer.engine.sanity import check_evaluations


@pytest.fixture(scope="module")
def small_cnn():
    return reference_model("small-cnn", seed=0)


def test_default_specs_are_fgsm_pgd_with_and_without_random_start_and_apgd_ce() -> None:
    """The cross-checked attacks, field by field: PGD's step is eps/4, APGD-CE one restart with its own steps."""
    eps = 0.04
    assert default_specs(eps, steps=7) == [
        AttackSpec("fgsm", eps),
        AttackSpec("pgd", eps, step=0.01, steps=7, random_start=False),
        AttackSpec("pgd", eps, step=0.01, steps=7, random_start=True),
        AttackSpec("apgd_ce", eps, steps=7, random_start=True, restarts=1),
    ]
    assert default_specs(eps, steps=7, apgd_steps=12)[3] == AttackSpec("apgd_ce", eps, steps=12, random_start=True)
    assert [s.steps for s in default_specs(eps)] == [1, 10, 10, 10]
    assert [s.key() for s in default_specs(eps, steps=7)] == [
        "fgsm-eps0.04", "pgd-eps0.04-step0.01-n7", "pgd-eps0.04-step0.01-n7-rs", "apgd_ce-eps0.04-n7-r1"]


def test_backends_agree_on_a_trained_model(small_cnn) -> None:
    model, x, y = small_cnn
    rows = crosscheck(model, x[:32], y[:32], default_specs(8 / 255, steps=3), seed=1)
    assert {r["backends"] for r in rows} == {"native vs torchattacks", "native vs art", "torchattacks vs art"}
    assert len(rows) == 7 and all(r["agree"] for r in rows), to_markdown(rows)
    # APGD-CE has no native implementation: its two libraries are compared with each other
    assert [(r["attack"], r["backends"]) for r in rows if not r["backends"].startswith("native")] == \
        [("apgd_ce-eps0.0313725-n3-r1", "torchattacks vs art")]
    for r in rows:
        if not r["random_start"]:
            assert r["max_abs_diff"] <= 1e-6 and r["frac_pixels_differing"] == 0.0
    clean = (model(x[:32]).argmax(1) == y[:32]).float().mean().item()
    assert clean > 0.5  # trained: gradients are meaningful, so the agreement above is not vacuous


def test_disagreement_is_detected(small_cnn, monkeypatch) -> None:
    from advtransfer.attacks import torchattacks_backend

    def halfway(model, x, y, spec, generator=None):  # a broken backend that stays inside the eps ball
        return x + (torchattacks_backend_run(model, x, y, spec, generator) - x) / 2

    torchattacks_backend_run = torchattacks_backend.run
    monkeypatch.setattr(torchattacks_backend, "run", halfway)
    model, x, y = small_cnn
    rows = crosscheck(model, x[:16], y[:16], [AttackSpec.fgsm(8 / 255)])
    bad = [r for r in rows if not r["agree"]]
    assert [r["backends"] for r in bad] == ["native vs torchattacks"]


def test_random_start_tolerance_shrinks_with_n() -> None:
    assert random_start_tolerance(0.5, 100) > random_start_tolerance(0.5, 10_000)
    assert random_start_tolerance(0.0, 100) == pytest.approx(0.01)  # one example when outcomes cannot vary


@pytest.mark.parametrize("n", [16, 128, 1000])
@pytest.mark.parametrize("p", [0.02, 0.1, 0.5, 0.9])
def test_random_start_tolerance_rarely_flags_two_correct_backends_and_catches_a_shifted_one(p: float, n: int) -> None:
    """The contract behind the tolerance, simulated: two correct backends are two independent Bernoulli draws per
    example, and the cross-check's tolerance (at their pooled accuracy) flags them about 0.3% of the time (at most
    0.6% allowed here for 4,000 trials; 1 sigma would flag about a third). From 128 examples on, a backend whose
    success rate is 6 sigma off is caught in most trials, so the tolerance does not wave a broken one through."""
    import numpy as np

    rng = np.random.default_rng(1234)
    trials = 4000
    sigma = (2 * p * (1 - p) / n) ** 0.5
    reference, correct = rng.binomial(n, p, trials) / n, rng.binomial(n, p, trials) / n
    shifted = rng.binomial(n, min(1.0, p + 6 * sigma), trials) / n

    def flagged(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.mean([abs(x - y) > random_start_tolerance((x + y) / 2, n) for x, y in zip(a, b)]))

    assert flagged(reference, correct) <= 0.006
    if n >= 128:
        assert flagged(reference, shifted) >= 0.5


def test_crosscheck_tolerance_is_taken_at_the_pooled_accuracy(small_cnn, monkeypatch) -> None:
    seen = []
    monkeypatch.setattr("advtransfer.attacks.crosscheck.random_start_tolerance",
                        lambda acc, n: seen.append(acc) or 1.0)
    model, x, y = small_cnn
    rows = crosscheck(model, x[:16], y[:16], [AttackSpec.pgd(8 / 255, 2 / 255, 2, random_start=True)])
    want = [(r["accuracy"][a] + r["accuracy"][b]) / 2 for r in rows for a, b in [r["backends"].split(" vs ")]]
    assert seen == pytest.approx(want) and len(seen) == 2


def test_crosscheck_cli_writes_tables_and_exit_code(tmp_path, small_cnn, monkeypatch) -> None:
    monkeypatch.setattr("advtransfer.engine.reference_models.reference_model",
                        lambda name, seed=0, device=None: small_cnn)
    out = tmp_path / "cc"
    assert main(["crosscheck", "--model", "small-cnn", "--n", "16", "--steps", "2", "--out", str(out)]) == 0
    doc = json.loads((out / "crosscheck.json").read_text())
    assert doc["all_agree"] and len(doc["rows"]) == 7
    md = (out / "crosscheck.md").read_text()
    assert "native vs art" in md and "| small-cnn | apgd_ce-eps0.0313725-n2-r1 | torchattacks vs art |" in md
    from advtransfer.attacks import art_backend

    monkeypatch.setattr(art_backend, "run", lambda m, x, y, s, generator=None: x.clone())  # does not attack
    assert main(["crosscheck", "--model", "small-cnn", "--n", "16", "--steps", "2", "--out", str(out)]) == 1


def test_bench_attacks_reports_every_backend(tmp_path, small_cnn, monkeypatch) -> None:
    monkeypatch.setattr("advtransfer.engine.reference_models.reference_model",
                        lambda name, seed=0, device=None: small_cnn)
    path = tmp_path / "bench.json"
    assert main(["bench", "attacks", "--model", "small-cnn", "--batch", "16", "--steps", "2", "--repeats", "1",
                 "--json", str(path)]) == 0
    result = json.loads(path.read_text())
    assert result["forward_backward_ms"] > 0
    pairs = {(r["attack"].split("-")[0], r["backend"]) for r in result["rows"]}
    assert pairs == {(a, b) for a in ("fgsm", "pgd") for b in ("native", "torchattacks", "art")}
    assert all(r["ratio_to_bound"] > 0 for r in result["rows"])


def _rec(attack, threat, eps, acc, backend="native"):
    return {"attack": attack, "threat": threat, "eps": eps, "accuracy": acc, "backend": backend}


def test_checks_flag_each_violation_with_a_meaning() -> None:
    good = [_rec("none", "natural", 0.0, 0.9, ""), _rec("fgsm", "whitebox", 0.01, 0.3), _rec("fgsm", "whitebox",
            0.1, 0.05), _rec("fgsm", "transfer", 0.01, 0.6), _rec("fgsm", "transfer", 0.1, 0.2),
            _rec("pgd", "whitebox", 0.01, 0.1)]
    assert check_evaluations("m", good) == []
    bad = [_rec("none", "natural", 0.0, 0.9, ""), _rec("fgsm", "whitebox", 0.01, 0.5), _rec("fgsm", "whitebox",
           0.1, 0.7), _rec("fgsm", "transfer", 0.01, 0.3), _rec("pgd", "whitebox", 0.01, 0.6)]
    flags = {f.check: f for f in check_evaluations("m", bad)}
    assert set(flags) == {"whitebox_weaker_than_transfer", "pgd_weaker_than_fgsm", "accuracy_not_falling_with_eps",
                          "no_collapse_at_large_eps"}
    assert all(f.meaning and f.model == "m" for f in flags.values())


def test_checks_tolerate_noise_below_the_threshold() -> None:
    recs = [_rec("none", "natural", 0.0, 0.9, ""), _rec("fgsm", "whitebox", 0.01, 0.305),
            _rec("fgsm", "transfer", 0.01, 0.3), _rec("pgd", "whitebox", 0.01, 0.31)]
    assert check_evaluations("m", recs) == []


@pytest.mark.heavy
def test_reference_model_is_deterministic() -> None:
    a, xa, _ = reference_model("small-cnn", seed=3)
    b, xb, _ = reference_model("small-cnn", seed=3)
    assert torch.equal(xa, xb)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.heavy
def test_crosscheck_cli_on_the_real_mobilenet_reference_model(tmp_path) -> None:
    """`advtransfer crosscheck --model mobilenet-demo` end to end (the kit trains the reference model, no mock):
    every deterministic attack bit-identical across backends, every comparison within its bound."""
    out = tmp_path / "cc"
    assert main(["crosscheck", "--model", "mobilenet-demo", "--n", "16", "--steps", "2", "--out", str(out)]) == 0
    rows = json.loads((out / "crosscheck.json").read_text())["rows"]
    assert {r["model"] for r in rows} == {"mobilenet-demo"} and len(rows) == 7
    assert {r["backends"] for r in rows} == {"native vs torchattacks", "native vs art", "torchattacks vs art"}
    for r in rows:
        assert r["agree"] and r["n"] == 16, r
        if not r["random_start"]:
            assert r["max_abs_diff"] == 0.0, r  # FGSM and PGD without a random start: bit for bit on CPU


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
    x = torch.rand(24, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    return model, x, model(x).argmax(1).roll(1)  # labels the model gets partly wrong: accuracies inside (0, 1)


def test_crosscheck_rows_field_by_field(linear) -> None:
    """Each row: the attack, its backends (reference first), the accuracies each backend's examples leave (as a
    separate evaluation computes them, from the same seeded generator), the criterion with its tolerance, the
    image count and single-run seconds rounded to 0.1 ms."""
    from advtransfer.attacks import attack
    from advtransfer.attacks.crosscheck import EXACT_TOLERANCE, apgd_tolerance

    model, x, y = linear
    eps = 0.01
    specs = default_specs(eps, steps=3)
    rows = crosscheck(model, x, y, specs, seed=7)
    assert all(0 < a < 1 for r in rows for a in r["accuracy"].values())  # an eps that leaves some examples
    assert [(r["attack"], r["backends"]) for r in rows] == [
        (specs[0].key(), "native vs torchattacks"), (specs[0].key(), "native vs art"),
        (specs[1].key(), "native vs torchattacks"), (specs[1].key(), "native vs art"),
        (specs[2].key(), "native vs torchattacks"), (specs[2].key(), "native vs art"),
        (specs[3].key(), "torchattacks vs art")]
    for row in rows:
        spec = next(s for s in specs if s.key() == row["attack"])
        for backend, accuracy in row["accuracy"].items():
            adv = attack(model, x, y, spec, backend, generator=torch.Generator().manual_seed(7))
            assert accuracy == (model(adv).argmax(1) == y).float().mean().item(), (row["attack"], backend)
        assert row["n"] == len(y) == 24 and row["random_start"] is spec.random_start
        pooled = sum(row["accuracy"].values()) / 2
        if spec.name == "apgd_ce":
            assert row["criterion"] == f"|accuracy difference| <= {apgd_tolerance(pooled, 24):.4f} (3-sigma, n=24)"
        elif spec.random_start:
            assert row["criterion"] == (f"|accuracy difference| <= {random_start_tolerance(pooled, 24):.4f} "
                                        "(3-sigma, n=24)")
        else:
            assert row["criterion"] == f"max abs difference <= {EXACT_TOLERANCE:g}" and row["agree"] is True
        assert all(type(s) is float and 0.0 <= s < 60 and round(s, 4) == s for s in row["seconds"].values())
    again = crosscheck(model, x, y, specs, seed=7)  # the seed decides the random starts: the same rows again
    assert [(r["accuracy"], r["max_abs_diff"]) for r in again] == [(r["accuracy"], r["max_abs_diff"]) for r in rows]
    assert [r["max_abs_diff"] for r in crosscheck(model, x, y, specs)] == \
        [r["max_abs_diff"] for r in crosscheck(model, x, y, specs, seed=0)]  # the default seed is 0


def test_crosscheck_reference_and_skipped_attacks(linear) -> None:
    model, x, y = linear
    fgsm, apgd = AttackSpec.fgsm(0.1), AttackSpec.apgd_ce(0.1, 2)
    # native is the reference wherever it has the attack, whatever the order the backends are given in
    assert [r["backends"] for r in crosscheck(model, x, y, [fgsm], backends=("torchattacks", "native"))] == \
        ["native vs torchattacks"]
    # an attack fewer than two backends have is skipped, and the walk goes on to the next attack
    assert [r["attack"] for r in crosscheck(model, x, y, [apgd, fgsm], backends=("native", "torchattacks"))] == \
        [fgsm.key()]
    assert crosscheck(model, x, y, [apgd], backends=("native",)) == []


def test_random_start_tolerance_clips_the_accuracy_to_the_unit_interval() -> None:
    assert random_start_tolerance(1.5, 16) == random_start_tolerance(1.0, 16) == 1 / 16
    assert random_start_tolerance(-0.5, 16) == random_start_tolerance(0.0, 16) == 1 / 16
    assert random_start_tolerance(0.5, 32) == 3 * (2 * 0.25 / 32) ** 0.5 + 1 / 32


def test_crosscheck_markdown_in_full() -> None:
    rows = [{"model": "bnb", "attack": "fgsm-eps0.03", "backends": "native vs art", "max_abs_diff": 0.0,
             "frac_pixels_differing": 0.0, "accuracy": {"native": 0.25, "art": 0.25},
             "seconds": {"native": 0.0123, "art": 0.5}, "criterion": "max abs difference <= 1e-06", "agree": True},
            {"attack": "pgd-eps0.03-step0.0075-n5-rs", "backends": "native vs torchattacks", "max_abs_diff": 0.06,
             "frac_pixels_differing": 0.875, "accuracy": {"native": 0.1, "torchattacks": 0.5},
             "seconds": {"native": 1.0, "torchattacks": 2.25}, "criterion": "|accuracy difference| <= 0.2000",
             "agree": False}]
    assert to_markdown(rows, title="Check") == (
        "### Check\n\n"
        "| model | attack | backends | max abs diff | pixels differing | accuracy | seconds | criterion | agree |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
        "| bnb | fgsm-eps0.03 | native vs art | 0.00e+00 | 0.00% | 0.2500 / 0.2500 | 0.012 / 0.500 | "
        "max abs difference <= 1e-06 | yes |\n"
        "|  | pgd-eps0.03-step0.0075-n5-rs | native vs torchattacks | 6.00e-02 | 87.50% | 0.1000 / 0.5000 | "
        "1.000 / 2.250 | |accuracy difference| <= 0.2000 | **NO** |\n")
    assert to_markdown([]).startswith("### Cross-check of attack backends\n\n| model |")
