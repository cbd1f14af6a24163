"""Pretrained weights: torchvision's cache location, the sha256-prefix check, safe loading, offline failures.

TORCH_HOME points at tmp_path in every test, so the real cache is never read or written, and every download is
replaced by a failure (nothing leaves the machine).
"""

from __future__ import annotations

import hashlib
import urllib.error
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torchvision

from advtransfer.errors import DataError
from advtransfer.models import weights
from httpserver import LocalFileServer

_REAL_DOWNLOAD = torch.hub.download_url_to_file  # before the no_network fixture replaces it

MODEL, NAME = "mobilenet_v2", "IMAGENET1K_V1"
FETCH_COMMAND = "advtransfer data fetch weights --model mobilenet_v2 --weights IMAGENET1K_V1"


@pytest.fixture(autouse=True)
def torch_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    return home


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any download torch.hub attempts fails as it would offline."""

    def offline(url: str, *args: object, **kwargs: object) -> None:
        raise urllib.error.URLError(f"offline test: no network for {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)


def save_state(path: Path, seed: int = 0) -> dict[str, torch.Tensor]:
    with torch.random.fork_rng(devices=[]):  # seeded without disturbing other tests' RNG
        torch.manual_seed(seed)
        state = torchvision.models.mobilenet_v2().state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return state


def sha_prefixed(directory: Path, state_seed: int = 0) -> tuple[Path, dict[str, torch.Tensor]]:
    """A saved state_dict whose file name carries its own sha256 prefix, as torchvision's names do."""
    tmp = directory / "tmp.pth"
    state = save_state(tmp, state_seed)
    prefix = hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]
    path = directory / f"mobilenet_v2-{prefix}.pth"
    tmp.rename(path)
    return path, state


def patch_cache_path(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setattr(weights, "cache_path", lambda model, name: path)


# ------------------------------------------------------------------------------------------------ cache path


def test_cache_path_follows_torch_home(torch_home: Path, tmp_path: Path) -> None:
    path = weights.cache_path(MODEL, NAME)
    assert path.is_relative_to(tmp_path)
    assert path.parent == torch_home / "hub" / "checkpoints"
    assert path.name == torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[-1]
    assert path.name.startswith("mobilenet_v2-") and path.suffix == ".pth"


def test_cache_path_distinguishes_weights() -> None:
    assert weights.cache_path(MODEL, "IMAGENET1K_V1") != weights.cache_path(MODEL, "IMAGENET1K_V2")
    assert weights.cache_path("resnet18", "IMAGENET1K_V1").name.startswith("resnet18-")


# ------------------------------------------------------------------------------------------- verify_cached


def test_missing_weights_name_file_and_fetch_command() -> None:
    expected = weights.cache_path(MODEL, NAME)
    with pytest.raises(DataError) as info:
        weights.verify_cached(MODEL, NAME)
    message = str(info.value)
    assert str(expected) in message
    assert FETCH_COMMAND in message
    with pytest.raises(DataError, match=FETCH_COMMAND):
        weights.load_state_dict(MODEL, NAME)


def test_file_not_matching_pinned_prefix_is_corrupt() -> None:
    path = weights.cache_path(MODEL, NAME)
    save_state(path)  # a real state_dict, but not the one torchvision pins in the file name
    assert not hashlib.sha256(path.read_bytes()).hexdigest().startswith(path.name.split("-")[1].split(".")[0])
    with pytest.raises(DataError, match="corrupt") as info:
        weights.verify_cached(MODEL, NAME)
    message = str(info.value)
    assert str(path) in message
    assert FETCH_COMMAND in message
    with pytest.raises(DataError, match="corrupt"):
        weights.load_state_dict(MODEL, NAME)


def test_truncated_file_is_corrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = sha_prefixed(tmp_path / "ckpt")
    path.write_bytes(path.read_bytes()[:-100])
    patch_cache_path(monkeypatch, path)
    with pytest.raises(DataError, match="corrupt"):
        weights.verify_cached(MODEL, NAME)


def test_verified_file_loads_into_torchvision_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, state = sha_prefixed(tmp_path / "ckpt")
    patch_cache_path(monkeypatch, path)

    assert weights.verify_cached(MODEL, NAME) == path
    loaded = weights.load_state_dict(MODEL, NAME)

    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(loaded, strict=True)
    assert torch.equal(model.classifier[1].weight, state["classifier.1.weight"])


# ------------------------------------------------------------------------------------------- load_state_file


class NotATensor:
    """An arbitrary class: unpickling it would run code from the file, so weights_only loading must refuse."""

    def __init__(self) -> None:
        self.payload = [1, 2, 3]


def test_load_state_file_any_path(tmp_path: Path) -> None:
    path = tmp_path / "some" / "weights.bin"  # no name convention needed
    state = save_state(path, seed=3)
    loaded = weights.load_state_file(path)
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_load_state_file_refuses_pickled_objects(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "extra": NotATensor()}, path)
    with pytest.raises(DataError) as info:
        weights.load_state_file(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "write",
    [
        lambda p: p.write_bytes(b"this is not a checkpoint\x00\x01" * 10),
        lambda p: p.write_bytes(b""),
        lambda p: torch.save(torch.zeros(3), p),
        lambda p: torch.save([torch.zeros(3)], p),
    ],
    ids=["garbage", "empty", "tensor", "list"],
)
def test_load_state_file_rejects_non_state_dicts(tmp_path: Path, write: Callable[[Path], object]) -> None:
    path = tmp_path / "bad.pth"
    write(path)
    with pytest.raises(DataError) as info:
        weights.load_state_file(path)
    assert str(path) in str(info.value)


