"""Seeded train/val/test splits, saved as manifests so every model of a run sees the same images.

``intended``: stratified (each class split in the same proportions) into train / val / test; the validation set is
carved from the train part and the test set is never used for selection. ``as-run``: what the original did, a
seeded random (not stratified) 80/20 train/test split whose test part doubled as the per-epoch validation set.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..io import atomic_write_text


def stratified_split(labels: np.ndarray, test: float, val: float, seed: int) -> dict[str, np.ndarray]:
    """Per class: shuffle with the seed, first ``test`` fraction -> test, then ``val`` of the rest -> val."""
    rng = np.random.default_rng([seed, 11])
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = round(test * len(idx))
        n_val = round(val * (len(idx) - n_test))
        parts["test"].append(idx[:n_test])
        parts["val"].append(idx[n_test:n_test + n_val])
        parts["train"].append(idx[n_test + n_val:])
    return {k: np.sort(np.concatenate(v)) for k, v in parts.items()}


def random_split(n: int, test: float, seed: int) -> dict[str, np.ndarray]:
    """Unstratified train/test split; the test part is also the 'validation' set, as in the original."""
    rng = np.random.default_rng([seed, 12])
    order = rng.permutation(n)
    n_test = round(test * n)
    return {"train": np.sort(order[n_test:]), "val": np.sort(order[:n_test]), "test": np.sort(order[:n_test])}


def make_split(labels: np.ndarray, protocol: str, test: float, val: float, seed: int) -> dict[str, np.ndarray]:
    if protocol == "intended":
        return stratified_split(labels, test, val, seed)
    return random_split(len(labels), test, seed)


def pool_fingerprint(items: list[str], labels: np.ndarray) -> str:
    """Identifies the pool a split was drawn from (file list and labels), so a stale manifest is detected."""
    h = hashlib.sha256()
    for item, label in zip(items, labels.tolist()):
        h.update(f"{item}\t{label}\n".encode())
    return h.hexdigest()


def load_or_make_manifest(path: Path, items: list[str], labels: np.ndarray, protocol: str, test: float,
                          val: float, seed: int) -> dict[str, np.ndarray]:
    """Reuse the manifest at ``path`` if it was made from the same pool and settings; otherwise write a new one."""
    fingerprint = pool_fingerprint(items, labels)
    settings = {"protocol": protocol, "test": test, "val": val, "seed": seed, "pool_sha256": fingerprint}
    if path.is_file():
        try:
            saved = json.loads(path.read_text(encoding="utf-8"))
            indices = saved["indices"] if saved.get("settings") == settings else None
            if indices is not None:
                split = {k: np.asarray(indices[k], dtype=np.int64) for k in ("train", "val", "test")}
                if any(v.ndim != 1 or (len(v) and (v.min() < 0 or v.max() >= len(items))) for v in split.values()):
                    raise ValueError("indices outside the pool")
                return split
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError, AttributeError):
            raise DataError(f"split manifest {path} is corrupt or not a manifest of this kit: delete it and rerun "
                            "(the same seeded split is made again)") from None
        raise DataError(f"split manifest {path} was made from other data or settings ({saved.get('settings')}); "
                        "results in this output folder belong to that split: use a new --out folder, or delete the "
                        "folder's manifests/ and cells/ to start over")
    split = make_split(labels, protocol, test, val, seed)
    doc = {"settings": settings, "counts": {k: len(v) for k, v in split.items()},
           "indices": {k: v.tolist() for k, v in split.items()},
           "items": {k: [items[i] for i in v[:5]] for k, v in split.items()}}  # a few names, for a human reader
    atomic_write_text(path, json.dumps(doc))
    return split
