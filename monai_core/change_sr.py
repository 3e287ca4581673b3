"""DICOM SR of a comparison: both time points' tumour measurements and the change, one TID 1500 report.

``tumorseg compare --dicom-sr`` writes it beside change.json when both studies were detected from
DICOM (``tumorseg detect --dicom-seg``), so that a PACS or Slicer (dcmqi) reads the change as it
reads detect's measurements.dcm (:mod:`monai_core.dicom_sr`, whose codes and parts it shares).
The report files into the follow-up study (patient and study come from the follow-up FLAIR); the
baseline study's instances are referenced as other evidence. Its content:

- the image library: the instances of both FLAIR series;
- one measurement group per time point, each with a Time Point Context (TID 1502: "baseline",
  type Baseline, order 1; "follow-up", order 2; the study date as subject time point identifier):

  - with tumour, TID 1411 referencing segment 1 of that study's DICOM-SEG and its FLAIR series,
    with detect's measurements;
  - without tumour, TID 1501 with a volume of 0 mL and the FLAIR's instances as its source images
    (detect writes no SEG without tumour: a SEG needs at least one frame);

- two change groups (TID 1501, at the follow-up), one per response criterion, named by the
  group's Measurement Method: RANO (NCIt C114879, CID 6147) with the bidimensional product's
  change in percent, and RANO 2.0 volumetric (``99TUMORSEG``) with the volume change in mL and in
  percent (codes in the ``99TUMORSEG`` scheme: no standard concept names a change from a prior).
  Each holds a Response Evaluation (DCM 112020) valued from CID 6144: Target Lesion Complete
  Response, Partial Response, Stable Disease or Progressive Disease. The method is given at the
  group level, where dcmqi's tid1500reader reads it, rather than as a modifier of the evaluation.

All four groups share one Tracking Unique Identifier: that of the baseline SEG's segment (else
the follow-up's), because DICOM tracks one finding across time points with one UID; each group
still references its own SEG segment by SOP instance and segment number. A percent change is
left out when the baseline has no tumour (it is undefined), as change.json's is null.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import pydicom
from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

from .dicom_seg import LOW_CONFIDENCE_SUFFIX, TUMOR_SEGMENT, without_name_warnings
from .dicom_sr import (
    PRIVATE_SCHEME,
    SR_SERIES_NUMBER,
    enhanced_sr,
    measurement_items,
    observation_context,
    read_seg,
    referenced_segment,
)
from .errors import InputError
from .outputs import write_atomic

__all__ = ["CHANGE_SR_FILE", "StudyEvidence", "study_evidence", "check_same_patient", "write_change_report",
           "RESPONSE_CODES", "CHANGE_CODES"]

CHANGE_SR_FILE = "change_report.dcm"
SERIES_DESCRIPTION = "TumorSeg change"
TRACKING_IDENTIFIER = "Tumor"

_ML = CodedConcept("ml", "UCUM", "milliliter")
_PERCENT = CodedConcept("%", "UCUM", "percent")
# change.json key -> (concept name, unit)
CHANGE_CODES = {
    "volume_change_ml": (CodedConcept("VOL-CHG", PRIVATE_SCHEME, "Tumor volume change from baseline"), _ML),
    "volume_change_percent": (CodedConcept("VOL-CHG-PCT", PRIVATE_SCHEME, "Tumor volume percent change from baseline"),
                              _PERCENT),
    "bidimensional_product_change_percent": (
        CodedConcept("RANO-BP-CHG-PCT", PRIVATE_SCHEME, "Bidimensional product percent change from baseline"), _PERCENT),
}
# compare's category -> CID 6144 lesion response
RESPONSE_CODES = {
    "complete response": codes.cid6144.TargetLesionCompleteResponse,
    "partial response": codes.cid6144.TargetLesionPartialResponse,
    "stable": codes.cid6144.TargetLesionStableDisease,
    "progression": codes.cid6144.TargetLesionProgressiveDisease,
}
RANO = codes.cid6147.RANO
RANO_VOLUMETRIC = CodedConcept("RANO2-VOL", PRIVATE_SCHEME, "RANO 2.0 volumetric")
BASELINE = codes.cid6146.Baseline
TIME_POINTS = {"baseline": ("baseline", 1), "followup": ("follow-up", 2)}


@dataclass
class StudyEvidence:
    """What the SR references of one time point: its FLAIR series' datasets and its SEG (None without tumour)."""

    sources: list[pydicom.Dataset]
    seg: pydicom.Dataset | None


def study_evidence(case_path: Path, report: dict, role: str, has_tumour: bool) -> StudyEvidence:
    """The FLAIR series and segmentation.dcm of a detect case folder, checked before any work.

    The FLAIR must be a DICOM series (the SR references its instances) and, when there is a
    tumour, the folder must hold the SEG that detect ``--dicom-seg`` wrote from that series.
    """
    from .io.dicom import read_series

    case_path = Path(case_path)
    inputs = report.get("inputs") or {}
    flair = Path(inputs["flair"])
    if not flair.is_dir():
        raise InputError(case_path, f"{role}: --dicom-sr needs the FLAIR as a DICOM series folder, and its FLAIR is "
                         f"{flair.name}")
    series = read_series(flair, (inputs.get("series_uids") or {}).get("flair"))
    seg_path = case_path / "segmentation.dcm"
    if not seg_path.is_file():
        if has_tumour:
            raise InputError(case_path, f"{role}: no segmentation.dcm for --dicom-sr to reference; run tumorseg "
                             "detect with --dicom-seg")
        return StudyEvidence(list(series.datasets), None)
    seg = read_seg(seg_path)
    referenced = str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID)
    if referenced != series.series_uid:
        raise InputError(seg_path, f"{role}: the SEG was made from series {referenced}, not from the FLAIR "
                         f"{series.series_uid}")
    return StudyEvidence(list(series.datasets), seg)


