"""``tumorseg compare``: change between two studies of one patient (see monai_core.compare)."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "compare",
        help="change between two studies of one patient",
        description="Register the follow-up FLAIR to the baseline FLAIR and write the change in tumour "
        "volume and RANO diameters (change.json), a New/Resolved/Stable segmentation and an overlay.",
    )
    parser.add_argument("baseline", type=Path, help="case folder of the earlier study, as written by tumorseg detect")
    parser.add_argument("followup", type=Path, help="case folder of the later study")
    parser.add_argument("-o", "--output", required=True, type=Path, help="results go to OUTPUT/<case_id>/")
    parser.add_argument("--case-id", help="name of the output folder (default: <baseline>_to_<followup>)")
    parser.add_argument("--dates", nargs=2, type=_iso_date, metavar=("BASELINE", "FOLLOWUP"),
                        help="study dates YYYY-MM-DD, used when a report has no DICOM StudyDate")
    parser.add_argument("--dicom-sr", action="store_true",
                        help="also write change_report.dcm, a DICOM SR (TID 1500) with both studies' measurements and "
                        "the change, referencing both studies and their SEGs; needs both detected from DICOM with "
                        "--dicom-seg")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from ..compare import compare_cases

    change = compare_cases(args.baseline, args.followup, args.output, args.case_id, args.dates, args.overwrite,
                           args.dicom_sr)
    before, after = change["baseline"]["measurements"], change["followup"]["measurements"]
    summary = f"{change['case_id']}: volume {before['volume_ml']:.1f} -> {after['volume_ml']:.1f} mL"
    if change["volume_change_percent"] is not None:
        summary += f" ({change['volume_change_percent']:+.0f}%)"
    if change["bidimensional_product_change_percent"] is not None:
        summary += f", bidimensional product {change['bidimensional_product_change_percent']:+.0f}%"
    summary += f", {change['category']} (an aid, not a diagnosis)"
    print(summary)
    print(f"outputs: {Path(args.output) / change['case_id']}")
    return 0


def _iso_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date YYYY-MM-DD") from None
