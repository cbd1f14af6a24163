"""Block transfer on MobileNetV2: what BnB, AnB-N and AnB+-N copy, freeze, re-initialise and keep.

Everything runs on a small MobileNetV2 (width 0.25, total stride 8, 32 px inputs), which keeps torchvision's
``features[0..18]`` layout, so the block mapping is the same as on the paper's full-size network.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from advtransfer.models.classifier import IMAGENET_MEAN, IMAGENET_STD, INCEPTION_MEAN, ImageClassifier
from advtransfer.models.mobilenet import COPIED_FEATURES, build_mobilenet_v2, transfer_model, wrap

WIDTH = 0.25
BASE_CLASSES = 10
TARGET_CLASSES = 7
SIZE = 32
BLOCKS = (4, 8, 12, 16)
BN_TYPES = (nn.BatchNorm2d, nn.BatchNorm1d)


pytestmark = pytest.mark.usefixtures("one_thread")


def small_net(seed: int, num_classes: int = BASE_CLASSES) -> nn.Module:
    return build_mobilenet_v2(num_classes=num_classes, width_mult=WIDTH, stride8=True, seed=seed)


def make_transfer(base: ImageClassifier, n_blocks: int | None, *, trainable_copy: bool, reinit_rest: bool = True,
                  seed: int = 1, num_classes: int = TARGET_CLASSES) -> ImageClassifier:
    return transfer_model(base, n_blocks, trainable_copy=trainable_copy, num_classes=num_classes,
                          reinit_rest=reinit_rest, width_mult=WIDTH, stride8=True, seed=seed)


@pytest.fixture(scope="module")
def base_a() -> ImageClassifier:
    """A stand-in for a trained Base A: every parameter and BatchNorm statistic moved away from its init values.

    A fresh torchvision MobileNetV2 has BN weights 1, biases 0 and running stats 0/1 everywhere, so without this a
    re-initialised layer could not be told apart from a copied one.
    """
    model = wrap(small_net(seed=0))
    gen = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, BN_TYPES):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                m.num_batches_tracked.fill_(7)
    model.eval()
    return model


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_state_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def features_params(model: ImageClassifier, start: int, stop: int | None = None) -> dict[str, torch.Tensor]:
    return dict(model.net.features[start:stop].named_parameters())


# ---------------------------------------------------------------------------------------------- block mapping


def test_copied_features_maps_blocks_to_feature_prefixes() -> None:
    assert COPIED_FEATURES == {4: 6, 8: 10, 12: 14, 16: 19}
    net = small_net(seed=0)
    assert len(net.features) == 19  # stem, 17 inverted-residual blocks, final 1x1 conv
    # N=16 copies the whole convolutional base, features[0..18].
    assert len(net.features[: COPIED_FEATURES[16]]) == len(net.features)


@pytest.mark.parametrize("stride8", [False, True])
def test_small_mobilenet_has_paper_layout(stride8: bool) -> None:
    net = build_mobilenet_v2(num_classes=5, width_mult=WIDTH, stride8=stride8, seed=0)
    assert len(net.features) == 19
    assert net.classifier[-1].out_features == 5
    size = SIZE if stride8 else 64
    out = net.eval()(torch.rand(2, 3, size, size))
    assert out.shape == (2, 5)


# ------------------------------------------------------------------------------------ intended: copy + re-init


@pytest.mark.parametrize("trainable_copy", [False, True])
@pytest.mark.parametrize("n_blocks", BLOCKS)
def test_transfer_copies_prefix_and_reinitialises_rest(base_a: ImageClassifier, n_blocks: int,
                                                      trainable_copy: bool) -> None:
    base_before = snapshot(base_a)
    model = make_transfer(base_a, n_blocks, trainable_copy=trainable_copy)
    k = COPIED_FEATURES[n_blocks]

    # Copied: every parameter and buffer (BN running statistics included) is Base A's, bit for bit.
    assert_state_equal(snapshot(model.net.features[:k]), snapshot(base_a.net.features[:k]))

    # Re-initialised: every parameter of features[k:] and of the head differs from Base A's.
    base_rest = features_params(base_a, k)
    rest = features_params(model, k)
    assert rest.keys() == base_rest.keys()
    for name, p in rest.items():
        assert not torch.equal(p, base_rest[name]), f"features[{k}:] {name} was copied"
    base_head = dict(base_a.net.classifier.named_parameters())
    for name, p in model.net.classifier.named_parameters():
        assert p.shape != base_head[name].shape or not torch.equal(p, base_head[name]), f"head {name} was copied"

    # Fresh BatchNorm statistics after the copied prefix.
    for m in model.net.features[k:].modules():
        if isinstance(m, BN_TYPES):
            assert torch.equal(m.running_mean, torch.zeros_like(m.running_mean))
            assert torch.equal(m.running_var, torch.ones_like(m.running_var))
            assert int(m.num_batches_tracked) == 0

    # A num_classes head.
    assert model.net.classifier[-1].out_features == TARGET_CLASSES
    assert model.eval()(torch.rand(2, 3, SIZE, SIZE)).shape == (2, TARGET_CLASSES)

    # Frozen exactly when the copy is not trainable; nothing beyond the copy is frozen.
    for name, p in features_params(model, 0, k).items():
        assert p.requires_grad == trainable_copy, name
    for p in rest.values():
        assert p.requires_grad
    for p in model.net.classifier.parameters():
        assert p.requires_grad

    # Base A is only read.
    assert_state_equal(snapshot(base_a), base_before)


def test_bnb_is_fresh_and_fully_trainable(base_a: ImageClassifier) -> None:
    model = make_transfer(base_a, None, trainable_copy=False)
    fresh = small_net(seed=1, num_classes=TARGET_CLASSES)
    assert_state_equal(snapshot(model.net), snapshot(fresh))  # nothing of Base A, just the seeded init
    assert all(p.requires_grad for p in model.parameters())
    assert len(model.trainable_parameters()) == len(list(model.parameters()))


def test_transfer_keeps_base_normalisation(base_a: ImageClassifier) -> None:
    model = make_transfer(base_a, 8, trainable_copy=False)
    assert torch.equal(model.mean, base_a.mean)
    assert torch.equal(model.std, base_a.std)
    inception_base = wrap(small_net(seed=0), normalization="inception")
    model = make_transfer(inception_base, 8, trainable_copy=False)
    assert torch.equal(model.mean.flatten(), torch.tensor(INCEPTION_MEAN))


# ------------------------------------------------------------------------------------------------ training


def train_steps(model: ImageClassifier, steps: int = 3, seed: int = 0, num_classes: int = TARGET_CLASSES) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.trainable_parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        x = torch.rand(8, 3, SIZE, SIZE, generator=gen)
        y = torch.randint(0, num_classes, (8,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


def bn_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: b.detach().clone() for name, b in module.named_buffers()}


@pytest.mark.parametrize("n_blocks", BLOCKS)
def test_anb_frozen_prefix_never_changes_in_training(base_a: ImageClassifier, n_blocks: int) -> None:
    model = make_transfer(base_a, n_blocks, trainable_copy=False)
    k = COPIED_FEATURES[n_blocks]
    frozen_before = snapshot(model.net.features[:k])
    rest_before = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("net.features.")
                   or int(n.split(".")[2]) >= k}
    rest_buffers_before = bn_buffers(model.net.features[k:])

    train_steps(model)

    for m in model.net.features[:k].modules():  # frozen BatchNorm stays in inference mode under model.train()
        if isinstance(m, BN_TYPES):
            assert not m.training
    for name, p in model.net.features[:k].named_parameters():
        assert not p.requires_grad, name
        assert p.grad is None, name
    # Frozen parameters and BN statistics are bit-identical after training.
    assert_state_equal(snapshot(model.net.features[:k]), frozen_before)
    # ... and the trainable rest did train.
    after = dict(model.named_parameters())
    changed = [n for n, p in rest_before.items() if not torch.equal(after[n], p)]
    assert changed
    assert not torch.equal(after["net.classifier.1.weight"], rest_before["net.classifier.1.weight"])
    if k < len(model.net.features):
        after_buffers = bn_buffers(model.net.features[k:])
        assert any(not torch.equal(after_buffers[n], b) for n, b in rest_buffers_before.items() if "running" in n)
    # Only the unfrozen parameters are handed to the optimizer.
    trainable = {id(p) for p in model.trainable_parameters()}
    assert not trainable & {id(p) for p in model.net.features[:k].parameters()}
    assert {id(p) for p in model.net.classifier.parameters()} <= trainable


def test_frozen_bn_stays_eval_across_mode_switches(base_a: ImageClassifier) -> None:
    model = make_transfer(base_a, 8, trainable_copy=False)
    k = COPIED_FEATURES[8]
    for _ in range(2):
        model.train()
        assert model.training
        assert all(not m.training for block in model.net.features[:k] for m in block.modules())
        assert all(m.training for block in model.net.features[k:] for m in block.modules())
        model.eval()
        assert not any(m.training for m in model.modules())


@pytest.mark.parametrize("n_blocks", [4, 16])
def test_anb_plus_copied_blocks_train(base_a: ImageClassifier, n_blocks: int) -> None:
    model = make_transfer(base_a, n_blocks, trainable_copy=True)
    k = COPIED_FEATURES[n_blocks]
    before = {n: p.detach().clone() for n, p in features_params(model, 0, k).items()}

    train_steps(model)

    after = features_params(model, 0, k)
    assert all(p.requires_grad for p in after.values())
    assert any(not torch.equal(after[n], p) for n, p in before.items())
    assert all(m.training for m in model.net.features[:k].modules())


# ----------------------------------------------------------------------------------- as-run: full copy of Base A


@pytest.mark.parametrize("trainable_copy", [False, True])
@pytest.mark.parametrize("n_blocks", [None, *BLOCKS])
def test_as_run_is_a_full_copy_of_base_a(base_a: ImageClassifier, n_blocks: int | None,
                                         trainable_copy: bool) -> None:
    model = make_transfer(base_a, n_blocks, trainable_copy=trainable_copy, reinit_rest=False)
    assert_state_equal(snapshot(model.net), snapshot(base_a.net))  # all parameters and BN statistics
    assert model.net.classifier[-1].out_features == BASE_CLASSES  # head size unchanged, whatever num_classes says
    x = torch.rand(2, 3, SIZE, SIZE)
    assert torch.equal(model.eval()(x), base_a.eval()(x))
    # A copy, not shared tensors: training the transfer model leaves Base A alone.
    assert all(p.data_ptr() != q.data_ptr() for p, q in zip(model.parameters(), base_a.parameters(), strict=True))


# ------------------------------------------------------------------------------------------------- seeding


def test_same_seed_same_init_different_seed_different() -> None:
    a, b, c = small_net(seed=5), small_net(seed=5), small_net(seed=6)
    assert_state_equal(snapshot(a), snapshot(b))
    differing = [n for n, p in a.named_parameters() if not torch.equal(p, dict(c.named_parameters())[n])]
    assert differing  # conv and linear weights are random; BN weights are constant by design


@pytest.mark.parametrize("n_blocks", [None, 4, 12])
def test_transfer_seed_controls_reinitialised_layers(base_a: ImageClassifier, n_blocks: int | None) -> None:
    a = make_transfer(base_a, n_blocks, trainable_copy=False, seed=3)
    b = make_transfer(base_a, n_blocks, trainable_copy=False, seed=3)
    c = make_transfer(base_a, n_blocks, trainable_copy=False, seed=4)
    assert_state_equal(snapshot(a), snapshot(b))
    assert not torch.equal(a.net.classifier[-1].weight, c.net.classifier[-1].weight)


def test_building_leaves_global_rng_alone(base_a: ImageClassifier) -> None:
    torch.manual_seed(2024)
    state = torch.get_rng_state()
    small_net(seed=11)
    assert torch.equal(torch.get_rng_state(), state)
    make_transfer(base_a, 8, trainable_copy=False, seed=11)
    make_transfer(base_a, 8, trainable_copy=True, reinit_rest=False, seed=11)
    assert torch.equal(torch.get_rng_state(), state)
    # So a seeded build is independent of what the caller drew before.
    torch.rand(100)
    assert_state_equal(snapshot(small_net(seed=11)), snapshot(small_net(seed=11)))


# ------------------------------------------------------------------------------------------- ImageClassifier


class _Recorder(nn.Module):
    """Returns a fixed linear map of its input, so what the wrapper feeds it is visible in the output."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def test_classifier_normalises_inside() -> None:
    torch.manual_seed(0)
    net = _Recorder(6)
    model = ImageClassifier(net)
    x = torch.rand(5, 3, 4, 4)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.equal(model(x), net((x - mean) / std))
    # Inception scaling is x * 2 - 1.
    inception = wrap(net, normalization="inception")
    torch.testing.assert_close(inception(x), net(x * 2 - 1), rtol=0, atol=1e-6)