def check_same_patient(baseline: StudyEvidence, followup: StudyEvidence, where) -> None:
    """One report files into one patient: studies of two PatientIDs cannot share it."""
    ids = [str(s.sources[0].get("PatientID", "")) for s in (baseline, followup)]
    if ids[0] != ids[1]:
        raise InputError(where, "--dicom-sr: the two studies have different PatientIDs, and one report cannot file "
                         "into both patients")


def write_change_report(change: dict, baseline: StudyEvidence, followup: StudyEvidence, path, algorithm_name: str,
                        algorithm_version: str, low_confidence: bool = False) -> Path:
    """Write ``change`` (change.json's content) as a TID 1500 Enhanced SR at ``path``, atomically.

    ``low_confidence`` (either study's result was flagged) marks the series description, as detect's
    SEG and SR are marked, so that the numbers are reviewed before use.
    """
    path = Path(path)
    sr = without_name_warnings(lambda: _document(change, baseline, followup, algorithm_name, algorithm_version,
                                                 low_confidence))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda stream: sr.save_as(stream, enforce_file_format=True))
    return path


def _document(change, baseline, followup, algorithm_name, algorithm_version, low_confidence) -> hd.sr.EnhancedSR:
    algorithm = hd.sr.AlgorithmIdentification(name=algorithm_name, version=algorithm_version)
    segs = [s.seg for s in (baseline, followup) if s.seg is not None]
    lesion_uid = (referenced_segment(segs[0])[1].get("TrackingUID") if segs else None) or hd.UID()
    tracking = hd.sr.TrackingIdentifier(uid=lesion_uid, identifier=TRACKING_IDENTIFIER)
    groups = [
        _time_point_group(change, "baseline", baseline, tracking, algorithm),
        _time_point_group(change, "followup", followup, tracking, algorithm),
        *_change_groups(change, tracking, algorithm),
    ]
    report = hd.sr.MeasurementReport(
        observation_context=observation_context(algorithm_name, algorithm_version),
        procedure_reported=codes.LN.BrainMRI,
        imaging_measurements=groups,
        referenced_images=[*followup.sources, *baseline.sources],  # the image library (TID 1600)
    )
    suffix = LOW_CONFIDENCE_SUFFIX if low_confidence else ""
    evidence = [*followup.sources, *baseline.sources, *segs]  # evidence[0]: the study the report files into
    return enhanced_sr(evidence, report, SR_SERIES_NUMBER, SERIES_DESCRIPTION + suffix, algorithm_name,
                       algorithm_version)


def _time_point(change: dict, role: str) -> hd.sr.TimePointContext:
    name, order = TIME_POINTS[role]
    when = change[role].get("study_date")
    return hd.sr.TimePointContext(time_point=name, time_point_type=BASELINE if role == "baseline" else None,
                                  time_point_order=order, subject_time_point_identifier=when)


def _finding(algorithm) -> dict:
    return dict(finding_type=TUMOR_SEGMENT["type"], finding_category=TUMOR_SEGMENT["category"],
                finding_sites=[hd.sr.FindingSite(TUMOR_SEGMENT["anatomic_region"])], algorithm_id=algorithm)


def _time_point_group(change, role, evidence: StudyEvidence, tracking, algorithm):
    """TID 1411 on the study's SEG segment, or, without tumour (no SEG), TID 1501 on its FLAIR instances."""
    measurements = measurement_items(change[role]["measurements"], algorithm)
    if evidence.seg is not None:
        return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, referenced_segment=referenced_segment(evidence.seg)[0],
            time_point_context=_time_point(change, role), measurements=measurements, **_finding(algorithm))
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, time_point_context=_time_point(change, role), measurements=measurements,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(ds) for ds in evidence.sources],
        **_finding(algorithm))


def _change_groups(change, tracking, algorithm) -> list[hd.sr.MeasurementsAndQualitativeEvaluations]:
    """One group per response criterion, its method at group level (where dcmqi reads a method)."""
    return [_change_group(change, change["category"], RANO, ["bidimensional_product_change_percent"], tracking,
                          algorithm),
            _change_group(change, change["volumetric"]["category"], RANO_VOLUMETRIC,
                          ["volume_change_ml", "volume_change_percent"], tracking, algorithm)]


def _change_group(change, category, method, keys, tracking, algorithm) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    measurements = [
        hd.sr.Measurement(name=CHANGE_CODES[key][0], value=float(change[key]), unit=CHANGE_CODES[key][1],
                          algorithm_id=algorithm)
        for key in keys if change.get(key) is not None  # a percent change from no tumour is undefined
    ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking, time_point_context=_time_point(change, "followup"), method=method,
        measurements=measurements,
        qualitative_evaluations=[hd.sr.QualitativeEvaluation(codes.DCM.ResponseEvaluation, RESPONSE_CODES[category])],
        **_finding(algorithm))
