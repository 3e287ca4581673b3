"""``tumorseg detect``: one study in, a segmentation and a report out."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import add_output_options

__all__ = ["add_parser", "run", "detect_from_args"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "detect",
        help="detect and segment tumour in one study",
        description="Detect and segment brain tumour (FLAIR abnormality) in one MRI study.",
    )
    parser.add_argument("case_dir", nargs="?", help="a Kaggle-layout patient folder of <case>_<n>.tif slices")
    parser.add_argument("--flair", help="FLAIR volume: NIfTI, NRRD or DICOM series folder")
    parser.add_argument("--t1", help="pre-contrast T1 (optional; replaced by FLAIR when missing)")
    parser.add_argument("--t1c", help="post-contrast T1 (optional; replaced by FLAIR when missing)")
    parser.add_argument("--study", help="a DICOM study folder: FLAIR, T1 and T1c series are chosen by the rule in README.md")
    parser.add_argument("--flair-series", metavar="UID", help="with --study: the FLAIR's SeriesInstanceUID")
    parser.add_argument("--t1-series", metavar="UID", help="with --study: the pre-contrast T1's SeriesInstanceUID")
    parser.add_argument("--t1c-series", metavar="UID", help="with --study: the post-contrast T1's SeriesInstanceUID")
    parser.add_argument("-o", "--output", required=True, help="output folder; results go to OUTPUT/<case_id>/")
    parser.add_argument("--case-id", help="name of the case folder (default: from the input name)")
    add_output_options(parser, "also write segmentation.dcm (DICOM input only)")
    parser.add_argument("--dicom-sr", action="store_true",
                        help="also write measurements.dcm, a DICOM SR (TID 1500) referencing the SEG; needs --dicom-seg")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing case folder")
    parser.add_argument("--progress", choices=["text", "json", "none"], default="text", help="progress on stderr")
    parser.set_defaults(run=run)
    return parser


def detect_from_args(args, progress, pipeline=None, studies=None, results=None) -> dict:
    """Check the parsed ``detect`` arguments, load the models unless ``pipeline`` is given, run the case.

    Returns the report. Shared by :func:`run` and the warm engine (``monai_core.engine``), which
    keeps one pipeline loaded between requests, the studies it read (``studies``, a
    :class:`monai_core.study_cache.StudyCache`) and what it made of them (``results``, a
    :class:`monai_core.remembered_results.RememberedResults`).
    """
    from ..detect import detect_case
    from ..errors import InputError
    from ..outputs import case_folder_ready

    if sum(x is not None for x in (args.case_dir, args.flair, args.study)) != 1:
        raise InputError(None, "give exactly one of: a Kaggle case folder, --flair, or --study")
    if args.study is not None and (args.t1 or args.t1c):
        raise InputError(None, "with --study, choose series with --t1-series/--t1c-series, not --t1/--t1c")
    _check_paths(args.output, args.case_dir, args.flair, args.t1, args.t1c, args.study)  # before the slow model load
    if args.dicom_sr:
        _check_dicom_sr(args)
    choice = _study_choice(args, progress) if args.study is not None else None
    if args.case_id is not None:
        case_folder_ready(args.output, args.case_id, args.overwrite)
    if pipeline is None:
        progress("load", 0.0, "loading the models")
        pipeline = _load_while_reading(args)
    report = detect_case(
        pipeline,
        args.output,
        kaggle_dir=args.case_dir,
        flair=args.flair,
        t1=args.t1,
        t1c=args.t1c,
        case_id=args.case_id,
        seg_nrrd=args.seg_nrrd,
        overlay=args.overlay,
        dicom_seg=args.dicom_seg,
        overwrite=args.overwrite,
        progress=progress,
        dicom_sr=args.dicom_sr,
        choice=choice,
        studies=studies,
        results=results,
    )
    return report


def run(args) -> int:
    from ..detect import quality_summary, slices_summary
    from ..progress import reporter

    report = detect_from_args(args, reporter(args.progress))
    volume = report["tumor_volume_ml"]
    summary = f"{report['case_id']}: {'tumour detected' if report['tumor_detected'] else 'no tumour detected'}"
    summary += f", {slices_summary(report)}"
    summary += f", volume {volume:.1f} mL" if volume is not None else ", volume unknown (no voxel spacing)"
    sizes = report.get("measurements") or {}
    if sizes.get("longest_diameter_mm") is not None:
        summary += f", largest axial diameters {sizes['longest_diameter_mm']:.0f}"
        summary += f" x {sizes['perpendicular_diameter_mm']:.0f} mm"
    summary += f"; {quality_summary(report['quality'])}"
    print(summary)
    if args.progress == "none":  # otherwise the progress lines carried them
        for item in report["quality"]["warnings"]:
            print(f"tumorseg: warning: {item['message']} [{item['code']}]", file=sys.stderr)
    print(f"outputs: {Path(args.output) / report['case_id']}")
    return 0


def _load_while_reading(args):
    """A Future of the bundle's pipeline, loading in a thread while the main thread reads the study.

    Importing torch and loading the weights take about 2.8 s of a cold detect; reading, registering
    and checking the study take as long, and run in SimpleITK and numpy, which release the GIL. So
    the two overlap; :func:`monai_core.detect.detect_case` waits for the pipeline before the networks.
    The study's readers are imported first, so that the two threads never import at the same time.
    """
    from concurrent.futures import ThreadPoolExecutor

    _import_readers(args)
    executor = ThreadPoolExecutor(1, thread_name_prefix="tumorseg-load")
    loading = executor.submit(_load_pipeline, args.bundle)
    executor.shutdown(wait=False)  # the thread ends when the pipeline is loaded
    return loading


def _import_readers(args) -> None:
    """Import what reading this study needs (the Kaggle slice reader, or pydicom and highdicom's reader)."""
    import importlib

    names = {"monai_core.data.lgg"} if args.case_dir is not None else set()
    if args.study is not None or any(path is not None and Path(path).is_dir() for path in (args.flair, args.t1, args.t1c)):
        names.add("monai_core.io.dicom")
    for name in sorted(names):
        importlib.import_module(name)


def _load_pipeline(bundle):
    """The bundle's pipeline, built with one torch thread and torch's thread count restored after.

    Building it is some 1800 small tensor operations (the weights' load and channels-last copies);
    with two threads each one wakes an OpenMP worker that then spins, which cost 0.7-1.1 s of CPU
    against 0.4 s with one (busy 2-core machine, 3 runs each), CPU that the study's reading and
    registration beside it need."""
    import torch

    from ..pipeline import DEFAULT_BUNDLE, TumorSegPipeline

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return TumorSegPipeline(bundle or DEFAULT_BUNDLE)
    finally:
        torch.set_num_threads(threads)


def _check_paths(out_root, *inputs) -> None:
    """Fail fast, before the models load: the inputs exist and are readable, the output can be written."""
    from ..errors import InputError

    for path in inputs:
        if path is None:
            continue
        path = Path(path)
        if not path.exists():
            raise InputError(path, "no such file or folder")
        if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
            raise InputError(path, "not readable (permission denied)")
    out_root = Path(out_root)
    existing = next((p for p in (out_root, *out_root.parents) if p.exists()), None)
    if existing is None or not existing.is_dir():
        raise InputError(out_root, "the output folder is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(out_root, "cannot write the output folder (read-only or permission denied)")


def _check_dicom_sr(args) -> None:
    """The SR references the SEG's segment and the FLAIR's DICOM series, so both must exist."""
    from ..errors import InputError

    if not args.dicom_seg:
        raise InputError(None, "--dicom-sr needs --dicom-seg: the SR references the DICOM-SEG's segment")
    if args.study is None and (args.flair is None or not Path(args.flair).is_dir()):
        raise InputError(args.flair or args.case_dir, "--dicom-sr needs the FLAIR as a DICOM series folder")


def _study_choice(args, progress):
    """The FLAIR, T1 and T1c series of a DICOM study folder (monai_core.series_choice), said on stderr.

    One line per role says which series was taken and why, and one line lists the series not
    used with their reasons; report.json's ``inputs.series_choice`` records the same.
    """
    from ..series_choice import choose_series

    choice = choose_series(args.study, flair=args.flair_series, t1=args.t1_series, t1c=args.t1c_series)
    for line in choice.lines():
        if getattr(args, "progress", "text") == "json":  # stderr carries JSON lines only
            progress("series", 0.0, line)
        else:
            print(f"tumorseg: {line}", file=sys.stderr)
    return choice
