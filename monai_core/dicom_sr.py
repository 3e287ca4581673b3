"""DICOM SR output: the tumour measurements as a TID 1500 Measurement Report (highdicom).

PACS and Slicer (dcmqi, QuantitativeReporting) read measurements from a TID 1500 report, not from
report.json. The report holds one volumetric measurement group (TID 1411) for the "Tumor" segment:
it references segment 1 of the DICOM-SEG written beside it and the FLAIR series the SEG was made
from, and copies patient and study from the source datasets, so it files into the same study.

Concept codes (the RANO measurement is the longest axial diameter times the longest diameter
perpendicular to it, see :mod:`monai_core.measurements`):

- volume: SCT 118565006 "Volume" (CID 7472), in UCUM ``ml``;
- longest diameter: SCT 103339001 "Long axis" (CID 7470), ``mm``;
- perpendicular diameter: SCT 103340004 "Short axis" (CID 7470), ``mm``: the longest diameter
  perpendicular to the long axis, as RECIST uses it. SCT 131189007 "Perpendicular Axis" names any
  perpendicular line, not the longest one;
- mean diameter: SCT 81827009 "Diameter" with derivation SCT 373098007 "Mean" (CID 3488), ``mm``,
  and a measurement method saying it is (2V)^(1/3): a standard reader sees "mean diameter";
- bidimensional product: no DICOM, SNOMED CT or LOINC concept exists for it, and SCT "Area" would be
  read as the lesion's cross-section (the product is about 4/pi times that for an ellipse), so it has
  a private code in the ``99TUMORSEG`` scheme, declared in the Coding Scheme Identification Sequence;
  ``mm2``.
"""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pydicom
from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from .dicom_seg import (LOW_CONFIDENCE_SUFFIX, SEGMENT_NUMBER, TUMOR_SEGMENT, new_instance_attributes,
                        without_name_warnings)
from .errors import InputError
from .outputs import write_atomic

__all__ = ["EmptyMeasurementsError", "MEASUREMENT_CODES", "PRIVATE_SCHEME", "write_measurement_report", "read_seg",
           "observation_context", "measurement_items", "referenced_segment", "enhanced_sr"]

PRIVATE_SCHEME = "99TUMORSEG"
SR_SERIES_NUMBER = 9902  # after the SEG's 9901, so viewers list the derived series together
SERIES_DESCRIPTION = "TumorSeg measurements"

_ML = CodedConcept("ml", "UCUM", "milliliter")
_MM = CodedConcept("mm", "UCUM", "millimeter")
_MM2 = CodedConcept("mm2", "UCUM", "square millimeter")
_MEAN = CodedConcept(codes.SCT.Mean.value, "SCT", codes.SCT.Mean.meaning)
BIDIMENSIONAL_PRODUCT = CodedConcept("RANO-BP", PRIVATE_SCHEME, "Bidimensional product")
MEAN_DIAMETER_METHOD = CodedConcept("MTD-2V-CBRT", PRIVATE_SCHEME, "Mean tumor diameter (2V)^(1/3)")

# report.json key -> (concept name, unit, derivation, method)
MEASUREMENT_CODES = {
    "volume_ml": (CodedConcept("118565006", "SCT", "Volume"), _ML, None, None),
    "longest_diameter_mm": (CodedConcept("103339001", "SCT", "Long axis"), _MM, None, None),
    "perpendicular_diameter_mm": (CodedConcept("103340004", "SCT", "Short axis"), _MM, None, None),
    "bidimensional_product_mm2": (BIDIMENSIONAL_PRODUCT, _MM2, None, None),
    "mean_diameter_mm": (CodedConcept("81827009", "SCT", "Diameter"), _MM, _MEAN, MEAN_DIAMETER_METHOD),
}


class EmptyMeasurementsError(InputError):
    """No tumour, so no measurements and no SEG segment to reference: no SR is written.

    ``detect`` catches this and records ``{"written": False, "reason": str(error)}``, as for the SEG.
    """


def write_measurement_report(measurements: dict, seg_path, source_datasets, path, algorithm_name: str,
                             algorithm_version: str, overwrite: bool = False, low_confidence: bool = False) -> Path:
    """Write ``measurements`` (report.json's) as a TID 1500 Enhanced SR referencing the SEG at ``seg_path``.

    ``source_datasets`` are the FLAIR series' datasets the SEG was built from (as :func:`read_series`
    returns them); they give the patient and study and fill the image library. The file is written
    atomically (temporary name, fsync, rename). ``low_confidence`` marks the series description, as
    the SEG's, so a flagged result is reviewed before its numbers are used.
    """
    path = Path(path)
    _check_measurements(measurements, path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists (use --overwrite to replace it)")
    seg = read_seg(seg_path)
    sources = list(source_datasets)
    sr = without_name_warnings(lambda: _report(measurements, seg, sources, algorithm_name, algorithm_version,
                                               low_confidence))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda stream: sr.save_as(stream, enforce_file_format=True))
    return path


