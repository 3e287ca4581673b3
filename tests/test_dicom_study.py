"""``tumorseg detect --study``: series picked from a DICOM study by description, and DICOM-SEG out."""

import json

import pydicom
import pytest
from pydicom.uid import generate_uid

from conftest import DATA, run_cli

SERIES = DATA / "dicom" / "PGBM-001_T1post"


def add_series(study, name, description, **tags):
    """Copy the real sample series into ``study/name`` as a new series with the given description.

    ``tags`` (keyword=value) replace header values in every file; None deletes the element.
    """
    uid = generate_uid()
    (study / name).mkdir(parents=True)
    for path in sorted(SERIES.glob("*.dcm")):
        ds = pydicom.dcmread(path)
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.SeriesDescription = description
        for keyword, value in tags.items():
            if value is None:
                ds.pop(keyword, None)
            else:
                setattr(ds, keyword, value)
        ds.save_as(study / name / path.name)
    return uid


def add_philips_series(study, description, number, time):
    """A series as a Philips scanner names it: protocol = description, no contrast agent tag."""
    return add_series(study, f"s{number}", description, ProtocolName=description, SeriesNumber=number,
                      AcquisitionTime=time, SeriesTime=time, ContrastBolusAgent=None)


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


def test_same_named_series_are_told_apart_by_acquisition_order(tmp_path):
    """A Philips study: pre- and post-contrast T1 both "T1W_SE-TRA_FS", FLAIR repeated after contrast."""
    study = tmp_path / "study"
    # created in an order unlike the acquisition, so that folder order cannot decide
    uids = {
        1301: add_philips_series(study, "T2W_FLAIR_TRA", 1301, "101500"),
        1201: add_philips_series(study, "T1W_SE-TRA_FS", 1201, "100500"),
        701: add_philips_series(study, "T2W_FLAIR_TRA", 701, "093000"),
        901: add_philips_series(study, "T1W_SE-TRA_FS", 901, "094500"),
    }
    out = tmp_path / "out"
    result = run_cli("detect", "--study", study, "-o", out, "--case-id", "s", "--progress", "none")
    assert result.returncode == 0, result.stderr
    inputs = json.loads((out / "s" / "report.json").read_text())["inputs"]
    assert inputs["series_uids"] == {"flair": uids[701], "t1": uids[901], "t1c": uids[1201]}
    choice = inputs["series_choice"]
    for role, number, description in (("flair", 701, "T2W_FLAIR_TRA"), ("t1", 901, "T1W_SE-TRA_FS"),
                                      ("t1c", 1201, "T1W_SE-TRA_FS")):
        assert choice[role]["series_uid"] == uids[number]
        assert (choice[role]["series_number"], choice[role]["description"]) == (number, description)
        assert choice[role]["reason"].startswith(f"description '{description}', series {number}: ")
        assert f"tumorseg: {role}: {uids[number]} " in result.stderr
        assert choice[role]["reason"] in result.stderr
    assert "earliest of 2 same-named" in choice["flair"]["reason"]
    assert "earlier of two same-named series, taken as pre-contrast" in choice["t1"]["reason"]
    assert "later of two same-named series, taken as post-contrast" in choice["t1c"]["reason"]
