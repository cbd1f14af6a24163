"""What a person sees while a run works and after: log lines and the run's log file, --quiet, progress bars on a
terminal only, `advtransfer status`, training curves, TensorBoard event files."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
import torch

from advtransfer.cli import main
from advtransfer.engine.status import folder_status
from advtransfer.reporting.curves import histories
from conftest import MINI_EXP1


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path, str]:
    """(config, results folder, stderr) of one mini run."""
    tmp = tmp_path_factory.mktemp("progress")
    config = tmp / "mini.toml"
    config.write_text(MINI_EXP1)
    out = tmp / "out"
    result = subprocess.run([sys.executable, "-m", "advtransfer", "run", str(config), "--profile", "mini", "--out",
                             str(out), "--device", "cpu", "--jobs", "1", "--threads", "1"], capture_output=True,
                            text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    return config, out, result.stderr


def test_the_run_log_file_has_every_console_line_with_time_and_level(run) -> None:
    _, out, stderr = run
    logs = list((out / "logs").glob("run-*.log"))
    assert len(logs) == 1
    lines = logs[0].read_text().splitlines()
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO MainProcess (?P<msg>.*)$")
    messages = [m.group("msg") for m in map(stamp.match, lines) if m]
    assert len(messages) == len(lines)  # every line has its time, level and process
    console = [line for line in stderr.splitlines() if line.startswith("[") or line.startswith("  epoch")]
    assert console and all(line in messages for line in console)
    assert "[exp1-as-run-a16b_plus-s0] cell 12/12" in messages


def test_quiet_keeps_the_console_silent_and_the_log_file_full(run, tmp_path: Path) -> None:
    config, _, _ = run
    out = tmp_path / "quiet"
    result = subprocess.run([sys.executable, "-m", "advtransfer", "run", str(config), "--profile", "mini", "--out",
                             str(out), "--device", "cpu", "--jobs", "1", "--threads", "1", "--quiet"],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0 and result.stderr == ""
    log = next((out / "logs").glob("run-*.log")).read_text()
    assert "[exp1-intended-base_a-s0] cell 1/12" in log and "  epoch 2/2" in log


def test_no_progress_bar_without_a_terminal(run) -> None:
    _, _, stderr = run
    assert "\r" not in stderr and "it/s" not in stderr and "cell/s" not in stderr


def test_a_terminal_gets_a_bar_over_the_cells(run, tmp_path: Path) -> None:
    """stderr on a pseudo-terminal: tqdm draws the grid's bar (cells done, rate, time left)."""
    config, ref, _ = run
    out = tmp_path / "tty"
    shutil.copytree(ref, out)  # finished: the bar walks the 12 skipped cells quickly
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # a terminal 120 columns wide
    proc = subprocess.Popen([sys.executable, "-m", "advtransfer", "run", str(config), "--profile", "mini", "--out",
                             str(out), "--device", "cpu", "--jobs", "1"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=120)
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == 0
    assert re.search(r"exp1 cells:\s+\d+%\|.*\| \d+/12 ", text), text[-2000:]


def test_status_of_a_finished_a_running_and_a_killed_run(run, tmp_path: Path, capsys) -> None:
    config, ref, _ = run
    assert main(["status", str(ref)]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "  exp1 --profile mini: 12/12 cells done, 0 running, 0 " \
                                                      "stopped, 0 pending"
    out = tmp_path / "half"
    shutil.copytree(ref, out)
    # a running cell: its result file not written yet, its lock held by a live process (this one), epoch 1 saved
    running, killed, pending = "exp1-as-run-a16b-s0", "exp1-as-run-a16b_plus-s0", "exp1-as-run-a4b-s0"
    for key in (running, killed, pending):
        (out / "cells" / f"{key}.json").unlink()
    shutil.rmtree(out / "checkpoints" / pending)
    for key in (running, killed):
        for ckpt in (out / "checkpoints" / key).glob("epoch_*.pt"):
            ckpt.rename(ckpt.with_name("epoch_001.pt"))
    (out / "locks").mkdir(exist_ok=True)
    (out / "locks" / f"{running}.lock").write_text(json.dumps({"pid": os.getpid(), "host": os.uname().nodename,
                                                                "started": "now"}))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / "locks" / f"{killed}.lock").write_text(json.dumps({"pid": dead.pid, "host": os.uname().nodename,
                                                               "started": "then"}))
    statuses = folder_status(out)
    st = statuses[0]
    assert (len(st.done), list(st.running), list(st.stopped), st.pending) == (9, [running], [killed], [pending])
    assert st.eta_seconds is not None and st.eta_seconds > 0
    assert main(["status", str(out)]) == 0
    text = capsys.readouterr().out
    assert "9/12 cells done, 1 running, 1 stopped, 1 pending; about " in text
    assert f"running  {running}: pid {os.getpid()} on {os.uname().nodename} (since now), epoch 1 done" in text
    assert f"stopped  {killed}: stopped (pid {dead.pid} on {os.uname().nodename} (since then) is gone), epoch 1 " \
           "done" in text
    # the next run takes over the dead holder's lock and resumes; the live one's cell is left to its holder
    capsys.readouterr()
    assert main(["run", str(config), "--profile", "mini", "--out", str(out), "--jobs", "1"]) == 0
    err = capsys.readouterr().err
    assert f"[{killed}] taking over a stale lock of pid {dead.pid}" in err
    assert f"[{running}] being computed by pid {os.getpid()}" in err


def test_status_of_a_folder_without_a_run_is_one_error(tmp_path: Path, capsys) -> None:
    assert main(["status", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"advtransfer: error: {tmp_path} holds no run (no config-*.json): "
                                               "give the --out folder of an `advtransfer run`")


def test_training_curves_follow_the_histories(run) -> None:
    _, out, _ = run
    doc = json.loads((out / "cells" / "exp1-intended-a4b-s0.json").read_text())
    (label, epochs), = histories(doc["training_log"])
    assert label == "" and [e["epoch"] for e in epochs] == [1, 2]
    assert (out / "figures" / "curves_exp1.png").stat().st_size > 10_000
    report = (out / "report.md").read_text()
    assert "## Training curves" in report and "![curves_exp1](figures/curves_exp1.png)" in report
    two_phases = {"clean": {"history": [{"epoch": 1, "train_loss": 2.0}]},
                  "adversarial": {"history": [{"epoch": 1, "train_loss": 3.0}, {"epoch": 2, "train_loss": 2.5}]}}
    assert [(k, [e["train_loss"] for e in v]) for k, v in histories(two_phases)] == [("clean", [2.0]),
                                                                                    ("adversarial", [3.0, 2.5])]


def test_tensorboard_event_files_hold_every_epoch(run, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config, _, _ = run
    out = tmp_path / "tb"
    torch.set_num_threads(1)
    assert main(["run", str(config), "--profile", "mini", "--out", str(out), "--jobs", "1", "--tensorboard"]) == 0
    folder = out / "tensorboard" / "exp1-intended-a4b-s0"
    acc = EventAccumulator(str(folder))
    acc.Reload()
    history = json.loads((out / "cells" / "exp1-intended-a4b-s0.json").read_text())["training_log"]["history"]
    losses = [(e.step, e.value) for e in acc.Scalars("train_loss")]
    assert losses == [(h["epoch"], pytest.approx(h["train_loss"], rel=1e-6)) for h in history]
    assert {"train_acc", "val_acc", "lr"} <= set(acc.Tags()["scalars"])


def test_python_dash_m_is_the_command(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "advtransfer", "--help"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0 and "usage: advtransfer" in result.stdout and "status" in result.stdout
