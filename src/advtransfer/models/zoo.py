"""Any torchvision or timm classifier as a study-2 model: names, checks, weights and construction.

Names (a setting's ``models`` in ``experiments/exp2.toml``; the key in parentheses is what cell keys, results.csv,
checkpoints and figure legends use, ``:`` and ``@`` mapped to ``-`` so it is a safe file name):

- ``torchvision:NAME`` (``torchvision-NAME``): any classification model of ``torchvision.models.list_models``,
  from scratch: built by ``torchvision.models.get_model(NAME, weights=None, num_classes=K)`` with a seeded init,
  every parameter trained (as ``resnet18_scratch``);
- ``torchvision:NAME@WEIGHTS`` (``torchvision-NAME-WEIGHTS``): pretrained through torchvision's weights API
  (``get_model_weights(NAME)[WEIGHTS]``, e.g. ``IMAGENET1K_V1``, read from torchvision's cache and checked against
  the hash in its file name, as :mod:`.weights` does for ResNet-18), its classifier head (the last ``Linear``
  producing the pretrained classes) replaced by a seeded ``Linear(in, K)`` and only that head trained (as
  ``resnet18_transfer``: BatchNorm statistics frozen in ``intended``, updating in ``as-run``); normalisation from
  the weights' own transforms;
- ``timm:NAME`` (``timm-NAME``): any model of ``timm.list_models()`` (the optional ``timm`` extra), from scratch:
  ``timm.create_model(NAME, pretrained=False, num_classes=K)``;
- ``timm:NAME@TAG`` (``timm-NAME-TAG``): timm's ``NAME.TAG`` pretrained weights, never downloaded at run time:
  ``create_model(NAME, pretrained=False)`` loads the state_dict file ``$TORCH_HOME/hub/checkpoints/timm/NAME.TAG.pth``
  (``torch.load(weights_only=True)``; save it once on a machine with internet access, see
  :func:`timm_fetch_command`), then ``reset_classifier(K)`` and only the new head trains; normalisation from the
  tag's ``pretrained_cfg``.

Every model takes [0, 1] pixels (:class:`~advtransfer.models.classifier.ImageClassifier` normalises) and resizes
them inside (:class:`Adapted`, the study's ``resnet_input_size``), so attacks stay on the 32 px grid.

A pretrained architecture whose classifier does not end in a replaceable ``Linear`` layer (SqueezeNet's is a
convolution) cannot be adapted to the task's classes and is refused with one :class:`~advtransfer.errors.ConfigError`
line when the config is read.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError, DataError
from .classifier import IMAGENET_MEAN, IMAGENET_STD
from .resnet import Resize224

PREFIXES = ("torchvision", "timm")
# NAME and WEIGHTS never contain "-" (torchvision: [a-z0-9_], weights [A-Z0-9_]; timm: [a-z0-9_], tags
# [a-z0-9_]), so "-" in the key separates the parts unambiguously and the key maps back to the name.
_SPELLED = re.compile(r"(torchvision|timm):([a-z0-9_]+)(?:@([A-Za-z0-9_]+))?")
_KEYED = re.compile(r"(torchvision|timm)-([a-z0-9_]+)(?:-([A-Za-z0-9_]+))?")
MAX_KEY = 64  # a model key is part of cell keys and file names (SAFE_NAME's length)
SYNTAX = ("'torchvision:NAME' (scratch), 'torchvision:NAME@WEIGHTS' (pretrained, only the head trained), "
          "'timm:NAME' or 'timm:NAME@TAG'")
_BN = nn.modules.batchnorm._BatchNorm
# Extra constructor arguments: no auxiliary heads (their outputs are a tuple in training mode).
_TORCHVISION_EXTRA = {"googlenet": {"aux_logits": False, "init_weights": True},
                      "inception_v3": {"aux_logits": False, "init_weights": True}}
_AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")


@dataclass(frozen=True)
class Arch:
    """A parsed model name: library, architecture, and the pretrained weights (None: from scratch)."""

    library: str  # torchvision | timm
    name: str
    weights: str | None = None

    @property
    def key(self) -> str:
        return "-".join(p for p in (self.library, self.name, self.weights) if p)

    @property
    def spelled(self) -> str:
        return f"{self.library}:{self.name}" + (f"@{self.weights}" if self.weights else "")

    @property
    def transfer(self) -> bool:
        return self.weights is not None


def parse(text: str) -> Arch | None:
    """The :class:`Arch` of ``torchvision:NAME[@WEIGHTS]``, ``timm:NAME[@TAG]`` or their keys; None otherwise."""
    if not isinstance(text, str):
        return None
    m = _SPELLED.fullmatch(text) or _KEYED.fullmatch(text)
    return Arch(m.group(1), m.group(2), m.group(3)) if m else None


def key_of(text: str) -> str:
    """The safe key of a prefixed model name; any other text unchanged."""
    arch = parse(text)
    return arch.key if arch is not None else text


# ------------------------------------------------------------------------------------------------- checks ---


def _timm():
    try:
        import timm
    except ImportError:
        raise ConfigError("timm is not installed: `pip install 'advtransfer[timm]'` (timm models are an optional "
                          "extra)") from None
    return timm


def _torchvision_weights(arch: Arch, where: str):
    import torchvision

    try:
        enum = torchvision.models.get_model_weights(arch.name)
    except (KeyError, ValueError):
        raise ConfigError(f"{where} = {arch.spelled!r}: torchvision has no weights for {arch.name!r}; use it from "
                          f"scratch ('torchvision:{arch.name}')") from None
    names = [w.name for w in enum]
    if arch.weights not in names:
        raise ConfigError(f"{where} = {arch.spelled!r}: unknown weights {arch.weights!r} for {arch.name}; valid: "
                          f"{', '.join(names)}")
    return enum[arch.weights]


def check(arch: Arch, where: str) -> None:
    """Refuse (one ConfigError line naming ``where``) an architecture the library does not have, weights it does
    not have, a key too long for a file name, and a pretrained model whose head cannot be replaced."""
    from ..config.reader import did_you_mean

    if len(arch.key) > MAX_KEY:
        raise ConfigError(f"{where} = {arch.spelled!r}: its key {arch.key!r} is longer than {MAX_KEY} characters "
                          "(it names cell and checkpoint files)")
    if arch.library == "torchvision":
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        if arch.name not in names:
            raise ConfigError(f"{where} = {arch.spelled!r}: {arch.name!r} is not a torchvision classification "
                              f"model{did_you_mean(arch.name, names) or ';'} see torchvision.models.list_models()")
        if arch.transfer:
            _torchvision_weights(arch, where)
    else:
        timm = _timm()
        if not timm.is_model(arch.name):
            raise ConfigError(f"{where} = {arch.spelled!r}: {arch.name!r} is not a timm model"
                              f"{did_you_mean(arch.name, timm.list_models()) or ';'} see timm.list_models()")
        if arch.transfer and f"{arch.name}.{arch.weights}" not in timm.list_pretrained(f"{arch.name}.*"):
            tags = [t.split(".", 1)[1] for t in timm.list_pretrained(f"{arch.name}.*")]
            raise ConfigError(f"{where} = {arch.spelled!r}: timm has no pretrained tag {arch.weights!r} for "
                              f"{arch.name}; valid: {', '.join(tags) or 'none (use it from scratch)'}")
    if arch.transfer:
        try:
            with torch.device("meta"):  # the architecture only: no memory, no init cost
                net = _pretrained_architecture(arch)
        except NotImplementedError:  # an init that meta tensors cannot run: checked when the model is built
            return
        _head(net, arch, where)


# --------------------------------------------------------------------------------------------- weights ---


def timm_weights_path(arch: Arch) -> Path:
    """Where the kit reads timm's ``NAME.TAG`` pretrained state_dict: under torch's hub cache, beside
    torchvision's weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / "timm" / f"{arch.name}.{arch.weights}.pth"


