"""``advtransfer status DIR``: what a results folder holds, read from its files (it computes nothing).

For every experiment the folder was run with (its ``config-<name>.json``): the cells of its plan that are done,
running (a live process holds the cell's lock; with the last epoch its checkpoint folder reached), stopped (a lock
whose holder died: killed, or the machine went down; the next run takes over and resumes) and pending, and the
time left estimated from the wall time of the finished cells.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError
from ..results import store
from .grid import LOCKS_DIR
from .locks import FileLock

_EPOCH = re.compile(r"epoch_(\d+)\.pt")


@dataclass
class ExperimentStatus:
    name: str
    profile: str
    total: int
    done: list[str] = field(default_factory=list)
    running: dict[str, str] = field(default_factory=dict)  # cell -> holder and progress
    stopped: dict[str, str] = field(default_factory=dict)  # cell -> last known progress
    pending: list[str] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # wall time of the finished cells
    note: str = ""

    @property
    def eta_seconds(self) -> float | None:
        if not self.seconds:
            return None
        left = len(self.pending) + len(self.stopped) + 0.5 * len(self.running)
        workers = max(1, len(self.running))
        return sum(self.seconds) / len(self.seconds) * left / workers


def _last_epoch(out: Path, key: str) -> str:
    folder = Path(out) / "checkpoints" / key
    epochs = [int(m.group(1)) for p in folder.glob("epoch_*.pt") if (m := _EPOCH.fullmatch(p.name))]
    return f"epoch {max(epochs)} done" if epochs else "no epoch done yet"


def folder_status(out: Path) -> list[ExperimentStatus]:
    from .. import studies

    out = Path(out)
    configs = sorted(out.glob("config-*.json"))
    if not out.is_dir() or not configs:
        raise UserError(f"{out} holds no run (no config-*.json): give the --out folder of an `advtransfer run`")
    statuses = []
    for path in configs:
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            name, profile, source = meta["experiment"], meta["profile"], meta["source"]
        except (OSError, ValueError, KeyError, TypeError):
            raise UserError(f"{path} is unreadable or not written by this kit; delete it (the next run writes it "
                            "again)") from None
        try:
            exp = studies.load_experiment(source, profile)
            keys = [c.key for c in exp.study.plan(exp)]
            note = ""
        except UserError as exc:  # the config moved or changed: report what the folder itself holds
            keys = sorted({p.stem for p in store.cell_files(out) if p.stem.startswith(f"{name}-")})
            note = f"its config {source} could not be read ({str(exc).splitlines()[0]}); cells listed from files"
        st = ExperimentStatus(name, profile, len(keys), note=note)
        for key in keys:
            doc = store.load_cell(out, key)
            lock = FileLock(out / LOCKS_DIR / f"{key}.lock", key)
            holder = lock.holder()
            if doc is not None and holder is None:
                st.done.append(key)
                if isinstance(doc.get("wall_seconds"), (int, float)):
                    st.seconds.append(float(doc["wall_seconds"]))
            elif holder is not None and not lock.stale(holder):
                st.running[key] = f"{lock.describe(holder)}, {_last_epoch(out, key)}"
            elif holder is not None:
                st.stopped[key] = f"stopped ({lock.describe(holder)} is gone), {_last_epoch(out, key)}"
            elif (out / "checkpoints" / key).is_dir() and any((out / "checkpoints" / key).glob("epoch_*.pt")):
                st.stopped[key] = f"interrupted, {_last_epoch(out, key)}; the next run resumes it"
            else:
                st.pending.append(key)
        statuses.append(st)
    return statuses


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def format_status(out: Path, statuses: list[ExperimentStatus]) -> str:
    lines = [f"{out}:"]
    for st in statuses:
        eta = st.eta_seconds
        lines.append(f"  {st.name} --profile {st.profile}: {len(st.done)}/{st.total} cells done, {len(st.running)} "
                     f"running, {len(st.stopped)} stopped, {len(st.pending)} pending"
                     + ("" if not (st.pending or st.running or st.stopped) else
                        f"; about {_duration(eta)} left" if eta is not None else "; time left unknown (no cell "
                                                                                 "finished yet)"))
        if st.note:
            lines.append(f"    note: {st.note}")
        for key, what in st.running.items():
            lines.append(f"    running  {key}: {what}")
        for key, what in st.stopped.items():
            lines.append(f"    stopped  {key}: {what}")
    return "\n".join(lines)
