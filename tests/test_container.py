"""The container kit without Docker: the hashed lock files, both Dockerfiles and their pins, the entrypoint, the
image check script (tools/image_check.sh) and their make wiring, and the image's record in the provenance.

Fast, offline, no docker: the images themselves are built by `make image-check` (with docker or podman) and by
users (`make docker-build`); SPEC section 7.
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
IMAGE_CHECK = REPO / "tools" / "image_check.sh"
STANDIN = REPO / "tools" / "standin_base.sh"
RELEASE_PINS = REPO / "tests" / "fixtures" / "apt-release-pins.txt"
# Both images start from the same slim Python base (docker/Dockerfile says why the CUDA one needs no nvidia/cuda).
SLIM_BASE = ("python:3.11-slim-bookworm"
             "@sha256:a36c24f9cbdf4fd0f52d67f0823eeac19c2028c637cecc392d97f980d4fec56b")
NVIDIA_CUDA_BASE = ("nvidia/cuda:13.0.3-cudnn-runtime-ubuntu24.04"
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


# `make lock` with a stand-in for uv (the resolver talks to PyPI): what tools/lock.sh asks it and what it keeps.
_FAKE_UV = r"""#!/usr/bin/env bash
# python -m uv ...: answers --version, records every compile call and writes the canned resolution for it
shift 2
if [ "$1" = --version ]; then echo "uv 0.13.9"; exit 0; fi
echo "$*" >> "$FAKE_UV_LOG"
out=""; prev=""
for arg in "$@"; do [ "$prev" = -o ] && out="$arg"; prev="$arg"; done
case " $* " in *" --extra test "*) cp "$FAKE_UV_DIR/test.txt" "$out" ;; *) cp "$FAKE_UV_DIR/runtime.txt" "$out" ;; esac
"""
_RUNTIME_RESOLUTION = """numpy==2.1.0 \\
    --hash=sha256:aaaa
    # via advtransfer
requests==2.25.1 ; sys_platform == 'never' \\
    --hash=sha256:bbbb
    # via torchattacks
idna==2.10 ; sys_platform == 'never' \\
    --hash=sha256:cccc
torch==2.14.1 ; python_full_version >= '3.11' \\
    --hash=sha256:dddd \\
    --hash=sha256:eeee
"""
_TEST_RESOLUTION = """numpy==2.1.0 \\
    --hash=sha256:aaaa
pytest==8.3.0 \\
    --hash=sha256:ffff
    # via advtransfer
requests==2.25.1 ; sys_platform == 'never' \\
    --hash=sha256:bbbb
torch==2.14.1 ; python_full_version >= '3.11' \\
    --hash=sha256:dddd \\
    --hash=sha256:eeee
