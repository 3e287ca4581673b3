"""ITK's cubic B-spline resampling, one axis at a time, for a grid whose axes run along the volume's own axes.

ITK evaluates 64 B-spline coefficients per output voxel, with a per-point overhead: 0.4 s of CPU for the
256x256x26 model grid of the sample FLAIR, nine tenths of reading it (the coefficients themselves, the
B-spline decomposition of the whole input, cost 0.06 s). When every grid axis runs along one axis of
the volume, as the model grid does along the FLAIR it was made from (the FLAIR relabelled to LPS, other
in-plane spacing, the same slices), the cubic B-spline is a product of three 1D ones: per axis, ITK's
decomposition along that axis and four weighted coefficients per output position, a few slices at a
time (0.06-0.09 s of CPU on the sample FLAIR, against ITK's 0.41-0.56 s). Positions that fall on the
samples (the FLAIR's own slices; every axis of a volume already on its model grid) take the samples,
which is what the interpolating spline returns. A position outside the volume's [-0.5, n - 0.5) index
range gets ITK's default value 0. The result equals ITK's to float rounding (tests/test_bspline.py).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

__all__ = ["resample_axis_aligned"]

_CHUNK = 8  # output slices resampled in-plane at once
_ALIGNED = 1e-6  # largest drift, in input voxels over the whole grid, that still counts as "along one input axis"


def resample_axis_aligned(volume: sitk.Image, grid: sitk.Image) -> np.ndarray | None:
    """``sitk.Resample(volume, grid, identity, sitkBSpline, 0.0, sitkFloat32)`` as a (z, y, x) float32 array,
    or None when a grid axis does not run along one volume axis (or a volume axis is shorter than 4 voxels,
    where ITK's mirror boundary leaves the axis), so that the caller resamples with ITK instead.

    Equal to ITK's result to float rounding (computed in float64, as ITK does, then rounded to float32).
    """
    axes = _axis_map(volume, grid)
    if axes is None:
        return None
    # numpy axes run z, y, x (ITK axis 2, 1, 0): put the volume axis under each grid axis in that order
    data = np.transpose(sitk.GetArrayViewFromImage(volume), [2 - axes[a][0] for a in (2, 1, 0)])
    size = grid.GetSize()
    positions = [scale * np.arange(size[a]) + offset for a, (_, scale, offset) in enumerate(axes)]
    lengths = [volume.GetSize()[along] for along, _, _ in axes]
    slices = _resample_axis(data, 0, lengths[2], positions[2])  # on a model grid, the volume's own slices
    out = np.empty(size[::-1], np.float32)
    for start in range(0, size[2], _CHUNK):  # in-plane a few slices at a time: temporaries of a few MB
        part = _resample_axis(slices[start : start + _CHUNK], 1, lengths[1], positions[1])
        out[start : start + _CHUNK] = _resample_axis(part, 2, lengths[0], positions[0])
    return out


def _resample_axis(array: np.ndarray, axis: int, n: int, positions: np.ndarray) -> np.ndarray:
    """``array`` with its ``axis`` (n samples) resampled at ``positions``: the axis' B-spline coefficients,
    then four weighted coefficients per position. Plain numpy loops, no BLAS: a multi-threaded BLAS
    spin-waits for its threads, and burnt three times the CPU on these small products."""
    moved = np.moveaxis(array, axis, 0)
    nearest = np.round(positions)
    if np.all(np.abs(positions - nearest) < _ALIGNED) and nearest.min() >= 0 and nearest.max() <= n - 1:
        # on the samples themselves the spline returns them (the FLAIR's slices): ITK's weights differ by rounding
        return np.moveaxis(moved[nearest.astype(int)], 0, axis)
    coefficients = _coefficients(moved)
    first = np.floor(positions)
    w = positions - first
    w3 = w ** 3 / 6
    w0 = 1 / 6 + 0.5 * w * (w - 1) - w3
    w2 = w + w0 - 2 * w3
    w1 = 1 - w0 - w2 - w3
    inside = (positions >= -0.5) & (positions < n - 0.5)  # elsewhere ResampleImageFilter's default value, 0
    out = np.zeros((len(positions),) + moved.shape[1:])
    term = np.empty_like(out)
    shape = (-1,) + (1,) * (moved.ndim - 1)
    for tap, weight in enumerate((w0, w1, w2, w3)):
        index = first - 1 + tap
        index = np.where(index < 0, -index, np.where(index > n - 1, 2 * (n - 1) - index, index))  # ITK's mirror
        index = np.where(inside, index, 0).astype(np.intp)
        np.take(coefficients, index, axis=0, out=term)
        term *= np.where(inside, weight, 0.0).reshape(shape)
        out += term
    return np.moveaxis(out, 0, axis)


def _coefficients(samples: np.ndarray) -> np.ndarray:
    """Cubic B-spline coefficients along axis 0, as ITK's BSplineDecompositionImageFilter computes them
    (Unser 1999: gain, causal and anti-causal recursion, mirror boundaries, initial sum to 1e-10)."""
    pole = np.sqrt(3.0) - 2.0
    c = np.ascontiguousarray(samples, dtype=np.float64) * ((1 - pole) * (1 - 1 / pole))  # whole slabs per sample
    n = len(c)
    horizon = int(np.ceil(np.log(1e-10) / np.log(abs(pole))))
    if horizon < n:
        c[0] = np.tensordot(pole ** np.arange(horizon), c[:horizon], axes=1)
    else:  # the whole mirrored signal
        k = np.arange(1, n - 1)
        first = c[0] + pole ** (n - 1) * c[n - 1] + np.tensordot(pole ** k + pole ** (2 * (n - 1) - k), c[1 : n - 1], axes=1)
        c[0] = first / (1 - pole ** (2 * (n - 1)))
    for i in range(1, n):
        c[i] += pole * c[i - 1]
    c[n - 1] = (pole / (pole * pole - 1)) * (pole * c[n - 2] + c[n - 1])
    for i in range(n - 2, -1, -1):
        c[i] = pole * (c[i + 1] - c[i])
    return c


def _axis_map(volume: sitk.Image, grid: sitk.Image) -> list[tuple[int, float, float]] | None:
    """Per grid axis (x, y, z): the volume axis it runs along, and the volume's continuous index there as
    ``scale * grid index + offset``; None unless every grid axis runs along a different volume axis."""
    if min(volume.GetSize()) < 4:
        return None

    def index_to_physical(image):
        return np.asarray(image.GetDirection(), float).reshape(3, 3) @ np.diag(image.GetSpacing())

    to_volume = np.linalg.inv(index_to_physical(volume))
    matrix = to_volume @ index_to_physical(grid)  # grid index -> volume continuous index
    offset = to_volume @ (np.asarray(grid.GetOrigin()) - np.asarray(volume.GetOrigin()))
    axes = []
    for a in range(3):
        column = matrix[:, a]
        along = int(np.argmax(np.abs(column)))
        drift = np.delete(np.abs(column), along) * max(grid.GetSize()[a] - 1, 1)
        if np.any(drift > _ALIGNED) or along in [b for b, _, _ in axes]:
            return None
        axes.append((along, float(column[along]), float(offset[along])))
    return axes
