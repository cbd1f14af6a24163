"""Pretrained weights through torchvision's weights API, with an offline-first check.

torchvision caches weights under ``$TORCH_HOME/hub/checkpoints/<file>`` and its file names carry the first hex
digits of the file's sha256 (e.g. ``mobilenet_v2-b0353104.pth``). Before use, the kit checks the cached file against
that pinned prefix, so a truncated or swapped file is caught; downloads go through torchvision with
``check_hash=True``, and loading always uses ``weights_only=True``.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import torch
import torchvision

from ..data.download import sha256_file
from ..errors import DataError

# Models the CLI's `advtransfer data fetch weights --model` offers; any other torchvision model's weights are
# fetched through this module (fetch_command says how).
CLI_MODELS = ("mobilenet_v2", "resnet18")


def _weights_enum(model: str, name: str):
    """torchvision's weights entry ``name`` of ``model`` (any torchvision classification model)."""
    return torchvision.models.get_model_weights(model)[name]


def cache_path(model: str, name: str) -> Path:
    """Where torchvision keeps (or will keep) these weights."""
    url = _weights_enum(model, name).url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def fetch_command(model: str, name: str) -> str:
    if model in CLI_MODELS:
        return f"advtransfer data fetch weights --model {model} --weights {name}"
    return f"python -c \"from advtransfer.models import weights; weights.fetch('{model}', '{name}')\""


def missing_message(model: str, name: str) -> str:
    weights = _weights_enum(model, name)
    return (f"{model} weights {name} are not in torchvision's cache: expected {cache_path(model, name)} "
            f"(download {weights.url} there, or set TORCH_HOME to a folder holding hub/checkpoints/; "
            f"`{fetch_command(model, name)}` fetches them on a machine with internet access)")


def verify_cached(model: str, name: str) -> Path:
    """The cached weight file, checked against the sha256 prefix in its name; DataError if missing or corrupt."""
    path = cache_path(model, name)
    if not path.is_file():
        raise DataError(missing_message(model, name))
    match = re.search(r"-([0-9a-f]{8,})\.", path.name)
    if match and not sha256_file(path).startswith(match.group(1)):
        raise DataError(f"{path} is corrupt (its sha256 does not start with {match.group(1)}, the hash torchvision "
                        f"pins in the file name): delete it and run `{fetch_command(model, name)}`")
    return path


def fetch(model: str, name: str, progress: bool = True) -> Path:
    """Download through torchvision (which checks the hash prefix) if missing; return the verified cache file."""
    path = cache_path(model, name)
    if not path.is_file():
        try:
            _weights_enum(model, name).get_state_dict(progress=progress, check_hash=True, weights_only=True)
        except (OSError, RuntimeError, pickle.UnpicklingError) as exc:
            # URLError is an OSError; a hash mismatch is a RuntimeError; a file that is not a weights-only pickle
            # (it would run code when loaded) is refused by torch.load(weights_only=True) with UnpicklingError
            raise DataError(f"could not download {model} weights {name}: {exc}. {missing_message(model, name)}") \
                from None
    return verify_cached(model, name)


def load_state_dict(model: str, name: str) -> dict[str, torch.Tensor]:
    path = verify_cached(model, name)
    return load_state_file(path)


def load_state_file(path: Path) -> dict[str, torch.Tensor]:
    """A state_dict from disk with ``weights_only=True``; DataError for a missing or unreadable file."""
    if not path.is_file():
        raise DataError(f"weight file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataError(f"{path} is not a readable PyTorch state_dict ({type(exc).__name__}: {exc}); "
                        "delete it and fetch it again") from None
    if not isinstance(state, dict):
        raise DataError(f"{path} does not hold a state_dict (found {type(state).__name__})")
    return state
