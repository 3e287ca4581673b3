"""The preprocessing contract, validated on TCGA-FG-6692, whose Kaggle slices are in the training data.

The Kaggle grid of this patient is its pre-contrast T1's; the FLAIR and post-contrast T1 were
registered onto it (data README). These tests rebuild the Kaggle channels from the raw volumes and
map the Kaggle mask onto the raw FLAIR and back.
"""

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image

from conftest import KAGGLE, RAW
from monai_core.data import find_slices
from monai_core.io.volumes import read_volume
from monai_core.metrics import dice
from monai_core.preprocess import from_model_space, intensity_window, model_grid, register_rigid, to_model_space

CASE = KAGGLE / "TCGA_FG_6692_20020606"


@pytest.fixture(scope="module")
def raw():
    t1, flair, t1c = (read_volume(RAW / f"{name}.nii.gz") for name in ("t1", "flair", "t1c"))
    kaggle = np.stack([np.asarray(Image.open(image)) for _, image, _ in find_slices(CASE)]).astype(np.float32) / 255
    mask = np.stack([np.asarray(Image.open(m)) > 0 for _, _, m in find_slices(CASE)]).astype(np.float32)
    return {"t1": t1, "flair": flair, "t1c": t1c, "kaggle": kaggle, "mask": mask, "flair_to_t1": register_rigid(t1, flair)}


def median_r(a, b):
    return float(np.median([np.corrcoef(x.ravel(), y.ravel())[0, 1] for x, y in zip(a, b)]))


def test_raw_volumes_reproduce_the_kaggle_channels(raw):
    grid = model_grid(raw["t1"])
    t1 = intensity_window(to_model_space(raw["t1"], grid))
    flair = intensity_window(to_model_space(raw["flair"], grid, raw["flair_to_t1"]))
    assert t1.shape == (26, 256, 256)
    assert median_r(t1, raw["kaggle"][..., 0]) >= 0.95
    assert median_r(flair, raw["kaggle"][..., 1]) >= 0.90
    # the intensity scale matches too, not only the correlation
    assert abs(float(np.mean(t1)) - float(np.mean(raw["kaggle"][..., 0]))) < 0.02


def test_a_registered_sequence_is_interpolated_linearly(raw):
    """Through a registration's transform, to_model_space is ITK's linear resampling (why: REGISTERED_INTERPOLATOR);
    the FLAIR onto its own grid stays a cubic B-spline (tests/test_bspline.py)."""
    grid = model_grid(raw["t1"])
    linear = sitk.Resample(raw["flair"], grid, raw["flair_to_t1"], sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    assert np.array_equal(to_model_space(raw["flair"], grid, raw["flair_to_t1"]), np.clip(sitk.GetArrayFromImage(linear), 0, None))


def test_header_geometry_alone_does_not_align_the_flair(raw):
    """Why registration is needed: without it the FLAIR channel correlates far less."""
    flair = intensity_window(to_model_space(raw["flair"], model_grid(raw["t1"])))
    assert median_r(flair, raw["kaggle"][..., 1]) < 0.8


def test_kaggle_mask_to_raw_flair_and_back_reproduces_itself(raw):
    t1_grid = model_grid(raw["t1"])
    t1_to_flair = raw["flair_to_t1"]
    on_flair = from_model_space(raw["mask"], t1_grid, raw["flair"], 0.5, t1_to_flair.GetInverse())
    assert sitk.GetArrayViewFromImage(on_flair).sum() > 1000
    back = to_model_space(sitk.Cast(on_flair, sitk.sitkFloat32), t1_grid, t1_to_flair) >= 0.5
    assert dice(back, raw["mask"] > 0) >= 0.95


def test_reference_lesion_shipped_for_the_tests_matches_the_mapping(raw):
    shipped = sitk.ReadImage(str(RAW / "flair_lesion.nii.gz"))
    mapped = from_model_space(raw["mask"], model_grid(raw["t1"]), raw["flair"], 0.5, raw["flair_to_t1"].GetInverse())
    assert dice(sitk.GetArrayFromImage(shipped), sitk.GetArrayFromImage(mapped)) >= 0.95


def test_model_space_does_not_depend_on_how_the_volume_is_stored(raw):
    """A volume stored with permuted and flipped axes (as a sagittal series would be) gives the same slices."""
    flair = raw["flair"]
    permuted = sitk.DICOMOrient(flair, "SRA")  # slices along another axis, rows and columns flipped
    assert permuted.GetSize() != flair.GetSize()
    a = to_model_space(flair, model_grid(flair))
    b = to_model_space(permuted, model_grid(permuted))
    assert a.shape == b.shape
    assert np.allclose(a, b, atol=1e-3 * a.max())


def test_round_trip_on_the_input_grid(raw):
    flair = raw["flair"]
    grid = model_grid(flair)
    blob = np.zeros(flair.GetSize()[::-1], np.float32)
    blob[10:14, 100:140, 80:130] = 1
    image = sitk.GetImageFromArray(blob)
    image.CopyInformation(flair)
    model = to_model_space(image, grid)
    back = sitk.GetArrayFromImage(from_model_space(model, grid, flair, 0.5))
    assert dice(back, blob) >= 0.95


def _whole_map_back(probabilities, grid, target, threshold):
    """The reference: resample the whole float map onto the target, then threshold."""
    image = sitk.GetImageFromArray(probabilities.astype(np.float32))
    image.CopyInformation(grid)
    back = sitk.Resample(image, target, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    return sitk.GetArrayFromImage(back) >= threshold


@pytest.mark.parametrize("tilted", [False, True])
def test_mapping_back_only_the_lesion_box_gives_the_whole_map_s_mask(raw, tilted):
    flair = sitk.Image(raw["flair"])
    if tilted:  # an oblique acquisition, reoriented by the model grid
        rotation = sitk.Euler3DTransform((0, 0, 0), 0.3, -0.2, 0.4)
        flair.SetDirection(np.asarray(rotation.GetMatrix()).tolist())
    grid = model_grid(flair)
    rng = np.random.default_rng(0)
    probabilities = rng.uniform(0, 0.3, (26, 256, 256)).astype(np.float32)  # a sigmoid is never exactly zero
    probabilities[9:15, 90:150, 70:140] = rng.uniform(0, 1, (6, 60, 70))
    probabilities[0, 0:5, 250:256] = 0.9  # a lesion at the corner of the volume
    for threshold in (0.5, 0.35):
        mapped = sitk.GetArrayFromImage(from_model_space(probabilities, grid, flair, threshold))
        expected = _whole_map_back(probabilities, grid, flair, threshold)
        assert expected.sum() > 1000
        assert np.array_equal(mapped, expected)
    empty = from_model_space(np.full((26, 256, 256), 0.1, np.float32), grid, flair, 0.5)
    assert sitk.GetArrayViewFromImage(empty).sum() == 0 and empty.GetSize() == flair.GetSize()
    assert empty.GetPixelID() == sitk.sitkUInt8 and empty.GetOrigin() == flair.GetOrigin()


def test_volumes_that_do_not_overlap_are_refused(raw):
    from monai_core.errors import InputError

    moved = sitk.Image(raw["t1"])
    moved.SetOrigin([o + 1000 for o in moved.GetOrigin()])
    with pytest.raises(InputError, match="does not overlap"):
        register_rigid(raw["flair"], moved, path="t1.nii.gz")
