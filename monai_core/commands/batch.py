"""``tumorseg batch``: many studies in, one case folder each and a summary table out."""

from __future__ import annotations

import argparse

from . import add_output_options

__all__ = ["add_parser", "run"]

DESCRIPTION = """\
Run detection on every case of ROOT_DIR (one sub-folder per case: a Kaggle-layout patient folder,
or NIfTI/NRRD files or DICOM series folders named flair/t1/t1c, BraTS flair/t1/t1ce, BraTS 2023
t2f/t1n/t1c, optionally after "<case>_", or MSD channel files <case>_0000..0003) or of a CSV
manifest with the columns case_id,flair,t1,t1c (t1 and t1c may be empty; relative paths are
relative to the manifest; optional columns study,flair_series,t1_series,t1c_series name a DICOM
study and its series). A sub-folder of DICOM files under other names is a whole study, and a
ROOT_DIR of loose DICOM files (a PACS export) gives one case per StudyInstanceUID: their series
are chosen as by `tumorseg detect --study`. Unrecognised or duplicate names fail the case instead
of a silent FLAIR substitution. Each case gets the outputs of `tumorseg detect` in OUT/<case_id>/;
OUT/summary.csv has one row per case, with its sequences, confidence, flag and warnings.
A manifest may add a column baseline: the case id of an earlier study of the same patient in
the manifest, or a case folder `tumorseg detect` finished before. Such a follow-up is compared
with its baseline after detect (`tumorseg compare`, into OUT/changes/<case_id>/), once its
baseline's detect has finished; its row adds the volume and bidimensional-product changes and
the RANO and RANO 2.0 volumetric categories, or fails with the comparison's error.
Exit code 3 when any case failed."""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "batch",
        help="detect tumour in many studies, resumably",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="ROOT_DIR|MANIFEST.csv", help="a folder of case folders, or a CSV manifest")
    parser.add_argument("-o", "--output", required=True, help="output folder: OUT/<case_id>/ and OUT/summary.csv")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (or Ray actors); default 1")
    parser.add_argument("--engine", choices=["local", "ray"], default="local", help="local processes or Ray actors")
    parser.add_argument("--address", help="Ray cluster to join (with --engine ray); default: a private local instance")
    parser.add_argument("--resume", action="store_true", help="skip the cases already complete in OUT and run the rest")
    parser.add_argument(
        "--case-timeout", type=float, default=600.0, metavar="SECONDS",
        help="time limit of one case; a case over it fails and its worker is restarted (default 600)",
    )
    parser.add_argument(
        "--threads-per-worker", type=int, metavar="N",
        help="torch threads of each worker (default: this machine's cores divided among the workers)",
    )
    add_output_options(parser, "also write segmentation.dcm for the DICOM cases")
    parser.add_argument("--progress", choices=["bar", "json", "none"], default="bar", help="progress on stderr")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from ..batch import BatchOptions, run_batch
    from ..errors import InputError

    if args.threads_per_worker is not None and args.threads_per_worker < 1:
        raise InputError(None, "--threads-per-worker must be at least 1")
    options = BatchOptions(
        workers=args.workers,
        engine=args.engine,
        resume=args.resume,
        case_timeout=args.case_timeout,
        threads=args.threads_per_worker,
        address=args.address,
        bundle=str(args.bundle) if args.bundle else None,
        seg_nrrd=args.seg_nrrd,
        overlay=args.overlay,
        dicom_seg=args.dicom_seg,
        progress=args.progress,
    )
    return run_batch(args.source, args.output, options)
