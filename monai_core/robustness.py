"""Conditions of the robustness benchmark: the validation patients as real studies would differ from them.

Each condition turns a patient's LGG slices (``(N, 3, 256, 256)`` in [0, 1], channels T1, FLAIR,
T1c) into the model input the product would compute for such a study, and gives the ground truth
on the same grid. Intensity changes that the product's normalisation sees (skull stripping, fat
suppression, a bias field) are followed by that normalisation: each channel is rescaled by the
ratio of the 99th percentiles of its non-zero voxels before and after the change, which is what
:func:`monai_core.preprocess.intensity_window` does to the changed volume relative to the original.
"x0.5" and "x2" scale the normalised input itself: they stand for a normalisation that went wrong.
"thin slices" treats the stack as a 0.94 x 0.94 x 5 mm volume, resamples it to 1 mm voxels and runs
the product's own grid mapping (:func:`monai_core.preprocess.model_grid`) on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import SimpleITK as sitk

from .preprocess import model_grid, to_model_space

__all__ = ["CONDITIONS", "Perturbed", "renormalise", "perturb"]

T1_CHANNELS = (0, 2)
FLAIR = 1
KAGGLE_SPACING = (0.94, 0.94, 5.0)  # about 240 mm across 256 pixels; LGG slices are 5-6 mm apart


@dataclass
class Perturbed:
    slices: np.ndarray  # (M, 3, 256, 256) float32 model input
    truth: np.ndarray  # (M, 256, 256) bool


def _p99(channel: np.ndarray) -> float:
    values = channel[channel > 0]
    return float(np.percentile(values, 99)) if values.size else 0.0


def renormalise(changed: np.ndarray, original: np.ndarray) -> np.ndarray:
    """``changed`` (N, 3, H, W) rescaled per channel as the 99th-percentile rule would, relative to ``original``."""
    out = np.empty_like(changed, dtype=np.float32)
    for c in range(changed.shape[1]):
        before, after = _p99(original[:, c]), _p99(changed[:, c])
        out[:, c] = changed[:, c] * (before / after if after > 0 else 1.0)
    return np.clip(out, 0.0, 1.0)


def _flair_only(x, brain):
    out = x.copy()
    for c in T1_CHANNELS:
        out[:, c] = x[:, FLAIR]
    return out


def _fat_suppressed(x, brain):
    out = x.copy()
    outside = np.where(brain, 1.0, 0.1).astype(np.float32)  # scalp and marrow fat lose 90% of their signal
    for c in T1_CHANNELS:
        out[:, c] = x[:, c] * outside
    return renormalise(out, x)


def _skull_stripped(x, brain):
    return renormalise(x * brain[:, None].astype(np.float32), x)


def _bias_field(x, brain):
    n, _, h, w = x.shape
    z, r, c = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    field = np.exp(0.35 * c + 0.25 * r - 0.2 * z + 0.25 * (r**2 - c**2)).astype(np.float32)  # about 0.5x to 2x
    return renormalise(x * field[:, None], x)


def _scaled(factor):
    return lambda x, brain: np.clip(x * factor, 0.0, 1.0).astype(np.float32)


SLICE_CONDITIONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "as is": lambda x, brain: x,
    "FLAIR only": _flair_only,
    "fat-suppressed T1/T1c": _fat_suppressed,
    "skull-stripped": _skull_stripped,
    "intensities x0.5": _scaled(0.5),
    "intensities x2": _scaled(2.0),
    "bias field": _bias_field,
}
CONDITIONS = [*SLICE_CONDITIONS, "1 mm thin slices"]


def _thin_slices(x: np.ndarray, truth: np.ndarray) -> Perturbed:
    """The stack as a 0.94 x 0.94 x 5 mm volume, resampled to 1 mm, then through the product's model grid."""

    def volume(array: np.ndarray) -> sitk.Image:
        image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
        image.SetSpacing(KAGGLE_SPACING)
        return image

    source = volume(x[:, 0])
    thin = sitk.Image([int((n - 1) * s) + 1 for n, s in zip(source.GetSize(), KAGGLE_SPACING)], sitk.sitkFloat32)
    thin.SetSpacing((1.0, 1.0, 1.0))  # same first voxel centre, same extent
    grid = model_grid(thin)
    channels = []
    for c in range(3):
        on_thin = sitk.Resample(volume(x[:, c]), thin, sitk.Transform(), sitk.sitkBSpline, 0.0, sitk.sitkFloat32)
        channels.append(to_model_space(on_thin, grid))
    slices = renormalise(np.stack(channels, axis=1), x)
    label = sitk.Resample(volume(truth.astype(np.float32)), grid, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return Perturbed(slices.astype(np.float32), sitk.GetArrayFromImage(label) >= 0.5)


def perturb(condition: str, slices: np.ndarray, truth: np.ndarray, brain: np.ndarray) -> Perturbed:
    """The model input and truth of one patient under ``condition`` (one of :data:`CONDITIONS`)."""
    if condition == "1 mm thin slices":
        return _thin_slices(slices, truth)
    return Perturbed(SLICE_CONDITIONS[condition](slices, brain).astype(np.float32), truth)
