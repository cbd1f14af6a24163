"""``--tensorboard``: TensorBoard event files of every training, ``OUT/tensorboard/<training>/`` (loss, accuracy
and learning rate per epoch), written through torch's ``SummaryWriter``. The ``tensorboard`` package is an
optional extra: ``pip install 'advtransfer[tensorboard]'``; then ``tensorboard --logdir OUT/tensorboard``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import UserError
from .train import EPOCH_HOOK

INSTALL_HINT = "pip install 'advtransfer[tensorboard]'"
SCALARS = ("train_loss", "train_acc", "val_acc", "lr")


def check_available() -> None:
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise UserError(f"--tensorboard needs the tensorboard package, an optional dependency: {INSTALL_HINT}") \
            from None


@contextmanager
def tensorboard(out: Path) -> Iterator[None]:
    """Write event files for every training while the context is active."""
    check_available()
    from torch.utils.tensorboard import SummaryWriter

    writers: dict[str, SummaryWriter] = {}

    def write(name: str, entry: dict) -> None:
        writer = writers.get(name)
        if writer is None:
            writer = writers[name] = SummaryWriter(str(Path(out) / "tensorboard" / name))
        for key in SCALARS:
            if isinstance(entry.get(key), (int, float)):
                writer.add_scalar(key, float(entry[key]), int(entry["epoch"]))
        writer.flush()

    token = EPOCH_HOOK.set(write)
    try:
        yield
    finally:
        EPOCH_HOOK.reset(token)
        for writer in writers.values():
            writer.close()
