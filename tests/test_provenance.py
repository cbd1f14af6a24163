"""Provenance holds the values that decide a result, not only their keys: the commit and dirty flag of a real git
checkout, the library versions installed, the thread count and the CPU kernels in use."""

from __future__ import annotations

import shutil
import subprocess
from importlib import metadata
from pathlib import Path

import pytest
import torch

from advtransfer import provenance


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_git_state_is_the_checkouts_commit_and_dirty_flag(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A package inside a throwaway checkout: provenance reads the repository two levels above its own file.
    repo = tmp_path / "repo"
    pkg = repo / "src" / "advtransfer"
    pkg.mkdir(parents=True)
    (pkg / "provenance.py").write_text("# stand-in\n")
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", ".")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "x")
    monkeypatch.setattr(provenance, "__file__", str(pkg / "provenance.py"))
    provenance.git_state.cache_clear()
    try:
        assert provenance.git_state() == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": False}
        (pkg / "provenance.py").write_text("# changed\n")
        provenance.git_state.cache_clear()
        assert provenance.git_state() == {"commit": _git(repo, "rev-parse", "HEAD"), "dirty": True}
        assert len(provenance.git_state()["commit"]) == 40
    finally:
        monkeypatch.undo()
        provenance.git_state.cache_clear()


def test_collect_records_the_versions_threads_and_kernels_in_use() -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        info = provenance.collect(torch.device("cpu"), "fp32")
    finally:
        torch.set_num_threads(threads)
    assert info["torch_threads"] == 1 and info["training_precision"] == "fp32"
    assert info["versions"]["torch"] == metadata.version("torch")
    assert info["versions"]["torchattacks"] == metadata.version("torchattacks")
    assert info["versions"]["adversarial-robustness-toolbox"] == metadata.version("adversarial-robustness-toolbox")
    assert info["device"] == "cpu" and info["cuda"] == torch.version.cuda
    cpu = info["cpu"]
    assert cpu["capability"] == torch.backends.cpu.get_cpu_capability()
    assert cpu["onednn"] is None or (cpu["onednn"].startswith("v") and cpu["onednn"] in torch.__config__.show())
    assert cpu["model"]
