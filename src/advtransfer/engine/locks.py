"""Locks on files: no cell and no training is ever computed by two processes at once.

Several processes may share one results folder on purpose (shards, ``--jobs`` workers, a SLURM array) or by
accident (the same command started twice). A lock is a small file created atomically (``O_CREAT | O_EXCL``)
that names its holder: pid, host and start time. While held, a thread refreshes its modification time
(:data:`HEARTBEAT_S`), so a lock is *stale* when its holder is gone: on this host, the pid no longer exists; on
another host (a shared file system), the file was not refreshed for :data:`STALE_S` seconds. A stale lock is
taken over, with a note in the log.

- :class:`FileLock` ``.acquire()`` returns False when a live holder has the lock (the caller skips the work:
  another process is doing it) and ``.wait()`` blocks until it is free (the caller needs the result, e.g. a
  shared pretraining, and resumes from the holder's final checkpoint).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

HEARTBEAT_S = 30.0
STALE_S = float(os.environ.get("ADVTRANSFER_LOCK_STALE_S", 600))  # another host's lock untouched this long is stale
POLL_S = 1.0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class FileLock:
    """A lock file at ``path``; ``what`` names the locked work in messages (e.g. the cell key)."""

    def __init__(self, path: Path, what: str, log: Callable[[str], None] = lambda msg: None) -> None:
        self.path, self.what, self.log = Path(path), what, log
        self._held = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------------------- inspecting ---

    def holder(self) -> dict | None:
        """Who holds the lock (pid, host, started), or None when the file is gone or unreadable."""
        try:
            doc = json.loads(self.path.read_text())
            return doc if isinstance(doc, dict) else {}
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # being written, or damaged: judged by its age

    def stale(self, holder: dict) -> bool:
        """Whether the holder is gone: a dead pid on this host, or no heartbeat for STALE_S from another."""
        try:
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False
        if holder.get("host") == socket.gethostname() and isinstance(holder.get("pid"), int):
            return not _alive(holder["pid"])
        return age > STALE_S

    def busy(self) -> bool:
        """Whether another live process holds the lock now (without taking it)."""
        holder = self.holder()
        return holder is not None and not self._held and not self.stale(holder)

    def describe(self, holder: dict | None = None) -> str:
        holder = self.holder() if holder is None else holder
        if not holder:
            return "another process"
        return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} (since {holder.get('started', '?')})"

    # ---------------------------------------------------------------------------------------------- taking ---

    def acquire(self) -> bool:
        """Take the lock if nobody live holds it; False when a live holder does."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # at most a couple of races with other processes taking over the same stale lock
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    continue  # released meanwhile: try again
                if not self.stale(holder):
                    return False
                self.log(f"[{self.what}] taking over a stale lock of {self.describe(holder)}: {self.path}")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as fh:
                json.dump({"pid": os.getpid(), "host": socket.gethostname(),
                           "started": time.strftime("%Y-%m-%d %H:%M:%S"), "what": self.what}, fh)
            self._held = True
            self._stop.clear()
            self._thread = threading.Thread(target=self._heartbeat, name=f"lock {self.what}", daemon=True)
            self._thread.start()
            return True
        return False

    def wait(self, poll_s: float = POLL_S) -> None:
        """Take the lock, waiting (with one note in the log) while a live holder has it."""
        if self.acquire():
            return
        self.log(f"[{self.what}] waiting for {self.describe()} to finish it ({self.path})")
        while not self.acquire():
            time.sleep(poll_s)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:
                return

    def release(self) -> None:
        if not self._held:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.path.unlink(missing_ok=True)
        self._held = False

    def __enter__(self) -> FileLock:
        self.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def training_lock(ckpt_dir: Path, log: Callable[[str], None] = lambda msg: None) -> FileLock:
    """The lock a process holds while it trains into the checkpoint folder ``ckpt_dir`` (``train.fit``); the grid
    walk reads it to defer a cell whose dependency another process is training (named after the folder)."""
    return FileLock(Path(ckpt_dir) / ".lock", Path(ckpt_dir).name, log)