"""


def test_make_lock_asks_uv_for_a_hashed_universal_lock_and_drops_the_never_entries(tmp_path: Path) -> None:
    """`make lock` (tools/lock.sh) run in a copy of the kit, uv replaced by a recorder with a canned resolution:
    both compile calls carry the hashing, universal and Python-version options and the overrides; lock.txt keeps
    every entry but those marked sys_platform == 'never' (requests and its dependencies, continuation lines
    included); test-lock.txt keeps only what lock.txt lacks; both start with how they were made."""
    kit = tmp_path / "kit"
    for name in ("Makefile", "pyproject.toml", "tools/lock.sh", "requirements/lock.in", "requirements/overrides.txt"):
        (kit / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, kit / name)
    fake = tmp_path / "uv"
    (fake / "bin").mkdir(parents=True)
    (fake / "bin" / "python").write_text(_FAKE_UV)
    (fake / "bin" / "python").chmod(0o755)
    (fake / "runtime.txt").write_text(_RUNTIME_RESOLUTION)
    (fake / "test.txt").write_text(_TEST_RESOLUTION)
    log = tmp_path / "uv.log"
    env = {**os.environ, "LOCK_TOOLS_VENV": str(fake), "FAKE_UV_DIR": str(fake), "FAKE_UV_LOG": str(log)}
    done = subprocess.run(["make", "-s", "lock"], cwd=kit, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("wrote requirements/lock.txt (2 packages) and requirements/test-lock.txt "
                                        "(1 packages)")
    runtime_call, test_call = log.read_text().splitlines()
    for call in (runtime_call, test_call):
        for option in ("pip compile --no-config --default-index https://pypi.org/simple --universal",
                       "--python-version 3.11 --generate-hashes", "--overrides requirements/overrides.txt",
                       "pyproject.toml requirements/lock.in"):
            assert option in call, (option, call)
    assert "--extra" not in runtime_call and "--extra test" in test_call
    assert "--constraints requirements/lock.txt" in test_call

    lock = (kit / "requirements" / "lock.txt").read_text()
    header = [line for line in lock.splitlines() if line.startswith("#")]
    assert "make lock" in header[0] and "uv 0.13.9" in "\n".join(header)
    assert [line for line in lock.splitlines() if not line.startswith("#")] == [
        "numpy==2.1.0 \\", "    --hash=sha256:aaaa", "    # via advtransfer",
        "torch==2.14.1 ; python_full_version >= '3.11' \\", "    --hash=sha256:dddd \\", "    --hash=sha256:eeee"]
    test_lock = (kit / "requirements" / "test-lock.txt").read_text()
    assert [line for line in test_lock.splitlines() if not line.startswith("#")] == [
        "pytest==8.3.0 \\", "    --hash=sha256:ffff", "    # via advtransfer"]
    assert "make lock" in test_lock.splitlines()[0]


def test_make_check_lock_installs_with_hashes_into_a_fresh_venv() -> None:
    """`make check-lock` runs tools/check_lock.sh, which installs both lock files with --require-hashes and the
    kit without dependencies into a throwaway venv, then pip check and the fast tests (the install itself is
    5.5 GB, run by hand: README "Containers and the lock file")."""
    dry = subprocess.run(["make", "-n", "check-lock"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dry.returncode == 0 and dry.stdout.strip() == "bash tools/check_lock.sh python3"
    script = (REPO / "tools" / "check_lock.sh").read_text()
    for needed in ('--require-hashes -r requirements/lock.txt', '--require-hashes -r requirements/test-lock.txt',
                   'install --disable-pip-version-check -q --no-deps', '-m pip check', '-m "not slow"'):
        assert needed in script, needed


def _bases(text: str) -> list[str]:
    """The images of every FROM, with ``${ARG}`` replaced by the ARG's default (what a plain build uses)."""
    defaults = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, flags=re.MULTILINE))
    froms = re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE | re.IGNORECASE)
    return [re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), image) for image in froms]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_pinned_non_root_and_installs_with_hashes(path: Path) -> None:
    text = path.read_text()
    froms = _bases(text)
    assert froms
    for image in froms:
        assert re.search(r"@sha256:[0-9a-f]{64}$", image), f"{path.name}: FROM {image} is not pinned by digest"
    users = re.findall(r"^USER\s+(\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    assert "useradd --create-home --uid 10001" in text and users[-1] == "10001:10001"  # tools/image_check.sh: uid
    assert "--require-hashes -r requirements/lock.txt" in text
    assert re.search(r"pip install .*--no-deps .*-e \.", text)
    assert re.search(r'^VOLUME \["/data", "/cache/torch", "/results"\]$', text, flags=re.MULTILINE)
    for env in ("VENV=/opt/venv", "ADVTRANSFER_DATA=/data", "TORCH_HOME=/cache/torch", "OUT=/results"):
        assert env in text
    assert "touch /opt/venv/bin/.installed" in text
    assert re.search(r'^ENTRYPOINT \[".*docker/entrypoint\.sh"\]$', text, flags=re.MULTILINE)


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_base_is_an_arg_defaulting_to_the_pinned_digest(path: Path) -> None:
    """`--build-arg BASE=...` (tools/image_check.sh --base/--standin) swaps the base; a plain build gets the pin."""
    text = path.read_text()
    assert re.search(rf"^ARG BASE={re.escape(SLIM_BASE)}$", text, flags=re.MULTILINE)
    assert re.findall(r"^FROM\s+(\S+)", text, flags=re.MULTILINE) == ["${BASE}"]
    assert text.index("ARG BASE=") < text.index("FROM ${BASE}")


def test_cuda_image_is_the_slim_base_plus_the_nvidia_runtime_settings() -> None:
    """The decision written in docker/Dockerfile: torch's wheels bring CUDA and cuDNN, so no nvidia/cuda base; the
    container toolkit's variables that nvidia/cuda would set are set here, and the alternative base is named."""
    cuda, cpu = (p.read_text() for p in DOCKERFILES)
    for env in ("NVIDIA_VISIBLE_DEVICES=all", "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
                'NVIDIA_REQUIRE_CUDA="cuda>=13.0"'):
        assert env in cuda and env not in cpu
    assert NVIDIA_CUDA_BASE in cuda  # the documented alternative for hosts that need cuda-compat
    assert "LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4" in cpu


# ------------------------------------------------------------------------------------------------- apt pins ---

# Version forms that only an update pocket holds. Debian: +debNuM / ~debNuM (a stable or security update; a point
# release folds them into the release suite, but the next update replaces them there too, one version per suite).
# Ubuntu: an SRU or security upload appends to the release's revision (0ubuntu2 -> 0ubuntu2.1, build2 -> build2.1,
# -1 -> -1ubuntu0.1, or ~24.04.1 for a backport); the release pocket of an Ubuntu release is frozen at release.
UPDATE_FORMS = (r"[+~]deb\d+u\d+", r"ubuntu\d+\.\d", r"ubuntu0\b", r"build\d+\.\d", r"~\d\d\.\d\d")
SUITES = {"bookworm": "bookworm", "trixie": "trixie", "ubuntu24.04": "noble", "noble": "noble", "jammy": "jammy"}


def _apt_pins(text: str) -> dict[str, str]:
    """package -> version of every `name=version` argument of `apt-get install` (continued lines joined)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    pins: dict[str, str] = {}
    for command in re.findall(r"apt-get install ([^&;\n]*)", joined):
        for word in command.split():
            if not word.startswith("-"):
                name, sep, version = word.partition("=")
                assert sep, f"apt package {word} is not pinned (name=version): pin it or drop it"
                pins[name] = version
    return pins


def _release_pins() -> set[tuple[str, str, str]]:
    lines = [line.split() for line in RELEASE_PINS.read_text().splitlines() if line.strip() and line[0] != "#"]
    assert all(len(fields) == 3 for fields in lines), RELEASE_PINS.name
    return {tuple(fields) for fields in lines}


def _update_only(version: str) -> bool:
    return any(re.search(form, version) for form in UPDATE_FORMS)


@pytest.mark.parametrize(("version", "update_only"), [
    ("3.12.3-0ubuntu2.1", True),  # noble-updates' python3-venv, the pin that would have rotted
    ("3.12.3-1ubuntu0.17", True), ("2.10-1build1.1", True), ("1.2-3~24.04.1", True),
    ("3.11.2-6+deb12u8", True), ("20250419~deb12u2", True),
    ("4.3-4.1build2", False), ("3.12.3-0ubuntu1", False), ("4.3-4.1", False), ("2.10-1", False),
    ("3.11.2-1+b1", False),  # a binNMU (+bN) is a release-suite rebuild, not an update
])
def test_update_pocket_version_forms(version: str, update_only: bool) -> None:
    assert _update_only(version) is update_only


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_no_apt_pin_that_only_an_updates_or_security_pocket_holds(path: Path) -> None:
    """The rule, checkable offline: every exact apt pin (a) has a version of the form a release suite holds (not a
    stable/security update: ``+debNuM``, ``~debNuM``; not an Ubuntu SRU or security upload: ``ubuntuN.M``,
    ``ubuntu0``, ``buildN.M``, ``~NN.NN``), since an update pocket keeps only its newest version and such a pin
    stops building at the next update there; and (b) is listed, for the Debian/Ubuntu release of the image's base,
    in tests/fixtures/apt-release-pins.txt, which records each pin as the release suite's own index lists it,
    checked against the archive when the pin was written (the fixture's header gives the command). A new pin
    therefore means looking it up in the release suite, never copying what `apt-cache policy` shows as installed.
    What the pins do not fix (dependencies, the base's own packages) is recorded in the image instead (dpkg-query,
    test below)."""
    text = path.read_text()
    (base,) = _bases(text)
    suite = next((SUITES[k] for k in SUITES if re.search(rf"[:\-]{re.escape(k)}\b", base)), None)
    assert suite, f"{path.name}: cannot tell the release of base {base}"
    pins = _apt_pins(text)
    assert pins, f"{path.name} installs no apt package? (the test would check nothing)"
    recorded = _release_pins()
    for name, version in pins.items():
        assert not _update_only(version), f"{path.name}: {name}={version} has the form of an update-pocket version"
        assert (suite, name, version) in recorded, \
            f"{path.name}: {name}={version} is not recorded as held by {suite}'s release suite ({RELEASE_PINS.name})"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_image_records_what_apt_installed_and_its_commit(path: Path) -> None:
    from advtransfer import provenance

    text = path.read_text()
    assert ("dpkg-query -W -f='${Package}=${Version} ${Architecture}\\n' | sort > "
            f"{provenance.IMAGE_PACKAGES_FILE}") in text
    # Written in the apt layer, after the install, before anything else can change the package set.
    assert text.index("&& apt-get install") < text.index("&& dpkg-query -W") < text.index("COPY requirements")
    assert f"ENV {provenance.IMAGE_REVISION_ENV}=${{GIT_COMMIT}}" in text
    assert text.index("ARG GIT_COMMIT") < text.index(f"ENV {provenance.IMAGE_REVISION_ENV}")


def test_provenance_records_the_image_packages_and_revision(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    import torch

    from advtransfer import provenance

    monkeypatch.setenv(provenance.IMAGE_PACKAGES_ENV, str(tmp_path / "absent.txt"))
    monkeypatch.delenv(provenance.IMAGE_REVISION_ENV, raising=False)
    outside = provenance.collect(torch.device("cpu"))
    assert outside["image_packages"] is None and outside["image_revision"] is None
    listing = b"bash=5.2.15-2+b7 amd64\nmake=4.3-4.1 amd64\n\n"
    (tmp_path / "apt-packages.txt").write_bytes(listing)
    monkeypatch.setenv(provenance.IMAGE_PACKAGES_ENV, str(tmp_path / "apt-packages.txt"))
    monkeypatch.setenv(provenance.IMAGE_REVISION_ENV, "0123abc")
    inside = provenance.collect(torch.device("cpu"))
    assert inside["image_packages"] == {"path": str(tmp_path / "apt-packages.txt"), "packages": 2,
                                        "sha256": hashlib.sha256(listing).hexdigest()[:16]}
    assert inside["image_revision"] == "0123abc"


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


# -------------------------------------------------------------------------------------------- image check ---

FAKE_ENGINE = r'''#!/usr/bin/env python3
"""A stand-in for podman/docker that logs its arguments and acts out what tools/image_check.sh asks of it."""
import os, pathlib, sys
args = sys.argv[1:]
log = pathlib.Path(os.environ["FAKE_ENGINE_LOG"])
with log.open("a") as fh:
    fh.write(" ".join(args) + "\n")
if args[0] == "build":
    sys.exit(int(os.environ.get("FAKE_BUILD_RC", "0")))
if args[:2] == ["image", "inspect"]:
    print(6_543_210_000)
elif args[0] == "info":
    print("false")
elif args[0] == "run":
    mounts, i = {}, 1
    while args[i] != "localhost/advtransfer:cpu-check" and args[i] != "localhost/advtransfer:cuda-check":
        if args[i] == "-v":
            src, dst = args[i + 1].split(":")[:2]
            mounts[dst] = pathlib.Path(src)
            i += 1
        i += 1
    if "--entrypoint" in args[:i]:
        print(os.environ.get("FAKE_UID", "10001") if args[i + 1:] == ["-u"] else "")
    elif args[i + 1] == "help":
        print("usage: docker/entrypoint.sh COMMAND [ARGS...]")
    elif args[i + 1] == "reproduce-all":
        out = mounts["/results"] / "smoke"
        (out / "figures").mkdir(parents=True)
        for name in ("results.csv", "report.html", "report.md", "figures/exp1_eps_choice.png"):
            (out / name).write_text("x")
            os.chown(out / name, int(os.environ.get("FAKE_OWNER", "10001")), -1)
'''


def _image_check(tmp_path: Path, *args: str, engine: str | None = "podman", path: str | None = None,
                 **env: str) -> subprocess.CompletedProcess:
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    if engine:
        (fake / engine).write_text(FAKE_ENGINE.replace("/usr/bin/env python3", shutil.which("python3") or "python3"))
        (fake / engine).chmod(0o755)
    environ = {k: v for k, v in os.environ.items() if k != "IMAGE_ENGINE"}
    environ.update(PATH=path if path is not None else f"{fake}:{os.environ['PATH']}", TMPDIR=str(tmp_path),
                   FAKE_ENGINE_LOG=str(tmp_path / "engine.log"), **env)
    return subprocess.run(["/bin/bash", str(IMAGE_CHECK), *args], capture_output=True, text=True, check=False,
                          timeout=120, env=environ, cwd=tmp_path)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("image-check: error: "), result.stderr
    return lines[0]


def test_image_check_without_docker_or_podman_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    line = _one_error_line(_image_check(tmp_path, "--kind", "cpu", engine=None, path=str(tmp_path / "empty")))
    assert "neither docker nor podman" in line and "apt-get install podman" in line


def test_image_check_with_a_docker_client_but_no_engine_says_so(tmp_path: Path) -> None:
    fake = tmp_path / "fakebin"
    fake.mkdir()
    (fake / "docker").write_text("#!/bin/sh\nexit 1\n")  # `docker info` fails: no daemon answers
    (fake / "docker").chmod(0o755)
    line = _one_error_line(_image_check(tmp_path, engine=None, path=str(fake)))
    assert "docker info failed" in line and "apt-get install podman" in line


@pytest.mark.parametrize(("args", "message"), [
    (("--kind", "gpu"), "KIND=gpu; valid: cpu"),
    (("--kind",), "--kind needs a value"),
    (("--frobnicate",), "unknown argument '--frobnicate'"),
    (("--base", "x", "--standin"), "give one"),
    (("--host-ca", "/nonexistent/ca.crt"), "not a readable file"),
])
def test_image_check_bad_arguments_are_one_line_and_exit_2(tmp_path: Path, args: tuple[str, ...],
                                                           message: str) -> None:
    assert message in _one_error_line(_image_check(tmp_path, *args))


def test_image_check_builds_with_podman_in_docker_format_with_the_base_and_mounts(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("CA")
    result = _image_check(tmp_path, "--kind", "cuda", "--base", "localhost/standin:1", "--host-ca", str(ca),
                          "--build-arg", "X=1", FAKE_BUILD_RC="1")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("image-check: error: podman build -f docker/Dockerfile failed")
    (build,) = [line.split() for line in (tmp_path / "engine.log").read_text().splitlines() if line[:5] == "build"]
    assert build[build.index("--format") + 1] == "docker"  # podman's OCI format would drop SHELL (pipefail)
    assert build[build.index("-f") + 1] == "docker/Dockerfile" and build[build.index("-t") + 1].endswith("cuda-check")
    assert "BASE=localhost/standin:1" in build and "X=1" in build
    assert any(a.startswith("GIT_COMMIT=") for a in build)
    assert f"{ca}:/mnt/host-ca.crt:ro" in build and any(a.endswith(":/etc/pip.conf:ro") for a in build)
    assert any(a.startswith("nofile=") for a in build) and "nproc=32768:32768" in build


@pytest.mark.skipif(os.geteuid() != 0, reason="the fake engine chowns the results to uid 10001, as the image does")
def test_image_check_runs_help_tests_and_reproduce_all_as_uid_10001(tmp_path: Path) -> None:
    result = _image_check(tmp_path, "--kind", "cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("image-check: ok: cpu image built in ") and "6.54 GB" in result.stdout
    runs = [line.split() for line in (tmp_path / "engine.log").read_text().splitlines() if line[:3] == "run"]
    commands = [r[r.index("localhost/advtransfer:cpu-check") + 1:] for r in runs]
    assert commands[:4] == [["-u"], ["help"], ["test", "-q", "tests/test_container.py", "tests/test_config.py"],
                            ["reproduce-all", "--profile", "smoke", "--experiments",
                             "/opt/advtransfer/tests/fixtures/smoke_exp1.toml", "--device", "cpu"]]
    for run in runs[1:4]:  # the image's own user (no --user) with the three volumes from temporary folders
        assert "--user" not in run
        assert {a.split(":")[1] for a in run if a.count(":") == 1 and a.startswith(str(tmp_path))} == \
            {"/data", "/cache/torch", "/results"}
    assert not list(tmp_path.glob("advtransfer-image-check.*"))  # temporary folders removed
    assert any(line.startswith("rmi localhost/advtransfer:cpu-check")
               for line in (tmp_path / "engine.log").read_text().splitlines())


@pytest.mark.skipif(os.geteuid() != 0, reason="chowns to another uid")
@pytest.mark.parametrize(("env", "message"), [
    ({"FAKE_OWNER": "0"}, "is owned by uid 0, expected 10001"),
    ({"FAKE_UID": "0"}, "the image runs as uid 0, expected 10001"),
])
def test_image_check_fails_on_the_wrong_user_or_owner(tmp_path: Path, env: dict[str, str], message: str) -> None:
    result = _image_check(tmp_path, "--kind", "cpu", **env)
    assert result.returncode == 2 and message in result.stderr.strip().splitlines()[-1]


def test_smoke_experiment_is_a_small_study1_config() -> None:
    """What tools/image_check.sh runs in the image: the imagenet-transfer study on tiny data, profile smoke."""
    from advtransfer.workflow import load

    exp = load(str(REPO / "tests" / "fixtures" / "smoke_exp1.toml"), "smoke")
    assert exp.study.name == "imagenet-transfer" and len(exp.study.plan(exp)) <= 12


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_image_check_and_bench_gpu_targets() -> None:
    def dry_run(*args: str) -> str:
        return " ".join(subprocess.run(["make", "-n", *args], cwd=REPO, capture_output=True, text=True, check=True,
                                       timeout=60).stdout.split())

    assert dry_run("image-check", "KIND=cuda", "IMAGE_CHECK_ARGS=--standin") == \
        "bash tools/image_check.sh --kind cuda --standin"
    assert dry_run("bench-gpu", "VENV=/v", "OUT=/r").endswith("/v/bin/advtransfer bench gpu --json /r/bench/gpu.json")
    help_text = subprocess.run(["make", "help"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert re.search(r"make image-check\s", help_text) and re.search(r"make bench-gpu\s", help_text)
