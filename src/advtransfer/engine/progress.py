"""Progress bars (tqdm) where a person watches: stderr is a terminal and the console is not ``--quiet``.

Elsewhere (CI, SLURM logs, a pipe) the bars are off and the log lines alone say what happens. Log records are
printed above a bar, never through it (``tqdm.contrib.logging``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from . import logs


@contextmanager
def bar(total: int, desc: str, unit: str) -> Iterator[Callable[[int], None]]:
    """A bar of ``total`` steps; yields ``advance(n)``. A no-op without a terminal."""
    if not logs.interactive() or total <= 0:
        yield lambda n: None
        return
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm(loggers=[logs.LOGGER]), tqdm(total=total, desc=desc, unit=unit, leave=False,
                                                            dynamic_ncols=True) as progress:
        yield progress.update


def iterate(items, total: int, desc: str, unit: str) -> Iterator:
    """``items`` with a bar (batches of an epoch, of an evaluation, of a cache build)."""
    with bar(total, desc, unit) as advance:
        for item in items:
            yield item
            advance(1)
