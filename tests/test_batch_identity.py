"""Several patients processed concurrently: every output carries its own input's identifiers, nothing else."""

import csv
import json

import pydicom
from pydicom.uid import generate_uid

from conftest import DATA, run_cli

SERIES = DATA / "dicom" / "PGBM-001_T1post"


def make_patient(root, n):
    """A copy of the real sample series as patient n: its own PatientID, study and series UIDs."""
    folder = root / f"case{n}" / "flair"
    folder.mkdir(parents=True)
    ids = {"PatientID": f"TSEG-{n:03d}", "StudyInstanceUID": generate_uid(), "SeriesInstanceUID": generate_uid()}
    for path in sorted(SERIES.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        for key, value in ids.items():
            setattr(ds, key, value)
        ds.PatientName = f"Patient^{n}"
        ds.SOPInstanceUID = generate_uid()
        ds.save_as(folder / path.name)
    return ids


def test_concurrent_cases_keep_their_own_patient_and_study(tmp_path):
    root = tmp_path / "cases"
    expected = {f"case{n}": make_patient(root, n) for n in range(4)}
    out = tmp_path / "out"
    result = run_cli("batch", root, "-o", out, "--workers", "2", "--threads-per-worker", "1", "--dicom-seg", "--progress", "none")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = {row["case_id"]: row for row in csv.DictReader(open(out / "summary.csv"))}
    assert set(rows) == set(expected) and all(r["status"] == "ok" for r in rows.values())
    for case, ids in expected.items():
        report = json.loads((out / case / "report.json").read_text())
        assert report["case_id"] == case and f"/{case}/" in report["inputs"]["flair"]
        source = report["inputs"]["dicom"]  # the report names its own patient, study and series
        assert {k: source[k] for k in ids} == ids
        text = (out / case / "report.json").read_text()
        assert not any(other[k] in text for name, other in expected.items() if name != case for k in ids)
        assert report["dicom_seg"]["written"], report["dicom_seg"]  # the sample's lesion is found in every copy
        seg = pydicom.dcmread(out / case / "segmentation.dcm")
        assert (seg.PatientID, seg.StudyInstanceUID) == (ids["PatientID"], ids["StudyInstanceUID"])
        assert {r.SeriesInstanceUID for r in seg.ReferencedSeriesSequence} == {ids["SeriesInstanceUID"]}
        for name in result.stderr.split():
            assert "Patient^" not in name
