"""Reading DICOM series (monai_core.io.dicom) against a real MR series and broken copies of it.

The malformed inputs are built here from the real sample (tests/data/dicom/README.md), so each
test shows exactly which header change it exercises.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.encaps import encapsulate
from pydicom.uid import (
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from conftest import save_enhanced_mr
from monai_core.errors import InputError
from monai_core.io.dicom import read_series
from monai_core.io.dicom_headers import list_series
from monai_core.series_choice import choose_series, series_role

SAMPLE = Path(__file__).parent / "data" / "dicom" / "PGBM-001_T1post"
N_SLICES, ROWS, COLUMNS = 12, 320, 260


def copy_sample(dest: Path) -> list[Path]:
    """A writable copy of the sample series; returns its files in InstanceNumber order."""
    shutil.copytree(SAMPLE, dest)
    return sorted(dest.glob("*.dcm"))


def rewrite(path: Path, change) -> None:
    """Apply ``change(ds)`` to one file in place."""
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


@pytest.fixture(scope="module")
def sample():
    return read_series(SAMPLE)


def test_geometry_and_voxels_match_simpleitk_series_reader(sample):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(SAMPLE)))
    reference = reader.Execute()
    image = sample.image
    assert image.GetSize() == (COLUMNS, ROWS, N_SLICES)
    np.testing.assert_allclose(image.GetSpacing(), reference.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(image.GetDirection(), reference.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), sitk.GetArrayFromImage(reference))


def test_geometry_comes_from_the_headers(sample):
    first = sample.datasets[0]
    np.testing.assert_allclose(sample.image.GetOrigin(), [float(v) for v in first.ImagePositionPatient])
    np.testing.assert_allclose(sample.image.GetSpacing(), (0.6875, 0.6875, 6.5), atol=1e-4)
    direction = np.array(sample.image.GetDirection()).reshape(3, 3)
    np.testing.assert_allclose(direction[:, 0], [float(v) for v in first.ImageOrientationPatient[:3]], atol=1e-6)
    np.testing.assert_allclose(direction[:, 1], [float(v) for v in first.ImageOrientationPatient[3:]], atol=1e-6)


def test_datasets_follow_the_image_z_axis(sample):
    assert [int(ds.InstanceNumber) for ds in sample.datasets] == list(range(7, 19))
    voxels = sitk.GetArrayFromImage(sample.image)
    for z, ds in enumerate(sample.datasets):
        np.testing.assert_array_equal(voxels[z], ds.pixel_array)
    assert sample.series_uid == sample.datasets[0].SeriesInstanceUID
    assert sample.frames is None


def test_slice_order_does_not_depend_on_file_names(tmp_path):
    files = copy_sample(tmp_path / "series")
    for i, path in enumerate(reversed(files)):  # names now run against the slice order
        path.rename(path.with_name(f"x{i:02d}.dcm"))
    series = read_series(tmp_path / "series")
    assert [int(ds.InstanceNumber) for ds in series.datasets] == list(range(7, 19))


def test_list_series_walks_subfolders_and_skips_other_files(tmp_path):
    files = copy_sample(tmp_path / "study" / "a")
    (tmp_path / "study" / "b").mkdir()
    for path in files[6:]:
        path.rename(tmp_path / "study" / "b" / path.name)
    (tmp_path / "study" / "README.txt").write_text("not DICOM")
    (tmp_path / "study" / "b" / "empty.dcm").write_bytes(b"")
    [info] = list_series(tmp_path / "study")
    assert (info.n_files, info.n_frames, info.modality, info.description) == (12, 12, "MR", "T1post")
    assert info.protocol == "B T1 AXIAL SE +"
    assert info.files == sorted(info.files)
    assert read_series(tmp_path / "study").image.GetSize() == (COLUMNS, ROWS, N_SLICES)


def test_no_dicom_files(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(InputError, match="no DICOM files found"):
        read_series(tmp_path)


def test_two_series_in_one_folder_are_listed_and_can_be_chosen(tmp_path):
    files = copy_sample(tmp_path / "series")
    other_uid = generate_uid()

    def second_series(ds):
        ds.SeriesInstanceUID = other_uid
        ds.SeriesDescription = "T2 FLAIR"

    for path in files[:4]:
        rewrite(path, second_series)
    with pytest.raises(InputError) as error:
        read_series(tmp_path / "series")
    message = str(error.value)
    assert "holds 2 series" in message and other_uid in message and "'T2 FLAIR'" in message
    assert "4 slices" in message and "8 slices" in message and "choose one" in message
    assert "\n" not in message
    assert "PGBM-001" not in message.replace(str(tmp_path), "")  # no patient name or ID
    assert read_series(tmp_path / "series", series_uid=other_uid).image.GetSize()[2] == 4


def test_ct_is_refused(tmp_path):
    for path in copy_sample(tmp_path / "series"):
        rewrite(path, lambda ds: setattr(ds, "Modality", "CT"))
    with pytest.raises(InputError, match="modality CT"):
        read_series(tmp_path / "series")


def test_missing_slice_is_refused(tmp_path):
    files = copy_sample(tmp_path / "series")
    files[5].unlink()
    with pytest.raises(InputError, match="irregular.*missing slices"):
        read_series(tmp_path / "series")


def test_duplicate_position_is_refused(tmp_path):
    files = copy_sample(tmp_path / "series")
    duplicate = pydicom.dcmread(files[3])
    duplicate.SOPInstanceUID = generate_uid()
    duplicate.file_meta.MediaStorageSOPInstanceUID = duplicate.SOPInstanceUID
    duplicate.save_as(tmp_path / "series" / "copy.dcm")
    with pytest.raises(InputError, match="share the position"):
        read_series(tmp_path / "series")


def test_missing_image_position_is_refused(tmp_path):
    files = copy_sample(tmp_path / "series")
    rewrite(files[2], lambda ds: delattr(ds, "ImagePositionPatient"))
    with pytest.raises(InputError, match=f"{files[2].name} has no ImagePositionPatient"):
        read_series(tmp_path / "series")


def test_missing_pixel_data_is_refused(tmp_path):
    files = copy_sample(tmp_path / "series")
    rewrite(files[4], lambda ds: delattr(ds, "PixelData"))
    with pytest.raises(InputError, match="has no pixel data"):
        read_series(tmp_path / "series")


def test_implicit_vr_little_endian(tmp_path, sample):
    for path in copy_sample(tmp_path / "series"):
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=True)
    assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
    series = read_series(tmp_path / "series")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(series.image), sitk.GetArrayFromImage(sample.image))
    assert series.image.GetOrigin() == sample.image.GetOrigin()


@pytest.mark.parametrize("syntax", [RLELossless, JPEG2000Lossless], ids=["rle", "jpeg2000"])
def test_lossless_compressed_series(tmp_path, sample, syntax):
    for path in copy_sample(tmp_path / "series"):
        ds = pydicom.dcmread(path)
        ds.compress(syntax)
        ds.save_as(path)
    series = read_series(tmp_path / "series")
    assert series.datasets[0].file_meta.TransferSyntaxUID == syntax
    np.testing.assert_array_equal(sitk.GetArrayFromImage(series.image), sitk.GetArrayFromImage(sample.image))


def _as_jpeg_baseline(ds: pydicom.Dataset) -> np.ndarray:
    """Re-encode a slice as 8-bit JPEG Baseline (lossy) with Pillow; return the 8-bit original."""
    pixels = ds.pixel_array.astype(float)
    eight_bit = np.round(pixels / pixels.max() * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(eight_bit).save(buffer, format="JPEG", quality=95)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return eight_bit


def test_jpeg_baseline_series(tmp_path):
    originals = []
    for path in copy_sample(tmp_path / "series"):
        ds = pydicom.dcmread(path)
        originals.append(_as_jpeg_baseline(ds))
        ds.save_as(path)
    voxels = sitk.GetArrayFromImage(read_series(tmp_path / "series").image).astype(float)
    assert np.abs(voxels - np.stack(originals)).mean() < 2  # lossy, but the same image


def test_undecodable_transfer_syntax_is_one_clear_error(tmp_path):
    for path in copy_sample(tmp_path / "series"):
        ds = pydicom.dcmread(path)
        ds.PixelData = encapsulate([b"\xff\xd8 not a JPEG-LS stream \xff\xd9"])
        ds.file_meta.TransferSyntaxUID = JPEGLSLossless
        ds.save_as(path)
    with pytest.raises(InputError, match="cannot decode pixel data.*JPEG-LS") as error:
        read_series(tmp_path / "series")
    assert "\n" not in str(error.value)


def test_de_identified_files_without_patient_tags(tmp_path, sample):
    def strip(ds):
        for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "StudyDate"):
            if keyword in ds:
                delattr(ds, keyword)

    for path in copy_sample(tmp_path / "series"):
        rewrite(path, strip)
    series = read_series(tmp_path / "series")
    np.testing.assert_array_equal(sitk.GetArrayFromImage(series.image), sitk.GetArrayFromImage(sample.image))


@pytest.mark.filterwarnings("ignore:.*unlikely to represent the intended person name")
def test_enhanced_multiframe_mr(tmp_path, sample):
    # highdicom converts the single-frame series into one Legacy Converted Enhanced MR file,
    # whose frame geometry sits in the functional groups.
    series = read_series(save_enhanced_mr(SAMPLE, tmp_path / "series"))
    assert len(series.datasets) == 1 and sorted(series.frames) == list(range(N_SLICES))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(series.image), sitk.GetArrayFromImage(sample.image))
    np.testing.assert_allclose(series.image.GetOrigin(), sample.image.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(series.image.GetDirection(), sample.image.GetDirection(), atol=1e-6)
    np.testing.assert_allclose(series.image.GetSpacing(), sample.image.GetSpacing(), atol=1e-6)


# --------------------------------------------------------------------------- choosing series


@pytest.mark.parametrize(
    "description, protocol, role",
    [
        ("T1post", "B T1 AXIAL SE +", "t1c"),
        ("AX T2 FLAIR", "", "flair"),
        ("t2_tirm_tra_dark-fluid", "", "flair"),
        ("SAG T1 FLAIR", "", "t1"),
        ("T1 pre", "", "t1"),
        ("AX_T1_POST", "", "t1c"),
        ("Ax T1 +C", "", "t1c"),
        ("MPRAGE Gd", "", "t1c"),
        ("MPRAGE", "", "t1"),
        ("AX T1 GAD", "", "t1c"),
        ("", "t1_se_tra", "t1"),
        ("T2 TSE", "", None),
        ("ADC", "", None),
    ],
)
def test_series_role(description, protocol, role):
    assert series_role(description, protocol) == role


def make_study(root: Path, descriptions: dict[str, str]) -> dict[str, str]:
    """A study folder with one two-slice series per description; returns description -> UID."""
    uids = {}
    for number, description in enumerate(descriptions, start=1):
        uid = uids[description] = generate_uid()
        folder = root / f"series{number}"
        folder.mkdir(parents=True)
        for path in sorted(SAMPLE.glob("*.dcm"))[:2]:
            ds = pydicom.dcmread(path)
            ds.SeriesInstanceUID, ds.SeriesNumber = uid, number
            ds.SeriesDescription, ds.ProtocolName = description, descriptions[description]
            ds.save_as(folder / path.name)
    return uids


def test_select_series_picks_flair_t1_t1c(tmp_path):
    uids = make_study(tmp_path, {"AX T2 FLAIR": "", "T1 pre": "", "T1post": "B T1 AXIAL SE +", "DWI": ""})
    chosen = choose_series(tmp_path)
    assert chosen["flair"].series_uid == uids["AX T2 FLAIR"]
    assert chosen["t1"].series_uid == uids["T1 pre"]
    assert chosen["t1c"].series_uid == uids["T1post"]


def test_select_series_without_t1_gives_none(tmp_path):
    make_study(tmp_path, {"FLAIR": ""})
    chosen = choose_series(tmp_path)
    assert chosen["t1"] is None and chosen["t1c"] is None


def test_ambiguous_flair_lists_candidates_and_override_resolves_it(tmp_path):
    uids = make_study(tmp_path, {"AX FLAIR": "", "SAG 3D FLAIR": "", "T1": ""})
    with pytest.raises(InputError) as error:
        choose_series(tmp_path)
    message = str(error.value)
    assert "several series look like FLAIR" in message and "--flair-series" in message
    assert uids["AX FLAIR"] in message and uids["SAG 3D FLAIR"] in message
    chosen = choose_series(tmp_path, flair=uids["SAG 3D FLAIR"])
    assert chosen["flair"].series_uid == uids["SAG 3D FLAIR"] and chosen["t1"].series_uid == uids["T1"]


def test_no_flair_is_refused(tmp_path):
    make_study(tmp_path, {"T1 pre": "", "T1 post": ""})
    with pytest.raises(InputError, match="no FLAIR series found"):
        choose_series(tmp_path)


def test_unknown_override_uid_is_refused(tmp_path):
    make_study(tmp_path, {"FLAIR": ""})
    with pytest.raises(InputError, match="--t1c-series 1.2.3 is not an MR series"):
        choose_series(tmp_path, t1c="1.2.3")


def test_patterns_can_be_overridden(tmp_path):
    uids = make_study(tmp_path, {"DARKFLUID_AX": "", "SE_T1": ""})
    chosen = choose_series(tmp_path, patterns={"flair": r"darkfluid"})
    assert chosen["flair"].series_uid == uids["DARKFLUID_AX"]