def test_load_state_file_missing(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        weights.load_state_file(tmp_path / "nope.pth")


# ---------------------------------------------------------------------------------------------------- fetch


def test_fetch_offline_is_data_error_with_missing_message() -> None:
    with pytest.raises(DataError) as info:
        weights.fetch(MODEL, NAME, progress=False)
    message = str(info.value)
    assert str(weights.cache_path(MODEL, NAME)) in message
    assert FETCH_COMMAND in message
    assert not weights.cache_path(MODEL, NAME).exists()


@pytest.mark.parametrize("error", [urllib.error.URLError("no route to host"),
                                   RuntimeError('invalid hash value (expected "b0353104", got "deadbeef")')],
                         ids=["url-error", "hash-mismatch"])
def test_fetch_download_failure_is_data_error(monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    def fail(self: object, *args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(torchvision.models.MobileNet_V2_Weights, "get_state_dict", fail)
    with pytest.raises(DataError) as info:
        weights.fetch(MODEL, NAME, progress=False)
    assert info.value.__cause__ is None and info.value.__suppress_context__  # a message, not a traceback chain
    assert str(weights.cache_path(MODEL, NAME)) in str(info.value)
    assert FETCH_COMMAND in str(info.value)


def test_fetch_uses_verified_cache_without_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, _ = sha_prefixed(tmp_path / "ckpt")
    patch_cache_path(monkeypatch, path)

    def must_not_download(self: object, *args: object, **kwargs: object) -> None:
        raise AssertionError("fetch downloaded although a verified file is cached")

    monkeypatch.setattr(torchvision.models.MobileNet_V2_Weights, "get_state_dict", must_not_download)
    assert weights.fetch(MODEL, NAME, progress=False) == path


def test_fetch_with_corrupt_cache_reports_corrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    save_state(weights.cache_path(MODEL, NAME))
    with pytest.raises(DataError, match="corrupt"):
        weights.fetch(MODEL, NAME, progress=False)


# ------------------------------------------------------------------ real downloads from a server on 127.0.0.1 ---


def _served_weights(monkeypatch: pytest.MonkeyPatch, url: str):
    """torchvision's own weights machinery (WeightsEnum.get_state_dict -> torch.hub) pointed at ``url``: only the
    address is replaced (the network boundary); the download, its hash check and the cache are the real ones."""
    from torchvision.models._api import Weights, WeightsEnum

    class Served(WeightsEnum):
        V1 = Weights(url=url, transforms=None, meta={})

    monkeypatch.setattr(weights, "_weights_enum", lambda model, name: Served.V1)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _REAL_DOWNLOAD)


def _state_bytes(tmp_path: Path) -> tuple[bytes, dict[str, torch.Tensor]]:
    state = {"w": torch.arange(12.0).reshape(3, 4), "b": torch.ones(3)}
    torch.save(state, tmp_path / "state.pth")
    return (tmp_path / "state.pth").read_bytes(), state


def test_fetch_downloads_checks_and_loads_weights_over_http(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    payload, state = _state_bytes(tmp_path)
    name = f"tiny-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    with LocalFileServer() as server:
        _served_weights(monkeypatch, server.add(name, payload))
        path = weights.fetch(MODEL, NAME, progress=False)
    assert path == Path(torch.hub.get_dir()) / "checkpoints" / name and path.read_bytes() == payload
    loaded = weights.load_state_dict(MODEL, NAME)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], state[k]) for k in state)


