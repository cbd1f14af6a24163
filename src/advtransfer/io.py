"""Atomic file writes: a reader never sees a half-written results file, checkpoint or manifest.

A failed write (no space left, a read-only or foreign folder, a path under a file) is one
:class:`~advtransfer.errors.OutputError` naming the file, the reason and the remedy; the file it would have
replaced is intact and no temporary file is left behind.
"""

from __future__ import annotations

import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import OutputError

_REMEDY = {
    errno.ENOSPC: "free some space, or give another --out",
    errno.EDQUOT: "free some of your quota, or give another --out",
    errno.EROFS: "the file system is read-only: give another --out",
    errno.EACCES: "you may not write there: give another --out (or fix the folder's permissions)",
    errno.EPERM: "you may not write there: give another --out (or fix the folder's permissions)",
    errno.ENOTDIR: "a part of that path is a file, not a folder: give another --out",
    errno.EISDIR: "a folder stands where the file should go: move it away or give another --out",
    errno.ENAMETOOLONG: "the path is too long for the file system: use a shorter --out or names",
}


def write_error(path: Path, exc: OSError) -> OutputError:
    """One clear error for an OS error while writing ``path``."""
    name = errno.errorcode.get(exc.errno or 0, "error")
    remedy = _REMEDY.get(exc.errno or 0, "check the folder, or give another --out")
    return OutputError(f"cannot write {path}: {exc.strerror or exc} ({name}); {remedy}. Files written before are "
                       "intact; rerun to resume")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write) -> Path:
    """Write ``path`` through ``write(binary file)`` into a unique temporary file beside it, then rename it into
    place. The file gets the mode a plain ``open()`` would give (0666 less the umask), not mkstemp's 0600, so a
    shared results folder stays readable to collaborators."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise
    return path


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=1, sort_keys=True) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> Path:
    # Serialised in memory first: torch's zip writer turns a failed write into a RuntimeError, which would hide
    # the OS error (no space, read-only) that write_error explains.
    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getbuffer())