def test_classifier_normalises_mobilenet() -> None:
    net = small_net(seed=0).eval()
    model = wrap(net).eval()
    x = torch.rand(3, 3, SIZE, SIZE)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    assert torch.equal(model(x), net((x - mean) / std))


def test_output_indices_select_logits() -> None:
    torch.manual_seed(0)
    net = _Recorder(20)
    indices = torch.tensor([1, 4, 5, 13, 19])
    model = ImageClassifier(net, output_indices=indices)
    x = torch.rand(4, 3, 4, 4)
    full = ImageClassifier(net)(x)
    out = model(x)
    assert out.shape == (4, 5)
    assert torch.equal(out, full[:, indices])
    # Labels 0..4 of the masked model are the logits at those indices: argmax maps back through them.
    assert torch.equal(indices[out.argmax(1)], torch.where(
        torch.isin(torch.arange(20), indices), full, torch.tensor(float("-inf"))).argmax(1))


# ------------------------------------------------------------- other torchvision architectures as Base A


def _moved(net: nn.Module) -> ImageClassifier:
    model = wrap(net)
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
        for m in model.modules():
            if isinstance(m, BN_TYPES):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=gen))
    return model.eval()


@pytest.mark.parametrize("arch, n_features", [("mobilenet_v3_small", 13), ("efficientnet_b0", 9)])
def test_other_architectures_transfer_their_first_n_feature_blocks(arch: str, n_features: int) -> None:
    from advtransfer.models.mobilenet import build_base, check_block_arch, copied_features

    base = _moved(build_base(arch, BASE_CLASSES, seed=0))
    assert len(base.net.features) == n_features and copied_features(arch, 4) == 4  # N counts `features` entries
    check_block_arch(arch, (4, 8), "t")
    anb = transfer_model(base, 4, trainable_copy=False, num_classes=TARGET_CLASSES, reinit_rest=True,
                         width_mult=1.0, stride8=False, seed=1, arch=arch)
    assert_state_equal(snapshot(anb.net.features[:4]), snapshot(base.net.features[:4]))
    fresh = build_base(arch, TARGET_CLASSES, seed=1)
    assert_state_equal(snapshot(anb.net.features[4:]), snapshot(fresh.features[4:]))  # the rest: seeded re-init
    assert anb.frozen_features == 4 and not any(p.requires_grad for p in anb.net.features[:4].parameters())
    assert all(p.requires_grad for p in anb.net.features[4:].parameters())
    assert anb.net.classifier[-1].out_features == TARGET_CLASSES
    asrun = transfer_model(base, 4, trainable_copy=True, num_classes=TARGET_CLASSES, reinit_rest=False,
                           width_mult=1.0, stride8=False, seed=1, arch=arch)
    assert_state_equal(snapshot(asrun.net), snapshot(base.net))  # as-run: a full copy, Base A's head kept
    assert asrun.eval()(torch.rand(2, 3, 32, 32)).shape == (2, BASE_CLASSES)


