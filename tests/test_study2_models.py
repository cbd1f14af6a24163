"""Study 2's models: BaseNet (CIFAR-10 / CIFAR-100 variants) and ResNet-18 transfer / scratch.

Contract checked here: architectures and exact parameter counts from SPEC section 3; "transfer" trains only ``fc``
and, with ``freeze_bn_stats=True``, never moves a BatchNorm statistic (the as-run ``False`` does, as the original
did); seeded init is deterministic and leaves the global RNG alone; the resize layer keeps attacks on 32x32
pixels; the as-run clamp of normalised tensors is reproduced and quantified, and absent from the intended path.
No downloads: the "ImageNet weights" are a seeded random ResNet-18 state_dict.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from advtransfer.errors import DataError
from advtransfer.models.basenet import basenet
from advtransfer.models.classifier import IMAGENET_MEAN, IMAGENET_STD, ImageClassifier
from advtransfer.models.resnet import (
    Resize224,
    ResNet18,
    asrun_attack_input,
    build_resnet18,
    clamp_defect,
    fraction_destroyed,
    parameter_count,
    resnet18_scratch,
    resnet18_transfer,
    trainable_parameter_count,
)

BN_TYPES = (nn.BatchNorm2d, nn.BatchNorm1d)


@pytest.fixture(scope="module", autouse=True)
def _two_threads() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(min(2, threads))
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    """Stand-in for the IMAGENET1K_V1 weights: a seeded torchvision resnet18 (1000 classes) whose BatchNorm
    weights and running statistics are moved off their init values, so copied values are recognisable."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        net = torchvision.models.resnet18()
    gen = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, BN_TYPES):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
                m.num_batches_tracked.fill_(1000)
    return {k: v.clone() for k, v in net.state_dict().items()}


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def bn_buffers_of(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.endswith(("running_mean", "running_var", "num_batches_tracked"))}


def bn_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return bn_buffers_of(snapshot(module))


def sgd_steps(model: nn.Module, steps: int = 3, batch: int = 4, size: int = 32, num_classes: int = 10) -> None:
    """A few SGD steps as in the original (lr 1e-3, momentum 0.9, no weight decay) in train mode; the optimizer
    gets *all* parameters, so frozen ones are only protected by requires_grad=False."""
    gen = torch.Generator().manual_seed(0)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=0.0)
    for _ in range(steps):
        x = torch.rand(batch, 3, size, size, generator=gen)
        y = torch.randint(0, num_classes, (batch,), generator=gen)
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()


# ------------------------------------------------------------------------------------------------------ BaseNet

def linear_params(i: int, o: int) -> int:
    return i * o + o


def conv_params(i: int, o: int, k: int) -> int:
    return i * o * k * k + o


def test_basenet_cifar10_architecture_and_exact_parameter_count() -> None:
    net = basenet(10, seed=0)
    assert conv_params(3, 6, 5) == 456 and conv_params(6, 16, 5) == 2416
    assert linear_params(400, 120) == 48120 and linear_params(120, 84) == 10164 and linear_params(84, 10) == 850
    assert parameter_count(net) == 62006 == trainable_parameter_count(net)

    feats = list(net.features)
    assert [type(m) for m in feats] == [nn.Conv2d, nn.ReLU, nn.MaxPool2d] * 2
    assert (feats[0].in_channels, feats[0].out_channels, feats[0].kernel_size) == (3, 6, (5, 5))
    assert (feats[3].in_channels, feats[3].out_channels, feats[3].kernel_size) == (6, 16, (5, 5))
    assert all(m.kernel_size == 2 and m.stride == 2 for m in feats if isinstance(m, nn.MaxPool2d))
    linears = [m for m in net.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 120), (120, 84), (84, 10)]
    assert [type(m) for m in net.classifier] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]

    x = torch.rand(5, 3, 32, 32)
    shapes = []
    h = x
    for m in feats:
        h = m(h)
        shapes.append(tuple(h.shape[1:]))
    assert shapes == [(6, 28, 28), (6, 28, 28), (6, 14, 14), (16, 10, 10), (16, 10, 10), (16, 5, 5)]
    assert net(x).shape == (5, 10)


def test_basenet_cifar100_variant_exact_parameter_count() -> None:
    net = basenet(100, seed=0)
    expected = (456 + 2416 + linear_params(400, 1024) + linear_params(1024, 512) + linear_params(512, 100))
    assert expected == 456 + 2416 + 410624 + 524800 + 51300 == 989596
    assert parameter_count(net) == expected
    linears = [m for m in net.classifier if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(400, 1024), (1024, 512), (512, 100)]
    assert net(torch.rand(3, 3, 32, 32)).shape == (3, 100)


# ----------------------------------------------------------------------------------------------------- ResNet-18

