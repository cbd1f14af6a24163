"""The grid walk defers a cell whose pretraining or clean model another live process is training (a --jobs worker,
a shard), computes the cells after it first, and comes back to it; with nobody training, plan order is kept."""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from advtransfer.engine.grid import run_experiment
from advtransfer.engine.locks import FileLock
from advtransfer.studies.base import RunContext


@dataclass(frozen=True)
class FakeCell:
    key: str
    needs: tuple[str, ...] = ()

    @property
    def unit(self) -> str:
        return self.key


def _experiment(cells: list[FakeCell], computed: list[str]):
    def runner(exp, run):
        def run_cell(cell, existing):
            computed.append(cell.key)
            return {"protocol": "intended", "seed": 0, "model": cell.key, "family": "x", "backends": [],
                    "evaluations": []}
        return run_cell

    study = SimpleNamespace(plan=lambda exp: cells, runner=runner, preflight=lambda exp, root: [],
                            dependencies=lambda exp, cell: list(cell.needs), is_complete=lambda exp, doc: True,
                            name="fake")
    return SimpleNamespace(study=study, name="fake", profile="mini", source=Path("fake.toml"), cfg={"x": 1},
                           backends=("native",))


@pytest.fixture
def other_process():
    """A live process that is not this one (its pid goes into lock files as their holder)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc.pid
    proc.kill()
    proc.wait()


def _hold(out: Path, key: str, pid: int) -> None:
    lock = out / "checkpoints" / key / ".lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "started": "now", "what": key}))


def test_a_cell_whose_dependency_is_being_trained_elsewhere_runs_after_the_others(tmp_path: Path,
                                                                                 other_process: int) -> None:
    _hold(tmp_path, "pretrain-a", other_process)
    cells = [FakeCell("c1", ("pretrain-a",)), FakeCell("c2"), FakeCell("c3", ("pretrain-b",))]
    computed, lines = [], []
    run_experiment(_experiment(cells, computed), RunContext(tmp_path, tmp_path, torch.device("cpu"), lines.append))
    assert computed == ["c2", "c3", "c1"]
    assert f"[c1] needs pretrain-a, which pid {other_process} on {socket.gethostname()} (since now) is training: " \
           "deferred (1/3)" in lines
    assert sorted(p.stem for p in (tmp_path / "cells").glob("*.json")) == ["c1", "c2", "c3"]


def test_plan_order_is_kept_when_no_dependency_is_held(tmp_path: Path, other_process: int) -> None:
    cells = [FakeCell("c1", ("pretrain-a",)), FakeCell("c2")]
    computed: list[str] = []
    run_experiment(_experiment(cells, computed), RunContext(tmp_path, tmp_path, torch.device("cpu"), print))
    assert computed == ["c1", "c2"]
    # A lock left by a dead process is not "being trained": the walk does not defer for it.
    dead = subprocess.Popen(["true"])
    dead.wait()
    out = tmp_path / "again"
    _hold(out, "pretrain-a", dead.pid)
    computed.clear()
    run_experiment(_experiment(cells, computed), RunContext(out, out, torch.device("cpu"), print))
    assert computed == ["c1", "c2"]


def test_lock_busy_means_held_by_another_live_process(tmp_path: Path, other_process: int) -> None:
    mine = FileLock(tmp_path / "mine.lock", "mine")
    assert not mine.busy()  # nobody holds it
    assert mine.acquire()
    try:
        assert not mine.busy()  # this process holds it: not "another"
    finally:
        mine.release()
    _hold(tmp_path, "theirs", other_process)
    assert FileLock(tmp_path / "checkpoints" / "theirs" / ".lock", "theirs").busy()


def test_a_cell_is_deferred_while_another_process_holds_a_cell_that_needs_the_same_training(
        tmp_path: Path, other_process: int) -> None:
    # Between taking a cell's lock and its pretraining's, the other process holds only the cell lock.
    lock = tmp_path / "locks" / "c0.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": other_process, "host": socket.gethostname(), "started": "now", "what": "c0"}))
    cells = [FakeCell("c0", ("pretrain-a",)), FakeCell("c1", ("pretrain-a",)), FakeCell("c2")]
    computed, lines = [], []
    run_experiment(_experiment(cells, computed), RunContext(tmp_path, tmp_path, torch.device("cpu"), lines.append))
    assert computed == ["c2", "c1"]  # c0 is the other process's (skipped), c1 waits for the end of the walk
    assert any(line.startswith("[c1] needs pretrain-a, which pid") and "(cell c0)" in line for line in lines)
