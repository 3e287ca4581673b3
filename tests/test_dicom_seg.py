"""DICOM-SEG writing (monai_core.dicom_seg) and the ``export-dicom-seg`` command.

A synthetic mask on the real series' grid is written as a SEG and checked three independent ways:
dciodvfy (dicom3tools) validates it against the standard, highdicom reads it back through the
source-instance references, and dcmqi's segimage2itkimage converts it back to a volume.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

import monai_core
from conftest import save_enhanced_mr
from monai_core.cli import main
from monai_core.dicom_seg import (
    EmptySegmentationError,
    bundle_identity,
    mask_from_dicom_seg,
    write_dicom_seg,
)
from monai_core.errors import InputError
from monai_core.io.dicom import read_series
from monai_core.outputs import TUMOR_SEGMENT as SLICER_SEGMENT

SAMPLE = Path(__file__).parent / "data" / "dicom" / "PGBM-001_T1post"
# The full 24-slice series, where the shared data folder sits beside the repository (as in CI).
FULL_SERIES = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom" / "PGBM-001_T1post"
DCIODVFY = shutil.which("dciodvfy")
SEGIMAGE2ITKIMAGE = shutil.which("segimage2itkimage") or shutil.which(
    "segimage2itkimage", path=str(Path(sys.executable).parent)
)
PATIENT_AND_STUDY = (
    "PatientName", "PatientID", "PatientSex", "PatientAge", "StudyInstanceUID", "StudyDate", "StudyTime",
    "StudyID", "AccessionNumber", "ReferringPhysicianName", "FrameOfReferenceUID",
)
no_person_name_warning = pytest.mark.filterwarnings("ignore:.*unlikely to represent the intended person name")


def blob_mask(image: sitk.Image) -> np.ndarray:
    """A tumour-like mask on the series grid: an ellipsoid over a few slices, empty elsewhere."""
    z, y, x = np.ogrid[: image.GetSize()[2], : image.GetSize()[1], : image.GetSize()[0]]
    depth = image.GetSize()[2]
    centre = (depth // 2, 150, 120)
    inside = ((z - centre[0]) / 1.6) ** 2 + ((y - centre[1]) / 30) ** 2 + ((x - centre[2]) / 22) ** 2 <= 1
    mask = inside.astype(np.uint8)
    mask[centre[0], 40:44, 200:203] = 1  # a second, separate component
    return mask


def dciodvfy_errors(path: Path) -> tuple[list[str], str]:
    """dciodvfy's error lines for ``path`` and its whole output; a file it cannot read ("Abort") is an error too."""
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=120)
    output = result.stdout + result.stderr
    return [line for line in output.splitlines() if line.startswith(("Error", "Abort"))], output


def segimage2itkimage(seg_path: Path, out: Path) -> str:
    """dcmqi's conversion of the SEG into ``out`` (NIfTI + meta.json); returns its console output."""
    result = subprocess.run([SEGIMAGE2ITKIMAGE, "--inputDICOM", str(seg_path), "--outputDirectory", str(out),
                             "--outputType", "nifti"], check=True, capture_output=True, text=True, timeout=120)
    return result.stdout + result.stderr


@pytest.fixture(scope="module")
def series():
    return read_series(SAMPLE)


@pytest.fixture(scope="module")
def mask(series):
    return blob_mask(series.image)


@pytest.fixture(scope="module")
def seg_path(series, mask, tmp_path_factory):
    path = tmp_path_factory.mktemp("seg") / "segmentation.dcm"
    write_dicom_seg(mask, series.datasets, path, "TumorSeg-test", "9.8.7")
    return path


def test_mask_has_empty_and_tumour_slices(mask):
    per_slice = mask.reshape(mask.shape[0], -1).sum(axis=1)
    assert (per_slice == 0).sum() >= 6 and (per_slice > 0).sum() >= 3


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: apt-get install -y dicom3tools")
def test_seg_passes_dciodvfy(seg_path):
    errors, output = dciodvfy_errors(seg_path)
    assert errors == [], output


