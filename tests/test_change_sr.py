"""``tumorseg compare --dicom-sr``: the change as a DICOM SR (TID 1500), on the real DICOM sample.

The baseline study is the real series tests/data/dicom/PGBM-001_T1post. The follow-up study is
the same series filed as a second study of the same patient: new study, series, instance and
frame-of-reference UIDs, a date 182 days later, and the head 6 mm elsewhere in the scanner (the
positions move, the pixels do not). Case folders are written as detect writes them, with masks
whose change is known: an ellipsoid that grows from semi-axes 30 x 22 to 36 x 27 pixels in-plane
(+47% in volume and about +47% in bidimensional product: progression by both criteria), and one
that vanishes (complete response, and a follow-up without a SEG). One end-to-end run detects both
studies with the real networks (``detect --dicom-seg``) and compares them with ``--dicom-sr``.

Each report is checked three independent ways: dciodvfy (dicom3tools) against the standard,
dcmqi's tid1500reader (the reader of Slicer's QuantitativeReporting) for the values and the
segment references, and highdicom/pydicom for the studies, the evidence and the response codes.
"""

from __future__ import annotations

import json
import subprocess
from datetime import date, timedelta
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from conftest import DATA, run_cli
from monai_core.dicom_seg import write_dicom_seg
from monai_core.io.dicom import read_series
from monai_core.io.volumes import series_identity
from test_dicom_seg import DCIODVFY, dciodvfy_errors
from test_dicom_sr import EXPECTED, TID1500READER

SERIES = DATA / "dicom" / "PGBM-001_T1post"
SHIFT_MM = (6.0, -4.0, 3.0)
INTERVAL_DAYS = 182
RESPONSE = {"progression": "112043", "complete response": "112041", "stable": "112044", "partial response": "112042"}