def timm_fetch_command(arch: Arch) -> str:
    return (f"python -c \"import timm, torch; torch.save(timm.create_model('{arch.name}.{arch.weights}', "
            f"pretrained=True).state_dict(), '{arch.name}.{arch.weights}.pth')\"")


def missing_weights(arch: Arch) -> str | None:
    """The one message naming the missing weight file and the command that fetches it (None: present, or the
    model needs none)."""
    from . import weights

    if not arch.transfer:
        return None
    if arch.library == "torchvision":
        try:
            weights.verify_cached(arch.name, arch.weights)
        except DataError as exc:
            return str(exc)
        return None
    path = timm_weights_path(arch)
    if path.is_file():
        return None
    return (f"timm {arch.name}.{arch.weights} weights are not in the kit's cache: expected {path} (timm never "
            f"downloads at run time here; on a machine with internet access run `{timm_fetch_command(arch)}` and "
            f"copy the file to {path}, or set TORCH_HOME to a folder holding hub/checkpoints/timm/)")


def pretrained_state(arch: Arch) -> dict[str, torch.Tensor]:
    """The pretrained state_dict (DataError with :func:`missing_weights`' message when absent)."""
    from . import weights

    message = missing_weights(arch)
    if message:
        raise DataError(message)
    if arch.library == "torchvision":
        return weights.load_state_dict(arch.name, arch.weights)
    return weights.load_state_file(timm_weights_path(arch))