def test_resnet18_is_torchvisions_resnet18() -> None:
    net = build_resnet18(1000, seed=5)
    assert parameter_count(net) == 11_689_512 == parameter_count(torchvision.models.resnet18())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        ref = torchvision.models.resnet18(num_classes=1000)
    a, b = net.state_dict(), ref.state_dict()
    assert list(a) == list(b)  # the resize layer and the BN flag add no keys: torchvision weights load as they are
    assert all(torch.equal(a[k], b[k]) for k in a)  # same init draws as torchvision.models.resnet18
    with_resize = build_resnet18(1000, seed=5, input_size=224)
    assert list(with_resize.state_dict()) == list(b)


def test_transfer_trains_only_fc_and_copies_everything_else(imagenet_state: dict[str, torch.Tensor]) -> None:
    num_classes = 10
    model = resnet18_transfer(num_classes, imagenet_state, seed=0, freeze_bn_stats=True)
    assert trainable_parameter_count(model) == 512 * num_classes + num_classes
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["fc.weight", "fc.bias"]
    assert (model.fc.in_features, model.fc.out_features) == (512, num_classes)
    state = model.state_dict()
    for key, value in imagenet_state.items():
        if not key.startswith("fc."):
            assert torch.equal(state[key], value), key


@pytest.mark.parametrize("freeze_bn_stats", [True, False])
def test_transfer_frozen_params_unchanged_and_bn_stats_per_protocol(
        imagenet_state: dict[str, torch.Tensor], freeze_bn_stats: bool) -> None:
    model = resnet18_transfer(10, imagenet_state, seed=0, freeze_bn_stats=freeze_bn_stats)
    before = snapshot(model)
    sgd_steps(model)
    after = snapshot(model)

    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert len(frozen) == len(list(model.parameters())) - 2
    for name in frozen:
        assert torch.equal(before[name], after[name]), name
    assert not torch.equal(before["fc.weight"], after["fc.weight"])  # the head did train

    bn_before, bn_after = bn_buffers_of(before), bn_buffers_of(after)
    changed = [k for k in bn_before if not torch.equal(bn_before[k], bn_after[k])]
    if freeze_bn_stats:  # intended: the backbone is truly fixed
        assert changed == []
        assert all(not m.training for m in model.modules() if isinstance(m, BN_TYPES))
        assert model.training  # the model itself is in train mode; only BN is held in inference mode
    else:  # as-run: model.train() lets BatchNorm update its running statistics although no gradient reaches it
        assert any(k.endswith("running_mean") for k in changed)
        assert any(k.endswith("num_batches_tracked") for k in changed)