def followup_study(source: Path, dest: Path) -> Path:
    """The series as a later study of the same patient, the head shifted by SHIFT_MM (pixels unchanged)."""
    dest.mkdir(parents=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    for path in sorted(source.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            if ds.get(keyword):
                later = date(int(ds[keyword].value[:4]), int(ds[keyword].value[4:6]), int(ds[keyword].value[6:8]))
                setattr(ds, keyword, (later + timedelta(days=INTERVAL_DAYS)).strftime("%Y%m%d"))
        ds.AccessionNumber = "FOLLOWUP1"
        ds.ImagePositionPatient = [float(p) + s for p, s in zip(ds.ImagePositionPatient, SHIFT_MM)]
        ds.save_as(dest / path.name, enforce_file_format=True)
    return dest


def ellipsoid(image: sitk.Image, rows: float, columns: float) -> np.ndarray:
    """A tumour-like (z, y, x) mask on the series grid: an ellipsoid over three slices."""
    z, y, x = np.ogrid[: image.GetSize()[2], : image.GetSize()[1], : image.GetSize()[0]]
    centre = (image.GetSize()[2] // 2, 150, 120)
    inside = ((z - centre[0]) / 1.6) ** 2 + ((y - centre[1]) / rows) ** 2 + ((x - centre[2]) / columns) ** 2 <= 1
    return inside.astype(np.uint8)


def dicom_case(folder: Path, series_dir: Path, mask: np.ndarray, flagged: bool = False) -> Path:
    """A case folder as ``detect --dicom-seg`` writes it: segmentation.nii.gz, segmentation.dcm (if any tumour), report."""
    folder.mkdir(parents=True)
    series = read_series(series_dir)
    image = sitk.GetImageFromArray(mask)
    image.CopyInformation(series.image)
    sitk.WriteImage(image, str(folder / "segmentation.nii.gz"), True)
    if mask.any():
        write_dicom_seg(mask, series.datasets, folder / "segmentation.dcm", "TumorSeg", "0.0.test")
    report = {"case_id": folder.name, "tumor_detected": bool(mask.any()),
              "inputs": {"flair": str(series_dir), "t1": None, "t1c": None, "dicom": series_identity(series.image)},
              "quality": {"flagged": flagged}, "bundle": {"name": "TumorSeg", "version": "0.0.test"}}
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def tid1500(path: Path, out: Path) -> dict:
    """dcmqi's reading of an SR as JSON."""
    if TID1500READER is None:
        pytest.skip("tid1500reader missing: pip install dcmqi")
    result = subprocess.run([TID1500READER, "--inputDICOM", str(path), "--outputMetadata", str(out)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and out.is_file(), result.stdout + result.stderr
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    root = tmp_path_factory.mktemp("change_sr")
    followup = followup_study(SERIES, root / "followup_series")
    image = read_series(SERIES).image
    small, large, none = ellipsoid(image, 30, 22), ellipsoid(image, 36, 27), np.zeros_like(ellipsoid(image, 1, 1))
    return dict(root=root, followup=followup,
                baseline_case=dicom_case(root / "cases" / "baseline", SERIES, small),
                grown_case=dicom_case(root / "cases" / "grown", followup, large, flagged=True),
                vanished_case=dicom_case(root / "cases" / "vanished", followup, none))


@pytest.fixture(scope="module")
def grown(studies):
    """compare --dicom-sr on the growing lesion: (change.json, the SR's path)."""
    out = studies["root"] / "out"
    result = run_cli("compare", studies["baseline_case"], studies["grown_case"], "-o", out, "--case-id", "grown",
                     "--dicom-sr")
    assert result.returncode == 0, result.stderr[-2000:]
    change = json.loads((out / "grown" / "change.json").read_text())
    assert change["dicom_sr"] == {"written": True, "file": "change_report.dcm"}
    return change, out / "grown" / "change_report.dcm"


@pytest.fixture(scope="module")
def vanished(studies):
    out = studies["root"] / "out"
    result = run_cli("compare", studies["baseline_case"], studies["vanished_case"], "-o", out, "--case-id",
                     "vanished", "--dicom-sr")
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((out / "vanished" / "change.json").read_text()), out / "vanished" / "change_report.dcm"


def measurement_groups(sr) -> list:
    """The SR's TID 1411/1501 groups, in document order."""
    return [*sr.content.get_volumetric_roi_measurement_groups(), *sr.content.get_image_measurement_groups()]


def group_values(group) -> dict[str, tuple[float, str]]:
    """{concept code: (value, unit code)} of a group's measurements (not its Time Point Order, also a number)."""
    return {m.name.value: (float(m.value), m.unit.value) for m in group.get_measurements() if m.name.value != "126073"}


def change_groups(sr) -> dict[str, object]:
    """{measurement method code: group} of the change groups (the TID 1501 groups with a method)."""
    return {g.method.value: g for g in sr.content.get_image_measurement_groups() if g.method is not None}


def response(group) -> str:
    """The lesion response code of a group's Response Evaluation (DCM 112020)."""
    [evaluation] = [e for e in group.get_qualitative_evaluations() if e.name.value == "112020"]
    return evaluation.value.value


def time_point(group) -> str:
    [item] = [i for i in group[0].ContentSequence if i.name.value == "C2348792"]  # Time Point (TID 1502)
    return item.value


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: apt-get install -y dicom3tools")
@pytest.mark.parametrize("pair", ["grown", "vanished"])
def test_change_report_passes_dciodvfy(pair, request):
    _, path = request.getfixturevalue(pair)
    errors, output = dciodvfy_errors(path)
    assert errors == [], output


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy missing: apt-get install -y dicom3tools")
def test_the_dciodvfy_check_finds_a_broken_report(grown, tmp_path):
    """Guards the test above: the same report without its Type 1 completion and verification flags fails it,
    and so does a file dciodvfy cannot open."""
    _, path = grown
    broken = pydicom.dcmread(path)
    del broken.CompletionFlag, broken.VerificationFlag
    broken.save_as(tmp_path / "broken.dcm", enforce_file_format=True)
    errors, output = dciodvfy_errors(tmp_path / "broken.dcm")
    assert any("<CompletionFlag>" in line for line in errors), output
    assert dciodvfy_errors(tmp_path / "missing.dcm")[0], "an unreadable file must count as an error"


def test_change_report_holds_both_time_points_and_the_change(grown, studies):
    change, path = grown
    sr = hd.sr.srread(path)
    groups = {time_point(g): g for g in sr.content.get_volumetric_roi_measurement_groups()}
    assert sorted(groups) == ["baseline", "follow-up"]
    for name, role in (("baseline", "baseline"), ("follow-up", "followup")):
        values = group_values(groups[name])
        for key, (code, unit) in EXPECTED.items():
            assert values[code] == (pytest.approx(change[role]["measurements"][key], abs=1e-9), unit), (name, key)
    changed = change_groups(sr)
    assert sorted(changed) == ["C114879", "RANO2-VOL"]  # RANO, RANO 2.0 volumetric
    assert group_values(changed["RANO2-VOL"]) == {
        "VOL-CHG": (pytest.approx(change["volume_change_ml"]), "ml"),
        "VOL-CHG-PCT": (pytest.approx(change["volume_change_percent"]), "%")}
    assert group_values(changed["C114879"]) == {
        "RANO-BP-CHG-PCT": (pytest.approx(change["bidimensional_product_change_percent"]), "%")}
    # the known growth: about +47% in volume and in product, progression by both criteria
    assert 40 < change["volume_change_percent"] < 55 and 35 < change["bidimensional_product_change_percent"] < 60
    assert {method: response(g) for method, g in changed.items()} == {
        "C114879": RESPONSE["progression"], "RANO2-VOL": RESPONSE["progression"]}
    assert (change["category"], change["volumetric"]["category"]) == ("progression", "progression")
    assert {time_point(g) for g in changed.values()} == {"follow-up"}


def test_change_report_references_both_studies_and_segs(grown, studies):
    _, path = grown
    sr = pydicom.dcmread(path)
    baseline = pydicom.dcmread(next(SERIES.glob("*.dcm")), stop_before_pixels=True)
    followup = pydicom.dcmread(next(studies["followup"].glob("*.dcm")), stop_before_pixels=True)
    segs = {name: pydicom.dcmread(studies[f"{name}_case"] / "segmentation.dcm", stop_before_pixels=True)
            for name in ("baseline", "grown")}
    # filed into the follow-up study, as a new series
    assert (sr.StudyInstanceUID, sr.PatientID, sr.StudyDate) == (followup.StudyInstanceUID, followup.PatientID,
                                                                 followup.StudyDate)
    assert sr.SeriesInstanceUID not in (followup.SeriesInstanceUID, segs["grown"].SeriesInstanceUID)
    current = {s.SeriesInstanceUID: {i.ReferencedSOPInstanceUID for i in s.ReferencedSOPSequence}
               for study in sr.CurrentRequestedProcedureEvidenceSequence for s in study.ReferencedSeriesSequence}
    other = {s.SeriesInstanceUID: {i.ReferencedSOPInstanceUID for i in s.ReferencedSOPSequence}
             for study in sr.PertinentOtherEvidenceSequence for s in study.ReferencedSeriesSequence}
    assert {study.StudyInstanceUID for study in sr.PertinentOtherEvidenceSequence} == {baseline.StudyInstanceUID}
    assert segs["grown"].SOPInstanceUID in current[segs["grown"].SeriesInstanceUID]
    assert segs["baseline"].SOPInstanceUID in other[segs["baseline"].SeriesInstanceUID]
    assert len(current[followup.SeriesInstanceUID]) == len(other[baseline.SeriesInstanceUID]) == 12
    # each time point's group references its own SEG's segment 1 and the series it was made from
    groups = {time_point(g): g for g in hd.sr.srread(path).content.get_volumetric_roi_measurement_groups()}
    for name, seg, source in (("baseline", segs["baseline"], baseline), ("follow-up", segs["grown"], followup)):
        referenced = groups[name].referenced_segment
        assert referenced.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert list(referenced.referenced_segment_numbers) == [1]
        assert referenced.source_series_for_segmentation.value == source.SeriesInstanceUID
    # one lesion followed over time: one tracking UID, the baseline segment's
    uids = {g.tracking_uid for g in measurement_groups(hd.sr.srread(path))}
    assert uids == {segs["baseline"].SegmentSequence[0].TrackingUID}
    assert sr.SeriesDescription.endswith("(low confidence - review)")  # the follow-up result was flagged


def test_tid1500reader_reads_both_time_points(grown, studies, tmp_path):
    change, path = grown
    read = tid1500(path, tmp_path / "sr.json")
    segs = {pydicom.dcmread(studies[f"{name}_case"] / "segmentation.dcm", stop_before_pixels=True).SOPInstanceUID: role
            for name, role in (("baseline", "baseline"), ("grown", "followup"))}
    with_segment = [g for g in read["Measurements"] if g.get("segmentationSOPInstanceUID")]
    assert sorted(segs[g["segmentationSOPInstanceUID"]] for g in with_segment) == ["baseline", "followup"]
    for group in with_segment:
        role = segs[group["segmentationSOPInstanceUID"]]
        values = {item["quantity"]["CodeValue"]: float(item["value"]) for item in group["measurementItems"]}
        for key, (code, _) in EXPECTED.items():
            assert values[code] == pytest.approx(change[role]["measurements"][key], abs=1e-9), (role, key)
        assert group["ReferencedSegment"] == 1


def test_a_vanished_lesion_is_a_complete_response_without_a_followup_seg(vanished, studies, tmp_path):
    change, path = vanished
    sr = hd.sr.srread(path)
    [baseline] = sr.content.get_volumetric_roi_measurement_groups()
    [followup] = [g for g in sr.content.get_image_measurement_groups() if g.method is None]
    assert (time_point(baseline), time_point(followup)) == ("baseline", "follow-up")
    assert group_values(followup) == {"118565006": (0.0, "ml")}  # no diameters: nothing to measure
    assert {r.referenced_sop_instance_uid for r in followup.source_images} == {
        pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in studies["followup"].glob("*.dcm")}
    changed = change_groups(sr)
    assert change["volume_change_percent"] == -100.0
    assert {method: response(g) for method, g in changed.items()} == {
        "C114879": RESPONSE["complete response"], "RANO2-VOL": RESPONSE["complete response"]}
    assert not pydicom.dcmread(path).SeriesDescription.endswith("review)")
    read = tid1500(path, tmp_path / "sr.json")
    volumes = sorted(float(i["value"]) for g in read["Measurements"] for i in g["measurementItems"]
                     if i["quantity"]["CodeValue"] == "118565006")
    assert volumes == [0.0, pytest.approx(change["baseline"]["measurements"]["volume_ml"])]


def test_dicom_sr_refuses_what_it_cannot_reference_before_any_work(studies, tmp_path):
    """A NIfTI study, a tumour without its SEG, another patient: one line, exit 2, no output folder."""
    from conftest import RAW
    from test_compare import write_case

    lesion = ellipsoid(read_series(SERIES).image, 30, 22)
    nifti = write_case(tmp_path / "nifti", RAW / "flair.nii.gz", sitk.ReadImage(str(RAW / "flair_lesion.nii.gz")))
    no_seg = dicom_case(tmp_path / "no_seg", studies["followup"], lesion)
    (no_seg / "segmentation.dcm").unlink()
    other_series = followup_study(SERIES, tmp_path / "other_series")
    for path in other_series.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.PatientID = "SOMEONE-ELSE"
        ds.save_as(path, enforce_file_format=True)
    other = dicom_case(tmp_path / "other", other_series, lesion)
    expected = {nifti: "follow-up: --dicom-sr needs the FLAIR as a DICOM series folder",
                no_seg: "follow-up: no segmentation.dcm for --dicom-sr to reference; run tumorseg detect with --dicom-seg",
                other: "different PatientIDs"}
    for followup, message in expected.items():
        result = run_cli("compare", studies["baseline_case"], followup, "-o", tmp_path / "out", "--dicom-sr")
        assert result.returncode == 2 and result.stderr.strip().count("\n") == 0, result.stderr
        assert message in result.stderr
    assert not (tmp_path / "out").exists()
    # without --dicom-sr the same pairs compare
    result = run_cli("compare", studies["baseline_case"], other, "-o", tmp_path / "out")
    assert result.returncode == 0 and "patient_differs" in (tmp_path / "out" / "baseline_to_other" / "change.json").read_text()


def test_detect_then_compare_end_to_end(studies, tmp_path):
    """The real networks on both studies (detect --dicom-seg), then compare --dicom-sr: a valid report."""
    out = tmp_path / "out"
    for name, series in (("t0", SERIES), ("t1", studies["followup"])):
        result = run_cli("detect", "--flair", series, "-o", out, "--case-id", name, "--dicom-seg", "--progress", "none")
        assert result.returncode == 0, result.stderr[-2000:]
    result = run_cli("compare", out / "t0", out / "t1", "-o", out, "--case-id", "change", "--dicom-sr")
    assert result.returncode == 0, result.stderr[-2000:]
    change = json.loads((out / "change" / "change.json").read_text())
    path = out / "change" / "change_report.dcm"
    assert change["interval_days"] == INTERVAL_DAYS and change["dicom_sr"]["written"]
    # the same pixels, detected twice: no change, and the registration finds the shift
    assert change["volume_change_percent"] == 0.0 and change["category"] == "stable"
    assert change["registration"]["shift_at_centre_mm"] == pytest.approx(np.linalg.norm(SHIFT_MM), abs=1.0)
    read = tid1500(path, tmp_path / "sr.json")
    assert len([g for g in read["Measurements"] if g.get("segmentationSOPInstanceUID")]) == 2
    if DCIODVFY is None:  # everything else was checked; say so, rather than pass without the validator
        pytest.skip("dciodvfy missing: apt-get install -y dicom3tools (the rest of this test passed)")
    errors, output = dciodvfy_errors(path)
    assert errors == [], output
