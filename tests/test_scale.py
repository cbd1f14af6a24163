"""Scale-out: ``--shard K/N`` and ``--cells``, the submitit launcher (local executor), and data-parallel ``fit()``
under torchrun (gloo, 2 CPU processes)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from advtransfer.cli import main
from advtransfer.scale.shards import Shard, shard_cells, units
from advtransfer.studies import load_experiment
from test_study2 import _mini_config

TESTS = Path(__file__).resolve().parent
pytestmark = pytest.mark.usefixtures("one_thread")

# BaseNet settings (1 and 4) of study 2's mini profile, clean and PGD training: 4 units of 2 cells (clean, then
# the PGD cell that starts from its checkpoint), both protocols; seconds per cell on a CPU.
MICRO_SETTINGS = """
[[profiles.mini.settings]]
id = 1
dataset = "cifar10"
models = ["basenet"]
trainings = ["clean", "pgd"]
[[profiles.mini.settings]]
id = 4
dataset = "cifar100"
models = ["basenet"]
trainings = ["clean", "pgd"]
"""


def _micro_config(tmp: Path) -> Path:
    head = _mini_config(tmp).read_text().split("[[profiles.mini.settings]]", 1)[0]
    path = tmp / "exp2_micro.toml"
    path.write_text(head + MICRO_SETTINGS)
    return path


def _run(config: Path, out: Path, *extra: str) -> int:
    return main(["run", str(config), "--profile", "mini", "--out", str(out), "--device", "cpu", *extra])


@pytest.fixture(scope="module")
def micro(tmp_path_factory) -> tuple[Path, Path]:
    """(config, results folder of one unsharded run); tests must not modify the folder."""
    tmp = tmp_path_factory.mktemp("micro")
    config, out = _micro_config(tmp), tmp / "reference"
    assert _run(config, out) == 0
    return config, out


# ------------------------------------------------------------------------------------------ shard assignment ---


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_shards_are_disjoint_cover_the_grid_and_keep_units_together(n: int, tmp_path: Path) -> None:
    from conftest import MINI_EXP1

    (tmp_path / "exp1_mini.toml").write_text(MINI_EXP1)
    exps = [load_experiment(str(tmp_path / "exp1_mini.toml"), "mini"),
            load_experiment(str(_mini_config(tmp_path)), "mini")]
    grids = [(exp.study.name, exp.study.plan(exp)) for exp in exps]

    def unit(cell):
        return cell.unit

    for study, grid in grids:
        parts = [shard_cells(grid, Shard(k, n), unit) for k in range(1, n + 1)]
        keys = [c.key for part in parts for c in part]
        assert len(keys) == len(set(keys)) and set(keys) == {c.key for c in grid}  # disjoint, union = grid
        for part in parts:
            assert part == [c for c in grid if c in part]  # plan order kept (clean before adversarial)
        sizes = [len(units(part, unit)) for part in parts]
        assert max(sizes) - min(sizes) <= 1, sizes  # balanced: units dealt round robin
        if study == "cifar-at":
            for part in parts:  # every adversarial cell runs in its clean cell's shard
                assert {c.clean.key for c in part} <= {c.key for c in part}
            assert len(units(grid, unit)) == 10  # (setting, protocol, model) groups of the mini grid
        else:
            assert len(units(grid, unit)) == len(grid)  # study 1: every cell its own unit
    # reproduce-all deals the units of both experiments out as one sequence
    offsets = [0, len(units(grids[0][1], unit))]
    per_shard = [sum(len(units(shard_cells(g, Shard(k, n), unit, off), unit))
                     for (_, g), off in zip(grids, offsets)) for k in range(1, n + 1)]
    assert sum(per_shard) == sum(len(units(g, unit)) for _, g in grids)
    assert max(per_shard) - min(per_shard) <= 1, per_shard


@pytest.mark.parametrize("bad", ["0/2", "3/2", "1/0", "2", "a/b", "-1/2", "1/2/3"])
def test_bad_shard_is_one_clear_error(bad: str, tmp_path: Path, capsys) -> None:
    from conftest import MINI_EXP1

    config = tmp_path / "exp1_mini.toml"
    config.write_text(MINI_EXP1)
    assert _run(config, tmp_path / "out", f"--shard={bad}") == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("advtransfer: error: --shard") and "K/N with 1 <= K <= N" in err and "\n" not in err
    assert main(["reproduce-all", "--profile", "demo", f"--shard={bad}"]) == 2
    assert "K/N with 1 <= K <= N" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cells_glob_selects_cells_and_an_unmatched_glob_is_an_error(micro, tmp_path: Path, capsys) -> None:
    config, reference = micro
    out = tmp_path / "copy"
    shutil.copytree(reference, out)
    assert _run(config, out, "--cells", "exp2-e4-*-pgd-*,exp2-e1-as-run-*") == 0
    err = capsys.readouterr().err
    skipped = [line.split("]")[0].lstrip("[") for line in err.splitlines() if "done already, skipped" in line]
    assert skipped == ["exp2-e1-as-run-basenet-clean-s0", "exp2-e1-as-run-basenet-pgd-s0",
                       "exp2-e4-intended-basenet-pgd-s0", "exp2-e4-as-run-basenet-pgd-s0"]
    assert _run(config, out, "--cells", "exp2-e9-*") == 2
    err = capsys.readouterr().err
    assert "--cells 'exp2-e9-*' matches none of the 8 cells" in err and "exp2-e1-intended-basenet-clean-s0" in err


def test_reproduce_all_shards_deal_both_experiments_out_once(tmp_path: Path, monkeypatch, capsys) -> None:
    """``reproduce-all --shard K/N`` hands each experiment's grid run only its shard's cells (the grid runs are
    replaced by recorders here: the selection is under test, not the training; ``test_studies`` runs
    reproduce-all end to end)."""
    from advtransfer.engine import jobs
    from conftest import MINI_EXP1

    (tmp_path / "exp1_mini.toml").write_text(MINI_EXP1)
    configs = [str(tmp_path / "exp1_mini.toml"), str(_mini_config(tmp_path))]
    got: dict[str, list[str]] = {}
    monkeypatch.setattr(jobs, "run_experiment", lambda exp, run, *, cells: got.setdefault(
        exp.name, []).extend(c.key for c in cells))
    for k in (1, 2, 3):
        assert main(["reproduce-all", "--profile", "mini", "--experiments", ",".join(configs), "--shard", f"{k}/3",
                     "--out", str(tmp_path / "o"), "--device", "cpu"]) == 0
        assert f"shard {k}/3:" in capsys.readouterr().out
    for path in configs:
        exp = load_experiment(path, "mini")
        assert sorted(got[exp.name]) == sorted(c.key for c in exp.study.plan(exp))  # each cell exactly once


# ------------------------------------------------------------------------------------------------- sharding ---


def test_two_shards_one_after_the_other_gather_to_the_unsharded_results(micro, tmp_path: Path, capsys) -> None:
    config, reference = micro
    out = tmp_path / "sharded"
    assert _run(config, out, "--shard", "1/2") == 0
    printed = capsys.readouterr().out
    assert "shard 1/2: 4 cell(s) finished" in printed and f"advtransfer figures --results {out}" in printed
    assert len(list((out / "cells").glob("*.json"))) == 4 and (out / "results.csv").is_file()
    assert not (out / "report.md").exists()  # figures and report wait for the gather
    assert _run(config, out, "--shard", "2/2") == 0
    assert main(["figures", "--results", str(out)]) == 0
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    assert (out / "report.md").is_file() and (out / "figures" / "exp2_setting4.png").is_file()


# ------------------------------------------------------------------------------------------------- launcher ---


def test_submitit_launcher_runs_shards_reports_a_crash_and_resumes(micro, tmp_path: Path, capsys,
                                                                   monkeypatch) -> None:
    """Two shard jobs through submitit's LocalExecutor (subprocesses). First every job is killed after its first
    epoch (the kill-after-epoch test hook): the launcher names each failed shard and its log and exits 1. The same
    command again resumes from the checkpoints and gathers results.csv (identical to the unsharded run's), the
    figures and the report."""
    pytest.importorskip("submitit")
    config, reference = micro
    out, logs = tmp_path / "launched", tmp_path / "logs"
    argv = ["launch", str(config), "--profile", "mini", "--shards", "2", "--executor", "local", "--out", str(out),
            "--device", "cpu", "--cpus-per-task", "1", "--log-dir", str(logs)]
    monkeypatch.setenv("ADVTRANSFER_KILL_AFTER_EPOCH", "1")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "2 of 2 shard(s) failed" in err and "rerun the same command to resume" in err
    for k in (1, 2):
        assert f"shard {k}/2 (job " in err
    assert str(logs) in err and not (out / "cells").exists()
    monkeypatch.delenv("ADVTRANSFER_KILL_AFTER_EPOCH")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "shard 1/2 done" in printed and "shard 2/2 done" in printed
    assert (out / "results.csv").read_bytes() == (reference / "results.csv").read_bytes()
    assert (out / "report.md").is_file() and (out / "figures" / "exp2_setting1.png").is_file()
    logs_text = "".join(p.read_text() for p in logs.glob("*_log.err"))
    assert "resumed from epoch_001.pt" in logs_text


def test_launch_without_submitit_names_the_extra(monkeypatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit -> ImportError
    assert main(["launch", "exp2", "--profile", "demo", "--shards", "2", "--out", str(tmp_path)]) == 2
    assert "pip install 'advtransfer[cluster]'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------- DDP ---


def _torchrun(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           *args], capture_output=True, text=True, check=False, env=env, cwd=cwd, timeout=300)


def _max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].double() - b[k].double()).abs().max().item() for k in a)


DDP_TOL = 1e-5


def test_data_parallel_fit_matches_single_process(tmp_path: Path) -> None:
    """BaseNet (no BatchNorm, no dropout), SGD, 2 clean epochs on 45 examples in global batches of 8 (the last,
    of 5, splits 3 + 2) then 1 epoch of PGD adversarial training (no random start: under DDP random starts come
    from per-rank generators) on 41 examples (the last global batch of 1 leaves rank 1 an empty slice). Two gloo
    ranks against one process: both ranks hold bit-identical weights, and weights and epoch histories match the
    single process to 1e-5. The tolerance covers float32 sums taken in another order (each rank reduces its slice,
    then the all-reduce adds the two partial gradients): about 1e-7 relative per step; measured max weight
    difference 2.2e-8."""
    from ddp_fit_worker import train

    done = _torchrun(str(TESTS / "ddp_fit_worker.py"), str(tmp_path), cwd=TESTS)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    assert _max_diff(ranks[0]["state"], ranks[1]["state"]) == 0.0  # every rank holds the same weights
    single = train(tmp_path / "single", torch.device("cpu"))
    assert _max_diff(ranks[0]["state"], single["state"]) <= DDP_TOL
    for phase in ("clean", "adv"):
        assert len(ranks[0][phase]) == len(single[phase])
        for got, want in zip(ranks[0][phase], single[phase]):
            for key in ("train_loss", "train_acc", "val_acc"):
                assert abs(got[key] - want[key]) <= DDP_TOL, (phase, key, got[key], want[key])
    # only rank 0 wrote checkpoints, keeping the newest
    assert sorted(p.name for p in (tmp_path / "ckpt" / "clean").iterdir()) == ["epoch_002.pt"]


def test_torchrun_cli_run_trains_one_cell_data_parallel(micro, tmp_path: Path) -> None:
    """`torchrun --nproc-per-node 2 -m advtransfer.cli run ... --cells KEY` on CPU: rank 0 writes the cell, its
    checkpoints and results.csv; the training matches the single-process run of the same cell to 1e-5."""
    config, reference = micro
    key = "exp2-e1-intended-basenet-clean-s0"
    out = tmp_path / "ddp"
    done = _torchrun("-m", "advtransfer.cli", "run", str(config), "--profile", "mini", "--out", str(out),
                     "--device", "cpu", "--cells", key, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert [p.name for p in (out / "cells").iterdir()] == [f"{key}.json"]
    assert (out / "results.csv").is_file() and (out / "report.md").is_file()
    got, want = (json.loads((d / "cells" / f"{key}.json").read_text()) for d in (out, reference))
    for g, w in zip(got["training_log"]["clean"]["history"], want["training_log"]["clean"]["history"], strict=True):
        for k in ("train_loss", "train_acc", "val_acc"):
            assert abs(g[k] - w[k]) <= DDP_TOL, (k, g[k], w[k])
    ckpt = [torch.load(max((d / "checkpoints" / key).glob("epoch_*.pt")), weights_only=True)["model"]
            for d in (out, reference)]
    assert _max_diff(*ckpt) <= DDP_TOL
    assert done.stderr.count("] cell 1/1") == 1  # progress lines from rank 0 only


def test_sync_batchnorm_swap_shares_tensors_and_swaps_back() -> None:
    """DDP on CUDA trains BatchNorm as SyncBatchNorm (global batch statistics); the swap shares parameters and
    buffers with the original layers, so swapping back after training keeps the trained values (CPU: swap only,
    SyncBatchNorm itself needs a GPU process group)."""
    from torch import nn

    from advtransfer.engine.train import _to_sync_batchnorm

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(2)))
    originals = [model[1], model[2][0]]
    swapped = _to_sync_batchnorm(model)
    assert [type(m) for m in (model[1], model[2][0])] == [nn.SyncBatchNorm, nn.SyncBatchNorm]
    assert model[1].weight is originals[0].weight and model[1].running_mean is originals[0].running_mean
    with torch.no_grad():
        model[1].weight.add_(1.0)
    for parent, name, bn in swapped:
        setattr(parent, name, bn)
    assert model[1] is originals[0] and model[2][0] is originals[1]
    assert torch.equal(model[1].weight, torch.full((4,), 2.0))
