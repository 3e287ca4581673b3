"""Brain masks and brain gains on the LGG data list, for the skull-stripping and fat-suppression augmentation.

A slice item gets ``brain`` (uint8, (1, H, W)) and ``brain_gain`` (float32, (3,)). The gain of a
channel is what :func:`monai_core.preprocess.intensity_window` would do to the patient's volume if
its skull and scalp were gone: the 99th percentile of the volume's non-zero voxels over that of its
brain voxels. Computed once per patient from the slices themselves, so it needs no scanner data.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image

from .brain_masks import load_brain_masks

__all__ = ["DEFAULT_BRAIN_MASKS", "brain_gain", "attach_brain_masks"]

DEFAULT_BRAIN_MASKS = Path(__file__).resolve().parents[2] / "training" / "brain_masks.npz"
GAIN_LIMITS = (0.5, 3.0)  # a mask that misses most of the brain must not blow the intensities up


def brain_gain(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Per-channel p99(non-zero voxels) / p99(non-zero brain voxels); ``volume`` (N, H, W, C), ``brain`` (N, H, W)."""
    gains = []
    for channel in np.moveaxis(volume, -1, 0):
        everything = channel[channel > 0]
        inside = channel[(channel > 0) & brain]
        if everything.size == 0 or inside.size == 0:
            gains.append(1.0)
            continue
        gains.append(float(np.percentile(everything, 99)) / max(float(np.percentile(inside, 99)), 1e-6))
    return np.clip(np.asarray(gains, np.float32), *GAIN_LIMITS)


def attach_brain_masks(items: list[dict], masks_path: str | Path = DEFAULT_BRAIN_MASKS) -> list[dict]:
    """The items with ``brain`` and ``brain_gain`` added; every patient must have a mask."""
    masks = load_brain_masks(masks_path)
    by_patient = defaultdict(list)
    for item in items:
        by_patient[item["patient"]].append(item)
    out = []
    for patient, slices in by_patient.items():
        if patient not in masks:
            raise ValueError(f"{masks_path}: no brain mask for {patient}; run training/make_brain_masks.py")
        mask = masks[patient]
        slices = sorted(slices, key=lambda item: item["slice"])
        if len(mask) < slices[-1]["slice"]:
            raise ValueError(f"{masks_path}: {patient} has {len(mask)} mask slices, the data {slices[-1]['slice']}")
        volume = np.stack([np.asarray(Image.open(item["image"])) for item in slices])
        gain = brain_gain(volume, mask[[item["slice"] - 1 for item in slices]])
        for item in slices:
            out.append({**item, "brain": mask[item["slice"] - 1][None].astype(np.uint8), "brain_gain": gain})
    position = {(item["patient"], item["slice"]): i for i, item in enumerate(items)}
    return sorted(out, key=lambda item: position[(item["patient"], item["slice"])])
