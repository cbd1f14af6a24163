"""``--jobs N``: independent cells in N worker processes, identical results to one process, resumable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import MINI_EXP1
from test_bad_input import MICRO_EXP2

MICRO_EXP2_AT = MICRO_EXP2.replace('trainings = ["clean"]', 'trainings = ["clean", "pgd"]').replace(
    'protocols = ["intended"]', 'protocols = ["intended", "as-run"]')


def _run(config: Path, out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "advtransfer", "run", str(config), "--profile", "mini", "--out",
                           str(out), "--device", "cpu", "--threads", "1", *extra], capture_output=True, text=True,
                          timeout=900, check=False, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module", params=["study1", "study2"])
def config(request, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp(request.param) / f"{request.param}.toml"
    path.write_text(MINI_EXP1 if request.param == "study1" else MICRO_EXP2_AT)
    return path


@pytest.fixture(scope="module")
def one_job_run(config: Path) -> subprocess.CompletedProcess:
    """The grid in one process, from an empty folder (``config.parent / "one"``): its console and its results."""
    result = _run(config, config.parent / "one", "--jobs", "1")
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def one_job(config: Path, one_job_run: subprocess.CompletedProcess) -> Path:
    return config.parent / "one"


def test_two_jobs_give_byte_identical_results(config: Path, one_job: Path, one_job_run, tmp_path: Path) -> None:
    out = tmp_path / "two"
    result = _run(config, out, "--jobs", "2")
    assert result.returncode == 0, result.stderr
    assert "in 2 worker processes, 1 torch thread(s) each" in result.stderr
    workers = {line.split()[0] for line in result.stderr.splitlines() if line.startswith(("w1 ", "w2 "))}
    assert workers == {"w1", "w2"}  # both did work
    assert (out / "results.csv").read_bytes() == (one_job / "results.csv").read_bytes()
    # every training ran once across the two workers (shared pretrainings and clean models included): as many
    # first epochs as the one-process run from an empty folder
    assert result.stderr.count("  epoch 1/") == one_job_run.stderr.count("  epoch 1/") > 0
    assert not list(out.rglob("*.lock"))


def test_a_killed_two_job_run_resumes_to_the_same_results(config: Path, one_job: Path, tmp_path: Path) -> None:
    """Workers killed (SIGKILL) after their second epoch: the run fails with one line, the rerun takes over the
    dead workers' locks and resumes to the uninterrupted results."""
    out = tmp_path / "killed"
    killed = _run(config, out, "--jobs", "2", env={"ADVTRANSFER_KILL_AFTER_EPOCH": "2"})
    assert killed.returncode == 2, killed.stderr
    errors = [line for line in killed.stderr.splitlines() if line.startswith("advtransfer: error:")]
    assert len(errors) == 1 and "ended with status -9" in errors[0] and "rerun the command to resume" in errors[0]
    resumed = _run(config, out, "--jobs", "2")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed from epoch_002.pt" in resumed.stderr
    assert (out / "results.csv").read_bytes() == (one_job / "results.csv").read_bytes()


def test_jobs_under_torchrun_is_refused(monkeypatch, capsys, tmp_path: Path) -> None:
    from advtransfer.cli import main
    from advtransfer.engine import distributed

    class Session:
        def __enter__(self):
            return __import__("torch").device("cpu")

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(distributed, "session", lambda name: Session())
    config = tmp_path / "c.toml"
    config.write_text(MINI_EXP1)
    assert main(["run", str(config), "--profile", "mini", "--out", str(tmp_path / "o"), "--jobs", "2"]) == 2
    assert "--jobs 2 under torchrun" in capsys.readouterr().err


def test_bad_jobs_environment_is_one_error(monkeypatch, capsys, tmp_path: Path) -> None:
    from advtransfer.cli import main

    monkeypatch.setenv("ADVTRANSFER_JOBS", "many")
    config = tmp_path / "c.toml"
    config.write_text(MINI_EXP1)
    assert main(["run", str(config), "--profile", "mini", "--out", str(tmp_path / "o")]) == 2
    assert "ADVTRANSFER_JOBS='many' is not a number of jobs" in capsys.readouterr().err
