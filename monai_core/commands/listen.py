"""``tumorseg listen``: a DICOM node that receives studies, runs detect on each and sends the SEG (and SR) back."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Receive DICOM studies (C-STORE, from a PACS, a scanner or a router), run `tumorseg detect --study` on
each once no instance of it has arrived for --quiet-time seconds, and send the DICOM-SEG (and, with
--dicom-sr, the SR) back with C-STORE to --send-to, as new series of the same study.
NODE_DIR holds the received instances (received/), one state file per request (state/), the case
folders as detect writes them (results/<case_id>/), summary.csv and node.log; all of it readable by
its owner only. Stop it with Ctrl-C or SIGTERM; kill it at any moment: started again on the same
NODE_DIR, it finishes every study it acknowledged and sends no result twice."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "listen",
        help="a DICOM node: receive studies, detect, send the SEG and SR back",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-o", "--output", required=True, metavar="NODE_DIR", help="the node's folder")
    parser.add_argument("--allow", nargs="+", required=True, metavar="AE",
                        help="calling AE titles to accept (e.g. the PACS's); any other is refused at association")
    parser.add_argument("--ae-title", default="TUMORSEG", help="this node's AE title (default TUMORSEG)")
    parser.add_argument("--port", type=int, default=11112, help="TCP port to listen on (default 11112)")
    parser.add_argument("--bind", default="0.0.0.0", metavar="ADDRESS",
                        help="address to listen on (default 0.0.0.0: all interfaces; 127.0.0.1: this machine only)")
    parser.add_argument("--send-to", metavar="AE@HOST:PORT", help="where to send the results, e.g. ORTHANC@pacs:4242")
    parser.add_argument("--dicom-sr", action="store_true", help="also make and send measurements.dcm (DICOM SR, TID 1500)")
    parser.add_argument("--quiet-time", type=float, default=30.0, metavar="SECONDS",
                        help="a study is complete when no instance of it arrived for this long (default 30)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, one study at a time each (default 1)")
    parser.add_argument("--threads-per-worker", type=int, metavar="N",
                        help="torch threads of each worker (default: this machine's cores divided among the workers)")
    parser.add_argument("--case-timeout", type=float, default=600.0, metavar="SECONDS",
                        help="time limit of one study in its worker (default 600)")
    parser.add_argument("--retry-after", type=float, default=30.0, metavar="SECONDS",
                        help="wait after a failed send, doubled at each failure (default 30)")
    parser.add_argument("--retry-max", type=float, default=3600.0, metavar="SECONDS",
                        help="longest wait between two tries of a send (default 3600)")
    parser.add_argument("--seg-nrrd", action="store_true", help="also write segmentation.seg.nrrd in each case folder")
    parser.add_argument("--overlay", action="store_true", help="also write overlay.png in each case folder")
    parser.add_argument("--bundle", type=Path, help="bundle folder (default: the bundle shipped with TumorSeg)")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from ..pacs import NodeOptions, parse_address, run_node

    options = NodeOptions(
        allow=tuple(args.allow),
        ae_title=args.ae_title,
        port=args.port,
        bind=args.bind,
        send_to=parse_address(args.send_to) if args.send_to else None,
        quiet_time=args.quiet_time,
        workers=args.workers,
        threads=args.threads_per_worker,
        case_timeout=args.case_timeout,
        retry_after=args.retry_after,
        retry_max=args.retry_max,
        dicom_sr=args.dicom_sr,
        seg_nrrd=args.seg_nrrd,
        overlay=args.overlay,
        bundle=str(args.bundle) if args.bundle else None,
    )
    return run_node(args.output, options)
