"""What every reader of ``monai_core.io`` shares: size limits and the DICOM identity tags.

A leaf module (it imports nothing from ``monai_core``), so that the NIfTI/NRRD reader
(``volumes``) and the DICOM readers (``dicom``, ``dicom_headers``) can all use it without
importing each other in a circle.
"""

from __future__ import annotations

import SimpleITK as sitk

__all__ = ["MAX_VOXELS", "MAX_SLICES", "IDENTITY_TAGS", "series_identity"]

MAX_VOXELS = 1024**3 // 2  # 512 Mi voxels: far above any MR series, refused before allocation
# Axial slices after reorientation: each becomes a 256x256 model slice (3 channels, float32), so
# this bounds the model-space tensor (1024 slices: 0.8 GB), whatever the in-plane size.
MAX_SLICES = 1024

# DICOM tags copied onto the SimpleITK image of a series (as "gggg|eeee" metadata), and their report keys
IDENTITY_TAGS = {
    "0010|0020": "PatientID",
    "0020|000d": "StudyInstanceUID",
    "0020|000e": "SeriesInstanceUID",
    "0008|0020": "StudyDate",
}


def series_identity(image: sitk.Image) -> dict[str, str] | None:
    """PatientID, StudyInstanceUID, SeriesInstanceUID and StudyDate of an image read from a DICOM series."""
    if not image.HasMetaDataKey("0020|000e"):
        return None
    return {keyword: image.GetMetaData(tag) for tag, keyword in IDENTITY_TAGS.items()}