@pytest.mark.parametrize("arch, blocks, message", [
    ("resnet18", (4,), "block transfer copies the first N blocks of the model's `features` sequence, and resnet18 "
                       "has none (its top-level modules: conv1, bn1"),
    ("vit_b_16", (4,), "and vit_b_16 has none"),
    ("efficientnet_b0", (4, 12, 16), "blocks [12, 16] exceed its 9 feature blocks"),
    ("mobilenet_v9", (4,), "not a torchvision classification model; did you mean"),
])
def test_architectures_block_transfer_cannot_use_are_refused(arch: str, blocks: tuple[int, ...],
                                                             message: str) -> None:
    from advtransfer.errors import ConfigError
    from advtransfer.models.mobilenet import check_block_arch

    with pytest.raises(ConfigError) as info:
        check_block_arch(arch, blocks, "exp1.toml[demo].base_arch")
    text = str(info.value)
    assert text.startswith(f"exp1.toml[demo].base_arch = {arch!r}: ") and message in text
    assert len(text.splitlines()) == 1


def test_study1_config_takes_a_base_arch_and_refuses_one_without_blocks(tmp_path) -> None:
    from advtransfer.errors import ConfigError
    from advtransfer.studies import load_experiment
    from conftest import MINI_EXP1

    good = tmp_path / "good.toml"
    good.write_text(MINI_EXP1.replace("[profiles.mini]\n", '[profiles.mini]\nbase_arch = "mobilenet_v3_small"\n')
                    .replace("width_mult = 0.25\nstride8 = true\n", "").replace("blocks = [4, 16]", "blocks = [4, 8]"))
    assert load_experiment(str(good), "mini").cfg.base_arch == "mobilenet_v3_small"
    bad = tmp_path / "bad.toml"
    bad.write_text(good.read_text().replace('"mobilenet_v3_small"', '"resnet18"'))
    with pytest.raises(ConfigError, match=r"^bad.toml\[mini\].base_arch = 'resnet18': block transfer copies"):
        load_experiment(str(bad), "mini")
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(MINI_EXP1.replace("[profiles.mini]\n", '[profiles.mini]\nbase_arch = "mobilenet_v3_small"\n')
                     .replace("blocks = [4, 16]", "blocks = [4, 8]"))
    with pytest.raises(ConfigError, match="width_mult and stride8 are MobileNetV2's"):
        load_experiment(str(mixed), "mini")
