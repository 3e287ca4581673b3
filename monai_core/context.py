"""Neighbouring slices as extra input channels for the segmenter (2.5D), the same in training and inference.

A slice alone cannot always tell a FLAIR-bright lesion from bright normal cortex: the insula and the
temporal lobes look like lesion in one slice and like cortex across three. A 2.5D segmenter sees,
beside the slice's own T1, FLAIR and T1c, the FLAIR of the slice ``step`` below and above (Buda et
al.'s code has the same option). The LGG training slices are about 5 mm apart, so a scanner volume
with thinner slices takes the neighbours about :data:`CONTEXT_MM` away (:func:`context_step`);
at the first and last slice the slice itself stands in for the missing neighbour.

Kept free of MONAI: inference uses :func:`segmenter_input`; training uses :func:`with_context`
(data list) and ``monai_core.data.context_transforms.AddContextFlaird``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["CONTEXT_MM", "FLAIR", "context_channels", "context_step", "segmenter_input", "with_context"]

CONTEXT_MM = 5.0  # the spacing of the LGG training slices (about 0.94 x 0.94 x 5 mm)
FLAIR = 1


def context_channels(in_channels: int) -> bool:
    """Whether a segmenter with ``in_channels`` inputs takes the neighbours' FLAIR (5) or not (3)."""
    if in_channels not in (3, 5):
        raise ValueError(f"a TumorSeg segmenter takes 3 channels (T1, FLAIR, T1c) or 5 (and the neighbours' FLAIR), not {in_channels}")
    return in_channels == 5


def context_step(slice_spacing_mm: float | None) -> int:
    """How many slices away the neighbours are: about :data:`CONTEXT_MM`, at least one slice
    (a Kaggle stack, whose spacing is unknown, takes its own neighbours)."""
    if not slice_spacing_mm or slice_spacing_mm <= 0:
        return 1
    return max(1, int(round(CONTEXT_MM / slice_spacing_mm)))


def segmenter_input(slices, index: np.ndarray, step: int, context: bool):
    """The segmenter's input for ``slices[index]`` ((N, 3, H, W) numpy or torch): the slices
    themselves, or with ``context`` also the FLAIR of the slices ``step`` below and above."""
    index = np.asarray(index, np.int64)
    own = slices[index]
    if not context:
        return own
    below = np.clip(index - step, 0, len(slices) - 1)
    above = np.clip(index + step, 0, len(slices) - 1)
    parts = [own, slices[below][:, FLAIR : FLAIR + 1], slices[above][:, FLAIR : FLAIR + 1]]
    if isinstance(own, np.ndarray):
        return np.concatenate(parts, axis=1)
    import torch

    return torch.cat(parts, dim=1)


def with_context(items: list[dict]) -> list[dict]:
    """A slice data list with ``context``: the image paths of the slice below and above in the same
    patient (the slice itself at either end), for ``AddContextFlaird``."""
    by_patient: dict[str, dict[int, str]] = {}
    for item in items:
        by_patient.setdefault(item["patient"], {})[item["slice"]] = item["image"]
    out = []
    for item in items:
        slices = by_patient[item["patient"]]
        below = slices.get(item["slice"] - 1, item["image"])
        above = slices.get(item["slice"] + 1, item["image"])
        out.append({**item, "context": [below, above]})
    return out