def normalization(arch: Arch) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std on [0, 1] pixels: the pretrained weights' own (torchvision's transforms, timm's
    pretrained_cfg), ImageNet's for models from scratch."""
    if not arch.transfer:
        return IMAGENET_MEAN, IMAGENET_STD
    if arch.library == "torchvision":
        t = _torchvision_weights(arch, arch.spelled).transforms()
        return tuple(float(v) for v in t.mean), tuple(float(v) for v in t.std)
    cfg = _timm().get_pretrained_cfg(f"{arch.name}.{arch.weights}")
    return tuple(float(v) for v in cfg.mean), tuple(float(v) for v in cfg.std)


# ---------------------------------------------------------------------------------------------- building ---


class Adapted(nn.Module):
    """A library classifier behind a parameter-free resize layer (as study 2's ResNet-18), with BatchNorm frozen
    in inference mode under ``.train()`` when ``freeze_bn_stats`` (a pretrained backbone in ``intended``)."""

    def __init__(self, net: nn.Module, input_size: int | None, freeze_bn_stats: bool = False) -> None:
        super().__init__()
        self.resize = Resize224(input_size) if input_size is not None else nn.Identity()
        self.net = net
        self.freeze_bn_stats = freeze_bn_stats
        self.train(self.training)

    def train(self, mode: bool = True) -> Adapted:
        super().train(mode)
        if self.freeze_bn_stats:
            for module in self.modules():
                if isinstance(module, _BN):
                    module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.resize(x))


def _pretrained_architecture(arch: Arch) -> nn.Module:
    """The architecture with the pretrained weights' number of classes, randomly initialised."""
    if arch.library == "torchvision":
        import torchvision

        classes = len(_torchvision_weights(arch, arch.spelled).meta["categories"])
        return torchvision.models.get_model(arch.name, weights=None, num_classes=classes,
                                            **_TORCHVISION_EXTRA.get(arch.name, {}))
    return _timm().create_model(arch.name, pretrained=False)


