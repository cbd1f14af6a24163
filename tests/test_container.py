"""The container kit without Docker: the hashed lock files, both Dockerfiles, the entrypoint and its make wiring.

Fast, offline, no docker: the images themselves are built by users (`make docker-build`); SPEC section 7.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
LOCK = REPO / "requirements" / "lock.txt"
TEST_LOCK = REPO / "requirements" / "test-lock.txt"
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.cpu"]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
COMMANDS = ["reproduce-all", "exp1", "exp2", "figures", "demo", "test", "advtransfer", "help"]
CUDA_BASE = ("nvidia/cuda:13.0.3-cudnn-runtime-ubuntu24.04"
             "@sha256:14f6d08d1cd4a96effbfe3101d0b56326f552c199d05e4979ee0bd616df5811b")


def _lock_entries(path: Path) -> list[tuple[Requirement, list[str]]]:
    """(requirement, hashes) per entry of a pip-compile style file; continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]
    entries: list[tuple[Requirement, list[str]]] = []
    current = ""
    for line in lines:
        current += " " + line.strip().removesuffix("\\")
        if not line.rstrip().endswith("\\"):
            requirement, *options = re.split(r"\s+(?=--)", current.strip())
            hashes = [option.removeprefix("--hash=") for option in options if option.startswith("--hash=")]
            assert len(hashes) == len(options), f"{path.name}: unexpected option in {current.strip()[:80]!r}"
            entries.append((Requirement(requirement), hashes))
            current = ""
    assert not current, f"{path.name} ends inside a continued line"
    return entries


def _pins(path: Path) -> dict[str, set[str]]:
    pins: dict[str, set[str]] = {}
    for requirement, _ in _lock_entries(path):
        pins.setdefault(canonicalize_name(requirement.name), set()).add(str(requirement.specifier).removeprefix("=="))
    return pins


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


@pytest.mark.parametrize("path", [LOCK, TEST_LOCK], ids=lambda p: p.name)
def test_lock_every_entry_is_an_exact_pin_with_sha256_hashes(path: Path) -> None:
    entries = _lock_entries(path)
    assert len(entries) >= 5
    for requirement, hashes in entries:
        specifiers = list(requirement.specifier)
        assert len(specifiers) == 1 and specifiers[0].operator == "==", f"{requirement} is not name==version"
        assert hashes, f"{requirement.name} has no --hash"
        for digest in hashes:
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), f"{requirement.name}: bad hash {digest!r}"
        assert not requirement.url and not requirement.extras
    assert "make lock" in " ".join(path.read_text().splitlines()[:2]), "the header says how the file is generated"


def test_lock_pins_the_kits_versions_and_leaves_requests_out() -> None:
    pins = _pins(LOCK)
    assert pins["torch"] == {"2.14.1"}
    assert pins["torchvision"] == {"0.29.1"}
    assert pins["torchattacks"] == {"3.5.1"}
    assert pins["adversarial-robustness-toolbox"] == {"1.20.1"}
    assert "packaging" in pins
    # torchattacks declares requests~=2.25.1 but never imports it: the lock drops it (and its own dependencies).
    for dropped in ("requests", "urllib3", "idna", "charset-normalizer", "certifi"):
        assert dropped not in pins, f"{dropped} should not be in the lock"
    assert "sys_platform == 'never'" not in "\n".join(
        line for line in LOCK.read_text().splitlines() if not line.startswith("#"))


def test_lock_covers_every_pyproject_dependency_within_its_specifier() -> None:
    pins = _pins(LOCK)
    for dependency in _pyproject()["project"]["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} (pyproject.toml) is missing from {LOCK.name}"
        for version in pins[name]:
            assert requirement.specifier.contains(version, prereleases=True), f"{name}=={version} breaks {requirement}"


def test_test_lock_adds_the_test_extra_to_the_runtime_lock() -> None:
    pins, test_pins = _pins(LOCK), _pins(TEST_LOCK)
    assert not set(pins) & set(test_pins), "test-lock.txt holds only what lock.txt lacks"
    for dependency in _pyproject()["project"]["optional-dependencies"]["test"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        versions = test_pins.get(name) or pins.get(name)
        assert versions, f"{name} (the test extra) is in neither lock file"
        assert all(requirement.specifier.contains(v, prereleases=True) for v in versions), f"{name}: {versions}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_pinned_non_root_and_installs_with_hashes(path: Path) -> None:
    text = path.read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE)
    assert froms
    for image in froms:
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), f"{path.name}: FROM {image} is not pinned by digest"
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert "--require-hashes -r requirements/lock.txt" in text
    assert re.search(r"pip install .*--no-deps .*-e \.", text)
    assert re.search(r'^VOLUME \["/data", "/cache/torch", "/results"\]$', text, flags=re.MULTILINE)
    for env in ("VENV=/opt/venv", "ADVTRANSFER_DATA=/data", "TORCH_HOME=/cache/torch", "OUT=/results"):
        assert env in text
    assert "touch /opt/venv/bin/.installed" in text
    assert re.search(r'^ENTRYPOINT \[".*docker/entrypoint\.sh"\]$', text, flags=re.MULTILINE)


