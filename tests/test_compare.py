"""``tumorseg compare`` on a synthetic follow-up of the real sample TCGA-FG-6692 (no networks run).

The baseline case folder is written by hand: the raw FLAIR and its reference lesion. The follow-up
is the same head moved by a known rigid transform (5 degrees about an oblique axis, 8 mm) with the
lesion grown by one voxel in-plane. The grid moves with the head, as when a patient lies
differently in the scanner, so no voxel is interpolated and the known answers are exact: the
volume change is the number of voxels added, and the registration must find the transform.
"""

from __future__ import annotations

import json
import shutil
from datetime import date

import numpy as np
import pytest
import SimpleITK as sitk
from conftest import RAW, run_cli

from monai_core.compare import compare_cases, rano_category

ANGLE_DEG, SHIFT_MM = 5.0, 8.0
# RANO (Wen et al., J Clin Oncol 2010) on the bidimensional product, written here rather than taken from monai_core
BIDIMENSIONAL_PROGRESSION, BIDIMENSIONAL_PARTIAL_RESPONSE = 25.0, -50.0


def expected_bidimensional_category(before: dict, after: dict) -> str:
    """The RANO category of two ``measurements`` blocks, worked out from their products and volumes."""
    if before["volume_ml"] and not after["volume_ml"]:
        return "complete response"
    if not before["volume_ml"]:
        return "progression" if after["volume_ml"] else "stable"
    percent = 100.0 * (after["bidimensional_product_mm2"] - before["bidimensional_product_mm2"]) / before["bidimensional_product_mm2"]
    if percent >= BIDIMENSIONAL_PROGRESSION:
        return "progression"
    return "partial response" if percent <= BIDIMENSIONAL_PARTIAL_RESPONSE else "stable"


def known_motion() -> sitk.VersorRigid3DTransform:
    """Baseline physical point -> where that anatomy lies in the follow-up."""
    axis = np.array([0.3, 1.0, 0.2])
    motion = sitk.VersorRigid3DTransform()
    motion.SetCenter((10.0, -20.0, 30.0))
    motion.SetRotation((axis / np.linalg.norm(axis)).tolist(), np.radians(ANGLE_DEG))
    motion.SetTranslation((SHIFT_MM / np.sqrt(3),) * 3)
    return motion


def moved(image: sitk.Image, motion: sitk.Transform, shift_origin_mm: float = 0.0) -> sitk.Image:
    """The image with its grid carried by the rigid motion (voxels unchanged)."""
    out = sitk.Image(image)
    rotation = np.asarray(motion.GetMatrix()).reshape(3, 3)
    out.SetDirection((rotation @ np.asarray(image.GetDirection()).reshape(3, 3)).ravel().tolist())
    out.SetOrigin((np.asarray(motion.TransformPoint(image.GetOrigin())) + shift_origin_mm).tolist())
    return out


def write_case(folder, flair_path, segmentation: sitk.Image, study_date: str | None = None):
    """A case folder as detect writes it: report.json (with the FLAIR's path) and segmentation.nii.gz."""
    folder.mkdir(parents=True)
    sitk.WriteImage(sitk.Cast(segmentation, sitk.sitkUInt8), str(folder / "segmentation.nii.gz"), True)
    inputs = {"flair": str(flair_path), "t1": None, "t1c": None}
    if study_date:
        inputs["dicom"] = {"PatientID": "TCGA-FG-6692", "StudyDate": study_date}
    report = {"case_id": folder.name, "inputs": inputs, "tumor_detected": True}
    (folder / "report.json").write_text(json.dumps(report))
    return folder


