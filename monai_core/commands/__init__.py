"""Sub-commands of the ``tumorseg`` command line, one module each."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_output_options(parser: argparse.ArgumentParser, dicom_seg_help: str) -> None:
    """The optional outputs and the bundle choice, shared by ``detect`` and ``batch``."""
    parser.add_argument("--seg-nrrd", action="store_true", help="also write segmentation.seg.nrrd for 3D Slicer")
    parser.add_argument("--dicom-seg", action="store_true", help=dicom_seg_help)
    parser.add_argument("--overlay", action="store_true", help="also write overlay.png of the flagged slices")
    parser.add_argument("--bundle", type=Path, help="bundle folder (default: the bundle shipped with TumorSeg)")