def test_seg_reads_back_voxel_for_voxel(seg_path, series, mask):
    np.testing.assert_array_equal(mask_from_dicom_seg(seg_path, series.datasets), mask)
    # the mapping goes through the SOP instance references, so the order of the datasets given
    # must not matter
    np.testing.assert_array_equal(mask_from_dicom_seg(seg_path, list(reversed(series.datasets))), mask)


def test_seg_leaves_out_empty_frames(seg_path, mask):
    seg = hd.seg.segread(seg_path)
    assert int(seg.NumberOfFrames) == int((mask.reshape(mask.shape[0], -1).max(axis=1) > 0).sum())


def test_seg_content(seg_path):
    seg = hd.seg.segread(seg_path)
    assert seg.SegmentationType == "BINARY"
    assert seg.SeriesDescription == "TumorSeg"
    [segment] = seg.SegmentSequence
    assert segment.SegmentLabel == "Tumor"
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    category, = segment.SegmentedPropertyCategoryCodeSequence
    assert (category.CodeValue, category.CodingSchemeDesignator, category.CodeMeaning) == (
        "49755003", "SCT", "Morphologically Altered Structure")
    kind, = segment.SegmentedPropertyTypeCodeSequence
    assert (kind.CodeValue, kind.CodingSchemeDesignator, kind.CodeMeaning) == ("108369006", "SCT", "Neoplasm")
    region, = segment.AnatomicRegionSequence
    assert (region.CodeValue, region.CodingSchemeDesignator, region.CodeMeaning) == ("12738006", "SCT", "Brain")
    algorithm, = segment.SegmentationAlgorithmIdentificationSequence
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("TumorSeg-test", "9.8.7")
    family, = algorithm.AlgorithmFamilyCodeSequence
    assert (family.CodeValue, family.CodeMeaning) == ("123110", "Artificial Intelligence")


def test_seg_keeps_patient_and_study_with_new_uids(seg_path, series):
    seg = pydicom.dcmread(seg_path)
    source = series.datasets[0]
    for keyword in PATIENT_AND_STUDY:
        assert seg.get(keyword) == source.get(keyword), keyword
    assert seg.SeriesInstanceUID != source.SeriesInstanceUID
    assert seg.SOPInstanceUID not in {ds.SOPInstanceUID for ds in series.datasets}
    referenced = {item.ReferencedSOPInstanceUID
                  for item in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence}
    assert referenced == {ds.SOPInstanceUID for ds in series.datasets}