def test_fetch_refuses_a_download_whose_hash_is_not_the_pinned_one(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The server sends a valid state_dict under a name pinning another hash: torchvision's check_hash refuses it
    before it reaches the cache (without the check the file would land there and be found corrupt only later)."""
    payload, _ = _state_bytes(tmp_path)
    wrong = "0" * 8 if not hashlib.sha256(payload).hexdigest().startswith("0" * 8) else "f" * 8
    with LocalFileServer() as server:
        _served_weights(monkeypatch, server.add(f"tiny-{wrong}.pth", payload))
        with pytest.raises(DataError, match=rf"^could not download {MODEL} weights {NAME}: invalid hash value "
                                            rf"\(expected \"{wrong}\", got \"[0-9a-f]{{64}}\"\)"):
            weights.fetch(MODEL, NAME, progress=False)
        assert len(server.requests) == 1
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    assert not checkpoints.exists() or list(checkpoints.iterdir()) == []  # nothing cached, no partial file


class Payload:
    """Unpickling this runs code: it touches a file (what a malicious checkpoint would do instead)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_fetch_never_unpickles_code_from_a_download(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A served file with the right hash that holds code (a pickle whose loading runs a function): torchvision
    loads the download with ``weights_only=True``, so the code never runs, and the failure is one DataError."""
    marker = tmp_path / "code-ran"
    torch.save({"w": torch.zeros(2), "x": Payload(marker)}, tmp_path / "evil.pth")
    payload = (tmp_path / "evil.pth").read_bytes()
    assert not marker.exists()
    name = f"tiny-{hashlib.sha256(payload).hexdigest()[:8]}.pth"
    with LocalFileServer() as server:
        _served_weights(monkeypatch, server.add(name, payload))
        with pytest.raises(DataError, match=rf"^could not download {MODEL} weights {NAME}: .*Weights only load"):
            weights.fetch(MODEL, NAME, progress=False)
    assert not marker.exists()


def test_load_state_file_never_runs_code_and_says_what_to_do(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    torch.save({"w": torch.zeros(2), "x": Payload(marker)}, path)
    with pytest.raises(DataError) as info:
        weights.load_state_file(path)
    assert not marker.exists()
    message = str(info.value)
    assert message.startswith(f"{path} is not a readable PyTorch state_dict (UnpicklingError: ")
    assert message.endswith("; delete it and fetch it again")


@pytest.mark.parametrize("value, found", [(torch.zeros(3), "Tensor"), ([torch.zeros(3)], "list")])
def test_a_file_without_a_state_dict_names_what_it_holds(tmp_path: Path, value: object, found: str) -> None:
    path = tmp_path / "bad.pth"
    torch.save(value, path)
    with pytest.raises(DataError) as info:
        weights.load_state_file(path)
    assert str(info.value) == f"{path} does not hold a state_dict (found {found})"
