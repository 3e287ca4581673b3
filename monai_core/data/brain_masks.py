"""Read the per-patient brain masks written by ``training/make_brain_masks.py``.

The file is one compressed ``.npz``. For each patient ``P`` it holds ``P``: the bool mask of shape
``(N, H, W)`` packed with ``np.packbits(mask, axis=-1)`` (uint8, ``(N, H, ceil(W/8))``), and
``__shape__P``: ``[N, H, W]``. Slice ``k`` is the ``k``-th slice of ``find_slices`` order. An optional
``__meta__`` key holds a JSON string saying how the masks were made; it is not a patient.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["SHAPE_PREFIX", "META_KEY", "pack_brain_masks", "load_brain_masks"]

SHAPE_PREFIX = "__shape__"
META_KEY = "__meta__"


def pack_brain_masks(masks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The ``npz`` entries for ``{patient: bool (N, H, W)}``; pass them to ``np.savez_compressed``."""
    entries = {}
    for patient, mask in masks.items():
        if patient.startswith("__"):
            raise ValueError(f"patient name {patient!r} may not start with '__'")
        mask = np.asarray(mask, dtype=bool)
        if mask.ndim != 3:
            raise ValueError(f"{patient}: mask must be (N, H, W), got {mask.shape}")
        entries[patient] = np.packbits(mask, axis=-1)
        entries[SHAPE_PREFIX + patient] = np.asarray(mask.shape, dtype=np.int64)
    return entries


def load_brain_masks(path: str | Path) -> dict[str, np.ndarray]:
    """``{patient: bool array (N, H, W)}`` from a brain-mask ``.npz``."""
    masks = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            if key.startswith("__"):
                continue
            shape = tuple(int(s) for s in data[SHAPE_PREFIX + key])
            mask = np.unpackbits(data[key], axis=-1, count=shape[-1]).astype(bool)
            if mask.shape != shape:
                raise ValueError(f"{path}: {key} unpacks to {mask.shape}, expected {shape}")
            masks[key] = mask
    return masks
