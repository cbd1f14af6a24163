"""One training fingerprint for both studies, from an allow-list of what training reads: evaluation-only settings
never change it (so they never retrain), every setting training reads does (so a stale checkpoint is never
resumed), and only for the cells whose training reads it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from advtransfer.attacks.autoattack import AutoAttackSettings
from advtransfer.config.common import Phase
from advtransfer.studies import load_experiment
from advtransfer.studies.cifar_at.cell import training_fingerprints as fingerprints2
from advtransfer.studies.imagenet_transfer.cell import training_fingerprints as fingerprints1


def _all(exp, fingerprints) -> dict[str, dict[str, str]]:
    return {cell.key: fingerprints(exp, cell) for cell in exp.study.plan(exp)}


def _with(exp, **changes):
    return replace(exp, cfg=replace(exp.cfg, **changes))


# AutoAttack's settings, switched off or changed in every field: evaluation only in both studies.
AUTOATTACK_OFF = AutoAttackSettings(autoattack=False)
AUTOATTACK_OTHER = AutoAttackSettings(True, apgd_steps=3, restarts=2, target_classes=2, fab_steps=4, square_queries=7)
EXP1_EVALUATION_ONLY = {
    "eps": 0.05, "eps_sweep": (0.2,), "figure_eps": (0.5,), "figure_class": "3", "eval_batch_size": 7,
    "backends": ("native", "torchattacks", "art"), "pgd_steps": 3, "crosscheck_subset": 0,
    "robust_eval": AUTOATTACK_OFF,
}
EXP2_EVALUATION_ONLY = {
    "eval_batch_size": 7, "backends": ("torchattacks", "art"), "crosscheck_subset": 0,
    "robust_eval": AUTOATTACK_OFF,
}
# sha256 (first 16 hex digits) of every training fingerprint of each shipped profile, computed before AutoAttack,
# APGD-CE and the torchvision / timm models were added: those changes must leave every existing checkpoint
# resumable (AttackSpec grew fields; adversarial training fingerprints read AttackSpec.identity(), not to_dict()).
PINNED = {("exp1", "demo"): "69ae5f1fd19d3a47", ("exp1", "paper"): "56f9d10cde1328d8",
          ("exp2", "demo"): "8dc253457cfcf276", ("exp2", "paper"): "430a57ab4b8205aa",
          ("exp2", "cifar10-real-mini"): "f4e4db541ec9e070"}


@pytest.mark.parametrize("field, value", sorted(EXP1_EVALUATION_ONLY.items()))
def test_study1_evaluation_settings_never_retrain(field: str, value) -> None:
    exp = load_experiment("exp1", "demo")
    assert _all(_with(exp, **{field: value}), fingerprints1) == _all(exp, fingerprints1)


@pytest.mark.parametrize("field, value", sorted(EXP2_EVALUATION_ONLY.items()))
def test_study2_evaluation_settings_never_retrain(field: str, value) -> None:
    exp = load_experiment("exp2", "demo")
    assert _all(_with(exp, **{field: value}), fingerprints2) == _all(exp, fingerprints2)


@pytest.mark.parametrize("experiment", ["exp1", "exp2"])
def test_other_autoattack_settings_never_retrain(experiment: str) -> None:
    exp = load_experiment(experiment, "demo")
    fingerprints = fingerprints1 if experiment == "exp1" else fingerprints2
    assert _all(_with(exp, robust_eval=AUTOATTACK_OTHER), fingerprints) == _all(exp, fingerprints)


@pytest.mark.parametrize("experiment, profile", sorted(PINNED))
def test_shipped_profiles_keep_their_fingerprints(experiment: str, profile: str) -> None:
    exp = load_experiment(experiment, profile)
    fingerprints = fingerprints1 if experiment == "exp1" else fingerprints2
    assert _digest(_merged(exp, fingerprints)) == PINNED[(experiment, profile)]


def _merged(exp, fingerprints) -> dict[str, str]:
    """Every training fingerprint of the experiment's grid, by checkpoint folder."""
    merged: dict[str, str] = {}
    for cell in exp.study.plan(exp):
        merged.update(fingerprints(exp, cell))
    return merged


def _digest(fingerprints: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(fingerprints, sort_keys=True).encode()).hexdigest()[:16]