@pytest.fixture(scope="module")
def sample():
    flair = sitk.ReadImage(str(RAW / "flair.nii.gz"))
    lesion = sitk.Cast(sitk.ReadImage(str(RAW / "flair_lesion.nii.gz")), sitk.sitkUInt8)
    return flair, lesion


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, sample):
    """Baseline and grown, moved follow-up case folders, and one CLI run of compare on them."""
    flair, lesion = sample
    root = tmp_path_factory.mktemp("compare")
    motion = known_motion()
    grown = sitk.BinaryDilate(lesion, [1, 1, 0], sitk.sitkCross)  # one voxel in-plane
    followup_flair = root / "followup_flair.nii.gz"
    sitk.WriteImage(moved(flair, motion), str(followup_flair))
    baseline = write_case(root / "baseline", RAW / "flair.nii.gz", lesion)
    followup = write_case(root / "followup", followup_flair, moved(grown, motion))
    result = run_cli("compare", baseline, followup, "-o", root / "out", "--case-id", "pair",
                     "--dates", "2020-01-01", "2020-07-01")
    added = int(sitk.GetArrayViewFromImage(grown).sum()) - int(sitk.GetArrayViewFromImage(lesion).sum())
    return {"root": root, "result": result, "motion": motion, "added_ml": added * np.prod(flair.GetSpacing()) / 1000,
            "folder": root / "out" / "pair", "baseline": baseline, "followup": followup}


def test_synthetic_followup_gives_the_known_volume_change(synthetic):
    assert synthetic["result"].returncode == 0, synthetic["result"].stderr
    change = json.loads((synthetic["folder"] / "change.json").read_text())
    known = synthetic["added_ml"]
    assert known > 3  # one voxel around a 24 mL lesion: about 4 mL
    assert change["volume_change_ml"] == pytest.approx(known, rel=0.02)
    # the change map goes through the registration: new minus resolved is the same change
    mapped = change["change_map"]["new_ml"] - change["change_map"]["resolved_ml"]
    assert mapped == pytest.approx(known, rel=0.02)
    before = change["baseline"]["measurements"]["volume_ml"]
    assert change["volume_change_percent"] == pytest.approx(100 * known / before, rel=0.02)
    # one voxel around the lesion: both diameters grow by about 2 voxels, the product by under 25%
    products = [change[s]["measurements"]["bidimensional_product_mm2"] for s in ("baseline", "followup")]
    assert 0 < products[1] / products[0] - 1 < 0.25
    assert change["category"] == expected_bidimensional_category(change["baseline"]["measurements"],
                                                                 change["followup"]["measurements"]) == "stable"
    assert "not a diagnosis" in change["category_note"]
    assert change["interval_days"] == 182 and change["baseline"]["date_source"] == "--dates"
    diameters = [change[s]["measurements"]["mean_diameter_mm"] for s in ("baseline", "followup")]
    per_year = (diameters[1] - diameters[0]) * 365.25 / 182
    assert change["mean_diameter_growth_mm_per_year"] == pytest.approx(per_year, abs=0.02)
    assert "pair:" in synthetic["result"].stdout and "not a diagnosis" in synthetic["result"].stdout


def test_registration_error_at_the_lesion_centroid_is_under_1mm(synthetic, sample):
    change = json.loads((synthetic["folder"] / "change.json").read_text())
    statistics = sitk.LabelShapeStatisticsImageFilter()
    statistics.Execute(sample[1])
    centroid = np.asarray(statistics.GetCentroid(1))
    found = np.asarray(change["registration"]["baseline_to_followup_lps"]) @ np.append(centroid, 1.0)
    true = np.asarray(synthetic["motion"].TransformPoint(centroid.tolist()))
    assert np.linalg.norm(found[:3] - true) < 1.0
    assert change["registration"]["rotation_deg"] == pytest.approx(ANGLE_DEG, abs=0.5)
    assert change["warnings"] == []


