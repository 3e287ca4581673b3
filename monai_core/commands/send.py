"""``tumorseg send``: C-STORE a finished case's DICOM-SEG (and SR) to a DICOM node, by hand."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "send",
        help="send a finished case's segmentation.dcm (and measurements.dcm) to a PACS",
        description="Send the DICOM results of a case folder (segmentation.dcm, then measurements.dcm when present) "
                    "to a DICOM node with C-STORE, e.g. a result of `tumorseg listen` whose automatic send "
                    "must be repeated. Exit code 2 when the folder holds no DICOM result or the node cannot be "
                    "reached or refuses them. A PACS keeps one copy of an instance sent twice.",
    )
    parser.add_argument("case_dir", metavar="CASE_DIR", type=Path, help="a case folder written by detect, batch or listen")
    parser.add_argument("--to", required=True, metavar="AE@HOST:PORT", help="the destination, e.g. ORTHANC@pacs:4242")
    parser.add_argument("--ae-title", default="TUMORSEG", help="the calling AE title (default TUMORSEG)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS", help="network time limit (default 30)")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from ..batch.summary import completed_report
    from ..errors import InputError
    from ..pacs import SendError, parse_address, result_files, send_files

    destination = parse_address(args.to)
    folder = args.case_dir
    if not folder.is_dir():
        raise InputError(folder, "no such case folder")
    if completed_report(folder) is None:
        raise InputError(folder, "not a finished case folder (no complete report.json)")
    files = result_files(folder)
    if not files:
        raise InputError(folder, "holds no segmentation.dcm or measurements.dcm (no tumour was found, "
                                 "or detect ran without --dicom-seg)")
    try:
        send_files(files, destination, args.ae_title, args.timeout,
                   on_sent=lambda path: print(f"sent {path.name} to {destination}"))
    except SendError as error:
        raise InputError(None, str(error)) from None
    return 0