def _check_measurements(measurements: dict, path: Path) -> None:
    if not measurements or measurements.get("volume_ml") is None:
        raise EmptyMeasurementsError(path, "no measurements (unknown voxel spacing), so no DICOM SR was written")
    if not measurements["volume_ml"] or any(measurements.get(key) is None for key in MEASUREMENT_CODES):
        raise EmptyMeasurementsError(path, "no tumour voxels in the mask: nothing to measure and no segment to "
                                     "reference, so no DICOM SR was written")


def read_seg(seg_path) -> pydicom.Dataset:
    """The written SEG's header, checked to hold the segment the report refers to."""
    seg_path = Path(seg_path)
    if not seg_path.is_file():
        raise InputError(seg_path, "no such DICOM-SEG: the SR references the SEG, write it first")
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    numbers = [int(s.SegmentNumber) for s in seg.get("SegmentSequence", [])]
    if seg.get("Modality") != "SEG" or SEGMENT_NUMBER not in numbers:
        raise InputError(seg_path, f"not a DICOM-SEG with segment {SEGMENT_NUMBER}")
    return seg


def _report(measurements, seg, sources, algorithm_name, algorithm_version, low_confidence) -> hd.sr.EnhancedSR:
    report = hd.sr.MeasurementReport(
        observation_context=observation_context(algorithm_name, algorithm_version),
        procedure_reported=codes.LN.BrainMRI,
        imaging_measurements=[_tumor_group(measurements, seg, algorithm_name, algorithm_version)],
        referenced_images=sources,  # the image library (TID 1600)
    )
    suffix = LOW_CONFIDENCE_SUFFIX if low_confidence else ""
    return enhanced_sr([*sources, seg], report, SR_SERIES_NUMBER, SERIES_DESCRIPTION + suffix, algorithm_name,
                       algorithm_version)


def enhanced_sr(evidence, report, series_number: int, series_description: str, algorithm_name: str,
                algorithm_version: str) -> hd.sr.EnhancedSR:
    """The SR document around a TID 1500 ``report``; patient and study come from ``evidence[0]``.

    Enhanced SR: the content has no 3D coordinates, and Enhanced SR is the most widely read IOD that
    fits. Evidence from another study (a prior) goes to the Pertinent Other Evidence Sequence.
    """
    return hd.sr.EnhancedSR(
        evidence=evidence,
        content=report,
        series_number=series_number,
        **new_instance_attributes(algorithm_name, algorithm_version),
        series_description=series_description,
        is_complete=True,  # every measurement is there; not final nor verified: no person has read it
        coding_schemes=[hd.coding_schemes.CodingSchemeIdentificationItem(
            designator=PRIVATE_SCHEME, name="TumorSeg local codes", responsible_organization="TumorSeg")],
    )


def observation_context(algorithm_name: str, algorithm_version: str) -> hd.sr.ObservationContext:
    """The algorithm as the device observer; its UID is derived from name and version, so it is stable."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=generate_uid(entropy_srcs=[algorithm_name, algorithm_version]),
        name=algorithm_name,
        manufacturer_name="TumorSeg",
        model_name=algorithm_version,
    )
    return hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(observer_type=codes.DCM.Device,
                                                      observer_identifying_attributes=device))


def referenced_segment(seg) -> tuple[hd.sr.ReferencedSegment, pydicom.Dataset]:
    """Segment 1 of the SEG as an SR reference (with the FLAIR series it was made from), and its description."""
    segment = next(s for s in seg.SegmentSequence if int(s.SegmentNumber) == SEGMENT_NUMBER)
    referenced = hd.sr.ReferencedSegment(
        sop_class_uid=seg.SOPClassUID,
        sop_instance_uid=seg.SOPInstanceUID,
        segment_number=SEGMENT_NUMBER,
        source_series=hd.sr.SourceSeriesForSegmentation(seg.ReferencedSeriesSequence[0].SeriesInstanceUID),
    )
    return referenced, segment


def measurement_items(measurements: dict, algorithm: hd.sr.AlgorithmIdentification) -> list[hd.sr.Measurement]:
    """TID 300 items for the measurements of report.json that have a value (all of them when there is a tumour)."""
    return [
        hd.sr.Measurement(name=name, value=float(measurements[key]), unit=unit, derivation=derivation,
                          method=method, algorithm_id=algorithm)
        for key, (name, unit, derivation, method) in MEASUREMENT_CODES.items()
        if measurements.get(key) is not None
    ]


def _tumor_group(measurements, seg, algorithm_name, algorithm_version):
    """TID 1411 for segment 1, tracked with the SEG segment's own tracking identifier and UID."""
    algorithm = hd.sr.AlgorithmIdentification(name=algorithm_name, version=algorithm_version)
    referenced, segment = referenced_segment(seg)
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=segment.get("TrackingUID") or hd.UID(), identifier=segment.get("TrackingID") or segment.SegmentLabel),
        referenced_segment=referenced,
        finding_type=TUMOR_SEGMENT["type"],
        finding_category=TUMOR_SEGMENT["category"],
        finding_sites=[hd.sr.FindingSite(TUMOR_SEGMENT["anatomic_region"])],
        algorithm_id=algorithm,
        measurements=measurement_items(measurements, algorithm),
    )