@pytest.mark.skipif(SEGIMAGE2ITKIMAGE is None, reason="dcmqi missing: pip install dcmqi==1.5.7")
def test_dcmqi_reads_it_back(seg_path, series, mask, tmp_path):
    segimage2itkimage(seg_path, tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["segmentAttributes"][0][0]["SegmentLabel"] == "Tumor"
    # dcmqi crops the volume to the frames present; put it back on the series grid with
    # nearest-neighbour (grid points coincide, so this is a pure copy) and compare.
    image = sitk.ReadImage(str(tmp_path / "1.nii.gz"))
    on_series_grid = sitk.Resample(image, series.image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(on_series_grid), mask)


def test_seg_display_colour_is_the_slicer_segment_colour(seg_path):
    [segment] = hd.seg.segread(seg_path).SegmentSequence
    colour = hd.color.CIELabColor.from_dicom_value(segment.RecommendedDisplayCIELabValue)
    assert colour.to_rgb() == tuple(round(255 * c) for c in SLICER_SEGMENT["color"]) == (230, 51, 51)


@pytest.mark.skipif(SEGIMAGE2ITKIMAGE is None, reason="dcmqi missing: pip install dcmqi==1.5.7")
def test_dcmqi_finds_the_display_colour(seg_path, tmp_path):
    output = segimage2itkimage(seg_path, tmp_path)
    assert "Failed to get CIELab values" not in output, output
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["segmentAttributes"][0][0]["recommendedDisplayRGBValue"] == [230, 51, 51]


@pytest.fixture(scope="module")
def low_confidence_seg(series, mask, tmp_path_factory):
    path = tmp_path_factory.mktemp("low") / "segmentation.dcm"
    write_dicom_seg(mask, series.datasets, path, "TumorSeg-test", "9.8.7", low_confidence=True)
    return path


def test_low_confidence_seg_says_so(low_confidence_seg, seg_path, series, mask):
    seg = hd.seg.segread(low_confidence_seg)
    assert seg.SeriesDescription == "TumorSeg (low confidence - review)"
    assert "low confidence" in seg.ContentDescription
    [segment] = seg.SegmentSequence
    assert segment.SegmentLabel == "Tumor" and "low confidence" in segment.SegmentDescription
    algorithm, = segment.SegmentationAlgorithmIdentificationSequence
    assert algorithm.AlgorithmParameters == "confidence=low"
    np.testing.assert_array_equal(mask_from_dicom_seg(low_confidence_seg, series.datasets), mask)
    # the default SEG carries no such mark
    [plain] = hd.seg.segread(seg_path).SegmentSequence
    assert "SegmentDescription" not in plain
    assert "AlgorithmParameters" not in plain.SegmentationAlgorithmIdentificationSequence[0]


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: apt-get install -y dicom3tools")
def test_low_confidence_seg_passes_dciodvfy(low_confidence_seg):
    errors, output = dciodvfy_errors(low_confidence_seg)
    assert errors == [], output


def test_empty_mask_writes_nothing_and_says_why(series, tmp_path):
    empty = np.zeros(sitk.GetArrayViewFromImage(series.image).shape, np.uint8)
    with pytest.raises(EmptySegmentationError, match="no tumour voxels") as error:
        write_dicom_seg(empty, series.datasets, tmp_path / "segmentation.dcm", "TumorSeg", "1")
    assert isinstance(error.value, InputError)  # the CLI reports it as bad input, exit 2
    assert list(tmp_path.iterdir()) == []


def test_shape_mismatch_writes_nothing(series, mask, tmp_path):
    with pytest.raises(InputError, match="does not match the DICOM series"):
        write_dicom_seg(mask[1:], series.datasets, tmp_path / "segmentation.dcm", "TumorSeg", "1")
    with pytest.raises(InputError, match="only 0 and 1"):
        write_dicom_seg(mask * 255, series.datasets, tmp_path / "segmentation.dcm", "TumorSeg", "1")
    assert list(tmp_path.iterdir()) == []


def test_existing_file_needs_overwrite(series, mask, tmp_path):
    path = tmp_path / "segmentation.dcm"
    path.write_bytes(b"old")
    with pytest.raises(InputError, match="already exists"):
        write_dicom_seg(mask, series.datasets, path, "TumorSeg", "1")
    assert path.read_bytes() == b"old"
    write_dicom_seg(mask, series.datasets, path, "TumorSeg", "1", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["segmentation.dcm"]  # no temporary left behind
    np.testing.assert_array_equal(mask_from_dicom_seg(path, series.datasets), mask)


@no_person_name_warning
def test_seg_of_an_enhanced_multiframe_source(series, mask, tmp_path):
    multiframe = read_series(save_enhanced_mr(SAMPLE, tmp_path / "source"))
    path = tmp_path / "segmentation.dcm"
    write_dicom_seg(mask, multiframe.datasets, path, "TumorSeg", "1")
    np.testing.assert_array_equal(mask_from_dicom_seg(path, multiframe.datasets), mask)


def test_bundle_identity(tmp_path):
    assert bundle_identity(tmp_path / "missing.json") == ("TumorSeg", monai_core.__version__)
    metadata = tmp_path / "metadata.json"
    metadata.write_text(json.dumps({"name": "TumorSeg LGG", "version": "0.3.0"}))
    assert bundle_identity(metadata) == ("TumorSeg LGG", "0.3.0")


@pytest.mark.skipif(not FULL_SERIES.is_dir(), reason=f"full series not found at {FULL_SERIES}")
@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: apt-get install -y dicom3tools")
def test_full_shared_series_seg_is_valid(tmp_path):
    full = read_series(FULL_SERIES)
    full_mask = blob_mask(full.image)
    path = tmp_path / "segmentation.dcm"
    write_dicom_seg(full_mask, full.datasets, path, *bundle_identity())
    errors, output = dciodvfy_errors(path)
    assert errors == [], output
    np.testing.assert_array_equal(mask_from_dicom_seg(path, full.datasets), full_mask)


# --------------------------------------------------------------------------- the CLI


def write_nifti(mask: np.ndarray, grid: sitk.Image, path: Path) -> Path:
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(grid)
    sitk.WriteImage(image, str(path))
    return path


def test_export_dicom_seg_cli(series, mask, tmp_path, capsys):
    nifti = write_nifti(mask, series.image, tmp_path / "segmentation.nii.gz")
    output = tmp_path / "out" / "segmentation.dcm"
    assert main(["export-dicom-seg", "--mask", str(nifti), "--source", str(SAMPLE), "-o", str(output)]) == 0
    np.testing.assert_array_equal(mask_from_dicom_seg(output, series.datasets), mask)
    assert hd.seg.segread(output).SegmentSequence[0].SegmentationAlgorithmIdentificationSequence[0].AlgorithmName \
        == bundle_identity()[0]
    # a second run must not replace it silently
    assert main(["export-dicom-seg", "--mask", str(nifti), "--source", str(SAMPLE), "-o", str(output)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export-dicom-seg", "--mask", str(nifti), "--source", str(SAMPLE), "-o", str(output),
                 "--overwrite"]) == 0


def test_export_dicom_seg_low_confidence_labels_the_seg(series, mask, tmp_path):
    """--low-confidence (what the Slicer module passes for a flagged result) labels the SEG as detect does."""
    nifti = write_nifti(mask, series.image, tmp_path / "segmentation.nii.gz")
    plain, flagged = tmp_path / "plain.dcm", tmp_path / "flagged.dcm"
    assert main(["export-dicom-seg", "--mask", str(nifti), "--source", str(SAMPLE), "-o", str(plain)]) == 0
    assert main(["export-dicom-seg", "--mask", str(nifti), "--source", str(SAMPLE), "-o", str(flagged),
                 "--low-confidence"]) == 0
    for path, low in ((plain, False), (flagged, True)):
        seg = hd.seg.segread(path)
        segment = seg.SegmentSequence[0]
        assert ("low confidence" in seg.SeriesDescription) == low
        assert ("low confidence" in seg.ContentDescription) == low
        assert ("low confidence" in getattr(segment, "SegmentDescription", "")) == low
        np.testing.assert_array_equal(mask_from_dicom_seg(path, series.datasets), mask)


def _shifted(grid: sitk.Image) -> sitk.Image:
    moved = sitk.Image(grid)
    moved.SetOrigin(tuple(v + 1.0 for v in grid.GetOrigin()))
    return moved


def _cropped(grid: sitk.Image) -> sitk.Image:
    return grid[:, :, 1:]


def _rotated(grid: sitk.Image) -> sitk.Image:
    rotated = sitk.Image(grid)
    rotated.SetDirection((1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))
    return rotated


@pytest.mark.parametrize("make_grid, problem", [(_shifted, "origin"), (_cropped, "size"), (_rotated, "direction")],
                         ids=["shifted", "cropped", "rotated"])
def test_export_dicom_seg_refuses_a_mask_on_another_grid(series, tmp_path, capsys, make_grid, problem):
    grid = make_grid(series.image)
    nifti = write_nifti(blob_mask(grid), grid, tmp_path / "mask.nii.gz")
    output = tmp_path / "segmentation.dcm"
    code = main(["export-dicom-seg", "--mask", str(nifti), "--source", str(SAMPLE), "-o", str(output)])
    err = capsys.readouterr().err
    assert code == 2
    assert not output.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["mask.nii.gz"]
    assert err.count("\n") == 1 and problem in err and "Traceback" not in err


def test_export_dicom_seg_empty_mask_is_exit_2(series, tmp_path, capsys):
    nifti = write_nifti(np.zeros(sitk.GetArrayViewFromImage(series.image).shape, np.uint8), series.image,
                        tmp_path / "mask.nii.gz")
    output = tmp_path / "segmentation.dcm"
    assert main(["export-dicom-seg", "--mask", str(nifti), "--source", str(SAMPLE), "-o", str(output)]) == 2
    assert "no tumour voxels" in capsys.readouterr().err and not output.exists()
