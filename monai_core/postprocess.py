"""3D clean-up of the slice masks: drop lesion fragments far smaller than the main lesion.

The segmenter sees one slice at a time, so its false positives are scattered specks on single
slices, while an LGG FLAIR abnormality is one (or a few) connected volumes. Keeping only the 3D
connected components of at least ``min_fraction`` of the largest one removes the specks; the
fraction is chosen on validation patients (``training/choose_thresholds.py``).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

__all__ = ["keep_main_components"]


def keep_main_components(mask: np.ndarray, min_fraction: float) -> np.ndarray:
    """``mask`` (slices, rows, columns) without the 3D components smaller than ``min_fraction`` x the largest.

    ``min_fraction`` 0 keeps everything, 1 keeps only the largest component (face connectivity).
    """
    mask = np.asarray(mask, bool)
    if min_fraction <= 0 or not mask.any():
        return mask
    components = sitk.RelabelComponent(sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8))))
    labels = sitk.GetArrayFromImage(components)  # 1 = largest, then by decreasing size
    sizes = np.bincount(labels.ravel())
    kept = np.flatnonzero(sizes >= min_fraction * sizes[1])
    return np.isin(labels, kept[kept > 0])
