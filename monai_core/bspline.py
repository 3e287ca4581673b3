"""ITK's cubic B-spline resampling, one axis at a time, for a grid whose axes run along the volume's own axes.

ITK evaluates 64 B-spline coefficients per output voxel, with a per-point overhead: 0.4 s of CPU for the
256x256x26 model grid of the sample FLAIR, nine tenths of reading it (the coefficients themselves, the
B-spline decomposition of the whole input, cost 0.06 s). When every grid axis runs along one axis of
the volume, as the model grid does along the FLAIR it was made from (the FLAIR relabelled to LPS, other
in-plane spacing, the same slices), the cubic B-spline is a product of three 1D ones, and the resampling
is three small matrix products (a few hundredths of a second). Each axis' matrix is ITK's computation
written out: the decomposition with mirror boundaries, the cubic weights at each output position, and
the default value 0 for a position outside the volume's [-0.5, n - 0.5) index range.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

__all__ = ["resample_axis_aligned"]

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
    data = sitk.GetArrayViewFromImage(volume)
    # numpy axes run z, y, x (ITK axis 2, 1, 0): put the volume axis under each grid axis in that order
    out = np.transpose(data, [2 - axes[a][0] for a in (2, 1, 0)]).astype(np.float64)
    size = grid.GetSize()
    for a in range(3):  # x, y, z: numpy axis 2, 1, 0
        along, scale, offset = axes[a]
        out = _resample_axis(out, 2 - a, volume.GetSize()[along], scale * np.arange(size[a]) + offset)
    return out.astype(np.float32)


def _resample_axis(array: np.ndarray, axis: int, n: int, positions: np.ndarray) -> np.ndarray:
    """``array`` with its ``axis`` (n samples) resampled at ``positions``, as one matrix product."""
    moved = np.moveaxis(array, axis, 0)
    nearest = np.round(positions)
    if np.all(np.abs(positions - nearest) < _ALIGNED) and nearest.min() >= 0 and nearest.max() <= n - 1:
        # on the samples themselves the spline returns them (the FLAIR's slices): ITK's weights differ by rounding
        return np.moveaxis(moved[nearest.astype(int)], 0, axis)
    flat = np.ascontiguousarray(moved).reshape(n, -1)
    product = (_axis_matrix(n, positions) @ flat).reshape((len(positions),) + moved.shape[1:])
    return np.moveaxis(product, 0, axis)


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


def _axis_matrix(n: int, positions: np.ndarray) -> np.ndarray:
    """(len(positions), n): cubic B-spline interpolation of n samples at continuous indices ``positions``,
    as ITK computes it (BSplineDecompositionImageFilter and BSplineInterpolateImageFunction, mirror
    boundaries), and 0 for a position outside [-0.5, n - 0.5) (ResampleImageFilter's default value)."""
    def mirror(k):
        return np.where(k < 0, -k, np.where(k > n - 1, 2 * (n - 1) - k, k))

    # the decomposition: coefficients c whose spline passes through the samples, c = inverse(B) @ samples
    sampling = np.diag(np.full(n, 4 / 6)) + np.diag(np.full(n - 1, 1 / 6), 1) + np.diag(np.full(n - 1, 1 / 6), -1)
    sampling[0, 1] = sampling[n - 1, n - 2] = 2 / 6  # the mirrored neighbour of each end sample
    # the evaluation: four weights per position on the coefficients floor(x) - 1 ... floor(x) + 2
    positions = np.asarray(positions, float)
    first = np.floor(positions)
    w = positions - first
    w3 = w ** 3 / 6
    w0 = 1 / 6 + 0.5 * w * (w - 1) - w3
    w2 = w + w0 - 2 * w3
    w1 = 1 - w0 - w2 - w3
    inside = (positions >= -0.5) & (positions < n - 0.5)
    weights = np.zeros((len(positions), n))
    rows = np.flatnonzero(inside)
    for tap, tap_weight in enumerate((w0, w1, w2, w3)):
        columns = mirror(first[rows].astype(int) - 1 + tap)
        np.add.at(weights, (rows, columns), tap_weight[rows])  # add: two taps can mirror onto one coefficient
    return np.linalg.solve(sampling.T, weights.T).T  # weights @ inverse(sampling)
