"""Where a result came from: code version, library versions, device, settings."""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import torch

_PACKAGES = ("torch", "torchvision", "torchattacks", "adversarial-robustness-toolbox", "numpy", "advtransfer")

# Written by docker/Dockerfile*: what apt installed in the image (`dpkg-query -W`, one `name=version arch` a line),
# and the commit the image was built from (the GIT_COMMIT build argument, also the image's revision label).
IMAGE_PACKAGES_FILE = "/opt/advtransfer/apt-packages.txt"
IMAGE_PACKAGES_ENV = "ADVTRANSFER_IMAGE_PACKAGES"  # another path for that file (tests)
IMAGE_REVISION_ENV = "ADVTRANSFER_IMAGE_REVISION"


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@lru_cache(maxsize=1)
def git_state() -> dict[str, object]:
    """Commit and dirty flag of the checkout holding this package (None outside a git checkout)."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def image_packages() -> dict[str, object] | None:
    """The image's apt package list as path, sha256 (16 hex digits: enough to tell two lists apart) and line
    count; None outside an image (no such file). Read on every call: it is a few kilobytes."""
    path = Path(os.environ.get(IMAGE_PACKAGES_ENV) or IMAGE_PACKAGES_FILE)
    try:
        data = path.read_bytes()
    except OSError:
        return None
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest()[:16],
            "packages": sum(1 for line in data.splitlines() if line.strip())}


def image_revision() -> str | None:
    """The commit an image was built from (its ``org.opencontainers.image.revision`` label); None outside one."""
    return os.environ.get(IMAGE_REVISION_ENV) or None


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def cpu_kernels() -> dict[str, object]:
    """What decides CPU float results besides the code and the seed (README, "Determinism"): the processor, the
    instruction set torch's kernels dispatch to (AVX2, AVX512, ...), the thread count (recorded as torch_threads)
    and the oneDNN / MKL builds inside torch. Same values, same numbers bit for bit; any differs, small differences
    are expected."""
    import re

    model = None
    try:
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), None)
    except OSError:
        pass
    config = torch.__config__.show()
    onednn = re.search(r"MKL-DNN (v[\d.]+)", config)
    mkl = re.search(r"Math Kernel Library Version ([\w.-]+)", config)
    return {"model": model or platform.processor() or platform.machine(),
            "capability": torch.backends.cpu.get_cpu_capability(),
            "onednn": onednn.group(1) if onednn else None, "mkl": mkl.group(1) if mkl else None}


def collect(device: torch.device, training_precision: str | None = None) -> dict[str, object]:
    return {
        "training_precision": training_precision,
        "git": git_state(),
        "python": platform.python_version(),
        "versions": {p: _version(p) for p in _PACKAGES},
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "device": str(device),
        "device_name": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "cpu": cpu_kernels(),
        "platform": platform.platform(),
        "image_packages": image_packages(),
        "image_revision": image_revision(),
    }
