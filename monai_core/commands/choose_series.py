"""``tumorseg choose-series``: which series of a DICOM study ``detect --study`` would take, and why.

Reads headers only (no torch, no pixels), so that it answers in a second: the Slicer module
asks it which loaded volumes to propose, and an operator can check a study before a batch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "choose-series",
        help="show which FLAIR, T1 and T1c series of a DICOM study would be used, and why",
        description="Choose the FLAIR, pre- and post-contrast T1 of a DICOM study by the rule of README.md "
                    "(headers only). Exit code 2, with the candidates, when the choice is ambiguous.",
    )
    parser.add_argument("source", nargs="*", help="a study folder, or DICOM files of one study")
    parser.add_argument("--files-from", type=Path, metavar="LIST", help="a text file naming one DICOM file per line")
    parser.add_argument("--flair-series", metavar="UID", help="the FLAIR's SeriesInstanceUID")
    parser.add_argument("--t1-series", metavar="UID", help="the pre-contrast T1's SeriesInstanceUID")
    parser.add_argument("--t1c-series", metavar="UID", help="the post-contrast T1's SeriesInstanceUID")
    parser.add_argument("--json", action="store_true", help="print the choice as JSON (with each chosen series' files)")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from ..errors import InputError
    from ..series_choice import choose_series

    files = list(args.source)
    if args.files_from is not None:
        try:
            files += [line.strip() for line in args.files_from.read_text(encoding="utf-8").splitlines() if line.strip()]
        except OSError as error:
            raise InputError(args.files_from, f"cannot read the list of files ({error.strerror})") from None
    if not files:
        raise InputError(None, "give a study folder, DICOM files or --files-from LIST")
    source = files[0] if len(files) == 1 and Path(files[0]).is_dir() else files
    choice = choose_series(source, flair=args.flair_series, t1=args.t1_series, t1c=args.t1c_series)
    if args.json:
        answer = choice.report()
        for role in ("flair", "t1", "t1c"):
            answer[role]["files"] = [str(f) for f in choice[role].files] if choice[role] else []
        json.dump(answer, sys.stdout, indent=1)
        print()
    else:
        for line in choice.lines():
            print(line)
    return 0
