"""The one-axis-at-a-time B-spline resampling (monai_core.bspline) gives ITK's result, and only where it applies."""

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import RAW
from monai_core.bspline import resample_axis_aligned
from monai_core.io.volumes import read_volume
from monai_core.preprocess import intensity_window, model_grid, to_model_space


@pytest.fixture(scope="module")
def flair():
    return read_volume(RAW / "flair.nii.gz")


def itk_resample(volume, grid, transform=None):
    resampled = sitk.Resample(volume, grid, transform or sitk.Transform(), sitk.sitkBSpline, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(resampled)


def assert_same_as_itk(ours, volume, grid):
    """Equal to float32 rounding of the volume's intensities."""
    assert ours is not None, "the grid runs along the volume's axes: the one-axis-at-a-time path must be taken"
    expected = itk_resample(volume, grid)
    assert ours.shape == expected.shape and ours.dtype == np.float32
    scale = float(np.abs(expected).max())
    assert np.abs(ours - expected).max() <= 1e-6 * scale


def test_the_flair_on_its_model_grid_is_itk_s_resampling(flair):
    """The sample study's FLAIR: in-plane spacing changes, the slices are the FLAIR's own (taken as they are)."""
    grid = model_grid(flair)
    ours = resample_axis_aligned(flair, grid)
    assert_same_as_itk(ours, flair, grid)
    # and the network's channel is the one today's ITK resampling gives
    channel = intensity_window(to_model_space(flair, grid))
    assert np.abs(channel - intensity_window(np.clip(itk_resample(flair, grid), 0, None))).max() <= 1e-5


def test_a_volume_stored_with_permuted_and_flipped_axes(flair):
    """A sagittal-like storage: every grid axis runs along another, flipped, volume axis."""
    permuted = sitk.DICOMOrient(flair, "SRA")
    grid = model_grid(flair)
    assert_same_as_itk(resample_axis_aligned(permuted, grid), permuted, grid)


def test_between_slices_and_partly_outside_the_volume(flair):
    """A grid shifted by a fraction of a voxel on every axis, hanging over the volume's edges: the slice
    axis is interpolated too, and the points outside get ITK's default value 0."""
    grid = model_grid(flair)
    direction = np.asarray(grid.GetDirection()).reshape(3, 3)
    shift = direction @ (np.asarray(grid.GetSpacing()) * np.array([-40.3, 60.6, 0.37]))
    grid.SetOrigin((np.asarray(grid.GetOrigin()) + shift).tolist())
    ours = resample_axis_aligned(flair, grid)
    assert_same_as_itk(ours, flair, grid)
    expected = itk_resample(flair, grid)
    columns, rows = np.all(expected == 0, axis=(0, 1)), np.all(expected == 0, axis=(0, 2))
    assert columns.sum() >= 20 and rows.sum() >= 20  # the edges were crossed, and there the value is exactly 0
    assert np.all(ours[:, :, columns] == 0) and np.all(ours[:, rows, :] == 0)


def test_an_oblique_grid_falls_back_to_itk(flair):
    """A grid tilted against the volume is no product of 1D resamplings: None, and to_model_space uses ITK."""
    tilted = sitk.Euler3DTransform()
    tilted.SetRotation(0.0, 0.0, 0.05)
    grid = model_grid(flair)
    direction = np.asarray(tilted.GetMatrix()).reshape(3, 3) @ np.asarray(grid.GetDirection()).reshape(3, 3)
    grid.SetDirection(direction.ravel().tolist())
    assert resample_axis_aligned(flair, grid) is None
    assert np.array_equal(to_model_space(flair, grid), np.clip(itk_resample(flair, grid), 0, None))


def test_a_volume_thinner_than_the_spline_falls_back_to_itk(flair):
    """On an axis shorter than 4 voxels ITK's mirror boundary leaves the axis: that case stays ITK's."""
    thin = flair[:, :, 10:13]
    assert resample_axis_aligned(thin, model_grid(thin)) is None
