"""``tumorseg export-dicom-seg``: convert a NIfTI mask on a DICOM series' grid into DICOM-SEG.

The mask must already lie on the series' voxel grid (as ``segmentation.nii.gz`` from
``tumorseg detect`` on that series does). A mask on any other grid is refused rather than
resampled: a SEG references source instances frame by frame, so resampling would silently move
the segmentation.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

__all__ = ["add_parser", "run", "check_same_grid"]

# NIfTI stores geometry in float32 and as a quaternion, so a mask written from the series image
# comes back with origin errors of a few micrometres and direction errors near 1e-7.
# A hundredth of a voxel and 1e-4 in the direction cosines (0.006 degrees) are far above that
# and far below any real misregistration.
VOXEL_FRACTION_TOL = 0.01
DIRECTION_TOL = 1e-4


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "export-dicom-seg",
        help="convert a NIfTI mask on a DICOM series' grid into DICOM-SEG",
        description="Write a BINARY DICOM-SEG with one 'Tumor' segment from a 0/1 mask that lies "
        "on the voxel grid of the given DICOM series.",
    )
    parser.add_argument("--mask", required=True, type=Path, help="NIfTI (or NRRD) mask, 1 = tumour")
    parser.add_argument("--source", required=True, type=Path, help="folder of the DICOM series the mask was made on")
    parser.add_argument("--series-uid", default=None, help="SeriesInstanceUID, when --source holds several series")
    parser.add_argument("-o", "--output", required=True, type=Path, help="DICOM-SEG file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    parser.add_argument("--low-confidence", action="store_true",
                        help="mark the result as low confidence (report.json's quality.flagged), as detect --dicom-seg does")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from ..dicom_seg import bundle_identity, write_dicom_seg  # highdicom: imported only when exporting
    from ..io.dicom import read_series
    from ..io.volumes import read_mask

    if args.output.exists() and not args.overwrite:
        raise InputError(args.output, "already exists (use --overwrite to replace it)")
    series = read_series(args.source, args.series_uid)
    mask_image = read_mask(args.mask)
    check_same_grid(mask_image, series.image, args.mask)
    mask = sitk.GetArrayFromImage(mask_image)  # (z, y, x), the order of the series image
    name, version = bundle_identity()
    write_dicom_seg(mask, series.datasets, args.output, name, version, overwrite=args.overwrite,
                    low_confidence=args.low_confidence)
    print(f"wrote {args.output}", file=sys.stderr)
    return 0



def check_same_grid(image: sitk.Image, reference: sitk.Image, where) -> None:
    """Raise InputError unless ``image`` has the size, spacing, origin and direction of ``reference``."""
    if image.GetSize() != reference.GetSize():
        raise InputError(where, f"mask size {image.GetSize()} differs from the DICOM series' {reference.GetSize()}")
    tolerance = VOXEL_FRACTION_TOL * min(reference.GetSpacing())
    if not np.allclose(image.GetSpacing(), reference.GetSpacing(), rtol=0, atol=tolerance):
        raise InputError(where, f"mask spacing {_fmt(image.GetSpacing())} differs from the DICOM series' "
                         f"{_fmt(reference.GetSpacing())} mm")
    if not np.allclose(image.GetOrigin(), reference.GetOrigin(), rtol=0, atol=tolerance):
        raise InputError(where, f"mask origin {_fmt(image.GetOrigin())} differs from the DICOM series' "
                         f"{_fmt(reference.GetOrigin())} mm")
    if not np.allclose(image.GetDirection(), reference.GetDirection(), rtol=0, atol=DIRECTION_TOL):
        raise InputError(where, "mask orientation (direction) differs from the DICOM series'")


def _fmt(values) -> str:
    return "(" + ", ".join(f"{v:.4g}" for v in values) + ")"
