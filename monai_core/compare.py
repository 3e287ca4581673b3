"""Compare two studies of one patient: the Python API behind ``tumorseg compare``.

Lower-grade gliomas are followed with serial MRI, and the question at each visit is whether the
FLAIR abnormality grew. Given two case folders written by ``tumorseg detect`` (report.json with
the FLAIR's path, and segmentation.nii.gz on that FLAIR's grid), this registers the follow-up
FLAIR rigidly to the baseline FLAIR, maps the follow-up segmentation onto the baseline grid, and
writes ``OUT/<case_id>/``: change.json, change.nii.gz, change.seg.nrrd and overlay.png.

Each study is measured on its own grid (as a reader measures each study), so the volume and
diameter changes carry no interpolation; the registration is used for the change map only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .change_map import CHANGE_SEGMENTS, change_labelmap, label_volumes_ml, write_change_overlay, write_change_seg_nrrd
from .checks import REGISTRATION_POOR, registration_metric, warning
from .errors import InputError
from .io.volumes import read_mask, read_volume
from .measurements import measure
from .outputs import CaseWriter, case_folder_ready, write_json_atomic, write_mask_nifti
from .preprocess import register_rigid

__all__ = ["CaseFolder", "read_case_folder", "compare_cases", "rano_category", "rano_volumetric", "PROGRESSION",
           "PARTIAL_RESPONSE", "VOLUMETRIC_PROGRESSION", "VOLUMETRIC_PARTIAL_RESPONSE"]

# RANO (Wen et al. 2010; van den Bent et al. 2011 for LGG) on the bidimensional product
PROGRESSION = 25.0  # percent increase
PARTIAL_RESPONSE = -50.0  # percent decrease
# RANO 2.0 (Wen et al., J Clin Oncol 2023) adds volumetric thresholds, equivalent to the bidimensional ones
# for a sphere-like lesion: progression at a 40% volume increase, partial response at a 65% decrease
VOLUMETRIC_PROGRESSION = 40.0
VOLUMETRIC_PARTIAL_RESPONSE = -65.0
VOLUMETRIC_SOURCE = "RANO 2.0, Wen et al., J Clin Oncol 2023"
CATEGORY_NOTE = (
    "An aid to reading, not a diagnosis: RANO categories also weigh contrast enhancement, new lesions, "
    "steroid dose and the clinical state, and rest on the radiologist's own measurements."
)
DAYS_PER_YEAR = 365.25


@dataclass
class CaseFolder:
    """One study as detect left it: its report, segmentation and FLAIR."""

    path: Path
    report: dict
    segmentation: sitk.Image
    flair: sitk.Image
    flair_path: str


def read_case_folder(path: str | Path, role: str) -> CaseFolder:
    """Read and check a detect case folder; every problem is an InputError naming the file."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, f"{role}: no such case folder")
    report_path = path / "report.json"
    if not report_path.is_file():
        raise InputError(path, f"{role}: no report.json (not a case folder written by tumorseg detect)")
    try:
        report = json.loads(report_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(report_path, f"cannot be read as JSON ({error})") from None
    inputs = report.get("inputs") if isinstance(report, dict) else None
    if not isinstance(inputs, dict):
        raise InputError(report_path, "has no 'inputs' (not a report written by tumorseg detect)")
    if not inputs.get("flair"):
        raise InputError(path, f"{role}: report.json names no FLAIR volume (a Kaggle slice stack has no geometry "
                         "to register)")
    seg_path = path / "segmentation.nii.gz"
    if not seg_path.is_file():
        raise InputError(path, f"{role}: no segmentation.nii.gz")
    segmentation = sitk.Cast(read_mask(seg_path) > 0, sitk.sitkUInt8)
    flair_path = Path(inputs["flair"])
    if not flair_path.exists():
        where = "" if flair_path.is_absolute() else " from the current folder (it is relative to where detect ran)"
        raise InputError(report_path, f"{role}: its FLAIR {flair_path} is not found{where}")
    flair = read_volume(inputs["flair"], (inputs.get("series_uids") or {}).get("flair"))
    if segmentation.GetSize() != flair.GetSize():
        raise InputError(seg_path, f"its grid {segmentation.GetSize()} is not the FLAIR's {flair.GetSize()}")
    return CaseFolder(path, report, segmentation, flair, str(inputs["flair"]))



def compare_cases(
    baseline: str | Path,
    followup: str | Path,
    out_root: str | Path,
    case_id: str | None = None,
    dates: tuple[date, date] | None = None,
    overwrite: bool = False,
    dicom_sr: bool = False,
) -> dict:
    """Compare two detect case folders and write ``out_root/<case_id>/``; returns change.json's content.

    ``dates`` (baseline, follow-up) are used when a report has no DICOM StudyDate. ``dicom_sr`` adds
    change_report.dcm (:mod:`monai_core.change_sr`), which needs both studies detected from DICOM
    with ``--dicom-seg``; that is checked before the registration.
    """
    started = time.perf_counter()
    before, after = read_case_folder(baseline, "baseline"), read_case_folder(followup, "follow-up")
    names = [case.report.get("case_id") or case.path.name for case in (before, after)]
    case_id = case_id or f"{names[0]}_to_{names[1]}"
    case_folder_ready(out_root, case_id, overwrite)  # fail before the work, not after
    (date_before, source_before), (date_after, source_after) = (
        study_date(case, given) for case, given in zip((before, after), dates or (None, None))
    )
    interval = None if date_before is None or date_after is None else (date_after - date_before).days
    if interval is not None and interval < 0:
        raise InputError(after.path, f"the follow-up ({date_after}) is dated before the baseline ({date_before}); "
                         "give the earlier study first")

    m_before, m_after = measure(before.segmentation), measure(after.segmentation)
    evidence = _sr_evidence(before, after, m_before, m_after) if dicom_sr else None

    start = time.perf_counter()
    transform = _register(before, after)
    register_s = time.perf_counter() - start
    followup_on_baseline = _resample_mask(after.segmentation, before.segmentation, transform)
    labelmap = change_labelmap(before.segmentation, followup_on_baseline)

    registration = _registration_entry(before, after, transform)
    change = {
        "case_id": case_id,
        "baseline": _study_entry(before, m_before, date_before, source_before),
        "followup": _study_entry(after, m_after, date_after, source_after),
        "interval_days": interval,
        **_changes(m_before, m_after, interval),
        "category": rano_category(m_before, m_after),
        "volumetric": rano_volumetric(m_before, m_after),
        "category_note": CATEGORY_NOTE,
        "change_map": {
            "labels": {str(value): name for value, name, _ in CHANGE_SEGMENTS},
            **label_volumes_ml(labelmap),
        },
        "registration": registration,
        "warnings": _warnings(before, after, registration["mutual_information"]),
    }
    with CaseWriter(out_root, case_id, overwrite) as folder:
        write_mask_nifti(labelmap, folder / "change.nii.gz")
        write_change_seg_nrrd(labelmap, folder / "change.seg.nrrd")
        followup_flair = sitk.Resample(after.flair, before.flair, transform, sitk.sitkLinear, 0.0)
        change["overlay_slices"] = write_change_overlay(before.flair, followup_flair, labelmap, folder / "overlay.png")
        if evidence is not None:
            change["dicom_sr"] = _write_sr(change, evidence, before, after, folder)
        change["timing_s"] = {"register_s": round(register_s, 3), "total_s": round(time.perf_counter() - started, 3)}
        write_json_atomic(folder / "change.json", change)  # last: its presence marks the comparison complete
    return change


def _sr_evidence(before: CaseFolder, after: CaseFolder, m_before: dict, m_after: dict):
    """Both studies' FLAIR series and SEGs for the DICOM SR, checked before any work (see monai_core.change_sr)."""
    from .change_sr import check_same_patient, study_evidence

    evidence = tuple(study_evidence(case.path, case.report, role, bool(m["volume_ml"]))
                     for case, role, m in ((before, "baseline", m_before), (after, "follow-up", m_after)))
    check_same_patient(*evidence, after.path)
    return evidence


def _write_sr(change: dict, evidence, before: CaseFolder, after: CaseFolder, folder: Path) -> dict:
    """change_report.dcm, made by the algorithm that made the follow-up's segmentation; flagged if either was."""
    from .change_sr import CHANGE_SR_FILE, write_change_report
    from .dicom_seg import bundle_identity

    name, version = bundle_identity()
    identity = after.report.get("bundle") or {}
    flagged = any((case.report.get("quality") or {}).get("flagged") for case in (before, after))
    write_change_report(change, *evidence, folder / CHANGE_SR_FILE, identity.get("name") or name,
                        identity.get("version") or version, low_confidence=flagged)
    return {"written": True, "file": CHANGE_SR_FILE}


def study_date(case: CaseFolder, given: date | None) -> tuple[date | None, str | None]:
    """The study's date and where it came from: the DICOM StudyDate, else the date given, else none."""
    text = ((case.report.get("inputs") or {}).get("dicom") or {}).get("StudyDate")
    try:
        return datetime.strptime(str(text).strip(), "%Y%m%d").date(), "DICOM StudyDate"
    except ValueError:
        pass
    return (given, "--dates") if given is not None else (None, None)


def rano_category(before: dict, after: dict) -> str:
    """RANO for the FLAIR lesion from the bidimensional products (an aid, not a diagnosis)."""
    change = _percent(before["bidimensional_product_mm2"], after["bidimensional_product_mm2"] or 0.0)
    return _category(before, after, change, PROGRESSION, PARTIAL_RESPONSE)


def _category(before: dict, after: dict, change: float | None, progression: float, partial_response: float) -> str:
    """The RANO category of a percent change, with a lesion that vanished or appeared decided first."""
    had, has = bool(before["volume_ml"]), bool(after["volume_ml"])
    if had and not has:
        return "complete response"
    if not had:
        return "progression" if has else "stable"  # a new lesion is progression in RANO
    if change >= progression:
        return "progression"
    if change <= partial_response:
        return "partial response"
    return "stable"


def rano_volumetric(before: dict, after: dict) -> dict:
    """The RANO 2.0 volumetric block of change.json: category, volume change and the thresholds used.

    The categories mirror :func:`rano_category`'s, on the volume instead of the bidimensional product.
    """
    change = _percent(before["volume_ml"], after["volume_ml"])
    category = _category(before, after, change, VOLUMETRIC_PROGRESSION, VOLUMETRIC_PARTIAL_RESPONSE)
    return {
        "category": category,
        "volume_change_percent": _rounded(change, 2),
        "thresholds": {"progression_percent": VOLUMETRIC_PROGRESSION,
                       "partial_response_percent": VOLUMETRIC_PARTIAL_RESPONSE, "source": VOLUMETRIC_SOURCE},
    }


def _register(before: CaseFolder, after: CaseFolder) -> sitk.Transform:
    """Follow-up FLAIR onto the baseline FLAIR; maps baseline points into the follow-up."""
    try:
        return register_rigid(before.flair, after.flair, path=after.flair_path)
    except InputError:  # register_rigid's only InputError: the volumes do not overlap in space
        raise InputError(after.flair_path, f"does not overlap the baseline FLAIR ({before.flair_path}) in space; "
                         "are both studies of the same patient, in scanner coordinates?") from None
    except RuntimeError as error:  # ITK gives up, e.g. when too few samples overlap
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "no reason given"
        raise InputError(after.flair_path, f"could not be registered to the baseline FLAIR ({reason})") from None


def _resample_mask(mask: sitk.Image, reference: sitk.Image, transform: sitk.Transform) -> sitk.Image:
    """A 0/1 mask through ``transform`` onto ``reference``: linear, then >= 0.5, which keeps the volume
    better than nearest neighbour when the voxels are far from cubic (5 mm slices)."""
    moved = sitk.Resample(sitk.Cast(mask, sitk.sitkFloat32), reference, transform, sitk.sitkLinear, 0.0)
    return sitk.Cast(moved >= 0.5, sitk.sitkUInt8)


def _study_entry(case: CaseFolder, measurements: dict, when: date | None, source: str | None) -> dict:
    return {
        "case": str(case.path),
        "case_id": case.report.get("case_id"),
        "flair": case.flair_path,
        "study_date": None if when is None else when.isoformat(),
        "date_source": source,
        "measurements": measurements,
    }


def _changes(before: dict, after: dict, interval_days: int | None) -> dict:
    volume = round(after["volume_ml"] - before["volume_ml"], 3)
    growth = None
    if interval_days and before["mean_diameter_mm"] is not None:
        after_diameter = after["mean_diameter_mm"] or 0.0
        growth = round((after_diameter - before["mean_diameter_mm"]) / (interval_days / DAYS_PER_YEAR), 2)
    return {
        "volume_change_ml": volume,
        "volume_change_percent": _rounded(_percent(before["volume_ml"], after["volume_ml"]), 2),
        "bidimensional_product_change_percent": _rounded(
            _percent(before["bidimensional_product_mm2"], after["bidimensional_product_mm2"] or 0.0), 2),
        "mean_diameter_growth_mm_per_year": growth,
    }


def _percent(before, after) -> float | None:
    if not before:
        return None
    return 100.0 * (after - before) / before


def _rounded(value, digits):
    return None if value is None else round(value, digits)


def _registration_entry(before: CaseFolder, after: CaseFolder, transform: sitk.Transform) -> dict:
    """How far the follow-up moved: rotation, shift at the baseline FLAIR's centre, and the 4x4 LPS matrix."""
    centre = np.asarray(before.flair.TransformContinuousIndexToPhysicalPoint(
        [(n - 1) / 2 for n in before.flair.GetSize()]))
    moved = np.asarray(transform.TransformPoint(centre.tolist()))
    matrix = np.stack([np.asarray(transform.TransformPoint((centre + axis).tolist())) - moved for axis in np.eye(3)], 1)
    affine = np.eye(4)
    affine[:3, :3] = matrix
    affine[:3, 3] = moved - matrix @ centre
    angle = np.degrees(np.arccos(np.clip((np.trace(matrix) - 1) / 2, -1.0, 1.0)))
    return {
        "method": "rigid, Mattes mutual information (monai_core.preprocess.register_rigid)",
        "rotation_deg": round(float(angle), 2),
        "shift_at_centre_mm": round(float(np.linalg.norm(moved - centre)), 2),
        "baseline_to_followup_lps": np.round(affine, 6).tolist(),
        "mutual_information": round(registration_metric(before.flair, after.flair, transform), 3),
    }


def _warnings(before: CaseFolder, after: CaseFolder, metric: float) -> list[dict]:
    out = []
    if metric > REGISTRATION_POOR:
        out.append(warning("registration_poor", f"the follow-up FLAIR did not align well with the baseline "
                           f"(mutual information {metric:.2f}); check the overlay before reading the change map"))
    ids = [((case.report.get("inputs") or {}).get("dicom") or {}).get("PatientID") for case in (before, after)]
    if all(ids) and ids[0] != ids[1]:
        out.append(warning("patient_differs", f"the studies have different PatientIDs ({ids[0]}, {ids[1]})"))
    return out