def test_cuda_image_uses_the_specs_base() -> None:
    assert re.search(rf"^FROM {re.escape(CUDA_BASE)}$", DOCKERFILES[0].read_text(), flags=re.MULTILINE)


def test_dockerignore_keeps_environments_and_outputs_out_of_the_build_context() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".nox", ".ci-venv", "results", "data", "**/__pycache__"} <= ignored


def _entrypoint(*args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ADVTRANSFER_") and k not in {"VENV", "OUT"}}
    return subprocess.run(["bash", str(ENTRYPOINT), *args], capture_output=True, text=True, check=False, timeout=60,
                          env={**environ, **env})


def test_entrypoint_help_lists_the_commands() -> None:
    for args in [("help",), ()]:
        result = _entrypoint(*args)
        assert result.returncode == 0, result.stderr
        for command in COMMANDS:
            assert re.search(rf"^\s+{re.escape(command)}\b", result.stdout, flags=re.MULTILINE), command


def test_entrypoint_unknown_command_is_one_clear_line_and_exit_2() -> None:
    result = _entrypoint("reproduce", "--profile", "demo")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "unknown command 'reproduce'" in lines[0]
    for command in COMMANDS:
        assert command in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (("reproduce-all", "--profile", "demo"), "make reproduce-all PROFILE=demo"),
    (("reproduce-all", "--profile=paper", "--device", "cuda"), r"make reproduce-all PROFILE=paper ARGS=--device\ cuda"),
    (("reproduce-all",), "make reproduce-all"),
    (("exp1", "--device", "cpu"), r"make exp1 ARGS=--device\ cpu"),
    (("exp2",), "make exp2"),
    (("demo",), "make demo"),
    (("figures",), "make figures"),
    (("test",), "make test"),
    (("advtransfer", "data", "check", "exp1", "--profile", "paper"),
     ".venv/bin/advtransfer data check exp1 --profile paper"),
])
def test_entrypoint_dry_run_shows_the_make_command(args: tuple[str, ...], expected: str) -> None:
    result = _entrypoint(*args, ADVTRANSFER_ENTRYPOINT_DRY_RUN="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_entrypoint_in_the_image_runs_pytest_and_the_preinstalled_cli() -> None:
    image = {"ADVTRANSFER_ENTRYPOINT_DRY_RUN": "1", "ADVTRANSFER_IN_IMAGE": "1", "VENV": "/opt/venv"}
    assert _entrypoint("test", **image).stdout.strip() == "python -m pytest -p no:cacheprovider -q"
    assert _entrypoint("test", "-x", **image).stdout.strip() == "python -m pytest -p no:cacheprovider -x"
    assert _entrypoint("advtransfer", "--help", **image).stdout.strip() == "/opt/venv/bin/advtransfer --help"


@pytest.mark.parametrize("args", [("exp1", "--profile", "demo"), ("reproduce-all", "--profile"), ("figures", "x")])
def test_entrypoint_rejects_bad_arguments_with_exit_2(args: tuple[str, ...]) -> None:
    result = _entrypoint(*args, ADVTRANSFER_ENTRYPOINT_DRY_RUN="1")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_reproduce_all_calls_the_cli_with_the_profile(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / ".installed").touch()  # newer than pyproject.toml: make sees an installed venv

    def dry_run(*variables: str) -> str:
        result = subprocess.run(["make", "-n", "reproduce-all", f"VENV={venv}", "DATA=/d", "OUT=/r", *variables],
                                cwd=REPO, capture_output=True, text=True, check=True, timeout=60)
        return " ".join(result.stdout.split())

    cli = f"{venv}/bin/advtransfer reproduce-all"
    assert dry_run("PROFILE=demo") == f"{cli} --profile demo --out /r/demo --data-root /d"
    paper = dry_run("ARGS=--device cpu")
    assert paper == f"{cli} --profile paper --out /r/paper --data-root /d --download --device cpu"
    help_text = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    for target in ("reproduce-all", "lock", "check-lock", "docker-build", "docker-run"):
        assert re.search(rf"make {target}\s", help_text), target