def test_change_segmentation_files_agree(synthetic, sample):
    import slicerio

    folder = synthetic["folder"]
    labels = sitk.ReadImage(str(folder / "change.nii.gz"))
    assert labels.GetSize() == sample[0].GetSize()
    assert np.allclose(labels.GetOrigin(), sample[0].GetOrigin(), atol=1e-3)
    array = sitk.GetArrayFromImage(labels)
    assert set(np.unique(array)) <= {0, 1, 2, 3}
    segmentation = slicerio.read_segmentation(str(folder / "change.seg.nrrd"))
    names = {s["name"]: s["labelValue"] for s in segmentation["segments"]}
    assert names == {"New": 1, "Resolved": 2, "Stable": 3}
    assert np.array_equal(segmentation["voxels"], array.transpose(2, 1, 0))
    assert (folder / "overlay.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not any(p.name.startswith(".") for p in folder.parent.iterdir())  # no temporary folder left


def test_identical_studies_give_no_change_and_stable(synthetic, tmp_path):
    baseline = synthetic["baseline"]
    followup = tmp_path / "again"
    shutil.copytree(baseline, followup)
    report = json.loads((followup / "report.json").read_text())
    report["inputs"]["dicom"] = {"StudyDate": "20210101"}  # DICOM dates win over --dates
    (followup / "report.json").write_text(json.dumps(report))
    change = compare_cases(baseline, followup, tmp_path / "out", dates=(date(2020, 1, 1), date(2020, 6, 1)))
    assert change["volume_change_ml"] == 0 and change["volume_change_percent"] == 0
    assert change["bidimensional_product_change_percent"] == 0
    assert change["category"] == "stable"
    assert change["followup"]["date_source"] == "DICOM StudyDate" and change["interval_days"] == 366
    volume = change["baseline"]["measurements"]["volume_ml"]
    assert change["change_map"]["new_ml"] + change["change_map"]["resolved_ml"] < 0.01 * volume
    assert change["registration"]["shift_at_centre_mm"] < 0.5
    assert change["case_id"] == "baseline_to_baseline"  # the reports' case ids
    assert (tmp_path / "out" / change["case_id"] / "change.json").is_file()


def test_studies_that_do_not_overlap_exit_2_with_one_line(synthetic, sample, tmp_path):
    flair, lesion = sample
    far_flair = tmp_path / "far_flair.nii.gz"
    sitk.WriteImage(moved(flair, sitk.Euler3DTransform(), shift_origin_mm=1000.0), str(far_flair))
    far = write_case(tmp_path / "far", far_flair, moved(lesion, sitk.Euler3DTransform(), shift_origin_mm=1000.0))
    result = run_cli("compare", synthetic["baseline"], far, "-o", tmp_path / "out")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not overlap the baseline FLAIR" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("problem", ["missing folder", "no report.json", "no FLAIR (Kaggle)", "bad date", "exists"])
def test_bad_input_exits_2_with_one_line(synthetic, tmp_path, problem):
    baseline, followup, extra = synthetic["baseline"], synthetic["followup"], []
    if problem == "missing folder":
        followup = tmp_path / "nowhere"
    elif problem == "no report.json":
        followup = tmp_path / "empty"
        followup.mkdir()
    elif problem == "no FLAIR (Kaggle)":
        followup = tmp_path / "kaggle"
        shutil.copytree(synthetic["followup"], followup)
        (followup / "report.json").write_text(json.dumps({"case_id": "k", "inputs": {"kaggle": "x", "flair": None}}))
    elif problem == "bad date":
        extra = ["--dates", "2020-13-01", "2021-01-01"]
    out = synthetic["root"] / "out" if problem == "exists" else tmp_path / "out"
    result = run_cli("compare", baseline, followup, "-o", out, "--case-id", "pair", *extra)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_rano_categories():
    def m(product, volume=1.0):
        return {"volume_ml": volume, "bidimensional_product_mm2": product}

    assert rano_category(m(100), m(125)) == "progression"
    assert rano_category(m(100), m(124)) == "stable"
    assert rano_category(m(100), m(50)) == "partial response"
    assert rano_category(m(100), m(51)) == "stable"
    assert rano_category(m(100), m(None, 0.0)) == "complete response"
    assert rano_category(m(None, 0.0), m(10)) == "progression"  # a new lesion
    assert rano_category(m(None, 0.0), m(None, 0.0)) == "stable"
