"""DICOM-SEG output: the "Tumor" mask as a highdicom ``Segmentation`` of the FLAIR series.

The SEG is built from the source series' own datasets (as MONAI Deploy's writer does), so the
patient, study and frame-of-reference modules are copied from the source and every frame
references the instance it segments. Slice order comes from :func:`monai_core.io.dicom.sorted_slices`,
the same order in which :func:`monai_core.io.dicom.read_series` builds the image.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import highdicom as hd
import numpy as np
from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes

from . import __version__
from .errors import InputError
from .io.dicom import sorted_slices
from .outputs import TUMOR_SEGMENT as SLICER_SEGMENT
from .outputs import write_atomic

__all__ = [
    "EmptySegmentationError",
    "TUMOR_SEGMENT",
    "SERIES_DESCRIPTION",
    "LOW_CONFIDENCE_SUFFIX",
    "bundle_identity",
    "write_dicom_seg",
    "mask_from_dicom_seg",
]

BUNDLE_METADATA = Path(__file__).resolve().parent.parent / "bundle" / "configs" / "metadata.json"
SERIES_DESCRIPTION = "TumorSeg"
# Appended to the series and content descriptions when the quality check flags the result, so a
# PACS user sees it in the series list before opening the SEG.
LOW_CONFIDENCE_SUFFIX = " (low confidence - review)"
CONTENT_DESCRIPTION = "Automatic brain tumour segmentation"
SEG_SERIES_NUMBER = 9901  # a high number keeps derived series after the acquired ones in viewers
SEGMENT_NUMBER = 1

# The one segment TumorSeg writes, in SNOMED CT terms (the same terminology the Slicer module
# sets on its segment). 49755003 is spelt "Morphologically Altered Structure" as in DICOM CID 7150
# and Slicer's terminology, rather than pydicom's newer "Morphologically Abnormal Structure".
TUMOR_SEGMENT = {
    "label": "Tumor",
    "category": CodedConcept("49755003", "SCT", "Morphologically Altered Structure"),
    "type": CodedConcept(codes.SCT.Neoplasm.value, "SCT", codes.SCT.Neoplasm.meaning),
    "anatomic_region": CodedConcept(codes.SCT.Brain.value, "SCT", codes.SCT.Brain.meaning),
    "algorithm_family": codes.cid7162.ArtificialIntelligence,
    # Slicer's terminology files give no recommendedDisplayRGBValue for Neoplasm (108369006), so
    # the SEG uses the colour of the Slicer .seg.nrrd segment: one colour in every viewer.
    "display_rgb": tuple(round(255 * c) for c in SLICER_SEGMENT["color"]),
}


class EmptySegmentationError(InputError):
    """The mask holds no tumour voxel, so no DICOM-SEG can be written.

    A SEG without frames is not valid DICOM (Pixel Data is Type 1 and Number of Frames must be at
    least 1), and highdicom would instead encode every empty frame. Callers such as ``detect``
    catch this and record in report.json that no SEG was written and why (``str(error)``).
    """


def bundle_identity(metadata_path=None) -> tuple[str, str]:
    """(name, version) of the algorithm, from the bundle's metadata.json if it exists.

    Falls back to "TumorSeg" and the package version, so a SEG can be written from a checkout
    without a bundle; these values go into the SEG's algorithm identification.
    """
    path = Path(metadata_path) if metadata_path else BUNDLE_METADATA
    name, version = "TumorSeg", __version__
    if path.is_file():
        try:
            metadata = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise InputError(path, f"cannot be read as JSON: {error}") from None
        name = str(metadata.get("name") or name)
        version = str(metadata.get("version") or version)
    return name, version


def _segment_description(algorithm_name: str, algorithm_version: str,
                         low_confidence: bool = False) -> hd.seg.SegmentDescription:
    """The "Tumor" segment with its terminology and display colour.

    Without RecommendedDisplayCIELabValue, dcmqi and Slicer pick an arbitrary colour ("Failed to
    get CIELab values"); a flagged result also says so in the segment's own description.
    """
    algorithm = hd.AlgorithmIdentificationSequence(
        name=algorithm_name,
        family=TUMOR_SEGMENT["algorithm_family"],
        version=algorithm_version,
        parameters={"confidence": "low"} if low_confidence else None,
    )
    segment = hd.seg.SegmentDescription(
        segment_number=SEGMENT_NUMBER,
        segment_label=TUMOR_SEGMENT["label"],
        segmented_property_category=TUMOR_SEGMENT["category"],
        segmented_property_type=TUMOR_SEGMENT["type"],
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm,
        anatomic_regions=[TUMOR_SEGMENT["anatomic_region"]],
        tracking_id=TUMOR_SEGMENT["label"],
        tracking_uid=hd.UID(),
        display_color=hd.color.CIELabColor.from_rgb(*TUMOR_SEGMENT["display_rgb"]),
    )
    if low_confidence:
        segment.SegmentDescription = "Tumor, low confidence - review"
    return segment


def _source_layout(mask: np.ndarray, source_datasets, where):
    """Source images and the mask arranged the way highdicom pairs them.

    Single-frame series: ``pixel_array[i]`` segments ``source_images[i]``, so the datasets are passed
    in sorted order. One multi-frame image: ``pixel_array[i]`` segments frame ``i`` of the file, so
    the z-ordered mask is put back into frame order.
    """
    slices = sorted_slices(source_datasets, where)
    rows, columns = int(slices[0].dataset.Rows), int(slices[0].dataset.Columns)
    expected = (len(slices), rows, columns)
    if mask.ndim != 3 or tuple(mask.shape) != expected:
        raise InputError(where, f"mask shape {tuple(mask.shape)} does not match the DICOM series "
                         f"(z, y, x) = {expected}")
    if slices[0].frame is None:
        return [s.dataset for s in slices], mask
    if len({id(s.dataset) for s in slices}) != 1:
        raise InputError(where, "a DICOM-SEG can reference one multi-frame image or single-frame images, not several multi-frame files")
    in_frame_order = np.empty_like(mask)
    in_frame_order[[s.frame for s in slices]] = mask
    return [slices[0].dataset], in_frame_order


def _check_binary(mask: np.ndarray, where) -> np.ndarray:
    """The mask as uint8, accepting any numeric type whose values are exactly 0 and 1."""
    if mask.dtype.kind not in "biuf":
        raise InputError(where, f"mask must be numeric, got {mask.dtype}")
    values = np.unique(mask)
    if not np.isin(values, (0, 1)).all():
        raise InputError(where, f"mask must hold only 0 and 1, found values {values[:10].tolist()}")
    return mask.astype(np.uint8, copy=False)


def write_dicom_seg(mask, source_datasets, path, algorithm_name, algorithm_version, overwrite=False,
                    low_confidence: bool = False) -> Path:
    """Write ``mask`` (uint8, SimpleITK (z, y, x) order, 1 = tumour) as a BINARY DICOM-SEG.

    ``source_datasets`` are the series' datasets as :func:`read_series` returns them (any order
    is accepted; they are sorted the same way). Frames without tumour are left out. Nothing is
    written when the shape does not match, the file exists and ``overwrite`` is false, or the
    mask is empty (:class:`EmptySegmentationError`). The file is written to a temporary name in
    the same folder, synced and renamed, so a reader never sees half a SEG. ``low_confidence``
    marks a result the quality check flagged: the series, content and segment descriptions say
    so, so that it is reviewed before use.
    """
    path = Path(path)
    mask = _check_binary(np.asarray(mask), path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists (use --overwrite to replace it)")
    source_images, pixel_array = _source_layout(mask, list(source_datasets), path)
    if not pixel_array.any():
        raise EmptySegmentationError(path, "no tumour voxels in the mask: a DICOM-SEG needs at least one "
                                     "frame, so none was written")
    seg = _build_segmentation(source_images, pixel_array, algorithm_name, algorithm_version, low_confidence)
    _save_atomically(seg, path)
    return path


def without_name_warnings(build):
    """``build()``, with highdicom's warning about single-component patient names silenced.

    highdicom warns when it copies such a name from the source, and the warning quotes the name:
    identifying tags stay out of the log. Every DICOM object TumorSeg writes is built through here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person name")
        return build()


