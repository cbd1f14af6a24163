"""What every study's figures share: a matplotlib ``Figure`` without pyplot, a fixed style, and atomic saving.

Figures use matplotlib's object-oriented API (no pyplot), so drawing never changes the global backend or pyplot
state, and are freed once saved. Each figure is written as ``<stem>.png`` (150 dpi) and ``<stem>.pdf`` (no creation
date, so reruns are byte-identical) through :func:`advtransfer.io.atomic_write_bytes` (a unique temporary name per
writer: several processes finishing at once never clobber each other's half-written file).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import UserError
from ..io import atomic_write_bytes

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

DPI = 150


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


@contextmanager
def default_style() -> Iterator[None]:
    """matplotlib's default style (the user's matplotlibrc ignored, the backend untouched), restored on exit."""
    from matplotlib import style

    with style.context("default"):
        yield


def save_figure(fig: Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write ``fig`` as ``out_dir/stem.png`` and ``.pdf``; returns both paths."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the figure folder {out_dir} ({exc.strerror or exc})") from None
    paths = []
    try:
        for ext in ("png", "pdf"):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=DPI, metadata={"CreationDate": None} if ext == "pdf" else None)
            paths.append(atomic_write_bytes(out_dir / f"{stem}.{ext}", buf.getvalue()))
    finally:
        fig.clear()
    return paths


def error_bars(estimates) -> list[list[float]] | None:
    """Asymmetric error bars ([below], [above]) from :class:`~advtransfer.results.stats.Estimate` objects (None
    entries draw none); None when no estimate has an interval."""
    below, above = [], []
    for e in estimates:
        below.append(0.0 if e is None else max(0.0, e.mean - e.low))
        above.append(0.0 if e is None else max(0.0, e.high - e.mean))
    return [below, above] if any(below) or any(above) else None
