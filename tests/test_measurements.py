"""Measurements (monai_core.measurements) against shapes whose answers are known.

Diameters run between boundary pixel centres plus half a pixel, so a digitised ellipse with
semi-axes 20 and 10 mm must read 40 and 20 mm within one pixel, whatever its angle and offset.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from monai_core.measurements import MEASUREMENT_KEYS, measure

SPACING = (0.6, 0.9, 4.0)  # anisotropic in-plane, thick slices
PIXEL = max(SPACING[:2])


def volume(shapes, spacing=SPACING, size=(160, 120, 7), direction=None) -> sitk.Image:
    """A uint8 image with ``shapes[k](x_mm, y_mm)`` filled on slice k (in-plane mm from the slice centre)."""
    sx, sy, _ = spacing
    x = (np.arange(size[0]) - size[0] / 2 + 0.37) * sx  # off the pixel grid: no boundary falls on a centre
    y = (np.arange(size[1]) - size[1] / 2 + 0.21) * sy
    X, Y = np.meshgrid(x, y)
    array = np.zeros(size[::-1], np.uint8)
    for k, shape in shapes.items():
        array[k] = shape(X, Y)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    if direction is not None:
        image.SetDirection(direction)
    return image


def ellipse(a, b, degrees=0.0, cx=0.0, cy=0.0):
    t = np.radians(degrees)

    def inside(X, Y):
        u = (X - cx) * np.cos(t) + (Y - cy) * np.sin(t)
        v = -(X - cx) * np.sin(t) + (Y - cy) * np.cos(t)
        return (u / a) ** 2 + (v / b) ** 2 <= 1

    return inside


@pytest.mark.parametrize("degrees", [0, 30, 90, 125])
def test_ellipse_40_by_20_mm_at_any_angle(degrees):
    result = measure(volume({3: ellipse(20, 10, degrees)}))
    assert result["longest_diameter_mm"] == pytest.approx(40, abs=PIXEL)
    assert result["perpendicular_diameter_mm"] == pytest.approx(20, abs=PIXEL)
    assert result["bidimensional_product_mm2"] == pytest.approx(
        result["longest_diameter_mm"] * result["perpendicular_diameter_mm"], abs=0.051)
    assert result["measurement_slice"] == 3
    assert result["volume_ml"] == pytest.approx(np.pi * 20 * 10 * SPACING[2] / 1000, rel=0.02)


def test_longest_diameter_is_simpleitk_feret_diameter_plus_half_a_pixel():
    image = volume({2: ellipse(20, 10)})
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.ComputeFeretDiameterOn()
    statistics.Execute(sitk.ConnectedComponent(image[:, :, 2], True))
    feret = statistics.GetFeretDiameter(1)  # centre to centre; half a pixel along a near-horizontal axis is added
    assert feret + SPACING[0] / 2 - 0.01 <= measure(image)["longest_diameter_mm"] <= feret + PIXEL / 2


def test_rectangle_is_measured_along_its_diagonal():
    """A 40 x 20 mm rectangle: calipers go corner to corner (44.7 mm, to a pixel on each side); the
    perpendicular then crosses the rectangle obliquely, so it is neither 20 mm nor its 35.8 mm width."""
    rectangle = {4: lambda X, Y: (np.abs(X) <= 20) & (np.abs(Y) <= 10)}
    result = measure(volume(rectangle))
    assert np.hypot(40 - SPACING[0], 20 - SPACING[1]) <= result["longest_diameter_mm"] <= np.hypot(40, 20)
    assert 20 < result["perpendicular_diameter_mm"] < 2 * 40 * 20 / np.hypot(40, 20) + PIXEL


def test_sphere_volume_and_mean_diameter():
    spacing, radius = (0.9, 0.9, 1.5), 15.0
    size = (64, 64, 40)
    z = (np.arange(size[2]) - size[2] / 2 + 0.3) * spacing[2]
    shapes = {k: (lambda X, Y, z=z[k]: X**2 + Y**2 + z**2 <= radius**2) for k in range(size[2])}
    result = measure(volume(shapes, spacing, size))
    exact_mm3 = 4 / 3 * np.pi * radius**3
    assert result["volume_ml"] == pytest.approx(exact_mm3 / 1000, rel=0.02)
    assert result["mean_diameter_mm"] == pytest.approx((2 * result["volume_ml"] * 1000) ** (1 / 3), abs=0.01)
    assert result["mean_diameter_mm"] == pytest.approx((2 * exact_mm3) ** (1 / 3), rel=0.01)  # about 2r
    assert abs(result["measurement_slice"] - size[2] // 2) <= 1  # the widest section, to a slice
    assert result["longest_diameter_mm"] == pytest.approx(30, abs=spacing[0])


def test_largest_product_wins_over_slices_and_lesions():
    """Two lesions on slice 1 and a larger one on slice 5: the reported lesion is the largest product."""
    shapes = {
        1: lambda X, Y: ellipse(8, 6, cx=-25)(X, Y) | ellipse(14, 9, cx=20)(X, Y),
        5: ellipse(18, 12, 45),
    }
    result = measure(volume(shapes))
    assert result["measurement_slice"] == 5
    assert result["longest_diameter_mm"] == pytest.approx(36, abs=PIXEL)
    alone = measure(volume({1: shapes[1]}))
    assert alone["longest_diameter_mm"] == pytest.approx(28, abs=PIXEL)  # the larger of the two, not both spanned


def test_slice_index_is_that_of_the_training_orientation():
    """A volume stored inferior-to-superior reversed: measurement_slice counts as report.json's slices do."""
    flipped = volume({1: ellipse(20, 10)}, direction=(1, 0, 0, 0, 1, 0, 0, 0, -1))
    assert measure(flipped)["measurement_slice"] == 7 - 1 - 1


def test_empty_mask_has_zero_volume_and_null_diameters():
    result = measure(volume({}))
    assert result == {**dict.fromkeys(MEASUREMENT_KEYS), "volume_ml": 0.0}


def test_slice_stack_without_spacing_gives_nulls():
    """A Kaggle stack (NumPy, no spacing): no millimetres rather than guessed ones."""
    stack = np.zeros((20, 256, 256), np.uint8)
    stack[10, 100:140, 90:120] = 1
    assert measure(stack) == dict.fromkeys(MEASUREMENT_KEYS)


def test_real_lesion_volume_matches_the_voxel_count():
    from conftest import RAW

    lesion = sitk.ReadImage(str(RAW / "flair_lesion.nii.gz"))
    result = measure(lesion)
    voxels = int(sitk.GetArrayViewFromImage(lesion).sum())
    assert result["volume_ml"] == pytest.approx(voxels * np.prod(lesion.GetSpacing()) / 1000, abs=0.001)
    assert 0 < result["perpendicular_diameter_mm"] <= result["longest_diameter_mm"]