def test_frozen_bn_composes_with_image_classifier(imagenet_state: dict[str, torch.Tensor]) -> None:
    model = ImageClassifier(resnet18_transfer(10, imagenet_state, seed=0, freeze_bn_stats=True))
    before = bn_buffers(model)
    model.train()  # ImageClassifier.train -> ResNet18.train: BN stays in inference mode
    assert all(not m.training for m in model.modules() if isinstance(m, BN_TYPES))
    sgd_steps(model, steps=1)
    after = bn_buffers(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    model.eval()
    model.train()
    assert model.training and model.net.training
    assert all(not m.training for m in model.modules() if isinstance(m, BN_TYPES))


def test_transfer_rejects_a_state_dict_that_is_not_resnet18(imagenet_state: dict[str, torch.Tensor]) -> None:
    prefixed = {f"net.{k}": v for k, v in imagenet_state.items()}
    with pytest.raises(DataError, match="not a torchvision ResNet-18"):
        resnet18_transfer(10, prefixed, seed=0, freeze_bn_stats=True)
    wrong_shape = dict(imagenet_state, **{"conv1.weight": torch.zeros(8, 3, 7, 7)})
    with pytest.raises(DataError, match="not a torchvision ResNet-18"):
        resnet18_transfer(10, wrong_shape, seed=0, freeze_bn_stats=True)


def test_scratch_everything_trainable_and_bn_normal() -> None:
    model = resnet18_scratch(100, seed=0)
    assert isinstance(model, ResNet18)
    assert trainable_parameter_count(model) == parameter_count(model) == 11_689_512 - 1000 * 513 + 100 * 513
    before = bn_buffers(model)
    sgd_steps(model, steps=1, num_classes=100)
    after = bn_buffers(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    model.eval()
    assert all(not m.training for m in model.modules())


def test_seeded_init_deterministic_and_global_rng_untouched(imagenet_state: dict[str, torch.Tensor]) -> None:
    torch.manual_seed(2024)
    rng_before = torch.get_rng_state()
    a, b, c = resnet18_scratch(10, seed=3), resnet18_scratch(10, seed=3), resnet18_scratch(10, seed=4)
    t1 = resnet18_transfer(10, imagenet_state, seed=3, freeze_bn_stats=False)
    t2 = resnet18_transfer(10, imagenet_state, seed=3, freeze_bn_stats=True)
    t3 = resnet18_transfer(10, imagenet_state, seed=4, freeze_bn_stats=True)
    assert torch.equal(torch.get_rng_state(), rng_before)

    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["conv1.weight"], sc["conv1.weight"])
    # The new head depends on the seed only (not on the protocol flag or the backbone weights).
    assert torch.equal(t1.fc.weight, t2.fc.weight) and torch.equal(t1.fc.bias, t2.fc.bias)
    assert not torch.equal(t1.fc.weight, t3.fc.weight)
    assert not torch.equal(t1.fc.weight, imagenet_state["fc.weight"][:10])


def test_resize224_inside_model_keeps_attacks_on_32px_pixels(imagenet_state: dict[str, torch.Tensor]) -> None:
    resize = Resize224()
    x = torch.rand(2, 3, 32, 32)
    up = resize(x)
    assert up.shape == (2, 3, 224, 224)
    ref = F.interpolate(x, size=224, mode="bilinear", align_corners=False, antialias=False)
    assert torch.equal(up, ref)
    assert list(resize.parameters()) == [] and resize.state_dict() == {}
    assert Resize224(64)(x).shape == (2, 3, 64, 64)

    # One full-size pass (ResNet-18 at 224 px on CPU): batch 2, forward and input gradient.
    model = ImageClassifier(resnet18_transfer(10, imagenet_state, seed=0, freeze_bn_stats=True, input_size=224))
    model.eval()
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    logits = model(x)
    assert logits.shape == (2, 10)
    F.cross_entropy(logits, torch.tensor([1, 2])).backward()
    assert x.grad is not None and x.grad.shape == (2, 3, 32, 32)
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ as-run normalisation defect

def test_clamp_defect_destroys_below_mean_pixels() -> None:
    grey = torch.full((1, 3, 8, 8), 0.45)  # mid-grey, below the ImageNet mean in R and G
    z = asrun_attack_input(grey, IMAGENET_MEAN, IMAGENET_STD)
    negative_channels = [c for c in range(3) if (z[0, c] < 0).all()]
    assert negative_channels == [0, 1]  # (0.45 - 0.485) / 0.229 < 0, (0.45 - 0.456) / 0.224 < 0
    clamped = clamp_defect(z)
    assert (clamped[0, negative_channels] == 0).all()  # information below the mean is gone
    assert torch.equal(clamped[0, 2], z[0, 2])  # blue (0.45 > 0.406, < mean + std) survives
    assert fraction_destroyed(grey) == pytest.approx(2 / 3)

    two_greys = torch.cat([torch.full((1, 3, 4, 4), 0.1), torch.full((1, 3, 4, 4), 0.3)])
    collapsed = clamp_defect(asrun_attack_input(two_greys))
    assert torch.equal(collapsed[0], collapsed[1])  # two different dark images become the same tensor


def test_fraction_destroyed_of_uniform_images_is_large() -> None:
    x = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    frac = fraction_destroyed(x)
    # Exact expectation: per channel P(x < mean) + P(x > mean + std), averaged over the channels.
    expected = sum(m + (1 - m - s) for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)) / 3
    print(f"fraction of normalised values outside [0, 1] for uniform [0, 1] images: {frac:.4f} "
          f"(expected {expected:.4f})")
    assert expected == pytest.approx(0.774, abs=1e-4)
    assert frac == pytest.approx(expected, abs=0.01)
    assert fraction_destroyed(x[0]) == pytest.approx(expected, abs=0.03)  # (C, H, W) works too


class _Probe(nn.Module):
    """Records what the wrapped network is given."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: torch.Tensor | None = None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.seen = z.detach().clone()
        return z.flatten(1)[:, :10]


def test_intended_path_has_no_clamp_and_asrun_path_reproduces_it() -> None:
    """The pipeline's attack (study 2's ``craft``): intended attacks pixels, the net sees the unclamped normalised
    input; as-run attacks the normalised tensor and the net sees it clamped to [0, 1] (the original's defect)."""
    from advtransfer.attacks import AttackSpec
    from advtransfer.studies.cifar_at.cell import craft

    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    y = torch.zeros(4, dtype=torch.long)
    probe = _Probe()
    model = ImageClassifier(probe, IMAGENET_MEAN, IMAGENET_STD)
    z = asrun_attack_input(x)
    spec = AttackSpec.fgsm(1e-6)

    adv = craft(model, x, y, spec, "native", torch.Generator(), defective=False)
    model(adv)
    assert (adv - x).abs().max() <= 1e-6 + 1e-7
    assert torch.allclose(probe.seen, z, atol=1e-4)
    assert (probe.seen < 0).any() and (probe.seen > 1).any()  # passed through unclamped

    adv = craft(model, x, y, spec, "native", torch.Generator(), defective=True)
    model(adv)
    assert probe.seen.min() >= -1e-5 and probe.seen.max() <= 1 + 1e-5  # the clamp of normalised values
    assert torch.allclose(probe.seen, clamp_defect(z), atol=1e-4)
    assert not torch.allclose(probe.seen, z, atol=1e-2)