def test_the_one_seed_demo_keeps_the_fingerprints_of_the_two_seed_demo() -> None:
    """exp1's demo went from seeds [0, 1] to [0]: seed 0's trainings are those of the two-seed demo (its
    checkpoints resume), and the two-seed grid still has the fingerprints pinned before the change."""
    exp = load_experiment("exp1", "demo")
    merged = _merged(exp.with_settings(seeds=(0, 1)), fingerprints1)
    assert _digest(merged) == "8135d63cb3641d2c"
    assert _digest({k: v for k, v in merged.items() if k.endswith("-s0")}) == PINNED[("exp1", "demo")]


def test_study2_torchvision_and_timm_models_have_their_own_fingerprints() -> None:
    """A prefixed model's training reads its name (the pretrained weights included) and the resize, nothing of the
    write-up's models' settings (resnet_pretrained, model_schedules)."""
    exp = load_experiment("exp2", "demo")
    s = replace(exp.cfg.settings[0], models=("torchvision:mobilenet_v3_small@IMAGENET1K_V1", "timm:test_resnet"))
    exp = _with(exp, settings=(s,))
    before = _all(exp, fingerprints2)
    assert {c.model for c in exp.study.plan(exp)} == {"torchvision-mobilenet_v3_small-IMAGENET1K_V1",
                                                       "timm-test_resnet"}
    assert not any("pretrain" in f for fps in before.values() for f in fps)  # no kit-pretrained backbone
    cfg = exp.cfg
    assert _changed(before, _all(_with(exp, resnet_input_size=24), fingerprints2)) == \
        {f for fps in before.values() for f in fps}
    assert _changed(before, _all(_with(exp, resnet_pretrained=replace(cfg.resnet_pretrained, seed=8)),
                                 fingerprints2)) == set()


def test_study1_more_seeds_blocks_or_protocols_keep_existing_cells() -> None:
    exp = load_experiment("exp1", "demo")
    before = _all(exp, fingerprints1)
    after = _all(_with(exp, seeds=(0, 1, 2), blocks=(4, 8), protocols=("intended",)), fingerprints1)
    assert all(after[key] == before[key] for key in after if key in before)


def _changed(before: dict, after: dict) -> set[str]:
    """Checkpoint folders whose fingerprint changed."""
    return {folder for key in before for folder, fp in before[key].items() if after[key][folder] != fp}


def test_study1_training_settings_retrain_exactly_what_reads_them() -> None:
    exp = load_experiment("exp1", "demo")
    before = _all(exp, fingerprints1)
    everything = {folder for fps in before.values() for folder in fps}
    base_a = {f for f in everything if "base_a-pretrain" in f}
    anb = {c.key for c in exp.study.plan(exp) if c.family == "anb"}
    cfg = exp.cfg
    for changes, expected in [
        ({"batch_size": 16}, everything),
        ({"image_size": 24}, everything),
        ({"base_a": replace(cfg.base_a, width_mult=0.5)}, everything),  # the copied blocks come from Base A
        ({"tiny": replace(cfg.tiny, seed=5)}, everything),
        ({"split": replace(cfg.split, test=0.3)}, everything - base_a),  # Base A trains on the source task
        ({"schedules": replace(cfg.schedules, anb=(Phase("adam", 1e-3, 6),))}, anb),
        ({"precision": "bf16"}, set()),  # added by fit() itself, after resolving auto
        ({"compile": True}, everything),
    ]:
        assert _changed(before, _all(_with(exp, **changes), fingerprints1)) == expected, changes


def test_study2_training_settings_retrain_exactly_what_reads_them() -> None:
    exp = load_experiment("exp2", "demo")
    before = _all(exp, fingerprints2)
    everything = {folder for fps in before.values() for folder in fps}
    adversarial = {f for f in everything if not f.endswith("-clean-s0") and "pretrain" not in f}
    vmi = {f for f in everything if "-vmifgsm-" in f}
    iterative = {f for f in adversarial if "-fgsm_rs-" not in f}  # pgd, nifgsm, vmifgsm read steps and step
    cfg = exp.cfg
    transfer = {f for f in everything if "resnet18_transfer" in f or "pretrain" in f}
    for changes, expected in [
        ({"batch_size": 16}, everything),
        ({"eps": 0.05}, adversarial),
        ({"steps": 4}, iterative),
        ({"vmi_samples": 3}, vmi),
        ({"vmi_beta": 2.0}, vmi),
        ({"val": 0.2}, {f for f in everything if "-intended-" in f}),
        ({"resnet_pretrained": replace(cfg.resnet_pretrained, seed=8)}, transfer),
        ({"adv_schedule": (Phase("adam", 1e-3, 3),)}, {f for f in adversarial if "basenet" in f}),
    ]:
        assert _changed(before, _all(_with(exp, **changes), fingerprints2)) == expected, changes
