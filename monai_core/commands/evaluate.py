"""``tumorseg evaluate``: the shipped two-stage pipeline against ground-truth masks, per patient."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="score the pipeline on Kaggle-layout patients with masks",
        description="Run the two-stage pipeline on whole patients and write metrics.json and plots.",
    )
    parser.add_argument("--data", required=True, type=Path, help="a kaggle_3m folder (patient folders with masks)")
    parser.add_argument("--patients", type=Path, help="file listing the patients to score (default: every folder)")
    parser.add_argument("-o", "--output", required=True, type=Path, help="folder for metrics.json and the plots")
    parser.add_argument("--bundle", type=Path, help="bundle folder (default: the bundle shipped with TumorSeg)")
    parser.set_defaults(run=run)
    return parser


def run(args) -> int:
    from ..data import read_patient_list
    from ..errors import InputError
    from ..evaluation import run_bundle_evaluation
    from ..pipeline import DEFAULT_BUNDLE

    if not args.data.is_dir():
        raise InputError(args.data, "no such folder")
    if args.patients:
        if not args.patients.is_file():
            raise InputError(args.patients, "no such file")
        patients = read_patient_list(args.patients)
    else:
        patients = sorted(p.name for p in args.data.iterdir() if p.is_dir())
    missing = [p for p in patients if not (args.data / p).is_dir()]
    if missing or not patients:
        raise InputError(args.data, f"patients missing from the data folder: {missing[:3]}" if missing else "no patients")
    if (args.output / "metrics.json").exists():
        raise InputError(args.output / "metrics.json", "already exists; choose another output folder")
    run_bundle_evaluation(args.bundle or DEFAULT_BUNDLE, args.data, patients, args.output)
    return 0
