"""``tumorseg detect --study``: series picked from a DICOM study by description, and DICOM-SEG out."""

import json

import pydicom
import pytest
from pydicom.uid import generate_uid

from conftest import DATA, run_cli

SERIES = DATA / "dicom" / "PGBM-001_T1post"


def add_series(study, name, description):
    """Copy the real sample series into ``study/name`` as a new series with the given description."""
    uid = generate_uid()
    (study / name).mkdir(parents=True)
    for path in sorted(SERIES.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesDescription = description
        ds.save_as(study / name / path.name)
    return uid


@pytest.fixture
def study(tmp_path):
    study = tmp_path / "study"
    uids = {"flair": add_series(study, "s1", "AX T2 FLAIR"), "t1c": add_series(study, "s2", "AX T1 POST GD")}
    return study, uids


def test_study_picks_series_and_writes_a_dicom_seg(study, tmp_path):
    folder, uids = study
    out = tmp_path / "out"
    result = run_cli("detect", "--study", folder, "-o", out, "--case-id", "s", "--dicom-seg", "--progress", "none")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "s" / "report.json").read_text())
    assert report["inputs"]["series_uids"] == {"flair": uids["flair"], "t1": None, "t1c": uids["t1c"]}
    assert report["dicom_seg"]["written"], report["dicom_seg"]  # the sample's lesion is found
    seg = pydicom.dcmread(out / "s" / "segmentation.dcm")
    source = pydicom.dcmread(next((folder / "s1").glob("*.dcm")))
    assert seg.StudyInstanceUID == source.StudyInstanceUID and seg.PatientID == source.PatientID
    referenced = {r.SeriesInstanceUID for r in seg.ReferencedSeriesSequence}
    assert referenced == {uids["flair"]}


def test_ambiguous_study_lists_candidates_and_an_override_resolves_it(study, tmp_path):
    folder, uids = study
    second = add_series(folder, "s3", "SAG FLAIR")
    result = run_cli("detect", "--study", folder, "-o", tmp_path / "out", "--progress", "none")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert uids["flair"] in last and second in last and "--flair-series" in last
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    chosen = run_cli("detect", "--study", folder, "--flair-series", second, "-o", tmp_path / "out",
                     "--case-id", "s", "--progress", "none")
    assert chosen.returncode == 0, chosen.stderr
    report = json.loads((tmp_path / "out" / "s" / "report.json").read_text())
    assert report["inputs"]["series_uids"]["flair"] == second