def new_instance_attributes(algorithm_name: str, algorithm_version: str) -> dict:
    """The arguments every highdicom object TumorSeg writes shares: new UIDs and the equipment."""
    return dict(series_instance_uid=hd.UID(), sop_instance_uid=hd.UID(), instance_number=1, manufacturer="TumorSeg",
                manufacturer_model_name=algorithm_name, software_versions=algorithm_version, device_serial_number="0")


def _build_segmentation(source_images, pixel_array, algorithm_name, algorithm_version,
                        low_confidence=False) -> hd.seg.Segmentation:
    return without_name_warnings(
        lambda: _segmentation(source_images, pixel_array, algorithm_name, algorithm_version, low_confidence))


def _segmentation(source_images, pixel_array, algorithm_name, algorithm_version,
                  low_confidence=False) -> hd.seg.Segmentation:
    suffix = LOW_CONFIDENCE_SUFFIX if low_confidence else ""
    return hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[_segment_description(algorithm_name, algorithm_version, low_confidence)],
        series_number=SEG_SERIES_NUMBER,
        **new_instance_attributes(algorithm_name, algorithm_version),
        content_label="TUMOR",
        content_description=CONTENT_DESCRIPTION + suffix,
        series_description=SERIES_DESCRIPTION + suffix,
        omit_empty_frames=True,
    )


def _save_atomically(seg, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, lambda stream: seg.save_as(stream, enforce_file_format=True))


def mask_from_dicom_seg(path, source_datasets) -> np.ndarray:
    """Read a TumorSeg DICOM-SEG back onto its source series as a uint8 (z, y, x) mask.

    Uses highdicom's source-instance (or source-frame) lookup, so it checks the SEG's references
    rather than trusting frame order; frames the SEG left out come back as zeros.
    """
    seg = hd.seg.segread(path)
    slices = sorted_slices(list(source_datasets), path)
    options = dict(segment_numbers=[SEGMENT_NUMBER], combine_segments=True,
                   assert_missing_frames_are_empty=True, dtype=np.uint8)
    if slices[0].frame is None:
        uids = [str(s.dataset.SOPInstanceUID) for s in slices]
        return np.asarray(seg.get_pixels_by_source_instance(source_sop_instance_uids=uids, **options))
    source_uid = str(slices[0].dataset.SOPInstanceUID)
    frame_numbers = [s.frame + 1 for s in slices]
    return np.asarray(seg.get_pixels_by_source_frame(source_uid, source_frame_numbers=frame_numbers, **options))