def _head(net: nn.Module, arch: Arch, where: str) -> tuple[nn.Module, str, nn.Linear]:
    """(parent, attribute, layer) of the classifier head to replace; ConfigError when there is none."""
    if arch.library == "timm":
        head = net.get_classifier() if hasattr(net, "get_classifier") else None
        if isinstance(head, nn.Linear):
            return net, "", head  # replaced through timm's own reset_classifier
        kind = f"a {type(head).__name__}" if head is not None else "not reachable (no get_classifier())"
    else:
        classes = len(_torchvision_weights(arch, where).meta["categories"])
        linears = [(name, m) for name, m in net.named_modules() if isinstance(m, nn.Linear)
                   and m.out_features == classes]
        if linears:
            name, layer = linears[-1]
            parent_name, _, attribute = name.rpartition(".")
            return net.get_submodule(parent_name) if parent_name else net, attribute, layer
        weighted = [m for m in net.modules() if len(list(m.children())) == 0 and any(True for _ in m.parameters())]
        kind = f"a {type(weighted[-1]).__name__}" if weighted else "no layer with weights"
    raise ConfigError(f"{where} = {arch.spelled!r}: cannot adapt this pretrained model to the task's classes: its "
                      f"classifier's last weighted layer is {kind}, not a Linear head the grid can replace; train it "
                      f"from scratch ('{arch.library}:{arch.name}') or pick another architecture")


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """A private copy of torch's CPU RNG, seeded: initialisations inside never touch the caller's RNG."""
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def _load_backbone(net: nn.Module, state: Mapping[str, torch.Tensor], arch: Arch) -> None:
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise DataError(f"the weights are not {arch.spelled}'s: {str(exc).splitlines()[0]}") from None
    unexpected = [k for k in result.unexpected_keys if not k.startswith(_AUX_PREFIXES)]
    if result.missing_keys or unexpected:
        raise DataError(f"the weights are not {arch.spelled}'s state_dict (missing keys: "
                        f"{result.missing_keys[:3] or 'none'}, unexpected keys: {unexpected[:3] or 'none'})")


def build(arch: Arch, num_classes: int, seed: int | None, *, input_size: int | None, freeze_bn_stats: bool = False,
          state_dict: Mapping[str, torch.Tensor] | None = None) -> Adapted:
    """The model for ``arch`` with ``num_classes`` outputs, behind a resize to ``input_size`` (None: none).

    From scratch: a seeded random init (a private RNG stream: the caller's global RNG is left as it was), every
    parameter trainable. Pretrained: ``state_dict`` (default: :func:`pretrained_state`) loaded, the head replaced
    by a seeded new one, every other parameter ``requires_grad=False``, BatchNorm frozen if ``freeze_bn_stats``.
    """
    if not arch.transfer:
        with _seeded(seed):
            if arch.library == "torchvision":
                import torchvision

                net = torchvision.models.get_model(arch.name, weights=None, num_classes=num_classes,
                                                   **_TORCHVISION_EXTRA.get(arch.name, {}))
            else:
                net = _timm().create_model(arch.name, pretrained=False, num_classes=num_classes)
        return Adapted(net, input_size, freeze_bn_stats=False)
    with _seeded(seed):
        net = _pretrained_architecture(arch)
    _load_backbone(net, pretrained_state(arch) if state_dict is None else state_dict, arch)
    net.requires_grad_(False)
    parent, attribute, head = _head(net, arch, arch.spelled)
    with _seeded(seed):
        if arch.library == "timm":
            net.reset_classifier(num_classes)
        else:
            setattr(parent, attribute, nn.Linear(head.in_features, num_classes, bias=head.bias is not None))
    new_head = net.get_classifier() if arch.library == "timm" else getattr(parent, attribute)
    new_head.requires_grad_(True)
    return Adapted(net, input_size, freeze_bn_stats=freeze_bn_stats)


def head_of(model: nn.Module) -> nn.Module:
    """The trainable head of a pretrained :func:`build` model (for tests and logs)."""
    net = model.net if isinstance(model, Adapted) else model
    if hasattr(net, "get_classifier"):
        return net.get_classifier()
    trainable = [m for m in net.modules() if isinstance(m, nn.Linear) and m.weight.requires_grad]
    return trainable[-1]
