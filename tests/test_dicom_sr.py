"""DICOM SR measurement report (monai_core.dicom_sr) from ``tumorseg detect --dicom-seg --dicom-sr``.

The real DICOM sample is run through the CLI once; its measurements.dcm is then checked three
independent ways: dciodvfy (dicom3tools) against the standard, dcmqi's tid1500reader (the reader
Slicer's QuantitativeReporting uses) for every value and UCUM unit, and highdicom for the SEG and
patient/study references.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import pydicom
import pytest

from conftest import DATA, RAW, run_cli
from monai_core.dicom_sr import EmptyMeasurementsError, write_measurement_report
from test_dicom_seg import DCIODVFY, dciodvfy_errors

SERIES = DATA / "dicom" / "PGBM-001_T1post"
TID1500READER = shutil.which("tid1500reader") or shutil.which("tid1500reader", path=str(Path(sys.executable).parent))
# report.json key -> (concept CodeValue, UCUM unit) as a reader of the SR must find them
EXPECTED = {
    "volume_ml": ("118565006", "ml"),
    "longest_diameter_mm": ("103339001", "mm"),
    "perpendicular_diameter_mm": ("103340004", "mm"),
    "bidimensional_product_mm2": ("RANO-BP", "mm2"),
    "mean_diameter_mm": ("81827009", "mm"),
}
IDENTIFIERS = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
               "StudyTime", "AccessionNumber")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """One detect run with both DICOM outputs: (case folder, report)."""
    out = tmp_path_factory.mktemp("sr")
    result = run_cli("detect", "--flair", SERIES, "-o", out, "--case-id", "sr", "--dicom-seg", "--dicom-sr",
                     "--progress", "none")
    assert result.returncode == 0, result.stderr[-2000:]
    folder = out / "sr"
    return folder, json.loads((folder / "report.json").read_text())


@pytest.fixture(scope="module")
def sr_path(case):
    folder, report = case
    assert report["dicom_seg"]["written"], report["dicom_seg"]  # the sample's lesion is found
    assert report["dicom_sr"] == {"written": True, "file": "measurements.dcm"}
    return folder / "measurements.dcm"


@pytest.fixture(scope="module")
def tid1500(sr_path, tmp_path_factory):
    """dcmqi's reading of the SR as JSON."""
    if TID1500READER is None:
        pytest.skip("tid1500reader missing: pip install dcmqi")
    out = tmp_path_factory.mktemp("tid1500") / "sr.json"
    result = subprocess.run([TID1500READER, "--inputDICOM", str(sr_path), "--outputMetadata", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and out.is_file(), result.stdout + result.stderr
    return json.loads(out.read_text())


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: apt-get install -y dicom3tools")
def test_sr_passes_dciodvfy(sr_path):
    errors, output = dciodvfy_errors(sr_path)
    assert errors == [], output


def test_tid1500reader_reads_every_measurement_with_its_unit(tid1500, case):
    _, report = case
    [group] = tid1500["Measurements"]
    found = {item["quantity"]["CodeValue"]: item for item in group["measurementItems"]}
    assert len(found) == len(group["measurementItems"]) == len(EXPECTED)
    for key, (concept, unit) in EXPECTED.items():
        item = found[concept]
        assert float(item["value"]) == pytest.approx(report["measurements"][key], abs=1e-9), key
        assert (item["units"]["CodingSchemeDesignator"], item["units"]["CodeValue"]) == ("UCUM", unit), key
    assert found["81827009"]["derivationModifier"]["CodeValue"] == "373098007"  # Diameter, Mean
    assert report["measurements"]["volume_ml"] == pytest.approx(report["tumor_volume_ml"])


def test_tid1500reader_finds_the_segment_and_series(tid1500, case):
    folder, _ = case
    seg = pydicom.dcmread(folder / "segmentation.dcm", stop_before_pixels=True)
    [group] = tid1500["Measurements"]
    assert group["segmentationSOPInstanceUID"] == seg.SOPInstanceUID
    assert group["ReferencedSegment"] == 1
    assert group["SourceSeriesForImageSegmentation"] == pydicom.dcmread(next(SERIES.glob("*.dcm"))).SeriesInstanceUID
    assert group["TrackingUniqueIdentifier"] == seg.SegmentSequence[0].TrackingUID  # same lesion in SEG and SR
    assert group["Finding"]["CodeValue"] == "108369006"
    assert tid1500["observerContext"]["ObserverType"] == "DEVICE"


def test_highdicom_reads_back_the_references_and_identifiers(sr_path, case):
    folder, report = case
    sr = hd.sr.srread(sr_path)
    seg = pydicom.dcmread(folder / "segmentation.dcm", stop_before_pixels=True)
    source = pydicom.dcmread(next(SERIES.glob("*.dcm")), stop_before_pixels=True)
    [group] = sr.content.get_volumetric_roi_measurement_groups()
    referenced = group.referenced_segment
    assert referenced.referenced_sop_instance_uid == seg.SOPInstanceUID
    assert list(referenced.referenced_segment_numbers) == [1]
    assert referenced.source_series_for_segmentation.value == source.SeriesInstanceUID
    for key in IDENTIFIERS:
        assert sr.get(key) == source.get(key) == seg.get(key), key
    assert sr.SeriesInstanceUID not in (seg.SeriesInstanceUID, source.SeriesInstanceUID)
    assert sr.CompletionFlag == "COMPLETE" and sr.VerificationFlag == "UNVERIFIED"
    assert report["bundle"]["version"] in str(sr.SoftwareVersions)


def test_dicom_sr_needs_dicom_seg(tmp_path):
    result = run_cli("detect", "--flair", SERIES, "-o", tmp_path, "--dicom-sr", "--progress", "none")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "--dicom-seg" in result.stderr


def test_dicom_sr_needs_a_dicom_flair(tmp_path):
    result = run_cli("detect", "--flair", RAW / "flair.nii.gz", "-o", tmp_path, "--dicom-seg", "--dicom-sr",
                     "--progress", "none")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "DICOM series" in result.stderr


@pytest.mark.parametrize("measurements", [
    {"volume_ml": 0.0, "longest_diameter_mm": None, "perpendicular_diameter_mm": None,
     "bidimensional_product_mm2": None, "measurement_slice": None, "mean_diameter_mm": None},
    dict.fromkeys(EXPECTED),
])
def test_no_report_without_a_tumour(measurements, tmp_path):
    with pytest.raises(EmptyMeasurementsError, match="no DICOM SR was written"):
        write_measurement_report(measurements, tmp_path / "segmentation.dcm", [], tmp_path / "measurements.dcm",
                                 "TumorSeg", "1")
    assert not (tmp_path / "measurements.dcm").exists()


def test_detect_records_why_no_report_was_written(tmp_path):
    """What finish_case puts in report.json["dicom_sr"] when the mask is empty (no SEG either)."""
    from types import SimpleNamespace

    from monai_core.detect import _write_dicom_sr

    empty = {"volume_ml": 0.0, **dict.fromkeys(k for k in EXPECTED if k != "volume_ml")}
    note = _write_dicom_sr(SERIES, None, empty, SimpleNamespace(identity={}), tmp_path, low_confidence=False)
    assert note["written"] is False and "no tumour voxels" in note["reason"]
    assert list(tmp_path.iterdir()) == []
